//! pam_radius_auth (libpam-radius-auth) under pamtester, as a legacy NAS
//! (no Message-Authenticator), completing a challenge round trip with
//! twostep-radiusd. PAM runs under libpam-wrapper with a private service
//! directory; /etc/pam.d is never touched.

mod radius_support;

use radius_support::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "pam-radius-secret-1";
const PAM_RADIUS: &str = "/lib/x86_64-linux-gnu/security/pam_radius_auth.so";

/// Runs `pamtester SERVICE USER authenticate` with `input` as the answers
/// to the prompts; returns (success, stdout+stderr).
fn pamtester(svc_dir: &Path, user: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("pamtester")
        .args(["-v", "vpn", user, "authenticate"])
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", svc_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pamtester");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = wait_bounded(child, Duration::from_secs(30));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn pam_radius_auth_completes_a_challenge() {
    let env = Env::new();
    let secret = env.enrolled_user("erin");
    let s = env.secret_file("nas.secret", SECRET);
    let d = env.radiusd(
        "pam",
        &client_toml(
            "pam-host",
            "127.0.0.1/32",
            &s,
            "challenge",
            "require_message_authenticator = false",
        ),
    );
    let svc = env.dir.path().join("pam.d");
    std::fs::create_dir(&svc).unwrap();
    let conf = env.dir.path().join("pam_radius_auth.conf");
    twostep_e2e::write_secret(&conf, &format!("127.0.0.1:{} {SECRET} 5\n", d.port));
    std::fs::write(
        svc.join("vpn"),
        format!(
            "auth required {PAM_RADIUS} conf={} client_id=pam-test\naccount required pam_permit.so\n",
            conf.display()
        ),
    )
    .unwrap();

    let (ok, out) = pamtester(&svc, "erin", &format!("local-pw\n{}\n", code(&secret)));
    assert!(ok, "pamtester failed:\n{out}\nserver log:\n{}", d.log());
    assert!(out.contains("successfully authenticated"), "{out}");
    assert!(d.log().contains("Access-Challenge"), "{}", d.log());

    // A wrong code ends in PAM_AUTH_ERR.
    let (ok, out) = pamtester(
        &svc,
        "erin",
        &format!("local-pw\n{}\n", wrong_code(&secret)),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("Authentication failure"), "{out}");
}
