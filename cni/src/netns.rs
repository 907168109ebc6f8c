//! The few things the meta-plugin does inside a pod's network namespace itself: ask whether an
//! interface name is taken, and replace default routes (default-route handling).
//!
//! Each runs on a fresh OS thread that enters the namespace with `setns` and then ends, so no
//! thread of a pool (tokio's or the daemon's) is ever left in a pod's namespace. Route changes are
//! made by `ip` from that thread: a child process inherits the thread's namespace. They are rare
//! (only pods asking for `default-route`), so an exec is cheaper than a netlink stack here.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::process::Command;

use rustix::net::{AddressFamily, SocketType, netdevice::name_to_index, socket};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

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

/// Which of `ifnames` exist in the namespace: one visit for all of them.
pub fn existing_links(netns: &str, ifnames: &[String]) -> io::Result<Vec<String>> {
    let ifnames = ifnames.to_vec();
    in_netns(netns, move || {
        let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)?;
        let mut found = Vec::new();
        for ifname in ifnames {
            match name_to_index(&sock, &ifname) {
                Ok(_) => found.push(ifname),
                Err(e) if e == rustix::io::Errno::NODEV => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(found)
    })
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
