//! The login flow of one Access-Request as a step machine that does no I/O.
//!
//! [`Login::start`] reads an authenticated Access-Request and says what to
//! do next ([`Action`]). The caller performs the action (ask the primary,
//! fetch the registrations, verify a code, start or wait for a push) and
//! hands the result back to [`Login::resume`] ([`Event`]), until the action
//! is [`Action::Reply`]. The current time (Unix seconds) is an argument of
//! both calls; nothing here reads a clock, opens a socket or waits. The
//! driver is [`crate::auth`]; [`crate::fuzzing`] drives the same machine
//! with scripted answers for the tests and the fuzz target.
//!
//! ```text
//! otp-only              Verify ───────────────────────────────────► Reply
//! append                AskPrimary ─► Verify ─────────────────────► Reply
//! append, ",push"       AskPrimary ─► Join ─► StartPush ─┬────────► Reply (Access-Challenge: number + State)
//!                                                        └ AwaitPush… ► Reply (no number: held)
//! challenge, 1st        [AskPrimary ─►] LookUp ───────────────────► Reply (Access-Challenge + State)
//! challenge, answer     (State opened here) Verify ───────────────► Reply
//! challenge, "push"     (State opened here) Join ─► StartPush ────► as append ",push"
//! auto-push, 1st        [AskPrimary ─►] LookUp ─► Join ─► StartPush ► as append ",push"
//!                       (no push device: the code Access-Challenge of challenge)
//! push State, answer    (State opened here) Join ─► AwaitPush… ───► Reply (final, or the number again)
//! append, ",sms"        AskPrimary ─► SendCode ───────────────────► Reply (Access-Challenge "Code sent by text message to ••42" + State)
//! challenge, 1st, default a phone method: LookUp ─► SendCode ─────► as append ",sms"
//! challenge, "sms"      (State opened here) SendCode ─────────────► as append ",sms"
//! ```
//!
//! A code sent by text message or call (`sms`, `call`:
//! [`twostep_common::phone::Channel::from_keyword`]) is asked for in a new
//! Access-Challenge whose Reply-Message says where it went
//! ([`twostep_common::phone::sent_message`]); the answer is verified as a
//! code. A code that did not go out is an Access-Reject saying why
//! ([`twostep_common::phone::send_refusal`]).
//!
//! `Join` asks whether an identical push login is pending
//! ([`crate::pending`]): then its reply is this one's too and no second
//! push is started. A push refused at the end, or whose number cannot be
//! shown, is cancelled ([`Action::CancelPush`]) before the Access-Reject.
//!
//! The rules applied on the way:
//!
//! - a code goes to the registry (which consumes it) only after the primary
//!   accepted; a code that is not shaped like one
//!   (a 6-digit code or a temporary access code,
//!   [`twostep_common::recovery::is_second_factor_format`]) is a wrong code, decided
//!   here without asking the registry;
//! - a push is started only after the primary accepted, and only when the
//!   user asked for it (`password,push`, `push` at the prompt) or the
//!   client's mode is `auto-push`;
//! - the registry's answers become a [`Decision`] through
//!   [`twostep_common::decision`]: registrations with
//!   [`decision::from_registrations`] before an Access-Challenge, a verdict
//!   on a code with [`decision::from_result`], both under
//!   [`UnenrolledPolicy::Deny`] (RADIUS has no "ignore"); a push is
//!   accepted only when the registry answers `approved`
//!   ([`push_refusal`] words every other end);
//! - number matching is never dropped: a push whose number the client
//!   cannot show (`push_number_matching = false`) is cancelled and refused
//!   ([`NUMBER_NOT_SHOWN`]); a push without a number (the registry's
//!   `number_matching` off) holds the request until the answer or the
//!   challenge's expiry, at most [`MAX_PUSH_HOLD_SECS`];
//! - a request collecting a push result waits at most
//!   [`MAX_WAIT_SECS`] and within its State's lifetime; still pending, it
//!   gets the number again in a new Access-Challenge;
//! - a registry that could not be reached follows `[radius].fail_mode`
//!   ([`decision::unreachable`]); any other failed call (5xx, TLS, broken
//!   connection, refused credential) is an Access-Reject whatever the mode;
//! - an unreachable primary is always an Access-Reject: the fail mode
//!   concerns the second factor only;
//! - a challenge State ([`crate::state`]) opens only for the client and user
//!   it was sealed for and before its expiry, and serves one Access-Accept
//!   on this server ([`UsedStates`]; the driver records
//!   [`Verdict::spent_state`]);
//! - a wrong answer to a State (wrong or replayed code, anything not shaped
//!   like a code, such as the password again) is an Access-Reject and one
//!   of its `challenge_max_tries` ([`Env::max_tries`]; the driver counts
//!   [`Verdict::wrong_try`]); the last is answered [`TOO_MANY_TRIES`], and so
//!   is every later answer to that State here, before the registry is asked;
//! - attributes of the primary's Access-Accept go on our Access-Accept only.
//!
//! # Adding a method
//!
//! A new way to pass the second factor (text-message code, recovery code)
//! is added beside the existing ones, as push was; the existing variants
//! and arms stay as they are:
//!
//! 1. what selects it (a mode, a keyword typed instead of the code such as
//!    `password,sms`) is read by [`crate::request::parse`] into a new
//!    [`Step`], handled by a new arm of [`Login::start`];
//! 2. each thing it needs from outside is a new [`Action`] (as
//!    [`Action::StartPush`], [`Action::AwaitPush`]) answered by a new
//!    [`Event`] ([`Event::PushStarted`], [`Event::PushOutcome`]); the driver
//!    in [`crate::auth`] performs it in one new arm and
//!    [`crate::fuzzing::Script`] gets a scripted answer;
//! 3. the wait for that answer is a new `Phase`, continued by a new arm of
//!    [`Login::resume`], which ends in a [`Decision`] like the others;
//! 4. a challenge spanning two Access-Requests seals a new
//!    [`Awaiting`] kind with its data (as [`Awaiting::PushResult`]), and the
//!    arm of [`Login::start`] that opens a State continues it;
//! 5. scripted tests (`tests/flow.rs`) cover each new branch with exact
//!    replies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Level;
use twostep_common::api::{AuthContext, Registrations, VerifyRequest, VerifyResponse};
use twostep_common::client::ClientError;
use twostep_common::decision::{self, Decision, DenyReason};
use twostep_common::phone::{self, Channel, CodeSent, SendCode, SendResult};
pub use twostep_common::push::MAX_WAIT_SECS;
use twostep_common::push::{
    PushContext, PushOutcome, PushResult, PushStarted, StartPush, StartResult,
};
use twostep_common::recovery;
use twostep_config::{FailMode, RadiusMode, UnenrolledPolicy};
use zeroize::Zeroizing;

use crate::pending::{Keyer, PendingKey, PushStep};
use crate::request::{self, is_push_keyword, Step};
use crate::settings::{Client, Upstream};
use crate::state::{self, Awaiting, Contents, Primary, StateKey, UsedStates};
use crate::upstream::PrimaryResult;
use crate::wire::{self, attr, code, RawAttr, RawPacket};

/// Reply-Message of an Access-Challenge for a user with codes only.
pub const CHALLENGE_PROMPT: &str = "Enter the verification code from your authenticator app";
/// Reply-Message of an Access-Challenge for a user with codes and a push device.
pub const CHALLENGE_PROMPT_OR_PUSH: &str = "Enter the code from your app, or type push";
/// Reply-Message of an Access-Challenge for a user with a push device only.
pub const CHALLENGE_PROMPT_PUSH_ONLY: &str = "Type push to approve the sign-in on your phone";
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
/// Reply-Message of the wrong answer that ends a challenge State
/// (`[radius] challenge_max_tries`), and of any later answer to it.
pub const TOO_MANY_TRIES: &str = "too many wrong codes, start again";
/// Reply-Message when the registry sends a number to match and the client
/// is marked `push_number_matching = false`.
pub const NUMBER_NOT_SHOWN: &str =
    "push needs a number this VPN cannot show: use a code from your app";
/// Reply-Message when `[radius] max_pending_pushes` push logins are pending.
pub const PUSH_BUSY: &str = "too many push requests in progress, try again later";
/// Reply-Message when no push answer came before the challenge's end.
pub const PUSH_EXPIRED: &str = "push not answered in time";
/// Longest a request without a number to show is held for its push's
/// answer, in seconds: the registry's longest challenge lifetime.
pub const MAX_PUSH_HOLD_SECS: u64 = 120;
/// Seconds past a challenge's expiry (the registry's clock) that a wait
/// still runs, so the registry itself reports it `expired`.
pub const PUSH_EXPIRY_GRACE_SECS: u64 = 2;

/// The Reply-Message of an Access-Challenge showing a push's number.
pub fn push_prompt(number: u8) -> String {
    format!("Approve on your phone: enter {number}, then press OK")
}

/// The Reply-Message of an Access-Challenge showing the number again while
/// the push is still pending.
pub fn push_pending_prompt(number: u8) -> String {
    format!("Not approved yet: enter {number} on your phone, then press OK")
}

/// The Reply-Message of an Access-Reject for a push that ended other than
/// approved, or was never started; `None` for approved and pending.
pub fn push_refusal(end: PushEnd) -> Option<&'static str> {
    Some(match end {
        PushEnd::Result(PushResult::Approved | PushResult::Pending)
        | PushEnd::Start(StartResult::Sent) => return None,
        PushEnd::Result(PushResult::Denied) => "push denied",
        PushEnd::Result(PushResult::Fraud) => {
            "push denied and reported as fraud: pushes are blocked until an administrator clears it"
        }
        PushEnd::Result(PushResult::WrongNumber) => "wrong number entered on the phone",
        PushEnd::Result(PushResult::Expired) => PUSH_EXPIRED,
        PushEnd::Result(PushResult::Cancelled) => "push cancelled",
        PushEnd::Start(StartResult::RateLimited) => "too many push requests, try again later",
        PushEnd::Start(StartResult::Blocked) => {
            "push blocked after a fraud report: ask an administrator to clear it"
        }
        PushEnd::Start(StartResult::NotEnrolled) => "no push device set up, use a code",
        PushEnd::Start(StartResult::UnknownUser) => DenyReason::NotEnrolled.message(),
        PushEnd::Start(StartResult::Locked) => DenyReason::Locked.message(),
        PushEnd::Start(StartResult::Disabled) => DenyReason::Disabled.message(),
    })
}

/// How a push ended: the registry's refusal to start it, or its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushEnd {
    /// The answer to the start.
    Start(StartResult),
    /// The challenge's result.
    Result(PushResult),
}

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

    /// Access-Challenge with [`CHALLENGE_PROMPT`], State and
    /// Session-Timeout (how long the NAS may wait for the answer, seconds,
    /// RFC 2865 §5.27).
    pub fn challenge(state: Vec<u8>, lifetime: Duration) -> Self {
        Self::challenge_with(CHALLENGE_PROMPT, state, lifetime)
    }

    /// Access-Challenge with `prompt` as Reply-Message, State and
    /// Session-Timeout (seconds).
    pub fn challenge_with(prompt: &str, state: Vec<u8>, lifetime: Duration) -> Self {
        let mut attrs = wire::reply_messages(prompt);
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

    /// The packet type's name: `Access-Accept`, `Access-Reject` or
    /// `Access-Challenge`.
    pub fn name(&self) -> &'static str {
        match self.code {
            code::ACCESS_ACCEPT => "Access-Accept",
            code::ACCESS_CHALLENGE => "Access-Challenge",
            _ => "Access-Reject",
        }
    }
}

/// The reply for a decision; `attrs` (from the primary) go on an Accept only.
pub fn reply_for(d: Decision, attrs: &[RawAttr]) -> Reply {
    match d {
        Decision::Verified | Decision::FailOpen => Reply::accept(attrs.to_vec()),
        Decision::WrongCode => Reply::reject(Some("code refused")),
        Decision::Replayed => Reply::reject(Some(decision::REPLAY_MESSAGE)),
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
    /// Keys push logins for [`crate::pending`].
    pub keyer: &'a Keyer,
    /// Wrong answers one challenge State takes (`[radius]
    /// challenge_max_tries`, at least 1).
    pub max_tries: u32,
}

/// A registry call that brought no usable answer, sorted by what the flow
/// does with it. The text (the [`ClientError`]'s) is for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryFailure {
    /// No answer at all ([`ClientError::is_unreachable`]): the fail mode applies.
    Unreachable(String),
    /// The registry refused the request itself ([`ClientError::Api`], a
    /// 4xx with an error body, e.g. a user name it cannot hold, or a push
    /// challenge it does not know for this host): nothing the user can retry.
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
        /// Where the login comes from (as on a verification), for the
        /// registry's audit of a login refused before the Access-Challenge.
        context: AuthContext,
    },
    /// Send this to the registry's verify (which consumes the code on
    /// success); resume with [`Event::Verified`].
    Verify(VerifyRequest),
    /// Look the push login `0` up among the pending ones
    /// ([`crate::pending::PendingPushes::join`]); resume with
    /// [`Event::Joined`]. From here on the request is a pending push: the
    /// driver lets go of its `max_in_flight` place.
    Join(PendingKey),
    /// Start a push ([`twostep_common::client::RegistryClient::start_push`]);
    /// resume with [`Event::PushStarted`].
    StartPush(StartPush),
    /// Wait up to `wait` (at most [`MAX_WAIT_SECS`]) for the push's result
    /// ([`twostep_common::client::RegistryClient::push_outcome`]); resume
    /// with [`Event::PushOutcome`].
    AwaitPush {
        /// The registry's challenge id.
        challenge_id: String,
        /// The longest wait.
        wait: Duration,
    },
    /// Cancel the push ([`twostep_common::client::RegistryClient::cancel_push`]);
    /// resume with [`Event::PushCancelled`].
    CancelPush {
        /// The registry's challenge id.
        challenge_id: String,
    },
    /// Ask the registry to send the user a code by text message or call.
    /// Answer: [`Event::CodeSent`].
    SendCode {
        /// The user.
        user: String,
        /// The channel and the login's context.
        request: SendCode,
    },
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
            Self::LookUp { user, context } => f
                .debug_struct("LookUp")
                .field("user", user)
                .field("context", context)
                .finish(),
            Self::Verify(r) => f.debug_tuple("Verify").field(r).finish(),
            Self::Join(k) => f.debug_tuple("Join").field(k).finish(),
            Self::StartPush(r) => f.debug_tuple("StartPush").field(r).finish(),
            Self::AwaitPush { challenge_id, wait } => f
                .debug_struct("AwaitPush")
                .field("challenge_id", challenge_id)
                .field("wait", wait)
                .finish(),
            Self::CancelPush { challenge_id } => f
                .debug_struct("CancelPush")
                .field("challenge_id", challenge_id)
                .finish(),
            Self::SendCode { user, request } => f
                .debug_struct("SendCode")
                .field("user", user)
                .field("request", request)
                .finish(),
            Self::Reply(v) => f.debug_tuple("Reply").field(v).finish(),
        }
    }
}

/// What [`Action::Join`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// No identical login is pending: this one goes on.
    Lead,
    /// An identical login's reply (an Access-Challenge showing its number,
    /// or its final reply): this one's too.
    Reply(Reply),
    /// Too many push logins pending (`max_pending_pushes`), or too many
    /// copies waiting on this one.
    Full,
    /// The identical login ended without a reply.
    LeaderGone,
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
    /// Answer to [`Action::Join`].
    Joined(Joined),
    /// Answer to [`Action::StartPush`].
    PushStarted(Result<PushStarted, RegistryFailure>),
    /// Answer to [`Action::AwaitPush`].
    PushOutcome(Result<PushOutcome, RegistryFailure>),
    /// Answer to [`Action::CancelPush`].
    PushCancelled(Result<(), RegistryFailure>),
    /// Answer to [`Action::SendCode`].
    CodeSent(Result<CodeSent, RegistryFailure>),
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Self::Primary(_) => "primary result",
            Self::Registrations(_) => "registrations",
            Self::Verified(_) => "verify result",
            Self::Joined(_) => "pending lookup",
            Self::PushStarted(_) => "push start",
            Self::PushOutcome(_) => "push outcome",
            Self::PushCancelled(_) => "push cancel",
            Self::CodeSent(_) => "code send",
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

/// What a verdict means for the push it concerns, for
/// [`crate::pending::PendingPushes::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushMark {
    /// The reply shows the number of a push still pending until `until`
    /// (Unix s).
    Pending {
        /// The registry's challenge id.
        challenge_id: String,
        /// When the push ends at the latest.
        until: u64,
    },
    /// The reply ends the push.
    Ended {
        /// The registry's challenge id.
        challenge_id: String,
    },
}

/// The log line of a verdict: the driver writes `text` at `level` with the
/// client's name, `user` and `upstream` (when set) as fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: Level,
    /// The message (never a code, password or push number).
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
    /// The push this reply shows or ends, if any.
    pub push: Option<PushMark>,
    /// The State this request answered with a wrong (or replayed, or
    /// malformed) code: the driver counts it with
    /// [`UsedStates::count_wrong`].
    pub wrong_try: Option<SpentState>,
}

/// A push challenge as the flow follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    id: String,
    number: Option<u8>,
    /// The registry's expiry (Unix s).
    expires_at: u64,
}

impl Challenge {
    /// The contents of a State awaiting this push's result, number `n`
    /// shown, good until `expires_at` (Unix s).
    fn state(&self, n: u8, primary: Primary, expires_at: u64, attrs: Vec<RawAttr>) -> Contents {
        Contents {
            awaiting: Awaiting::PushResult {
                challenge_id: self.id.clone(),
                number: n,
                expires_at: self.expires_at,
            },
            primary,
            expires_at,
            attrs,
        }
    }
}

/// What a wait for a push result ends in while still pending.
enum WhenPending {
    /// A held request (no number shown): the push has expired.
    Expire,
    /// A collecting request: the number again, in a State of the same
    /// challenge that expires at `state_expires`.
    Prompt {
        primary: Primary,
        state_expires: u64,
    },
}

/// What the login waits for.
enum Phase {
    /// [`Event::Primary`]; then `then`.
    Primary(AfterPrimary),
    /// [`Event::Registrations`] before an Access-Challenge (or, in
    /// `auto-push`, a push); `primary` and `attrs` go into its State.
    Registrations {
        primary: Primary,
        attrs: Vec<RawAttr>,
        push: Option<PendingKey>,
    },
    /// [`Event::Verified`]; `attrs` go on the Accept.
    Verify { attrs: Vec<RawAttr> },
    /// [`Event::Joined`]; then `then`.
    Join {
        attrs: Vec<RawAttr>,
        then: AfterJoin,
    },
    /// [`Event::PushStarted`].
    StartPush {
        primary: Primary,
        attrs: Vec<RawAttr>,
    },
    /// [`Event::PushOutcome`], until `deadline` (Unix s).
    AwaitPush {
        challenge: Challenge,
        deadline: u64,
        pending: WhenPending,
        attrs: Vec<RawAttr>,
    },
    /// [`Event::PushCancelled`]; then this verdict.
    Cancel(Box<Verdict>),
    /// [`Event::CodeSent`]; then an Access-Challenge for the code.
    SendCode {
        /// What the primary said.
        primary: Primary,
        /// The primary's Access-Accept attributes.
        attrs: Vec<RawAttr>,
        /// How the code goes out.
        channel: Channel,
        /// The code prompt of the user's other methods (an app, a push
        /// device, the other channel), when the send was the default's:
        /// a refused send then asks for one of those, as PAM does, instead
        /// of ending the login.
        fallback: Option<String>,
    },
    /// Nothing: the reply was given.
    Done,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Primary(_) => "the primary result",
            Self::Registrations { .. } => "the registrations",
            Self::Verify { .. } => "the verify result",
            Self::Join { .. } => "the pending lookup",
            Self::StartPush { .. } => "the push start",
            Self::AwaitPush { .. } => "the push outcome",
            Self::Cancel(_) => "the push cancel",
            Self::SendCode { .. } => "the code send",
            Self::Done => "nothing (login over)",
        }
    }
}

/// What follows the primary's Access-Accept.
enum AfterPrimary {
    /// `append`: verify the code typed after the delimiter.
    Code(Zeroizing<String>),
    /// `append` with `push`: start a push (login `0`).
    Push(PendingKey),
    /// `append` with `sms` or `call`: send a code, then challenge.
    Phone(Channel),
    /// `challenge`: look up the registrations, then challenge; `auto-push`
    /// (login `Some(key)`): look up, then push or challenge.
    Challenge(Option<PendingKey>),
}

/// What follows [`Joined::Lead`].
enum AfterJoin {
    /// Start the push.
    Start { primary: Primary },
    /// Collect the result of `challenge`, shown in a State of this server
    /// that expires at `state_expires`.
    Collect {
        challenge: Challenge,
        primary: Primary,
        state_expires: u64,
    },
}

/// One Access-Request's login, from the request to its reply.
pub struct Login<'a> {
    env: Env<'a>,
    user: Option<String>,
    context: AuthContext,
    phase: Phase,
    /// The State this request answers; spent on an Access-Accept.
    answers: Option<SpentState>,
    /// Wrong answers that State took before this request.
    tries_before: u32,
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
            tries_before: 0,
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
            Step::PasswordAndPush { password } => {
                let key = login.push_key(PushStep::Start, &password, None);
                login.primary(password, AfterPrimary::Push(key))
            }
            Step::PasswordAndPhone { password, channel } => {
                login.primary(password, AfterPrimary::Phone(channel))
            }
            Step::Password { password } => {
                let key = (env.client.mode == RadiusMode::AutoPush)
                    .then(|| login.push_key(PushStep::Start, &password, None));
                login.primary(password, AfterPrimary::Challenge(key))
            }
        };
        (login, action)
    }

    /// Continues with the result of the last [`Action`], at `now` (Unix s).
    /// An event the login does not wait for ends it with an Access-Reject
    /// (logged as an internal error): the flow fails closed.
    pub fn resume(&mut self, event: Event, now: u64) -> Action {
        match (std::mem::replace(&mut self.phase, Phase::Done), event) {
            (Phase::Primary(then), Event::Primary(result)) => self.primary_done(then, result),
            (
                Phase::Registrations {
                    primary,
                    attrs,
                    push,
                },
                Event::Registrations(result),
            ) => self.registrations_done(primary, attrs, push, result, now),
            (Phase::Verify { attrs }, Event::Verified(result)) => match result {
                Ok(resp) => self.decide(
                    decision::from_response(&resp, UnenrolledPolicy::Deny),
                    &attrs,
                    None,
                ),
                Err(f) => self.registry_failed(f, &attrs),
            },
            (Phase::Join { attrs, then }, Event::Joined(joined)) => {
                self.joined(attrs, then, joined, now)
            }
            (Phase::StartPush { primary, attrs }, Event::PushStarted(result)) => {
                self.push_started(primary, attrs, result, now)
            }
            (
                Phase::AwaitPush {
                    challenge,
                    deadline,
                    pending,
                    attrs,
                },
                Event::PushOutcome(result),
            ) => self.push_outcome(challenge, deadline, pending, attrs, result, now),
            (
                Phase::SendCode {
                    primary,
                    attrs,
                    channel,
                    fallback,
                },
                Event::CodeSent(result),
            ) => self.code_sent(primary, attrs, channel, fallback, result, now),
            (Phase::Cancel(mut verdict), Event::PushCancelled(result)) => {
                if let Err(f) = result {
                    verdict
                        .log
                        .text
                        .push_str(&format!("; cancelling the push failed: {f}"));
                }
                Action::Reply(*verdict)
            }
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

    fn push_key(&self, step: PushStep, typed: &[u8], state: Option<&[u8]>) -> PendingKey {
        self.env.keyer.key(
            step,
            &self.env.client.name,
            self.user.as_deref().unwrap_or_default(),
            self.context.host.as_deref(),
            typed,
            state,
        )
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
            Ok(_) if used.wrong_tries(&state, now) >= self.env.max_tries.max(1) => self.reply(
                Reply::reject(Some(TOO_MANY_TRIES)),
                Level::INFO,
                format!(
                    "Access-Reject: State ended after {} wrong codes (challenge_max_tries)",
                    used.wrong_tries(&state, now)
                ),
            ),
            Ok(Contents {
                awaiting,
                primary,
                expires_at,
                attrs,
            }) => {
                if let (Awaiting::Code, Some(channel)) = (&awaiting, Channel::from_keyword(&code)) {
                    return self.send_code(primary, attrs, channel, None);
                }
                let step = match &awaiting {
                    Awaiting::Code if !is_push_keyword(&code) => None,
                    Awaiting::Code => Some(PushStep::Start),
                    Awaiting::PushResult { .. } => Some(PushStep::Collect),
                };
                let key = step.map(|step| self.push_key(step, code.as_bytes(), Some(&state)));
                self.tries_before = used.wrong_tries(&state, now);
                self.answers = Some(SpentState { state, expires_at });
                match (awaiting, key) {
                    (Awaiting::Code, Some(key)) => {
                        self.join(key, attrs, AfterJoin::Start { primary })
                    }
                    (Awaiting::Code, None) => self.code(code, attrs),
                    (Awaiting::PushResult { .. }, None) => self.reply(
                        Reply::reject(None),
                        Level::ERROR,
                        "Access-Reject: internal error: a push State without its key".into(),
                    ),
                    (
                        Awaiting::PushResult {
                            challenge_id,
                            number,
                            expires_at: challenge_expires,
                        },
                        Some(key),
                    ) => {
                        let challenge = Challenge {
                            id: challenge_id,
                            number: Some(number),
                            expires_at: challenge_expires,
                        };
                        let then = AfterJoin::Collect {
                            challenge,
                            primary,
                            state_expires: expires_at,
                        };
                        self.join(key, attrs, then)
                    }
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
            AfterPrimary::Push(key) => self.join(key, attrs, AfterJoin::Start { primary }),
            AfterPrimary::Phone(channel) => self.send_code(primary, attrs, channel, None),
            AfterPrimary::Challenge(push) => {
                self.phase = Phase::Registrations {
                    primary,
                    attrs,
                    push,
                };
                Action::LookUp {
                    user: self.user_name(),
                    context: self.context.clone(),
                }
            }
        }
    }

    /// Before a challenge: users who cannot pass (unknown, not enrolled,
    /// locked, disabled) are refused without being prompted for a code. In
    /// `auto-push` (`push` set), a user with a push device gets a push;
    /// otherwise the prompt names what the user has: codes, push, or both.
    fn registrations_done(
        &mut self,
        primary: Primary,
        attrs: Vec<RawAttr>,
        push: Option<PendingKey>,
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
        let (codes, devices) = reg.as_ref().map_or((false, false), |r| {
            (r.has_code_method(), !r.push_devices().is_empty())
        });
        if let (Some(key), true) = (push, devices) {
            return self.join(key, attrs, AfterJoin::Start { primary });
        }
        let channels = reg.as_ref().map(phone::channels).unwrap_or_default();
        let default_phone = reg
            .as_ref()
            .and_then(|r| r.first_offer())
            .and_then(|m| phone::channel_of(m.kind));
        let base = match (codes, devices) {
            (true, true) => CHALLENGE_PROMPT_OR_PUSH,
            (false, true) => CHALLENGE_PROMPT_PUSH_ONLY,
            _ => CHALLENGE_PROMPT,
        };
        let with_phone;
        let prompt = match (codes || devices, channels.is_empty()) {
            (_, true) => base,
            (false, false) => {
                with_phone = phone::phone_only_prompt(&channels)
                    .unwrap_or_default()
                    .trim_end_matches([':', ' '])
                    .to_owned();
                with_phone.as_str()
            }
            (true, false) => {
                with_phone = format!("{base}{}", phone::keyword_offer(&channels));
                with_phone.as_str()
            }
        };
        if let Some(channel) = default_phone {
            // Something else to offer if this send is refused: an app, a
            // push device, or the other channel.
            let others = codes || devices || channels.iter().any(|c| *c != channel);
            let fallback = others.then(|| prompt.to_owned());
            return self.send_code(primary, attrs, channel, fallback);
        }
        let contents = Contents {
            awaiting: Awaiting::Code,
            primary,
            expires_at: now.saturating_add(self.env.state_lifetime.as_secs()),
            attrs,
        };
        let what = match (base, channels.is_empty()) {
            (_, false) => "code requested, sms or call offered",
            (CHALLENGE_PROMPT, true) => "code requested",
            (CHALLENGE_PROMPT_OR_PUSH, true) => "code or push requested",
            _ => "push offered",
        };
        self.challenge(prompt, &contents, self.env.state_lifetime, what.into())
    }

    /// Ends with an Access-Challenge showing `prompt`, its State sealed from
    /// `contents`, Session-Timeout `lifetime`.
    fn challenge(
        &mut self,
        prompt: &str,
        contents: &Contents,
        lifetime: Duration,
        what: String,
    ) -> Action {
        let user = self.user_name();
        match state::seal(
            self.env.state_key,
            &self.env.client.name,
            user.as_bytes(),
            contents,
        ) {
            Ok(s) => self.reply(
                Reply::challenge_with(prompt, s, lifetime),
                Level::INFO,
                format!("Access-Challenge: {what}"),
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
    /// Asks the registry to send a code by `channel`; its answer goes on
    /// in [`Login::code_sent`].
    fn send_code(
        &mut self,
        primary: Primary,
        attrs: Vec<RawAttr>,
        channel: Channel,
        fallback: Option<String>,
    ) -> Action {
        self.phase = Phase::SendCode {
            primary,
            attrs,
            channel,
            fallback,
        };
        Action::SendCode {
            user: self.user_name(),
            request: SendCode {
                channel,
                context: self.context.clone(),
            },
        }
    }

    /// A sent code is asked for in an Access-Challenge saying where it
    /// went; one that did not go out is said, then the user's other
    /// methods are asked for (`fallback`), or, with none, an Access-Reject
    /// ends the login.
    fn code_sent(
        &mut self,
        primary: Primary,
        attrs: Vec<RawAttr>,
        channel: Channel,
        fallback: Option<String>,
        result: Result<CodeSent, RegistryFailure>,
        now: u64,
    ) -> Action {
        let contents = Contents {
            awaiting: Awaiting::Code,
            primary,
            expires_at: now.saturating_add(self.env.state_lifetime.as_secs()),
            attrs,
        };
        let (result, why_logged) = match result {
            Ok(s) => match s.result {
                SendResult::Sent => {
                    let to = s.sent_to.unwrap_or_else(|| "your phone".into());
                    return self.challenge(
                        &phone::sent_message(channel, &to),
                        &contents,
                        self.env.state_lifetime,
                        format!("code sent ({channel})"),
                    );
                }
                SendResult::Locked => {
                    return self.decide(Decision::Denied(DenyReason::Locked), &contents.attrs, None)
                }
                SendResult::Disabled => {
                    return self.decide(
                        Decision::Denied(DenyReason::Disabled),
                        &contents.attrs,
                        None,
                    )
                }
                SendResult::UnknownUser => {
                    return self.decide(
                        Decision::Denied(DenyReason::NotEnrolled),
                        &contents.attrs,
                        None,
                    )
                }
                other => (other, other.as_str().to_owned()),
            },
            // A send the registry did not answer is "could not send",
            // never the fail mode (phone::UNANSWERED_SEND).
            Err(f) => (phone::UNANSWERED_SEND, f.to_string()),
        };
        let why = phone::send_refusal(result, channel).unwrap_or("code not sent");
        match fallback {
            Some(prompt) => self.challenge(
                &format!("{why}. {prompt}"),
                &contents,
                self.env.state_lifetime,
                format!("code not sent ({channel}): {why_logged}; other methods offered"),
            ),
            None => self.reply(
                Reply::reject(Some(why)),
                Level::WARN,
                format!("Access-Reject: code not sent ({channel}): {why_logged}"),
            ),
        }
    }

    fn code(&mut self, code: Zeroizing<String>, attrs: Vec<RawAttr>) -> Action {
        if !recovery::is_second_factor_format(&code) {
            return self.decide(Decision::WrongCode, &attrs, None);
        }
        self.phase = Phase::Verify { attrs };
        Action::Verify(VerifyRequest {
            username: self.user_name(),
            code: code.as_str().to_owned(),
            context: self.context.clone(),
        })
    }

    /// Before the first push call: is an identical login pending?
    fn join(&mut self, key: PendingKey, attrs: Vec<RawAttr>, then: AfterJoin) -> Action {
        self.phase = Phase::Join { attrs, then };
        Action::Join(key)
    }

    fn joined(&mut self, attrs: Vec<RawAttr>, then: AfterJoin, joined: Joined, now: u64) -> Action {
        match (joined, then) {
            (Joined::Lead, AfterJoin::Start { primary }) => {
                self.phase = Phase::StartPush { primary, attrs };
                Action::StartPush(StartPush {
                    username: self.user_name(),
                    context: PushContext {
                        service: self.context.service.clone(),
                        host: self.context.host.clone(),
                        remote_addr: self.context.remote_addr.clone(),
                        tty: None,
                        nas: self.context.host.clone(),
                    },
                })
            }
            (
                Joined::Lead,
                AfterJoin::Collect {
                    challenge,
                    primary,
                    state_expires,
                },
            ) => {
                let deadline = state_expires.min(now.saturating_add(MAX_WAIT_SECS));
                let pending = WhenPending::Prompt {
                    primary,
                    state_expires,
                };
                self.await_push(challenge, deadline, pending, attrs, now)
            }
            (Joined::Reply(reply), _) => {
                // The identical login's driver spent its State.
                self.answers = None;
                let text = format!(
                    "{}: the reply of an identical pending push login (a retransmission with a new Identifier)",
                    reply.name()
                );
                self.reply(reply, Level::INFO, text)
            }
            (Joined::Full, _) => self.reply(
                Reply::reject(Some(PUSH_BUSY)),
                Level::WARN,
                "Access-Reject: too many pending push logins (max_pending_pushes), or copies of this one".into(),
            ),
            (Joined::LeaderGone, _) => self.reply(
                Reply::reject(Some(UNAVAILABLE)),
                Level::ERROR,
                "Access-Reject: the identical pending push login ended without a reply".into(),
            ),
        }
    }

    fn await_push(
        &mut self,
        challenge: Challenge,
        deadline: u64,
        pending: WhenPending,
        attrs: Vec<RawAttr>,
        now: u64,
    ) -> Action {
        let wait = deadline.saturating_sub(now).min(MAX_WAIT_SECS);
        let challenge_id = challenge.id.clone();
        self.phase = Phase::AwaitPush {
            challenge,
            deadline,
            pending,
            attrs,
        };
        Action::AwaitPush {
            challenge_id,
            wait: Duration::from_secs(wait),
        }
    }

    fn push_started(
        &mut self,
        primary: Primary,
        attrs: Vec<RawAttr>,
        result: Result<PushStarted, RegistryFailure>,
        now: u64,
    ) -> Action {
        let started = match result {
            Ok(s) => s,
            Err(f) => return self.registry_failed(f, &attrs),
        };
        let c = match (started.result, started.challenge) {
            (StartResult::Sent, Some(c)) => c,
            (StartResult::Sent, None) => {
                return self.reply(
                    Reply::reject(Some(UNAVAILABLE)),
                    Level::ERROR,
                    "Access-Reject: the registry sent a push without its challenge".into(),
                )
            }
            (refused, _) => {
                let message = push_refusal(PushEnd::Start(refused));
                let level = match refused {
                    StartResult::RateLimited | StartResult::Blocked => Level::WARN,
                    _ => Level::INFO,
                };
                return self.reply(
                    Reply::reject(message),
                    level,
                    format!("Access-Reject: push not sent: {}", refused.as_str()),
                );
            }
        };
        let challenge = Challenge {
            id: c.challenge_id,
            number: c.number,
            expires_at: u64::try_from(c.expires_at).unwrap_or(0),
        };
        match challenge.number {
            Some(n) if self.env.client.push_number_matching => {
                let state_expires = now.saturating_add(self.env.state_lifetime.as_secs());
                let contents = challenge.state(n, primary, state_expires, attrs);
                self.show_number(&push_prompt(n), challenge, &contents, now, "push sent")
            }
            Some(_) => {
                let text = format!(
                    "Access-Reject: push {} needs number matching, but client {:?} is marked push_number_matching = false (it cannot show an Access-Challenge); push cancelled",
                    challenge.id, self.env.client.name
                );
                let action = self.reply(Reply::reject(Some(NUMBER_NOT_SHOWN)), Level::WARN, text);
                self.cancel_then(challenge.id, action)
            }
            None => {
                let deadline = challenge
                    .expires_at
                    .saturating_add(PUSH_EXPIRY_GRACE_SECS)
                    .min(now.saturating_add(MAX_PUSH_HOLD_SECS));
                self.await_push(challenge, deadline, WhenPending::Expire, attrs, now)
            }
        }
    }

    /// An Access-Challenge showing `prompt` (the number) with a State of
    /// `contents`; the push stays pending until it ends. A State that
    /// cannot be sealed cancels the push.
    fn show_number(
        &mut self,
        prompt: &str,
        challenge: Challenge,
        contents: &Contents,
        now: u64,
        what: &str,
    ) -> Action {
        let until = contents
            .expires_at
            .min(challenge.expires_at.saturating_add(PUSH_EXPIRY_GRACE_SECS));
        let lifetime = Duration::from_secs(until.saturating_sub(now).max(1));
        let what = format!("{what}, challenge {}, number shown", challenge.id);
        let mut action = self.challenge(prompt, contents, lifetime, what);
        match &mut action {
            Action::Reply(v) if v.reply.code == code::ACCESS_CHALLENGE => {
                v.push = Some(PushMark::Pending {
                    challenge_id: challenge.id,
                    until,
                });
                action
            }
            _ => self.cancel_then(challenge.id, action),
        }
    }

    fn push_outcome(
        &mut self,
        challenge: Challenge,
        deadline: u64,
        pending: WhenPending,
        attrs: Vec<RawAttr>,
        result: Result<PushOutcome, RegistryFailure>,
        now: u64,
    ) -> Action {
        let result = match result {
            Ok(o) => o.result,
            Err(RegistryFailure::RefusedRequest(m)) => {
                let text = format!(
                    "Access-Reject: the registry does not know push {} for this host ({m}): its result was collected already, or another server of the pool (with another host API key) started it",
                    challenge.id
                );
                return self.reply(Reply::reject(Some(STATE_REFUSED)), Level::WARN, text);
            }
            Err(f) => return self.registry_failed(f, &attrs),
        };
        match result {
            PushResult::Pending if now < deadline => {
                self.await_push(challenge, deadline, pending, attrs, now)
            }
            PushResult::Pending => match pending {
                WhenPending::Prompt {
                    primary,
                    state_expires,
                } if now < state_expires
                    && now <= challenge.expires_at.saturating_add(PUSH_EXPIRY_GRACE_SECS) =>
                {
                    let Some(n) = challenge.number else {
                        return self.expire(challenge);
                    };
                    let contents = challenge.state(n, primary, state_expires, attrs);
                    let prompt = push_pending_prompt(n);
                    self.show_number(&prompt, challenge, &contents, now, "push still pending")
                }
                _ => self.expire(challenge),
            },
            PushResult::Approved => {
                let mut action = self.decide(Decision::Verified, &attrs, None);
                if let Action::Reply(v) = &mut action {
                    v.log.text = format!("Access-Accept: push {} approved", challenge.id);
                }
                self.ended(challenge.id, action)
            }
            refused => {
                let level = match refused {
                    PushResult::Fraud => Level::WARN,
                    _ => Level::INFO,
                };
                let text = format!("Access-Reject: push {} {}", challenge.id, refused.as_str());
                let action = self.reply(
                    Reply::reject(push_refusal(PushEnd::Result(refused))),
                    level,
                    text,
                );
                self.ended(challenge.id, action)
            }
        }
    }

    /// No answer before the end: the push is cancelled, the login refused.
    fn expire(&mut self, challenge: Challenge) -> Action {
        let text = format!(
            "Access-Reject: push {} not answered in time; cancelled",
            challenge.id
        );
        let action = self.reply(Reply::reject(Some(PUSH_EXPIRED)), Level::INFO, text);
        self.cancel_then(challenge.id, action)
    }

    /// Marks the verdict in `action` as ending push `challenge_id`.
    fn ended(&mut self, challenge_id: String, mut action: Action) -> Action {
        if let Action::Reply(v) = &mut action {
            v.push = Some(PushMark::Ended { challenge_id });
        }
        action
    }

    /// Cancels push `challenge_id`, then gives the verdict in `action`
    /// (marked as ending the push).
    fn cancel_then(&mut self, challenge_id: String, action: Action) -> Action {
        match self.ended(challenge_id.clone(), action) {
            Action::Reply(v) => {
                self.phase = Phase::Cancel(Box::new(v));
                Action::CancelPush { challenge_id }
            }
            other => other,
        }
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
        let mut reply = reply_for(d, attrs);
        // A wrong answer to a challenge uses up one of its State's tries;
        // the last ends it.
        let wrong_try = match d {
            Decision::WrongCode | Decision::Replayed => self.answers.take(),
            _ => None,
        };
        let tries = self.tries_before.saturating_add(1);
        let last_try = wrong_try.is_some() && tries >= self.env.max_tries.max(1);
        if last_try {
            reply = Reply::reject(Some(TOO_MANY_TRIES));
        }
        let verdict = reply.name();
        let (level, mut text) = match (d, cause) {
            (Decision::FailOpen, Some(e)) => (
                Level::WARN,
                format!(
                    "{verdict}: {e}; fail_mode = open lets the user in without a second factor"
                ),
            ),
            (_, Some(e)) => (Level::ERROR, format!("{verdict}: {e} (fail_mode = closed)")),
            _ => (Level::INFO, format!("{verdict}: {}", d.as_str())),
        };
        if last_try {
            text.push_str(&format!(
                "; State ended after {tries} wrong codes (challenge_max_tries)"
            ));
        }
        let mut action = self.reply(reply, level, text);
        if let Action::Reply(v) = &mut action {
            v.wrong_try = wrong_try;
        }
        action
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
            push: None,
            wrong_try: None,
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
            (Decision::Replayed, decision::REPLAY_MESSAGE),
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
