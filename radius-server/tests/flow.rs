//! Scripted tests of the login flow (`twostep_radius::flow`): real
//! Access-Requests, the primary's and the registry's answers given by a
//! script, the time passed in. No socket, no registry process, no upstream.
//! Each branch asserts the exact reply (code, Reply-Message, State,
//! attributes), what was asked on the way, and the log line.

use ipnet::IpNet;
use std::time::Duration;
use tracing::Level;
use twostep_common::api::{AuthContext, UserStatus, VerifyRequest, VerifyResult};
use twostep_common::client::ClientError;
use twostep_config::{FailMode, RadiusMode, Secret};
use twostep_radius::flow::{
    Action, Env, Event, Login, RegistryFailure, Reply, Verdict, CHALLENGE_PROMPT, PASSWORD_REFUSED,
    PRIMARY_UNAVAILABLE, STATE_REFUSED, UNAVAILABLE,
};
use twostep_radius::fuzzing::{drive, enrolled, scripted_upstream, verdict_of, Asked, Script};
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
    }
}

/// One server's view: its client, State key and fail mode, and the States
/// it saw used.
struct Server {
    client: Client,
    key: StateKey,
    fail_mode: FailMode,
    used: UsedStates,
}

impl Server {
    fn new(mode: RadiusMode, with_primary: bool) -> Self {
        Self {
            client: client("gw", mode, with_primary),
            key: StateKey::from_bytes(&[5; 32]),
            fail_mode: FailMode::Closed,
            used: UsedStates::default(),
        }
    }

    fn fail_open(mut self) -> Self {
        self.fail_mode = FailMode::Open;
        self
    }

    fn env(&self) -> Env<'_> {
        env(&self.client, &self.key, self.fail_mode)
    }

    /// The verdict on `packet` at `now` with `script`, and what was asked.
    fn at(&mut self, now: u64, packet: &RawPacket, script: &Script) -> (Verdict, Vec<Asked>) {
        let env = env(&self.client, &self.key, self.fail_mode);
        drive(env, packet, &mut self.used, now, script)
    }

    fn run(&mut self, packet: &RawPacket, script: &Script) -> (Verdict, Vec<Asked>) {
        self.at(NOW, packet, script)
    }
}

fn env<'a>(client: &'a Client, key: &'a StateKey, fail_mode: FailMode) -> Env<'a> {
    Env {
        client,
        state_key: key,
        state_lifetime: Duration::from_secs(LIFETIME),
        fail_mode,
    }
}

/// An Access-Request from the NAS: User-Name, NAS-Identifier,
/// Calling-Station-Id, the password hidden with the NAS secret, and
/// State when given.
fn request(user: &str, password: &str, state: Option<&[u8]>) -> RawPacket {
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
        wire::build_access_request(7, &attrs, password.as_bytes(), NAS_SECRET).unwrap();
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

fn with_registrations(
    r: Result<Option<twostep_common::api::Registrations>, RegistryFailure>,
) -> Script {
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

fn verify_of(user: &str, code: &str) -> Asked {
    Asked::Verify(VerifyRequest {
        username: user.into(),
        code: code.into(),
        context: AuthContext {
            service: Some("radius:gw".into()),
            host: Some("vpn-gw-1".into()),
            remote_addr: Some("198.51.100.7".into()),
            tty: None,
        },
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
