//! Where each kind of method counts, applied alike by PAM (pamtester
//! against pam_twostep.so), RADIUS (radclient against twostep-radiusd) and
//! `twostep user show`: a user whose only method is a security key is not
//! enrolled for SSH and VPN and is told so; with an authenticator app added
//! they pass.
//!
//! The security key is written into the registry's SQLite file with
//! sqlite3, as the Security info page stores one after a WebAuthn
//! registration: this test is about the hosts' side of the table.

mod pam_support;
mod radius_support;

use std::process::Command;
use twostep_e2e::{bin, Registry};

const NAS_SECRET: &str = "places-nas-secret-1";

/// Gives `user` a security key method, straight into the SQLite file.
fn add_security_key(reg: &Registry, user: &str) {
    let out = Command::new("sqlite3")
        .arg(reg.dir.path().join("registry.db"))
        .arg(format!(
            "INSERT INTO methods (user_id, kind, label, is_default, created_at) \
             SELECT id, 'security_key', 'YubiKey 5', 1, strftime('%s','now') \
             FROM users WHERE username = '{user}'"
        ))
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{out:?}");
}

fn user_show(reg: &Registry, user: &str) -> String {
    let out = Command::new(bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .args(["user", "show", user])
        .output()
        .expect("run twostep");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn a_security_key_alone_is_not_enrolled_for_ssh() {
    let f = pam_support::Fixture::new();
    f.config("deny", "", "unenrolled = \"deny\"\n");
    f.config("ignore", "", "unenrolled = \"ignore\"\n");
    f.service("deny", "auth required TWOSTEP CONFIG(deny)\n");
    f.service(
        "ignore",
        "auth required TWOSTEP CONFIG(ignore)\nauth required pam_permit.so\n",
    );
    f.reg.add_user("kim");
    add_security_key(&f.reg, "kim");

    let r = f.auth("deny", "kim", None, "");
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(r.prompts("Verification code"), 0, "{r:#?}");
    assert!(
        r.module_log()
            .iter()
            .any(|l| l.contains("second factor not set up for SSH")),
        "{r:#?}"
    );
    // `unenrolled = "ignore"` steps aside for her as for anyone not
    // enrolled here.
    f.auth("ignore", "kim", None, "").expect(true, "PAM_IGNORE");

    let shown = user_show(&f.reg, "kim");
    assert!(
        shown.contains("Security key \u{201c}YubiKey 5\u{201d}") && shown.contains("Page only"),
        "{shown}"
    );
    assert!(shown.contains("not enrolled for: SSH and VPN"), "{shown}");

    // An authenticator app counts for SSH: the code prompt comes and the
    // code passes; the key is left out of what the host sees.
    let secret = f.reg.enrol_totp("kim").secret_base32;
    let r = f.auth(
        "deny",
        "kim",
        None,
        &format!("{}\n", pam_support::code(&secret)),
    );
    r.expect(true, "PAM_SUCCESS");
    let shown = user_show(&f.reg, "kim");
    assert!(!shown.contains("not enrolled for"), "{shown}");
    assert!(shown.contains("Page, SSH, VPN"), "{shown}");
}

#[test]
fn a_security_key_alone_is_not_enrolled_for_vpn() {
    let env = radius_support::Env::new();
    let nas = env.secret_file("nas.secret", NAS_SECRET);
    let d = env.radiusd(
        "places",
        &radius_support::client_toml("vpn", "127.0.0.1/32", &nas, "otp-only", ""),
    );
    env.reg.add_user("kim");
    add_security_key(&env.reg, "kim");
    let r = radius_support::auth(d.port, NAS_SECRET, "kim", "123456", &[]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"second factor not set up for VPN\""),
        "{}",
        r.output
    );
    // A user with no method at all keeps the plain message.
    env.reg.add_user("lee");
    let r = radius_support::auth(d.port, NAS_SECRET, "lee", "123456", &[]);
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"second factor not set up\""),
        "{}",
        r.output
    );

    let secret = env.reg.enrol_totp("kim").secret_base32;
    radius_support::auth(
        d.port,
        NAS_SECRET,
        "kim",
        &radius_support::code(&secret),
        &[],
    )
    .expect("Access-Accept");
}
