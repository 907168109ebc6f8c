//! TLS with certificates that follow their files: cert-manager (or anything else) rewrites the
//! certificate and key, and the next handshake uses them. No restart, and connections already
//! open keep the session they negotiated.
//!
//! The check happens in the handshake itself: [`ReloadingCertificate`] stats both files (two
//! `stat` calls, microseconds) and reloads when their identity changed. A Secret volume swaps a
//! `..data` symlink, which changes what `stat` sees, so this follows Kubernetes mounts without a
//! file watcher and without a reload interval to tune. While the two files are mid-rotation and
//! do not match, the previous certificate keeps being served.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::Error;

/// What identifies a version of a file: a rewrite in place or a new inode changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

struct Loaded {
    stamps: (Option<FileStamp>, Option<FileStamp>),
    key: Arc<CertifiedKey>,
}

/// A rustls certificate resolver that reloads its certificate and key files when they change.
pub struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
    /// Stamps of the last files that failed to load, so a broken pair is reported once.
    failed: RwLock<Option<(Option<FileStamp>, Option<FileStamp>)>>,
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertificate {
    /// Load the pair now; a missing or mismatched pair is an error at start-up.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        let stamps = (stamp(cert_path), stamp(key_path));
        let key = Arc::new(load_pair(cert_path, key_path, &provider)?);
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(Loaded { stamps, key }),
            failed: RwLock::new(None),
        })
    }

    /// The certificate to serve now, reloading it first if its files changed.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let stamps = (stamp(&self.cert_path), stamp(&self.key_path));
        {
            let loaded = self.current.read().ok()?;
            if loaded.stamps == stamps {
                return Some(loaded.key.clone());
            }
        }
        if self.failed.read().ok().is_some_and(|f| *f == Some(stamps)) {
            return self.current.read().ok().map(|l| l.key.clone());
        }
        match load_pair(&self.cert_path, &self.key_path, &self.provider) {
            Ok(key) => {
                let key = Arc::new(key);
                if let Ok(mut loaded) = self.current.write() {
                    *loaded = Loaded {
                        stamps,
                        key: key.clone(),
                    };
                }
                tracing::info!(cert = %self.cert_path.display(), "reloaded the TLS certificate");
                Some(key)
            }
            Err(error) => {
                // Often a rotation caught between writing the two files: the next handshake
                // sees the finished pair. Until then the previous certificate is served.
                tracing::warn!(%error, "keeping the previous TLS certificate");
                if let Ok(mut failed) = self.failed.write() {
                    *failed = Some(stamps);
                }
                self.current.read().ok().map(|l| l.key.clone())
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, Error> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::ReadCertificate {
            path: cert_path.to_owned(),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| Error::ReadPrivateKey {
        path: key_path.to_owned(),
        source,
    })?;
    if chain.is_empty() {
        return Err(Error::LoadCertifiedKey {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            source: rustls::Error::NoCertificatesPresented,
        });
    }
    CertifiedKey::from_der(chain, key, provider).map_err(|source| Error::LoadCertifiedKey {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    })
}

/// The server configuration: TLS 1.2 and 1.3 with the ring provider, HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(
    certificate: Arc<ReloadingCertificate>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(Error::ConfigureTls)?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
