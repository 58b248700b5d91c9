//! The `auth` hook's flow, free of FFI: it talks to PAM through [`PamIo`]
//! (implemented over a real handle in `glue.rs`) and takes every policy
//! decision from `twostep_common::policy` and `twostep_common::decision`.
//!
//! 1. module arguments, PAM_USER, PAM_SERVICE, PAM_RHOST, PAM_TTY;
//! 2. the configuration file (an error: `PAM_AUTHINFO_UNAVAIL`, whatever
//!    the fail mode);
//! 3. local exemptions (groups, source networks): `PAM_IGNORE`;
//! 4. the host API key (must be root-owned, mode 0600) and the registry
//!    client, on a current-thread tokio runtime owned by this call; one
//!    connection per registry call, none kept across the prompt;
//! 5. the user's registrations: locked, disabled, unknown or unenrolled
//!    users are settled without a prompt;
//! 6. up to `max_tries` prompts, each code verified by the registry;
//! 7. one log line with user, service, rhost, result and reason; the
//!    runtime is shut down (bounded) before returning.

use crate::args::{Args, FirstPass};
use std::time::{Duration, Instant};
use twostep_common::api::{AuthContext, VerifyRequest};
use twostep_common::client::{ClientError, Pooling, RegistryClient};
use twostep_common::decision::{self, Decision};
use twostep_common::policy::{self, Answer, Budget, CodeLoop, Next, Outcome};
use twostep_config::{Config, FailMode};
use zeroize::Zeroizing;

/// How long the runtime may take to stop its blocking threads (a name
/// lookup in progress) once the hook is done.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

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

/// What the flow needs from PAM. Strings are PAM items as UTF-8 (lossy).
pub trait PamIo {
    /// PAM_USER, asking the application if unset (`pam_get_user`).
    fn user(&mut self) -> Result<String, PamCode>;
    /// PAM_SERVICE.
    fn service(&self) -> Option<String>;
    /// PAM_RHOST.
    fn rhost(&self) -> Option<String>;
    /// PAM_TTY.
    fn tty(&self) -> Option<String>;
    /// PAM_AUTHTOK, if set by an earlier module.
    fn authtok(&self) -> Option<Zeroizing<String>>;
    /// Sets PAM_AUTHTOK (only in `forward_pass` mode).
    fn set_authtok(&mut self, value: &str) -> Result<(), PamCode>;
    /// One `PAM_PROMPT_ECHO_OFF` prompt; `Ok(None)` when the application
    /// gave no answer.
    fn prompt_echo_off(&mut self, prompt: &str) -> Result<Option<Zeroizing<String>>, PamCode>;
    /// One log line via `pam_syslog`.
    fn log(&self, level: Level, message: &str);
}

/// Who and where, for log lines and the registry's audit context.
struct Who {
    user: String,
    service: Option<String>,
    rhost: Option<String>,
    tty: Option<String>,
}

impl Who {
    fn line(&self, code: PamCode, reason: &str) -> String {
        format!(
            "user={:?} service={:?} rhost={:?} result={} reason={:?}",
            self.user,
            self.service.as_deref().unwrap_or(""),
            self.rhost.as_deref().unwrap_or(""),
            code.name(),
            reason
        )
    }
}

/// The `auth` hook: `pam_sm_authenticate`.
pub fn authenticate(io: &mut dyn PamIo, argv: &[String]) -> PamCode {
    let args = Args::parse(argv.iter().map(String::as_str));
    for a in &args.unknown {
        io.log(
            Level::Error,
            &format!("unknown module argument {a:?} ignored"),
        );
    }
    let user = match io.user() {
        Ok(u) if !u.is_empty() => u,
        Ok(_) => {
            io.log(
                Level::Error,
                "result=PAM_USER_UNKNOWN reason=\"empty user name\"",
            );
            return PamCode::UserUnknown;
        }
        Err(code) => {
            io.log(
                Level::Error,
                &format!("result={} reason=\"cannot get the user name\"", code.name()),
            );
            return code;
        }
    };
    let who = Who {
        user,
        service: io.service(),
        rhost: io.rhost(),
        tty: io.tty(),
    };
    let (code, level, reason) = run(io, &args, &who);
    io.log(level, &who.line(code, &reason));
    code
}

/// Everything after the user name; returns the code, its log level and reason.
fn run(io: &mut dyn PamIo, args: &Args, who: &Who) -> (PamCode, Level, String) {
    let debug = |io: &dyn PamIo, m: &str| {
        if args.debug {
            io.log(Level::Debug, m);
        }
    };
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            return (
                PamCode::AuthinfoUnavail,
                Level::Error,
                format!("configuration: {e}"),
            )
        }
    };
    let registry = match config.registry() {
        Ok(r) => r.clone(),
        Err(e) => {
            return (
                PamCode::AuthinfoUnavail,
                Level::Error,
                format!("configuration {}: {e}", args.config.display()),
            )
        }
    };
    let pam = &config.pam;
    debug(
        io,
        &format!("configuration {} loaded", args.config.display()),
    );

    let groups = if policy::needs_groups(pam) {
        user_groups(&who.user)
    } else {
        Vec::new()
    };
    if let Some(ex) = policy::exemption(pam, &groups, who.rhost.as_deref()) {
        return (PamCode::Ignore, Level::Info, ex.reason());
    }

    // No idle connection is kept across the prompt: this call's runtime is
    // not polled while the user types, so it would not notice the registry
    // closing it (a restart) and the verify would fail on it.
    let client = match RegistryClient::for_host_with(&registry, Pooling::PerCall) {
        Ok(c) => c,
        // A key file with the wrong owner or mode lands here, with the file
        // and the reason in the message. Never subject to the fail mode.
        Err(e) => {
            return (
                PamCode::AuthinfoUnavail,
                Level::Error,
                format!("registry client: {e}"),
            )
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return (
                PamCode::SystemErr,
                Level::Error,
                format!("cannot create the async runtime: {e}"),
            )
        }
    };
    let mut session = Session {
        io,
        args,
        who,
        rt: &rt,
        client: &client,
        fail_mode: pam.fail_mode,
        budget: Budget::new(Duration::from_secs(pam.total_timeout)),
    };
    let outcome = session.converse(pam);
    drop(client);
    // No thread outlives the hook: the blocking pool (name lookups) is
    // joined here, bounded by SHUTDOWN_GRACE.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    outcome
}

/// The names of every group `user` is in, primary included; empty when the
/// user is not known to NSS.
fn user_groups(user: &str) -> Vec<String> {
    use nix::unistd::{getgrouplist, Group, User};
    let Ok(Some(u)) = User::from_name(user) else {
        return Vec::new();
    };
    let Ok(cname) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    let gids = getgrouplist(&cname, u.gid).unwrap_or_else(|_| vec![u.gid]);
    gids.into_iter()
        .filter_map(|g| Group::from_gid(g).ok().flatten().map(|g| g.name))
        .collect()
}

/// Why a registry call gave no verdict.
enum CallError {
    /// Unreachable or past the deadline: the fail mode applies.
    Unreachable(String),
    /// TLS failure, connection broken mid-request, 5xx, refused
    /// credential, bad answer, setup: never the fail mode.
    Other(String),
}

struct Session<'a> {
    io: &'a mut dyn PamIo,
    args: &'a Args,
    who: &'a Who,
    rt: &'a tokio::runtime::Runtime,
    client: &'a RegistryClient,
    fail_mode: FailMode,
    budget: Budget,
}

impl Session<'_> {
    fn debug(&self, m: &str) {
        if self.args.debug {
            self.io.log(Level::Debug, m);
        }
    }

    /// Runs `fut` on this call's runtime within what is left of the budget.
    fn call<T>(
        &mut self,
        fut: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, CallError> {
        let left = self.budget.remaining();
        if left.is_zero() {
            return Err(CallError::Unreachable(
                "total_timeout used up before the registry answered".into(),
            ));
        }
        let start = Instant::now();
        // The timer must be created inside the runtime's context.
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(left, fut).await });
        self.budget.spend(start.elapsed());
        match r {
            Err(_) => Err(CallError::Unreachable(format!(
                "registry did not answer within total_timeout ({} s)",
                left.as_secs_f32().ceil()
            ))),
            Ok(Err(e)) if e.is_unreachable() => Err(CallError::Unreachable(e.to_string())),
            // Logged at error level with the cause, saying why an admin's
            // fail_mode = "open" did not let the user in.
            Ok(Err(e @ ClientError::Tls(_))) => Err(CallError::Other(format!(
                "{e} (fail_mode does not apply to TLS failures)"
            ))),
            Ok(Err(e)) => Err(CallError::Other(e.to_string())),
            Ok(Ok(v)) => Ok(v),
        }
    }

    fn failed_call(&self, e: CallError) -> (PamCode, Level, String) {
        match e {
            CallError::Unreachable(why) => {
                let d = decision::unreachable(self.fail_mode);
                let (code, level) = map_decision(d);
                (code, level, format!("{}: {why}", d.as_str()))
            }
            CallError::Other(why) => (PamCode::AuthinfoUnavail, Level::Error, why),
        }
    }

    fn converse(&mut self, pam: &twostep_config::PamConfig) -> (PamCode, Level, String) {
        let client = self.client;
        let user = self.who.user.clone();
        let reg = match self.call(client.registrations(&user)) {
            Ok(r) => r,
            Err(e) => return self.failed_call(e),
        };
        if let Some(d) = policy::from_registrations(reg.as_ref(), pam.unenrolled) {
            return finish(Outcome::Decided(d));
        }
        self.debug("user has a method; asking for a code");

        let prompt = if self.args.forward_pass {
            pam.forward_pass_prompt.as_str()
        } else {
            pam.prompt.as_str()
        };
        let mut tries = CodeLoop::new(pam.max_tries, pam.unenrolled);
        let mut preset = match self.args.first_pass {
            FirstPass::Prompt => None,
            FirstPass::Try => self.io.authtok().filter(|t| self.parse(t).1.is_some()),
            FirstPass::Use => match self.io.authtok() {
                Some(t) => Some(t),
                None => {
                    return (
                        PamCode::AuthErr,
                        Level::Notice,
                        "use_first_pass: PAM_AUTHTOK is not set".into(),
                    )
                }
            },
        };
        let context = AuthContext {
            service: self.who.service.clone(),
            host: nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned()),
            remote_addr: self.who.rhost.clone(),
            tty: self.who.tty.clone(),
        };
        loop {
            let from_authtok = preset.is_some();
            let answer = match preset.take() {
                Some(a) => a,
                None if self.args.first_pass == FirstPass::Use => {
                    return finish(tries.no_more_answers())
                }
                None => match self.io.prompt_echo_off(prompt) {
                    Ok(Some(a)) => a,
                    Ok(None) | Err(_) => return finish(tries.no_more_answers()),
                },
            };
            let (password, code) = self.parse(&answer);
            let password = password.map(|p| Zeroizing::new(p.to_owned()));
            let verdict = match code {
                None => Answer::Malformed,
                Some(code) => {
                    let req = VerifyRequest {
                        username: user.clone(),
                        code: code.to_owned(),
                        context: context.clone(),
                    };
                    let r = self.call(client.verify(&req));
                    // The request held a copy of the code; wipe it.
                    let mut code = req.code;
                    zeroize::Zeroize::zeroize(&mut code);
                    match r {
                        Ok(resp) => Answer::Verdict(resp.result),
                        Err(e) => {
                            let (c, level, reason) = self.failed_call(e);
                            if c == PamCode::Success {
                                if let Err(c) = self.forward(password.as_ref().map(|p| p.as_str()))
                                {
                                    return (c, Level::Error, "cannot set PAM_AUTHTOK".into());
                                }
                            }
                            return (c, level, reason);
                        }
                    }
                }
            };
            drop(answer);
            self.debug(&format!(
                "try {}{}: {:?}",
                tries.wrong_tries() + 1,
                if from_authtok { " (PAM_AUTHTOK)" } else { "" },
                match verdict {
                    Answer::Malformed => "not a code",
                    Answer::Verdict(r) => r.as_str(),
                }
            ));
            match tries.answer(verdict) {
                Next::Prompt => continue,
                Next::Done(outcome) => {
                    let done = finish(outcome);
                    if done.0 == PamCode::Success {
                        if let Err(c) = self.forward(password.as_ref().map(|p| p.as_str())) {
                            return (c, Level::Error, "cannot set PAM_AUTHTOK".into());
                        }
                    }
                    return done;
                }
            }
        }
    }

    /// Splits one answer into (password, code) by mode; the code is `None`
    /// when the answer does not have the right shape.
    fn parse<'s>(&self, answer: &'s str) -> (Option<&'s str>, Option<&'s str>) {
        if self.args.forward_pass {
            match policy::split_forward_pass(answer) {
                Some((p, c)) => (Some(p), Some(c)),
                None => (None, None),
            }
        } else {
            (None, policy::is_code_format(answer).then_some(answer))
        }
    }

    /// In `forward_pass` mode, hands the password to the next module.
    fn forward(&mut self, password: Option<&str>) -> Result<(), PamCode> {
        match (self.args.forward_pass, password) {
            (true, Some(p)) => self.io.set_authtok(p),
            _ => Ok(()),
        }
    }
}

/// The PAM code and log level of a decision (DESIGN.md "PAM results").
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

/// The PAM code, log level and reason of an outcome.
pub fn finish(o: Outcome) -> (PamCode, Level, String) {
    match o {
        Outcome::Decided(d) => {
            let (c, l) = map_decision(d);
            (c, l, d.as_str().to_owned())
        }
        Outcome::MaxTries => (
            PamCode::MaxTries,
            Level::Notice,
            "too many wrong codes".into(),
        ),
        Outcome::NoAnswer => (
            PamCode::ConvErr,
            Level::Notice,
            "no answer to the prompt".into(),
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use twostep_common::decision::DenyReason;

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
        assert_eq!(finish(Outcome::MaxTries).0, PamCode::MaxTries);
        assert_eq!(finish(Outcome::NoAnswer).0, PamCode::ConvErr);
    }

    /// A scripted PAM handle for the steps that need no registry.
    #[derive(Default)]
    pub(crate) struct Scripted {
        pub logs: std::cell::RefCell<Vec<(Level, String)>>,
        pub authtok_set: Option<String>,
        pub prompts: u32,
    }

    impl PamIo for Scripted {
        fn user(&mut self) -> Result<String, PamCode> {
            Ok("alice".into())
        }
        fn service(&self) -> Option<String> {
            Some("sshd".into())
        }
        fn rhost(&self) -> Option<String> {
            Some("192.0.2.9".into())
        }
        fn tty(&self) -> Option<String> {
            None
        }
        fn authtok(&self) -> Option<Zeroizing<String>> {
            None
        }
        fn set_authtok(&mut self, value: &str) -> Result<(), PamCode> {
            self.authtok_set = Some(value.to_owned());
            Ok(())
        }
        fn prompt_echo_off(&mut self, _: &str) -> Result<Option<Zeroizing<String>>, PamCode> {
            self.prompts += 1;
            Ok(None)
        }
        fn log(&self, level: Level, message: &str) {
            self.logs.borrow_mut().push((level, message.to_owned()));
        }
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pam_twostep-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_config_fails_closed_even_when_open() {
        let mut io = Scripted::default();
        let code = authenticate(&mut io, &["config=/nonexistent/twostep.toml".into()]);
        assert_eq!(code, PamCode::AuthinfoUnavail);
        let logs = io.logs.borrow();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].1.contains("/nonexistent/twostep.toml"), "{logs:?}");
        assert!(logs[0].1.contains("user=\"alice\""), "{logs:?}");
        assert!(
            logs[0].1.contains("result=PAM_AUTHINFO_UNAVAIL"),
            "{logs:?}"
        );
        assert_eq!(io.prompts, 0);
    }

    #[test]
    fn bad_config_with_fail_open_is_not_success() {
        let d = tempdir();
        // fail_mode = "open", but an unknown key makes the file invalid.
        let p = write(
            &d,
            "bad.toml",
            "version = 1\n[registry]\nurl = \"http://127.0.0.1:1\"\n[pam]\nfail_mode = \"open\"\nbogus = 1\n",
        );
        let mut io = Scripted::default();
        let code = authenticate(&mut io, &[format!("config={}", p.display())]);
        assert_eq!(code, PamCode::AuthinfoUnavail);
        let line = &io.logs.borrow()[0].1;
        assert!(line.contains("bad.toml:6:1"), "{line}");
    }

    #[test]
    fn unsafe_key_file_is_refused_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempdir();
        let key = write(&d, "host.key", "k\n");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = write(
            &d,
            "t.toml",
            &format!(
                "version = 1\n[registry]\nurl = \"http://127.0.0.1:1\"\napi_key_file = \"{}\"\n[pam]\nfail_mode = \"open\"\n",
                key.display()
            ),
        );
        let mut io = Scripted::default();
        let code = authenticate(&mut io, &[format!("config={}", p.display())]);
        assert_eq!(code, PamCode::AuthinfoUnavail);
        let line = &io.logs.borrow()[0].1;
        assert!(line.contains(&key.display().to_string()), "{line}");
        assert!(line.contains("mode 0644"), "{line}");
    }

    #[test]
    fn exempt_network_is_ignored_without_registry() {
        let d = tempdir();
        let p = write(
            &d,
            "x.toml",
            "version = 1\n[registry]\nurl = \"http://127.0.0.1:1\"\n[pam]\nexempt_networks = [\"192.0.2.0/24\"]\n",
        );
        let mut io = Scripted::default();
        let code = authenticate(
            &mut io,
            &[format!("config={}", p.display()), "nonsense".into()],
        );
        assert_eq!(code, PamCode::Ignore);
        let logs = io.logs.borrow();
        assert!(logs[0].1.contains("unknown module argument \"nonsense\""));
        assert!(logs[1].1.contains("rhost in 192.0.2.0/24"), "{logs:?}");
    }
}
