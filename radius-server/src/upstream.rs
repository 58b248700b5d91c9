//! The primary password check: a PAP proxy to an upstream RADIUS server
//! (`[[radius.upstream]]`), with Message-Authenticator on both legs.
//!
//! One fresh UDP socket per check, connected to the upstream (only its
//! answers are read); the same packet (same Identifier and Request
//! Authenticator) is retransmitted after each `timeout`, `retries` times
//! (RFC 5080 §2.2.1), so the whole check ends within
//! [`Upstream::deadline`](crate::settings::Upstream::deadline).
//!
//! An upstream with `[radius.upstream.radsec]` is reached over RadSec
//! instead (RFC 6614): one TLS connection per check, with this server's
//! client certificate and the secret `radsec`, the request sent once (TCP
//! carries it; RFC 6613 §2.6.1) and the whole check, connection included,
//! bounded by the same deadline. Its answers are authenticated by TLS:
//! Message-Authenticator is checked when present, not required.

use rand::Rng;
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

use crate::radsec::{read_packet, Frame};
use crate::settings::{Upstream, UpstreamTls};
use crate::wire::{self, attr, code, MessageAuth, RawAttr, RawPacket};
use crate::Error;

/// Attributes of the NAS's request passed on to the upstream server.
const FORWARDED: &[u8] = &[
    attr::NAS_IP_ADDRESS,
    attr::NAS_PORT,
    attr::SERVICE_TYPE,
    attr::CALLED_STATION_ID,
    attr::CALLING_STATION_ID,
    attr::NAS_IDENTIFIER,
    attr::NAS_PORT_TYPE,
    attr::NAS_IPV6_ADDRESS,
];

/// Attributes of the upstream Access-Accept NOT copied to our final
/// Access-Accept: hop-by-hop or ours to set.
const NOT_COPIED: &[u8] = &[
    attr::MESSAGE_AUTHENTICATOR,
    attr::PROXY_STATE,
    attr::STATE,
    attr::EAP_MESSAGE,
    attr::REPLY_MESSAGE,
];

/// The primary server's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryResult {
    /// Access-Accept, with the attributes to copy to our final Access-Accept
    /// (Class, Filter-Id, Framed-*, Vendor-Specific, ...), in order.
    Accept(Vec<RawAttr>),
    /// Access-Reject (or an Access-Challenge, which a PAP proxy cannot answer).
    Reject,
    /// No valid answer in time; the reason is for the log.
    Unreachable(String),
}

/// The attributes of an upstream Access-Accept to copy, in wire order.
pub fn attributes_to_copy(accept: &RawPacket) -> Vec<RawAttr> {
    accept
        .attrs
        .iter()
        .filter(|a| !NOT_COPIED.contains(&a.typ))
        .cloned()
        .collect()
}

/// Builds the upstream Access-Request: User-Name, the password hidden with
/// the upstream's secret, the NAS attributes in [`FORWARDED`] and
/// Message-Authenticator (first).
///
/// # Errors
/// [`Error::Encode`] (password over 128 octets, oversized packet).
pub fn build_request(
    identifier: u8,
    user: &str,
    password: &[u8],
    original: &RawPacket,
    secret: &[u8],
) -> Result<(Vec<u8>, [u8; 16]), Error> {
    let mut attrs = vec![RawAttr {
        typ: attr::USER_NAME,
        value: user.as_bytes().to_vec(),
    }];
    attrs.extend(
        original
            .attrs
            .iter()
            .filter(|a| FORWARDED.contains(&a.typ))
            .cloned(),
    );
    wire::build_access_request(identifier, &attrs, password, secret)
}

/// Checks one datagram from the upstream as the answer to our request;
/// Message-Authenticator is checked when present and required when
/// `require_ma`. `Ok(None)`: not an answer to this request (ignored, keep
/// waiting).
///
/// # Errors
/// The reason a reply to our Identifier is unacceptable: bad
/// authenticators, no Message-Authenticator, unexpected code.
pub fn interpret(
    datagram: &[u8],
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_ma: bool,
) -> Result<Option<PrimaryResult>, Error> {
    let reply = wire::parse(datagram)?;
    if reply.identifier != identifier {
        return Ok(None);
    }
    let ma = wire::check_response(&reply.bytes, request_authenticator, secret)?;
    if require_ma && ma != MessageAuth::Valid {
        return Err(Error::Malformed(
            "upstream reply without Message-Authenticator (CVE-2024-3596); make the upstream send it, or set require_message_authenticator = false for it".into(),
        ));
    }
    match reply.code {
        code::ACCESS_ACCEPT => Ok(Some(PrimaryResult::Accept(attributes_to_copy(&reply)))),
        code::ACCESS_REJECT | code::ACCESS_CHALLENGE => Ok(Some(PrimaryResult::Reject)),
        other => Err(Error::Malformed(format!("upstream answered code {other}"))),
    }
}

/// Checks `user`'s primary `password` with `upstream`.
pub async fn check(
    upstream: &Upstream,
    user: &str,
    password: &[u8],
    original: &RawPacket,
) -> PrimaryResult {
    let identifier: u8 = rand::thread_rng().gen();
    let secret = upstream.secret.expose();
    let (bytes, ra) = match build_request(identifier, user, password, original, secret) {
        Ok(x) => x,
        Err(e) => return PrimaryResult::Unreachable(e.to_string()),
    };
    if let Some(tls) = &upstream.radsec {
        return check_radsec(upstream, tls, &bytes, identifier, &ra).await;
    }
    let bind: SocketAddr = if upstream.address.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return PrimaryResult::Unreachable(format!("bind: {e}")),
    };
    if let Err(e) = sock.connect(upstream.address).await {
        return PrimaryResult::Unreachable(format!("connect {}: {e}", upstream.address));
    }
    let mut buf = vec![0u8; wire::MAX_PACKET_LEN];
    let mut last_error = String::from("no answer");
    for attempt in 0..=upstream.retries {
        if let Err(e) = sock.send(&bytes).await {
            last_error = format!("send: {e}");
        }
        tracing::debug!(upstream = %upstream.name, attempt, "Access-Request sent upstream");
        let until = Instant::now() + upstream.timeout;
        loop {
            match timeout_at(until, sock.recv(&mut buf)).await {
                Err(_) => break,
                // ICMP port unreachable shows up as an error on a connected socket.
                Ok(Err(e)) => {
                    last_error = format!("receive: {e}");
                    tokio::time::sleep_until(until).await;
                    break;
                }
                Ok(Ok(n)) => match interpret(
                    &buf[..n],
                    identifier,
                    &ra,
                    secret,
                    upstream.require_message_authenticator,
                ) {
                    Ok(Some(r)) => return r,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(upstream = %upstream.name, "ignoring upstream reply: {e}");
                        last_error = e.to_string();
                    }
                },
            }
        }
    }
    PrimaryResult::Unreachable(format!(
        "{} ({}) after {} tries: {last_error}",
        upstream.name,
        upstream.address,
        upstream.retries + 1
    ))
}

/// The check over RadSec: connect, TLS handshake, the request, its answer,
/// all within [`Upstream::deadline`].
async fn check_radsec(
    upstream: &Upstream,
    tls: &UpstreamTls,
    request: &[u8],
    identifier: u8,
    ra: &[u8; 16],
) -> PrimaryResult {
    let deadline = upstream.deadline();
    let until = Instant::now() + deadline;
    let work = async {
        let tcp = TcpStream::connect(upstream.address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut stream = tokio_rustls::TlsConnector::from(tls.config.clone())
            .connect(tls.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        tracing::debug!(upstream = %upstream.name, "Access-Request sent upstream over RadSec");
        loop {
            match read_packet(&mut stream, deadline, deadline).await {
                Frame::Packet(p) => match interpret(
                    &p,
                    identifier,
                    ra,
                    upstream.secret.expose(),
                    // TLS authenticates the answer (the reason for
                    // Message-Authenticator over UDP, CVE-2024-3596);
                    // checked when present.
                    false,
                ) {
                    Ok(Some(r)) => return Ok(r),
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                },
                Frame::Closed => return Err("connection closed before the answer".to_owned()),
                Frame::Idle => return Err("no answer".to_owned()),
                Frame::Broken(why) => return Err(why),
            }
        }
    };
    let failed = |why: &str| {
        PrimaryResult::Unreachable(format!(
            "{} ({}) over RadSec: {why}",
            upstream.name, upstream.address
        ))
    };
    match timeout_at(until, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => failed(&e),
        Err(_) => failed(&format!("no answer within {} s", deadline.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_forwards_nas_attributes_and_hides_password() {
        let (orig, _) = wire::build_access_request(
            1,
            &[
                RawAttr {
                    typ: attr::USER_NAME,
                    value: b"ignored".to_vec(),
                },
                RawAttr {
                    typ: attr::NAS_IDENTIFIER,
                    value: b"vpn1".to_vec(),
                },
                RawAttr {
                    typ: attr::CALLING_STATION_ID,
                    value: b"192.0.2.7".to_vec(),
                },
                RawAttr {
                    typ: attr::PROXY_STATE,
                    value: b"ps".to_vec(),
                },
            ],
            b"pw",
            b"nas-secret",
        )
        .unwrap();
        let orig = wire::parse(&orig).unwrap();
        let (bytes, ra) = build_request(7, "alice", b"secret pw", &orig, b"up").unwrap();
        let p = wire::parse(&bytes).unwrap();
        assert_eq!(p.identifier, 7);
        assert_eq!(p.attrs[0].typ, attr::MESSAGE_AUTHENTICATOR);
        assert_eq!(p.first(attr::USER_NAME), Some(&b"alice"[..]));
        assert_eq!(p.first(attr::NAS_IDENTIFIER), Some(&b"vpn1"[..]));
        assert_eq!(p.first(attr::CALLING_STATION_ID), Some(&b"192.0.2.7"[..]));
        assert_eq!(p.first(attr::PROXY_STATE), None);
        let pw =
            wire::decode_user_password(p.first(attr::USER_PASSWORD).unwrap(), b"up", &ra).unwrap();
        assert_eq!(pw.as_slice(), b"secret pw");
        assert_eq!(
            wire::check_request_message_authenticator(&bytes, b"up").unwrap(),
            MessageAuth::Valid
        );
    }

    #[test]
    fn accept_attributes_are_copied_in_order() {
        let (req, ra) = wire::build_access_request(5, &[], b"pw", b"up").unwrap();
        let req = wire::parse(&req).unwrap();
        assert_eq!(req.authenticator, ra);
        let attrs = vec![
            RawAttr {
                typ: attr::CLASS,
                value: b"c1".to_vec(),
            },
            RawAttr {
                typ: 11,
                value: b"filter".to_vec(),
            },
            RawAttr {
                typ: attr::REPLY_MESSAGE,
                value: b"hello".to_vec(),
            },
            RawAttr {
                typ: 26,
                value: vec![0, 0, 0, 9, 1, 4, b'a', b'b'],
            },
            RawAttr {
                typ: attr::CLASS,
                value: b"c2".to_vec(),
            },
        ];
        let reply = wire::build_reply(&req, code::ACCESS_ACCEPT, &attrs, b"up").unwrap();
        match interpret(&reply, 5, &ra, b"up", true).unwrap() {
            Some(PrimaryResult::Accept(copied)) => {
                let types: Vec<u8> = copied.iter().map(|a| a.typ).collect();
                assert_eq!(types, vec![attr::CLASS, 11, 26, attr::CLASS]);
                assert_eq!(copied[3].value, b"c2");
            }
            other => panic!("{other:?}"),
        }
        // Other Identifier: not ours.
        assert_eq!(interpret(&reply, 6, &ra, b"up", true).unwrap(), None);
        // Wrong secret: refused.
        assert!(interpret(&reply, 5, &ra, b"other", true).is_err());
        let reject = wire::build_reply(&req, code::ACCESS_REJECT, &[], b"up").unwrap();
        assert_eq!(
            interpret(&reject, 5, &ra, b"up", true).unwrap(),
            Some(PrimaryResult::Reject)
        );
    }

    #[test]
    fn reply_without_message_authenticator_only_when_allowed() {
        use radius::core::packet::Packet;
        let (req, ra) = wire::build_access_request(5, &[], b"pw", b"up").unwrap();
        let req = Packet::decode(&req, b"up").unwrap();
        let mut reply = req.make_response_packet(radius::core::code::Code::AccessAccept);
        reply.add(radius::core::avp::AVP::from_bytes(attr::CLASS, b"c"));
        let bytes = reply.encode().unwrap();
        assert!(interpret(&bytes, 5, &ra, b"up", true).is_err());
        assert_eq!(
            interpret(&bytes, 5, &ra, b"up", false).unwrap(),
            Some(PrimaryResult::Accept(vec![RawAttr {
                typ: attr::CLASS,
                value: b"c".to_vec()
            }]))
        );
    }
}
