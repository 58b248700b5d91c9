//! The login flow of one Access-Request as a step machine that does no I/O.
//!
//! [`Login::start`] reads an authenticated Access-Request and says what to
//! do next ([`Action`]). The caller performs the action (ask the primary,
//! fetch the registrations, verify a code) and hands the result back to
//! [`Login::resume`] ([`Event`]), until the action is [`Action::Reply`].
//! The current time (Unix seconds) is an argument of both calls; nothing
//! here reads a clock, opens a socket or waits. The driver is
//! [`crate::auth`]; [`crate::fuzzing`] drives the same machine with
//! scripted answers for the tests and the fuzz target.
//!
//! ```text
//! otp-only           Verify ──────────────────────────────► Reply
//! append             AskPrimary ─► Verify ────────────────► Reply
//! challenge, 1st     [AskPrimary ─►] LookUp ──────────────► Reply (Access-Challenge + State)
//! challenge, answer  (State opened here) Verify ──────────► Reply
//! ```
//!
//! The rules applied on the way:
//!
//! - a code goes to the registry (which consumes it) only after the primary
//!   accepted; a code that is not shaped like one
//!   ([`twostep_common::totp::is_code_format`]) is a wrong code, decided
//!   here without asking the registry;
//! - the registry's answers become a [`Decision`] through
//!   [`twostep_common::decision`]: registrations with
//!   [`decision::from_registrations`] before an Access-Challenge, a verdict
//!   on a code with [`decision::from_result`], both under
//!   [`UnenrolledPolicy::Deny`] (RADIUS has no "ignore");
//! - a registry that could not be reached follows `[radius].fail_mode`
//!   ([`decision::unreachable`]); any other failed call (5xx, TLS, broken
//!   connection, refused credential) is an Access-Reject whatever the mode;
//! - an unreachable primary is always an Access-Reject: the fail mode
//!   concerns the second factor only;
//! - a challenge State ([`crate::state`]) opens only for the client and user
//!   it was sealed for and before its expiry, and serves one Access-Accept
//!   on this server ([`UsedStates`]; the driver records
//!   [`Verdict::spent_state`]);
//! - attributes of the primary's Access-Accept go on our Access-Accept only.
//!
//! # Adding a method
//!
//! A new way to pass the second factor (push approval, text-message code,
//! recovery code) is added beside the existing ones; the existing variants
//! and arms stay as they are:
//!
//! 1. what selects it (a mode, a keyword typed instead of the code such as
//!    `password,sms`) is read by [`crate::request::parse`] into a new
//!    [`Step`], handled by a new arm of [`Login::start`];
//! 2. each thing it needs from outside is a new [`Action`] (e.g.
//!    `StartPush { request }`, `AwaitPush { challenge_id }`) answered by a
//!    new [`Event`] (`PushStarted(..)`, `PushAnswered(..)`); the driver in
//!    [`crate::auth`] performs it in one new arm and
//!    [`crate::fuzzing::Script`] gets a scripted answer;
//! 3. the wait for that answer is a new `Phase`, continued by a new arm of
//!    [`Login::resume`], which ends in a [`Decision`] like the others;
//! 4. a challenge spanning two Access-Requests seals a new
//!    [`Awaiting`] kind with its data (e.g. `PushResult { challenge_id }`),
//!    and the arm of [`Login::start`] that opens a State continues it;
//! 5. scripted tests (`tests/flow.rs`) cover each new branch with exact
//!    replies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Level;
use twostep_common::api::{AuthContext, Registrations, VerifyRequest, VerifyResponse};
use twostep_common::client::ClientError;
use twostep_common::decision::{self, Decision, DenyReason};
use twostep_common::totp;
use twostep_config::{FailMode, UnenrolledPolicy};
use zeroize::Zeroizing;

use crate::request::{self, Step};
use crate::settings::{Client, Upstream};
use crate::state::{self, Awaiting, Contents, Primary, StateKey, UsedStates};
use crate::upstream::PrimaryResult;
use crate::wire::{self, attr, code, RawAttr, RawPacket};

/// Reply-Message of an Access-Challenge.
pub const CHALLENGE_PROMPT: &str = "Enter the verification code from your authenticator app";
/// Reply-Message when the primary refused the password.
pub const PASSWORD_REFUSED: &str = "password refused";
/// Reply-Message when the registry is unreachable under fail mode closed,
/// or failing.
pub const UNAVAILABLE: &str = "second factor check unavailable, try again later";
/// Reply-Message when the primary (upstream password server) gives no
/// valid answer: unreachable, or every answer refused (bad authenticators).
pub const PRIMARY_UNAVAILABLE: &str = "password check unavailable, try again later";
/// Reply-Message when a challenge answer's State is refused.
pub const STATE_REFUSED: &str = "challenge expired, start again";

/// A reply to send: code and attributes (Message-Authenticator and
/// Proxy-State are added by [`wire::build_reply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Access-Accept, Access-Reject or Access-Challenge.
    pub code: u8,
    /// Attributes in order.
    pub attrs: Vec<RawAttr>,
}

impl Reply {
    /// Access-Accept with `attrs`.
    pub fn accept(attrs: Vec<RawAttr>) -> Self {
        Self {
            code: code::ACCESS_ACCEPT,
            attrs,
        }
    }

    /// Access-Reject with an optional Reply-Message.
    pub fn reject(message: Option<&str>) -> Self {
        Self {
            code: code::ACCESS_REJECT,
            attrs: message.map(wire::reply_messages).unwrap_or_default(),
        }
    }

    /// Access-Challenge with the prompt, State and Session-Timeout (how
    /// long the NAS may wait for the answer, seconds, RFC 2865 §5.27).
    pub fn challenge(state: Vec<u8>, lifetime: Duration) -> Self {
        let mut attrs = wire::reply_messages(CHALLENGE_PROMPT);
        attrs.push(RawAttr {
            typ: attr::STATE,
            value: state,
        });
        attrs.push(RawAttr {
            typ: attr::SESSION_TIMEOUT,
            value: (lifetime.as_secs() as u32).to_be_bytes().to_vec(),
        });
        Self {
            code: code::ACCESS_CHALLENGE,
            attrs,
        }
    }
}

/// The reply for a decision; `attrs` (from the primary) go on an Accept only.
pub fn reply_for(d: Decision, attrs: &[RawAttr]) -> Reply {
    match d {
        Decision::Verified | Decision::FailOpen => Reply::accept(attrs.to_vec()),
        Decision::WrongCode => Reply::reject(Some("code refused")),
        Decision::Denied(r) => Reply::reject(Some(r.message())),
        Decision::Ignore => Reply::reject(Some(DenyReason::NotEnrolled.message())),
        Decision::Unavailable => Reply::reject(Some(UNAVAILABLE)),
    }
}

/// What a flow works with besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The NAS the request came from: name, mode, primary.
    pub client: &'a Client,
    /// Seals and opens challenge State.
    pub state_key: &'a StateKey,
    /// How long a challenge State stays good.
    pub state_lifetime: Duration,
    /// Registry unreachable: closed or open.
    pub fail_mode: FailMode,
}

/// A registry call that brought no usable answer, sorted by what the flow
/// does with it. The text (the [`ClientError`]'s) is for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryFailure {
    /// No answer at all ([`ClientError::is_unreachable`]): the fail mode applies.
    Unreachable(String),
    /// The registry refused the request itself ([`ClientError::Api`], a
    /// 4xx with an error body, e.g. a user name it cannot hold): nothing the
    /// user can retry.
    RefusedRequest(String),
    /// Anything else: 5xx, TLS failure, broken connection, refused host
    /// credential, unexpected answer. Never subject to the fail mode.
    Failed(String),
}

impl From<&ClientError> for RegistryFailure {
    fn from(e: &ClientError) -> Self {
        if e.is_unreachable() {
            Self::Unreachable(e.to_string())
        } else if matches!(e, ClientError::Api { .. }) {
            Self::RefusedRequest(e.to_string())
        } else {
            Self::Failed(e.to_string())
        }
    }
}

impl From<ClientError> for RegistryFailure {
    fn from(e: ClientError) -> Self {
        Self::from(&e)
    }
}

impl fmt::Display for RegistryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(m) | Self::RefusedRequest(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

/// What the caller does next.
pub enum Action {
    /// Check `user`'s primary `password` with `upstream`
    /// ([`crate::upstream::check`]); resume with [`Event::Primary`].
    AskPrimary {
        /// The client's upstream server.
        upstream: Arc<Upstream>,
        /// User-Name.
        user: String,
        /// The primary password (wiped on drop).
        password: Zeroizing<Vec<u8>>,
    },
    /// Fetch `user`'s registrations; resume with [`Event::Registrations`].
    LookUp {
        /// User-Name.
        user: String,
    },
    /// Send this to the registry's verify (which consumes the code on
    /// success); resume with [`Event::Verified`].
    Verify(VerifyRequest),
    /// Send the reply: the login is over.
    Reply(Verdict),
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AskPrimary { upstream, user, .. } => f
                .debug_struct("AskPrimary")
                .field("upstream", &upstream.name)
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Self::LookUp { user } => f.debug_struct("LookUp").field("user", user).finish(),
            Self::Verify(r) => f.debug_tuple("Verify").field(r).finish(),
            Self::Reply(v) => f.debug_tuple("Reply").field(v).finish(),
        }
    }
}

/// The result of an [`Action`], fed back with [`Login::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Answer to [`Action::AskPrimary`].
    Primary(PrimaryResult),
    /// Answer to [`Action::LookUp`]: `Ok(None)` for a user the registry
    /// does not know.
    Registrations(Result<Option<Registrations>, RegistryFailure>),
    /// Answer to [`Action::Verify`].
    Verified(Result<VerifyResponse, RegistryFailure>),
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Self::Primary(_) => "primary result",
            Self::Registrations(_) => "registrations",
            Self::Verified(_) => "verify result",
        }
    }
}

/// A State that served an Access-Accept: the driver records it in
/// [`UsedStates`] so it serves no second one here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentState {
    /// The State value as received.
    pub state: Vec<u8>,
    /// Its expiry (Unix s): it need not be remembered longer.
    pub expires_at: u64,
}

/// The log line of a verdict: the driver writes `text` at `level` with the
/// client's name, `user` and `upstream` (when set) as fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: Level,
    /// The message (never a code or password).
    pub text: String,
    /// User-Name, once read.
    pub user: Option<String>,
    /// The upstream server, on lines about the primary check.
    pub upstream: Option<String>,
}

/// How a login ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What to answer.
    pub reply: Reply,
    /// What to log.
    pub log: LogLine,
    /// The State to record as used, on an Access-Accept that answered a
    /// challenge.
    pub spent_state: Option<SpentState>,
}

/// What the login waits for.
enum Phase {
    /// [`Event::Primary`]; then `then`.
    Primary(AfterPrimary),
    /// [`Event::Registrations`] before an Access-Challenge; `primary` and
    /// `attrs` go into its State.
    Registrations {
        primary: Primary,
        attrs: Vec<RawAttr>,
    },
    /// [`Event::Verified`]; `attrs` go on the Accept.
    Verify { attrs: Vec<RawAttr> },
    /// Nothing: the reply was given.
    Done,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Primary(_) => "the primary result",
            Self::Registrations { .. } => "the registrations",
            Self::Verify { .. } => "the verify result",
            Self::Done => "nothing (login over)",
        }
    }
}

/// What follows the primary's Access-Accept.
enum AfterPrimary {
    /// `append`: verify the code typed after the delimiter.
    Code(Zeroizing<String>),
    /// `challenge`: look up the registrations, then challenge.
    Challenge,
}

/// One Access-Request's login, from the request to its reply.
pub struct Login<'a> {
    env: Env<'a>,
    user: Option<String>,
    context: AuthContext,
    phase: Phase,
    /// The State this request answers; spent on an Access-Accept.
    answers: Option<SpentState>,
}

impl fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("client", &self.env.client.name)
            .field("user", &self.user)
            .field("waiting_for", &self.phase.name())
            .finish()
    }
}

impl<'a> Login<'a> {
    /// Starts the login of an authenticated Access-Request (Message-Authenticator
    /// already checked, [`crate::inbound`]) of `env.client` at `now` (Unix s):
    /// reads it ([`request::parse`]), opens its State if any (refused when
    /// already in `used`), and returns the first action.
    pub fn start(env: Env<'a>, packet: &RawPacket, used: &UsedStates, now: u64) -> (Self, Action) {
        let mut login = Self {
            env,
            user: None,
            context: AuthContext::default(),
            phase: Phase::Done,
            answers: None,
        };
        let req = match request::parse(env.client, packet) {
            Ok(r) => r,
            Err(refusal) => {
                let text = format!("Access-Reject: {}", refusal.log);
                let action = login.reply(Reply::reject(refusal.message), Level::INFO, text);
                return (login, action);
            }
        };
        login.user = Some(req.user);
        login.context = req.context;
        let action = match req.step {
            Step::Code { code, state: None } => login.code(code, Vec::new()),
            Step::Code {
                code,
                state: Some(state),
            } => login.answer(code, state, used, now),
            Step::PasswordAndCode { password, code } => {
                login.primary(password, AfterPrimary::Code(code))
            }
            Step::Password { password } => login.primary(password, AfterPrimary::Challenge),
        };
        (login, action)
    }

    /// Continues with the result of the last [`Action`], at `now` (Unix s).
    /// An event the login does not wait for ends it with an Access-Reject
    /// (logged as an internal error): the flow fails closed.
    pub fn resume(&mut self, event: Event, now: u64) -> Action {
        match (std::mem::replace(&mut self.phase, Phase::Done), event) {
            (Phase::Primary(then), Event::Primary(result)) => self.primary_done(then, result),
            (Phase::Registrations { primary, attrs }, Event::Registrations(result)) => {
                self.registrations_done(primary, attrs, result, now)
            }
            (Phase::Verify { attrs }, Event::Verified(result)) => match result {
                Ok(resp) => self.decide(
                    decision::from_result(resp.result, UnenrolledPolicy::Deny),
                    &attrs,
                    None,
                ),
                Err(f) => self.registry_failed(f, &attrs),
            },
            (phase, event) => {
                let text = format!(
                    "Access-Reject: internal error: {} while waiting for {}",
                    event.name(),
                    phase.name()
                );
                self.reply(Reply::reject(None), Level::ERROR, text)
            }
        }
    }

    /// User-Name, once the request was read.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn user_name(&self) -> String {
        self.user.clone().unwrap_or_default()
    }

    /// A challenge answer: the State must open for this client and user,
    /// not be expired, and not have served a login here already.
    fn answer(
        &mut self,
        code: Zeroizing<String>,
        state: Vec<u8>,
        used: &UsedStates,
        now: u64,
    ) -> Action {
        let user = self.user_name();
        let opened = state::open(
            self.env.state_key,
            &self.env.client.name,
            user.as_bytes(),
            now,
            &state,
        );
        match opened {
            Err(e) => self.reply(
                Reply::reject(Some(STATE_REFUSED)),
                Level::INFO,
                format!("Access-Reject: {e}"),
            ),
            Ok(_) if used.contains(&state, now) => self.reply(
                Reply::reject(Some(STATE_REFUSED)),
                Level::INFO,
                "Access-Reject: State already used for a login".into(),
            ),
            Ok(Contents {
                awaiting,
                expires_at,
                attrs,
                ..
            }) => {
                self.answers = Some(SpentState { state, expires_at });
                match awaiting {
                    Awaiting::Code => self.code(code, attrs),
                }
            }
        }
    }

    /// The primary check if the client has one; otherwise straight on.
    fn primary(&mut self, password: Zeroizing<Vec<u8>>, then: AfterPrimary) -> Action {
        match &self.env.client.primary {
            Some(upstream) => {
                self.phase = Phase::Primary(then);
                Action::AskPrimary {
                    upstream: Arc::clone(upstream),
                    user: self.user_name(),
                    password,
                }
            }
            None => self.after_primary(then, Primary::None, Vec::new()),
        }
    }

    fn primary_done(&mut self, then: AfterPrimary, result: PrimaryResult) -> Action {
        let upstream = self.env.client.primary.as_ref().map(|u| u.name.clone());
        let (reply, level, text) = match result {
            PrimaryResult::Accept(attrs) => {
                return self.after_primary(then, Primary::UpstreamAccepted, attrs)
            }
            PrimaryResult::Reject => (
                Reply::reject(Some(PASSWORD_REFUSED)),
                Level::INFO,
                "Access-Reject: primary refused the password".to_owned(),
            ),
            PrimaryResult::Unreachable(why) => (
                Reply::reject(Some(PRIMARY_UNAVAILABLE)),
                Level::ERROR,
                format!("Access-Reject: primary unreachable: {why}"),
            ),
        };
        let mut action = self.reply(reply, level, text);
        if let Action::Reply(v) = &mut action {
            v.log.upstream = upstream;
        }
        action
    }

    fn after_primary(
        &mut self,
        then: AfterPrimary,
        primary: Primary,
        attrs: Vec<RawAttr>,
    ) -> Action {
        match then {
            AfterPrimary::Code(code) => self.code(code, attrs),
            AfterPrimary::Challenge => {
                self.phase = Phase::Registrations { primary, attrs };
                Action::LookUp {
                    user: self.user_name(),
                }
            }
        }
    }

    /// Before a challenge: users who cannot pass (unknown, not enrolled,
    /// locked, disabled) are refused without being prompted for a code.
    fn registrations_done(
        &mut self,
        primary: Primary,
        attrs: Vec<RawAttr>,
        result: Result<Option<Registrations>, RegistryFailure>,
        now: u64,
    ) -> Action {
        let reg = match result {
            Ok(reg) => reg,
            Err(f) => return self.registry_failed(f, &attrs),
        };
        if let Some(d) = decision::from_registrations(reg.as_ref(), UnenrolledPolicy::Deny) {
            return self.decide(d, &attrs, None);
        }
        let contents = Contents {
            awaiting: Awaiting::Code,
            primary,
            expires_at: now.saturating_add(self.env.state_lifetime.as_secs()),
            attrs,
        };
        let user = self.user_name();
        match state::seal(
            self.env.state_key,
            &self.env.client.name,
            user.as_bytes(),
            &contents,
        ) {
            Ok(s) => self.reply(
                Reply::challenge(s, self.env.state_lifetime),
                Level::INFO,
                "Access-Challenge: code requested".into(),
            ),
            Err(e) => self.reply(
                Reply::reject(None),
                Level::ERROR,
                format!("Access-Reject: {e}"),
            ),
        }
    }

    /// A typed code: refused here when not shaped like a code, otherwise
    /// sent to the registry.
    fn code(&mut self, code: Zeroizing<String>, attrs: Vec<RawAttr>) -> Action {
        if !totp::is_code_format(&code) {
            return self.decide(Decision::WrongCode, &attrs, None);
        }
        self.phase = Phase::Verify { attrs };
        Action::Verify(VerifyRequest {
            username: self.user_name(),
            code: code.as_str().to_owned(),
            context: self.context.clone(),
        })
    }

    fn registry_failed(&mut self, f: RegistryFailure, attrs: &[RawAttr]) -> Action {
        match f {
            RegistryFailure::Unreachable(_) => {
                self.decide(decision::unreachable(self.env.fail_mode), attrs, Some(&f))
            }
            RegistryFailure::RefusedRequest(_) => self.reply(
                Reply::reject(None),
                Level::WARN,
                format!("Access-Reject: registry refused the request: {f}"),
            ),
            // Revoked host key, wrong settings, a failing registry: ours to fix.
            RegistryFailure::Failed(_) => self.reply(
                Reply::reject(Some(UNAVAILABLE)),
                Level::ERROR,
                format!("Access-Reject: registry error: {f}"),
            ),
        }
    }

    /// Ends with the reply for `d`; `cause` is the unreachable registry
    /// that made the fail mode decide.
    fn decide(
        &mut self,
        d: Decision,
        attrs: &[RawAttr],
        cause: Option<&RegistryFailure>,
    ) -> Action {
        let reply = reply_for(d, attrs);
        let verdict = if reply.code == code::ACCESS_ACCEPT {
            "Access-Accept"
        } else {
            "Access-Reject"
        };
        let (level, text) = match (d, cause) {
            (Decision::FailOpen, Some(e)) => (
                Level::WARN,
                format!(
                    "{verdict}: {e}; fail_mode = open lets the user in without a second factor"
                ),
            ),
            (_, Some(e)) => (Level::ERROR, format!("{verdict}: {e} (fail_mode = closed)")),
            _ => (Level::INFO, format!("{verdict}: {}", d.as_str())),
        };
        self.reply(reply, level, text)
    }

    /// Ends the login with `reply`; an Access-Accept spends the State it
    /// answered.
    fn reply(&mut self, reply: Reply, level: Level, text: String) -> Action {
        self.phase = Phase::Done;
        let spent_state = if reply.code == code::ACCESS_ACCEPT {
            self.answers.take()
        } else {
            None
        };
        Action::Reply(Verdict {
            reply,
            log: LogLine {
                level,
                text,
                user: self.user.clone(),
                upstream: None,
            },
            spent_state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_or_fail_open_accepts() {
        let attrs = vec![RawAttr {
            typ: attr::CLASS,
            value: b"x".to_vec(),
        }];
        assert_eq!(
            reply_for(Decision::Verified, &attrs),
            Reply::accept(attrs.clone())
        );
        assert_eq!(
            reply_for(Decision::FailOpen, &attrs),
            Reply::accept(attrs.clone())
        );
        for (d, msg) in [
            (Decision::WrongCode, "code refused"),
            (Decision::Denied(DenyReason::Locked), "account locked"),
            (
                Decision::Denied(DenyReason::NotEnrolled),
                "second factor not set up",
            ),
            (Decision::Ignore, "second factor not set up"),
            (Decision::Unavailable, UNAVAILABLE),
        ] {
            let r = reply_for(d, &attrs);
            assert_eq!(r.code, code::ACCESS_REJECT);
            assert_eq!(r.attrs, wire::reply_messages(msg), "{d:?}");
        }
    }

    #[test]
    fn challenge_carries_prompt_state_and_timeout() {
        let r = Reply::challenge(vec![1, 2, 3], Duration::from_secs(120));
        assert_eq!(r.code, code::ACCESS_CHALLENGE);
        assert_eq!(
            r.attrs,
            vec![
                RawAttr {
                    typ: attr::REPLY_MESSAGE,
                    value: CHALLENGE_PROMPT.as_bytes().to_vec()
                },
                RawAttr {
                    typ: attr::STATE,
                    value: vec![1, 2, 3]
                },
                RawAttr {
                    typ: attr::SESSION_TIMEOUT,
                    value: vec![0, 0, 0, 120]
                },
            ]
        );
    }

    #[test]
    fn client_errors_sort_by_what_the_flow_does() {
        let u = ClientError::Unreachable("connect refused".into());
        assert_eq!(
            RegistryFailure::from(&u),
            RegistryFailure::Unreachable(u.to_string())
        );
        for e in [
            ClientError::Server {
                status: 503,
                message: "disk full".into(),
            },
            ClientError::Tls("unknown issuer".into()),
            ClientError::Transport("reset".into()),
            ClientError::Refused {
                status: 403,
                code: "host_revoked".into(),
                message: "host revoked".into(),
            },
            ClientError::Protocol("not JSON".into()),
        ] {
            assert_eq!(
                RegistryFailure::from(&e),
                RegistryFailure::Failed(e.to_string()),
                "{e}"
            );
        }
    }
}
