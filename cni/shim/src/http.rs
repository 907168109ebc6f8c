//! One HTTP/1.1 exchange with the daemon: the request bytes, and the status and body of the
//! whole response: as long as its `content-length` says, else up to the daemon's close
//! (`connection: close`).

use alloc::format;
use alloc::vec::Vec;

/// `POST /cni` with `body`, asking the daemon to close the connection after its answer.
pub fn post_cni(body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST /cni HTTP/1.1\r\nhost: multus\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body);
    request
}

/// A response's head, as far as the shim reads it.
struct Head {
    /// Bytes up to the body.
    len: usize,
    status: Option<u16>,
    /// By `content-length` (the first); `None`: the body runs to the daemon's close.
    body_len: Option<usize>,
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
    // The daemon sends whole bodies with a length; a chunked one would be another server.
    if header("transfer-encoding").is_some() {
        return Err("a transfer-encoding the daemon does not use");
    }
    let body_len = header("content-length")
        .map(|value| {
            core::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("unreadable content-length")
        })
        .transpose()?;
    Ok(Some(Head {
        len,
        status: response.code,
        body_len,
    }))
}

/// Whether `bytes` hold a whole response by its `content-length`. Without one, or with a head
/// [`parse_response`] refuses, only the daemon's close ends it.
pub fn whole(bytes: &[u8]) -> bool {
    matches!(head(bytes), Ok(Some(Head { len, body_len: Some(body), .. }))
        if bytes.len() >= len.saturating_add(body))
}

/// Status and body of a whole response; the error says what was wrong with it. `multus` has
/// its std twin (cni/src/shim.rs, which also decodes chunked bodies); tests/tests/cni_shim.rs
/// runs both binaries against one stand-in daemon.
pub fn parse_response(bytes: &[u8]) -> Result<(u16, &[u8]), &'static str> {
    let head = head(bytes)?.ok_or("the connection closed in its head")?;
    let status = head.status.ok_or("no status")?;
    let rest = bytes.get(head.len..).unwrap_or_default();
    let body = match head.body_len {
        Some(len) => rest.get(..len).ok_or("the connection closed in its body")?,
        None => rest,
    };
    Ok((status, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_post_with_its_length_and_connection_close() {
        let request = String::from_utf8(post_cni(b"{}")).unwrap();
        assert!(request.starts_with("POST /cni HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\ncontent-length: 2\r\n"), "{request}");
        assert!(request.contains("\r\nconnection: close\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{}"), "{request}");
    }

    #[test]
    fn reads_a_response_by_its_length_or_to_the_close() {
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more";
        assert_eq!(parse_response(sized).unwrap(), (200, &b"hello"[..]));
        let closed = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"code\":7}";
        assert_eq!(parse_response(closed).unwrap(), (400, &b"{\"code\":7}"[..]));
    }

    #[test]
    fn a_response_is_whole_once_its_length_has_come() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        for (bytes, whole_now) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Le"[..], false),
            (&head[..], false),
            (&[&head[..], b"hel"].concat()[..], false),
            (&[&head[..], b"hello"].concat()[..], true),
            (
                b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
                true,
            ),
            // No length, or chunked: only the close tells.
            (b"HTTP/1.1 400 Bad Request\r\n\r\n{\"code\":7}", false),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nab",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false),
        ] {
            assert_eq!(
                whole(bytes),
                whole_now,
                "{:?}",
                String::from_utf8_lossy(bytes)
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
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab",
                "transfer-encoding",
            ),
            (b"not http at all\r\n\r\n", "not an HTTP response"),
        ] {
            let e = parse_response(bytes).unwrap_err();
            assert!(e.contains(says), "{e} should say {says}");
        }
    }
}
