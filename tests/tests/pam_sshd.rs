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

/// The registry's verify results for `user`, newest first.
fn verifies(f: &Fixture, user: &str) -> Vec<String> {
    twostep_e2e::block_on(f.reg.admin_client().audit(1000))
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "verify" && e.username.as_deref() == Some(user))
        .filter_map(|e| e.result)
        .collect()
}

/// Key, then one keyboard-interactive prompt for password and code
/// (`forward_pass stash_code`, `requisite pam_unix.so use_first_pass`,
/// `verify_stashed`): a wrong password with the right code is refused and
/// the code stays unused, so it logs in right after with the password.
#[test]
fn ssh_forward_pass_stash_code() {
    const USER: &str = "twostep-ssh-st";
    const PASSWORD: &str = "ssh stash pass";
    unix_user(USER, "twostep-ssh-stg");
    set_password(USER, PASSWORD);
    let f = Fixture::new();
    let secret = f.enrolled(USER);
    let config = f.config("sshd", "", "");
    let dir = f.dir.path();
    let pam_dir = prepare(dir, &config, &format!("cat {}/answer", dir.display()));
    let m = format!("{} config={}", module().display(), config.display());
    std::fs::write(
        pam_dir.join("sshd"),
        format!(
            "auth required {m} forward_pass stash_code\nauth requisite pam_unix.so use_first_pass\n\
             auth required {m} verify_stashed\naccount required pam_permit.so\n\
             session required pam_permit.so\npassword required pam_deny.so\n"
        ),
    )
    .expect("pam.d/sshd");
    let sshd = start_sshd(dir, &pam_dir, USER, "");
    let login = |answer: &str| {
        std::fs::write(dir.join("answer"), format!("{answer}\n")).expect("answer");
        pam_support::sshd::ssh(dir, &sshd, USER)
    };
    let good = code(&secret);

    let r = login(&format!("wrong pass{good}"));
    assert_eq!(r.status, Some(255), "{r:?}\n{}", sshd.log());
    assert_eq!(
        r.prompts.matches("Password and verification code:").count(),
        1,
        "{r:?}"
    );
    assert!(verifies(&f, USER).is_empty(), "{:?}", verifies(&f, USER));
    assert!(
        sshd.syslog().contains("code kept for verify_stashed"),
        "{}",
        sshd.syslog()
    );

    let r = login(&format!("{PASSWORD}{good}"));
    assert_eq!(
        r.status,
        Some(0),
        "{r:?}\n{}\n{}",
        sshd.log(),
        sshd.syslog()
    );
    assert_eq!(r.stdout.trim(), "twostep-ok");
    assert_eq!(verifies(&f, USER), vec!["accept".to_owned()]);
}

/// root over keyboard-interactive with `PermitRootLogin no`: sshd hands
/// PAM its stand-in password instead of the typed code. The module says
/// so in its log line, asks no second time and sends nothing to the
/// registry.
#[test]
fn ssh_root_refused_by_permit_root_login() {
    let f = Fixture::new();
    let secret = f.enrolled("root");
    let config = f.config("sshd", "", "");
    let dir = f.dir.path();
    let pam_dir = prepare(dir, &config, &format!("cat {}/answer", dir.display()));
    // root may try (AllowUsers), with keyboard-interactive alone (a key
    // is refused for root by PermitRootLogin no before PAM).
    let sshd = start_sshd(
        dir,
        &pam_dir,
        "root",
        "Match User root\n    AuthenticationMethods keyboard-interactive\n",
    );
    std::fs::write(dir.join("answer"), format!("{}\n", code(&secret))).expect("answer");
    let r = pam_support::sshd::ssh(dir, &sshd, "root");
    assert_eq!(r.status, Some(255), "{r:?}\n{}", sshd.log());
    assert!(!r.stdout.contains("twostep-ok"));
    let syslog = sshd.syslog();
    assert_eq!(
        r.prompts.matches("Verification code:").count(),
        1,
        "{r:?}\n{syslog}\n{}",
        sshd.log()
    );
    let line = syslog
        .lines()
        .find(|l| l.contains("user=\"root\"") && l.contains("result="))
        .unwrap_or_else(|| panic!("no module line for root: {syslog}\n{}", sshd.log()));
    assert!(line.contains("result=PAM_AUTH_ERR"), "{line}");
    assert!(line.contains("sshd refused this account"), "{line}");
    assert!(line.contains("PermitRootLogin"), "{line}");
    assert!(!line.contains("INCORRECT"), "{line}");
    assert!(
        verifies(&f, "root").is_empty(),
        "no code reached the registry"
    );
}
