//! A real OpenSSH sshd on 127.0.0.1 (own host key and config in a temp
//! dir, `AuthenticationMethods publickey,keyboard-interactive`) with
//! pam_twostep in its PAM stack. The stack lives in a private mount
//! namespace (`unshare --mount` + a bind mount over /etc/pam.d), so the
//! real /etc/pam.d is never touched. The ssh client answers the
//! keyboard-interactive prompt through SSH_ASKPASS.

mod pam_support;

use pam_support::sshd::{prepare, start_sshd, Sshd};
use pam_support::*;
use std::path::Path;

const USER: &str = "twostep-ssh";

/// One `ssh USER@127.0.0.1 echo twostep-ok` with `answer` for every
/// keyboard-interactive prompt; returns (exit code, stdout, prompts seen).
fn ssh(dir: &Path, sshd: &Sshd, answer: &str) -> (Option<i32>, String, String) {
    std::fs::write(dir.join("answer"), format!("{answer}\n")).expect("answer");
    let r = pam_support::sshd::ssh(dir, sshd, USER);
    (r.status, r.stdout, r.prompts)
}

#[test]
fn ssh_key_then_code() {
    unix_user(USER, "twostep-sshg");
    let f = Fixture::new();
    let secret = f.enrolled(USER);
    f.config("sshd", "", "");

    let dir = f.dir.path();
    // The PAM stack for sshd: the code after the key (packaging/pam.d/sshd).
    let pam_dir = prepare(
        dir,
        &dir.join("sshd.toml"),
        &format!("cat {}/answer", dir.display()),
    );
    let sshd = start_sshd(dir, &pam_dir, USER, "");
    let sshd_log = || sshd.log();

    // Right code: the command runs.
    let good = code(&secret);
    let (rc, out, prompts) = ssh(dir, &sshd, &good);
    assert_eq!(
        rc,
        Some(0),
        "login with the right code failed; sshd log:\n{}",
        sshd_log()
    );
    assert_eq!(out.trim(), "twostep-ok");
    assert!(
        prompts.contains("Verification code:"),
        "prompts: {prompts:?}"
    );

    // The same code again: refused (replay).
    let (rc, out, _) = ssh(dir, &sshd, &good);
    assert_eq!(
        rc,
        Some(255),
        "replayed code accepted; sshd log:\n{}",
        sshd_log()
    );
    assert!(!out.contains("twostep-ok"));

    // A wrong code: refused after max_tries prompts.
    let (rc, out, prompts) = ssh(dir, &sshd, &wrong_code(&secret));
    assert_eq!(
        rc,
        Some(255),
        "wrong code accepted; sshd log:\n{}",
        sshd_log()
    );
    assert!(!out.contains("twostep-ok"));
    assert_eq!(
        prompts.matches("Verification code:").count(),
        3,
        "{prompts:?}"
    );
    // The key alone never suffices: sshd logged the partial success.
    assert!(sshd_log().contains("Partial publickey"), "{}", sshd_log());
}
