//! Scripted tests of the `auth` flow through its driver: a scripted
//! conversation (answers in order, prompts recorded) and a scripted
//! registry (answers in order, requests recorded) share a clock that only
//! they move, so deadlines are tested without sleeping. No socket, no
//! libpam, no registry process.

use crate::args::Args;
use crate::auth::{drive, PamIo, Registry};
use crate::flow::{
    map_decision, Action, CallError, End, Event, Flow, Inputs, Level, PamCode, Stash, Typed, Who,
};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};
use twostep_common::api::{
    AuthContext, Method, MethodKind, Registrations, UserStatus, VerifyRequest, VerifyResponse,
    VerifyResult,
};
use twostep_common::decision::{Decision, DenyReason};
use twostep_common::policy::Outcome;
use twostep_common::push::{
    PushContext, PushResult, PushStarted, StartPush, StartResult, StartedChallenge,
};
use twostep_config::{FailMode, PamConfig, PamPush, UnenrolledPolicy};
use zeroize::Zeroizing;

/// A shared test clock.
type Clock = Rc<Cell<Instant>>;

fn advance(clock: &Clock, by: Duration) {
    clock.set(clock.get() + by);
}

/// A scripted PAM handle: PAM items, answers to prompts (each after some
/// time at the prompt), and a record of what the module did.
pub(crate) struct Conversation {
    pub who: Who,
    pub authtok: Option<String>,
    pub answers: VecDeque<(Duration, Result<Option<String>, PamCode>)>,
    pub prompts: Vec<(String, bool)>,
    /// The `PAM_ERROR_MSG`s shown, in order.
    pub told: Vec<String>,
    pub authtok_set: Option<String>,
    pub set_authtok_result: Result<(), PamCode>,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub clock: Clock,
    /// PAM data kept by `stash_code`.
    pub stash: Option<Stash>,
    pub set_stash_result: Result<(), PamCode>,
}

impl Default for Conversation {
    fn default() -> Self {
        Self {
            who: Who {
                user: "alice".into(),
                service: Some("sshd".into()),
                rhost: Some("192.0.2.9".into()),
                tty: None,
            },
            authtok: None,
            answers: VecDeque::new(),
            prompts: Vec::new(),
            told: Vec::new(),
            authtok_set: None,
            set_authtok_result: Ok(()),
            logs: RefCell::default(),
            clock: Rc::new(Cell::new(Instant::now())),
            stash: None,
            set_stash_result: Ok(()),
        }
    }
}

impl PamIo for Conversation {
    fn user(&mut self) -> Result<String, PamCode> {
        Ok(self.who.user.clone())
    }
    fn service(&self) -> Option<String> {
        self.who.service.clone()
    }
    fn rhost(&self) -> Option<String> {
        self.who.rhost.clone()
    }
    fn tty(&self) -> Option<String> {
        self.who.tty.clone()
    }
    fn authtok(&self) -> Option<Zeroizing<String>> {
        self.authtok.clone().map(Zeroizing::new)
    }
    fn set_authtok(&mut self, value: &str) -> Result<(), PamCode> {
        self.set_authtok_result?;
        self.authtok_set = Some(value.to_owned());
        Ok(())
    }
    /// With no answer left, the application gives none (`Ok(None)`).
    fn prompt(&mut self, text: &str, echo_on: bool) -> Result<Option<Zeroizing<String>>, PamCode> {
        self.prompts.push((text.to_owned(), echo_on));
        let (think, answer) = self
            .answers
            .pop_front()
            .unwrap_or((Duration::ZERO, Ok(None)));
        advance(&self.clock, think);
        answer.map(|a| a.map(Zeroizing::new))
    }
    fn tell(&mut self, text: &str) {
        self.told.push(text.to_owned());
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
    fn set_stash(&mut self, stash: Stash) -> Result<(), PamCode> {
        self.set_stash_result?;
        self.stash = Some(stash);
        Ok(())
    }
    fn take_stash(&mut self) -> Option<Stash> {
        self.stash.take()
    }
}

/// One scripted registry answer.
enum Reply {
    Registrations(Result<Option<Registrations>, CallError>),
    Verdict(Result<VerifyResponse, CallError>),
    Started(Result<PushStarted, CallError>),
    Outcome(Result<PushResult, CallError>),
    Cancelled(Result<(), CallError>),
    Sent(Result<twostep_common::phone::CodeSent, CallError>),
}

/// One recorded registry request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    LookUp {
        user: String,
        within: Duration,
    },
    Verify {
        user: String,
        code: String,
        context: AuthContext,
        within: Duration,
    },
    StartPush {
        user: String,
        context: PushContext,
        within: Duration,
    },
    AwaitPush {
        id: String,
        wait: Duration,
    },
    CancelPush {
        id: String,
        within: Duration,
    },
    SendCode {
        user: String,
        channel: twostep_common::phone::Channel,
    },
}

/// A scripted registry: each answer takes its time on the shared clock. A
/// request with no answer scripted for it fails the test.
struct ScriptedRegistry {
    replies: VecDeque<(Duration, Reply)>,
    calls: Vec<Call>,
    clock: Clock,
}

impl ScriptedRegistry {
    fn next(&mut self, call: Call) -> Reply {
        self.calls.push(call.clone());
        let (took, reply) = self
            .replies
            .pop_front()
            .unwrap_or_else(|| panic!("no registry answer scripted for {call:?}"));
        advance(&self.clock, took);
        reply
    }
}

impl Registry for ScriptedRegistry {
    fn registrations(
        &mut self,
        user: &str,
        context: &AuthContext,
        within: Duration,
    ) -> Result<Option<Registrations>, CallError> {
        assert_eq!(context.service.as_deref(), Some("sshd"), "{context:?}");
        assert_eq!(context.host.as_deref(), Some("host1"), "{context:?}");
        match self.next(Call::LookUp {
            user: user.into(),
            within,
        }) {
            Reply::Registrations(r) => r,
            _ => panic!("another answer scripted where a lookup came"),
        }
    }

    fn verify(
        &mut self,
        request: &VerifyRequest,
        within: Duration,
    ) -> Result<VerifyResponse, CallError> {
        match self.next(Call::Verify {
            user: request.username.clone(),
            code: request.code.clone(),
            context: request.context.clone(),
            within,
        }) {
            Reply::Verdict(r) => r,
            _ => panic!("another answer scripted where a verify came"),
        }
    }

    fn start_push(
        &mut self,
        request: &StartPush,
        within: Duration,
    ) -> Result<PushStarted, CallError> {
        match self.next(Call::StartPush {
            user: request.username.clone(),
            context: request.context.clone(),
            within,
        }) {
            Reply::Started(r) => r,
            _ => panic!("another answer scripted where a push start came"),
        }
    }

    fn push_outcome(&mut self, id: &str, wait: Duration) -> Result<PushResult, CallError> {
        match self.next(Call::AwaitPush {
            id: id.into(),
            wait,
        }) {
            Reply::Outcome(r) => r,
            _ => panic!("another answer scripted where a push wait came"),
        }
    }

    fn cancel_push(&mut self, id: &str, within: Duration) -> Result<(), CallError> {
        match self.next(Call::CancelPush {
            id: id.into(),
            within,
        }) {
            Reply::Cancelled(r) => r,
            _ => panic!("another answer scripted where a push cancel came"),
        }
    }

    fn send_code(
        &mut self,
        user: &str,
        request: &twostep_common::phone::SendCode,
        _within: Duration,
    ) -> Result<twostep_common::phone::CodeSent, CallError> {
        match self.next(Call::SendCode {
            user: user.into(),
            channel: request.channel,
        }) {
            Reply::Sent(r) => r,
            _ => panic!("another answer scripted where a send came"),
        }
    }
}

fn registrations(status: UserStatus, methods: usize) -> Option<Registrations> {
    Some(Registrations {
        temporary_access_until: None,
        place: None,
        elsewhere: Vec::new(),
        username: "alice".into(),
        status,
        methods: (0..methods)
            .map(|i| Method {
                id: i as i64 + 1,
                kind: MethodKind::Totp,
                label: "phone".into(),
                is_default: i == 0,
                created_at: 0,
                last_used_at: None,
                disabled: false,
            })
            .collect(),
    })
}

fn enrolled() -> Reply {
    Reply::Registrations(Ok(registrations(UserStatus::Active, 1)))
}

fn verdict(result: VerifyResult) -> Reply {
    Reply::Verdict(Ok(VerifyResponse {
        result,
        method_id: (result == VerifyResult::Accept).then_some(1),
        locked_until: None,
        not_set_up_for: None,
    }))
}

const REFUSED: &str = "registry unreachable: connection refused";

fn unreachable() -> CallError {
    CallError::Unreachable(REFUSED.into())
}

/// One scripted hook call.
struct Case {
    args: Vec<&'static str>,
    pam: PamConfig,
    groups: Vec<String>,
    io: Conversation,
    replies: VecDeque<(Duration, Reply)>,
}

/// What it did.
struct Ran {
    end: End,
    /// The hook's final log line.
    line: String,
    prompts: Vec<(String, bool)>,
    /// The `PAM_ERROR_MSG`s shown.
    told: Vec<String>,
    calls: Vec<Call>,
    /// Lines logged during the flow (debug), the final line not included.
    logs: Vec<(Level, String)>,
    authtok_set: Option<String>,
    /// What is kept in PAM data once the call is over.
    stash: Option<Stash>,
}

fn case() -> Case {
    Case {
        args: Vec::new(),
        pam: PamConfig::default(),
        groups: Vec::new(),
        io: Conversation::default(),
        replies: VecDeque::new(),
    }
}

impl Case {
    fn arg(mut self, a: &'static str) -> Self {
        self.args.push(a);
        self
    }
    fn pam(mut self, f: impl FnOnce(&mut PamConfig)) -> Self {
        f(&mut self.pam);
        self
    }
    fn groups(mut self, g: &[&str]) -> Self {
        self.groups = g.iter().map(|g| (*g).to_owned()).collect();
        self
    }
    fn authtok(mut self, t: &str) -> Self {
        self.io.authtok = Some(t.into());
        self
    }
    fn answer(self, a: &str) -> Self {
        self.answer_after(Duration::ZERO, a)
    }
    fn answer_after(mut self, think: Duration, a: &str) -> Self {
        self.io.answers.push_back((think, Ok(Some(a.into()))));
        self
    }
    fn no_answer(mut self) -> Self {
        self.io.answers.push_back((Duration::ZERO, Ok(None)));
        self
    }
    fn conversation_error(mut self) -> Self {
        self.io
            .answers
            .push_back((Duration::ZERO, Err(PamCode::ConvErr)));
        self
    }
    /// An enrolled user, then the registry's verdicts on the codes, in order.
    fn enrolled_then(self, verdicts: &[VerifyResult]) -> Self {
        verdicts
            .iter()
            .fold(self.reply(enrolled()), |c, v| c.reply(verdict(*v)))
    }
    /// PAM data an earlier `stash_code` line kept.
    fn stashed(mut self, stash: Stash) -> Self {
        self.io.stash = Some(stash);
        self
    }
    fn reply(self, r: Reply) -> Self {
        self.reply_after(Duration::ZERO, r)
    }
    fn reply_after(mut self, took: Duration, r: Reply) -> Self {
        self.replies.push_back((took, r));
        self
    }

    fn run(self) -> Ran {
        let Case {
            args,
            pam,
            groups,
            mut io,
            replies,
        } = self;
        let args = Args::parse(args);
        let clock = io.clock.clone();
        // As the driver reads it: only for try_first_pass / use_first_pass.
        let authtok = match args.first_pass {
            crate::args::FirstPass::Prompt => None,
            _ => io.authtok().map(Typed::from),
        };
        // As the driver reads it: only for verify_stashed.
        let stash = if args.verify_stashed {
            io.take_stash()
        } else {
            None
        };
        let mut flow = Flow::new(Inputs {
            who: io.who.clone(),
            host: Some("host1".into()),
            groups,
            authtok,
            stash,
            args,
            pam,
        });
        let mut registry = ScriptedRegistry {
            replies,
            calls: Vec::new(),
            clock: clock.clone(),
        };
        let end = drive(&mut io, &mut registry, &mut flow, &mut || clock.get());
        assert!(
            registry.replies.is_empty(),
            "{} registry answers left unused",
            registry.replies.len()
        );
        assert!(
            io.answers.is_empty(),
            "{} answers left unused",
            io.answers.len()
        );
        Ran {
            line: io.who.line(&end),
            end,
            prompts: io.prompts,
            told: io.told,
            calls: registry.calls,
            logs: io.logs.into_inner(),
            authtok_set: io.authtok_set,
            stash: io.stash,
        }
    }
}

fn line(result: &str, reason: &str) -> String {
    format!("user=\"alice\" service=\"sshd\" rhost=\"192.0.2.9\" result={result} reason={reason:?}")
}

fn end(code: PamCode, level: Level, reason: &str) -> End {
    End::new(code, level, reason)
}

/// The end of a refusal for `why`, which tells the user.
fn denied(why: DenyReason) -> End {
    End::decided(Decision::Denied(why))
}

const PROMPT: (&str, bool) = ("Verification code: ", false);
const FULL: Duration = Duration::from_secs(15);

fn prompts(n: usize) -> Vec<(String, bool)> {
    vec![(PROMPT.0.to_owned(), PROMPT.1); n]
}

/// The code prompt, then `n - 1` prompts after a wrong code.
fn retries(n: usize) -> Vec<(String, bool)> {
    let mut v = prompts(1);
    v.extend(vec![
        (
            format!(
                "{}\n{}",
                twostep_common::decision::WRONG_CODE_MESSAGE,
                PROMPT.0
            ),
            PROMPT.1
        );
        n.saturating_sub(1)
    ]);
    v
}

fn lookup(within: Duration) -> Call {
    Call::LookUp {
        user: "alice".into(),
        within,
    }
}

fn verify(code: &str, within: Duration) -> Call {
    Call::Verify {
        user: "alice".into(),
        code: code.into(),
        context: AuthContext {
            service: Some("sshd".into()),
            host: Some("host1".into()),
            remote_addr: Some("192.0.2.9".into()),
            tty: None,
        },
        within,
    }
}

// ---- the code loop ---------------------------------------------------------

#[test]
fn right_code() {
    let r = case()
        .answer("123456")
        .enrolled_then(&[VerifyResult::Accept])
        .run();
    assert_eq!(r.end, end(PamCode::Success, Level::Info, "verified"));
    assert_eq!(r.line, line("PAM_SUCCESS", "verified"));
    assert_eq!(r.prompts, prompts(1));
    assert_eq!(r.calls, vec![lookup(FULL), verify("123456", FULL)]);
    assert!(r.logs.is_empty(), "{:?}", r.logs);
    assert_eq!(r.authtok_set, None);
}

#[test]
fn wrong_code_then_right() {
    let r = case()
        .answer("111111")
        .answer("222222")
        .enrolled_then(&[VerifyResult::Reject, VerifyResult::Accept])
        .run();
    assert_eq!(r.end, end(PamCode::Success, Level::Info, "verified"));
    assert_eq!(r.prompts, retries(2));
    assert_eq!(
        r.calls,
        vec![lookup(FULL), verify("111111", FULL), verify("222222", FULL)]
    );
}

/// A replayed code is its own result: the next prompt says to wait for the
/// next code, and the log line names the replay.
#[test]
fn replayed_code_then_next_code() {
    let r = case()
        .answer("111111")
        .answer("222222")
        .enrolled_then(&[VerifyResult::Replay, VerifyResult::Accept])
        .run();
    assert_eq!(r.end, end(PamCode::Success, Level::Info, "verified"));
    assert_eq!(
        r.prompts,
        vec![
            (PROMPT.0.to_owned(), false),
            (
                format!("{}\n{}", twostep_common::decision::REPLAY_MESSAGE, PROMPT.0),
                false
            ),
        ]
    );
    assert_eq!(
        twostep_common::decision::REPLAY_MESSAGE,
        "That code was used already. Wait for the next code in your app."
    );
}

#[test]
fn replayed_code_without_another_prompt() {
    let r = case()
        .arg("use_first_pass")
        .authtok("111111")
        .enrolled_then(&[VerifyResult::Replay])
        .run();
    assert_eq!(
        r.end,
        end(
            PamCode::AuthErr,
            Level::Notice,
            "code used already (replay)"
        )
    );
    assert_eq!(r.line, line("PAM_AUTH_ERR", "code used already (replay)"));
    assert!(r.prompts.is_empty());

    let r = case()
        .pam(|p| p.max_tries = 1)
        .answer("111111")
        .enrolled_then(&[VerifyResult::Replay])
        .run();
    assert_eq!(
        r.end,
        end(
            PamCode::MaxTries,
            Level::Notice,
            "too many wrong codes; the last code used already (replay)"
        )
    );
}

/// An answer that is not a code counts as a wrong try and is never sent.
#[test]
fn malformed_answer_never_reaches_the_registry() {
    let r = case()
        .arg("debug")
        .answer("12345")
        .answer("12345a")
        .answer("123456")
        .enrolled_then(&[VerifyResult::Accept])
        .run();
    assert_eq!(r.end, end(PamCode::Success, Level::Info, "verified"));
    assert_eq!(r.calls, vec![lookup(FULL), verify("123456", FULL)]);
    assert_eq!(
        r.logs,
        vec![
            (Level::Debug, "user has a method; asking for a code".into()),
            (Level::Debug, "try 1: \"not a code\"".into()),
            (Level::Debug, "try 2: \"not a code\"".into()),
            (Level::Debug, "try 3: \"accept\"".into()),
        ]
    );
}

#[test]
fn max_tries() {
    let r = case()
        .answer("000001")
        .answer("000002")
        .answer("000003")
        .enrolled_then(&[
            VerifyResult::Reject,
            VerifyResult::Reject,
            VerifyResult::Reject,
        ])
        .run();
    assert_eq!(
        r.end,
        end(PamCode::MaxTries, Level::Notice, "too many wrong codes")
    );
    assert_eq!(r.line, line("PAM_MAXTRIES", "too many wrong codes"));
    assert_eq!(r.prompts, retries(3));
    assert_eq!(r.calls.len(), 4);

    // max_tries counts malformed answers too; a custom prompt is used.
    let r = case()
        .pam(|p| {
            p.max_tries = 2;
            p.prompt = "Code: ".into();
        })
        .answer("nope")
        .answer("")
        .reply(enrolled())
        .run();
    assert_eq!(r.end.code, PamCode::MaxTries);
    assert_eq!(
        r.prompts,
        vec![
            ("Code: ".to_owned(), false),
            (
                "That code didn't work. Try again.\nCode: ".to_owned(),
                false
            )
        ]
    );
    assert_eq!(r.calls, vec![lookup(FULL)]);
}

// ---- registrations and final verdicts ---------------------------------------

#[test]
fn locked_or_disabled_is_denied_without_a_prompt() {
    for (status, reason, why) in [
        (UserStatus::Locked, "account locked", DenyReason::Locked),
        (
            UserStatus::Disabled,
            "account disabled",
            DenyReason::Disabled,
        ),
    ] {
        for unenrolled in [UnenrolledPolicy::Deny, UnenrolledPolicy::Ignore] {
            let r = case()
                .pam(|p| p.unenrolled = unenrolled)
                .reply(Reply::Registrations(Ok(registrations(status, 1))))
                .run();
            assert_eq!(r.end, denied(why));
            assert_eq!(r.end.reason, reason);
            assert_eq!(r.line, line("PAM_PERM_DENIED", reason));
            assert!(r.prompts.is_empty());
            // Told why, once: no retry helps.
            assert_eq!(r.told, [why.notice()]);
        }
    }
}

/// The registry's verdict on a code can also say locked or disabled (the
/// lockout reached meanwhile): denied, no further prompt.
#[test]
fn locked_or_disabled_verdict_is_denied() {
    for (result, reason, why) in [
        (VerifyResult::Locked, "account locked", DenyReason::Locked),
        (
            VerifyResult::Disabled,
            "account disabled",
            DenyReason::Disabled,
        ),
    ] {
        let r = case()
            .answer("111111")
            .reply(enrolled())
            .reply(verdict(result))
            .run();
        assert_eq!(r.end, denied(why));
        assert_eq!(r.end.reason, reason);
        assert_eq!(r.prompts, prompts(1));
        assert_eq!(r.told, [why.notice()]);
        assert!(r.told[0].contains("Try again later") || r.told[0].contains("administrator"));
    }
}

#[test]
fn unknown_and_unenrolled_follow_the_policy() {
    let unknown = || Reply::Registrations(Ok(None));
    let no_method = || Reply::Registrations(Ok(registrations(UserStatus::Active, 0)));
    for reply in [unknown(), no_method()] {
        let r = case().reply(reply).run();
        assert_eq!(r.end, denied(DenyReason::NotEnrolled));
        assert_eq!(r.end.reason, "second factor not set up");
        assert_eq!(r.line, line("PAM_PERM_DENIED", "second factor not set up"));
        assert!(r.prompts.is_empty());
        // The same words for a name the registry does not know as for a
        // user without methods: they tell the two apart no more than the
        // result does.
        assert_eq!(r.told, [DenyReason::NotEnrolled.notice()]);
    }
    for reply in [unknown(), no_method()] {
        let r = case()
            .pam(|p| p.unenrolled = UnenrolledPolicy::Ignore)
            .reply(reply)
            .run();
        assert_eq!(
            r.end,
            end(PamCode::Ignore, Level::Info, "ignored (not enrolled)")
        );
        assert_eq!(r.line, line("PAM_IGNORE", "ignored (not enrolled)"));
        assert!(r.prompts.is_empty());
        assert!(r.told.is_empty(), "nothing to tell when stepping aside");
    }
    // A verdict of not_enrolled (the method removed meanwhile) as well.
    let r = case()
        .pam(|p| p.unenrolled = UnenrolledPolicy::Ignore)
        .answer("123456")
        .enrolled_then(&[VerifyResult::NotEnrolled])
        .run();
    assert_eq!(r.end.code, PamCode::Ignore);
}

#[test]
fn exempt_users_never_reach_the_registry() {
    let r = case()
        .pam(|p| p.exempt_groups = vec!["ops".into()])
        .groups(&["users", "ops"])
        .run();
    assert_eq!(
        r.end,
        end(PamCode::Ignore, Level::Info, "exempt: member of group ops")
    );
    assert_eq!(r.line, line("PAM_IGNORE", "exempt: member of group ops"));
    assert!(r.calls.is_empty() && r.prompts.is_empty());

    let r = case()
        .pam(|p| p.exempt_networks = vec!["192.0.2.0/24".parse().unwrap()])
        .run();
    assert_eq!(
        r.end,
        end(
            PamCode::Ignore,
            Level::Info,
            "exempt: rhost in 192.0.2.0/24"
        )
    );
    assert!(r.calls.is_empty() && r.prompts.is_empty());

    let r = case()
        .pam(|p| p.require_groups = vec!["admins".into()])
        .groups(&["users"])
        .run();
    assert_eq!(
        r.end,
        end(
            PamCode::Ignore,
            Level::Info,
            "exempt: in no require_groups group"
        )
    );
    assert!(r.calls.is_empty());

    // In a required group: asked as usual.
    let r = case()
        .pam(|p| p.require_groups = vec!["admins".into()])
        .groups(&["admins"])
        .reply(Reply::Registrations(Ok(None)))
        .run();
    assert_eq!(r.end.code, PamCode::PermDenied);
    assert_eq!(r.calls, vec![lookup(FULL)]);
}

// ---- registry failures -----------------------------------------------------

/// What each fail mode makes of an unreachable registry: the code and the
/// start of the reason (logged at warning level).
const UNREACHABLE: [(FailMode, PamCode, &str); 2] = [
    (
        FailMode::Closed,
        PamCode::AuthinfoUnavail,
        "registry unavailable",
    ),
    (
        FailMode::Open,
        PamCode::Success,
        "registry unavailable, fail-open",
    ),
];

fn fail_mode(mode: FailMode) -> impl FnOnce(&mut PamConfig) {
    move |p| p.fail_mode = mode
}

#[test]
fn unreachable_at_lookup_follows_the_fail_mode() {
    let r = case().reply(Reply::Registrations(Err(unreachable()))).run();
    let reason = format!("registry unavailable: {REFUSED}");
    assert_eq!(
        r.end,
        end(PamCode::AuthinfoUnavail, Level::Warning, &reason)
    );
    assert_eq!(r.line, line("PAM_AUTHINFO_UNAVAIL", &reason));
    assert!(r.prompts.is_empty());

    let r = case()
        .pam(fail_mode(FailMode::Open))
        .reply(Reply::Registrations(Err(unreachable())))
        .run();
    let reason = format!("registry unavailable, fail-open: {REFUSED}");
    assert_eq!(r.end, end(PamCode::Success, Level::Warning, &reason));
    assert_eq!(r.line, line("PAM_SUCCESS", &reason));
    assert!(r.prompts.is_empty());
}

#[test]
fn unreachable_at_verify_follows_the_fail_mode() {
    for (mode, code, reason) in UNREACHABLE {
        let r = case()
            .pam(fail_mode(mode))
            .answer("123456")
            .reply(enrolled())
            .reply(Reply::Verdict(Err(unreachable())))
            .run();
        let reason = format!("{reason}: {REFUSED}");
        assert_eq!(r.end, end(code, Level::Warning, &reason));
        assert_eq!(r.line, line(code.name(), &reason));
        assert_eq!(r.prompts, prompts(1));
        assert_eq!(r.calls, vec![lookup(FULL), verify("123456", FULL)]);
    }
}

/// A 5xx, a TLS failure, a broken connection or any other failed call
/// fails closed whatever the fail mode, at lookup and at verify.
#[test]
fn other_failures_ignore_the_fail_mode() {
    let errors = [
        "registry failed (503): database is read-only",
        "registry TLS failure: invalid peer certificate: UnknownIssuer \
         (fail_mode does not apply to TLS failures)",
        "registry connection failed: connection reset",
        "registry refused the credential (401): unknown key",
    ];
    for mode in [FailMode::Closed, FailMode::Open] {
        for why in errors {
            let r = case()
                .pam(fail_mode(mode))
                .reply(Reply::Registrations(Err(CallError::Other(why.into()))))
                .run();
            assert_eq!(r.end, end(PamCode::AuthinfoUnavail, Level::Error, why));
            assert_eq!(r.line, line("PAM_AUTHINFO_UNAVAIL", why));
            assert!(r.prompts.is_empty());

            let r = case()
                .pam(fail_mode(mode))
                .arg("forward_pass")
                .answer("pw123456")
                .reply(enrolled())
                .reply(Reply::Verdict(Err(CallError::Other(why.into()))))
                .run();
            assert_eq!(r.end, end(PamCode::AuthinfoUnavail, Level::Error, why));
            assert_eq!(r.authtok_set, None);
        }
    }
}

/// `total_timeout` is spent by registry calls only: time at the prompt is
/// free, each call gets what is left, and once nothing is left no call is
/// made and the fail mode decides.
#[test]
fn total_timeout_budget() {
    let s = Duration::from_secs;
    for (mode, code, reason) in UNREACHABLE {
        let r = case()
            .pam(|p| {
                p.total_timeout = 5;
                p.fail_mode = mode;
            })
            .reply_after(s(2), enrolled())
            .answer_after(s(60), "111111")
            .reply_after(s(3), verdict(VerifyResult::Reject))
            .answer_after(s(60), "222222")
            .run();
        let reason = format!("{reason}: total_timeout used up before the registry answered");
        assert_eq!(r.end, end(code, Level::Warning, &reason));
        assert_eq!(r.line, line(code.name(), &reason));
        assert_eq!(r.calls, vec![lookup(s(5)), verify("111111", s(3))]);
        assert_eq!(r.prompts, retries(2));
    }

    // A budget used up by the lookup: the prompt still comes (as it
    // always has), but the code is never sent.
    let r = case()
        .pam(|p| p.total_timeout = 5)
        .reply_after(s(7), enrolled())
        .answer("123456")
        .run();
    assert_eq!(r.end.code, PamCode::AuthinfoUnavail);
    assert_eq!(r.calls, vec![lookup(s(5))]);

    // total_timeout = 0: not even the lookup.
    let r = case().pam(|p| p.total_timeout = 0).run();
    assert_eq!(
        r.end,
        end(
            PamCode::AuthinfoUnavail,
            Level::Warning,
            "registry unavailable: total_timeout used up before the registry answered"
        )
    );
    assert!(r.calls.is_empty());
}

// ---- forward_pass, try_first_pass, use_first_pass --------------------------

const FORWARD_PROMPT: &str = "Password and verification code: ";

#[test]
fn forward_pass_sets_the_password_on_success_only() {
    let r = case()
        .arg("forward_pass")
        .answer("hunter2123456")
        .enrolled_then(&[VerifyResult::Accept])
        .run();
    assert_eq!(r.end, end(PamCode::Success, Level::Info, "verified"));
    assert_eq!(r.prompts, vec![(FORWARD_PROMPT.to_owned(), false)]);
    assert_eq!(r.calls[1], verify("123456", FULL));
    assert_eq!(r.authtok_set.as_deref(), Some("hunter2"));

    // Wrong codes: the password is never handed on.
    let r = case()
        .arg("forward_pass")
        .pam(|p| p.max_tries = 2)
        .answer("hunter2000000")
        .answer("hunter2")
        .enrolled_then(&[VerifyResult::Reject])
        .run();
    assert_eq!(r.end.code, PamCode::MaxTries);
    assert_eq!(r.calls, vec![lookup(FULL), verify("000000", FULL)]);
    assert_eq!(r.authtok_set, None);

    // Locked: not handed on either.
    let r = case()
        .arg("forward_pass")
        .answer("hunter2123456")
        .enrolled_then(&[VerifyResult::Locked])
        .run();
    assert_eq!(r.end.code, PamCode::PermDenied);
    assert_eq!(r.authtok_set, None);
}

/// Fail-open at verify hands the password on (the next module still
/// checks it); fail-open at lookup has no password to hand on.
#[test]
fn forward_pass_fail_open() {
    let r = case()
        .arg("forward_pass")
        .pam(fail_mode(FailMode::Open))
        .answer("pw,123456")
        .reply(enrolled())
        .reply(Reply::Verdict(Err(unreachable())))
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert_eq!(r.end.level, Level::Warning);
    assert_eq!(r.authtok_set.as_deref(), Some("pw,"));

    let r = case()
        .arg("forward_pass")
        .pam(fail_mode(FailMode::Open))
        .reply(Reply::Registrations(Err(unreachable())))
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert!(r.prompts.is_empty());
    assert_eq!(r.authtok_set, None);

    // Fail-closed at verify: nothing handed on.
    let r = case()
        .arg("forward_pass")
        .answer("pw,123456")
        .reply(enrolled())
        .reply(Reply::Verdict(Err(unreachable())))
        .run();
    assert_eq!(r.end.code, PamCode::AuthinfoUnavail);
    assert_eq!(r.authtok_set, None);
}

#[test]
fn forward_pass_cannot_set_authtok() {
    let mut c = case()
        .arg("forward_pass")
        .answer("hunter2123456")
        .enrolled_then(&[VerifyResult::Accept]);
    c.io.set_authtok_result = Err(PamCode::BufErr);
    let r = c.run();
    assert_eq!(
        r.end,
        end(PamCode::BufErr, Level::Error, "cannot set PAM_AUTHTOK")
    );
    assert_eq!(r.line, line("PAM_BUF_ERR", "cannot set PAM_AUTHTOK"));
}

#[test]
fn try_first_pass() {
    // A code in PAM_AUTHTOK: no prompt.
    let r = case()
        .arg("try_first_pass")
        .arg("debug")
        .authtok("123456")
        .enrolled_then(&[VerifyResult::Accept])
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert!(r.prompts.is_empty());
    assert_eq!(r.calls[1], verify("123456", FULL));
    assert_eq!(
        r.logs.last(),
        Some(&(Level::Debug, "try 1 (PAM_AUTHTOK): \"accept\"".into()))
    );

    // PAM_AUTHTOK absent, or not shaped like a code (an earlier module's
    // password): prompt, and the password costs no try.
    for authtok in [None, Some("s3cret")] {
        let mut c = case()
            .arg("try_first_pass")
            .pam(|p| p.max_tries = 1)
            .answer("123456")
            .enrolled_then(&[VerifyResult::Accept]);
        c.io.authtok = authtok.map(Into::into);
        let r = c.run();
        assert_eq!(r.end.code, PamCode::Success, "{authtok:?}");
        assert_eq!(r.prompts, prompts(1));
        assert_eq!(r.calls, vec![lookup(FULL), verify("123456", FULL)]);
    }

    // A wrong code in PAM_AUTHTOK is a try; then prompt.
    let r = case()
        .arg("try_first_pass")
        .authtok("000000")
        .answer("123456")
        .enrolled_then(&[VerifyResult::Reject, VerifyResult::Accept])
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert_eq!(r.prompts, prompts(1));
    assert_eq!(
        r.calls,
        vec![lookup(FULL), verify("000000", FULL), verify("123456", FULL)]
    );

    // With forward_pass: PAM_AUTHTOK is PASSWORDCODE.
    let r = case()
        .arg("forward_pass")
        .arg("try_first_pass")
        .authtok("pw123456")
        .enrolled_then(&[VerifyResult::Accept])
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert!(r.prompts.is_empty());
    assert_eq!(r.authtok_set.as_deref(), Some("pw"));
}

#[test]
fn use_first_pass() {
    // PAM_AUTHTOK absent: refused after the lookup, never prompted.
    let r = case().arg("use_first_pass").reply(enrolled()).run();
    let reason = "use_first_pass: PAM_AUTHTOK is not set";
    assert_eq!(r.end, end(PamCode::AuthErr, Level::Notice, reason));
    assert_eq!(r.line, line("PAM_AUTH_ERR", reason));
    assert!(r.prompts.is_empty());
    assert_eq!(r.calls, vec![lookup(FULL)]);

    let r = case()
        .arg("use_first_pass")
        .authtok("123456")
        .enrolled_then(&[VerifyResult::Accept])
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert!(r.prompts.is_empty());

    // A wrong or malformed PAM_AUTHTOK: refused, never prompted.
    let r = case()
        .arg("use_first_pass")
        .authtok("000000")
        .enrolled_then(&[VerifyResult::Reject])
        .run();
    assert_eq!(r.end, end(PamCode::AuthErr, Level::Notice, "code refused"));
    assert!(r.prompts.is_empty());
    let r = case()
        .arg("use_first_pass")
        .authtok("s3cret")
        .reply(enrolled())
        .run();
    assert_eq!(r.end, end(PamCode::AuthErr, Level::Notice, "code refused"));
    assert_eq!(r.calls, vec![lookup(FULL)]);

    // An unknown user under ignore is settled before PAM_AUTHTOK matters.
    let r = case()
        .arg("use_first_pass")
        .pam(|p| p.unenrolled = UnenrolledPolicy::Ignore)
        .reply(Reply::Registrations(Ok(None)))
        .run();
    assert_eq!(r.end.code, PamCode::Ignore);
}

// ---- the conversation ------------------------------------------------------

#[test]
fn conversation_error_before_any_code() {
    let r = case().conversation_error().reply(enrolled()).run();
    assert_eq!(
        r.end,
        end(PamCode::ConvErr, Level::Notice, "no answer to the prompt")
    );
    assert_eq!(r.line, line("PAM_CONV_ERR", "no answer to the prompt"));
    assert_eq!(r.calls, vec![lookup(FULL)]);

    // No answer at all (the application returned none).
    let r = case().reply(enrolled()).run();
    assert_eq!(r.end.code, PamCode::ConvErr);
    assert_eq!(r.prompts, prompts(1));
}

#[test]
fn conversation_error_after_a_wrong_code() {
    let r = case()
        .answer("000000")
        .conversation_error()
        .enrolled_then(&[VerifyResult::Reject])
        .run();
    assert_eq!(r.end, end(PamCode::AuthErr, Level::Notice, "code refused"));
    assert_eq!(r.line, line("PAM_AUTH_ERR", "code refused"));
    assert_eq!(r.prompts, retries(2));
}

// ---- the machine itself ----------------------------------------------------

fn flow(pam: PamConfig) -> Flow {
    Flow::new(Inputs {
        who: Conversation::default().who,
        host: None,
        groups: Vec::new(),
        authtok: None,
        stash: None,
        args: Args::parse(["debug"]),
        pam,
    })
}

/// An event that does not answer the last action fails closed, and a
/// finished flow keeps its end.
#[test]
fn out_of_order_events_fail_closed() {
    let t = Instant::now();
    let mut f = flow(PamConfig::default());
    assert_eq!(f.state_name(), "Start");
    assert!(matches!(f.step(t, Event::Start), Action::LookUp { .. }));
    assert_eq!(f.state_name(), "LookingUp");
    let internal = end(
        PamCode::SystemErr,
        Level::Error,
        "internal error: event Verdict in state LookingUp",
    );
    match f.step(t, Event::Verdict(Err(unreachable()))) {
        Action::Done(e) => assert_eq!(e, internal),
        other => panic!("{other:?}"),
    }
    match f.step(t, Event::Start) {
        Action::Done(e) => assert_eq!(e, internal),
        other => panic!("{other:?}"),
    }

    // Skipping a pending log line is out of order too.
    let mut f = flow(PamConfig::default());
    f.step(t, Event::Start);
    let a = f.step(
        t,
        Event::Registrations(Ok(registrations(UserStatus::Active, 1))),
    );
    assert!(matches!(a, Action::Log { .. }), "{a:?}");
    match f.step(t, Event::Answer(Ok(None))) {
        Action::Done(e) => {
            assert_eq!(e.code, PamCode::SystemErr);
            assert_eq!(e.reason, "internal error: event Answer in state CodeAnswer");
        }
        other => panic!("{other:?}"),
    }
}

/// Secrets never show in an action's or event's debug output.
#[test]
fn debug_output_is_redacted() {
    let a = Action::SetAuthtok(Typed::from(Zeroizing::new("hunter2".to_owned())));
    assert_eq!(format!("{a:?}"), "SetAuthtok(Typed(<redacted>))");
    let e = Event::Answer(Ok(Some(Typed::from(Zeroizing::new("123456".to_owned())))));
    assert!(!format!("{e:?}").contains("123456"));
    let t = Instant::now();
    let mut f = flow(PamConfig::default());
    f.step(t, Event::Start);
    f.step(
        t,
        Event::Registrations(Ok(registrations(UserStatus::Active, 1))),
    );
    f.step(t, Event::Logged);
    let v = f.step(
        t,
        Event::Answer(Ok(Some(Typed::from(Zeroizing::new("123456".to_owned()))))),
    );
    let text = format!("{v:?}");
    assert!(text.starts_with("Verify"), "{text}");
    assert!(!text.contains("123456"), "{text}");
}

#[test]
fn design_pam_results() {
    assert_eq!(map_decision(Decision::Verified).0, PamCode::Success);
    assert_eq!(map_decision(Decision::WrongCode).0, PamCode::AuthErr);
    for r in [
        DenyReason::Locked,
        DenyReason::Disabled,
        DenyReason::NotEnrolled,
    ] {
        assert_eq!(map_decision(Decision::Denied(r)).0, PamCode::PermDenied);
    }
    assert_eq!(map_decision(Decision::Ignore).0, PamCode::Ignore);
    assert_eq!(
        map_decision(Decision::Unavailable).0,
        PamCode::AuthinfoUnavail
    );
    assert_eq!(
        map_decision(Decision::FailOpen),
        (PamCode::Success, Level::Warning)
    );
    assert_eq!(End::from_outcome(Outcome::MaxTries).code, PamCode::MaxTries);
    assert_eq!(End::from_outcome(Outcome::NoAnswer).code, PamCode::ConvErr);
}

// ---- push ------------------------------------------------------------------

const OFFER: &str = "Verification code, or press Enter for a push: ";
const NUMBER_PROMPT: &str =
    "Push sent to Alice's phone: enter 42 on your phone, then press Enter: ";
const ID: &str = "ch1";

fn method(id: i64, kind: MethodKind, label: &str, disabled: bool) -> Method {
    Method {
        id,
        kind,
        label: label.into(),
        is_default: id == 1,
        created_at: 0,
        last_used_at: None,
        disabled,
    }
}

fn with_methods(methods: Vec<Method>) -> Reply {
    Reply::Registrations(Ok(Some(Registrations {
        temporary_access_until: None,
        place: None,
        elsewhere: Vec::new(),
        username: "alice".into(),
        status: UserStatus::Active,
        methods,
    })))
}

/// A code method and a push device.
fn code_and_push() -> Reply {
    with_methods(vec![
        method(1, MethodKind::Totp, "Authenticator app", false),
        method(2, MethodKind::Push, "Alice's phone", false),
    ])
}

/// Only a push device (and a disabled code method, which does not count).
fn push_only() -> Reply {
    with_methods(vec![
        method(1, MethodKind::Push, "Alice's phone", false),
        method(2, MethodKind::Totp, "Old app", true),
    ])
}

fn sent(number: Option<u8>) -> Reply {
    Reply::Started(Ok(PushStarted {
        result: StartResult::Sent,
        challenge: Some(StartedChallenge {
            challenge_id: ID.into(),
            number,
            expires_at: 0,
            device_label: "Alice's phone".into(),
        }),
    }))
}

fn refused(result: StartResult) -> Reply {
    Reply::Started(Ok(PushStarted {
        result,
        challenge: None,
    }))
}

fn outcome(r: PushResult) -> Reply {
    Reply::Outcome(Ok(r))
}

fn cancelled() -> Reply {
    Reply::Cancelled(Ok(()))
}

fn start_push(within: Duration) -> Call {
    Call::StartPush {
        user: "alice".into(),
        context: PushContext {
            service: Some("sshd".into()),
            host: Some("host1".into()),
            remote_addr: Some("192.0.2.9".into()),
            tty: Some("ssh".into()),
            nas: None,
        },
        within,
    }
}

fn await_push(wait: Duration) -> Call {
    Call::AwaitPush {
        id: ID.into(),
        wait,
    }
}

fn cancel_push() -> Call {
    Call::CancelPush {
        id: ID.into(),
        within: crate::flow::PUSH_CANCEL_TIMEOUT,
    }
}

fn prompt(text: &str) -> (String, bool) {
    (text.to_owned(), false)
}

/// A case whose PAM_TTY is set, so the push context carries it.
fn push_case() -> Case {
    let mut c = case();
    c.io.who.tty = Some("ssh".into());
    c
}

#[test]
fn enter_sends_a_push_and_approval_lets_in() {
    let r = push_case()
        .arg("debug")
        .answer("")
        .answer_after(Duration::from_secs(40), "")
        .reply(code_and_push())
        .reply(sent(Some(42)))
        .reply(outcome(PushResult::Approved))
        .run();
    assert_eq!(r.end, end(PamCode::Success, Level::Info, "push approved"));
    assert_eq!(r.line, line("PAM_SUCCESS", "push approved"));
    // The number comes inside the second prompt, never as an info message.
    assert_eq!(r.prompts, vec![prompt(OFFER), prompt(NUMBER_PROMPT)]);
    // 40 s at the number prompt are not counted.
    assert_eq!(
        r.calls,
        vec![lookup(FULL), start_push(FULL), await_push(FULL)]
    );
    assert_eq!(
        r.logs,
        vec![
            (
                Level::Debug,
                "user has a method; asking for a code or Enter for a push".into()
            ),
            (Level::Debug, "push sent to Alice's phone".into()),
            (Level::Debug, "push outcome: approved".into()),
        ]
    );
}

/// A code typed at the push offer goes the code way; a wrong one offers
/// the push again.
#[test]
fn typed_code_still_works_when_push_is_offered() {
    let r = push_case()
        .answer("000000")
        .answer("123456")
        .reply(code_and_push())
        .reply(verdict(VerifyResult::Reject))
        .reply(verdict(VerifyResult::Accept))
        .run();
    assert_eq!(r.end, end(PamCode::Success, Level::Info, "verified"));
    assert_eq!(
        r.prompts,
        vec![
            prompt(OFFER),
            prompt(&format!(
                "{}\n{OFFER}",
                twostep_common::decision::WRONG_CODE_MESSAGE
            ))
        ]
    );
    assert_eq!(r.calls.len(), 3);
    assert!(matches!(&r.calls[2], Call::Verify { code, .. } if code == "123456"));

    // A wrong code, then Enter: the push still comes.
    let r = push_case()
        .answer("000000")
        .answer("")
        .answer("")
        .reply(code_and_push())
        .reply(verdict(VerifyResult::Reject))
        .reply(sent(Some(42)))
        .reply(outcome(PushResult::Approved))
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert_eq!(
        r.prompts,
        vec![
            prompt(OFFER),
            prompt(&format!(
                "{}\n{OFFER}",
                twostep_common::decision::WRONG_CODE_MESSAGE
            )),
            prompt(NUMBER_PROMPT)
        ]
    );

    // Max tries of wrong codes at the push offer.
    let r = push_case()
        .pam(|p| p.max_tries = 2)
        .answer("000000")
        .answer("nope")
        .reply(code_and_push())
        .reply(verdict(VerifyResult::Reject))
        .run();
    assert_eq!(r.end.code, PamCode::MaxTries);
}

/// Every refusal at the device, at the start or by the registry is
/// `PAM_PERM_DENIED` with its own reason; expiry is `PAM_AUTH_ERR`.
#[test]
fn push_results_map_to_pam_results() {
    for (result, code, level, reason) in [
        (
            PushResult::Denied,
            PamCode::PermDenied,
            Level::Notice,
            "push denied",
        ),
        (
            PushResult::Fraud,
            PamCode::PermDenied,
            Level::Warning,
            "push reported as fraud",
        ),
        (
            PushResult::WrongNumber,
            PamCode::PermDenied,
            Level::Notice,
            "push answered with the wrong number",
        ),
        (
            PushResult::Cancelled,
            PamCode::PermDenied,
            Level::Notice,
            "push cancelled by the registry (device disabled)",
        ),
        (
            PushResult::Expired,
            PamCode::AuthErr,
            Level::Notice,
            "push expired",
        ),
    ] {
        let r = push_case()
            .answer("")
            .answer("")
            .reply(code_and_push())
            .reply(sent(Some(42)))
            .reply(outcome(result))
            .run();
        assert_eq!(r.end, end(code, level, reason), "{result:?}");
        assert_eq!(r.line, line(code.name(), reason));
        // A final answer ends the login: no second push, no cancel.
        assert_eq!(r.calls.len(), 3, "{result:?}");
    }

    for (result, level, reason) in [
        (
            StartResult::RateLimited,
            Level::Notice,
            "push refused: rate limited",
        ),
        (
            StartResult::Blocked,
            Level::Warning,
            "push refused: blocked since a push was reported as fraud",
        ),
        (
            StartResult::Locked,
            Level::Notice,
            "push refused: account locked",
        ),
        (
            StartResult::Disabled,
            Level::Notice,
            "push refused: account disabled",
        ),
        (
            StartResult::NotEnrolled,
            Level::Notice,
            "push refused: second factor not set up",
        ),
    ] {
        let r = push_case()
            .answer("")
            .reply(code_and_push())
            .reply(refused(result))
            .run();
        assert_eq!(r.end, end(PamCode::PermDenied, level, reason), "{result:?}");
        // No number prompt: nothing was sent.
        assert_eq!(r.prompts, vec![prompt(OFFER)]);
    }

    // The device removed meanwhile, unenrolled = "ignore": as a verdict.
    let r = push_case()
        .pam(|p| p.unenrolled = UnenrolledPolicy::Ignore)
        .answer("")
        .reply(code_and_push())
        .reply(refused(StartResult::NotEnrolled))
        .run();
    assert_eq!(r.end.code, PamCode::Ignore);

    // "sent" without a challenge is a bad answer.
    let r = push_case()
        .pam(fail_mode(FailMode::Open))
        .answer("")
        .reply(code_and_push())
        .reply(Reply::Started(Ok(PushStarted {
            result: StartResult::Sent,
            challenge: None,
        })))
        .run();
    assert_eq!(r.end.code, PamCode::AuthinfoUnavail);
}

/// The wait polls in pieces of at most 30 s within what is left of
/// total_timeout; still pending when it is used up: cancelled, AUTH_ERR.
#[test]
fn budget_used_up_while_pending_cancels() {
    let s = Duration::from_secs;
    let r = push_case()
        .pam(|p| p.total_timeout = 45)
        .answer("")
        .answer_after(s(100), "")
        .reply_after(s(1), code_and_push())
        .reply_after(s(2), sent(Some(42)))
        .reply_after(s(30), outcome(PushResult::Pending))
        .reply_after(s(12), outcome(PushResult::Pending))
        .reply(cancelled())
        .run();
    let reason = "push not answered within total_timeout; push cancelled";
    assert_eq!(r.end, end(PamCode::AuthErr, Level::Notice, reason));
    assert_eq!(r.line, line("PAM_AUTH_ERR", reason));
    assert_eq!(
        r.calls,
        vec![
            lookup(s(45)),
            start_push(s(44)),
            await_push(s(30)),
            await_push(s(12)),
            cancel_push(),
        ]
    );

    // An answer within a later poll still counts.
    let r = push_case()
        .pam(|p| p.total_timeout = 45)
        .answer("")
        .answer("")
        .reply(code_and_push())
        .reply(sent(Some(42)))
        .reply_after(s(30), outcome(PushResult::Pending))
        .reply_after(s(5), outcome(PushResult::Approved))
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert_eq!(r.calls[3], await_push(s(15)));

    // A cancel that fails changes nothing but the reason.
    let r = push_case()
        .pam(|p| {
            p.total_timeout = 5;
            p.fail_mode = FailMode::Open;
        })
        .answer("")
        .answer("")
        .reply(code_and_push())
        .reply(sent(Some(42)))
        .reply_after(s(5), outcome(PushResult::Pending))
        .reply(Reply::Cancelled(Err(unreachable())))
        .run();
    assert_eq!(
        r.end,
        end(
            PamCode::AuthErr,
            Level::Notice,
            &format!(
                "push not answered within total_timeout; push cancelled; cancelling it failed: {REFUSED}"
            )
        )
    );

    // The start used the whole budget: no wait at all, cancelled.
    let r = push_case()
        .pam(|p| p.total_timeout = 5)
        .answer("")
        .answer("")
        .reply(code_and_push())
        .reply_after(s(6), sent(Some(42)))
        .reply(cancelled())
        .run();
    assert_eq!(r.end.code, PamCode::AuthErr);
    assert_eq!(r.calls, vec![lookup(s(5)), start_push(s(5)), cancel_push()]);
}

/// A conversation that fails or gives no answer at the number prompt
/// (Ctrl-C, a closed connection, a caller without a terminal) cancels the
/// challenge at once and never lets in, whatever the fail mode.
#[test]
fn conversation_aborted_at_the_number_prompt_cancels() {
    let script = |mode: FailMode, err: bool| {
        let c = push_case()
            .pam(fail_mode(mode))
            .answer("")
            .reply(code_and_push())
            .reply(sent(Some(42)));
        if err {
            c.conversation_error()
        } else {
            c.no_answer()
        }
    };
    for mode in [FailMode::Closed, FailMode::Open] {
        for err in [true, false] {
            for cancel in [Ok(()), Err(unreachable())] {
                let failed = cancel.is_err();
                let r = script(mode, err).reply(Reply::Cancelled(cancel)).run();
                assert_eq!(r.end.code, PamCode::ConvErr, "{mode:?} {err} {failed}");
                assert!(
                    r.end
                        .reason
                        .starts_with("no answer to the push prompt; push cancelled"),
                    "{}",
                    r.end.reason
                );
                assert_eq!(r.prompts, vec![prompt(OFFER), prompt(NUMBER_PROMPT)]);
                assert_eq!(
                    r.calls,
                    vec![lookup(FULL), start_push(FULL), cancel_push()],
                    "never a wait"
                );
            }
        }
    }

    // No conversation at the first prompt: no push is sent at all.
    let r = push_case()
        .conversation_error()
        .reply(code_and_push())
        .run();
    assert_eq!(r.end.code, PamCode::ConvErr);
    assert_eq!(r.calls, vec![lookup(FULL)]);
}

/// `push = "auto"` sends the push without the first prompt; the number
/// still comes in a prompt, and a caller that cannot answer it gets an
/// error at once, the push cancelled.
#[test]
fn push_auto() {
    let r = push_case()
        .pam(|p| p.push = PamPush::Auto)
        .answer("")
        .reply(code_and_push())
        .reply(sent(Some(42)))
        .reply(outcome(PushResult::Approved))
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert_eq!(r.prompts, vec![prompt(NUMBER_PROMPT)]);
    assert_eq!(
        r.calls,
        vec![lookup(FULL), start_push(FULL), await_push(FULL)]
    );

    let r = push_case()
        .pam(|p| p.push = PamPush::Auto)
        .conversation_error()
        .reply(push_only())
        .reply(sent(Some(42)))
        .reply(cancelled())
        .run();
    assert_eq!(r.end.code, PamCode::ConvErr);
    assert_eq!(r.calls, vec![lookup(FULL), start_push(FULL), cancel_push()]);

    // Without number matching.
    let r = push_case()
        .pam(|p| p.push = PamPush::Auto)
        .answer("")
        .reply(code_and_push())
        .reply(sent(None))
        .reply(outcome(PushResult::Denied))
        .run();
    assert_eq!(r.end.code, PamCode::PermDenied);
    assert_eq!(
        r.prompts,
        vec![prompt(
            "Push sent to Alice's phone: approve it on your phone, then press Enter: "
        )]
    );
}

/// `push = "off"`: codes only, as before push existed; a push-only user
/// is refused without a prompt.
#[test]
fn push_off() {
    let r = push_case()
        .pam(|p| p.push = PamPush::Off)
        .answer("")
        .answer("123456")
        .reply(code_and_push())
        .reply(verdict(VerifyResult::Accept))
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert_eq!(r.prompts, retries(2));
    assert!(!r.calls.iter().any(|c| matches!(c, Call::StartPush { .. })));

    let reason = "the user has only push devices and push is not offered (push = \"off\")";
    let r = push_case()
        .pam(|p| p.push = PamPush::Off)
        .reply(push_only())
        .run();
    assert_eq!(r.end, end(PamCode::PermDenied, Level::Notice, reason));
    assert!(r.prompts.is_empty());

    // forward_pass and use_first_pass cannot show the number: codes only.
    for arg in ["forward_pass", "use_first_pass"] {
        let r = push_case().arg(arg).reply(push_only()).run();
        assert_eq!(
            r.end.reason,
            format!("the user has only push devices and push is not offered ({arg})")
        );
        assert!(r.prompts.is_empty());
    }
    let r = push_case()
        .arg("forward_pass")
        .answer("pw123456")
        .reply(code_and_push())
        .reply(verdict(VerifyResult::Accept))
        .run();
    assert_eq!(r.prompts, vec![(FORWARD_PROMPT.to_owned(), false)]);
    assert_eq!(r.authtok_set.as_deref(), Some("pw"));
}

/// A push-only user is asked to press Enter to send the push; whatever is
/// typed there sends it (no code method to try).
#[test]
fn push_only_user() {
    let r = push_case()
        .answer("123456")
        .answer("")
        .reply(push_only())
        .reply(sent(Some(42)))
        .reply(outcome(PushResult::Approved))
        .run();
    assert_eq!(r.end.code, PamCode::Success);
    assert_eq!(
        r.prompts,
        vec![
            prompt("Press Enter to send a push to Alice's phone: "),
            prompt(NUMBER_PROMPT)
        ]
    );
    assert!(!r.calls.iter().any(|c| matches!(c, Call::Verify { .. })));

    // Several devices are named together, default first; try_first_pass
    // does not take PAM_AUTHTOK for a code.
    let r = push_case()
        .arg("try_first_pass")
        .authtok("123456")
        .reply(with_methods(vec![
            method(3, MethodKind::Push, "Tablet", false),
            method(1, MethodKind::Push, "Phone", false),
        ]))
        .run();
    assert_eq!(r.end.code, PamCode::ConvErr);
    assert_eq!(
        r.prompts,
        vec![prompt("Press Enter to send a push to Phone, Tablet: ")]
    );
    assert_eq!(r.calls, vec![lookup(FULL)]);
}

/// A device label is shown without control characters and cut short.
#[test]
fn device_labels_are_made_safe_for_a_terminal() {
    let long = "x".repeat(100);
    for (label, shown) in [
        ("Evil\u{1b}[2Jphone\n", "Evil?[2Jphone"),
        ("", "your device"),
        (long.as_str(), &format!("{}…", "x".repeat(64))),
    ] {
        let r = push_case()
            .reply(with_methods(vec![method(
                1,
                MethodKind::Push,
                label,
                false,
            )]))
            .run();
        assert_eq!(
            r.prompts,
            vec![prompt(&format!("Press Enter to send a push to {shown}: "))]
        );
    }
}

/// An unreachable registry at the start follows the fail mode (the user
/// had no second factor yet, as at verify); any other failure fails closed.
#[test]
fn unreachable_at_push_start_follows_the_fail_mode() {
    for (mode, code, reason) in UNREACHABLE {
        let r = push_case()
            .pam(fail_mode(mode))
            .answer("")
            .reply(code_and_push())
            .reply(Reply::Started(Err(unreachable())))
            .run();
        let reason = format!("{reason}: {REFUSED}");
        assert_eq!(r.end, end(code, Level::Warning, &reason));
        assert_eq!(r.prompts, vec![prompt(OFFER)]);
    }
    for mode in [FailMode::Closed, FailMode::Open] {
        let why = "registry failed (503): database is read-only";
        let r = push_case()
            .pam(fail_mode(mode))
            .answer("")
            .reply(code_and_push())
            .reply(Reply::Started(Err(CallError::Other(why.into()))))
            .run();
        assert_eq!(r.end, end(PamCode::AuthinfoUnavail, Level::Error, why));
    }

    // During the wait: the same rule.
    let r = push_case()
        .pam(fail_mode(FailMode::Closed))
        .answer("")
        .answer("")
        .reply(code_and_push())
        .reply(sent(Some(42)))
        .reply(Reply::Outcome(Err(unreachable())))
        .run();
    assert_eq!(r.end.code, PamCode::AuthinfoUnavail);
    let r = push_case()
        .pam(fail_mode(FailMode::Open))
        .answer("")
        .answer("")
        .reply(code_and_push())
        .reply(sent(Some(42)))
        .reply(Reply::Outcome(Err(CallError::Other(
            "registry refused (404): unknown_challenge".into(),
        ))))
        .run();
    assert_eq!(r.end.code, PamCode::AuthinfoUnavail);
}

/// Push events out of order fail closed like any other.
#[test]
fn push_events_out_of_order_fail_closed() {
    let t = Instant::now();
    let mut f = flow(PamConfig {
        push: PamPush::Auto,
        ..PamConfig::default()
    });
    f.step(t, Event::Start);
    let Reply::Registrations(reg) = push_only() else {
        unreachable!()
    };
    assert!(matches!(
        f.step(t, Event::Registrations(reg)),
        Action::Log { .. }
    ));
    assert!(matches!(f.step(t, Event::Logged), Action::StartPush { .. }));
    assert_eq!(f.state_name(), "PushStarting");
    match f.step(t, Event::PushOutcome(Ok(PushResult::Approved))) {
        Action::Done(e) => {
            assert_eq!(e.code, PamCode::SystemErr);
            assert_eq!(
                e.reason,
                "internal error: event PushOutcome in state PushStarting"
            );
        }
        other => panic!("{other:?}"),
    }
}

// ---- stash_code / verify_stashed, sshd's stand-in password ------------------

const STAND_IN: &str = twostep_common::policy::SSHD_STAND_IN_PASSWORD;

fn kept_code(r: &Ran) -> Option<String> {
    match &r.stash {
        Some(Stash::Code(c)) => Some(c.expose().to_owned()),
        _ => None,
    }
}

fn kept_end(r: Ran) -> Option<End> {
    match r.stash {
        Some(Stash::Decided(e)) => Some(e),
        _ => None,
    }
}

/// The first line splits and keeps the code without verifying it; the
/// verify_stashed line verifies it once, without a prompt or a lookup.
#[test]
fn stash_code_then_verify_stashed() {
    let first = case()
        .arg("forward_pass")
        .arg("stash_code")
        .answer("hunter2123456")
        .reply(enrolled())
        .run();
    assert_eq!(
        first.end,
        end(
            PamCode::Ignore,
            Level::Info,
            "password set as PAM_AUTHTOK; code kept for verify_stashed"
        )
    );
    assert_eq!(
        first.calls,
        vec![lookup(FULL)],
        "no verify on the first line"
    );
    assert_eq!(first.prompts, vec![(FORWARD_PROMPT.to_owned(), false)]);
    assert_eq!(first.authtok_set.as_deref(), Some("hunter2"));
    assert_eq!(kept_code(&first).as_deref(), Some("123456"));

    let second = case()
        .arg("verify_stashed")
        .stashed(first.stash.expect("kept"))
        .reply(verdict(VerifyResult::Accept))
        .run();
    assert_eq!(second.end, end(PamCode::Success, Level::Info, "verified"));
    assert_eq!(second.calls, vec![verify("123456", FULL)]);
    assert!(second.prompts.is_empty());
    assert!(second.stash.is_none(), "the kept code is taken");
    assert_eq!(second.authtok_set, None, "the password was set by line one");

    // A wrong (or replayed) kept code: one try, no prompt, PAM_AUTH_ERR.
    for result in [VerifyResult::Reject, VerifyResult::Replay] {
        let r = case()
            .arg("verify_stashed")
            .stashed(Stash::Code(Typed::from(Zeroizing::new("000000".into()))))
            .reply(verdict(result))
            .run();
        assert_eq!(r.end.code, PamCode::AuthErr, "{result:?}");
        assert_eq!(r.calls, vec![verify("000000", FULL)]);
        assert!(r.prompts.is_empty());
    }
}

/// Nothing kept (no stash_code line ran, or pam_set_data failed): fail
/// closed, whatever the fail mode.
#[test]
fn verify_stashed_without_a_stash_fails_closed() {
    let r = case()
        .arg("verify_stashed")
        .pam(fail_mode(FailMode::Open))
        .run();
    assert_eq!(r.end.code, PamCode::AuthErr);
    assert_eq!(r.end.level, Level::Error);
    assert!(r.end.reason.contains("no code kept"), "{}", r.end.reason);
    assert!(r.calls.is_empty() && r.prompts.is_empty());

    let mut c = case()
        .arg("stash_code")
        .answer("hunter2123456")
        .reply(enrolled());
    c.io.set_stash_result = Err(PamCode::BufErr);
    let r = c.run();
    assert_eq!(r.end.code, PamCode::BufErr);
    assert!(r.stash.is_none());
}

/// Every other end of the first line is kept and repeated by the second;
/// the first line never answers PAM_SUCCESS.
#[test]
fn stash_code_keeps_how_it_ended() {
    // Locked at lookup: denied on both lines, nothing forwarded.
    let first = case()
        .arg("stash_code")
        .reply(Reply::Registrations(Ok(registrations(
            UserStatus::Locked,
            1,
        ))))
        .run();
    assert_eq!(first.end.code, PamCode::PermDenied);
    assert_eq!(first.authtok_set, None);
    let kept = kept_end(first).expect("decided");
    assert_eq!(kept.code, PamCode::PermDenied);
    let second = case()
        .arg("verify_stashed")
        .stashed(Stash::Decided(kept))
        .run();
    assert_eq!(second.end.code, PamCode::PermDenied);
    assert!(
        second
            .end
            .reason
            .ends_with("(as the stash_code line decided)"),
        "{}",
        second.end.reason
    );

    // Fail-open at lookup: PAM_IGNORE here, the success is the second line's.
    let first = case()
        .arg("stash_code")
        .pam(fail_mode(FailMode::Open))
        .reply(Reply::Registrations(Err(unreachable())))
        .run();
    assert_eq!(first.end.code, PamCode::Ignore);
    assert_eq!(first.end.level, Level::Warning);
    let kept = kept_end(first).expect("decided");
    assert_eq!(kept.code, PamCode::Success);
    let second = case()
        .arg("verify_stashed")
        .stashed(Stash::Decided(kept))
        .run();
    assert_eq!(second.end.code, PamCode::Success);
    assert!(second.calls.is_empty());

    // Answers without a code: the tries loop as ever, then kept.
    let first = case()
        .arg("stash_code")
        .answer("hunter2")
        .answer("x")
        .answer("12345")
        .reply(enrolled())
        .run();
    assert_eq!(first.end.code, PamCode::MaxTries);
    assert_eq!(first.calls, vec![lookup(FULL)]);
    assert_eq!(kept_end(first).map(|e| e.code), Some(PamCode::MaxTries));

    // Exempt: ignored on both lines.
    let first = case()
        .arg("stash_code")
        .pam(|p| p.exempt_groups = vec!["ops".into()])
        .groups(&["ops"])
        .run();
    assert_eq!(first.end.code, PamCode::Ignore);
    assert_eq!(kept_end(first).map(|e| e.code), Some(PamCode::Ignore));
}

/// sshd's stand-in password (PermitRootLogin no, an invalid user) ends
/// the call at once with a reason that says so; no code reaches the
/// registry, no push is sent, no second prompt.
#[test]
fn sshd_stand_in_password_is_named() {
    // As sshd sends it for a typed 6-digit code: cut to six bytes.
    let r = case().answer(&STAND_IN[..6]).reply(enrolled()).run();
    assert_eq!(r.end.code, PamCode::AuthErr);
    assert!(
        r.end.reason.starts_with("sshd refused this account"),
        "{}",
        r.end.reason
    );
    assert_eq!(r.calls, vec![lookup(FULL)]);
    assert_eq!(r.prompts, prompts(1));
    assert!(!r.line.contains('\u{7f}'), "{}", r.line);

    // A push-only user: Enter would send a push; the stand-in does not.
    let r = push_case().answer(STAND_IN).reply(push_only()).run();
    assert_eq!(r.end.code, PamCode::AuthErr);
    assert_eq!(r.calls, vec![lookup(FULL)]);

    // forward_pass, and stash_code keeping it for the second line.
    let r = case()
        .arg("stash_code")
        .answer(STAND_IN)
        .reply(enrolled())
        .run();
    assert_eq!(r.end.code, PamCode::AuthErr);
    assert_eq!(r.authtok_set, None);
    let kept = kept_end(r).expect("decided");
    assert!(kept.reason.starts_with("sshd refused"), "{}", kept.reason);
}

// ---- text message / phone call ---------------------------------------------

/// alice with an app (default unless `phone_default`) and a text-message
/// number.
fn with_phone(phone_default: bool) -> Reply {
    let mut r = registrations(UserStatus::Active, 1).unwrap();
    r.methods[0].is_default = !phone_default;
    r.methods.push(Method {
        id: 9,
        kind: MethodKind::Sms,
        label: "+1 ••• ••• ••42".into(),
        is_default: phone_default,
        created_at: 0,
        last_used_at: None,
        disabled: false,
    });
    Reply::Registrations(Ok(Some(r)))
}

fn code_sent(result: twostep_common::phone::SendResult) -> Reply {
    Reply::Sent(Ok(twostep_common::phone::CodeSent {
        result,
        sent_to: Some("••42".into()),
        expires_at: None,
    }))
}

#[test]
fn typing_sms_sends_a_code_and_asks_for_it() {
    use twostep_common::phone::{Channel, SendResult};
    let ran = case()
        .answer("sms")
        .answer("123456")
        .reply(with_phone(false))
        .reply(code_sent(SendResult::Sent))
        .reply(verdict(VerifyResult::Accept))
        .run();
    assert_eq!(ran.end.code, PamCode::Success, "{:?}", ran.end);
    assert_eq!(
        ran.prompts[0].0, "Verification code, or type sms: ",
        "the prompt offers the text message"
    );
    assert_eq!(ran.prompts[1].0, "Code sent by text message to ••42: ");
    assert!(matches!(
        &ran.calls[1],
        Call::SendCode { user, channel: Channel::Sms } if user == "alice"
    ));
    assert!(matches!(&ran.calls[2], Call::Verify { code, .. } if code == "123456"));
}

#[test]
fn a_phone_default_sends_at_the_start() {
    use twostep_common::phone::SendResult;
    let ran = case()
        .answer("123456")
        .reply(with_phone(true))
        .reply(code_sent(SendResult::Sent))
        .reply(verdict(VerifyResult::Accept))
        .run();
    assert_eq!(ran.end.code, PamCode::Success);
    assert_eq!(ran.prompts.len(), 1);
    assert_eq!(ran.prompts[0].0, "Code sent by text message to ••42: ");
}

#[test]
fn a_code_not_sent_is_said_before_the_next_prompt_and_never_lets_in() {
    use twostep_common::phone::SendResult;
    for (result, words) in [
        (
            SendResult::CouldNotSend,
            "Could not send the text message; try again later or use another method",
        ),
        (
            SendResult::RateLimited,
            "Too many codes sent; try again later",
        ),
    ] {
        let ran = case()
            .no_answer()
            .reply(with_phone(true))
            .reply(code_sent(result))
            .run();
        assert_ne!(ran.end.code, PamCode::Success);
        assert_eq!(
            ran.prompts[0].0,
            format!("{words}\nVerification code, or type sms: ")
        );
    }
    // Typing `sms` over and over is bounded.
    let mut c = case().reply(with_phone(false));
    for _ in 0..crate::flow::MAX_SENDS_PER_LOGIN {
        c = c.answer("sms").reply(code_sent(SendResult::CouldNotSend));
    }
    let ran = c.answer("sms").no_answer().run();
    assert_ne!(ran.end.code, PamCode::Success);
    let last = &ran.prompts.last().unwrap().0;
    assert!(last.starts_with("Too many codes sent"), "{last}");
    // A user without a phone method typing `sms` typed a wrong code.
    let ran = case().answer("sms").no_answer().enrolled_then(&[]).run();
    assert_eq!(ran.end.code, PamCode::AuthErr);
    assert!(ran
        .calls
        .iter()
        .all(|c| !matches!(c, Call::SendCode { .. })));
}

#[test]
fn an_unanswered_send_is_could_not_send_and_the_fail_mode_no_longer_applies() {
    // A gateway slower than the host's timeout: the registry was reached
    // (the lookup answered), so fail_mode = "open" must not let the user
    // in, neither at the send nor at a later unanswered call.
    let ran = case()
        .pam(fail_mode(FailMode::Open))
        .answer("123456")
        .reply(with_phone(true))
        .reply(Reply::Sent(Err(unreachable())))
        .reply(Reply::Verdict(Err(unreachable())))
        .run();
    assert_eq!(ran.end.code, PamCode::AuthinfoUnavail, "{:?}", ran.end);
    assert!(
        ran.end
            .reason
            .contains(twostep_common::phone::FAIL_MODE_AFTER_A_FAILED_SEND),
        "{}",
        ran.end.reason
    );
    assert_eq!(
        ran.prompts[0].0,
        "Could not send the text message; try again later or use another method\nVerification code, or type sms: "
    );
    // Without a later outage the login goes on as usual: the app's code
    // still works.
    let ran = case()
        .pam(fail_mode(FailMode::Open))
        .answer("123456")
        .reply(with_phone(true))
        .reply(Reply::Sent(Err(unreachable())))
        .reply(verdict(VerifyResult::Accept))
        .run();
    assert_eq!(ran.end.code, PamCode::Success);
}
