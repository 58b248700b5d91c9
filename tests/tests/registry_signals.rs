//! Signals to the running daemons: SIGHUP logs a warning and both
//! `twostep-api` and `twostep-radiusd` keep answering; SIGTERM and SIGINT
//! stop them gracefully with exit status 0.

mod radius_support;

use radius_support::{client_toml, radclient_with, Env};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twostep_e2e::{bin, block_on, free_udp_port, wait_bounded, Registry};

const SIGHUP_WARNING: &str =
    "SIGHUP: reloading the configuration is not supported; restart the service to apply changes";

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", child.id());
}

/// Spawns `name --config config`, stderr and stdout appended to `log`.
fn spawn(name: &str, config: &Path, log: &Path) -> Child {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(bin(name))
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap()
}

/// Waits (at most 15 s) until `log` holds `needle` `count` times, failing
/// if the process exits first.
fn wait_for_log(child: &mut Child, log: &Path, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited ({status}) waiting for {needle:?}; log:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} within 15 s; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` and expects a graceful exit with status 0 within 10 s.
fn stops_cleanly(child: Child, sig: i32, log: &Path) {
    signal(&child, sig);
    let out = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(0),
        "signal {sig}: {}; log:\n{}",
        out.status,
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn start_api(reg: &Registry, log: &Path) -> Child {
    let before = std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("twostep-api listening")
        .count();
    let mut child = spawn("twostep-api", &reg.config_path, log);
    wait_for_log(&mut child, log, "twostep-api listening", before + 1);
    child
}

#[test]
fn api_keeps_answering_after_sighup_and_exits_0_on_term_and_int() {
    let mut reg = Registry::start();
    reg.stop();
    let log: PathBuf = reg.dir.path().join("signals.log");
    let mut child = start_api(&reg, &log);
    for n in 1..=2 {
        signal(&child, libc::SIGHUP);
        wait_for_log(&mut child, &log, SIGHUP_WARNING, n);
        // An admin write and read, answered after the signal.
        let name = format!("after-hup-{n}");
        reg.add_user(&name);
        assert_eq!(block_on(reg.admin.user(&name)).unwrap().username, name);
    }
    assert!(child.try_wait().unwrap().is_none());
    stops_cleanly(child, libc::SIGTERM, &log);
    let child = start_api(&reg, &log);
    stops_cleanly(child, libc::SIGINT, &log);
}

#[test]
fn radiusd_keeps_answering_after_sighup_and_exits_0_on_term_and_int() {
    const SECRET: &str = "nas-shared-secret-signals";
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let body = client_toml("vpn", "127.0.0.1/32", &s, "otp-only", "");
    let port = free_udp_port();
    let cfg = env.config("signals", port, &body);
    let log = env.dir.path().join("signals.log");
    let start = || {
        let before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("listening on")
            .count();
        let mut child = spawn("twostep-radiusd", &cfg, &log);
        wait_for_log(&mut child, &log, "listening on", before + 1);
        child
    };
    let mut child = start();
    signal(&child, libc::SIGHUP);
    wait_for_log(&mut child, &log, SIGHUP_WARNING, 1);
    let r = radclient_with(
        port,
        SECRET,
        "status",
        &["Message-Authenticator = 0x00".into()],
        3.0,
        1,
    );
    r.expect("Access-Accept");
    assert!(child.try_wait().unwrap().is_none());
    stops_cleanly(child, libc::SIGTERM, &log);
    let child = start();
    stops_cleanly(child, libc::SIGINT, &log);
}
