//! The few things the meta-plugin does inside a pod's network namespace itself: list its
//! interface names (are the ones ADD will create taken?), and replace default routes
//! (default-route handling).
//!
//! No thread of a pool (tokio's or the daemon's) ever enters a pod's namespace. Route changes
//! run on a fresh OS thread that enters the namespace with `setns` and then ends; they are made
//! by `ip` from that thread (a child process inherits the thread's namespace). They are rare
//! (only pods asking for `default-route`), so an exec is cheaper than a netlink stack here.
//!
//! The interface-name check runs on every ADD. A daemon hands it to one thread kept for that
//! ([`visitor`], [`Visit::Visitor`]) as the ADD begins and works meanwhile; the thin plugin,
//! whose process serves one call, makes it from its own thread ([`Visit::CallingThread`]):
//! starting and ending a thread costs more than the check itself.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::mpsc::Receiver;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

mod links;
mod visitor;

use links::link_names;

/// Run `work` on a new thread inside the network namespace at `netns`.
fn in_netns<T: Send + 'static>(
    netns: &str,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let file = File::open(netns)?;
    std::thread::spawn(move || {
        move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))?;
        work()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Which thread visits a pod's namespace for a [`LinkCheck`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Visit {
    /// The process's visitor thread, kept between calls ([`visitor`]): a process serving many
    /// calls, which works meanwhile.
    #[default]
    Visitor,
    /// The calling thread, which enters the namespace and returns to its own (≈ 0.2 ms less per
    /// ADD than a new thread). Only for a process that serves one call and runs no other work on
    /// this thread meanwhile: the thin plugin. If the thread cannot return, the error says so
    /// and the call must end there (no delegate may run from the pod's namespace).
    CallingThread,
}

/// Run `work` on the calling thread inside the network namespace at `netns`, then return the
/// thread to the namespace it was in.
fn in_netns_here<T>(netns: &str, work: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let home = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(netns)?;
    let (outcome, back) = visit(&home, &target, work);
    back.map_err(|e| {
        io::Error::other(format!(
            "returning from {netns} to the plugin's own network namespace: {e}"
        ))
    })?;
    outcome
}

/// Enter the namespace `target`, run `work` there, and return to `home` (the thread's own):
/// the work's outcome, and whether the thread is back home.
fn visit<T>(
    home: &File,
    target: &File,
    work: impl FnOnce() -> io::Result<T>,
) -> (io::Result<T>, io::Result<()>) {
    let outcome = move_into_link_name_space(target.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(io::Error::from)
        .and_then(|()| work());
    let back = move_into_link_name_space(home.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(io::Error::from);
    (outcome, back)
}

/// A look at the interface names of a pod's namespace, started by [`LinkCheck::start`] and
/// answered by [`LinkCheck::finish`]: with [`Visit::Visitor`] the caller can work meanwhile.
#[derive(Debug)]
pub enum LinkCheck {
    /// Under way on the visitor thread.
    Running(Receiver<visitor::Answer>),
    /// Made on the calling thread when finished.
    Deferred { netns: String },
}

impl LinkCheck {
    /// Start listing the interfaces of `netns`. It needs no name, so a daemon's ADD starts it
    /// first thing: the visitor answers while the ADD starts its first plugin and resolves its
    /// networks, and the answer is there when asked for. (Asked for a few µs after it was
    /// handed over, it was not yet, and the daemon's thread, asleep for it, woke queued behind
    /// the plugin it had just started: a Go plugin's start-up keeps a CPU for milliseconds, and
    /// the config only that thread could write waited 1–1.5 ms; docs/benchmarks.md.) For the
    /// visitor the namespace is opened here (one that cannot be fails here); the calling thread
    /// opens it when finishing.
    pub fn start(netns: &str, visit: Visit) -> io::Result<Self> {
        match visit {
            Visit::Visitor => Ok(Self::Running(visitor::look(File::open(netns)?)?)),
            Visit::CallingThread => Ok(Self::Deferred {
                netns: netns.to_owned(),
            }),
        }
    }

    /// Whether the look runs while the caller does other work.
    pub fn runs_alongside(&self) -> bool {
        matches!(self, Self::Running(_))
    }

    /// The names of the namespace's interfaces, alternative names included.
    pub fn finish(self) -> io::Result<Vec<String>> {
        match self {
            Self::Running(answered) => visitor::answer(&answered),
            Self::Deferred { netns } => in_netns_here(&netns, link_names),
        }
    }
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Remove the default routes of one family through `ifname`.
pub fn delete_default_routes(netns: &str, ifname: &str, v6: bool) -> io::Result<()> {
    let ifname = ifname.to_owned();
    in_netns(netns, move || {
        let (family, dst) = if v6 {
            ("-6", "::/0")
        } else {
            ("-4", "0.0.0.0/0")
        };
        ip(&[family, "route", "flush", "exact", dst, "dev", &ifname])
    })
}

/// Make `gateway` via `ifname` the default route of its family.
pub fn set_default_route(netns: &str, ifname: &str, gateway: std::net::IpAddr) -> io::Result<()> {
    let ifname = ifname.to_owned();
    in_netns(netns, move || {
        let family = if gateway.is_ipv6() { "-6" } else { "-4" };
        let gw = gateway.to_string();
        ip(&[
            family, "route", "replace", "default", "via", &gw, "dev", &ifname,
        ])
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A named namespace, removed even when the test fails. Needs root (CI is root).
    struct Namespace(&'static str);

    impl Namespace {
        fn add(name: &'static str) -> Self {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            let out = Command::new("ip").args(["netns", "add", name]).output();
            assert!(
                out.is_ok_and(|o| o.status.success()),
                "ip netns add {name} (needs root)"
            );
            Self(name)
        }

        fn path(&self) -> String {
            format!("/var/run/netns/{}", self.0)
        }
    }

    impl Drop for Namespace {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", self.0]).output();
        }
    }

    /// Which of `ifnames` exist in the namespace: one visit for all of them.
    fn existing_links(netns: &str, ifnames: &[String], visit: Visit) -> io::Result<Vec<String>> {
        let all = LinkCheck::start(netns, visit)?.finish()?;
        Ok(ifnames
            .iter()
            .filter(|n| all.contains(n))
            .cloned()
            .collect())
    }

    fn own_namespace() -> u64 {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    }

    #[test]
    fn both_visits_see_the_pods_links_and_the_calling_thread_comes_back() {
        let ns = Namespace::add("nsv-pod");
        // A pair only the pod's namespace has (removed with it).
        let out = Command::new("ip")
            .args(["-n", "nsv-pod", "link", "add", "nsvA", "type", "veth"])
            .args(["peer", "name", "nsvB"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        // An alternative name is taken too: the kernel finds the device by it.
        let out = Command::new("ip")
            .args(["-n", "nsv-pod", "link", "property", "add", "dev", "nsvA"])
            .args(["altname", "nsv-alt"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let names = [
            "nsvA".to_owned(),
            "lo".to_owned(),
            "nsv-none".to_owned(),
            "nsv-alt".to_owned(),
        ];
        let home = own_namespace();
        assert!(
            link_names().unwrap().contains(&"lo".to_owned()),
            "the test's own"
        );
        assert!(
            !link_names().unwrap().contains(&"nsvA".to_owned()),
            "the test's own"
        );
        for visit in [Visit::Visitor, Visit::CallingThread] {
            assert_eq!(
                existing_links(&ns.path(), &names, visit).unwrap(),
                ["nsvA", "lo", "nsv-alt"],
                "{visit:?}"
            );
            assert_eq!(own_namespace(), home, "{visit:?} left the thread elsewhere");
        }
        // A namespace that does not exist: an error, and the thread stays at home.
        let missing = existing_links("/var/run/netns/nsv-missing", &names, Visit::CallingThread);
        assert!(missing.is_err());
        assert_eq!(own_namespace(), home);

        // The visitor is one thread, kept, and back home between visits (no other test of this
        // binary visits namespaces, so nothing moves it while this looks).
        let kept = visitor_threads();
        assert_eq!(kept, [home], "one visitor, at home");
        let tid = visitor_tids();
        for _ in 0..3 {
            existing_links(&ns.path(), &names, Visit::Visitor).unwrap();
        }
        assert_eq!(visitor_tids(), tid, "the same thread serves every visit");
        assert_eq!(visitor_threads(), [home]);
        assert!(existing_links("/var/run/netns/nsv-missing", &names, Visit::Visitor).is_err());
        // A file that opens but is no network namespace: the visitor's own `setns` fails, it
        // answers with the error and stays, at home, for the next check.
        assert!(existing_links("/proc/self/ns/uts", &names, Visit::Visitor).is_err());
        assert_eq!(visitor_tids(), tid);
        assert_eq!(visitor_threads(), [home]);
        assert_eq!(
            existing_links(&ns.path(), &names, Visit::Visitor).unwrap(),
            ["nsvA", "lo", "nsv-alt"]
        );
    }

    /// This process's threads named `netns-visitor`.
    fn visitor_tids() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .map(|t| t.file_name().to_string_lossy().into_owned())
            .filter(|tid| {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                    .is_ok_and(|c| c.trim() == "netns-visitor")
            })
            .collect()
    }

    /// The network namespace of each visitor thread.
    fn visitor_threads() -> Vec<u64> {
        visitor_tids()
            .iter()
            .map(|tid| {
                std::fs::metadata(format!("/proc/self/task/{tid}/ns/net"))
                    .unwrap()
                    .ino()
            })
            .collect()
    }
}
