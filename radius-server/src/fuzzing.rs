//! The whole packet-handling path in one synchronous call, for the
//! malformed-packet corpus (`tests/malformed.rs`), the flow's scripted tests
//! (`tests/flow.rs`) and the fuzz target (`fuzz/fuzz_targets/packet.rs`):
//! classification, Message-Authenticator, the real login flow
//! ([`crate::flow`]) with request parsing, password decoding, State opening
//! and sealing, the pending-push table ([`crate::pending`]), and reply
//! assembly. Where the server would ask the primary or the registry, a
//! [`Script`] answers; the clock moves on by each push wait.

use ipnet::IpNet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use twostep_common::api::{
    Method, MethodKind, Registrations, UserStatus, VerifyRequest, VerifyResponse, VerifyResult,
};
use twostep_common::push::{
    PushOutcome, PushResult, PushStarted, StartPush, StartResult, StartedChallenge,
};
use twostep_config::{FailMode, RadiusMode, Secret};

use crate::flow::{Action, Env, Event, Joined, Login, RegistryFailure, Verdict};
use crate::inbound::{classify, Inbound};
use crate::pending::{Join, Keyer, PendingPushes};
use crate::settings::{Client, Upstream};
use crate::state::{StateKey, UsedStates};
use crate::upstream::PrimaryResult;
use crate::wire::{self, attr, code, RawAttr, RawPacket};

/// Shared secret of the [`clients`].
pub const SECRET: &[u8] = b"fuzzing-secret";

/// The time [`exercise`] runs at (Unix s).
pub const NOW: u64 = 1_700_000_000;

/// Challenge State lifetime of [`exercise`].
pub const STATE_LIFETIME: Duration = Duration::from_secs(120);

/// The State key of [`exercise`].
pub fn state_key() -> StateKey {
    StateKey::from_bytes(&[7; 32])
}

/// The pending-push keyer of [`exercise`].
pub fn keyer() -> Keyer {
    Keyer::from_bytes([8; 32])
}

/// Capacity of the pending-push table of [`exercise`].
pub const MAX_PENDING_PUSHES: usize = 16;

/// An upstream that is never contacted (a [`Script`] answers for it).
pub fn scripted_upstream() -> Arc<Upstream> {
    Arc::new(Upstream {
        name: "primary".into(),
        address: SocketAddr::from(([127, 0, 0, 1], 9)),
        secret: Secret::new(b"upstream-secret".to_vec()),
        timeout: Duration::from_secs(1),
        retries: 0,
        require_message_authenticator: true,
        radsec: None,
    })
}

/// Four clients: 127.0.0.1 `otp-only` requiring Message-Authenticator,
/// 127.0.0.2 legacy `append` with a primary ([`scripted_upstream`]),
/// 127.0.0.3 legacy `challenge` without one, 127.0.0.4 legacy `auto-push`
/// with a primary and `push_number_matching = false`.
pub fn clients() -> Vec<Client> {
    let c = |name: &str, net: &str, mode, require, primary| Client {
        name: name.into(),
        network: net.parse::<IpNet>().expect("valid network"),
        secret: Secret::new(SECRET.to_vec()),
        mode,
        delimiter: ",".into(),
        require_message_authenticator: require,
        primary,
        push_number_matching: mode != RadiusMode::AutoPush,
    };
    vec![
        c("strict", "127.0.0.1/32", RadiusMode::OtpOnly, true, None),
        c(
            "append",
            "127.0.0.2/32",
            RadiusMode::Append,
            false,
            Some(scripted_upstream()),
        ),
        c(
            "challenge",
            "127.0.0.3/32",
            RadiusMode::Challenge,
            false,
            None,
        ),
        c(
            "auto-push",
            "127.0.0.4/32",
            RadiusMode::AutoPush,
            false,
            Some(scripted_upstream()),
        ),
    ]
}

/// The answers the outside world gives a login, whatever is asked and
/// however often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The primary's verdict on any password.
    pub primary: PrimaryResult,
    /// The registrations lookup.
    pub registrations: Result<Option<Registrations>, RegistryFailure>,
    /// The registry's verify.
    pub verify: Result<VerifyResponse, RegistryFailure>,
    /// The registry's answer to a push start.
    pub push_start: Result<PushStarted, RegistryFailure>,
    /// The registry's answers to push waits, in turn; the last one
    /// repeats (none: `pending`).
    pub push_outcomes: Vec<Result<PushOutcome, RegistryFailure>>,
    /// The registry's answer to a push cancel.
    pub push_cancel: Result<(), RegistryFailure>,
    /// The registry's answer to a code send (text message, call).
    pub code_sent: Result<twostep_common::phone::CodeSent, RegistryFailure>,
}

/// A code sent to `••42`.
pub fn code_sent() -> twostep_common::phone::CodeSent {
    twostep_common::phone::CodeSent {
        result: twostep_common::phone::SendResult::Sent,
        sent_to: Some("••42".into()),
        expires_at: Some(300),
    }
}

/// The challenge id of [`sent`].
pub const CHALLENGE_ID: &str = "Xk3v9QbT2mW8sLp0aZr4Yw";

/// A push start answered `sent`, with `number`, expiring 60 s after [`NOW`].
pub fn sent(number: Option<u8>) -> PushStarted {
    PushStarted {
        result: StartResult::Sent,
        challenge: Some(StartedChallenge {
            challenge_id: CHALLENGE_ID.into(),
            number,
            expires_at: NOW as i64 + 60,
            device_label: "phone".into(),
        }),
    }
}

/// A push wait's answer.
pub fn outcome(result: PushResult) -> Result<PushOutcome, RegistryFailure> {
    Ok(PushOutcome { result })
}

/// Registrations of an active user with one authenticator app.
pub fn enrolled(user: &str) -> Registrations {
    Registrations {
        temporary_access_until: None,
        place: None,
        elsewhere: Vec::new(),
        username: user.into(),
        status: UserStatus::Active,
        methods: vec![Method {
            id: 1,
            kind: MethodKind::Totp,
            label: "phone".into(),
            is_default: true,
            created_at: 0,
            last_used_at: None,
            disabled: false,
        }],
    }
}

/// A verify answer with `result` only.
pub fn verdict_of(result: VerifyResult) -> VerifyResponse {
    VerifyResponse {
        result,
        method_id: None,
        locked_until: None,
        not_set_up_for: None,
    }
}

impl Script {
    /// The primary accepts (with a Class attribute), the user is enrolled,
    /// the registry refuses the code.
    pub fn wrong_code() -> Self {
        Self {
            primary: PrimaryResult::Accept(vec![RawAttr {
                typ: attr::CLASS,
                value: b"scripted".to_vec(),
            }]),
            registrations: Ok(Some(enrolled("alice"))),
            verify: Ok(verdict_of(VerifyResult::Reject)),
            push_start: Ok(sent(Some(42))),
            push_outcomes: vec![outcome(PushResult::Denied)],
            push_cancel: Ok(()),
            code_sent: Ok(code_sent()),
        }
    }

    /// Every registry call unreachable (the primary accepts).
    pub fn registry_down() -> Self {
        let down = RegistryFailure::Unreachable("registry unreachable: scripted".into());
        Self {
            registrations: Err(down.clone()),
            verify: Err(down.clone()),
            push_start: Err(down.clone()),
            push_outcomes: vec![Err(down.clone())],
            push_cancel: Err(down.clone()),
            code_sent: Err(down),
            ..Self::wrong_code()
        }
    }
}

/// An action the scripted driver answered, with what it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// [`Action::AskPrimary`].
    Primary {
        /// The upstream's name.
        upstream: String,
        /// User-Name sent.
        user: String,
        /// Password sent.
        password: Vec<u8>,
    },
    /// [`Action::LookUp`].
    LookUp {
        /// User-Name looked up.
        user: String,
    },
    /// [`Action::Verify`].
    Verify(VerifyRequest),
    /// [`Action::Join`], with what the table answered.
    Join(Joined),
    /// [`Action::StartPush`].
    StartPush(StartPush),
    /// [`Action::AwaitPush`].
    AwaitPush {
        /// The challenge waited for.
        challenge_id: String,
        /// The wait, seconds.
        wait: u64,
    },
    /// [`Action::CancelPush`].
    CancelPush {
        /// The challenge cancelled.
        challenge_id: String,
    },
    /// [`Action::SendCode`].
    SendCode(twostep_common::phone::SendCode),
}

/// Most actions one login may take before its reply; more is a flow bug.
const MAX_ACTIONS: usize = 16;

/// What a server remembers between requests: the States used and the
/// pending push logins.
#[derive(Debug)]
pub struct Memory {
    /// States that served an Access-Accept.
    pub used: UsedStates,
    /// Pending push logins.
    pub pending: PendingPushes,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            used: UsedStates::default(),
            pending: PendingPushes::new(MAX_PENDING_PUSHES),
        }
    }
}

/// Drives the login of `packet` to its verdict as [`crate::auth`] does,
/// with `script` answering from `now` on (each push wait moves the clock
/// on by its length), the pending-push table and used States in `memory`.
/// Returns the verdict and what was asked, in order.
///
/// # Panics
/// When the flow takes more than 16 actions (a flow bug).
pub fn drive(
    env: Env<'_>,
    packet: &RawPacket,
    memory: &mut Memory,
    now: u64,
    script: &Script,
) -> (Verdict, Vec<Asked>) {
    let mut now = now;
    let (mut login, mut action) = Login::start(env, packet, &memory.used, now);
    let mut asked = Vec::new();
    let mut lead = None;
    let mut waits = 0;
    for _ in 0..MAX_ACTIONS {
        let event = match action {
            Action::AskPrimary {
                upstream,
                user,
                password,
            } => {
                asked.push(Asked::Primary {
                    upstream: upstream.name.clone(),
                    user,
                    password: password.to_vec(),
                });
                Event::Primary(script.primary.clone())
            }
            Action::LookUp { user, .. } => {
                asked.push(Asked::LookUp { user });
                Event::Registrations(script.registrations.clone())
            }
            Action::Verify(req) => {
                asked.push(Asked::Verify(req));
                Event::Verified(script.verify.clone())
            }
            Action::Join(key) => {
                let joined = match memory.pending.join(key, now) {
                    Join::Lead => {
                        lead = Some(key);
                        Joined::Lead
                    }
                    Join::Replay(reply) => Joined::Reply(reply),
                    // Every login driven here ends before the next starts:
                    // none is left working to wait for.
                    Join::Wait(_) => Joined::LeaderGone,
                    Join::Full => Joined::Full,
                };
                asked.push(Asked::Join(joined.clone()));
                Event::Joined(joined)
            }
            Action::StartPush(req) => {
                asked.push(Asked::StartPush(req));
                Event::PushStarted(script.push_start.clone())
            }
            Action::AwaitPush { challenge_id, wait } => {
                asked.push(Asked::AwaitPush {
                    challenge_id,
                    wait: wait.as_secs(),
                });
                let answer = script
                    .push_outcomes
                    .get(waits)
                    .or(script.push_outcomes.last())
                    .cloned()
                    .unwrap_or_else(|| outcome(PushResult::Pending));
                waits += 1;
                // A final answer comes at once; `pending` after the whole wait.
                if matches!(
                    answer,
                    Ok(PushOutcome {
                        result: PushResult::Pending
                    })
                ) {
                    now += wait.as_secs();
                }
                Event::PushOutcome(answer)
            }
            Action::CancelPush { challenge_id } => {
                asked.push(Asked::CancelPush { challenge_id });
                Event::PushCancelled(script.push_cancel.clone())
            }
            Action::SendCode { request, .. } => {
                asked.push(Asked::SendCode(request));
                Event::CodeSent(script.code_sent.clone())
            }
            Action::Reply(verdict) => {
                if let Some(spent) = &verdict.spent_state {
                    memory.used.insert(&spent.state, spent.expires_at, now);
                }
                if let Some(tried) = &verdict.wrong_try {
                    memory.used.count_wrong(&tried.state, tried.expires_at, now);
                }
                if let Some(key) = lead {
                    memory
                        .pending
                        .finish(key, &verdict.reply, verdict.push.as_ref(), now);
                }
                return (verdict, asked);
            }
        };
        action = login.resume(event, now);
    }
    panic!("the flow took more than {MAX_ACTIONS} actions: {asked:?}");
}

/// What the synchronous path did with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Source unknown.
    UnknownSource,
    /// Dropped without an answer (malformed, Message-Authenticator, a
    /// reply too large to encode).
    Dropped(String),
    /// Answered (Status-Server, or the flow's reply) with these bytes.
    Answered(Vec<u8>),
}

/// Runs one datagram from `source` through the whole path with
/// [`Script::wrong_code`] and fail mode closed, at [`NOW`]. Must never
/// panic, whatever the bytes.
pub fn exercise(clients: &[Client], datagram: &[u8], source: SocketAddr) -> Outcome {
    exercise_scripted(
        clients,
        datagram,
        source,
        &Script::wrong_code(),
        FailMode::Closed,
    )
}

/// [`exercise`] with another script and fail mode.
pub fn exercise_scripted(
    clients: &[Client],
    datagram: &[u8],
    source: SocketAddr,
    script: &Script,
    fail_mode: FailMode,
) -> Outcome {
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
            let key = state_key();
            let keyer = keyer();
            let env = Env {
                client,
                state_key: &key,
                state_lifetime: STATE_LIFETIME,
                fail_mode,
                keyer: &keyer,
                max_tries: 3,
            };
            let mut memory = Memory::default();
            let (verdict, _) = drive(env, &packet, &mut memory, NOW, script);
            answered(wire::build_reply(
                &packet,
                verdict.reply.code,
                &verdict.reply.attrs,
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
