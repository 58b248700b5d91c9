//! Push approvals through the real pam_twostep.so: under pamtester
//! (libpam-wrapper, private service files) and under a real OpenSSH sshd
//! (keyboard-interactive), against a real twostep-api, with the reference
//! device `twostep authenticator` answering. The test reads the number
//! from the module's prompt as it is shown, answers on the device, then
//! presses Enter, as a user would.

mod pam_support;

use pam_support::sshd::{prepare, ssh, start_sshd};
use pam_support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use twostep_e2e::{bin, block_on, Registry};

const OFFER: &str = "Verification code, or press Enter for a push: ";
const PUSH_ONLY_OFFER: &str = "Press Enter to send a push to Test phone: ";
const SENT: &str = "Push sent to Test phone: enter ";
const AFTER_NUMBER: &str = " on your phone, then press Enter: ";

/// Longest one device command may take.
const DEVICE_LIMIT: Duration = Duration::from_secs(30);

// ---- the device ------------------------------------------------------------

/// A push device of one user: its accounts file and its method id.
struct Device {
    accounts: PathBuf,
    id: i64,
}

/// Runs `twostep --config CONFIG ARGS...` (admin commands) and returns its
/// stdout.
fn admin(reg: &Registry, args: &[&str]) -> String {
    let child = Command::new(bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run twostep");
    let out = wait_bounded(child, DEVICE_LIMIT);
    assert!(out.status.success(), "twostep {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

use twostep_e2e::show_output as show;

impl Device {
    /// Enrols a push device for `user` (`twostep enrol USER --push`) and
    /// activates it in a fresh accounts file under `dir`.
    fn enrol(reg: &Registry, dir: &Path, user: &str) -> Device {
        let out = admin(reg, &["enrol", user, "--push", "--no-qr"]);
        let uri = out
            .lines()
            .find_map(|l| l.strip_prefix("uri:"))
            .unwrap_or_else(|| panic!("no uri: line in {out}"))
            .trim()
            .to_owned();
        let accounts = dir.join(format!("{user}-authenticator.json"));
        let out = Device::run_at(&accounts, &["add", &uri, "--name", "Test phone"]);
        assert!(out.status.success(), "add: {}", show(&out));
        let file = std::fs::read_to_string(&accounts).expect("accounts file");
        let v: serde_json::Value = serde_json::from_str(&file).expect("accounts JSON");
        let id = v["accounts"][0]["device_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no device_id in {file}"));
        Device { accounts, id }
    }

    fn run_at(accounts: &Path, args: &[&str]) -> Output {
        twostep_e2e::authenticator(accounts, args)
    }

    /// `twostep authenticator ARGS...`; asserts exit status `status` and
    /// returns stdout.
    fn run(&self, status: i32, args: &[&str]) -> String {
        let out = Device::run_at(&self.accounts, args);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The open challenges, as the device sees them.
    fn pending(&self) -> Vec<serde_json::Value> {
        let out = self.run(0, &["pending", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("pending --json: {e}: {out}"))
    }

    /// The command line a shell script runs for `args`.
    fn script_line(&self, args: &str) -> String {
        format!(
            "{} authenticator --accounts {} {args}",
            bin("twostep").display(),
            self.accounts.display()
        )
    }
}

/// A number that is not `n` (both 10–99).
fn other_number(n: u8) -> u8 {
    if n >= 99 {
        10
    } else {
        n + 1
    }
}

/// The number inside the module's number prompt in `shown`.
fn number_in(shown: &str) -> u8 {
    let start = shown
        .rfind(SENT)
        .unwrap_or_else(|| panic!("no {SENT:?} in {shown:?}"))
        + SENT.len();
    let rest = &shown[start..];
    let end = rest
        .find(AFTER_NUMBER)
        .unwrap_or_else(|| panic!("no {AFTER_NUMBER:?} in {shown:?}"));
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("number {:?}: {e}", &rest[..end]))
}

// ---- pamtester, answered as the prompts come ----------------------------------

/// The rhost every pamtester run here comes from.
const RHOST: &str = "198.51.100.7";

/// pamtester `authenticate` for `user` on `service` from [`RHOST`],
/// answering the prompts of `script` as they come.
fn login(f: &Fixture, service: &str, user: &str, script: Vec<(&str, AtPrompt)>) -> Run {
    pamtester_script(&f.svc_dir(), service, user, Some(RHOST), script)
}

/// A push-only user's login: Enter at the offer, then `at_number` at the
/// number prompt.
fn push_login<'a>(f: &Fixture, service: &str, user: &str, at_number: AtPrompt<'a>) -> Run {
    login(
        f,
        service,
        user,
        vec![(PUSH_ONLY_OFFER, enter()), (AFTER_NUMBER, at_number)],
    )
}

fn enter<'a>() -> AtPrompt<'a> {
    Box::new(|_| Some(String::new()))
}

/// At the number prompt: `answer(number)` on the device, then Enter.
fn on_device<'a>(answer: impl FnOnce(u8) + 'a) -> AtPrompt<'a> {
    Box::new(move |shown| {
        answer(number_in(shown));
        Some(String::new())
    })
}

/// At the number prompt: Enter, and `later` 700 ms after it, on a thread,
/// while the module waits.
fn while_waiting<'a>(later: impl FnOnce(u8) + Send + 'static) -> AtPrompt<'a> {
    Box::new(move |shown| {
        let n = number_in(shown);
        std::thread::spawn(move || {
            std::thread::sleep(WHILE_WAITING);
            later(n);
        });
        Some(String::new())
    })
}

/// How long after the Enter [`while_waiting`] acts.
const WHILE_WAITING: Duration = Duration::from_millis(700);

/// The module's reason on its final log line.
fn reason(r: &Run) -> String {
    let line = r
        .module_log()
        .into_iter()
        .rev()
        .find(|l| l.contains(" result="))
        .unwrap_or_else(|| panic!("no result line: {r:#?}"))
        .to_owned();
    line.split(" reason=")
        .nth(1)
        .unwrap_or_else(|| panic!("no reason in {line}"))
        .trim()
        .trim_matches('"')
        .to_owned()
}

/// The pushes started for `user`, from the registry's audit trail.
fn pushes_started(f: &Fixture, user: &str) -> usize {
    block_on(f.reg.admin_client().audit(1000))
        .expect("audit")
        .into_iter()
        .filter(|e| e.username.as_deref() == Some(user) && e.action == "push.start")
        .count()
}

/// A registry with room for every push of a test, a PAM host, and the
/// services `push` (the default, push = "prompt"), `auto` and `short`
/// (total_timeout = 3).
fn push_fixture() -> Fixture {
    let f = Fixture::with_registry(Registry::start_with(
        None,
        "[api.push]\nmax_challenges = 100\n",
    ));
    f.config("push", "", "");
    f.config("auto", "", "push = \"auto\"\n");
    f.config("short", "", "total_timeout = 3\n");
    for s in ["push", "auto", "short"] {
        f.service(s, &format!("auth required TWOSTEP CONFIG({s})\n"));
    }
    f
}

/// `twostep method disable ID` against `reg`'s configuration.
fn disable_method(config: &Path, id: i64) {
    let out = Command::new(bin("twostep"))
        .arg("--config")
        .arg(config)
        .args(["method", "disable", &id.to_string()])
        .output()
        .expect("twostep method disable");
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn pamtester_approve_wrong_number_deny() {
    let f = push_fixture();
    f.reg.add_user("alice");
    let phone = Device::enrol(&f.reg, f.dir.path(), "alice");

    // Right number: in. The device saw where the login comes from.
    let r = push_login(
        &f,
        "push",
        "alice",
        on_device(|n| {
            let pending = phone.pending();
            assert_eq!(pending.len(), 1, "{pending:?}");
            let ctx = &pending[0]["context"];
            assert_eq!(ctx["service"], "push", "{ctx}");
            assert_eq!(ctx["remote_addr"], RHOST, "{ctx}");
            // The host is the registered one (its API key's); the name the
            // PAM host claims is shown only as a claim.
            assert_eq!(ctx["host"], "pam-test-host", "{ctx}");
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
            assert_eq!(pending[0]["claimed_host"], host.trim(), "{pending:?}");
            let out = phone.run(0, &["approve", "--number", &n.to_string()]);
            assert_eq!(out.trim(), "approved");
        }),
    );
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(reason(&r), "push approved");
    assert_eq!(r.pam_line(), SUCCESS);

    // Approved while the module already waits: its long-poll wakes up.
    let accounts = phone.accounts.clone();
    let r = push_login(
        &f,
        "push",
        "alice",
        while_waiting(move |n| {
            let out = Device::run_at(&accounts, &["approve", "--number", &n.to_string()]);
            assert!(out.status.success(), "{}", show(&out));
        }),
    );
    r.expect(true, "PAM_SUCCESS");
    assert!(r.elapsed >= WHILE_WAITING, "{:?}", r.elapsed);

    // A wrong number: out.
    let r = push_login(
        &f,
        "push",
        "alice",
        on_device(|n| {
            let out = phone.run(4, &["approve", "--number", &other_number(n).to_string()]);
            assert_eq!(out.trim(), "wrong_number");
        }),
    );
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(reason(&r), "push answered with the wrong number");
    assert_eq!(r.pam_line(), PERM_DENIED);

    // Denied: out.
    let r = push_login(
        &f,
        "push",
        "alice",
        on_device(|_| assert_eq!(phone.run(0, &["deny"]).trim(), "denied")),
    );
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(reason(&r), "push denied");
    // Each answer ended its challenge: nothing is left open.
    assert!(phone.pending().is_empty());
}

#[test]
fn pamtester_no_answer_closed_conversation_and_non_interactive() {
    let f = push_fixture();
    f.reg.add_user("bob");
    let phone = Device::enrol(&f.reg, f.dir.path(), "bob");

    // Nobody answers on the phone: out at the deadline (total_timeout = 3,
    // counted from the Enter at the number prompt), the push cancelled.
    let mut entered = None;
    let r = push_login(
        &f,
        "short",
        "bob",
        Box::new(|_| {
            entered = Some(Instant::now());
            Some(String::new())
        }),
    );
    let waited = entered.expect("number prompt shown").elapsed();
    r.expect(false, "PAM_AUTH_ERR");
    assert_eq!(
        reason(&r),
        "push not answered within total_timeout; push cancelled"
    );
    assert!(
        waited >= Duration::from_millis(2500) && waited < Duration::from_secs(8),
        "waited {waited:?}"
    );
    assert!(phone.pending().is_empty(), "the push was cancelled");

    // The conversation closes at the number prompt (Ctrl-C, a dropped
    // connection): out at once, the push cancelled, never a wait.
    let mut shown_at = None;
    let r = push_login(
        &f,
        "push",
        "bob",
        Box::new(|_| {
            shown_at = Some(Instant::now());
            None
        }),
    );
    r.expect(false, "PAM_CONV_ERR");
    assert_eq!(reason(&r), "no answer to the push prompt; push cancelled");
    assert!(shown_at.expect("number prompt shown").elapsed() < Duration::from_secs(3));
    assert!(phone.pending().is_empty(), "the push was cancelled");

    // No conversation at all (a caller without a terminal): an error at
    // once, and no push was ever sent.
    let before = pushes_started(&f, "bob");
    let r = f.auth("push", "bob", None, "");
    r.expect(false, "PAM_CONV_ERR");
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    assert_eq!(pushes_started(&f, "bob"), before, "no push sent");
}

#[test]
fn pamtester_fraud_blocks_and_disabled_device_cancels() {
    let f = push_fixture();
    f.reg.add_user("carol");
    let phone = Device::enrol(&f.reg, f.dir.path(), "carol");

    // Reported as fraud: out, and the next push is refused before any
    // number is shown.
    let r = push_login(
        &f,
        "push",
        "carol",
        on_device(|_| assert_eq!(phone.run(0, &["fraud"]).trim(), "fraud")),
    );
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(reason(&r), "push reported as fraud");
    let r = login(&f, "push", "carol", vec![(PUSH_ONLY_OFFER, enter())]);
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(
        reason(&r),
        "push refused: blocked since a push was reported as fraud"
    );
    assert_eq!(r.prompts(SENT), 0);
    admin(&f.reg, &["user", "unlock", "carol"]);

    // The device is disabled while the module waits: out.
    let (config, id) = (f.reg.config_path.clone(), phone.id);
    let r = push_login(
        &f,
        "push",
        "carol",
        while_waiting(move |_| disable_method(&config, id)),
    );
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(
        reason(&r),
        "push cancelled by the registry (device disabled)"
    );
    assert!(r.elapsed >= WHILE_WAITING, "{:?}", r.elapsed);
}

#[test]
fn pamtester_code_or_push_and_auto() {
    let f = push_fixture();
    let secret = f.enrolled("dave");
    let phone = Device::enrol(&f.reg, f.dir.path(), "dave");
    let approve = |n: u8| {
        phone.run(0, &["approve", "--number", &n.to_string()]);
    };

    // A code typed at the push offer: the code way, no push sent.
    let r = login(
        &f,
        "push",
        "dave",
        vec![(OFFER, Box::new(|_| Some(code(&secret))))],
    );
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(reason(&r), "verified");
    assert_eq!(pushes_started(&f, "dave"), 0);

    // A wrong code, then Enter: the push still comes.
    let w = wrong_code(&secret);
    let r = login(
        &f,
        "push",
        "dave",
        vec![
            (OFFER, Box::new(move |_| Some(w))),
            (OFFER, enter()),
            (AFTER_NUMBER, on_device(approve)),
        ],
    );
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts(OFFER), 2);

    // push = "auto": no first prompt, the number comes at once.
    let r = login(&f, "auto", "dave", vec![(AFTER_NUMBER, on_device(approve))]);
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts(OFFER), 0);
    assert_eq!(r.prompts(SENT), 1);
}

// ---- sshd ----------------------------------------------------------------------

const SSH_USER: &str = "twostep-sshpush";

#[test]
fn sshd_keyboard_interactive_push() {
    unix_user(SSH_USER, "twostep-sshpushg");
    let f = push_fixture();
    f.reg.add_user(SSH_USER);
    let phone = Device::enrol(&f.reg, f.dir.path(), SSH_USER);
    let dir = f.dir.path();
    f.config("sshd", "", "total_timeout = 4\n");
    // At the number prompt the askpass runs `on-number` with the number
    // (what the ssh user does on the phone), then presses Enter.
    let pam_dir = prepare(
        dir,
        &dir.join("sshd.toml"),
        &format!(
            "n=$(printf '%s' \"$1\" | sed -n 's/.*enter \\([0-9]*\\) on your phone.*/\\1/p')\n\
             if [ -n \"$n\" ]; then {d}/on-number \"$n\" >> {d}/device.log 2>&1; fi\n\
             echo",
            d = dir.display()
        ),
    );
    let sshd = start_sshd(dir, &pam_dir, SSH_USER, "LoginGraceTime 60\n");
    let logs = || {
        format!(
            "sshd log:\n{}\ndevice log:\n{}",
            sshd.log(),
            std::fs::read_to_string(dir.join("device.log")).unwrap_or_default()
        )
    };
    let on_number = |script: &str| {
        let path = dir.join("on-number");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("on-number");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        ssh(dir, &sshd, SSH_USER)
    };

    // The right number: in. Both prompts reached the ssh user.
    let r = on_number(&phone.script_line("approve --number \"$1\" --wait 10"));
    assert_eq!(r.status, Some(0), "{r:?}\n{}", logs());
    assert_eq!(r.stdout.trim(), "twostep-ok");
    assert!(r.prompts.contains(PUSH_ONLY_OFFER.trim_end()), "{r:?}");
    assert!(r.prompts.contains(SENT), "{r:?}");

    // A wrong number: out.
    let r = on_number(&format!(
        "m=$(( $1 >= 99 ? 10 : $1 + 1 ))\n{}",
        phone.script_line("approve --number \"$m\" --wait 10")
    ));
    assert_eq!(r.status, Some(255), "{r:?}\n{}", logs());
    assert!(!r.stdout.contains("twostep-ok"));

    // Denied: out.
    let r = on_number(&phone.script_line("deny --wait 10"));
    assert_eq!(r.status, Some(255), "{r:?}\n{}", logs());

    // No answer on the phone: out once total_timeout (4 s) is used up,
    // well before LoginGraceTime; the push cancelled.
    let r = on_number("true");
    assert_eq!(r.status, Some(255), "{r:?}\n{}", logs());
    assert!(r.prompts.contains(SENT), "{r:?}");
    assert!(
        r.elapsed >= Duration::from_millis(3500) && r.elapsed < Duration::from_secs(20),
        "{r:?}"
    );
    assert!(phone.pending().is_empty(), "the push was cancelled");

    // The device disabled during the wait: out before the deadline.
    let r = on_number(&format!(
        "(sleep 1; {} --config {} method disable {}) >/dev/null 2>&1 &",
        bin("twostep").display(),
        f.reg.config_path.display(),
        phone.id
    ));
    assert_eq!(r.status, Some(255), "{r:?}\n{}", logs());
    assert!(r.elapsed < Duration::from_secs(4), "{r:?}");
    admin(&f.reg, &["method", "enable", &phone.id.to_string()]);

    // Fraud: out, and the next login gets no push.
    let r = on_number(&phone.script_line("fraud --wait 10"));
    assert_eq!(r.status, Some(255), "{r:?}\n{}", logs());
    let r = on_number("true");
    assert_eq!(r.status, Some(255), "{r:?}\n{}", logs());
    assert!(!r.prompts.contains(SENT), "no push after fraud: {r:?}");
}
