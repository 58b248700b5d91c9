//! The `auth` hook's driver, free of FFI: it reads what the flow needs,
//! then performs each [`Action`] of [`crate::flow::Flow`] and feeds the
//! result back, talking to PAM through [`PamIo`] (implemented over a real
//! handle in `glue.rs`) and to the registry through [`Registry`]
//! (implemented here over `RegistryClient`). Every decision is the flow's.
//!
//! 1. module arguments, PAM_USER, PAM_SERVICE, PAM_RHOST, PAM_TTY;
//! 2. the configuration file (an error: `PAM_AUTHINFO_UNAVAIL`, whatever
//!    the fail mode);
//! 3. the flow's inputs: the user's groups (only when a group list is
//!    configured), the host name, PAM_AUTHTOK (only for `try_first_pass`
//!    and `use_first_pass`);
//! 4. a current-thread tokio runtime owned by this call; the host API key
//!    (must be root-owned, mode 0600) is read and the registry client built
//!    on the first registry call, so an exempt user needs neither; one
//!    connection per registry call, none kept across the prompt;
//! 5. the flow, driven to its end;
//! 6. one log line with user, service, rhost, result and reason; the
//!    runtime is shut down (bounded) before returning.

use crate::args::{Args, FirstPass};
use crate::flow::{Action, CallError, End, Event, Flow, Inputs, Level, PamCode, Stash, Typed, Who};
use std::time::{Duration, Instant};
use twostep_common::api::{AuthContext, Registrations, VerifyRequest, VerifyResponse};
use twostep_common::client::{ClientError, Pooling, RegistryClient};
use twostep_common::phone::{CodeSent, SendCode};
use twostep_common::policy;
use twostep_common::push::{PushResult, PushStarted, StartPush, MAX_WAIT_SECS};
use twostep_config::{Config, RegistryClientConfig};
use zeroize::Zeroizing;

/// How long the runtime may take to stop its blocking threads (a name
/// lookup in progress) once the hook is done.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What the driver needs from PAM. Strings are PAM items as UTF-8 (lossy).
pub trait PamIo {
    /// PAM_USER, asking the application if unset (`pam_get_user`).
    ///
    /// # Errors
    /// The libpam result when no user name could be had.
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
    ///
    /// # Errors
    /// The libpam result of `pam_set_item`.
    fn set_authtok(&mut self, value: &str) -> Result<(), PamCode>;
    /// One conversation prompt, `PAM_PROMPT_ECHO_ON` when `echo_on`, else
    /// `PAM_PROMPT_ECHO_OFF`; `Ok(None)` when the application gave no
    /// answer.
    ///
    /// # Errors
    /// `PAM_CONV_ERR` (or libpam's result) when the conversation failed.
    fn prompt(&mut self, text: &str, echo_on: bool) -> Result<Option<Zeroizing<String>>, PamCode>;
    /// Shows `text` to the user as a `PAM_ERROR_MSG` (best effort: a
    /// conversation that fails changes nothing, the result stands).
    fn tell(&mut self, text: &str);
    /// One log line via `pam_syslog`.
    fn log(&self, level: Level, message: &str);
    /// Keeps `stash` for a later `verify_stashed` line of this PAM
    /// transaction (`pam_set_data`), replacing (and wiping) what an
    /// earlier call kept.
    ///
    /// # Errors
    /// The libpam result of `pam_set_data`.
    fn set_stash(&mut self, stash: Stash) -> Result<(), PamCode>;
    /// Takes what a `stash_code` line kept (`pam_get_data`), leaving
    /// nothing behind; `None` when nothing was kept.
    fn take_stash(&mut self) -> Option<Stash>;
}

/// The registry calls the flow asks for, each bounded by `within`.
pub trait Registry {
    /// The user's registrations; `Ok(None)` for a user the registry does
    /// not know.
    ///
    /// # Errors
    /// [`CallError::Unreachable`] when no answer came (within `within`
    /// included), [`CallError::Other`] for every other failure.
    fn registrations(
        &mut self,
        user: &str,
        context: &AuthContext,
        within: Duration,
    ) -> Result<Option<Registrations>, CallError>;
    /// The registry's verdict on a code (consumed on `accept`).
    ///
    /// # Errors
    /// As [`Registry::registrations`].
    fn verify(
        &mut self,
        request: &VerifyRequest,
        within: Duration,
    ) -> Result<VerifyResponse, CallError>;
    /// Starts a push challenge; a refusal (rate limited, blocked...) is an
    /// `Ok` answer saying why.
    ///
    /// # Errors
    /// As [`Registry::registrations`].
    fn start_push(
        &mut self,
        request: &StartPush,
        within: Duration,
    ) -> Result<PushStarted, CallError>;
    /// The state of a challenge this host started, after waiting up to
    /// `wait` (at most [`MAX_WAIT_SECS`]) for the device's answer:
    /// [`PushResult::Pending`] when `wait` ran out, whether the registry
    /// said so or the deadline came first.
    ///
    /// # Errors
    /// [`CallError::Unreachable`] when the registry could not be reached,
    /// [`CallError::Other`] for every other failure (a challenge unknown
    /// to the registry, a final state handed out already).
    fn push_outcome(&mut self, challenge_id: &str, wait: Duration)
        -> Result<PushResult, CallError>;
    /// Cancels a challenge this host started.
    ///
    /// # Errors
    /// As [`Registry::registrations`].
    fn cancel_push(&mut self, challenge_id: &str, within: Duration) -> Result<(), CallError>;
    /// Asks the registry to send `user` a code by text message or call; a
    /// code that did not go out is an `Ok` answer saying why.
    ///
    /// # Errors
    /// As [`Registry::registrations`].
    fn send_code(
        &mut self,
        user: &str,
        request: &SendCode,
        within: Duration,
    ) -> Result<CodeSent, CallError>;
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
    // The registry's one username rule: a name it could never hold (a
    // control character, whitespace at an end, not NFC, …) is refused
    // here, not sent to it and not counted as unreachable.
    if let Err(why) = twostep_common::api::validate_username(&user) {
        io.log(
            Level::Error,
            &format!("user={user:?} result=PAM_USER_UNKNOWN reason=\"{why}\""),
        );
        return PamCode::UserUnknown;
    }
    let who = Who {
        user,
        service: io.service(),
        rhost: io.rhost(),
        tty: io.tty(),
    };
    let end = run(io, args, &who);
    io.log(end.level, &who.line(&end));
    end.code
}

/// Everything after the user name.
fn run(io: &mut dyn PamIo, args: Args, who: &Who) -> End {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            return End::new(
                PamCode::AuthinfoUnavail,
                Level::Error,
                format!("configuration: {e}"),
            )
        }
    };
    let registry = match config.registry() {
        Ok(r) => r.clone(),
        Err(e) => {
            return End::new(
                PamCode::AuthinfoUnavail,
                Level::Error,
                format!("configuration {}: {e}", args.config.display()),
            )
        }
    };
    if args.debug {
        io.log(
            Level::Debug,
            &format!("configuration {} loaded", args.config.display()),
        );
    }
    let pam = config.pam;
    let groups = if policy::needs_groups(&pam) {
        user_groups(&who.user)
    } else {
        Vec::new()
    };
    let authtok = match args.first_pass {
        FirstPass::Prompt => None,
        FirstPass::Try | FirstPass::Use => io.authtok().map(Typed::from),
    };
    let stash = if args.verify_stashed {
        io.take_stash()
    } else {
        None
    };
    let host = nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return End::new(
                PamCode::SystemErr,
                Level::Error,
                format!("cannot create the async runtime: {e}"),
            )
        }
    };
    let mut flow = Flow::new(Inputs {
        who: who.clone(),
        host,
        groups,
        authtok,
        stash,
        args,
        pam,
    });
    let mut remote = Remote {
        config: &registry,
        rt: &rt,
        client: None,
    };
    let end = drive(io, &mut remote, &mut flow, &mut Instant::now);
    drop(remote);
    // No thread outlives the hook: the blocking pool (name lookups) is
    // joined here, bounded by SHUTDOWN_GRACE.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    end
}

/// Performs the flow's actions until it ends; `now` is the clock fed to
/// every step.
pub fn drive(
    io: &mut dyn PamIo,
    registry: &mut dyn Registry,
    flow: &mut Flow,
    now: &mut dyn FnMut() -> Instant,
) -> End {
    let mut event = Event::Start;
    loop {
        event = match flow.step(now(), event) {
            Action::Log { level, message } => {
                io.log(level, &message);
                Event::Logged
            }
            Action::LookUp {
                user,
                context,
                within,
            } => Event::Registrations(registry.registrations(&user, &context, within)),
            Action::Prompt { text, echo_on } => {
                Event::Answer(io.prompt(&text, echo_on).map(|a| a.map(Typed::from)))
            }
            Action::Verify { request, within } => {
                Event::Verdict(registry.verify(request.request(), within))
            }
            Action::SetAuthtok(password) => Event::AuthtokSet(io.set_authtok(password.expose())),
            Action::Stash(stash) => Event::Stashed(io.set_stash(stash)),
            Action::StartPush { request, within } => {
                Event::PushStarted(registry.start_push(&request, within))
            }
            Action::AwaitPush { challenge_id, wait } => {
                Event::PushOutcome(registry.push_outcome(&challenge_id, wait))
            }
            Action::CancelPush {
                challenge_id,
                within,
            } => Event::PushCancelled(registry.cancel_push(&challenge_id, within)),
            Action::SendCode {
                user,
                request,
                within,
            } => Event::CodeSent(registry.send_code(&user, &request, within)),
            Action::Done(end) => {
                if let Some(notice) = end.notice {
                    io.tell(notice);
                }
                return end;
            }
        };
    }
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

/// Which registry failures the fail mode applies to
/// ([`ClientError::is_unreachable`]); every other one is
/// [`CallError::Other`], a TLS failure saying so in its text.
pub fn call_error(e: ClientError) -> CallError {
    match e {
        e if e.is_unreachable() => CallError::Unreachable(e.to_string()),
        // Logged at error level with the cause, saying why an admin's
        // fail_mode = "open" did not let the user in.
        e @ ClientError::Tls(_) => {
            CallError::Other(format!("{e} (fail_mode does not apply to TLS failures)"))
        }
        e => CallError::Other(e.to_string()),
    }
}

/// [`Registry`] over `RegistryClient` on this call's runtime.
struct Remote<'a> {
    config: &'a RegistryClientConfig,
    rt: &'a tokio::runtime::Runtime,
    /// Built on the first call: reads the host API key.
    client: Option<RegistryClient>,
}

impl Remote<'_> {
    fn client(&mut self) -> Result<&RegistryClient, CallError> {
        if self.client.is_none() {
            // No idle connection is kept across the prompt: this call's
            // runtime is not polled while the user types, so it would not
            // notice the registry closing it (a restart) and the verify
            // would fail on it. A key file with the wrong owner or mode
            // fails here, with the file and the reason in the message;
            // never subject to the fail mode.
            let c = RegistryClient::for_host_with(self.config, Pooling::PerCall)
                .map_err(|e| CallError::Other(format!("registry client: {e}")))?;
            self.client = Some(c);
        }
        self.client
            .as_ref()
            .ok_or_else(|| CallError::Other("registry client: not built".into()))
    }
}

/// Runs `fut` on `rt` for at most `within`.
fn bounded<T>(
    rt: &tokio::runtime::Runtime,
    within: Duration,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, CallError> {
    // The timer must be created inside the runtime's context.
    match rt.block_on(async { tokio::time::timeout(within, fut).await }) {
        Err(_) => Err(CallError::Unreachable(format!(
            "registry did not answer within total_timeout ({} s)",
            within.as_secs_f32().ceil()
        ))),
        Ok(r) => r.map_err(call_error),
    }
}

impl Registry for Remote<'_> {
    fn registrations(
        &mut self,
        user: &str,
        context: &AuthContext,
        within: Duration,
    ) -> Result<Option<Registrations>, CallError> {
        let rt = self.rt;
        let client = self.client()?;
        bounded(rt, within, client.registrations_for(user, context))
    }

    fn verify(
        &mut self,
        request: &VerifyRequest,
        within: Duration,
    ) -> Result<VerifyResponse, CallError> {
        let rt = self.rt;
        let client = self.client()?;
        bounded(rt, within, client.verify(request))
    }

    fn start_push(
        &mut self,
        request: &StartPush,
        within: Duration,
    ) -> Result<PushStarted, CallError> {
        let rt = self.rt;
        let client = self.client()?;
        bounded(rt, within, client.start_push(request))
    }

    fn push_outcome(
        &mut self,
        challenge_id: &str,
        wait: Duration,
    ) -> Result<PushResult, CallError> {
        let rt = self.rt;
        let client = self.client()?;
        long_poll(rt, wait, |ask| client.push_outcome(challenge_id, ask))
    }

    fn cancel_push(&mut self, challenge_id: &str, within: Duration) -> Result<(), CallError> {
        let rt = self.rt;
        let client = self.client()?;
        bounded(rt, within, client.cancel_push(challenge_id))
    }

    fn send_code(
        &mut self,
        user: &str,
        request: &SendCode,
        within: Duration,
    ) -> Result<CodeSent, CallError> {
        let rt = self.rt;
        let client = self.client()?;
        bounded(rt, within, client.send_code(user, request))
    }
}

/// One long-poll for a push outcome ending by `wait`. The call is cut at
/// `wait`, which then counts as no answer yet ([`PushResult::Pending`]),
/// never as an unreachable registry: a deadline reached during a wait is
/// no reason for the fail mode. The registry is asked to hold the request
/// for whole seconds (at most [`MAX_WAIT_SECS`]): `wait` rounded up, less
/// one second when that leaves at least one, so that its "pending" arrives
/// before the cut and a final state it hands out (once) is not lost; the
/// last poll of a budget asks for at least one second and is cut, so a
/// fraction of a second left is one poll, not a stream of zero-second
/// polls.
fn long_poll<F, Fut>(
    rt: &tokio::runtime::Runtime,
    wait: Duration,
    poll: F,
) -> Result<PushResult, CallError>
where
    F: FnOnce(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<twostep_common::push::PushOutcome, ClientError>>,
{
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = if whole >= 2 { whole - 1 } else { whole };
    let ask = Duration::from_secs(secs.min(MAX_WAIT_SECS));
    match rt.block_on(async { tokio::time::timeout(wait, poll(ask)).await }) {
        Err(_) => Ok(PushResult::Pending),
        Ok(r) => r.map(|o| o.result).map_err(call_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::Conversation;

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
        let mut io = Conversation::default();
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
        assert!(io.prompts.is_empty());
    }

    #[test]
    fn a_name_the_registry_cannot_hold_is_user_unknown_before_any_call() {
        for name in ["ali\0ce", " alice", "alice\n", "-alice", "a/b"] {
            let mut io = Conversation::default();
            io.who.user = name.into();
            // The configuration is not even read: no registry call.
            let code = authenticate(&mut io, &["config=/nonexistent/twostep.toml".into()]);
            assert_eq!(code, PamCode::UserUnknown, "{name:?}");
            let logs = io.logs.borrow();
            assert_eq!(logs.len(), 1, "{logs:?}");
            assert!(logs[0].1.contains("result=PAM_USER_UNKNOWN"), "{logs:?}");
            assert!(logs[0].1.contains(&format!("{name:?}")), "{logs:?}");
            assert!(io.prompts.is_empty());
        }
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
        let mut io = Conversation::default();
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
        let mut io = Conversation::default();
        let code = authenticate(&mut io, &[format!("config={}", p.display())]);
        assert_eq!(code, PamCode::AuthinfoUnavail);
        let logs = io.logs.borrow();
        let (level, line) = &logs[0];
        assert_eq!(*level, Level::Error);
        assert!(line.contains("reason=\"registry client: "), "{line}");
        assert!(line.contains(&key.display().to_string()), "{line}");
        assert!(line.contains("mode 0644"), "{line}");
    }

    /// An exempt user is settled before the host API key is read: an
    /// unreadable key does not matter.
    #[test]
    fn exempt_network_is_ignored_without_registry() {
        let d = tempdir();
        let p = write(
            &d,
            "x.toml",
            "version = 1\n[registry]\nurl = \"http://127.0.0.1:1\"\napi_key_file = \"/nonexistent/host.key\"\n[pam]\nexempt_networks = [\"192.0.2.0/24\"]\n",
        );
        let mut io = Conversation::default();
        let code = authenticate(
            &mut io,
            &[format!("config={}", p.display()), "nonsense".into()],
        );
        assert_eq!(code, PamCode::Ignore);
        let logs = io.logs.borrow();
        assert!(logs[0].1.contains("unknown module argument \"nonsense\""));
        assert_eq!(
            logs[1],
            (
                Level::Info,
                "user=\"alice\" service=\"sshd\" rhost=\"192.0.2.9\" result=PAM_IGNORE \
                 reason=\"exempt: rhost in 192.0.2.0/24\""
                    .into()
            )
        );
    }

    /// The fail mode applies to an unreachable registry only; a 5xx, a TLS
    /// failure, a broken connection, a refused credential or a bad answer
    /// never reach it.
    #[test]
    fn client_errors_split_by_fail_mode() {
        assert_eq!(
            call_error(ClientError::Unreachable("connection refused".into())),
            CallError::Unreachable("registry unreachable: connection refused".into())
        );
        assert_eq!(
            call_error(ClientError::Tls(
                "invalid peer certificate: UnknownIssuer".into()
            )),
            CallError::Other(
                "registry TLS failure: invalid peer certificate: UnknownIssuer \
                 (fail_mode does not apply to TLS failures)"
                    .into()
            )
        );
        for e in [
            ClientError::Server {
                status: 503,
                message: "database is read-only".into(),
            },
            ClientError::Transport("connection reset".into()),
            ClientError::Refused {
                status: 401,
                code: "unauthorized".into(),
                message: "unknown key".into(),
            },
            ClientError::Protocol("not JSON".into()),
            ClientError::Setup("bad URL".into()),
        ] {
            let text = e.to_string();
            assert_eq!(call_error(e), CallError::Other(text));
        }
    }

    /// A registry call past its deadline is an unreachable registry, and
    /// the deadline is the one the flow gave.
    #[test]
    fn deadline_is_unreachable() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r: Result<(), CallError> = bounded(&rt, Duration::from_millis(10), async {
            std::future::pending::<Result<(), ClientError>>().await
        });
        assert_eq!(
            r,
            Err(CallError::Unreachable(
                "registry did not answer within total_timeout (1 s)".into()
            ))
        );
    }

    /// A push long-poll past its wait is a pending push, never an
    /// unreachable registry; the registry is asked for whole seconds that
    /// end before the cut (at least one); its answer and its failures pass
    /// through.
    #[test]
    fn long_poll_deadline_is_pending() {
        use twostep_common::push::PushOutcome;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let asked = std::cell::Cell::new(Duration::ZERO);
        let r = long_poll(&rt, Duration::from_millis(10), |ask| {
            asked.set(ask);
            std::future::pending::<Result<PushOutcome, ClientError>>()
        });
        assert_eq!(r, Ok(PushResult::Pending));
        assert_eq!(asked.get(), Duration::from_secs(1));
        let r = long_poll(&rt, Duration::from_secs(45), |ask| {
            asked.set(ask);
            std::future::ready(Ok(PushOutcome {
                result: PushResult::Approved,
            }))
        });
        assert_eq!(r, Ok(PushResult::Approved));
        assert_eq!(asked.get(), Duration::from_secs(MAX_WAIT_SECS));
        let r = long_poll(&rt, Duration::from_millis(2500), |ask| {
            asked.set(ask);
            std::future::ready(Err(ClientError::Unreachable("connection refused".into())))
        });
        assert_eq!(
            r,
            Err(CallError::Unreachable(
                "registry unreachable: connection refused".into()
            ))
        );
        assert_eq!(asked.get(), Duration::from_secs(2));
        let r = long_poll(&rt, Duration::from_millis(1500), |ask| {
            asked.set(ask);
            std::future::ready(Ok(PushOutcome {
                result: PushResult::Pending,
            }))
        });
        assert_eq!(r, Ok(PushResult::Pending));
        assert_eq!(asked.get(), Duration::from_secs(1));
    }
}
