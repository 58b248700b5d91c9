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
    assert!(out.contains("OK (1 clients"), "{out}");
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
