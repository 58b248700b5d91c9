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
//! | [`Action::Done`] | nothing: the hook returns [`End::code`] and logs [`Who::line`] |
//!
//! The clock is an input: `total_timeout` ([`Budget`]) is spent by the time
//! between a registry action and the event answering it, never by time at
//! a prompt, and each registry action carries what is left (`within`) for
//! the driver to bound the call with. An event that does not answer the
//! last action ends the flow with `PAM_SYSTEM_ERR`; nothing here panics.
//!
//! The rules applied are `twostep_common`'s, not restated here:
//! [`policy::exemption`], [`policy::from_registrations`],
//! [`policy::split_forward_pass`], [`policy::is_code_format`],
//! [`decision::unreachable`], and [`CodeLoop`] (which applies
//! [`decision::from_result`]).
//!
//! # Adding a method (push, text message, recovery code)
//!
//! 1. Add the method's waits as new `State` variants, e.g.
//!    `PushOffered` (waiting for the answer to "press Enter for a push"),
//!    `PushStarting { since }` (challenge being created),
//!    `PushWaiting { since, challenge }` (waiting for the device, with its
//!    deadline in the action's `within`).
//! 2. Add one [`Action`] per new kind of I/O (`StartChallenge`,
//!    `AwaitChallenge { id, within }`, `Inform { text }`) and one [`Event`]
//!    per result (`Challenge(Result<_, CallError>)`, ...); the driver
//!    performs them through its `Registry` / `PamIo`.
//! 3. Write one handler per new state and add its `(state, event)` arms
//!    to `Flow::dispatch`.
//! 4. Pick the method in `Flow::begin_method`, the one place a method is
//!    chosen from the registrations. A push state that receives a typed
//!    code instead hands it to `Flow::code_try`.
//!
//! Registry calls go through `Flow::call` (the budget), failed calls
//! through `Flow::failed_call` (the fail mode), and every final result
//! through `Flow::finish` (PAM_AUTHTOK in `forward_pass` mode), so a new
//! method gets those rules without restating them. The code states are not
//! touched.

use crate::args::{Args, FirstPass};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};
use twostep_common::api::{AuthContext, Registrations, VerifyRequest, VerifyResponse};
use twostep_common::decision::{self, Decision};
use twostep_common::policy::{self, Answer, Budget, CodeLoop, Next, Outcome};
use twostep_config::PamConfig;
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
    /// Module arguments.
    pub args: Args,
    /// The `[pam]` table.
    pub pam: PamConfig,
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
}

impl End {
    /// An end from its parts.
    pub fn new(code: PamCode, level: Level, reason: impl Into<String>) -> Self {
        Self {
            code,
            level,
            reason: reason.into(),
        }
    }

    /// The end of a decision (ARCHITECTURE.md "PAM result mapping").
    pub fn decided(d: Decision) -> Self {
        let (code, level) = map_decision(d);
        Self::new(code, level, d.as_str())
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
        Decision::WrongCode => (PamCode::AuthErr, Level::Notice),
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
    /// The flow is over; further steps return the same end.
    Done(End),
}

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
    /// A success in `forward_pass` mode waits for PAM_AUTHTOK to be set.
    SettingAuthtok {
        /// The end once it is set.
        end: End,
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
            (State::SettingAuthtok { end }, Event::AuthtokSet(r)) => self.on_authtok_set(end, r),
            (state, event) => {
                self.state = state;
                self.internal(&event);
            }
        }
    }

    // ---- shared rules ---------------------------------------------------

    /// Ends the flow with `end`.
    fn end(&mut self, end: End) {
        self.state = State::Finished(end.clone());
        self.outbox.push_back(Action::Done(end));
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
            Some(p) if self.inputs.args.forward_pass && end.code == PamCode::Success => {
                self.state = State::SettingAuthtok { end };
                self.outbox.push_back(Action::SetAuthtok(p));
            }
            _ => self.end(end),
        }
    }

    // ---- before any method ----------------------------------------------

    fn start(&mut self, now: Instant) {
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
        match policy::from_registrations(reg.as_ref(), self.inputs.pam.unenrolled) {
            Some(d) => self.end(End::decided(d)),
            None => self.begin_method(now),
        }
    }

    /// The one place a method is chosen once the user is known to have
    /// one. Today every method is a code method.
    fn begin_method(&mut self, now: Instant) {
        self.debug("user has a method; asking for a code".into());
        self.code_begin(now);
    }

    // ---- code method ----------------------------------------------------

    /// The first answer: PAM_AUTHTOK or a prompt, by module argument.
    fn code_begin(&mut self, now: Instant) {
        match self.inputs.args.first_pass {
            FirstPass::Prompt => self.code_prompt(),
            FirstPass::Try => {
                let forward_pass = self.inputs.args.forward_pass;
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
        if self.inputs.args.first_pass == FirstPass::Use {
            return self.end(End::from_outcome(self.tries.no_more_answers()));
        }
        let text = if self.inputs.args.forward_pass {
            &self.inputs.pam.forward_pass_prompt
        } else {
            &self.inputs.pam.prompt
        };
        self.outbox.push_back(Action::Prompt {
            text: text.clone(),
            echo_on: false,
        });
        self.state = State::CodeAnswer;
    }

    fn on_code_answer(&mut self, now: Instant, answer: Result<Option<Typed>, PamCode>) {
        match answer {
            Ok(Some(a)) => self.code_try(now, a, false),
            // No answer, or the conversation failed: PAM_CONV_ERR before
            // any code, a wrong code after one.
            Ok(None) | Err(_) => self.end(End::from_outcome(self.tries.no_more_answers())),
        }
    }

    /// One answer: a malformed one is a wrong try without asking the
    /// registry; a code is sent for verification.
    fn code_try(&mut self, now: Instant, answer: Typed, from_authtok: bool) {
        let (password, code) = parse(self.inputs.args.forward_pass, answer.expose());
        let password = password.map(|p| Typed(Zeroizing::new(p.to_owned())));
        let Some(code) = code else {
            return self.code_verdict(Answer::Malformed, password, from_authtok);
        };
        match self.call() {
            Ok(within) => {
                let request = CodeRequest(VerifyRequest {
                    username: self.inputs.who.user.clone(),
                    code: code.to_owned(),
                    context: AuthContext {
                        service: self.inputs.who.service.clone(),
                        host: self.inputs.host.clone(),
                        remote_addr: self.inputs.who.rhost.clone(),
                        tty: self.inputs.who.tty.clone(),
                    },
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
            Next::Done(outcome) => self.finish(End::from_outcome(outcome), password),
        }
    }

    fn on_authtok_set(&mut self, end: End, r: Result<(), PamCode>) {
        match r {
            Ok(()) => self.end(end),
            Err(c) => self.end(End::new(c, Level::Error, "cannot set PAM_AUTHTOK")),
        }
    }
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
        (None, policy::is_code_format(answer).then_some(answer))
    }
}
