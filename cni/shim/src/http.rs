//! One HTTP/1.1 exchange with the daemon: the request bytes, and the status and body of the
//! whole response: as long as its `content-length` says, in chunks (upstream's Go daemon chunks
//! a long answer), or up to the daemon's close (`connection: close`).
//!
//! Both clients of the daemon read answers with this file: `multus-shim` (this crate, without
//! std) and `multus` (cni/src/shim.rs includes it with `#[path]`: the shim is a workspace of its
//! own, which the main workspace cannot depend on). It needs `core`, `alloc` and `httparse`.

use alloc::borrow::Cow;
use alloc::format;
use alloc::vec::Vec;

/// `method uri` with `body`, asking the daemon to close the connection after its answer.
pub fn request(method: &str, uri: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "{method} {uri} HTTP/1.1\r\nhost: multus\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body);
    request
}

/// How a response's body ends.
enum Framing {
    /// After `content-length` bytes (the first such header).
    Length(usize),
    /// With the last chunk.
    Chunked,
    /// At the daemon's close.
    Close,
}

/// A response's head, as far as the clients read it.
struct Head {
    /// Bytes up to the body.
    len: usize,
    status: Option<u16>,
    framing: Framing,
}

/// The head of `bytes`, `None` while it has not all come; the error says what is wrong with it.
fn head(bytes: &[u8]) -> Result<Option<Head>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("not an HTTP response"),
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let framing = match (header("transfer-encoding"), header("content-length")) {
        // Chunking wins over a length (RFC 9112 §6.3).
        (Some(te), _) if te.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
        (Some(_), _) => return Err("a transfer-encoding other than chunked"),
        (None, Some(value)) => Framing::Length(
            core::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("unreadable content-length")?,
        ),
        (None, None) => Framing::Close,
    };
    Ok(Some(Head {
        len,
        status: response.code,
        framing,
    }))
}

/// A chunked body, decoded; `None` while it has not all come.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut body = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("unreadable chunk size"),
        };
        if size == 0 {
            return Ok(Some(body));
        }
        // The chunk and the CRLF after it; a size near usize::MAX must not overflow.
        let Some((chunk, after)) = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .and_then(|end| Some((rest.get(start..end)?, rest.get(end.checked_add(2)?..)?)))
        else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        rest = after;
    }
}

/// Whether `bytes` hold a whole response: by its `content-length`, or up to its last chunk.
/// Without either, or with a head [`parse_response`] refuses, only the daemon's close ends it.
pub fn whole(bytes: &[u8]) -> bool {
    match head(bytes) {
        Ok(Some(Head {
            len,
            framing: Framing::Length(body),
            ..
        })) => bytes.len() >= len.saturating_add(body),
        Ok(Some(Head {
            len,
            framing: Framing::Chunked,
            ..
        })) => matches!(dechunk(bytes.get(len..).unwrap_or_default()), Ok(Some(_))),
        _ => false,
    }
}

/// Status and body of a whole response; the error says what was wrong with it.
pub fn parse_response(bytes: &[u8]) -> Result<(u16, Cow<'_, [u8]>), &'static str> {
    let head = head(bytes)?.ok_or("the connection closed in its head")?;
    let status = head.status.ok_or("no status")?;
    let rest = bytes.get(head.len..).unwrap_or_default();
    let body = match head.framing {
        Framing::Length(len) => {
            Cow::Borrowed(rest.get(..len).ok_or("the connection closed in its body")?)
        }
        Framing::Chunked => Cow::Owned(dechunk(rest)?.ok_or("the connection closed in a chunk")?),
        Framing::Close => Cow::Borrowed(rest),
    };
    Ok((status, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_its_length_and_asks_for_the_close() {
        let request = alloc::string::String::from_utf8(request("POST", "/cni", b"{}")).unwrap();
        assert!(request.starts_with("POST /cni HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\ncontent-length: 2\r\n"), "{request}");
        assert!(request.contains("\r\nconnection: close\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{}"), "{request}");
    }

    #[test]
    fn reads_a_response_by_its_length_its_chunks_or_to_the_close() {
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more";
        assert_eq!(parse_response(sized).unwrap(), (200, b"hello"[..].into()));
        let chunked = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nab\n\r\n2\r\ncd\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (400, b"ab\ncd"[..].into())
        );
        let closed = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"code\":7}";
        assert_eq!(
            parse_response(closed).unwrap(),
            (400, b"{\"code\":7}"[..].into())
        );
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_response(empty).unwrap(), (204, b""[..].into()));
    }

    #[test]
    fn a_response_is_whole_once_its_length_or_last_chunk_has_come() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n";
        for (bytes, whole_now) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Le"[..], false),
            (&head[..], false),
            (&[&head[..], b"hel"].concat()[..], false),
            (&[&head[..], b"hello"].concat()[..], true),
            (
                b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
                true,
            ),
            // Chunked: whole with its last chunk, whatever the length says.
            (&[&chunked[..], b"2\r\nab"].concat()[..], false),
            (&[&chunked[..], b"2\r\nab\r\n"].concat()[..], false),
            (&[&chunked[..], b"2\r\nab\r\n0\r\n\r\n"].concat()[..], true),
            // No length: only the close tells; nor does a head the parser refuses.
            (b"HTTP/1.1 400 Bad Request\r\n\r\n{\"code\":7}", false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false),
        ] {
            assert_eq!(
                whole(bytes),
                whole_now,
                "{:?}",
                alloc::string::String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn a_cut_or_strange_response_is_an_error_that_says_what() {
        for (bytes, says) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Le"[..], "in its head"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello",
                "in its body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "content-length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab",
                "in a chunk",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "chunk size",
            ),
            // The size ends the chunk one byte short of usize::MAX: the CRLF after it must not
            // overflow.
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffec\r\nab",
                "in a chunk",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab",
                "transfer-encoding",
            ),
            (b"not http at all\r\n\r\n", "not an HTTP response"),
        ] {
            let e = parse_response(bytes).unwrap_err();
            assert!(e.contains(says), "{e} should say {says}");
        }
    }
}
