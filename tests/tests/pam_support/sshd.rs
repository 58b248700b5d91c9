//! A real OpenSSH sshd on 127.0.0.1 (own host key and config in a temp
//! dir, `AuthenticationMethods publickey,keyboard-interactive`) with
//! pam_twostep in its PAM stack. The stack lives in a private mount
//! namespace (`unshare --mount` + a bind mount over /etc/pam.d), so the
//! real /etc/pam.d is never touched. The ssh client answers the
//! keyboard-interactive prompts through SSH_ASKPASS.
//!
//! The module's `pam_syslog` lines are caught too: in the namespace /dev
//! is a tmpfs with the few devices sshd uses bound in, and `/dev/log` a
//! link to a datagram socket this process reads ([`Sshd::syslog`]).

use super::{module, wait_bounded};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twostep_e2e::free_tcp_port;

/// A running sshd, killed on drop.
pub struct Sshd {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its stderr (`-e`, LogLevel VERBOSE).
    pub log: PathBuf,
    /// syslog messages sent inside its namespace (the module's lines).
    syslog: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The syslog lines so far (`pam_twostep(sshd:auth): user=...`), one
    /// message a line.
    pub fn syslog(&self) -> String {
        self.syslog.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Reads datagrams at `path` into a string until `stop`.
fn syslog_sink(path: &Path) -> (Arc<Mutex<String>>, Arc<AtomicBool>) {
    let sock = UnixDatagram::bind(path).expect("syslog socket");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let text = Arc::new(Mutex::new(String::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (t, st) = (text.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        while !st.load(Ordering::Relaxed) {
            if let Ok(n) = sock.recv(&mut buf) {
                if let Ok(mut s) = t.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    s.push('\n');
                }
            }
        }
    });
    (text, stop)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An Ed25519 key pair at `path` and `path.pub`, without passphrase.
pub fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "twostep-test", "-f"])
        .arg(path));
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Prepares `dir` for logins: a client key in `authorized_keys`, an
/// `askpass` that appends each prompt to `dir/prompts` and then runs
/// `askpass_body` (the prompt in `$1`; what it prints is the answer), and
/// `dir/pam.d` whose `sshd` stack is pam_twostep with `config=CONFIG`,
/// then pam_permit (`packaging/pam.d/sshd`). Returns the PAM directory.
pub fn prepare(dir: &Path, config: &Path, askpass_body: &str) -> PathBuf {
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
    executable(
        &dir.join("askpass"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {d}/prompts\n{askpass_body}\n",
            d = dir.display()
        ),
    );
    let pam_dir = dir.join("pam.d");
    std::fs::create_dir(&pam_dir).expect("pam.d");
    std::fs::write(
        pam_dir.join("sshd"),
        format!(
            "auth required {m} config={c}\nauth required pam_permit.so\n\
             account required pam_permit.so\nsession required pam_permit.so\npassword required pam_deny.so\n",
            m = module().display(),
            c = config.display()
        ),
    )
    .expect("pam.d/sshd");
    std::fs::write(
        pam_dir.join("other"),
        "auth required pam_deny.so\naccount required pam_deny.so\npassword required pam_deny.so\nsession required pam_deny.so\n",
    )
    .expect("pam.d/other");
    pam_dir
}

/// Starts sshd for `user` with the PAM stacks of `pam_dir` and
/// `extra_config` appended to its sshd_config; waits (at most 10 s) until
/// it listens.
pub fn start_sshd(dir: &Path, pam_dir: &Path, user: &str, extra_config: &str) -> Sshd {
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
             LogLevel VERBOSE\nAllowUsers {user}\nMaxAuthTries 4\n{extra_config}",
            dir = dir.display()
        ),
    )
    .expect("sshd_config");
    // sshd's privilege-separation directory (created by Debian's unit).
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    let log = dir.join("sshd.log");
    let (syslog, stop) = syslog_sink(&dir.join("syslog.sock"));
    let old_dev = dir.join("host-dev");
    std::fs::create_dir(&old_dev).expect("host-dev");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
        .arg(
            "mount --bind \"$1\" /etc/pam.d\n\
             mount --rbind /dev \"$3\"\n\
             mount -t tmpfs -o mode=755 twostep-dev /dev\n\
             for d in null zero full random urandom tty ptmx; do\n\
               touch /dev/$d; mount --bind \"$3/$d\" /dev/$d\n\
             done\n\
             mkdir /dev/pts; mount --rbind \"$3/pts\" /dev/pts\n\
             ln -s \"$4\" /dev/log\n\
             exec /usr/sbin/sshd -D -e -f \"$2\"",
        )
        .arg("sh")
        .arg(pam_dir)
        .arg(&config)
        .arg(&old_dev)
        .arg(dir.join("syslog.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("sshd.log"))
        .spawn()
        .expect("start sshd (apt-get install openssh-server)");
    let mut sshd = Sshd {
        child,
        port,
        log,
        syslog,
        stop,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return sshd;
        }
        if let Ok(Some(st)) = sshd.child.try_wait() {
            panic!("sshd exited ({st}): {}", sshd.log());
        }
        assert!(
            Instant::now() < deadline,
            "sshd did not listen: {}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One finished ssh login.
#[derive(Debug)]
pub struct SshRun {
    /// ssh's exit status: 0 when the command ran, 255 when refused.
    pub status: Option<i32>,
    /// The command's output.
    pub stdout: String,
    /// The keyboard-interactive prompts, one a line.
    pub prompts: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// One `ssh USER@127.0.0.1 echo twostep-ok` with the key from [`prepare`],
/// prompts answered by its askpass; bounded by 40 s.
pub fn ssh(dir: &Path, sshd: &Sshd, user: &str) -> SshRun {
    let _ = std::fs::remove_file(dir.join("prompts"));
    let start = Instant::now();
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
            &format!("{user}@127.0.0.1"),
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
    SshRun {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        prompts: std::fs::read_to_string(dir.join("prompts")).unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}
