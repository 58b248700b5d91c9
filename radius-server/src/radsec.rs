//! RadSec (RADIUS over TLS, RFC 6614): the TLS setup from
//! `[radius.radsec]` and the framing of RADIUS over a TCP stream
//! (RFC 6613 §2.2: each packet's Length field gives where the next begins).
//! The packets go through the same checks, flow and reply cache as UDP
//! ([`crate::server`]); the shared secret is the fixed `radsec`
//! (RFC 6614 §2.3).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::{HEADER_LEN, MAX_PACKET_LEN};
use crate::Error;

/// The shared secret of every RadSec connection (RFC 6614 §2.3).
pub const RADSEC_SECRET: &[u8] = b"radsec";
/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the rest of a packet may take once its header arrived.
pub const PACKET_TIMEOUT: Duration = Duration::from_secs(10);
/// RadSec connections served at once (each open one holds a file
/// descriptor and a task); more are closed at once, logged rate-limited.
pub const MAX_CONNECTIONS: usize = 1024;
/// A connection that sends nothing for this long is closed (RFC 6614 §2.6
/// lets either side close idle connections).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

fn fail(what: &str, path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Config(format!("[radius.radsec] {what} {}: {e}", path.display()))
}

/// Builds the TLS server configuration: the certificate chain and key of
/// this server, and client certificates required and verified against the
/// CA certificates of `ca_file`. The key file must be a secret file
/// ([`twostep_config::check_secret_file`]: owned by root or the running
/// user, mode 0600).
///
/// # Errors
/// [`Error::Config`] naming the file that cannot be read or used.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    ca_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    // The error names the file.
    twostep_config::check_secret_file(key_file)
        .map_err(|e| Error::Config(format!("[radius.radsec] key_file: {e}")))?;
    load_server_config(cert_file, key_file, ca_file)
}

/// [`server_config`] without the key file's owner and mode check (which
/// `twostep doctor` makes for the service user on its own).
///
/// # Errors
/// [`Error::Config`] naming the file that cannot be read or used.
pub fn load_server_config(
    cert_file: &Path,
    key_file: &Path,
    ca_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = read_certs(cert_file).map_err(|e| fail("cert_file", cert_file, &e))?;
    let key = read_key(key_file).map_err(|e| fail("key_file", key_file, &e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in read_certs(ca_file).map_err(|e| fail("ca_file", ca_file, &e))? {
        roots.add(ca).map_err(|e| fail("ca_file", ca_file, &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| fail("ca_file", ca_file, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("[radius.radsec]: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| fail("cert_file/key_file", cert_file, &e))?;
    Ok(Arc::new(config))
}

/// Builds the TLS client configuration for an upstream reached over
/// RadSec: the upstream's certificate verified against `ca_file`, this
/// server's certificate and key (a secret file, as for [`server_config`])
/// presented.
///
/// # Errors
/// [`Error::Config`] naming the file that cannot be read or used.
pub fn client_config(
    cert_file: &Path,
    key_file: &Path,
    ca_file: &Path,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let fail = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Error::Config(format!(
            "[radius.upstream.radsec] {what} {}: {e}",
            path.display()
        ))
    };
    twostep_config::check_secret_file(key_file)
        .map_err(|e| Error::Config(format!("[radius.upstream.radsec] key_file: {e}")))?;
    let certs = read_certs(cert_file).map_err(|e| fail("cert_file", cert_file, &e))?;
    let key = read_key(key_file).map_err(|e| fail("key_file", key_file, &e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in read_certs(ca_file).map_err(|e| fail("ca_file", ca_file, &e))? {
        roots.add(ca).map_err(|e| fail("ca_file", ca_file, &e))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(format!("[radius.upstream.radsec]: {e}")))?
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .map_err(|e| fail("cert_file/key_file", cert_file, &e))?;
    Ok(Arc::new(config))
}

fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no PEM private key".to_owned())
}

fn read_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate".into());
    }
    Ok(certs)
}

/// What reading the next packet of a stream gave.
#[derive(Debug)]
pub enum Frame {
    /// One packet, header included (its Length is checked, its contents
    /// are not).
    Packet(Vec<u8>),
    /// The peer closed the connection between packets.
    Closed,
    /// Nothing arrived for the idle time.
    Idle,
    /// The stream cannot go on: a Length outside 20..=4096, a packet cut
    /// short, a deadline passed or a read error. One line for the log.
    Broken(String),
}

/// Reads one RADIUS packet from `stream`: the 4-octet header within
/// `idle` (an end of stream there is [`Frame::Closed`]), then the rest
/// that its Length field (RFC 2865 §3: 20 to 4096 octets) announces within
/// `deadline`.
pub async fn read_packet<R: AsyncRead + Unpin>(
    stream: &mut R,
    idle: Duration,
    deadline: Duration,
) -> Frame {
    let mut header = [0u8; 4];
    let first = match tokio::time::timeout(idle, stream.read(&mut header)).await {
        Err(_) => return Frame::Idle,
        Ok(Err(e)) => return Frame::Broken(format!("read failed: {e}")),
        Ok(Ok(0)) => return Frame::Closed,
        Ok(Ok(n)) => n,
    };
    let rest = async {
        stream.read_exact(&mut header[first..]).await?;
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
            return Ok(Err(format!(
                "malformed packet: Length {len} outside {HEADER_LEN}..={MAX_PACKET_LEN}"
            )));
        }
        let mut packet = vec![0u8; len];
        packet[..4].copy_from_slice(&header);
        stream.read_exact(&mut packet[4..]).await?;
        Ok::<_, std::io::Error>(Ok(packet))
    };
    match tokio::time::timeout(deadline, rest).await {
        Err(_) => Frame::Broken(format!(
            "packet not complete within {} s",
            deadline.as_secs()
        )),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Frame::Broken("connection closed inside a packet".into())
        }
        Ok(Err(e)) => Frame::Broken(format!("read failed: {e}")),
        Ok(Ok(Err(reason))) => Frame::Broken(reason),
        Ok(Ok(Ok(packet))) => Frame::Packet(packet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut stream = bytes;
        let mut out = Vec::new();
        loop {
            let f = read_packet(&mut stream, IDLE_TIMEOUT, PACKET_TIMEOUT).await;
            let end = !matches!(f, Frame::Packet(_));
            out.push(f);
            if end {
                return out;
            }
        }
    }

    fn packet(len: u16) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(len)];
        p[0] = 1;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }

    #[tokio::test]
    async fn packets_follow_each_other_by_their_length() {
        let mut bytes = packet(20);
        bytes.extend(packet(38));
        let f = frames(&bytes).await;
        assert!(matches!(&f[0], Frame::Packet(p) if p.len() == 20));
        assert!(matches!(&f[1], Frame::Packet(p) if p.len() == 38));
        assert!(matches!(f[2], Frame::Closed));
    }

    #[tokio::test]
    async fn a_length_out_of_bounds_or_a_cut_packet_breaks_the_stream() {
        for (bytes, want) in [
            (packet(19), "Length 19 outside 20..=4096"),
            (
                {
                    let mut p = packet(20);
                    p[2..4].copy_from_slice(&4097u16.to_be_bytes());
                    p
                },
                "Length 4097 outside",
            ),
            (
                packet(30)[..25].to_vec(),
                "connection closed inside a packet",
            ),
            (vec![1, 0], "connection closed inside a packet"),
        ] {
            let f = frames(&bytes).await;
            assert!(
                matches!(&f[0], Frame::Broken(r) if r.contains(want)),
                "{f:?} for {want}"
            );
        }
    }

    #[tokio::test]
    async fn a_packet_that_stalls_is_cut_at_the_deadline() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, &[1, 0, 0, 30])
            .await
            .unwrap();
        let f = read_packet(&mut server, IDLE_TIMEOUT, Duration::from_millis(50)).await;
        assert!(
            matches!(&f, Frame::Broken(r) if r.contains("not complete")),
            "{f:?}"
        );
    }
}
