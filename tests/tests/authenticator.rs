//! `twostep authenticator` against a real registry: the codes of an
//! account added from `twostep enrol`'s otpauth URI match oathtool's, and a
//! push device activated from an activation URI answers a host's
//! challenges: the right number approves, a wrong one is `wrong_number`,
//! deny denies, fraud blocks the next push; `watch` asks and answers
//! interactively, survives a registry restart and stops cleanly on Ctrl-C.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use twostep_common::api::{HostKind, VerifyRequest, VerifyResult};
use twostep_common::push::{
    PendingChallenge, PushContext, PushResult, StartPush, StartResult, StartedChallenge,
};
use twostep_e2e::{bin, block_on, now, oathtool_code, wait_bounded, Registry};

use twostep_e2e::{authenticator, show_output as show};

fn ok(accounts: &Path, args: &[&str]) -> String {
    let out = authenticator(accounts, args);
    assert!(out.status.success(), "{args:?}: {}", show(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts that `out` exited with `status` and printed `word` alone.
fn answered(out: &Output, status: i32, word: &str) {
    assert_eq!(out.status.code(), Some(status), "{}", show(out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        word,
        "{}",
        show(out)
    );
}

/// Asserts that `out` exited with `status` and said `words` on stderr.
fn exited(out: &Output, status: i32, words: &str) {
    assert_eq!(out.status.code(), Some(status), "{}", show(out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(words),
        "{words:?}: {}",
        show(out)
    );
}

/// `twostep enrol ARGS...` against `reg`; its output.
fn enrol(reg: &Registry, args: &[&str]) -> String {
    let out = Command::new(bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .arg("enrol")
        .args(args)
        .output()
        .expect("run twostep enrol");
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The rest of the line of `text` that starts with `name`.
fn field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} line in {text}"))
        .trim()
        .to_owned()
}

fn accounts_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twostep").join("authenticator.json");
    (dir, path)
}

#[test]
fn codes_match_oathtool_for_an_enrolled_account() {
    let reg = Registry::start();
    reg.add_user("alice");
    let key = reg.add_host("web1", HostKind::Ssh);
    let enrol = enrol(&reg, &["alice", "--no-qr"]);
    let (uri, secret) = (field(&enrol, "uri:"), field(&enrol, "secret:"));

    let (_dir, accounts) = accounts_file();
    let added = ok(&accounts, &["add", &uri]);
    assert_eq!(
        added.trim(),
        "added TOTP account twostep:alice (6 digits every 30 s)"
    );
    let mode = std::fs::metadata(&accounts).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // The code printed is oathtool's for the same second (retried when a
    // time step boundary falls between the two).
    let mut code = None;
    for _ in 0..3 {
        let before = now();
        let out = ok(&accounts, &["codes"]);
        let after = now();
        if before / 30 != after / 30 {
            continue;
        }
        let fields: Vec<&str> = out
            .lines()
            .find(|l| l.starts_with("twostep:alice "))
            .unwrap_or_else(|| panic!("{out}"))
            .split_whitespace()
            .collect();
        assert_eq!(fields[1], oathtool_code(&secret, before), "{out}");
        let left: u64 = fields[2].trim_end_matches('s').parse().unwrap();
        assert_eq!(left, 30 - before % 30, "{out}");
        code = Some(fields[1].to_owned());
        break;
    }
    let code = code.expect("three runs across time step boundaries");
    // The registry accepts it.
    let verified = block_on(reg.host_client(&key).verify(&VerifyRequest {
        username: "alice".into(),
        code,
        context: Default::default(),
    }))
    .unwrap();
    assert_eq!(verified.result, VerifyResult::Accept);

    // list shows the account, never the secret; a group-readable file is
    // refused.
    let list = ok(&accounts, &["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("twostep:alice") && l.contains("totp")),
        "{list}"
    );
    assert!(!list.contains(&secret), "{list}");
    std::fs::set_permissions(&accounts, std::fs::Permissions::from_mode(0o640)).unwrap();
    exited(&authenticator(&accounts, &["codes"]), 1, "chmod 600");
    std::fs::set_permissions(&accounts, std::fs::Permissions::from_mode(0o600)).unwrap();

    // An SHA-256 account is refused with a reason.
    let out = authenticator(
        &accounts,
        &[
            "add",
            &format!("otpauth://totp/x:y?secret={secret}&algorithm=SHA256"),
        ],
    );
    exited(&out, 1, "only SHA1");
}

/// A registry with room for every push of a test, alice with a push
/// device activated into a fresh account file, and a host key.
struct PushSetup {
    reg: Registry,
    host_key: PathBuf,
    _dir: tempfile::TempDir,
    accounts: PathBuf,
    /// The device's id (its push method's id).
    device_id: i64,
}

fn push_setup() -> PushSetup {
    let reg = Registry::start_with(None, "[api.push]\nmax_challenges = 50\n");
    reg.add_user("alice");
    let host_key = reg.add_host("web1", HostKind::Ssh);
    let uri = field(&enrol(&reg, &["alice", "--push", "--no-qr"]), "uri:");
    let (dir, accounts) = accounts_file();
    let added = ok(&accounts, &["add", &uri, "--name", "e2e laptop"]);
    assert!(added.starts_with("activated push device "), "{added}");
    assert!(added.contains("for alice at http://127.0.0.1:"), "{added}");
    // The code works once.
    let again = authenticator(&accounts, &["add", &uri]);
    exited(&again, 1, "used already");
    let list = ok(&accounts, &["list"]);
    assert!(
        list.lines().any(|l| l.starts_with("alice@127.0.0.1:")
            && l.contains(" push ")
            && l.contains("e2e laptop")),
        "{list}"
    );
    // The private key is in the file (0600), and printed nowhere.
    let file = std::fs::read_to_string(&accounts).unwrap();
    let v: serde_json::Value = serde_json::from_str(&file).unwrap();
    let secret_key = v["accounts"][0]["secret_key"].as_str().unwrap().to_owned();
    assert!(!list.contains(&secret_key) && !added.contains(&secret_key));
    let device_id = v["accounts"][0]["device_id"].as_i64().unwrap();
    PushSetup {
        reg,
        host_key,
        _dir: dir,
        accounts,
        device_id,
    }
}

impl PushSetup {
    fn start(&self) -> StartedChallenge {
        let started = block_on(self.reg.host_client(&self.host_key).start_push(&StartPush {
            username: "alice".into(),
            context: PushContext {
                service: Some("sshd".into()),
                host: Some("web1".into()),
                remote_addr: Some("192.0.2.10".into()),
                ..PushContext::default()
            },
        }))
        .unwrap();
        assert_eq!(started.result, StartResult::Sent, "{started:?}");
        started.challenge.unwrap()
    }

    fn outcome(&self, c: &StartedChallenge) -> PushResult {
        block_on(
            self.reg
                .host_client(&self.host_key)
                .push_outcome(&c.challenge_id, Duration::from_secs(5)),
        )
        .unwrap()
        .result
    }
}

#[test]
fn push_approve_wrong_number_deny_fraud() {
    let s = push_setup();
    let a = &s.accounts;

    // Nothing pending: approve gives up after --wait with status 3.
    let t = Instant::now();
    let out = authenticator(a, &["approve", "--number", "42", "--wait", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(t.elapsed() < Duration::from_secs(10));

    // The host waits while the device approves with the number shown.
    let c = s.start();
    let number = c.number.expect("number matching is on by default");
    let pending = ok(a, &["pending"]);
    let line = pending.lines().next().unwrap_or_default();
    assert!(line.starts_with(&c.challenge_id), "{pending}");
    for part in [
        "user=\"alice\"",
        "service=\"sshd\"",
        "host=\"web1\"",
        "from=\"192.0.2.10\"",
        "number_matching=yes",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    let json: Vec<PendingChallenge> = serde_json::from_str(&ok(a, &["pending", "--json"])).unwrap();
    assert_eq!(json.len(), 1);
    assert_eq!(json[0].challenge_id, c.challenge_id);
    let (tx, rx) = mpsc::channel();
    let host = s.reg.host_client(&s.host_key);
    let id = c.challenge_id.clone();
    let waiter = std::thread::spawn(move || {
        let r = block_on(host.push_outcome(&id, Duration::from_secs(20)));
        let _ = tx.send(Instant::now());
        r
    });
    let out = authenticator(a, &["approve", "--number", &number.to_string()]);
    let answered_at = Instant::now();
    answered(&out, 0, "approved");
    let woke = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(woke.duration_since(answered_at) < Duration::from_secs(2));
    assert_eq!(waiter.join().unwrap().unwrap().result, PushResult::Approved);

    // A wrong number: the registry records wrong_number, status 4.
    let c = s.start();
    let wrong = if c.number == Some(99) {
        10
    } else {
        c.number.unwrap() + 1
    };
    let out = authenticator(a, &["approve", "--number", &wrong.to_string()]);
    answered(&out, 4, "wrong_number");
    assert_eq!(s.outcome(&c), PushResult::WrongNumber);

    // Approving without the number is refused here, before any answer;
    // the request stays open and is then denied.
    let c = s.start();
    let out = authenticator(a, &["approve"]);
    exited(&out, 1, "needs the number");
    let out = authenticator(a, &["deny", "--challenge", &c.challenge_id]);
    answered(&out, 0, "denied");
    assert_eq!(s.outcome(&c), PushResult::Denied);

    // Fraud: recorded, and the next push is refused until an admin clears it.
    let c = s.start();
    let out = authenticator(a, &["fraud"]);
    answered(&out, 0, "fraud");
    assert_eq!(s.outcome(&c), PushResult::Fraud);
    let next = block_on(s.reg.host_client(&s.host_key).start_push(&StartPush {
        username: "alice".into(),
        context: PushContext::default(),
    }))
    .unwrap();
    assert_eq!(next.result, StartResult::Blocked);

    // A disabled device's signed polls are refused: a clear error, status 1.
    block_on(s.reg.admin_client().disable_method(s.device_id)).unwrap();
    exited(&authenticator(a, &["pending"]), 1, "disabled");
}

/// Reads a child's output on a thread, so the test can wait for a text
/// (a prompt has no newline) with a deadline.
struct Screen {
    rx: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Screen {
    fn new(mut out: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        Self {
            rx,
            seen: String::new(),
        }
    }

    /// Waits (at most 20 s) until `text` was printed since the last call.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.seen.find(text) {
                let upto = i + text.len();
                let shown = self.seen[..upto].to_owned();
                self.seen.drain(..upto);
                return shown;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("{text:?} not printed within 20 s; got {:?}", self.seen),
            }
        }
    }
}

#[test]
fn watch_asks_for_the_number_reconnects_and_stops_on_ctrl_c() {
    let mut s = push_setup();
    let mut child = Command::new(bin("twostep"))
        .arg("authenticator")
        .arg("--accounts")
        .arg(&s.accounts)
        .arg("watch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run twostep authenticator watch");
    let mut stdin = child.stdin.take().unwrap();
    let mut screen = Screen::new(child.stdout.take().unwrap());
    let mut errors = Screen::new(child.stderr.take().unwrap());
    screen.wait_for("Ctrl-C stops.");

    // Right number: approved, and the host sees it.
    let c = s.start();
    let shown = screen.wait_for("to skip: ");
    for part in [
        "Sign-in request for alice",
        "service  sshd",
        "host     web1",
        "from     192.0.2.10",
        "expires in",
    ] {
        assert!(shown.contains(part), "{part:?} in {shown}");
    }
    writeln!(stdin, "{}", c.number.unwrap()).unwrap();
    screen.wait_for("approved: the login goes on");
    assert_eq!(s.outcome(&c), PushResult::Approved);

    // Something that is no answer is asked again; then deny.
    let c = s.start();
    screen.wait_for("to skip: ");
    writeln!(stdin, "a").unwrap();
    screen.wait_for("type the number shown at the login.");
    screen.wait_for("to skip: ");
    writeln!(stdin, "d").unwrap();
    screen.wait_for("denied: the login is refused");
    assert_eq!(s.outcome(&c), PushResult::Denied);

    // The registry goes away: one line per failed poll, retried with
    // backoff; once it is back, requests arrive again.
    s.reg.stop();
    let line = errors.wait_for("retrying in 1 s\n");
    assert!(line.contains(&s.reg.url), "{line}");
    errors.wait_for("retrying in 2 s\n");
    s.reg.restart();
    let c = s.start();
    screen.wait_for("to skip: ");
    writeln!(stdin, "{}", c.number.unwrap()).unwrap();
    screen.wait_for("approved: the login goes on");
    assert_eq!(s.outcome(&c), PushResult::Approved);

    // Ctrl-C: a clean exit, status 0.
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    errors.wait_for("stopped\n");
}

#[test]
fn a_second_answer_to_a_closed_request_exits_5_at_once() {
    let s = push_setup();
    let a = &s.accounts;
    let c = s.start();
    let id = c.challenge_id.as_str();
    let out = authenticator(a, &["deny", "--challenge", id]);
    answered(&out, 0, "denied");
    // Again, with a long --wait: said at once, status 5, nothing answered.
    for args in [
        ["deny", "--challenge", id, "--wait", "30"].as_slice(),
        &[
            "approve",
            "--number",
            "42",
            "--challenge",
            id,
            "--wait",
            "30",
        ],
    ] {
        let t = Instant::now();
        let out = authenticator(a, args);
        exited(&out, 5, "answered or cancelled already");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }
    assert_eq!(s.outcome(&c), PushResult::Denied);
    // An id the registry does not know is an error at once.
    let t = Instant::now();
    let out = authenticator(a, &["deny", "--challenge", "nosuch", "--wait", "30"]);
    exited(&out, 1, "knows no sign-in request");
    assert!(t.elapsed() < Duration::from_secs(10));
    let help = String::from_utf8(
        Command::new(bin("twostep"))
            .args(["authenticator", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(help.contains("5  the request is closed already"), "{help}");
}
