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
use crate::wire::{self, code};

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
