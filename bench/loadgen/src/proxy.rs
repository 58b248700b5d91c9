//! A delaying HTTP/1.1 proxy in front of the registry: requests whose path
//! or body holds a marker (a user name prefix) are held for a while before
//! being passed on, the others are passed on at once. With it, a
//! `twostep-radiusd` holds many pending requests (a slow registry for some
//! users) while code logins of the others go through, to measure its memory
//! and their latency meanwhile. A held request is answered 503 after its
//! delay, never passed on. Only what the registry's clients send:
//! `Content-Length` bodies, keep-alive, no chunked encoding.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one HTTP message (head and `Content-Length` body) from `s`, with
/// `buf` holding what was read beyond the previous one. `None` at a clean
/// end of stream or on anything this proxy does not handle.
async fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if head.contains("transfer-encoding: chunked") {
                return None;
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let mut chunk = [0u8; 16384];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf.drain(..total).collect());
        }
        let mut chunk = [0u8; 16384];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The answer to a held request once its delay is over: the registry
/// "unavailable", so the RADIUS server ends the login (fail closed) without
/// the proxy holding a second connection per held request.
const HELD_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";

async fn serve(mut client: TcpStream, upstream: String, marker: Vec<u8>, delay: Duration) {
    let mut up: Option<TcpStream> = None;
    let (mut cbuf, mut ubuf) = (Vec::new(), Vec::new());
    while let Some(req) = read_message(&mut client, &mut cbuf).await {
        if req.windows(marker.len()).any(|w| w == marker.as_slice()) {
            tokio::time::sleep(delay).await;
            if client.write_all(HELD_ANSWER).await.is_err() {
                return;
            }
            continue;
        }
        if up.is_none() {
            up = TcpStream::connect(&upstream).await.ok();
        }
        let Some(u) = up.as_mut() else {
            return;
        };
        if u.write_all(&req).await.is_err() {
            return;
        }
        let Some(resp) = read_message(u, &mut ubuf).await else {
            return;
        };
        if client.write_all(&resp).await.is_err() {
            return;
        }
    }
}

/// Listens on `listen`, passes requests on to `upstream` (HOST:PORT), and
/// holds for `delay` those whose bytes contain `marker`. Runs until killed.
///
/// # Errors
/// When `listen` cannot be bound.
pub async fn run(
    listen: &str,
    upstream: &str,
    marker: &str,
    delay: Duration,
) -> std::io::Result<()> {
    let l = TcpListener::bind(listen).await?;
    loop {
        let (c, _) = l.accept().await?;
        let _ = c.set_nodelay(true);
        tokio::spawn(serve(
            c,
            upstream.to_owned(),
            marker.as_bytes().to_vec(),
            delay,
        ));
    }
}
