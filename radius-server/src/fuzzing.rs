//! The synchronous packet-handling path in one call, for the malformed
//! packet corpus (`tests/malformed.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/packet.rs`): classification, Message-Authenticator,
//! request parsing with password decoding, State opening and reply
//! assembly. Registry and primary calls are left out (they are I/O).

use ipnet::IpNet;
use std::net::SocketAddr;
use twostep_config::{RadiusMode, Secret};

use crate::inbound::{classify, Inbound};
use crate::request::{self, Step};
use crate::settings::Client;
use crate::state::{self, StateKey};
use crate::wire::{self, attr, code, RawAttr};

/// Shared secret of the [`clients`].
pub const SECRET: &[u8] = b"fuzzing-secret";

/// Three clients: 127.0.0.1 `otp-only` requiring Message-Authenticator,
/// 127.0.0.2 legacy `append`, 127.0.0.3 legacy `challenge`.
pub fn clients() -> Vec<Client> {
    let c = |name: &str, net: &str, mode, require| Client {
        name: name.into(),
        network: net.parse::<IpNet>().expect("valid network"),
        secret: Secret::new(SECRET.to_vec()),
        mode,
        delimiter: ",".into(),
        require_message_authenticator: require,
        primary: None,
    };
    vec![
        c("strict", "127.0.0.1/32", RadiusMode::OtpOnly, true),
        c("append", "127.0.0.2/32", RadiusMode::Append, false),
        c("challenge", "127.0.0.3/32", RadiusMode::Challenge, false),
    ]
}

/// What the synchronous path did with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Source unknown.
    UnknownSource,
    /// Dropped without an answer (malformed, Message-Authenticator).
    Dropped(String),
    /// Answered (Status-Server, or an Access-Reject standing in for the
    /// registry's answer) with these bytes.
    Answered(Vec<u8>),
}

/// Runs one datagram from `source` through the synchronous path. Must
/// never panic, whatever the bytes.
pub fn exercise(clients: &[Client], datagram: &[u8], source: SocketAddr) -> Outcome {
    match classify(datagram, source, clients) {
        Inbound::UnknownSource => Outcome::UnknownSource,
        Inbound::Drop { reason, .. } => Outcome::Dropped(reason),
        Inbound::StatusServer { client, packet } => answered(wire::build_reply(
            &packet,
            code::ACCESS_ACCEPT,
            &[],
            client.secret.expose(),
        )),
        Inbound::AccessRequest { client, packet } => {
            let message = match request::parse(client, &packet) {
                Err(r) => r.message.unwrap_or("refused").to_owned(),
                Ok(req) => {
                    if let Step::Code { state: Some(s), .. } = &req.step {
                        let key = StateKey::from_bytes(&[7; 32]);
                        let _ = state::open(&key, &client.name, req.user.as_bytes(), 0, s);
                    }
                    "code refused".to_owned()
                }
            };
            let attrs = wire::reply_messages(&message);
            answered(wire::build_reply(
                &packet,
                code::ACCESS_REJECT,
                &attrs,
                client.secret.expose(),
            ))
        }
    }
}

/// A reply that does not encode (a request full of Proxy-State whose echo
/// exceeds 4096 octets) is dropped, as the server does.
fn answered(reply: Result<Vec<u8>, crate::Error>) -> Outcome {
    match reply {
        Ok(bytes) => Outcome::Answered(bytes),
        Err(e) => Outcome::Dropped(e.to_string()),
    }
}

/// A packet from raw parts, Length field set from the content; the
/// Request Authenticator is 16 × 0x5a. Panics on attributes over 253 octets.
pub fn raw(code: u8, id: u8, attrs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![code, id, 0, 0];
    b.extend([0x5a; 16]);
    for (t, v) in attrs {
        b.push(*t);
        b.push((v.len() + 2) as u8);
        b.extend_from_slice(v);
    }
    let len = b.len() as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// `b` with its Length field (RFC 2865 §3) set to `len`, whatever the content.
pub fn with_len(mut b: Vec<u8>, len: u16) -> Vec<u8> {
    b[2..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// An Access-Request from the [`clients`]' shared secret with `attrs`, the
/// User-Password hidden per RFC 2865 §5.2 and a valid Message-Authenticator.
pub fn signed(attrs: &[(u8, &[u8])], password: &[u8]) -> Vec<u8> {
    let attrs: Vec<RawAttr> = attrs
        .iter()
        .map(|(t, v)| RawAttr {
            typ: *t,
            value: v.to_vec(),
        })
        .collect();
    wire::build_access_request(42, &attrs, password, SECRET)
        .unwrap()
        .0
}

/// The malformed-packet corpus: datagrams that must be dropped without an
/// answer (from a client that requires Message-Authenticator), by name:
/// short, wrong Length, attribute length 0/1, overlong attributes,
/// Message-Authenticator faults, and deterministic garbage.
pub fn malformed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let ok = raw(1, 1, &[(attr::USER_NAME, b"alice")]);
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one octet", vec![1]),
        ("19 octets", vec![1; 19]),
        ("length 0", with_len(ok.clone(), 0)),
        ("length 19", with_len(ok.clone(), 19)),
        (
            "length beyond datagram",
            with_len(ok.clone(), ok.len() as u16 + 1),
        ),
        ("length 4097", with_len(ok.clone(), 4097)),
        ("length 65535", with_len(ok.clone(), 65535)),
        ("attribute length 0", {
            let mut b = raw(1, 1, &[(attr::USER_NAME, b"alice")]);
            b[21] = 0;
            b
        }),
        ("attribute length 1", {
            let mut b = raw(1, 1, &[(attr::USER_NAME, b"alice")]);
            b[21] = 1;
            b
        }),
        ("overlong attribute", {
            let mut b = raw(1, 1, &[(attr::USER_NAME, b"alice")]);
            b[21] = 255;
            b
        }),
        ("attribute past Length", {
            let b = raw(
                1,
                1,
                &[(attr::USER_NAME, b"alice"), (attr::NAS_PORT, &[0, 0, 0, 1])],
            );
            let l = b.len() as u16 - 2;
            with_len(b, l)
        }),
        ("lone type octet", {
            let mut b = raw(1, 1, &[(attr::USER_NAME, b"alice")]);
            b.push(attr::NAS_PORT);
            let l = b.len() as u16;
            with_len(b, l)
        }),
        (
            "accounting request",
            raw(4, 1, &[(attr::USER_NAME, b"alice")]),
        ),
        ("access-accept sent to server", raw(2, 1, &[])),
        ("code 0", raw(0, 1, &[])),
        ("code 255", raw(255, 1, &[])),
        (
            "Message-Authenticator of 15 octets",
            raw(1, 1, &[(attr::MESSAGE_AUTHENTICATOR, &[0; 15])]),
        ),
        (
            "Message-Authenticator of 17 octets",
            raw(1, 1, &[(attr::MESSAGE_AUTHENTICATOR, &[0; 17])]),
        ),
        (
            "Message-Authenticator empty",
            raw(1, 1, &[(attr::MESSAGE_AUTHENTICATOR, &[])]),
        ),
        (
            "Message-Authenticator zero",
            raw(
                1,
                1,
                &[
                    (attr::MESSAGE_AUTHENTICATOR, &[0; 16]),
                    (attr::USER_NAME, b"alice"),
                ],
            ),
        ),
        ("two Message-Authenticators", {
            let mut b = signed(&[(attr::USER_NAME, b"alice")], b"123456");
            b.extend([attr::MESSAGE_AUTHENTICATOR, 18]);
            b.extend([0; 16]);
            let l = b.len() as u16;
            with_len(b, l)
        }),
        (
            "signed with another secret",
            wire::build_access_request(
                1,
                &[RawAttr {
                    typ: attr::USER_NAME,
                    value: b"alice".to_vec(),
                }],
                b"123456",
                b"other",
            )
            .unwrap()
            .0,
        ),
        ("altered after signing", {
            let mut b = signed(&[(attr::USER_NAME, b"alice")], b"123456");
            let last = b.len() - 1;
            b[last] ^= 0x55;
            b
        }),
        (
            "Status-Server without Message-Authenticator",
            raw(12, 9, &[]),
        ),
    ];
    // Deterministic garbage (xorshift), some with a plausible header.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..300 {
        let mut b = Vec::new();
        let n = (i * 13) % 600;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        if i % 2 == 0 && b.len() >= 20 {
            b[0] = 1;
            let l = b.len() as u16;
            b[2..4].copy_from_slice(&l.to_be_bytes());
        }
        v.push(("garbage", b));
    }
    v
}
