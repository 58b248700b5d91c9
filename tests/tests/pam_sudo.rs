//! Debian's sudo, run by a non-root test user, with pam_twostep after the
//! password in its PAM stack (packaging/pam.d/sudo). The stack and a
//! sudoers file are bind-mounted over /etc/pam.d and /etc/sudoers inside a
//! private mount namespace (`unshare --mount`), never onto the real ones.

mod pam_support;

use pam_support::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const USER: &str = "twostep-sudo";
const PASSWORD: &str = "sudo pass 1";

fn uid_gid(user: &str) -> (String, String) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, user]).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    (id("-u"), id("-g"))
}

#[test]
fn sudo_with_password_and_code() {
    unix_user(USER, "twostep-sudog");
    set_password(USER, PASSWORD);
    let (uid, gid) = uid_gid(USER);
    let f = Fixture::new();
    let secret = f.enrolled(USER);
    f.config("sudo", "", "");
    let dir = f.dir.path();

    let pam_dir = dir.join("pam.d");
    std::fs::create_dir(&pam_dir).expect("pam.d");
    // Debian's common-auth, then pam_twostep.
    std::fs::write(
        pam_dir.join("sudo"),
        format!(
            "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n\
             auth required pam_permit.so\nauth required {m} config={c}\n\
             account required pam_permit.so\nsession required pam_permit.so\n",
            m = module().display(),
            c = dir.join("sudo.toml").display()
        ),
    )
    .expect("pam.d/sudo");
    std::fs::write(pam_dir.join("other"), "auth required pam_deny.so\naccount required pam_deny.so\nsession required pam_deny.so\npassword required pam_deny.so\n").expect("other");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sudoers = dir.join("sudoers");
    std::fs::write(
        &sudoers,
        format!("Defaults !lecture, passwd_tries=1, !fqdn\nroot ALL=(ALL:ALL) ALL\n{USER} ALL=(root) ALL\n"),
    )
    .expect("sudoers");
    std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).expect("chmod");

    let sudo = |input: String| {
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/pam.d && mount --bind \"$2\" /etc/sudoers && \
                 exec setpriv --reuid=\"$3\" --regid=\"$4\" --init-groups -- \
                 sudo -S -k /usr/bin/id -un",
            )
            .arg("sh")
            .arg(&pam_dir)
            .arg(&sudoers)
            .arg(&uid)
            .arg(&gid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare sudo");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = wait_bounded(child, Duration::from_secs(40));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Password and the right code: the command runs as root.
    let (rc, out, err) = sudo(format!("{PASSWORD}\n{}\n", code(&secret)));
    assert_eq!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert_eq!(out.trim(), "root");
    // sudo shows its own prompt for pam_unix's "Password: " and ours as is
    // (no -p: that would override every PAM prompt).
    assert!(
        err.contains(&format!("[sudo] password for {USER}")),
        "{err}"
    );
    assert!(err.contains("Verification code: "), "{err}");

    // Password and a wrong code: refused, nothing runs.
    let w = wrong_code(&secret);
    let (rc, out, err) = sudo(format!("{PASSWORD}\n{w}\n{w}\n{w}\n"));
    assert_ne!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("root"), "{out}");
    assert_eq!(err.matches("Verification code: ").count(), 3, "{err}");

    // Wrong password, right code: pam_unix refuses first; no code prompt.
    let (rc, out, err) = sudo(format!("not the password\n{}\n", code(&secret)));
    assert_ne!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("root"));
    assert!(!err.contains("Verification code: "), "{err}");
}
