//! The interface names of the current network namespace, alternative names included: one
//! `RTM_GETLINK` dump over a route netlink socket.
//!
//! Why alternative names: the kernel resolves a name to a device by its name or any of its
//! altnames (`ip link property add … altname …`), so a plugin asked for `net1` where `net1` is
//! another device's altname fails with "file exists", and its rollback DEL finds, and may
//! delete, that other device. The check must see them; `if_nameindex` lists only the names.

use std::io;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

const NLMSG_HEADER: usize = 16;
const IFINFOMSG: usize = 16;
const RTA_HEADER: usize = 4;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// The dump was interrupted by a change: its content may be inconsistent.
const NLM_F_DUMP_INTR: u16 = 0x10;

const IFLA_IFNAME: u16 = 3;
const IFLA_PROP_LIST: u16 = 52;
const IFLA_ALT_IFNAME: u16 = 53;
/// Attribute type bits that are flags (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`), not the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The sequence number of our one request.
const SEQ: u32 = 1;
/// Dumps tried while each is interrupted by a change to the namespace's links.
const TRIES: usize = 3;

/// The names and alternative names of the current namespace's interfaces.
pub fn link_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for _ in 0..TRIES {
        names.clear();
        if !dump_into(&mut names)?.interrupted {
            return Ok(names);
        }
    }
    // A list that may miss a name could let a taken one through: say so instead.
    Err(io::Error::other(format!(
        "netlink: the link dump was interrupted by changes {TRIES} times"
    )))
}

/// How a dump ended.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dumped {
    done: bool,
    interrupted: bool,
}

fn dump_into(names: &mut Vec<String>) -> io::Result<Dumped> {
    let sock = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        // NETLINK_ROUTE is protocol 0.
        None,
    )?;
    rustix::net::sendto(
        &sock,
        &request(),
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut dumped = Dumped::default();
    while !dumped.done {
        // With TRUNC the second count is the datagram's whole length, so a cut one is seen even
        // when the cut falls between two messages.
        let (got, whole) = rustix::net::recv(&sock, &mut buf[..], RecvFlags::TRUNC)?;
        if got == 0 {
            return Err(io::Error::other(
                "netlink: the link dump ended without its end",
            ));
        }
        if whole > got {
            return Err(malformed("a reply larger than the receive buffer"));
        }
        let step = parse(buf.get(..got).unwrap_or_default(), names)?;
        dumped.done = step.done;
        dumped.interrupted |= step.interrupted;
    }
    Ok(dumped)
}

/// `RTM_GETLINK` with `NLM_F_DUMP`, for every family.
fn request() -> [u8; NLMSG_HEADER + IFINFOMSG] {
    let mut req = [0u8; NLMSG_HEADER + IFINFOMSG];
    req[0..4].copy_from_slice(&((NLMSG_HEADER + IFINFOMSG) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&SEQ.to_ne_bytes());
    req
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"))
}

/// The messages of one `recv`: names of `RTM_NEWLINK`s appended to `names`.
fn parse(mut bytes: &[u8], names: &mut Vec<String>) -> io::Result<Dumped> {
    let mut dumped = Dumped::default();
    while bytes.len() >= NLMSG_HEADER {
        let header = || malformed("a message header");
        let len = u32_at(bytes, 0).ok_or_else(header)? as usize;
        let kind = u16_at(bytes, 4).ok_or_else(header)?;
        let flags = u16_at(bytes, 6).ok_or_else(header)?;
        let seq = u32_at(bytes, 8).ok_or_else(header)?;
        if len < NLMSG_HEADER || len > bytes.len() {
            return Err(malformed("a message longer than what came"));
        }
        let payload = &bytes[NLMSG_HEADER..len];
        bytes = bytes.get(align4(len)..).unwrap_or_default();
        if seq != SEQ {
            continue;
        }
        dumped.interrupted |= flags & NLM_F_DUMP_INTR != 0;
        match kind {
            // A dump's end carries its outcome: a failed dump ends early, and what came is not
            // every link.
            NLMSG_DONE => {
                errno(payload)?;
                dumped.done = true;
                return Ok(dumped);
            }
            NLMSG_ERROR => errno(payload)?,
            RTM_NEWLINK => {
                let attrs = payload.get(IFINFOMSG..).unwrap_or_default();
                link_attributes(attrs, names)?;
            }
            _ => {}
        }
    }
    Ok(dumped)
}

/// The `int` at the start of `payload`: 0, or a negated errno.
fn errno(payload: &[u8]) -> io::Result<()> {
    let code = u32_at(payload, 0).ok_or_else(|| malformed("a message without its status"))? as i32;
    match code {
        0 => Ok(()),
        negative => match negative.checked_neg().filter(|e| *e > 0) {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Err(malformed("a status that is no errno")),
        },
    }
}

/// `IFLA_IFNAME` and the `IFLA_ALT_IFNAME`s inside `IFLA_PROP_LIST`.
fn link_attributes(attrs: &[u8], names: &mut Vec<String>) -> io::Result<()> {
    for (kind, data) in attributes(attrs)? {
        match kind {
            IFLA_IFNAME => names.push(c_string(data)),
            IFLA_PROP_LIST => {
                for (inner, name) in attributes(data)? {
                    if inner == IFLA_ALT_IFNAME {
                        names.push(c_string(name));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The attributes of `bytes`: type (flags masked) and data.
fn attributes(mut bytes: &[u8]) -> io::Result<Vec<(u16, &[u8])>> {
    let mut found = Vec::new();
    while bytes.len() >= RTA_HEADER {
        let len = u16_at(bytes, 0).ok_or_else(|| malformed("an attribute"))? as usize;
        let kind = u16_at(bytes, 2).ok_or_else(|| malformed("an attribute"))? & NLA_TYPE_MASK;
        if len < RTA_HEADER || len > bytes.len() {
            return Err(malformed("an attribute longer than its message"));
        }
        found.push((kind, &bytes[RTA_HEADER..len]));
        bytes = bytes.get(align4(len)..).unwrap_or_default();
    }
    Ok(found)
}

/// A NUL-terminated name.
fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((RTA_HEADER + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HEADER + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    fn link(name: &str, altnames: &[&str]) -> Vec<u8> {
        let mut payload = vec![0u8; IFINFOMSG];
        payload.extend(attr(1, &[0u8; 6])); // IFLA_ADDRESS, skipped
        payload.extend(attr(IFLA_IFNAME, format!("{name}\0").as_bytes()));
        let props: Vec<u8> = altnames
            .iter()
            .flat_map(|a| attr(IFLA_ALT_IFNAME, format!("{a}\0").as_bytes()))
            .collect();
        // Nested, as the kernel marks it.
        payload.extend(attr(IFLA_PROP_LIST | 0x8000, &props));
        message(RTM_NEWLINK, 0x2, SEQ, &payload)
    }

    #[test]
    fn names_and_alternative_names_until_the_dump_is_done() {
        let mut bytes = link("lo", &[]);
        bytes.extend(link("eth0", &["enp0s3", "net9"]));
        // Another request's answer on the socket: not ours.
        bytes.extend(message(
            RTM_NEWLINK,
            0,
            SEQ + 1,
            &link("other", &[])[NLMSG_HEADER..],
        ));
        let mut names = Vec::new();
        let first = parse(&bytes, &mut names).unwrap();
        assert_eq!(first, Dumped::default(), "more to come");
        let last = parse(
            &message(NLMSG_DONE, 0x2, SEQ, &0i32.to_ne_bytes()),
            &mut names,
        )
        .unwrap();
        assert!(last.done && !last.interrupted);
        assert_eq!(names, ["lo", "eth0", "enp0s3", "net9"]);
    }

    #[test]
    fn an_error_an_interruption_and_malformed_input_are_told() {
        let mut names = Vec::new();
        let eperm = message(NLMSG_ERROR, 0, SEQ, &(-1i32).to_ne_bytes());
        assert_eq!(
            parse(&eperm, &mut names).unwrap_err().raw_os_error(),
            Some(1)
        );
        let interrupted = message(NLMSG_DONE, NLM_F_DUMP_INTR, SEQ, &0i32.to_ne_bytes());
        assert!(parse(&interrupted, &mut names).unwrap().interrupted);
        // A dump that failed says so in its end (here EMSGSIZE, 90): not a complete list.
        let failed = message(NLMSG_DONE, 0x2, SEQ, &(-90i32).to_ne_bytes());
        assert_eq!(
            parse(&failed, &mut names).unwrap_err().raw_os_error(),
            Some(90)
        );
        let positive = message(NLMSG_ERROR, 0, SEQ, &5i32.to_ne_bytes());
        assert!(parse(&positive, &mut names).is_err());
        // A header claiming more than came, an attribute longer than its message.
        let mut short = link("eth0", &[]);
        short.truncate(NLMSG_HEADER + 4);
        assert!(parse(&short, &mut names).is_err());
        let mut bad = vec![0u8; IFINFOMSG];
        bad.extend_from_slice(&200u16.to_ne_bytes());
        bad.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        assert!(parse(&message(RTM_NEWLINK, 0, SEQ, &bad), &mut names).is_err());
        assert!(names.is_empty());
    }

    /// The layout written out byte by byte (every little-endian Linux), not with the parser's
    /// own helpers: an `RTM_NEWLINK` for "ab" with the altname "cd", then the end.
    #[cfg(target_endian = "little")]
    #[test]
    fn a_dump_laid_out_by_hand_is_read() {
        #[rustfmt::skip]
        let bytes: [u8; 72] = [
            // nlmsghdr: len 52, type 16 (RTM_NEWLINK), flags 2 (MULTI), seq 1, pid 0
            52, 0, 0, 0, 16, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            // ifinfomsg: 16 bytes
            0, 0, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            // rtattr len 7, type 3 (IFLA_IFNAME): "ab" and its NUL, padded to 8
            7, 0, 3, 0, b'a', b'b', 0, 0,
            // rtattr len 12, type 52 | NLA_F_NESTED, holding an rtattr len 7, type 53: "cd"
            12, 0, 52, 0x80, 7, 0, 53, 0, b'c', b'd', 0, 0,
            // nlmsghdr: len 20, type 3 (DONE), flags 2, seq 1, pid 0; then the int 0
            20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut names = Vec::new();
        assert!(parse(&bytes, &mut names).unwrap().done);
        assert_eq!(names, ["ab", "cd"]);
    }

    #[test]
    fn the_test_s_own_namespace_has_lo() {
        assert!(link_names().unwrap().contains(&"lo".to_owned()));
    }
}
