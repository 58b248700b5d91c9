//! Debian's sudo, run by a non-root test user, with pam_twostep after the
//! password in its PAM stack (packaging/pam.d/sudo). The stack and a
//! sudoers file are bind-mounted over /etc/pam.d and /etc/sudoers inside a
//! private mount namespace (`unshare --mount`), never onto the real ones.

mod pam_support;

use pam_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn uid_gid(user: &str) -> (String, String) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, user]).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    (id("-u"), id("-g"))
}

/// A test user allowed `sudo` to root, a registry enrolling it, and a
/// private sudo PAM stack: `auth` is `auth_lines` (`TWOSTEP` is the
/// module with its config), then pam_permit for the other types.
struct Sudo {
    f: Fixture,
    secret: String,
    user: &'static str,
    pam_dir: PathBuf,
    sudoers: PathBuf,
    uid: String,
    gid: String,
}

impl Sudo {
    fn new(user: &'static str, password: &str, auth_lines: &str) -> Self {
        unix_user(user, &format!("{user}g"));
        set_password(user, password);
        let (uid, gid) = uid_gid(user);
        let f = Fixture::new();
        let secret = f.enrolled(user);
        f.config("sudo", "", "");
        let dir = f.dir.path().to_owned();
        let pam_dir = dir.join("pam.d");
        std::fs::create_dir(&pam_dir).expect("pam.d");
        let twostep = format!(
            "{m} config={c}",
            m = module().display(),
            c = dir.join("sudo.toml").display()
        );
        std::fs::write(
            pam_dir.join("sudo"),
            format!(
                "{}account required pam_permit.so\nsession required pam_permit.so\n",
                auth_lines.replace("TWOSTEP", &twostep)
            ),
        )
        .expect("pam.d/sudo");
        std::fs::write(pam_dir.join("other"), "auth required pam_deny.so\naccount required pam_deny.so\nsession required pam_deny.so\npassword required pam_deny.so\n").expect("other");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let sudoers = dir.join("sudoers");
        std::fs::write(
            &sudoers,
            format!("Defaults !lecture, passwd_tries=1, !fqdn\nroot ALL=(ALL:ALL) ALL\n{user} ALL=(root) ALL\n"),
        )
        .expect("sudoers");
        std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).expect("chmod");
        Self {
            f,
            secret,
            user,
            pam_dir,
            sudoers,
            uid,
            gid,
        }
    }

    /// `sudo -S -k id -un` as the test user with `input` on stdin:
    /// (exit status, stdout, stderr).
    fn run(&self, input: String) -> (Option<i32>, String, String) {
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/pam.d && mount --bind \"$2\" /etc/sudoers && \
                 exec setpriv --reuid=\"$3\" --regid=\"$4\" --init-groups -- \
                 sudo -S -k /usr/bin/id -un",
            )
            .arg("sh")
            .arg(&self.pam_dir)
            .arg(&self.sudoers)
            .arg(&self.uid)
            .arg(&self.gid)
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
    }

    /// The registry's verify results for the test user, newest first.
    fn verifies(&self) -> Vec<String> {
        twostep_e2e::block_on(self.f.reg.admin_client().audit(1000))
            .expect("audit")
            .into_iter()
            .filter(|e| e.action == "verify" && e.username.as_deref() == Some(self.user))
            .filter_map(|e| e.result)
            .collect()
    }
}

#[test]
fn sudo_with_password_and_code() {
    const PASSWORD: &str = "sudo pass 1";
    // Debian's common-auth, then pam_twostep.
    let s = Sudo::new(
        "twostep-sudo",
        PASSWORD,
        "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n\
         auth required pam_permit.so\nauth required TWOSTEP\n",
    );
    let user = s.user;

    // Password and the right code: the command runs as root.
    let (rc, out, err) = s.run(format!("{PASSWORD}\n{}\n", code(&s.secret)));
    assert_eq!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert_eq!(out.trim(), "root");
    // sudo shows its own prompt for pam_unix's "Password: " and ours as is
    // (no -p: that would override every PAM prompt).
    assert!(
        err.contains(&format!("[sudo] password for {user}")),
        "{err}"
    );
    assert!(err.contains("Verification code: "), "{err}");

    // Password and a wrong code: refused, nothing runs.
    let w = wrong_code(&s.secret);
    let (rc, out, err) = s.run(format!("{PASSWORD}\n{w}\n{w}\n{w}\n"));
    assert_ne!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("root"), "{out}");
    assert_eq!(err.matches("Verification code: ").count(), 3, "{err}");

    // Wrong password, right code: pam_unix refuses first; no code prompt.
    let (rc, out, err) = s.run(format!("not the password\n{}\n", code(&s.secret)));
    assert_ne!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("root"));
    assert!(!err.contains("Verification code: "), "{err}");
}

/// One prompt for password and code (`forward_pass stash_code`, pam_unix
/// `requisite`, `verify_stashed`): a wrong password with the right code
/// runs nothing and leaves the code unused, so the right password with the
/// same code works right after.
#[test]
fn sudo_forward_pass_stash_code() {
    const PASSWORD: &str = "sudo stash 1";
    let s = Sudo::new(
        "twostep-sudo-st",
        PASSWORD,
        "auth required TWOSTEP forward_pass stash_code\n\
         auth requisite pam_unix.so use_first_pass\n\
         auth required TWOSTEP verify_stashed\n",
    );
    let good = code(&s.secret);

    let (rc, out, err) = s.run(format!("not the password{good}\n"));
    assert_ne!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("root"), "{out}");
    assert_eq!(
        err.matches("Password and verification code: ").count(),
        1,
        "{err}"
    );
    assert!(s.verifies().is_empty(), "{:?}", s.verifies());

    let (rc, out, err) = s.run(format!("{PASSWORD}{good}\n"));
    assert_eq!(rc, Some(0), "stdout {out:?} stderr {err:?}");
    assert_eq!(out.trim(), "root");
    assert!(!err.contains("[sudo] password"), "one prompt only: {err}");
    assert_eq!(s.verifies(), vec!["accept".to_owned()]);
}
