//! Network namespaces and veth links standing in for pods and nodes, removed when dropped even
//! if the test fails. They use `ip` from iproute2 and need root (CI runs as root).

use std::process::Command;

use crate::Error;

fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::RunIp {
            args: args.join(" "),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::RunIp {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn create(name: &str) -> Result<Self, Error> {
        ip(&["netns", "add", name])?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/NAME`, the path CNI plugins take as CNI_NETNS.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Run `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<(), Error> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A veth pair in the host namespace, optionally with its peer moved into a namespace; deleting
/// one end deletes both, so dropping it removes the pair wherever the peer went.
pub struct Veth {
    host: String,
}

impl Veth {
    pub fn create(host: &str, peer: &str, peer_netns: Option<&Netns>) -> Result<Self, Error> {
        ip(&["link", "add", host, "type", "veth", "peer", "name", peer])?;
        let veth = Self {
            host: host.to_owned(),
        };
        if let Some(ns) = peer_netns {
            ip(&["link", "set", peer, "netns", ns.name()])?;
        }
        ip(&["link", "set", host, "up"])?;
        Ok(veth)
    }

    pub fn host_name(&self) -> &str {
        &self.host
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_exists(name: &str) -> bool {
        Command::new("ip")
            .args(["link", "show", name])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Needs root, as CI has; it fails rather than skips without it.
    #[test]
    fn namespaces_and_links_are_removed_on_drop() {
        let name = format!("mt-{}", std::process::id());
        {
            let ns = Netns::create(&name).unwrap();
            let veth = Veth::create(
                &format!("mth{}", std::process::id() % 100_000),
                "eth9",
                Some(&ns),
            )
            .unwrap();
            assert!(link_exists(veth.host_name()));
            ns.ip(&["link", "set", "eth9", "up"]).unwrap();
            assert!(std::path::Path::new(&ns.path()).exists());
        }
        assert!(!std::path::Path::new(&format!("/var/run/netns/{name}")).exists());
        assert!(!link_exists(&format!(
            "mth{}",
            std::process::id() % 100_000
        )));
    }
}
