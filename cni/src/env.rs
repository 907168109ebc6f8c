//! The CNI protocol's inputs (CNI spec §"Parameters"): the `CNI_*` environment variables and the
//! configuration on stdin, read into one [`Invocation`] that the thin plugin, the shim and the
//! daemon all hand to the engine.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use multus_crds::names::{validate_cni_name, validate_ifname};

use crate::error::{Error, PodRef, Result};

/// A CNI command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "ADD" => Ok(Self::Add),
            "DEL" => Ok(Self::Del),
            "CHECK" => Ok(Self::Check),
            "GC" => Ok(Self::Gc),
            "STATUS" => Ok(Self::Status),
            "VERSION" => Ok(Self::Version),
            other => Err(Error::UnknownCommand(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Gc => "GC",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
        }
    }

    /// Commands about one container (they need `CNI_CONTAINERID` and `CNI_IFNAME`).
    pub fn is_per_container(self) -> bool {
        matches!(self, Self::Add | Self::Del | Self::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One CNI request: environment and stdin.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` as given, `K=V;K=V`.
    pub args: String,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
    /// The configuration bytes from stdin.
    pub config: Vec<u8>,
}

impl Invocation {
    /// Read the request from environment variables (`get` looks one up) and the stdin bytes.
    /// Checks what the spec requires per command; a DEL without `CNI_IFNAME` is for `eth0`, as
    /// Multus' daemon reads it. One with `CNI_IFNAME` set but empty is refused, as every plugin
    /// refuses it: taken for `eth0` it would have a hot-unplug (`/delegate`) of an attachment
    /// whose status names no interface delete the pod's own `eth0`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>, config: Vec<u8>) -> Result<Self> {
        let command_text = get("CNI_COMMAND").ok_or(Error::ReadEnvironment {
            var: "CNI_COMMAND",
            reason: "is not set".into(),
        })?;
        let command = Command::parse(&command_text)?;
        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        let netns = get("CNI_NETNS").unwrap_or_default();
        let ifname = match get("CNI_IFNAME") {
            None if command == Command::Del => "eth0".to_owned(),
            other => other.unwrap_or_default(),
        };
        if command.is_per_container() {
            validate_cni_name(&container_id).map_err(|reason| Error::ReadEnvironment {
                var: "CNI_CONTAINERID",
                reason,
            })?;
            validate_ifname(&ifname).map_err(|reason| Error::ReadEnvironment {
                var: "CNI_IFNAME",
                reason,
            })?;
            if netns.is_empty() && command != Command::Del {
                return Err(Error::ReadEnvironment {
                    var: "CNI_NETNS",
                    reason: "is not set".into(),
                });
            }
        }
        let path = get("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            args: get("CNI_ARGS").unwrap_or_default(),
            path,
            config,
        })
    }

    /// The environment variables that describe this request, as the shim forwards them.
    pub fn to_env(&self) -> BTreeMap<String, String> {
        let path = self
            .path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        [
            ("CNI_COMMAND", self.command.as_str().to_owned()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.netns.clone()),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.clone()),
            ("CNI_PATH", path),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The `CNI_ARGS` pairs, in order.
    pub fn cni_args(&self) -> Vec<(String, String)> {
        parse_cni_args(&self.args)
    }

    /// The pod the runtime names in `CNI_ARGS`, when it names one.
    pub fn pod(&self) -> Option<PodRef> {
        let args = self.cni_args();
        let get = |key: &str| {
            args.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (namespace, name) = (get("K8S_POD_NAMESPACE"), get("K8S_POD_NAME"));
        if namespace.is_empty() || name.is_empty() {
            return None;
        }
        Some(PodRef {
            namespace,
            name,
            uid: get("K8S_POD_UID"),
        })
    }
}

/// Split `K=V;K=V` on `;` and each pair on its first `=` (a pair without `=` is skipped; values
/// may contain `=`).
pub fn parse_cni_args(args: &str) -> Vec<(String, String)> {
    args.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Join pairs back into `K=V;K=V`.
pub fn format_cni_args(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_an_add_request_and_the_pod() {
        let inv = Invocation::from_env(
            env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_NETNS", "/run/netns/x"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
                (
                    "CNI_ARGS",
                    "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u1;X=a=b",
                ),
            ]),
            b"{}".to_vec(),
        )
        .unwrap();
        assert_eq!(inv.command, Command::Add);
        assert_eq!(inv.path.len(), 2);
        let pod = inv.pod().unwrap();
        assert_eq!((pod.namespace.as_str(), pod.uid.as_str()), ("ns", "u1"));
        assert!(inv.cni_args().contains(&("X".into(), "a=b".into())));
        assert_eq!(format_cni_args(&inv.cni_args()), inv.args);
    }

    #[test]
    fn refuses_missing_or_unsafe_variables() {
        let bad = [
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "a"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "../x"),
                ("CNI_NETNS", "/n"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "a"),
                ("CNI_NETNS", "/n"),
                ("CNI_IFNAME", "a/b"),
            ],
            vec![("CNI_COMMAND", "FROB")],
            vec![],
            // Set but empty: no interface, not eth0.
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "a"),
                ("CNI_IFNAME", ""),
            ],
        ];
        for pairs in bad {
            let e = Invocation::from_env(env(&pairs), Vec::new()).unwrap_err();
            assert_eq!(
                e.code(),
                multus_crds::cni::ErrorCode::InvalidEnvironmentVariables,
                "{pairs:?}"
            );
        }
        let del = Invocation::from_env(
            env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "a")]),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(del.ifname, "eth0");
    }
}
