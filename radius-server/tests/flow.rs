//! Scripted tests of the login flow (`twostep_radius::flow`): real
//! Access-Requests, the primary's and the registry's answers given by a
//! script, the time passed in. No socket, no registry process, no upstream.
//! Each branch asserts the exact reply (code, Reply-Message, State,
//! attributes), what was asked on the way, and the log line.

use ipnet::IpNet;
use std::time::Duration;
use tracing::Level;
use twostep_common::api::{AuthContext, UserStatus, VerifyRequest, VerifyResult};
use twostep_common::api::{Method, MethodKind, Registrations};
use twostep_common::client::ClientError;
use twostep_common::push::{PushContext, PushResult, PushStarted, StartPush, StartResult};
use twostep_config::{FailMode, RadiusMode, Secret};
use twostep_radius::flow::{
    push_pending_prompt, push_prompt, Action, Env, Event, Joined, Login, PushMark, RegistryFailure,
    Reply, Verdict, CHALLENGE_PROMPT, CHALLENGE_PROMPT_OR_PUSH, CHALLENGE_PROMPT_PUSH_ONLY,
    MAX_WAIT_SECS, NUMBER_NOT_SHOWN, PASSWORD_REFUSED, PRIMARY_UNAVAILABLE, PUSH_BUSY,
    PUSH_EXPIRED, PUSH_EXPIRY_GRACE_SECS, STATE_REFUSED, TOO_MANY_TRIES, UNAVAILABLE,
};
use twostep_radius::fuzzing::{
    drive, enrolled, outcome, scripted_upstream, sent, verdict_of, Asked, Memory, Script,
    CHALLENGE_ID, MAX_PENDING_PUSHES,
};
use twostep_radius::pending::Keyer;
use twostep_radius::settings::Client;
use twostep_radius::state::{StateKey, UsedStates};
use twostep_radius::upstream::PrimaryResult;
use twostep_radius::wire::{self, attr, code, RawAttr, RawPacket};

const NAS_SECRET: &[u8] = b"nas-secret";
const NOW: u64 = 1_700_000_000;
const LIFETIME: u64 = 120;
const GOOD: &str = "123456";

fn client(name: &str, mode: RadiusMode, with_primary: bool) -> Client {
    Client {
        name: name.into(),
        network: "127.0.0.1/32".parse::<IpNet>().unwrap(),
        secret: Secret::new(NAS_SECRET.to_vec()),
        mode,
        delimiter: ",".into(),
        require_message_authenticator: true,
        primary: with_primary.then(scripted_upstream),
        push_number_matching: true,
    }
}

/// One server's view: its client, State key and fail mode, and what it
/// remembers (States used, pending pushes).
struct Server {
    client: Client,
    key: StateKey,
    fail_mode: FailMode,
    keyer: Keyer,
    memory: Memory,
    max_tries: u32,
}

impl Server {
    fn new(mode: RadiusMode, with_primary: bool) -> Self {
        Self {
            client: client("gw", mode, with_primary),
            key: StateKey::from_bytes(&[5; 32]),
            fail_mode: FailMode::Closed,
            keyer: Keyer::from_bytes([3; 32]),
            memory: Memory::default(),
            max_tries: 3,
        }
    }

    fn fail_open(mut self) -> Self {
        self.fail_mode = FailMode::Open;
        self
    }

    fn env(&self) -> Env<'_> {
        Env {
            max_tries: self.max_tries,
            ..env(&self.client, &self.key, self.fail_mode, &self.keyer)
        }
    }

    /// The verdict on `packet` at `now` with `script`, and what was asked.
    fn at(&mut self, now: u64, packet: &RawPacket, script: &Script) -> (Verdict, Vec<Asked>) {
        let env = Env {
            max_tries: self.max_tries,
            ..env(&self.client, &self.key, self.fail_mode, &self.keyer)
        };
        drive(env, packet, &mut self.memory, now, script)
    }

    fn run(&mut self, packet: &RawPacket, script: &Script) -> (Verdict, Vec<Asked>) {
        self.at(NOW, packet, script)
    }
}

fn env<'a>(
    client: &'a Client,
    key: &'a StateKey,
    fail_mode: FailMode,
    keyer: &'a Keyer,
) -> Env<'a> {
    Env {
        client,
        state_key: key,
        state_lifetime: Duration::from_secs(LIFETIME),
        fail_mode,
        keyer,
        max_tries: 3,
    }
}

/// An Access-Request from the NAS: User-Name, NAS-Identifier,
/// Calling-Station-Id, the password hidden with the NAS secret, and
/// State when given.
fn request(user: &str, password: &str, state: Option<&[u8]>) -> RawPacket {
    request_with_id(7, user, password, state)
}

/// [`request`] with another Identifier (a NAS retrying with a new one).
fn request_with_id(id: u8, user: &str, password: &str, state: Option<&[u8]>) -> RawPacket {
    let mut attrs = vec![
        RawAttr {
            typ: attr::USER_NAME,
            value: user.as_bytes().to_vec(),
        },
        RawAttr {
            typ: attr::NAS_IDENTIFIER,
            value: b"vpn-gw-1".to_vec(),
        },
        RawAttr {
            typ: attr::CALLING_STATION_ID,
            value: b"198.51.100.7".to_vec(),
        },
    ];
    if let Some(s) = state {
        attrs.push(RawAttr {
            typ: attr::STATE,
            value: s.to_vec(),
        });
    }
    let (bytes, _) =
        wire::build_access_request(id, &attrs, password.as_bytes(), NAS_SECRET).unwrap();
    wire::parse(&bytes).unwrap()
}

fn class() -> Vec<RawAttr> {
    match Script::wrong_code().primary {
        PrimaryResult::Accept(attrs) => attrs,
        other => panic!("{other:?}"),
    }
}

fn right_code() -> Script {
    Script {
        verify: Ok(verdict_of(VerifyResult::Accept)),
        ..Script::wrong_code()
    }
}

fn wrong_code() -> Script {
    Script::wrong_code()
}

fn with_verify(result: Result<VerifyResult, RegistryFailure>) -> Script {
    Script {
        verify: result.map(verdict_of),
        ..Script::wrong_code()
    }
}

fn with_registrations(r: Result<Option<Registrations>, RegistryFailure>) -> Script {
    Script {
        registrations: r,
        ..Script::wrong_code()
    }
}

fn registry_down() -> Script {
    Script::registry_down()
}

fn server_error() -> RegistryFailure {
    RegistryFailure::from(&ClientError::Server {
        status: 503,
        message: "database is read-only".into(),
    })
}

fn tls_error() -> RegistryFailure {
    RegistryFailure::from(&ClientError::Tls(
        "invalid peer certificate: UnknownIssuer".into(),
    ))
}

fn reject(message: &str) -> Reply {
    Reply::reject(Some(message))
}

/// The audit context of [`request`]'s requests.
fn nas_context() -> AuthContext {
    AuthContext {
        service: Some("radius:gw".into()),
        host: Some("vpn-gw-1".into()),
        remote_addr: Some("198.51.100.7".into()),
        tty: None,
    }
}

fn verify_of(user: &str, code: &str) -> Asked {
    Asked::Verify(VerifyRequest {
        username: user.into(),
        code: code.into(),
        context: nas_context(),
    })
}

fn primary_of(user: &str, password: &str) -> Asked {
    Asked::Primary {
        upstream: "primary".into(),
        user: user.into(),
        password: password.as_bytes().to_vec(),
    }
}

fn look_up(user: &str) -> Asked {
    Asked::LookUp { user: user.into() }
}

fn state_of(reply: &Reply) -> Vec<u8> {
    reply
        .attrs
        .iter()
        .find(|a| a.typ == attr::STATE)
        .map(|a| a.value.clone())
        .expect("a State")
}

/// Asserts an Access-Challenge: prompt, State, Session-Timeout, nothing else.
fn assert_challenge(v: &Verdict) -> Vec<u8> {
    assert_eq!(v.reply.code, code::ACCESS_CHALLENGE, "{v:?}");
    let state = state_of(&v.reply);
    assert_eq!(
        v.reply,
        Reply::challenge(state.clone(), Duration::from_secs(LIFETIME))
    );
    assert_eq!(v.reply.attrs[0].value, CHALLENGE_PROMPT.as_bytes());
    assert_eq!(v.log.text, "Access-Challenge: code requested");
    assert_eq!(v.spent_state, None);
    state
}

// ---- otp-only --------------------------------------------------------------

#[test]
fn otp_only_right_code_accepts_without_attributes() {
    let mut s = Server::new(RadiusMode::OtpOnly, false);
    let (v, asked) = s.run(&request("alice", GOOD, None), &right_code());
    assert_eq!(v.reply, Reply::accept(vec![]));
    assert_eq!(asked, vec![verify_of("alice", GOOD)]);
    assert_eq!(v.log.level, Level::INFO);
    assert_eq!(v.log.text, "Access-Accept: verified");
    assert_eq!(v.log.user.as_deref(), Some("alice"));
    assert_eq!(v.spent_state, None);
}

#[test]
fn otp_only_wrong_code_is_refused() {
    let mut s = Server::new(RadiusMode::OtpOnly, false);
    let (v, asked) = s.run(&request("alice", "654321", None), &wrong_code());
    assert_eq!(v.reply, reject("code refused"));
    assert_eq!(asked, vec![verify_of("alice", "654321")]);
    assert_eq!(v.log.text, "Access-Reject: code refused");
}

/// otp-only trims the code; append without a primary checks the code only.
#[test]
fn code_alone_is_verified_without_a_primary() {
    for (mode, password) in [
        (RadiusMode::OtpOnly, " 123456 "),
        (RadiusMode::Append, "anything,123456"),
    ] {
        let mut s = Server::new(mode, false);
        let (v, asked) = s.run(&request("alice", password, None), &right_code());
        assert_eq!(v.reply, Reply::accept(vec![]), "{mode:?}");
        assert_eq!(asked, vec![verify_of("alice", GOOD)], "{mode:?}");
    }
}

#[test]
fn malformed_code_is_a_wrong_code_without_asking_the_registry() {
    let mut s = Server::new(RadiusMode::OtpOnly, false).fail_open();
    // Even with the registry down and fail_mode = open: never asked, never let in.
    for code in ["12345", "1234567", "12345a", "", "١٢٣٤٥٦", "12 456"] {
        let (v, asked) = s.run(&request("alice", code, None), &registry_down());
        assert_eq!(v.reply, reject("code refused"), "{code:?}");
        assert_eq!(asked, vec![], "{code:?}");
        assert_eq!(v.log.text, "Access-Reject: code refused");
    }
}

#[test]
fn registry_verdicts_other_than_accept_are_rejects() {
    let mut s = Server::new(RadiusMode::OtpOnly, false);
    for (result, message) in [
        (VerifyResult::Locked, "account locked"),
        (VerifyResult::Disabled, "account disabled"),
        (VerifyResult::NotEnrolled, "second factor not set up"),
        (VerifyResult::UnknownUser, "second factor not set up"),
    ] {
        let (v, _) = s.run(&request("alice", GOOD, None), &with_verify(Ok(result)));
        assert_eq!(v.reply, reject(message), "{result:?}");
        assert_eq!(v.log.text, format!("Access-Reject: {message}"));
    }
}

/// A replayed code gets its own Reply-Message (wait for the next code) and
/// log line, never "code refused".
#[test]
fn replayed_code_says_wait_for_the_next_code() {
    let mut s = Server::new(RadiusMode::OtpOnly, false);
    let (v, _) = s.run(
        &request("alice", GOOD, None),
        &with_verify(Ok(VerifyResult::Replay)),
    );
    assert_eq!(
        v.reply,
        reject("That code was used already. Wait for the next code in your app.")
    );
    assert_eq!(v.log.text, "Access-Reject: code used already (replay)");
}

// ---- append ----------------------------------------------------------------

#[test]
fn append_primary_accept_and_right_code_accepts_with_the_primary_attributes() {
    let mut s = Server::new(RadiusMode::Append, true);
    let (v, asked) = s.run(&request("alice", "pa,ss,123456", None), &right_code());
    assert_eq!(v.reply, Reply::accept(class()));
    // The primary gets the password without the code; the code goes to the registry after.
    assert_eq!(
        asked,
        vec![primary_of("alice", "pa,ss"), verify_of("alice", GOOD)]
    );
    assert_eq!(v.log.text, "Access-Accept: verified");
}

#[test]
fn append_primary_accept_and_wrong_code_rejects_without_the_primary_attributes() {
    let mut s = Server::new(RadiusMode::Append, true);
    let (v, asked) = s.run(&request("alice", "pw,654321", None), &wrong_code());
    assert_eq!(v.reply, reject("code refused"));
    assert_eq!(
        asked,
        vec![primary_of("alice", "pw"), verify_of("alice", "654321")]
    );
}

#[test]
fn append_primary_reject_never_sends_the_code() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = Script {
        primary: PrimaryResult::Reject,
        ..right_code()
    };
    let (v, asked) = s.run(&request("alice", "bad,123456", None), &script);
    assert_eq!(v.reply, reject(PASSWORD_REFUSED));
    assert_eq!(asked, vec![primary_of("alice", "bad")]);
    assert_eq!(v.log.level, Level::INFO);
    assert_eq!(v.log.text, "Access-Reject: primary refused the password");
    assert_eq!(v.log.upstream.as_deref(), Some("primary"));
}

#[test]
fn append_primary_unreachable_rejects_whatever_the_fail_mode() {
    for fail_open in [false, true] {
        let mut s = Server::new(RadiusMode::Append, true);
        if fail_open {
            s = s.fail_open();
        }
        let script = Script {
            primary: PrimaryResult::Unreachable("no answer after 3 tries".into()),
            ..right_code()
        };
        let (v, asked) = s.run(&request("alice", "pw,123456", None), &script);
        assert_eq!(v.reply, reject(PRIMARY_UNAVAILABLE));
        assert_eq!(asked, vec![primary_of("alice", "pw")]);
        assert_eq!(v.log.level, Level::ERROR);
        assert_eq!(
            v.log.text,
            "Access-Reject: primary unreachable: no answer after 3 tries"
        );
        assert_eq!(v.log.upstream.as_deref(), Some("primary"));
    }
}

#[test]
fn append_malformed_code_after_the_primary_is_not_sent() {
    let mut s = Server::new(RadiusMode::Append, true);
    let (v, asked) = s.run(&request("alice", "pw,12345", None), &right_code());
    assert_eq!(v.reply, reject("code refused"));
    assert_eq!(asked, vec![primary_of("alice", "pw")]);
}

#[test]
fn append_without_delimiter_is_refused_before_any_call() {
    let mut s = Server::new(RadiusMode::Append, true);
    let (v, asked) = s.run(&request("alice", "123456", None), &right_code());
    assert_eq!(v.reply, reject("enter password, delimiter and code"));
    assert_eq!(asked, vec![]);
    assert_eq!(
        v.log.text,
        "Access-Reject: password carries no delimiter and code"
    );
    assert_eq!(v.log.user, None);
}

// ---- challenge -------------------------------------------------------------

/// The first round of a challenge for alice (with a primary): the State.
fn challenged(s: &mut Server) -> Vec<u8> {
    let (v, asked) = s.run(&request("alice", "pw", None), &right_code());
    assert_eq!(asked, vec![primary_of("alice", "pw"), look_up("alice")]);
    assert_challenge(&v)
}

#[test]
fn challenge_then_right_code_accepts_with_the_primary_attributes() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let state = challenged(&mut s);
    let (v, asked) = s.run(&request("alice", GOOD, Some(&state)), &right_code());
    assert_eq!(v.reply, Reply::accept(class()));
    assert_eq!(asked, vec![verify_of("alice", GOOD)]);
    let spent = v.spent_state.expect("State spent");
    assert_eq!(spent.state, state);
    assert_eq!(spent.expires_at, NOW + LIFETIME);
}

#[test]
fn challenge_without_primary_looks_up_only() {
    let mut s = Server::new(RadiusMode::Challenge, false);
    let (v, asked) = s.run(&request("alice", "any password", None), &right_code());
    assert_eq!(asked, vec![look_up("alice")]);
    let state = assert_challenge(&v);
    let (v, _) = s.run(&request("alice", GOOD, Some(&state)), &right_code());
    assert_eq!(v.reply, Reply::accept(vec![]));
}

#[test]
fn challenge_wrong_code_keeps_the_state_for_another_try() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let state = challenged(&mut s);
    let (v, asked) = s.run(&request("alice", "654321", Some(&state)), &wrong_code());
    assert_eq!(v.reply, reject("code refused"));
    assert_eq!(asked, vec![verify_of("alice", "654321")]);
    assert_eq!(v.spent_state, None);
    let (v, asked) = s.run(&request("alice", "12345", Some(&state)), &right_code());
    assert_eq!(v.reply, reject("code refused"));
    assert_eq!(asked, vec![], "a malformed code is not sent");
    let (v, _) = s.run(&request("alice", GOOD, Some(&state)), &right_code());
    assert_eq!(v.reply, Reply::accept(class()));
}

/// `challenge_max_tries` (3) wrong answers, whatever they are (a wrong
/// code, a replayed one, something that is not a code): the third ends the
/// State with "too many wrong codes, start again", and after it even the
/// right code is refused without asking the registry.
#[test]
fn challenge_state_ends_after_max_tries() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let state = challenged(&mut s);
    let (v, _) = s.run(&request("alice", "654321", Some(&state)), &wrong_code());
    assert_eq!(v.reply, reject("code refused"));
    assert_eq!(v.wrong_try.as_ref().map(|t| &t.state), Some(&state));
    let (v, _) = s.run(
        &request("alice", GOOD, Some(&state)),
        &with_verify(Ok(VerifyResult::Replay)),
    );
    assert_eq!(
        v.reply,
        reject("That code was used already. Wait for the next code in your app.")
    );
    let (v, asked) = s.run(&request("alice", "12345", Some(&state)), &right_code());
    assert_eq!(v.reply, reject(TOO_MANY_TRIES));
    assert_eq!(asked, vec![]);
    assert_eq!(
        v.log.text,
        "Access-Reject: code refused; State ended after 3 wrong codes (challenge_max_tries)"
    );
    let (v, asked) = s.run(&request("alice", GOOD, Some(&state)), &right_code());
    assert_eq!(v.reply, reject(TOO_MANY_TRIES));
    assert_eq!(asked, vec![], "an ended State never reaches the registry");
    assert_eq!(
        v.log.text,
        "Access-Reject: State ended after 3 wrong codes (challenge_max_tries)"
    );
    // A new challenge starts again.
    let state = challenged(&mut s);
    let (v, _) = s.run(&request("alice", GOOD, Some(&state)), &right_code());
    assert_eq!(v.reply, Reply::accept(class()));
}

/// A client that answers the challenge with the password again gets one
/// wrong try and an Access-Reject (not a new Access-Challenge: no loop).
#[test]
fn challenge_answered_with_the_password_is_one_wrong_try() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let state = challenged(&mut s);
    let (v, asked) = s.run(&request("alice", "pw", Some(&state)), &right_code());
    assert_eq!(v.reply, reject("code refused"));
    assert_eq!(
        asked,
        vec![],
        "neither the primary nor the registry is asked"
    );
    assert!(v.wrong_try.is_some());
    s.max_tries = 1;
    let state = challenged(&mut s);
    let (v, _) = s.run(&request("alice", "pw", Some(&state)), &right_code());
    assert_eq!(v.reply, reject(TOO_MANY_TRIES));
}

#[test]
fn challenge_state_expires() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let state = challenged(&mut s);
    let answer = request("alice", GOOD, Some(&state));
    let (v, asked) = s.at(NOW + LIFETIME + 1, &answer, &right_code());
    assert_eq!(v.reply, reject(STATE_REFUSED));
    assert_eq!(asked, vec![]);
    assert_eq!(v.log.text, "Access-Reject: State expired");
    // The last second of its lifetime still counts.
    let (v, _) = s.at(NOW + LIFETIME, &answer, &right_code());
    assert_eq!(v.reply, Reply::accept(class()));
}

#[test]
fn challenge_state_from_another_client_user_or_key_or_tampered_is_refused() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let state = challenged(&mut s);
    let refused = |v: &Verdict, asked: &[Asked]| {
        assert_eq!(v.reply, reject(STATE_REFUSED));
        assert_eq!(asked, &[] as &[Asked]);
        assert_eq!(
            v.log.text,
            "Access-Reject: State does not open (other key, user or client, or altered)"
        );
    };
    // Another client with the same key.
    let mut other = Server::new(RadiusMode::Challenge, true);
    other.client = client("gw-2", RadiusMode::Challenge, true);
    let (v, asked) = other.run(&request("alice", GOOD, Some(&state)), &right_code());
    refused(&v, &asked);
    // Another user.
    let (v, asked) = s.run(&request("bob", GOOD, Some(&state)), &right_code());
    refused(&v, &asked);
    assert_eq!(v.log.user.as_deref(), Some("bob"));
    // Another key.
    let mut rekeyed = Server::new(RadiusMode::Challenge, true);
    rekeyed.key = StateKey::from_bytes(&[6; 32]);
    let (v, asked) = rekeyed.run(&request("alice", GOOD, Some(&state)), &right_code());
    refused(&v, &asked);
    // Tampered with, and never issued.
    let mut t = state.clone();
    let last = t.len() - 1;
    t[last] ^= 0x80;
    let (v, asked) = s.run(&request("alice", GOOD, Some(&t)), &right_code());
    refused(&v, &asked);
    let (v, asked) = s.run(
        &request("alice", GOOD, Some(&[1, 2, 3, 4, 5, 6, 7, 8])),
        &right_code(),
    );
    refused(&v, &asked);
}

#[test]
fn challenge_state_serves_one_login_here() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let state = challenged(&mut s);
    let answer = request("alice", GOOD, Some(&state));
    let (v, _) = s.run(&answer, &right_code());
    assert_eq!(v.reply, Reply::accept(class()));
    // The driver recorded it; a second login with it is refused before the registry is asked.
    let (v, asked) = s.at(NOW + 5, &answer, &right_code());
    assert_eq!(v.reply, reject(STATE_REFUSED));
    assert_eq!(asked, vec![]);
    assert_eq!(v.log.text, "Access-Reject: State already used for a login");
    // A fresh challenge works.
    let fresh = challenged(&mut s);
    assert_ne!(fresh, state);
    let (v, _) = s.run(&request("alice", GOOD, Some(&fresh)), &right_code());
    assert_eq!(v.reply.code, code::ACCESS_ACCEPT);
}

#[test]
fn users_who_cannot_pass_are_refused_at_lookup_without_a_challenge() {
    let with_status = |status| {
        let mut r = enrolled("alice");
        r.status = status;
        r
    };
    let mut unenrolled = enrolled("alice");
    unenrolled.methods.clear();
    for (reg, message) in [
        (Some(with_status(UserStatus::Locked)), "account locked"),
        (Some(with_status(UserStatus::Disabled)), "account disabled"),
        (None, "second factor not set up"),
        (Some(unenrolled), "second factor not set up"),
    ] {
        let mut s = Server::new(RadiusMode::Challenge, true);
        let (v, asked) = s.run(&request("alice", "pw", None), &with_registrations(Ok(reg)));
        assert_eq!(v.reply, reject(message));
        assert_eq!(asked, vec![primary_of("alice", "pw"), look_up("alice")]);
        assert_eq!(v.log.text, format!("Access-Reject: {message}"));
    }
}

#[test]
fn challenge_primary_reject_skips_the_lookup() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let script = Script {
        primary: PrimaryResult::Reject,
        ..right_code()
    };
    let (v, asked) = s.run(&request("alice", "bad", None), &script);
    assert_eq!(v.reply, reject(PASSWORD_REFUSED));
    assert_eq!(asked, vec![primary_of("alice", "bad")]);
}

// ---- registry failures -----------------------------------------------------

#[test]
fn registry_unreachable_fails_closed() {
    let mut s = Server::new(RadiusMode::OtpOnly, false);
    let (v, _) = s.run(&request("alice", GOOD, None), &registry_down());
    assert_eq!(v.reply, reject(UNAVAILABLE));
    assert_eq!(v.log.level, Level::ERROR);
    assert_eq!(
        v.log.text,
        "Access-Reject: registry unreachable: scripted (fail_mode = closed)"
    );
    // Before a challenge too.
    let mut s = Server::new(RadiusMode::Challenge, true);
    let (v, asked) = s.run(&request("alice", "pw", None), &registry_down());
    assert_eq!(v.reply, reject(UNAVAILABLE));
    assert_eq!(asked, vec![primary_of("alice", "pw"), look_up("alice")]);
}

#[test]
fn registry_unreachable_fails_open_when_configured() {
    let mut s = Server::new(RadiusMode::OtpOnly, false).fail_open();
    let (v, _) = s.run(&request("alice", GOOD, None), &registry_down());
    assert_eq!(v.reply, Reply::accept(vec![]));
    assert_eq!(v.log.level, Level::WARN);
    assert_eq!(
        v.log.text,
        "Access-Accept: registry unreachable: scripted; fail_mode = open lets the user in without a second factor"
    );
    // append: after the primary, with its attributes.
    let mut s = Server::new(RadiusMode::Append, true).fail_open();
    let (v, _) = s.run(&request("alice", "pw,123456", None), &registry_down());
    assert_eq!(v.reply, Reply::accept(class()));
    // challenge: the lookup unreachable lets in after the primary, no prompt.
    let mut s = Server::new(RadiusMode::Challenge, true).fail_open();
    let (v, _) = s.run(&request("alice", "pw", None), &registry_down());
    assert_eq!(v.reply, Reply::accept(class()));
    // A challenge answer whose verify is unreachable spends the State.
    let state = challenged(&mut s);
    let (v, _) = s.run(&request("alice", GOOD, Some(&state)), &registry_down());
    assert_eq!(v.reply, Reply::accept(class()));
    assert_eq!(v.spent_state.map(|x| x.state), Some(state));
}

#[test]
fn registry_5xx_tls_and_other_failures_reject_whatever_the_fail_mode() {
    for fail_open in [false, true] {
        for failure in [
            server_error(),
            tls_error(),
            RegistryFailure::from(&ClientError::Transport("connection reset".into())),
            RegistryFailure::from(&ClientError::Refused {
                status: 403,
                code: "host_revoked".into(),
                message: "host revoked".into(),
            }),
            RegistryFailure::from(&ClientError::Protocol("not JSON".into())),
        ] {
            let server = |mode, primary| {
                let s = Server::new(mode, primary);
                if fail_open {
                    s.fail_open()
                } else {
                    s
                }
            };
            let mut s = server(RadiusMode::OtpOnly, false);
            let (v, _) = s.run(
                &request("alice", GOOD, None),
                &with_verify(Err(failure.clone())),
            );
            assert_eq!(v.reply, reject(UNAVAILABLE), "{failure:?}");
            assert_eq!(v.log.level, Level::ERROR);
            assert_eq!(
                v.log.text,
                format!("Access-Reject: registry error: {failure}")
            );
            // At lookup, before a challenge.
            let mut s = server(RadiusMode::Challenge, true);
            let (v, _) = s.run(
                &request("alice", "pw", None),
                &with_registrations(Err(failure.clone())),
            );
            assert_eq!(v.reply, reject(UNAVAILABLE), "{failure:?}");
        }
    }
}

#[test]
fn registry_refusing_the_request_rejects_without_message() {
    let failure =
        RegistryFailure::RefusedRequest("registry error 400 invalid_username: bad".into());
    let mut s = Server::new(RadiusMode::OtpOnly, false).fail_open();
    let (v, _) = s.run(&request("alice", GOOD, None), &with_verify(Err(failure)));
    assert_eq!(v.reply, Reply::reject(None));
    assert_eq!(v.log.level, Level::WARN);
    assert_eq!(
        v.log.text,
        "Access-Reject: registry refused the request: registry error 400 invalid_username: bad"
    );
}

// ---- the machine itself ----------------------------------------------------

#[test]
fn an_event_out_of_turn_fails_closed() {
    let s = Server::new(RadiusMode::OtpOnly, false);
    let (mut login, action) = Login::start(
        s.env(),
        &request("alice", GOOD, None),
        &UsedStates::default(),
        NOW,
    );
    assert!(matches!(action, Action::Verify(_)), "{action:?}");
    let action = login.resume(Event::Primary(PrimaryResult::Accept(vec![])), NOW);
    let Action::Reply(v) = action else {
        panic!("{action:?}");
    };
    assert_eq!(v.reply, Reply::reject(None));
    assert_eq!(v.log.level, Level::ERROR);
    assert_eq!(
        v.log.text,
        "Access-Reject: internal error: primary result while waiting for the verify result"
    );
    // And once over, it stays over.
    let action = login.resume(Event::Verified(Ok(verdict_of(VerifyResult::Accept))), NOW);
    let Action::Reply(v) = action else {
        panic!("{action:?}");
    };
    assert_eq!(v.reply, Reply::reject(None));
}

#[test]
fn actions_do_not_show_password_or_code() {
    let s = Server::new(RadiusMode::Append, true);
    let (_, action) = Login::start(
        s.env(),
        &request("alice", "hunter2,123456", None),
        &UsedStates::default(),
        NOW,
    );
    let shown = format!("{action:?}");
    assert!(shown.contains("AskPrimary"), "{shown}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("104, 117"),
        "{shown}"
    );
    let s = Server::new(RadiusMode::OtpOnly, false);
    let (login, action) = Login::start(
        s.env(),
        &request("alice", GOOD, None),
        &UsedStates::default(),
        NOW,
    );
    let shown = format!("{action:?} {login:?}");
    assert!(shown.contains("Verify"), "{shown}");
    assert!(!shown.contains(GOOD), "{shown}");
}

// ---- push ------------------------------------------------------------------

/// The push's Session-Timeout: the challenge's 60 s and its grace, within
/// the State's lifetime.
const PUSH_TIMEOUT: u64 = 60 + PUSH_EXPIRY_GRACE_SECS;

/// An active user with an authenticator app and a push device.
fn push_user() -> Registrations {
    let mut r = enrolled("alice");
    r.methods.push(Method {
        id: 2,
        kind: MethodKind::Push,
        label: "Alice's phone".into(),
        is_default: false,
        created_at: 0,
        last_used_at: None,
        disabled: false,
    });
    r
}

/// An active user with a push device only.
fn push_only() -> Registrations {
    let mut r = push_user();
    r.methods.remove(0);
    r
}

/// The primary accepts, the user has a push device, the registry sends a
/// push with `number` and then answers `outcomes` in turn.
fn pushed(number: Option<u8>, outcomes: &[PushResult]) -> Script {
    Script {
        registrations: Ok(Some(push_user())),
        push_start: Ok(sent(number)),
        push_outcomes: outcomes.iter().map(|r| outcome(*r)).collect(),
        ..right_code()
    }
}

fn start_of(user: &str) -> Asked {
    let c = nas_context();
    Asked::StartPush(StartPush {
        username: user.into(),
        // The NAS is the host the device shows, and the NAS.
        context: PushContext {
            service: c.service,
            host: c.host.clone(),
            remote_addr: c.remote_addr,
            tty: None,
            nas: c.host,
        },
    })
}

fn lead() -> Asked {
    Asked::Join(Joined::Lead)
}

/// What `pw,push` in append mode asks before the push is started, then `more`.
fn pushing(more: &[Asked]) -> Vec<Asked> {
    [
        vec![primary_of("alice", "pw"), lead(), start_of("alice")],
        more.to_vec(),
    ]
    .concat()
}

fn wait_of(wait: u64) -> Asked {
    Asked::AwaitPush {
        challenge_id: CHALLENGE_ID.into(),
        wait,
    }
}

fn cancel() -> Asked {
    Asked::CancelPush {
        challenge_id: CHALLENGE_ID.into(),
    }
}

/// Asserts an Access-Challenge showing `prompt`, with State and
/// Session-Timeout `timeout`, marked as showing the pending push until
/// `until`; returns the State.
fn assert_push_challenge(v: &Verdict, prompt: &str, timeout: u64, until: u64) -> Vec<u8> {
    assert_eq!(v.reply.code, code::ACCESS_CHALLENGE, "{v:?}");
    let state = state_of(&v.reply);
    assert_eq!(
        v.reply,
        Reply::challenge_with(prompt, state.clone(), Duration::from_secs(timeout))
    );
    assert_eq!(
        v.push,
        Some(PushMark::Pending {
            challenge_id: CHALLENGE_ID.into(),
            until
        })
    );
    assert_eq!(v.spent_state, None);
    assert!(
        !v.log.text.contains("42"),
        "no number in the log: {}",
        v.log.text
    );
    state
}

fn ended() -> Option<PushMark> {
    Some(PushMark::Ended {
        challenge_id: CHALLENGE_ID.into(),
    })
}

/// `password,push` in append mode with a primary: the number challenge.
fn append_pushed(s: &mut Server, script: &Script) -> Vec<u8> {
    let (v, asked) = s.run(&request("alice", "pw,push", None), script);
    assert_eq!(asked, pushing(&[]));
    assert_eq!(
        v.log.text,
        format!("Access-Challenge: push sent, challenge {CHALLENGE_ID}, number shown")
    );
    assert_push_challenge(&v, &push_prompt(42), PUSH_TIMEOUT, NOW + PUSH_TIMEOUT)
}

#[test]
fn append_push_with_a_number_challenges_then_the_next_request_collects() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = pushed(Some(42), &[PushResult::Approved]);
    let state = append_pushed(&mut s, &script);
    assert_eq!(
        push_prompt(42),
        "Approve on your phone: enter 42, then press OK"
    );
    // Whatever is typed: the result is collected, waiting up to 30 s.
    for typed in ["", "ok"] {
        let mut s2 = Server::new(RadiusMode::Append, true);
        let (v, asked) = s2.at(NOW + 5, &request("alice", typed, Some(&state)), &script);
        assert_eq!(v.reply, Reply::accept(class()), "{typed:?}");
        assert_eq!(asked, vec![lead(), wait_of(MAX_WAIT_SECS)]);
        assert_eq!(
            v.log.text,
            format!("Access-Accept: push {CHALLENGE_ID} approved")
        );
        assert_eq!(v.push, ended());
        assert_eq!(v.spent_state.map(|x| x.state), Some(state.clone()));
    }
}

#[test]
fn append_push_without_a_number_holds_the_request_until_the_answer() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = pushed(
        None,
        &[
            PushResult::Pending,
            PushResult::Pending,
            PushResult::Approved,
        ],
    );
    let (v, asked) = s.run(&request("alice", "pw,push", None), &script);
    assert_eq!(v.reply, Reply::accept(class()));
    // 30 s, 30 s, then the 2 s left before the challenge's end (and grace).
    assert_eq!(asked, pushing(&[wait_of(30), wait_of(30), wait_of(2)]));
    assert_eq!(v.push, ended());
    assert_eq!(v.spent_state, None, "no State answered");
}

#[test]
fn a_held_push_without_answer_is_cancelled_and_refused_at_its_end() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = pushed(None, &[PushResult::Pending]);
    let (v, asked) = s.run(&request("alice", "pw,push", None), &script);
    assert_eq!(v.reply, reject(PUSH_EXPIRED));
    assert_eq!(asked[3..], [wait_of(30), wait_of(30), wait_of(2), cancel()]);
    assert_eq!(
        v.log.text,
        format!("Access-Reject: push {CHALLENGE_ID} not answered in time; cancelled")
    );
    // A failed cancel is logged, the reply is the same.
    let script = Script {
        push_cancel: Err(server_error()),
        ..script
    };
    let (v, _) = s.run(&request("alice", "other,push", None), &script);
    assert_eq!(v.reply, reject(PUSH_EXPIRED));
    assert!(
        v.log.text.ends_with(
            "; cancelling the push failed: registry failed (503): database is read-only"
        ),
        "{}",
        v.log.text
    );
}

#[test]
fn a_client_that_cannot_show_the_number_never_drops_number_matching() {
    let mut s = Server::new(RadiusMode::Append, true);
    s.client.push_number_matching = false;
    let (v, asked) = s.run(
        &request("alice", "pw,push", None),
        &pushed(Some(42), &[PushResult::Approved]),
    );
    assert_eq!(v.reply, reject(NUMBER_NOT_SHOWN));
    assert_eq!(asked, pushing(&[cancel()]));
    assert_eq!(v.log.level, Level::WARN);
    assert_eq!(
        v.log.text,
        format!("Access-Reject: push {CHALLENGE_ID} needs number matching, but client \"gw\" is marked push_number_matching = false (it cannot show an Access-Challenge); push cancelled")
    );
    assert_eq!(v.push, ended());
    // Without a number from the registry it holds the request.
    let (v, asked) = s.run(
        &request("alice", "pw,push", None),
        &pushed(None, &[PushResult::Approved]),
    );
    assert_eq!(v.reply, Reply::accept(class()));
    assert_eq!(asked[3..], [wait_of(30)]);
}

#[test]
fn challenge_mode_offers_push_to_users_with_a_device() {
    for (reg, prompt, what) in [
        (
            push_user(),
            CHALLENGE_PROMPT_OR_PUSH,
            "code or push requested",
        ),
        (push_only(), CHALLENGE_PROMPT_PUSH_ONLY, "push offered"),
        (enrolled("alice"), CHALLENGE_PROMPT, "code requested"),
    ] {
        let mut s = Server::new(RadiusMode::Challenge, true);
        let script = Script {
            registrations: Ok(Some(reg)),
            ..pushed(Some(42), &[PushResult::Approved])
        };
        let (v, asked) = s.run(&request("alice", "pw", None), &script);
        assert_eq!(asked, vec![primary_of("alice", "pw"), look_up("alice")]);
        let state = state_of(&v.reply);
        assert_eq!(
            v.reply,
            Reply::challenge_with(prompt, state, Duration::from_secs(LIFETIME))
        );
        assert_eq!(v.log.text, format!("Access-Challenge: {what}"));
        assert_eq!(v.push, None, "no push yet");
    }
}

#[test]
fn challenge_mode_push_answer_shows_the_number_then_collects() {
    let mut s = Server::new(RadiusMode::Challenge, true);
    let script = pushed(Some(42), &[PushResult::Approved]);
    let (v, _) = s.run(&request("alice", "pw", None), &script);
    let first = state_of(&v.reply);
    // "push" (any case) answers the code prompt with a second challenge.
    let (v, asked) = s.at(NOW + 10, &request("alice", " Push ", Some(&first)), &script);
    assert_eq!(asked, vec![lead(), start_of("alice")]);
    let second = assert_push_challenge(&v, &push_prompt(42), 52, NOW + PUSH_TIMEOUT);
    assert_ne!(second, first);
    let (v, asked) = s.at(NOW + 20, &request("alice", "", Some(&second)), &script);
    assert_eq!(v.reply, Reply::accept(class()));
    assert_eq!(asked, vec![lead(), wait_of(30)]);
    assert_eq!(v.spent_state.map(|x| x.state), Some(second));
    // A code still works at the same prompt.
    let (v, _) = s.run(&request("alice", "pw", None), &script);
    let (v, asked) = s.run(&request("alice", GOOD, Some(&state_of(&v.reply))), &script);
    assert_eq!(v.reply, Reply::accept(class()));
    assert_eq!(asked, vec![verify_of("alice", GOOD)]);
}

#[test]
fn auto_push_pushes_right_after_the_primary() {
    let mut s = Server::new(RadiusMode::AutoPush, true);
    let script = pushed(Some(42), &[PushResult::Approved]);
    let (v, asked) = s.run(&request("alice", "pw", None), &script);
    assert_eq!(
        asked,
        vec![
            primary_of("alice", "pw"),
            look_up("alice"),
            lead(),
            start_of("alice")
        ]
    );
    let state = assert_push_challenge(&v, &push_prompt(42), PUSH_TIMEOUT, NOW + PUSH_TIMEOUT);
    let (v, asked) = s.run(&request("alice", "OK", Some(&state)), &script);
    assert_eq!(v.reply, Reply::accept(class()));
    assert_eq!(asked, vec![lead(), wait_of(30)]);
    // Without a number: held in the first request.
    let mut s = Server::new(RadiusMode::AutoPush, false);
    let (v, asked) = s.run(
        &request("alice", "pw", None),
        &pushed(None, &[PushResult::Approved]),
    );
    assert_eq!(v.reply, Reply::accept(vec![]));
    assert_eq!(asked[2..], [start_of("alice"), wait_of(30)]);
}

#[test]
fn auto_push_users_without_a_device_get_the_code_challenge() {
    let mut s = Server::new(RadiusMode::AutoPush, true);
    let script = Script {
        registrations: Ok(Some(enrolled("alice"))),
        ..pushed(Some(42), &[PushResult::Approved])
    };
    let (v, asked) = s.run(&request("alice", "pw", None), &script);
    assert_eq!(asked, vec![primary_of("alice", "pw"), look_up("alice")]);
    let state = assert_challenge(&v);
    let (v, _) = s.run(&request("alice", GOOD, Some(&state)), &script);
    assert_eq!(v.reply, Reply::accept(class()));
    // Users who cannot pass are refused before any push.
    let mut locked = push_user();
    locked.status = UserStatus::Locked;
    let script = Script {
        registrations: Ok(Some(locked)),
        ..script
    };
    let (v, asked) = s.run(&request("alice", "pw", None), &script);
    assert_eq!(v.reply, reject("account locked"));
    assert_eq!(asked, vec![primary_of("alice", "pw"), look_up("alice")]);
}

#[test]
fn every_push_result_other_than_approved_is_a_reject_saying_which() {
    for (result, message, level) in [
        (PushResult::Denied, "push denied", Level::INFO),
        (
            PushResult::Fraud,
            "push denied and reported as fraud: pushes are blocked until an administrator clears it",
            Level::WARN,
        ),
        (
            PushResult::WrongNumber,
            "wrong number entered on the phone",
            Level::INFO,
        ),
        (PushResult::Expired, PUSH_EXPIRED, Level::INFO),
        (PushResult::Cancelled, "push cancelled", Level::INFO),
    ] {
        let mut s = Server::new(RadiusMode::Append, true);
        let script = pushed(Some(42), &[result]);
        let state = append_pushed(&mut s, &script);
        let (v, asked) = s.run(&request("alice", "", Some(&state)), &script);
        assert_eq!(v.reply, reject(message), "{result:?}");
        assert_eq!(asked, vec![lead(), wait_of(30)], "no cancel after an end");
        assert_eq!(v.log.level, level);
        assert_eq!(
            v.log.text,
            format!("Access-Reject: push {CHALLENGE_ID} {}", result.as_str())
        );
        assert_eq!(v.push, ended());
        assert_eq!(v.spent_state, None);
    }
}

#[test]
fn every_refused_start_is_a_reject_saying_which() {
    for (result, message) in [
        (
            StartResult::RateLimited,
            "too many push requests, try again later",
        ),
        (
            StartResult::Blocked,
            "push blocked after a fraud report: ask an administrator to clear it",
        ),
        (
            StartResult::NotEnrolled,
            "no push device set up, use a code",
        ),
        (StartResult::UnknownUser, "second factor not set up"),
        (StartResult::Locked, "account locked"),
        (StartResult::Disabled, "account disabled"),
    ] {
        let mut s = Server::new(RadiusMode::Append, true);
        let script = Script {
            push_start: Ok(PushStarted {
                result,
                challenge: None,
            }),
            ..pushed(Some(42), &[PushResult::Approved])
        };
        let (v, asked) = s.run(&request("alice", "pw,push", None), &script);
        assert_eq!(v.reply, reject(message), "{result:?}");
        assert_eq!(asked, pushing(&[]));
        assert_eq!(
            v.log.text,
            format!("Access-Reject: push not sent: {}", result.as_str())
        );
        assert_eq!(v.push, None);
    }
    // `sent` without its challenge is the registry's fault.
    let mut s = Server::new(RadiusMode::Append, true);
    let script = Script {
        push_start: Ok(PushStarted {
            result: StartResult::Sent,
            challenge: None,
        }),
        ..right_code()
    };
    let (v, _) = s.run(&request("alice", "pw,push", None), &script);
    assert_eq!(v.reply, reject(UNAVAILABLE));
    assert_eq!(v.log.level, Level::ERROR);
}

#[test]
fn a_push_still_pending_shows_its_number_again() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = pushed(Some(42), &[PushResult::Pending]);
    let state = append_pushed(&mut s, &script);
    let (v, asked) = s.at(NOW + 1, &request("alice", "", Some(&state)), &script);
    assert_eq!(asked, vec![lead(), wait_of(30)]);
    // At NOW + 31, 31 s left to the challenge's end and its grace.
    let again = assert_push_challenge(&v, &push_pending_prompt(42), 31, NOW + PUSH_TIMEOUT);
    assert_eq!(
        push_pending_prompt(42),
        "Not approved yet: enter 42 on your phone, then press OK"
    );
    assert_eq!(
        v.log.text,
        format!("Access-Challenge: push still pending, challenge {CHALLENGE_ID}, number shown")
    );
    // The new State collects the same challenge, and is good as long as the first.
    let done = pushed(Some(42), &[PushResult::Approved]);
    let (v, asked) = s.at(NOW + 40, &request("alice", "", Some(&again)), &done);
    assert_eq!(v.reply, Reply::accept(class()));
    assert_eq!(asked, vec![lead(), wait_of(30)]);
    assert_eq!(v.spent_state.unwrap().expires_at, NOW + LIFETIME);
    // Past the challenge's end (the registry has not said so): cancelled.
    let (v, asked) = s.at(NOW + 50, &request("alice", "x", Some(&state)), &script);
    assert_eq!(v.reply, reject(PUSH_EXPIRED));
    assert_eq!(asked, vec![lead(), wait_of(30), cancel()]);
    // The wait stays within the State's lifetime.
    let (_, asked) = s.at(
        NOW + LIFETIME - 4,
        &request("alice", "y", Some(&state)),
        &script,
    );
    assert_eq!(asked, vec![lead(), wait_of(4), cancel()]);
}

#[test]
fn a_retransmission_with_a_new_identifier_joins_the_pending_push() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = pushed(Some(42), &[PushResult::Approved]);
    let (first, _) = s.run(&request_with_id(1, "alice", "pw,push", None), &script);
    // Same user, NAS and password, new Identifier: the same challenge, no second push.
    for (id, at) in [(2, NOW + 3), (3, NOW + PUSH_TIMEOUT)] {
        let (v, asked) = s.at(at, &request_with_id(id, "alice", "pw,push", None), &script);
        assert_eq!(v.reply, first.reply, "same number, same State");
        assert_eq!(
            asked,
            vec![
                primary_of("alice", "pw"),
                Asked::Join(Joined::Reply(first.reply.clone()))
            ]
        );
        assert_eq!(
            v.log.text,
            "Access-Challenge: the reply of an identical pending push login (a retransmission with a new Identifier)"
        );
        assert_eq!(v.push, None, "the first request's entry");
    }
    // Another password, user or NAS is another login.
    let (v, asked) = s.run(&request_with_id(4, "alice", "pw2,push", None), &script);
    assert_eq!(asked[1..], [lead(), start_of("alice")]);
    assert_eq!(v.reply.code, code::ACCESS_CHALLENGE);
    // The collect ends the push: then the same password starts a new one.
    let state = state_of(&first.reply);
    let (v, _) = s.at(
        NOW + 5,
        &request_with_id(5, "alice", "", Some(&state)),
        &script,
    );
    assert_eq!(v.reply, Reply::accept(class()));
    let (_, asked) = s.at(
        NOW + 6,
        &request_with_id(6, "alice", "pw,push", None),
        &script,
    );
    assert_eq!(asked[1..], [lead(), start_of("alice")]);
    // And the collecting State served its login.
    let (v, asked) = s.at(
        NOW + 7,
        &request_with_id(7, "alice", "", Some(&state)),
        &script,
    );
    assert_eq!(v.reply, reject(STATE_REFUSED));
    assert_eq!(asked, vec![]);
    // Past the push's end, a new push.
    let (_, asked) = s.at(
        NOW + PUSH_TIMEOUT + 1,
        &request_with_id(8, "alice", "pw2,push", None),
        &script,
    );
    assert_eq!(asked[1..], [lead(), start_of("alice")]);
}

#[test]
fn pending_pushes_are_bounded() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = pushed(Some(42), &[PushResult::Approved]);
    for i in 0..MAX_PENDING_PUSHES {
        let (v, _) = s.run(&request("alice", &format!("pw{i},push"), None), &script);
        assert_eq!(v.reply.code, code::ACCESS_CHALLENGE, "{i}");
    }
    let (v, asked) = s.run(&request("alice", "one-more,push", None), &script);
    assert_eq!(v.reply, reject(PUSH_BUSY));
    assert_eq!(
        asked,
        vec![primary_of("alice", "one-more"), Asked::Join(Joined::Full)]
    );
    assert_eq!(v.log.level, Level::WARN);
    // Code logins are not affected.
    let (v, _) = s.run(&request("alice", "pw,123456", None), &script);
    assert_eq!(v.reply, Reply::accept(class()));
}

#[test]
fn push_states_expired_foreign_or_for_another_user_are_refused() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = pushed(Some(42), &[PushResult::Approved]);
    let state = append_pushed(&mut s, &script);
    let refused = |(v, asked): (Verdict, Vec<Asked>), text: &str| {
        assert_eq!(v.reply, reject(STATE_REFUSED));
        assert_eq!(asked, vec![], "the registry is not asked");
        assert_eq!(v.log.text, text);
    };
    let answer = request("alice", "", Some(&state));
    refused(
        s.at(NOW + LIFETIME + 1, &answer, &script),
        "Access-Reject: State expired",
    );
    let foreign = "Access-Reject: State does not open (other key, user or client, or altered)";
    refused(s.run(&request("bob", "", Some(&state)), &script), foreign);
    let mut other = Server::new(RadiusMode::Append, true);
    other.client = client("gw-2", RadiusMode::Append, true);
    refused(other.run(&answer, &script), foreign);
    // Opened by any server of the pool (same key): collected there.
    let mut pool = Server::new(RadiusMode::Append, true);
    let (v, _) = pool.run(&request("alice", "", Some(&state)), &script);
    assert_eq!(v.reply, Reply::accept(class()));
}

#[test]
fn push_registry_failures() {
    // Unreachable at the start: the fail mode, as for a code.
    for (fail_open, want) in [(false, reject(UNAVAILABLE)), (true, Reply::accept(class()))] {
        let mut s = Server::new(RadiusMode::Append, true);
        if fail_open {
            s = s.fail_open();
        }
        let (v, asked) = s.run(&request("alice", "pw,push", None), &registry_down());
        assert_eq!(v.reply, want);
        assert_eq!(asked[1..], [lead(), start_of("alice")]);
    }
    // A 5xx while waiting: refused whatever the fail mode.
    let mut s = Server::new(RadiusMode::Append, true).fail_open();
    let script = pushed(Some(42), &[PushResult::Approved]);
    let state = append_pushed(&mut s, &script);
    let failing = Script {
        push_outcomes: vec![Err(server_error())],
        ..script.clone()
    };
    let (v, _) = s.run(&request("alice", "", Some(&state)), &failing);
    assert_eq!(v.reply, reject(UNAVAILABLE));
    assert_eq!(v.log.level, Level::ERROR);
    // The registry does not know the challenge for this host (collected
    // already, or started with another host key).
    let unknown = Script {
        push_outcomes: vec![Err(RegistryFailure::from(&ClientError::Api {
            status: 404,
            code: "unknown_challenge".into(),
            message: "no such challenge for this host".into(),
        }))],
        ..script
    };
    let (v, _) = s.run(&request("alice", "", Some(&state)), &unknown);
    assert_eq!(v.reply, reject(STATE_REFUSED));
    assert_eq!(v.log.level, Level::WARN);
    assert!(
        v.log.text.starts_with(&format!(
            "Access-Reject: the registry does not know push {CHALLENGE_ID} for this host"
        )),
        "{}",
        v.log.text
    );
}

#[test]
fn a_push_state_too_large_for_the_primary_attributes_cancels_the_push() {
    let mut s = Server::new(RadiusMode::Append, true);
    let script = Script {
        primary: PrimaryResult::Accept(vec![RawAttr {
            typ: attr::CLASS,
            value: vec![b'x'; 190],
        }]),
        ..pushed(Some(42), &[PushResult::Approved])
    };
    let (v, asked) = s.run(&request("alice", "pw,push", None), &script);
    assert_eq!(v.reply, Reply::reject(None));
    assert_eq!(v.log.level, Level::ERROR);
    assert_eq!(asked.last(), Some(&cancel()));
}

// ---- text message / phone call ----------------------------------------------

/// alice with an app and a text-message number (the default when
/// `phone_default`).
fn phone_user(phone_default: bool) -> Registrations {
    let mut r = enrolled("alice");
    r.methods[0].is_default = !phone_default;
    r.methods.push(Method {
        id: 3,
        kind: MethodKind::Sms,
        label: "+1 ••• ••• ••42".into(),
        is_default: phone_default,
        created_at: 0,
        last_used_at: None,
        disabled: false,
    });
    r
}

#[test]
fn challenge_mode_offers_sms_and_sends_it_when_asked() {
    use twostep_common::phone::Channel;
    let mut s = Server::new(RadiusMode::Challenge, true);
    let script = Script {
        registrations: Ok(Some(phone_user(false))),
        verify: Ok(verdict_of(VerifyResult::Accept)),
        ..Script::wrong_code()
    };
    let (v, asked) = s.run(&request("alice", "pw", None), &script);
    assert_eq!(asked, vec![primary_of("alice", "pw"), look_up("alice")]);
    let first = state_of(&v.reply);
    assert_eq!(
        v.reply,
        Reply::challenge_with(
            "Enter the verification code from your authenticator app, or type sms",
            first.clone(),
            Duration::from_secs(LIFETIME)
        )
    );
    // `sms` at the prompt: a code is sent and asked for in a new challenge.
    let (v, asked) = s.at(NOW + 5, &request("alice", "SMS", Some(&first)), &script);
    assert!(
        matches!(&asked[..], [Asked::SendCode(r)] if r.channel == Channel::Sms),
        "{asked:?}"
    );
    let second = state_of(&v.reply);
    assert_ne!(first, second);
    assert_eq!(
        v.reply,
        Reply::challenge_with(
            "Code sent by text message to ••42",
            second.clone(),
            Duration::from_secs(LIFETIME)
        )
    );
    assert_eq!(v.log.text, "Access-Challenge: code sent (sms)");
    // The answer is verified as a code, with the primary's attributes.
    let (v, asked) = s.at(NOW + 20, &request("alice", GOOD, Some(&second)), &script);
    assert!(
        matches!(&asked[..], [Asked::Verify(r)] if r.code == GOOD),
        "{asked:?}"
    );
    assert_eq!(v.reply, Reply::accept(class()));
}

#[test]
fn a_phone_default_and_append_sms_send_at_once_and_a_refused_send_is_said() {
    use twostep_common::phone::{Channel, CodeSent, SendResult};
    let mut s = Server::new(RadiusMode::Challenge, true);
    let script = Script {
        registrations: Ok(Some(phone_user(true))),
        ..Script::wrong_code()
    };
    let (v, asked) = s.run(&request("alice", "pw", None), &script);
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(matches!(&asked[2], Asked::SendCode(r) if r.channel == Channel::Sms));
    assert_eq!(v.reply.code, code::ACCESS_CHALLENGE);
    assert_eq!(
        v.reply,
        Reply::challenge_with(
            "Code sent by text message to ••42",
            state_of(&v.reply),
            Duration::from_secs(LIFETIME)
        )
    );
    // Append: `password,call` after the primary; a gateway failure is an
    // Access-Reject saying so, never an accept.
    let mut s = Server::new(RadiusMode::Append, true);
    let failed = Script {
        code_sent: Ok(CodeSent {
            result: SendResult::CouldNotSend,
            sent_to: Some("••42".into()),
            expires_at: None,
        }),
        ..Script::wrong_code()
    };
    let (v, asked) = s.run(&request("alice", "pw,call", None), &failed);
    assert_eq!(asked[0], primary_of("alice", "pw"));
    assert!(matches!(&asked[1], Asked::SendCode(r) if r.channel == Channel::Voice));
    assert_eq!(
        v.reply,
        Reply::reject(Some(
            "Could not place the phone call; try again later or use another method"
        ))
    );
    // The primary refused: nothing is sent.
    let refused = Script {
        primary: PrimaryResult::Reject,
        ..Script::wrong_code()
    };
    let (v, asked) = s.run(&request("alice", "pw,sms", None), &refused);
    assert_eq!(asked, vec![primary_of("alice", "pw")]);
    assert_eq!(v.reply, Reply::reject(Some(PASSWORD_REFUSED)));
}

#[test]
fn an_unanswered_send_is_could_not_send_even_with_fail_mode_open() {
    use twostep_common::phone::Channel;
    // The gateway is slower than radiusd's registry timeout: the send call
    // times out. The registry answered the lookup, so this is no outage:
    // an Access-Reject saying the code could not be sent, never the fail
    // mode's accept.
    for mode in [RadiusMode::Challenge, RadiusMode::Append] {
        let mut s = Server::new(mode, true).fail_open();
        let slow = Script {
            registrations: Ok(Some(phone_user(true))),
            code_sent: Err(RegistryFailure::from(&ClientError::Transport(
                "operation timed out".into(),
            ))),
            ..Script::wrong_code()
        };
        let password = if mode == RadiusMode::Append {
            "pw,sms"
        } else {
            "pw"
        };
        let (v, asked) = s.run(&request("alice", password, None), &slow);
        assert!(
            asked
                .iter()
                .any(|a| matches!(a, Asked::SendCode(r) if r.channel == Channel::Sms)),
            "{asked:?}"
        );
        let why = "Could not send the text message; try again later or use another method";
        if mode == RadiusMode::Challenge {
            // The default (sms) failed, and alice has an app: the code
            // prompt follows, as in PAM, and her app code logs her in.
            let state = state_of(&v.reply);
            assert_eq!(
                v.reply,
                Reply::challenge_with(
                    &format!(
                        "{why}. Enter the verification code from your authenticator app, or type sms"
                    ),
                    state.clone(),
                    Duration::from_secs(LIFETIME)
                ),
            );
            let accept = Script {
                verify: Ok(verdict_of(VerifyResult::Accept)),
                ..slow
            };
            let (v, asked) = s.at(NOW + 5, &request("alice", "123456", Some(&state)), &accept);
            assert!(
                asked.iter().any(|a| matches!(a, Asked::Verify(_))),
                "{asked:?}"
            );
            assert_eq!(v.reply.code, code::ACCESS_ACCEPT, "{:?}", v.reply);
        } else {
            // `pw,sms` asked for this channel only: nothing else to offer.
            assert_eq!(v.reply, Reply::reject(Some(why)), "{mode:?}");
            assert!(v.log.text.contains("code not sent (sms)"), "{}", v.log.text);
        }
    }
}
