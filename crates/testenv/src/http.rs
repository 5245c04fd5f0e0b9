//! A minimal HTTP/1.0 GET over a tokio `TcpStream`, only for probing our own loopback registries
//! (health and manifest checks). HTTP/1.0 without keep-alive: the server closes after the
//! response, so the body is everything after the header block (no chunking).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Registry answers we read are tiny (errors, manifests); refuse anything absurd.
const MAX_RESPONSE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Authorization` header value for HTTP basic auth.
pub(crate) fn basic_auth(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// GET `path` from `addr`; `headers` are sent as given.
pub(crate) async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Response> {
    let mut request =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: hooktest-testenv\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE)
            .read_to_end(&mut buf)
            .await?;
        parse(&buf)
    };
    tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("GET http://{addr}{path} timed out"),
        )
    })?
}

/// Parses a complete HTTP/1.x response.
pub(crate) fn parse(raw: &[u8]) -> io::Result<Response> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad HTTP response: {what}"),
        )
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not HTTP/1.x"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status code"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_registry_answer() {
        let raw = b"HTTP/1.0 401 Unauthorized\r\nContent-Type: application/json\r\nWww-Authenticate: Basic realm=\"x\"\r\n\r\n{\"errors\":[]}";
        let r = parse(raw).unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"x\""));
        assert_eq!(r.body, b"{\"errors\":[]}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }

    #[test]
    fn basic_auth_header() {
        assert_eq!(basic_auth("hookuser", "pw"), "Basic aG9va3VzZXI6cHc=");
    }

    #[tokio::test]
    async fn get_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nhello")
                .await
                .unwrap();
            req
        });
        let r = get(addr, "/v2/", &[("Accept", "x/y")]).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
        let req = server.await.unwrap();
        assert!(req.starts_with("GET /v2/ HTTP/1.0\r\n"), "{req}");
        assert!(req.contains("\r\nAccept: x/y\r\n"), "{req}");
    }
}
