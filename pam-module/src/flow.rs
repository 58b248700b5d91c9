//! The `auth` flow as a step machine that does no I/O.
//!
//! A [`Flow`] is built from [`Inputs`] already read by the driver (PAM
//! items, module arguments, the `[pam]` table, the user's groups, the host
//! name). The driver (`auth.rs`) then calls [`Flow::step`] with the current
//! time and an [`Event`], starting with [`Event::Start`]; each call returns
//! the next [`Action`]. The driver performs it (a log line, a registry
//! call, a prompt, setting PAM_AUTHTOK) and feeds the result back as the
//! matching event, until [`Action::Done`]:
//!
//! | action | the driver answers with |
//! |---|---|
//! | [`Action::Log`] | [`Event::Logged`] |
//! | [`Action::LookUp`] | [`Event::Registrations`] |
//! | [`Action::Prompt`] | [`Event::Answer`] |
//! | [`Action::Verify`] | [`Event::Verdict`] |
//! | [`Action::SetAuthtok`] | [`Event::AuthtokSet`] |
//! | [`Action::StartPush`] | [`Event::PushStarted`] |
//! | [`Action::AwaitPush`] | [`Event::PushOutcome`] |
//! | [`Action::CancelPush`] | [`Event::PushCancelled`] |
//! | [`Action::Stash`] | [`Event::Stashed`] |
//! | [`Action::SendCode`] | [`Event::CodeSent`] |
//! | [`Action::Done`] | nothing: the hook returns [`End::code`] and logs [`Who::line`] |
//!
//! The clock is an input: `total_timeout` ([`Budget`]) is spent by the time
//! between a registry action and the event answering it, never by time at
//! a prompt, and each registry action carries what is left (`within`,
//! `wait`) for the driver to bound the call with. An event that does not
//! answer the last action ends the flow with `PAM_SYSTEM_ERR`; nothing
//! here panics.
//!
//! The rules applied are `twostep_common`'s, not restated here:
//! [`policy::exemption`], [`policy::from_registrations`],
//! [`policy::split_forward_pass`], [`is_second_factor_format`] (a code
//! or a temporary access code),
//! [`decision::unreachable`], and [`CodeLoop`] (which applies
//! [`decision::from_result`]).
//!
//! # Methods
//!
//! `Flow::begin_method` picks one from the registrations:
//!
//! - **code** (`CodeAnswer`, `CodeVerdict`): prompt, verify, the tries
//!   loop; PAM_AUTHTOK first with `try_first_pass` / `use_first_pass`.
//! - **push** (`PushOffered`, `PushStarting`, `PushNumber`, `PushWaiting`,
//!   `PushCancelling`), for a user with a usable push device when `[pam]
//!   push` is not `"off"` and neither `forward_pass` nor `use_first_pass`
//!   is given. The code prompt becomes [`PUSH_OFFER_PROMPT`] (a typed code
//!   goes the code way, Enter sends the push; a push-only user is asked to
//!   press Enter); with `push = "auto"` the push is sent without it. The
//!   number to type on the device comes *inside the next prompt* (OpenSSH
//!   holds info messages back until a prompt; sudo shows only prompts);
//!   once that prompt is answered the outcome is waited for in long-polls
//!   of at most [`MAX_WAIT_SECS`] within what is left of `total_timeout`.
//!   Nothing waits for a push before a prompt was answered, so a caller
//!   without a conversation gets `PAM_CONV_ERR` at once. A conversation
//!   that fails at the number prompt, or a budget used up while the push
//!   is pending, cancels the challenge ([`Action::CancelPush`]) and never
//!   lets in. A denial, a fraud report or a wrong number is final: no
//!   second push.
//!
//! - **text message / phone call** (`CodeSending`), for a user with a
//!   phone method: the code prompt adds `, or type sms` (or `call`,
//!   [`phone::with_keyword_offer`]); typing it asks the registry to send a
//!   code ([`Action::SendCode`]) and the next prompt says where it went
//!   ([`phone::sent_prompt`]: `Code sent by text message to ••42: `); the
//!   answer is a code like any other. When the user's default method is a
//!   phone method (and the login can prompt), the code is sent at the
//!   start without asking. A send that did not go out (gateway failing,
//!   too many codes) is said before the next prompt
//!   ([`phone::send_refusal`]); at most [`MAX_SENDS_PER_LOGIN`] sends per
//!   call.
//!
//! # Adding a method (text message, recovery code)
//!
//! 1. Add the method's waits as new `State` variants (the push states
//!    are the example).
//! 2. Add one [`Action`] per new kind of I/O and one [`Event`] per
//!    result; the driver performs them through its `Registry` / `PamIo`.
//! 3. Write one handler per new state and add its `(state, event)` arms
//!    to `Flow::dispatch`.
//! 4. Pick the method in `Flow::begin_method`, the one place a method is
//!    chosen from the registrations. A state that receives a typed code
//!    instead hands it to `Flow::code_try`.
//!
//! # Verifying after the password module
//!
//! With `forward_pass stash_code` the first line splits the answer, sets
//! PAM_AUTHTOK to the password part and keeps the code in PAM data
//! ([`Action::Stash`]) instead of verifying it, and answers `PAM_IGNORE`
//! (a denial as it is; never `PAM_SUCCESS`, so a stack that loses the
//! third line cannot let anyone in on this one). Every other end of that
//! line (an exempt user, a denial before the prompt, the fail mode) is
//! kept as [`Stash::Decided`]. A `verify_stashed` line after
//! `pam_unix.so` (reached only when the password was right, with
//! `requisite` there) verifies the kept code, once, or repeats how the
//! first line ended; with nothing kept it fails closed. So a code is
//! consumed only when the password was right.
//!
//! Registry calls go through `Flow::call` (the budget), failed calls
//! through `Flow::failed_call` (the fail mode), and every final result
//! through `Flow::finish` (PAM_AUTHTOK in `forward_pass` mode), so a new
//! method gets those rules without restating them.

use crate::args::{Args, FirstPass};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};
use twostep_common::api::{
    AuthContext, Registrations, VerifyRequest, VerifyResponse, VerifyResult,
};
use twostep_common::decision::{self, Decision, REPLAY_MESSAGE, WRONG_CODE_MESSAGE};
use twostep_common::phone::{self, Channel, CodeSent, SendCode, SendResult};
use twostep_common::policy::{self, Answer, Budget, CodeLoop, Next, Outcome};
use twostep_common::push::{
    PushContext, PushResult, PushStarted, StartPush, StartResult, StartedChallenge, MAX_WAIT_SECS,
};
use twostep_common::recovery::is_second_factor_format;
use twostep_config::{PamConfig, PamPush};
use zeroize::{Zeroize, Zeroizing};

/// The PAM results this module returns (Linux-PAM `_pam_types.h` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamCode {
    /// `PAM_SUCCESS`.
    Success,
    /// `PAM_AUTH_ERR`.
    AuthErr,
    /// `PAM_MAXTRIES`.
    MaxTries,
    /// `PAM_PERM_DENIED`.
    PermDenied,
    /// `PAM_AUTHINFO_UNAVAIL`.
    AuthinfoUnavail,
    /// `PAM_IGNORE`.
    Ignore,
    /// `PAM_CONV_ERR`.
    ConvErr,
    /// `PAM_SYSTEM_ERR`.
    SystemErr,
    /// `PAM_BUF_ERR`.
    BufErr,
    /// `PAM_USER_UNKNOWN` (no user name could be had).
    UserUnknown,
    /// Any other code from libpam, passed through.
    Other(i32),
}

impl PamCode {
    /// The Linux-PAM name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "PAM_SUCCESS",
            Self::AuthErr => "PAM_AUTH_ERR",
            Self::MaxTries => "PAM_MAXTRIES",
            Self::PermDenied => "PAM_PERM_DENIED",
            Self::AuthinfoUnavail => "PAM_AUTHINFO_UNAVAIL",
            Self::Ignore => "PAM_IGNORE",
            Self::ConvErr => "PAM_CONV_ERR",
            Self::SystemErr => "PAM_SYSTEM_ERR",
            Self::BufErr => "PAM_BUF_ERR",
            Self::UserUnknown => "PAM_USER_UNKNOWN",
            Self::Other(_) => "PAM_(other)",
        }
    }
}

/// syslog priority of a log line (facility authpriv is pam_syslog's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `LOG_DEBUG`, only with the `debug` argument.
    Debug,
    /// `LOG_INFO`.
    Info,
    /// `LOG_NOTICE`.
    Notice,
    /// `LOG_WARNING`.
    Warning,
    /// `LOG_ERR`.
    Error,
}

/// Who and where: PAM_USER, PAM_SERVICE, PAM_RHOST, PAM_TTY, for log lines
/// and the registry's audit context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    /// PAM_USER (never empty).
    pub user: String,
    /// PAM_SERVICE.
    pub service: Option<String>,
    /// PAM_RHOST.
    pub rhost: Option<String>,
    /// PAM_TTY.
    pub tty: Option<String>,
}

impl Who {
    /// The one log line of a hook call: user, service, rhost, result and
    /// reason (never a code or password).
    pub fn line(&self, end: &End) -> String {
        format!(
            "user={:?} service={:?} rhost={:?} result={} reason={:?}",
            self.user,
            self.service.as_deref().unwrap_or(""),
            self.rhost.as_deref().unwrap_or(""),
            end.code.name(),
            end.reason
        )
    }
}

/// Everything the flow decides on, read by the driver before it starts.
pub struct Inputs {
    /// PAM items.
    pub who: Who,
    /// This host's name, for the registry's audit context.
    pub host: Option<String>,
    /// The names of the user's groups (primary included); may be empty
    /// when no group list is configured ([`policy::needs_groups`]).
    pub groups: Vec<String>,
    /// PAM_AUTHTOK as an earlier module left it; read only for
    /// `try_first_pass` / `use_first_pass`.
    pub authtok: Option<Typed>,
    /// What a `stash_code` line left in PAM data; read (and removed) by
    /// the driver only for `verify_stashed`.
    pub stash: Option<Stash>,
    /// Module arguments.
    pub args: Args,
    /// The `[pam]` table.
    pub pam: PamConfig,
}

/// What a `forward_pass stash_code` line leaves in PAM data for the
/// `verify_stashed` line after the password module (wiped when dropped).
#[derive(Debug)]
pub enum Stash {
    /// The code part of the answer, not yet verified; the password part
    /// went to PAM_AUTHTOK.
    Code(Typed),
    /// The first line ended without a code to verify (an exempt user, a
    /// denial before the prompt, too many malformed answers, the fail
    /// mode): `verify_stashed` ends the same way.
    Decided(End),
}

/// Why a registry call gave no answer to decide on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not reached at all, or no answer within the deadline: the fail mode
    /// applies.
    #[error("{0}")]
    Unreachable(String),
    /// TLS failure, connection broken mid-request, 5xx, refused
    /// credential, bad answer, client setup: never the fail mode.
    #[error("{0}")]
    Other(String),
}

/// How a hook call ends: the PAM result, the level of its log line and
/// the reason written there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// The PAM result.
    pub code: PamCode,
    /// syslog priority of the log line.
    pub level: Level,
    /// Why, for the log line (never a code or password).
    pub reason: String,
    /// Told the user (`PAM_ERROR_MSG`) before the hook returns: why they
    /// are refused when no retry helps ([`DenyReason::notice`]).
    pub notice: Option<&'static str>,
}

impl End {
    /// An end from its parts, telling the user nothing.
    pub fn new(code: PamCode, level: Level, reason: impl Into<String>) -> Self {
        Self {
            code,
            level,
            reason: reason.into(),
            notice: None,
        }
    }

    /// The end of a decision (ARCHITECTURE.md "PAM result mapping"); a
    /// refusal tells the user why.
    pub fn decided(d: Decision) -> Self {
        let (code, level) = map_decision(d);
        Self {
            notice: match d {
                Decision::Denied(r) => Some(r.notice()),
                _ => None,
            },
            ..Self::new(code, level, d.as_str())
        }
    }

    /// The end of the tries loop's outcome.
    pub fn from_outcome(o: Outcome) -> Self {
        match o {
            Outcome::Decided(d) => Self::decided(d),
            Outcome::MaxTries => {
                Self::new(PamCode::MaxTries, Level::Notice, "too many wrong codes")
            }
            Outcome::NoAnswer => {
                Self::new(PamCode::ConvErr, Level::Notice, "no answer to the prompt")
            }
        }
    }
}

/// The PAM code and log level of a decision (ARCHITECTURE.md "PAM result mapping").
pub fn map_decision(d: Decision) -> (PamCode, Level) {
    match d {
        Decision::Verified => (PamCode::Success, Level::Info),
        Decision::WrongCode | Decision::Replayed => (PamCode::AuthErr, Level::Notice),
        Decision::Denied(_) => (PamCode::PermDenied, Level::Notice),
        Decision::Ignore => (PamCode::Ignore, Level::Info),
        Decision::Unavailable => (PamCode::AuthinfoUnavail, Level::Warning),
        Decision::FailOpen => (PamCode::Success, Level::Warning),
    }
}

/// Something the user typed (an answer, a password), wiped from memory
/// when dropped; `Debug` prints `Typed(<redacted>)`.
pub struct Typed(Zeroizing<String>);

impl Typed {
    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<Zeroizing<String>> for Typed {
    fn from(s: Zeroizing<String>) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Typed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Typed(<redacted>)")
    }
}

/// A verify request whose code is wiped from memory when it is dropped.
pub struct CodeRequest(VerifyRequest);

impl CodeRequest {
    /// The request to send.
    pub fn request(&self) -> &VerifyRequest {
        &self.0
    }
}

impl Drop for CodeRequest {
    fn drop(&mut self) {
        self.0.code.zeroize();
    }
}

impl fmt::Debug for CodeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // VerifyRequest's Debug redacts the code.
        self.0.fmt(f)
    }
}

/// What the driver does next.
#[derive(Debug)]
pub enum Action {
    /// Write one log line (only `debug` lines come this way; the final
    /// line is the driver's, from [`Action::Done`]). Answer: [`Event::Logged`].
    Log {
        /// syslog priority.
        level: Level,
        /// The line.
        message: String,
    },
    /// Ask the registry for `user`'s registrations, waiting at most
    /// `within`. Answer: [`Event::Registrations`].
    LookUp {
        /// PAM_USER.
        user: String,
        /// Where the login comes from, for the registry's audit of a
        /// login refused before any prompt.
        context: AuthContext,
        /// What is left of `total_timeout`; never zero.
        within: Duration,
    },
    /// One conversation prompt. Answer: [`Event::Answer`].
    Prompt {
        /// The prompt text.
        text: String,
        /// `PAM_PROMPT_ECHO_ON` when true, else `PAM_PROMPT_ECHO_OFF`.
        echo_on: bool,
    },
    /// Ask the registry to verify a code, waiting at most `within`.
    /// Answer: [`Event::Verdict`].
    Verify {
        /// The request (code wiped on drop).
        request: CodeRequest,
        /// What is left of `total_timeout`; never zero.
        within: Duration,
    },
    /// Set PAM_AUTHTOK to the password part of a `forward_pass` answer.
    /// Answer: [`Event::AuthtokSet`].
    SetAuthtok(Typed),
    /// Ask the registry to start a push challenge, waiting at most
    /// `within`. Answer: [`Event::PushStarted`].
    StartPush {
        /// The user and where the login comes from.
        request: StartPush,
        /// What is left of `total_timeout`; never zero.
        within: Duration,
    },
    /// Wait for the device's answer to a challenge: one long-poll of the
    /// registry lasting at most `wait`. Answer: [`Event::PushOutcome`].
    AwaitPush {
        /// The challenge.
        challenge_id: String,
        /// At most what is left of `total_timeout` and at most
        /// [`MAX_WAIT_SECS`]; never zero.
        wait: Duration,
    },
    /// Cancel a challenge the login no longer waits for, waiting at most
    /// `within` ([`PUSH_CANCEL_TIMEOUT`], outside `total_timeout`: the
    /// result is decided already). Answer: [`Event::PushCancelled`].
    CancelPush {
        /// The challenge.
        challenge_id: String,
        /// How long the cancel may take.
        within: Duration,
    },
    /// Ask the registry to send the user a code by text message or call,
    /// waiting at most `within`. Answer: [`Event::CodeSent`].
    SendCode {
        /// PAM_USER.
        user: String,
        /// The channel and where the login comes from.
        request: SendCode,
        /// What is left of `total_timeout`; never zero.
        within: Duration,
    },
    /// Keep `Stash` in PAM data for a later `verify_stashed` line,
    /// replacing what an earlier call left. Answer: [`Event::Stashed`].
    Stash(Stash),
    /// The flow is over; further steps return the same end.
    Done(End),
}

/// How long cancelling an abandoned push may take: 2 s, on top of
/// `total_timeout` (the result no longer depends on it; the registry's
/// expiry closes a challenge whose cancel did not get through).
pub const PUSH_CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// The first prompt for a user with a code method and a push device.
pub const PUSH_OFFER_PROMPT: &str = "Verification code, or press Enter for a push: ";

/// Codes one hook call asks the registry to send, at most (the
/// registry's own limit is per hour: [`phone::MAX_SENDS_PER_WINDOW`]).
pub const MAX_SENDS_PER_LOGIN: u32 = 3;

/// Characters of a device label shown in a prompt; longer ones are cut.
const MAX_LABEL_CHARS: usize = 64;

/// What happened since the last action.
#[derive(Debug)]
pub enum Event {
    /// The first step.
    Start,
    /// [`Action::Log`] was written.
    Logged,
    /// The answer to [`Action::LookUp`]; `Ok(None)` for a user the
    /// registry does not know.
    Registrations(Result<Option<Registrations>, CallError>),
    /// The answer to [`Action::Prompt`]: `Ok(None)` when the application
    /// gave no answer, `Err` when the conversation failed.
    Answer(Result<Option<Typed>, PamCode>),
    /// The answer to [`Action::Verify`].
    Verdict(Result<VerifyResponse, CallError>),
    /// The result of [`Action::SetAuthtok`].
    AuthtokSet(Result<(), PamCode>),
    /// The answer to [`Action::StartPush`].
    PushStarted(Result<PushStarted, CallError>),
    /// The answer to [`Action::AwaitPush`]: [`PushResult::Pending`] when
    /// the wait ran out with no answer from the device.
    PushOutcome(Result<PushResult, CallError>),
    /// The answer to [`Action::CancelPush`].
    PushCancelled(Result<(), CallError>),
    /// The result of [`Action::Stash`].
    Stashed(Result<(), PamCode>),
    /// The answer to [`Action::SendCode`].
    CodeSent(Result<CodeSent, CallError>),
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::Logged => "Logged",
            Self::Registrations(_) => "Registrations",
            Self::Answer(_) => "Answer",
            Self::Verdict(_) => "Verdict",
            Self::AuthtokSet(_) => "AuthtokSet",
            Self::PushStarted(_) => "PushStarted",
            Self::PushOutcome(_) => "PushOutcome",
            Self::PushCancelled(_) => "PushCancelled",
            Self::Stashed(_) => "Stashed",
            Self::CodeSent(_) => "CodeSent",
        }
    }
}

/// Where the flow stands: what it waits for. One group of variants per
/// method; a new method adds its own (see the module documentation).
enum State {
    /// Nothing done yet; waits for [`Event::Start`].
    Start,
    /// Waits for the registrations asked for at `since`.
    LookingUp {
        /// When [`Action::LookUp`] was issued.
        since: Instant,
    },
    /// Code method: waits for the typed answer to the code prompt.
    CodeAnswer,
    /// Code method: waits for the registry's verdict on a code.
    CodeVerdict {
        /// When [`Action::Verify`] was issued.
        since: Instant,
        /// The password part of a `forward_pass` answer.
        password: Option<Typed>,
        /// Whether the code came from PAM_AUTHTOK (for the debug line).
        from_authtok: bool,
    },
    /// A success in `forward_pass` mode (or, with `stash_code`, a code to
    /// keep) waits for PAM_AUTHTOK to be set.
    SettingAuthtok {
        /// The end once it is set.
        end: End,
        /// With `stash_code`: the code to keep next.
        code: Option<Typed>,
    },
    /// `stash_code`: waits for the stash to be kept.
    Stashing {
        /// This line's end once it is kept.
        end: End,
    },
    /// Push: waits for the answer to the prompt that offers a push (a
    /// code, or Enter for a push).
    PushOffered,
    /// Push: waits for the registry to start the challenge asked for at
    /// `since`.
    PushStarting {
        /// When [`Action::StartPush`] was issued.
        since: Instant,
    },
    /// Push: the number is shown; waits for Enter.
    PushNumber {
        /// The challenge sent.
        challenge: StartedChallenge,
    },
    /// Push: waits for the outcome asked for at `since`.
    PushWaiting {
        /// When [`Action::AwaitPush`] was issued.
        since: Instant,
        /// The challenge waited for.
        challenge_id: String,
    },
    /// Push: waits for an abandoned challenge to be cancelled.
    PushCancelling {
        /// The end once it is (or could not be) cancelled; never a success.
        end: End,
    },
    /// Text message / call: waits for the registry to send the code
    /// asked for at `since`.
    CodeSending {
        /// When [`Action::SendCode`] was issued.
        since: Instant,
        /// How.
        channel: Channel,
    },
    /// Over.
    Finished(End),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::LookingUp { .. } => "LookingUp",
            Self::CodeAnswer => "CodeAnswer",
            Self::CodeVerdict { .. } => "CodeVerdict",
            Self::SettingAuthtok { .. } => "SettingAuthtok",
            Self::Stashing { .. } => "Stashing",
            Self::PushOffered => "PushOffered",
            Self::PushStarting { .. } => "PushStarting",
            Self::PushNumber { .. } => "PushNumber",
            Self::PushWaiting { .. } => "PushWaiting",
            Self::PushCancelling { .. } => "PushCancelling",
            Self::CodeSending { .. } => "CodeSending",
            Self::Finished(_) => "Finished",
        }
    }
}

/// The `auth` flow of one hook call.
pub struct Flow {
    inputs: Inputs,
    tries: CodeLoop,
    budget: Budget,
    state: State,
    /// Set by [`Flow::begin_method`] when the user is offered a push.
    push: Option<PushOffer>,
    /// Set by [`Flow::begin_method`]: the channels of the user's phone
    /// methods (text message, call) offered at the code prompt.
    phone: Vec<Channel>,
    /// Codes sent (or tried to) in this call.
    sends: u32,
    /// Set by [`Flow::begin_method`]: the user has an app's code or a
    /// temporary access code to type.
    has_app_code: bool,
    /// Said before the next prompt, once: where a code went, or why it
    /// did not.
    phone_notice: Option<PhoneNotice>,
    /// A code send went unanswered: the fail mode no longer applies
    /// ([`phone::UNANSWERED_SEND`]).
    send_unanswered: bool,
    /// `stash_code`: the stash was handed out (once per call).
    stashed: bool,
    /// The last wrong try came from PAM_AUTHTOK (an earlier module's
    /// password), not from the user at a prompt: the next prompt says
    /// nothing about it.
    authtok_tried: bool,
    /// Actions decided but not yet handed out: zero or more
    /// [`Action::Log`] followed by exactly one other action.
    outbox: VecDeque<Action>,
}

impl Flow {
    /// A flow that has done nothing yet; the first step takes
    /// [`Event::Start`].
    pub fn new(inputs: Inputs) -> Self {
        Self {
            tries: CodeLoop::new(inputs.pam.max_tries, inputs.pam.unenrolled),
            budget: Budget::new(Duration::from_secs(inputs.pam.total_timeout)),
            inputs,
            state: State::Start,
            push: None,
            phone: Vec::new(),
            sends: 0,
            has_app_code: false,
            phone_notice: None,
            send_unanswered: false,
            stashed: false,
            authtok_tried: false,
            outbox: VecDeque::new(),
        }
    }

    /// The name of the state the flow is in (for tests and debugging).
    pub fn state_name(&self) -> &'static str {
        self.state.name()
    }

    /// Feeds `event`, which happened at `now` (a monotonic clock), and
    /// returns the next action.
    pub fn step(&mut self, now: Instant, event: Event) -> Action {
        if matches!(event, Event::Logged) {
            if let Some(next) = self.outbox.pop_front() {
                return next;
            }
        }
        if let State::Finished(end) = &self.state {
            return Action::Done(end.clone());
        }
        if matches!(event, Event::Logged) || !self.outbox.is_empty() {
            self.internal(&event);
        } else {
            self.dispatch(now, event);
        }
        match self.outbox.pop_front() {
            Some(next) => next,
            None => {
                // Every handler queues an action; this is a flow bug.
                let end = End::new(
                    PamCode::SystemErr,
                    Level::Error,
                    "internal error: no action",
                );
                self.state = State::Finished(end.clone());
                Action::Done(end)
            }
        }
    }

    /// The one `match` from (state, event) to a handler.
    fn dispatch(&mut self, now: Instant, event: Event) {
        match (std::mem::replace(&mut self.state, State::Start), event) {
            (State::Start, Event::Start) => self.start(now),
            (State::LookingUp { since }, Event::Registrations(r)) => {
                self.on_registrations(now, since, r)
            }
            (State::CodeAnswer, Event::Answer(a)) => self.on_code_answer(now, a),
            (
                State::CodeVerdict {
                    since,
                    password,
                    from_authtok,
                },
                Event::Verdict(v),
            ) => self.on_code_verdict(now, since, password, from_authtok, v),
            (State::SettingAuthtok { end, code }, Event::AuthtokSet(r)) => {
                self.on_authtok_set(end, code, r)
            }
            (State::Stashing { end }, Event::Stashed(r)) => self.on_stashed(end, r),
            (State::PushOffered, Event::Answer(a)) => self.on_push_offer_answer(now, a),
            (State::PushStarting { since }, Event::PushStarted(r)) => {
                self.on_push_started(now, since, r)
            }
            (State::PushNumber { challenge }, Event::Answer(a)) => {
                self.on_push_number_answer(now, challenge, a)
            }
            (
                State::PushWaiting {
                    since,
                    challenge_id,
                },
                Event::PushOutcome(r),
            ) => self.on_push_outcome(now, since, challenge_id, r),
            (State::PushCancelling { end }, Event::PushCancelled(r)) => {
                self.on_push_cancelled(end, r)
            }
            (State::CodeSending { since, channel }, Event::CodeSent(r)) => {
                self.on_code_sent(now, since, channel, r)
            }
            (state, event) => {
                self.state = state;
                self.internal(&event);
            }
        }
    }

    // ---- shared rules ---------------------------------------------------

    /// Ends the flow with `end`; a `stash_code` line first keeps `end`
    /// for `verify_stashed` and itself ends as [`first_line_end`] says.
    fn end(&mut self, end: End) {
        if self.inputs.args.stash_code && !self.inputs.args.verify_stashed && !self.stashed {
            self.stashed = true;
            self.state = State::Stashing {
                end: first_line_end(&end),
            };
            self.outbox.push_back(Action::Stash(Stash::Decided(end)));
            return;
        }
        self.state = State::Finished(end.clone());
        self.outbox.push_back(Action::Done(end));
    }

    /// Whether answers are split into password and code here (not in a
    /// `verify_stashed` line, whose code comes split already).
    fn splits(&self) -> bool {
        self.inputs.args.forward_pass && !self.inputs.args.verify_stashed
    }

    /// An event that does not answer the last action: a driver bug, fail
    /// closed.
    fn internal(&mut self, event: &Event) {
        let reason = format!(
            "internal error: event {} in state {}",
            event.name(),
            self.state.name()
        );
        self.outbox.clear();
        self.end(End::new(PamCode::SystemErr, Level::Error, reason));
    }

    fn debug(&mut self, message: String) {
        if self.inputs.args.debug {
            self.outbox.push_back(Action::Log {
                level: Level::Debug,
                message,
            });
        }
    }

    /// What is left of `total_timeout` for the next registry call; a
    /// budget used up counts as an unreachable registry.
    fn call(&self) -> Result<Duration, CallError> {
        let left = self.budget.remaining();
        if left.is_zero() {
            Err(CallError::Unreachable(
                "total_timeout used up before the registry answered".into(),
            ))
        } else {
            Ok(left)
        }
    }

    /// Spends the time a registry call took.
    fn spend(&mut self, since: Instant, now: Instant) {
        self.budget.spend(now.saturating_duration_since(since));
    }

    /// Ends after a registry call that gave no answer: the fail mode for
    /// an unreachable registry, `PAM_AUTHINFO_UNAVAIL` for anything else.
    /// `password` is a `forward_pass` answer's, handed on if fail-open lets
    /// the user in.
    fn failed_call(&mut self, e: CallError, password: Option<Typed>) {
        let end = match e {
            CallError::Unreachable(why) if self.send_unanswered => End::new(
                PamCode::AuthinfoUnavail,
                Level::Error,
                format!("{why} ({})", phone::FAIL_MODE_AFTER_A_FAILED_SEND),
            ),
            CallError::Unreachable(why) => {
                let d = decision::unreachable(self.inputs.pam.fail_mode);
                let (code, level) = map_decision(d);
                End::new(code, level, format!("{}: {why}", d.as_str()))
            }
            CallError::Other(why) => End::new(PamCode::AuthinfoUnavail, Level::Error, why),
        };
        self.finish(end, password);
    }

    /// Ends with `end`; on success in `forward_pass` mode the password is
    /// first set as PAM_AUTHTOK for the next module.
    fn finish(&mut self, end: End, password: Option<Typed>) {
        match password {
            Some(p) if self.splits() && end.code == PamCode::Success => {
                self.state = State::SettingAuthtok { end, code: None };
                self.outbox.push_back(Action::SetAuthtok(p));
            }
            _ => self.end(end),
        }
    }

    // ---- before any method ----------------------------------------------

    fn start(&mut self, now: Instant) {
        if self.inputs.args.verify_stashed {
            return self.verify_stashed(now);
        }
        if let Some(ex) = policy::exemption(
            &self.inputs.pam,
            &self.inputs.groups,
            self.inputs.who.rhost.as_deref(),
        ) {
            return self.end(End::new(PamCode::Ignore, Level::Info, ex.reason()));
        }
        match self.call() {
            Ok(within) => {
                self.state = State::LookingUp { since: now };
                self.outbox.push_back(Action::LookUp {
                    user: self.inputs.who.user.clone(),
                    context: self.context(),
                    within,
                });
            }
            Err(e) => self.failed_call(e, None),
        }
    }

    fn on_registrations(
        &mut self,
        now: Instant,
        since: Instant,
        r: Result<Option<Registrations>, CallError>,
    ) {
        self.spend(since, now);
        let reg = match r {
            Ok(reg) => reg,
            Err(e) => return self.failed_call(e, None),
        };
        match (
            policy::from_registrations(reg.as_ref(), self.inputs.pam.unenrolled),
            reg,
        ) {
            (Some(d), _) => self.end(End::decided(d)),
            (None, Some(reg)) => self.begin_method(now, &reg),
            // from_registrations decides every unknown user.
            (None, None) => self.end(End::decided(Decision::Unavailable)),
        }
    }

    /// The one place a method is chosen once the user is known to have
    /// one: a push when the user has a push device and this login can
    /// show a prompt for its number ([`Flow::push_unavailable`]), codes
    /// otherwise; with both, the code prompt offers the push.
    fn begin_method(&mut self, now: Instant, reg: &Registrations) {
        self.phone = phone::channels(reg);
        self.has_app_code = reg.has_code_method();
        let has_code = reg.has_code_method() || !self.phone.is_empty();
        let devices = reg.push_devices();
        let unavailable = self.push_unavailable();
        if let Some(channel) = self.default_phone(reg) {
            if !devices.is_empty() && unavailable.is_none() {
                let labels: Vec<&str> = devices.iter().map(|m| m.label.as_str()).collect();
                self.push = Some(PushOffer {
                    push_only: false,
                    devices: shown_label(&labels.join(", ")),
                });
            }
            self.debug(format!(
                "the user's default method is a phone method: sending a code ({channel})"
            ));
            return self.phone_send(now, channel);
        }
        match (devices.is_empty(), unavailable) {
            (false, None) => {
                let labels: Vec<&str> = devices.iter().map(|m| m.label.as_str()).collect();
                self.push = Some(PushOffer {
                    push_only: !has_code,
                    devices: shown_label(&labels.join(", ")),
                });
                if self.inputs.pam.push == PamPush::Auto {
                    self.debug("user has a push device; push = \"auto\": sending it".into());
                    self.push_start(now);
                } else if has_code {
                    self.debug("user has a method; asking for a code or Enter for a push".into());
                    self.code_begin(now);
                } else {
                    self.debug("user has only push devices; offering a push".into());
                    self.push_offer_prompt();
                }
            }
            (false, Some(why)) if !has_code => self.end(End::new(
                PamCode::PermDenied,
                Level::Notice,
                format!("the user has only push devices and push is not offered ({why})"),
            )),
            _ => {
                self.debug("user has a method; asking for a code".into());
                self.code_begin(now);
            }
        }
    }

    /// Why this login cannot offer a push, if it cannot: `push = "off"`;
    /// `use_first_pass` never prompts, and the number needs a prompt;
    /// `forward_pass` takes password and code in one answer.
    fn push_unavailable(&self) -> Option<&'static str> {
        if self.inputs.pam.push == PamPush::Off {
            Some("push = \"off\"")
        } else if self.inputs.args.first_pass == FirstPass::Use {
            Some("use_first_pass")
        } else if self.inputs.args.forward_pass {
            Some("forward_pass")
        } else {
            None
        }
    }

    /// `verify_stashed`: the kept code, verified once; or the first
    /// line's end repeated; nothing kept fails closed.
    fn verify_stashed(&mut self, now: Instant) {
        match self.inputs.stash.take() {
            Some(Stash::Code(code)) => {
                self.debug("verifying the code kept by the stash_code line".into());
                self.code_try(now, code, true)
            }
            Some(Stash::Decided(end)) => {
                let reason = format!("{} (as the stash_code line decided)", end.reason);
                self.end(End::new(end.code, end.level, reason))
            }
            None => self.end(End::new(
                PamCode::AuthErr,
                Level::Error,
                "verify_stashed: no code kept by a `forward_pass stash_code` line \
                 earlier in this stack",
            )),
        }
    }

    // ---- code method ----------------------------------------------------

    /// The first answer: PAM_AUTHTOK or a prompt, by module argument.
    fn code_begin(&mut self, now: Instant) {
        match self.inputs.args.first_pass {
            FirstPass::Prompt => self.code_prompt(),
            FirstPass::Try => {
                let forward_pass = self.splits();
                match self
                    .inputs
                    .authtok
                    .take()
                    .filter(|t| parse(forward_pass, t.expose()).1.is_some())
                {
                    Some(t) => self.code_try(now, t, true),
                    None => self.code_prompt(),
                }
            }
            FirstPass::Use => match self.inputs.authtok.take() {
                Some(t) => self.code_try(now, t, true),
                None => self.end(End::new(
                    PamCode::AuthErr,
                    Level::Notice,
                    "use_first_pass: PAM_AUTHTOK is not set",
                )),
            },
        }
    }

    /// Asks for (another) code; `use_first_pass` never prompts.
    fn code_prompt(&mut self) {
        if self.inputs.args.first_pass == FirstPass::Use || self.inputs.args.verify_stashed {
            return self.end(End::from_outcome(self.tries.no_more_answers()));
        }
        if self.push.is_some() {
            return self.push_offer_prompt();
        }
        let text = if self.splits() {
            self.inputs.pam.forward_pass_prompt.clone()
        } else {
            self.phone_prompt(&self.inputs.pam.prompt.clone())
        };
        let text = self.with_replay_notice(&text);
        self.outbox.push_back(Action::Prompt {
            text,
            echo_on: false,
        });
        self.state = State::CodeAnswer;
    }

    /// The registry's audit context: PAM_SERVICE, this host, PAM_RHOST,
    /// PAM_TTY.
    fn context(&self) -> AuthContext {
        AuthContext {
            service: self.inputs.who.service.clone(),
            host: self.inputs.host.clone(),
            remote_addr: self.inputs.who.rhost.clone(),
            tty: self.inputs.who.tty.clone(),
        }
    }

    /// `prompt`, after [`REPLAY_MESSAGE`] when the last code was used
    /// already, or [`WRONG_CODE_MESSAGE`] after a wrong one (inside the
    /// prompt, as the push number: OpenSSH holds info messages back, sudo
    /// shows only prompts).
    fn with_replay_notice(&mut self, prompt: &str) -> String {
        match self.phone_notice.take() {
            Some(PhoneNotice::Sent(text)) => return text,
            Some(PhoneNotice::Refused(why)) => return format!("{why}\n{prompt}"),
            None => {}
        }
        if self.tries.last_replayed() {
            format!("{REPLAY_MESSAGE}\n{prompt}")
        } else if self.tries.last_wrong() && !self.authtok_tried {
            format!("{WRONG_CODE_MESSAGE}\n{prompt}")
        } else {
            prompt.to_owned()
        }
    }

    fn on_code_answer(&mut self, now: Instant, answer: Result<Option<Typed>, PamCode>) {
        match answer {
            Ok(Some(a)) => match self.asked_channel(&a) {
                Some(channel) => self.phone_send(now, channel),
                None => self.code_try(now, a, false),
            },
            // No answer, or the conversation failed: PAM_CONV_ERR before
            // any code, a wrong code after one.
            Ok(None) | Err(_) => self.end(End::from_outcome(self.tries.no_more_answers())),
        }
    }

    /// One answer: a malformed one is a wrong try without asking the
    /// registry; a code is sent for verification.
    fn code_try(&mut self, now: Instant, answer: Typed, from_authtok: bool) {
        if policy::is_sshd_stand_in(answer.expose()) {
            return self.sshd_refused();
        }
        let (password, code) = parse(self.splits(), answer.expose());
        let password = password.map(|p| Typed(Zeroizing::new(p.to_owned())));
        let Some(code) = code else {
            return self.code_verdict(Answer::Malformed, password, from_authtok);
        };
        if self.inputs.args.stash_code && !self.inputs.args.verify_stashed {
            // Verified by the verify_stashed line, after the password.
            let code = Typed(Zeroizing::new(code.to_owned()));
            let end = End::new(
                PamCode::Ignore,
                Level::Info,
                "password set as PAM_AUTHTOK; code kept for verify_stashed",
            );
            return match password {
                Some(p) => {
                    self.state = State::SettingAuthtok {
                        end,
                        code: Some(code),
                    };
                    self.outbox.push_back(Action::SetAuthtok(p));
                }
                None => self.stash_code(code, end),
            };
        }
        match self.call() {
            Ok(within) => {
                let request = CodeRequest(VerifyRequest {
                    username: self.inputs.who.user.clone(),
                    code: code.to_owned(),
                    context: self.context(),
                });
                self.state = State::CodeVerdict {
                    since: now,
                    password,
                    from_authtok,
                };
                self.outbox.push_back(Action::Verify { request, within });
            }
            Err(e) => self.failed_call(e, password),
        }
    }

    fn on_code_verdict(
        &mut self,
        now: Instant,
        since: Instant,
        password: Option<Typed>,
        from_authtok: bool,
        verdict: Result<VerifyResponse, CallError>,
    ) {
        self.spend(since, now);
        match verdict {
            Ok(resp) => self.code_verdict(Answer::Verdict(resp.result), password, from_authtok),
            Err(e) => self.failed_call(e, password),
        }
    }

    /// Applies the tries loop to one try's result.
    fn code_verdict(&mut self, verdict: Answer, password: Option<Typed>, from_authtok: bool) {
        self.authtok_tried = from_authtok;
        self.debug(format!(
            "try {}{}: {:?}",
            self.tries.wrong_tries() + 1,
            if from_authtok { " (PAM_AUTHTOK)" } else { "" },
            match verdict {
                Answer::Malformed => "not a code",
                Answer::Verdict(r) => r.as_str(),
            }
        ));
        match self.tries.answer(verdict) {
            Next::Prompt => self.code_prompt(),
            Next::Done(outcome) => {
                let mut end = End::from_outcome(outcome);
                if outcome == Outcome::MaxTries && self.tries.last_replayed() {
                    end.reason
                        .push_str(&format!("; the last {}", Decision::Replayed.as_str()));
                }
                self.finish(end, password)
            }
        }
    }

    fn on_authtok_set(&mut self, end: End, code: Option<Typed>, r: Result<(), PamCode>) {
        match (r, code) {
            (Ok(()), Some(code)) => self.stash_code(code, end),
            (Ok(()), None) => self.end(end),
            (Err(c), _) => self.end(End::new(c, Level::Error, "cannot set PAM_AUTHTOK")),
        }
    }

    /// `stash_code`: keeps the code for `verify_stashed`, then ends with
    /// `end`.
    fn stash_code(&mut self, code: Typed, end: End) {
        self.stashed = true;
        self.state = State::Stashing { end };
        self.outbox.push_back(Action::Stash(Stash::Code(code)));
    }

    fn on_stashed(&mut self, end: End, r: Result<(), PamCode>) {
        match r {
            Ok(()) => self.end(end),
            // verify_stashed finds nothing and fails closed.
            Err(c) => self.end(End::new(
                c,
                Level::Error,
                "cannot keep the code for verify_stashed (pam_set_data)",
            )),
        }
    }

    /// The answer was sshd's stand-in password: sshd refused the account
    /// itself, whatever was typed; asking again is pointless and the
    /// registry is not asked.
    fn sshd_refused(&mut self) {
        self.end(End::new(
            PamCode::AuthErr,
            Level::Notice,
            "sshd refused this account before PAM (PermitRootLogin, an invalid or \
             not allowed user): its answer is sshd's stand-in password, no code was tried",
        ))
    }

    // ---- push method ----------------------------------------------------

    /// Offers a push: a code or Enter, or (push-only) Enter to send one.
    fn push_offer_prompt(&mut self) {
        let push_only = self
            .push
            .as_ref()
            .filter(|o| o.push_only)
            .map(|o| format!("Press Enter to send a push to {}: ", o.devices));
        let text = match push_only {
            Some(text) => text,
            None => {
                let text = self.phone_prompt(PUSH_OFFER_PROMPT);
                self.with_replay_notice(&text)
            }
        };
        self.outbox.push_back(Action::Prompt {
            text,
            echo_on: false,
        });
        self.state = State::PushOffered;
    }

    /// A typed answer is a code (for a user with a code method); Enter
    /// (or, push-only, any answer) sends the push.
    fn on_push_offer_answer(&mut self, now: Instant, answer: Result<Option<Typed>, PamCode>) {
        let push_only = self.push.as_ref().is_some_and(|o| o.push_only);
        match answer {
            Ok(Some(a)) if policy::is_sshd_stand_in(a.expose()) => self.sshd_refused(),
            Ok(Some(a)) if self.asked_channel(&a).is_some() => {
                let channel = self.asked_channel(&a).unwrap_or(Channel::Sms);
                self.phone_send(now, channel)
            }
            Ok(Some(a)) if !push_only && !a.expose().trim().is_empty() => {
                self.code_try(now, a, false)
            }
            Ok(Some(_)) => self.push_start(now),
            // As at the code prompt: PAM_CONV_ERR before any code, a wrong
            // code after one. No push was sent.
            Ok(None) | Err(_) => self.end(End::from_outcome(self.tries.no_more_answers())),
        }
    }

    fn push_start(&mut self, now: Instant) {
        match self.call() {
            Ok(within) => {
                let who = &self.inputs.who;
                let request = StartPush {
                    username: who.user.clone(),
                    context: PushContext {
                        service: who.service.clone(),
                        host: self.inputs.host.clone(),
                        remote_addr: who.rhost.clone(),
                        tty: who.tty.clone(),
                        nas: None,
                    },
                };
                self.state = State::PushStarting { since: now };
                self.outbox.push_back(Action::StartPush { request, within });
            }
            Err(e) => self.failed_call(e, None),
        }
    }

    fn on_push_started(&mut self, now: Instant, since: Instant, r: Result<PushStarted, CallError>) {
        self.spend(since, now);
        let started = match r {
            Ok(s) => s,
            Err(e) => return self.failed_call(e, None),
        };
        let refused = match (started.result, started.challenge) {
            (StartResult::Sent, Some(challenge)) => return self.push_number_prompt(challenge),
            (StartResult::Sent, None) => {
                return self.end(End::new(
                    PamCode::AuthinfoUnavail,
                    Level::Error,
                    "registry answered push_sent without a challenge",
                ))
            }
            (StartResult::RateLimited, _) => End::new(
                PamCode::PermDenied,
                Level::Notice,
                "push refused: rate limited",
            ),
            (StartResult::Blocked, _) => End::new(
                PamCode::PermDenied,
                Level::Warning,
                "push refused: blocked since a push was reported as fraud",
            ),
            // The registry's view changed since the lookup (a device
            // disabled, the user locked meanwhile): as a verdict would.
            (
                r @ (StartResult::NotEnrolled
                | StartResult::UnknownUser
                | StartResult::Locked
                | StartResult::Disabled),
                _,
            ) => {
                let as_verdict = match r {
                    StartResult::UnknownUser => VerifyResult::UnknownUser,
                    StartResult::Locked => VerifyResult::Locked,
                    StartResult::Disabled => VerifyResult::Disabled,
                    _ => VerifyResult::NotEnrolled,
                };
                let d = decision::from_result(as_verdict, self.inputs.pam.unenrolled);
                let (code, level) = map_decision(d);
                End::new(code, level, format!("push refused: {}", d.as_str()))
            }
        };
        self.end(refused);
    }

    /// Shows the number inside a prompt (OpenSSH holds info messages back
    /// until the next prompt; sudo shows only prompts).
    fn push_number_prompt(&mut self, challenge: StartedChallenge) {
        let device = shown_label(&challenge.device_label);
        self.debug(format!("push sent to {device}"));
        let text = match challenge.number {
            Some(n) => {
                format!("Push sent to {device}: enter {n} on your phone, then press Enter: ")
            }
            None => format!("Push sent to {device}: approve it on your phone, then press Enter: "),
        };
        self.outbox.push_back(Action::Prompt {
            text,
            echo_on: false,
        });
        self.state = State::PushNumber { challenge };
    }

    /// Any answer (its text is not used) starts the wait; a conversation
    /// that failed or gave none cancels the challenge.
    fn on_push_number_answer(
        &mut self,
        now: Instant,
        challenge: StartedChallenge,
        answer: Result<Option<Typed>, PamCode>,
    ) {
        match answer {
            Ok(Some(_)) => self.push_wait(now, challenge.challenge_id),
            Ok(None) | Err(_) => self.push_cancel(
                challenge.challenge_id,
                End::new(
                    PamCode::ConvErr,
                    Level::Notice,
                    "no answer to the push prompt; push cancelled",
                ),
            ),
        }
    }

    /// One more long-poll within what is left of `total_timeout`; none
    /// left: cancelled, `PAM_AUTH_ERR`.
    fn push_wait(&mut self, now: Instant, challenge_id: String) {
        let left = self.budget.remaining();
        if left.is_zero() {
            return self.push_cancel(
                challenge_id,
                End::new(
                    PamCode::AuthErr,
                    Level::Notice,
                    "push not answered within total_timeout; push cancelled",
                ),
            );
        }
        let wait = left.min(Duration::from_secs(MAX_WAIT_SECS));
        self.outbox.push_back(Action::AwaitPush {
            challenge_id: challenge_id.clone(),
            wait,
        });
        self.state = State::PushWaiting {
            since: now,
            challenge_id,
        };
    }

    fn on_push_outcome(
        &mut self,
        now: Instant,
        since: Instant,
        challenge_id: String,
        r: Result<PushResult, CallError>,
    ) {
        self.spend(since, now);
        let result = match r {
            Ok(result) => result,
            Err(e) => return self.failed_call(e, None),
        };
        self.debug(format!("push outcome: {}", result.as_str()));
        let (code, level, reason) = match result {
            PushResult::Pending => return self.push_wait(now, challenge_id),
            PushResult::Approved => (PamCode::Success, Level::Info, "push approved"),
            PushResult::Denied => (PamCode::PermDenied, Level::Notice, "push denied"),
            PushResult::Fraud => (
                PamCode::PermDenied,
                Level::Warning,
                "push reported as fraud",
            ),
            PushResult::WrongNumber => (
                PamCode::PermDenied,
                Level::Notice,
                "push answered with the wrong number",
            ),
            PushResult::Expired => (PamCode::AuthErr, Level::Notice, "push expired"),
            PushResult::Cancelled => (
                PamCode::PermDenied,
                Level::Notice,
                "push cancelled by the registry (device disabled)",
            ),
        };
        self.finish(End::new(code, level, reason), None);
    }

    /// Cancels `challenge_id`, then ends with `end` (never a success)
    /// whether or not the cancel got through.
    fn push_cancel(&mut self, challenge_id: String, end: End) {
        self.outbox.push_back(Action::CancelPush {
            challenge_id,
            within: PUSH_CANCEL_TIMEOUT,
        });
        self.state = State::PushCancelling { end };
    }

    fn on_push_cancelled(&mut self, end: End, r: Result<(), CallError>) {
        match r {
            Ok(()) => self.end(end),
            Err(e) => {
                let reason = format!("{}; cancelling it failed: {e}", end.reason);
                self.end(End::new(end.code, end.level, reason));
            }
        }
    }
}

impl Flow {
    // ---- text message / phone call ---------------------------------------

    /// The channel of the user's default method when it is a phone method
    /// and this login can prompt for the code it sends (not with
    /// `use_first_pass`, `forward_pass` or `verify_stashed`).
    fn default_phone(&self, reg: &Registrations) -> Option<Channel> {
        let args = &self.inputs.args;
        if args.first_pass == FirstPass::Use || args.forward_pass || args.verify_stashed {
            return None;
        }
        reg.first_offer().and_then(|m| phone::channel_of(m.kind))
    }

    /// `prompt` with `, or type sms` (and the like) for the user's phone
    /// channels; a user with phone methods alone and no code sent yet
    /// gets [`phone::phone_only_prompt`].
    fn phone_prompt(&self, prompt: &str) -> String {
        if self.push.is_none() && self.phone_only() && self.sends == 0 {
            if let Some(p) = phone::phone_only_prompt(&self.phone) {
                return p;
            }
        }
        phone::with_keyword_offer(prompt, &self.phone)
    }

    /// Whether the user's only methods are phone methods (no app, no
    /// temporary access code, no push offered).
    fn phone_only(&self) -> bool {
        !self.phone.is_empty() && !self.has_app_code
    }

    /// The channel `answer` asks for, if it is one of the user's.
    fn asked_channel(&self, answer: &Typed) -> Option<Channel> {
        Channel::from_keyword(answer.expose()).filter(|c| self.phone.contains(c))
    }

    /// Asks the registry to send a code by `channel`; past
    /// [`MAX_SENDS_PER_LOGIN`], says so at the next prompt instead.
    fn phone_send(&mut self, now: Instant, channel: Channel) {
        if self.sends >= MAX_SENDS_PER_LOGIN {
            self.phone_notice = Some(PhoneNotice::Refused(phone::TOO_MANY_SENDS.into()));
            return self.code_prompt();
        }
        self.sends += 1;
        match self.call() {
            Ok(within) => {
                let request = SendCode {
                    channel,
                    context: self.context(),
                };
                self.state = State::CodeSending {
                    since: now,
                    channel,
                };
                self.outbox.push_back(Action::SendCode {
                    user: self.inputs.who.user.clone(),
                    request,
                    within,
                });
            }
            Err(e) => self.failed_call(e, None),
        }
    }

    fn on_code_sent(
        &mut self,
        now: Instant,
        since: Instant,
        channel: Channel,
        r: Result<CodeSent, CallError>,
    ) {
        self.spend(since, now);
        let sent = match r {
            Ok(s) => s,
            Err(e) => {
                // Slow gateway, not a registry down: no fail mode.
                let why = match e {
                    CallError::Unreachable(w) | CallError::Other(w) => w,
                };
                self.outbox.push_back(Action::Log {
                    level: Level::Warning,
                    message: format!("{channel} code not sent: {why}"),
                });
                self.send_unanswered = true;
                CodeSent {
                    result: phone::UNANSWERED_SEND,
                    sent_to: None,
                    expires_at: None,
                }
            }
        };
        self.debug(format!("{channel} code: {}", sent.result.as_str()));
        let as_verdict = match sent.result {
            SendResult::Sent => {
                let to = sent
                    .sent_to
                    .as_deref()
                    .map_or_else(|| "your phone".to_owned(), shown_label);
                self.phone_notice = Some(PhoneNotice::Sent(phone::sent_prompt(channel, &to)));
                return self.code_prompt();
            }
            SendResult::UnknownUser => VerifyResult::UnknownUser,
            SendResult::Locked => VerifyResult::Locked,
            SendResult::Disabled => VerifyResult::Disabled,
            r => {
                let why = phone::send_refusal(r, channel).unwrap_or("the code was not sent");
                self.phone_notice = Some(PhoneNotice::Refused(why.to_owned()));
                return self.code_prompt();
            }
        };
        let d = decision::from_result(as_verdict, self.inputs.pam.unenrolled);
        let (code, level) = map_decision(d);
        self.end(End::new(
            code,
            level,
            format!("code not sent: {}", d.as_str()),
        ));
    }
}

/// What the next prompt says first about a text message or call.
enum PhoneNotice {
    /// The code went out: this prompt replaces the usual one.
    Sent(String),
    /// It did not: this line comes before the usual prompt.
    Refused(String),
}

/// How a `stash_code` line ends when it keeps `end` for
/// `verify_stashed`: never `PAM_SUCCESS` (a fail-open or allowed end is
/// `PAM_IGNORE` here and the success is the `verify_stashed` line's); any
/// other result as it is.
fn first_line_end(end: &End) -> End {
    let mut shown = end.clone();
    if end.code == PamCode::Success {
        shown.code = PamCode::Ignore;
        shown.reason = format!("{}; the success is verify_stashed's", end.reason);
    }
    shown
}

/// What [`Flow::begin_method`] found to offer.
struct PushOffer {
    /// The user has no code method.
    push_only: bool,
    /// The push devices' labels, as shown in a prompt.
    devices: String,
}

/// A device label as shown in a prompt: control characters (a terminal
/// escape) replaced by `?`, at most [`MAX_LABEL_CHARS`] characters, never
/// empty.
fn shown_label(label: &str) -> String {
    let mut out: String = label
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_LABEL_CHARS)
        .collect();
    if label.trim().chars().count() > MAX_LABEL_CHARS {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("your device");
    }
    out
}

/// Splits one answer into (password, code) by mode; the code is `None`
/// when the answer does not have the right shape.
fn parse(forward_pass: bool, answer: &str) -> (Option<&str>, Option<&str>) {
    if forward_pass {
        match policy::split_forward_pass(answer) {
            Some((p, c)) => (Some(p), Some(c)),
            None => (None, None),
        }
    } else {
        (None, is_second_factor_format(answer).then_some(answer))
    }
}
