//! A real OpenSSH sshd on 127.0.0.1 (own host key and config in a temp
//! dir, `AuthenticationMethods publickey,keyboard-interactive`) with
//! pam_twostep in its PAM stack. The stack lives in a private mount
//! namespace (`unshare --mount` + a bind mount over /etc/pam.d), so the
//! real /etc/pam.d is never touched. The ssh client answers the
//! keyboard-interactive prompt through SSH_ASKPASS.

mod pam_support;

use pam_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twostep_e2e::free_tcp_port;

const USER: &str = "twostep-ssh";

struct Sshd {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "twostep-test", "-f"])
        .arg(path));
}

fn start_sshd(dir: &Path, pam_dir: &Path) -> Sshd {
    let port = free_tcp_port();
    keygen(&dir.join("host_ed25519"));
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM yes\n\
             KbdInteractiveAuthentication yes\nPasswordAuthentication no\nPubkeyAuthentication yes\n\
             AuthenticationMethods publickey,keyboard-interactive\nPermitRootLogin no\nUseDNS no\n\
             LogLevel VERBOSE\nAllowUsers {USER}\nMaxAuthTries 4\n",
            dir = dir.display()
        ),
    )
    .expect("sshd_config");
    // sshd's privilege-separation directory (created by Debian's unit).
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    let log = dir.join("sshd.log");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/pam.d && exec /usr/sbin/sshd -D -e -f \"$2\"")
        .arg("sh")
        .arg(pam_dir)
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("sshd.log"))
        .spawn()
        .expect("start sshd (apt-get install openssh-server)");
    let mut sshd = Sshd { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return sshd;
        }
        if let Ok(Some(st)) = sshd.child.try_wait() {
            panic!(
                "sshd exited ({st}): {}",
                std::fs::read_to_string(&sshd.log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "sshd did not listen: {}",
            std::fs::read_to_string(&sshd.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One `ssh USER@127.0.0.1 echo twostep-ok` with `answer` for every
/// keyboard-interactive prompt; returns (exit code, stdout, prompts seen).
fn ssh(dir: &Path, sshd: &Sshd, answer: &str) -> (Option<i32>, String, String) {
    std::fs::write(dir.join("answer"), format!("{answer}\n")).expect("answer");
    let _ = std::fs::remove_file(dir.join("prompts"));
    let child = Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &sshd.port.to_string(), "-i"])
        .arg(dir.join("client_ed25519"))
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            &format!("{USER}@127.0.0.1"),
            "echo twostep-ok",
        ])
        .env("SSH_ASKPASS", dir.join("askpass"))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh");
    let out = wait_bounded(child, Duration::from_secs(40));
    let prompts = std::fs::read_to_string(dir.join("prompts")).unwrap_or_default();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        prompts,
    )
}

#[test]
fn ssh_key_then_code() {
    unix_user(USER, "twostep-sshg");
    let f = Fixture::new();
    let secret = f.enrolled(USER);
    f.config("sshd", "", "");

    let dir = f.dir.path();
    // sshd reads authorized_keys as the user.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    keygen(&dir.join("client_ed25519"));
    let public = std::fs::read_to_string(dir.join("client_ed25519.pub")).expect("pub");
    std::fs::write(dir.join("authorized_keys"), public).expect("authorized_keys");
    std::fs::set_permissions(
        dir.join("authorized_keys"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let askpass = dir.join("askpass");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {d}/prompts\ncat {d}/answer\n",
            d = dir.display()
        ),
    )
    .expect("askpass");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // The PAM stack for sshd: the code after the key (packaging/pam.d/sshd).
    let pam_dir = dir.join("pam.d");
    std::fs::create_dir(&pam_dir).expect("pam.d");
    let cfg = dir.join("sshd.toml");
    std::fs::write(
        pam_dir.join("sshd"),
        format!(
            "auth required {m} config={c}\nauth required pam_permit.so\n\
             account required pam_permit.so\nsession required pam_permit.so\npassword required pam_deny.so\n",
            m = module().display(),
            c = cfg.display()
        ),
    )
    .expect("pam.d/sshd");
    std::fs::write(pam_dir.join("other"), "auth required pam_deny.so\naccount required pam_deny.so\npassword required pam_deny.so\nsession required pam_deny.so\n").expect("pam.d/other");

    let sshd = start_sshd(dir, &pam_dir);
    let sshd_log = || std::fs::read_to_string(&sshd.log).unwrap_or_default();

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
