//! Configuration errors of twostep-radiusd are one clear line at startup
//! (and with `--check`), naming the file and the fix.

mod radius_support;

use radius_support::*;
use std::os::unix::fs::PermissionsExt;
use twostep_e2e::free_udp_port;

const SECRET: &str = "nas-shared-secret-1";

fn run(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = std::process::Command::new(twostep_e2e::bin("twostep-radiusd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_good_config() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let cfg = env.config(
        "ok",
        free_udp_port(),
        &client_toml("vpn", "10.0.0.0/8", &s, "append", ""),
    );
    let (ok, out, err) = run(&["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()]);
    assert!(ok, "{err}");
    assert!(out.contains("OK (1 client, listen"), "{out}");
    // It says what it did not check, and what does.
    assert!(
        out.contains("the registry was not contacted; `twostep doctor --config"),
        "{out}"
    );
}

/// `--check | head -1`: a reader gone away ends it quietly with the
/// shell's status for SIGPIPE, and a full disk behind a redirect is one
/// line and EX_IOERR; never a panic.
#[test]
fn check_output_to_a_closed_pipe_or_a_full_disk() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let cfg = env.config(
        "ok",
        free_udp_port(),
        &client_toml("vpn", "10.0.0.0/8", &s, "append", ""),
    );
    let check = |stdout: std::process::Stdio| {
        std::process::Command::new(twostep_e2e::bin("twostep-radiusd"))
            .arg("--config")
            .arg(&cfg)
            .arg("--check")
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = check(writer.into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = check(std::fs::File::create("/dev/full").unwrap().into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{err}");
    assert_eq!(
        err.trim(),
        "cannot write to standard output: No space left on device (os error 28)"
    );
}

#[test]
fn otp_only_with_a_primary_is_refused() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let u = env.secret_file("up.secret", "up");
    let body = format!(
        "{}[[radius.upstream]]\nname = \"corp\"\naddress = \"127.0.0.1:1\"\nsecret_file = {:?}\n",
        client_toml("vpn", "127.0.0.1/32", &s, "otp-only", "primary = \"corp\""),
        u.display().to_string()
    );
    let cfg = env.config("bad", free_udp_port(), &body);
    let (ok, _, err) = run(&["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()]);
    assert!(!ok);
    assert!(err.contains("mode otp-only carries no password"), "{err}");
}

#[test]
fn world_readable_secret_is_refused() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = env.config(
        "perm",
        free_udp_port(),
        &client_toml("vpn", "127.0.0.1/32", &s, "otp-only", ""),
    );
    let (ok, _, err) = run(&["--config".as_ref(), cfg.as_os_str()]);
    assert!(!ok);
    assert!(
        err.contains("nas.secret") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn missing_state_key_is_a_clear_startup_error() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let port = free_udp_port();
    let cfg = env.config_with_key(
        "nokey",
        port,
        &env.dir.path().join("absent.key"),
        &client_toml("vpn", "127.0.0.1/32", &s, "otp-only", ""),
    );
    let out = std::process::Command::new(twostep_e2e::bin("twostep-radiusd"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("absent.key"), "{err}");
    assert!(err.contains("openssl rand -hex 32"), "{err}");
}

/// Runs with `RUST_BACKTRACE=1` and asserts the one-line fatal error shape:
/// exit status 1, exactly one stderr line, `twostep-radiusd: ` first,
/// mentioning `needle`; returns the line.
fn one_line_failure(args: &[&std::ffi::OsStr], needle: &str) -> String {
    let out = std::process::Command::new(twostep_e2e::bin("twostep-radiusd"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{err}");
    assert!(lines[0].starts_with("twostep-radiusd: "), "{err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(
        !err.contains("Caused by") && !err.contains("acktrace"),
        "{err}"
    );
    lines[0].to_owned()
}

#[test]
fn fatal_errors_are_one_line_even_with_backtraces_on() {
    let env = Env::new();
    // A syntax error: file, line and column.
    let broken = env.dir.path().join("broken.toml");
    std::fs::write(&broken, "version = 1\n[radius\n").unwrap();
    let line = one_line_failure(
        &["--config".as_ref(), broken.as_os_str(), "--check".as_ref()],
        "broken.toml:2:",
    );
    assert!(line.contains("invalid table header"), "{line}");
    // A missing file: the OS error once, not twice.
    let absent = env.dir.path().join("absent.toml");
    let line = one_line_failure(&["--config".as_ref(), absent.as_os_str()], "absent.toml");
    assert_eq!(
        line.matches("No such file or directory").count(),
        1,
        "{line}"
    );
    // A setting refused after parsing (a secret file that is not there).
    let cfg = env.config(
        "nosecret",
        free_udp_port(),
        &client_toml(
            "vpn",
            "127.0.0.1/32",
            &env.dir.path().join("gone.secret"),
            "otp-only",
            "",
        ),
    );
    let line = one_line_failure(&["--config".as_ref(), cfg.as_os_str()], "nosecret");
    assert!(line.contains("gone.secret"), "{line}");
}

#[test]
fn check_warns_about_short_secrets_legacy_clients_and_overlaps() {
    let env = Env::new();
    let short = env.secret_file("short.secret", "abcde");
    let good = env.secret_file("nas.secret", SECRET);
    // The wide network first in the file: the /32 still wins.
    let body = format!(
        "{}{}",
        client_toml(
            "all",
            "127.0.0.0/8",
            &good,
            "otp-only",
            "require_message_authenticator = false"
        ),
        client_toml("one", "127.0.0.2/32", &short, "otp-only", ""),
    );
    let cfg = env.config("warn", free_udp_port(), &body);
    let (ok, out, err) = run(&["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()]);
    assert!(ok, "{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains(": warning: ")).collect();
    assert_eq!(warnings.len(), 3, "{out}");
    assert!(
        out.contains("client \"one\": shared secret is 5 characters, use at least 16"),
        "{out}"
    );
    assert!(
        out.contains("client \"all\": require_message_authenticator = false"),
        "{out}"
    );
    assert!(
        out.contains("client \"one\" (127.0.0.2/32) lies inside client \"all\" (127.0.0.0/8): requests from 127.0.0.2/32 go to \"one\""),
        "{out}"
    );
    assert!(
        out.contains("OK (2 clients") && out.contains("3 warnings"),
        "{out}"
    );

    // At startup the same sentences go to the log as warnings.
    let port = free_udp_port();
    let cfg = env.config("warn-run", port, &body);
    let d = Radiusd::start(&cfg, port, &env.dir.path().join("warn-run.log"));
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("shared secret is 5 characters")),
        "{log}"
    );

    // The same network twice is refused: one of them could never match.
    let twice = format!(
        "{}{}",
        client_toml("a", "10.0.0.0/8", &good, "otp-only", ""),
        client_toml("b", "10.0.0.0/8", &good, "otp-only", ""),
    );
    let cfg = env.config("twice", free_udp_port(), &twice);
    let (ok, _, err) = run(&["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()]);
    assert!(!ok);
    assert!(
        err.contains("\"b\": address 10.0.0.0/8 is also client \"a\"'s"),
        "{err}"
    );
}
