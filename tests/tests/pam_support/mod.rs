//! Shared helpers for the PAM end-to-end tests: a real registry with a PAM
//! host key, private PAM service directories (libpam-wrapper, so the real
//! /etc/pam.d is never read or written), and pamtester runs with their
//! output, the module's log lines and their duration.
#![allow(dead_code)]

pub mod sshd;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twostep_common::api::HostKind;
use twostep_e2e::{bin, now, oathtool_code, Registry};

/// libpam-wrapper's preload library (Debian's libpam-wrapper).
pub const PAM_WRAPPER: &str = "libpam_wrapper.so";
/// pam_matrix: password checks against a text file, without /etc/shadow.
pub const PAM_MATRIX: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so";
/// pam_set_items: sets PAM items (PAM_AUTHTOK...) from the environment.
pub const PAM_SET_ITEMS: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so";

/// Longest a single pamtester run may take before the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(40);

/// The module under test.
pub fn module() -> PathBuf {
    bin("libpam_twostep.so")
}

/// A registry, this test's PAM host key, and a scratch directory with a
/// PAM service directory `svc/`.
pub struct Fixture {
    /// The running registry.
    pub reg: Registry,
    /// This host's API key file (0600).
    pub key: PathBuf,
    /// Scratch space.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts a registry and adds an SSH host.
    pub fn new() -> Self {
        Self::with_registry(Registry::start())
    }

    /// Adds an SSH host to `reg`.
    pub fn with_registry(reg: Registry) -> Self {
        let key = reg.add_host("pam-test-host", HostKind::Ssh);
        let dir = tempfile::Builder::new()
            .prefix("twostep-pam-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("svc")).expect("svc dir");
        Self { reg, key, dir }
    }

    /// Adds `user` with a TOTP method; returns the base32 secret.
    pub fn enrolled(&self, user: &str) -> String {
        self.reg.add_user(user);
        self.reg.enrol_totp(user).secret_base32
    }

    /// Writes `NAME.toml`: version, this registry's `[registry]` table with
    /// `registry_extra` appended, and `[pam]` with `pam`.
    pub fn config(&self, name: &str, registry_extra: &str, pam: &str) -> PathBuf {
        let text = format!(
            "version = 1\n{}{registry_extra}\n[pam]\n{pam}\n",
            self.reg.registry_toml(&self.key)
        );
        self.write_config(name, &text)
    }

    /// Writes `NAME.toml` with `text` as it is.
    pub fn write_config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// The PAM service directory.
    pub fn svc_dir(&self) -> PathBuf {
        self.dir.path().join("svc")
    }

    /// Writes service `name` with `stack`; `TWOSTEP` in it becomes the
    /// module's absolute path and `CONFIG(x)` becomes `config=<dir>/x.toml`.
    pub fn service(&self, name: &str, stack: &str) {
        let mut text = stack.replace("TWOSTEP", &module().display().to_string());
        while let Some(start) = text.find("CONFIG(") {
            let end = start + text[start..].find(')').expect("CONFIG(x) closes");
            let cfg = &text[start + 7..end];
            let path = self.dir.path().join(format!("{cfg}.toml"));
            text.replace_range(start..=end, &format!("config={}", path.display()));
        }
        std::fs::write(self.svc_dir().join(name), text).expect("write service");
    }

    /// pamtester `authenticate` for `user` on `service`, answering prompts
    /// with the lines of `input`.
    pub fn auth(&self, service: &str, user: &str, rhost: Option<&str>, input: &str) -> Run {
        pamtester(&self.svc_dir(), service, user, rhost, input, &[])
    }
}

/// The current code for `secret`, by oathtool.
pub fn code(secret: &str) -> String {
    oathtool_code(secret, now())
}

/// A code that is not the current one for `secret` (nor within the skew
/// window): a wrong code.
pub fn wrong_code(secret: &str) -> String {
    let t = now();
    let near: Vec<String> = (-2i64..=2)
        .map(|d| oathtool_code(secret, (t as i64 + d * 30) as u64))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
        .find(|c| !near.contains(c))
        .expect("a wrong code")
}

/// One finished pamtester run.
#[derive(Debug)]
pub struct Run {
    /// pamtester exited 0 ("successfully authenticated").
    pub ok: bool,
    /// Its stdout (prompts).
    pub stdout: String,
    /// Its stderr (pamtester's result line, pam_wrapper's log).
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// The `result=PAM_...` the module logged (its last outcome line).
    pub fn module_result(&self) -> Option<String> {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| l.split(" result=").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    }

    /// The module's log lines (pam_syslog, via pam_wrapper).
    pub fn module_log(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains("SYSLOG(") && !l.contains("_pam_init_handlers"))
            .collect()
    }

    /// pamtester's last line: "successfully authenticated" or pam_strerror.
    pub fn pam_line(&self) -> String {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|l| {
                l.starts_with("pamtester: ") && !l.contains("invoking") && !l.contains("performing")
            })
            .unwrap_or("")
            .to_owned()
    }

    /// How many times the module prompted with `prompt`.
    pub fn prompts(&self, prompt: &str) -> usize {
        self.stdout.matches(prompt).count() + self.stderr.matches(prompt).count()
    }

    /// Asserts success or failure and the module's logged result.
    pub fn expect(&self, ok: bool, module_result: &str) {
        assert_eq!(self.ok, ok, "authenticated? {self:#?}");
        assert_eq!(
            self.module_result().as_deref(),
            Some(module_result),
            "module result: {self:#?}"
        );
    }
}

/// pam_strerror texts pamtester prints.
pub const AUTH_ERR: &str = "pamtester: Authentication failure";
/// `PAM_MAXTRIES`.
pub const MAXTRIES: &str = "pamtester: Have exhausted maximum number of retries for service";
/// `PAM_PERM_DENIED`.
pub const PERM_DENIED: &str = "pamtester: Permission denied";
/// `PAM_AUTHINFO_UNAVAIL`.
pub const AUTHINFO_UNAVAIL: &str =
    "pamtester: Authentication service cannot retrieve authentication info";
/// Success.
pub const SUCCESS: &str = "pamtester: successfully authenticated";

/// Runs pamtester under libpam-wrapper with `svc_dir` as the PAM service
/// directory; `input` answers the prompts (one line each), then EOF.
pub fn pamtester(
    svc_dir: &Path,
    service: &str,
    user: &str,
    rhost: Option<&str>,
    input: &str,
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new("pamtester");
    cmd.arg("-v");
    if let Some(r) = rhost {
        cmd.arg("-I").arg(format!("rhost={r}"));
    }
    cmd.args([service, user, "authenticate"])
        .env("LD_PRELOAD", PAM_WRAPPER)
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", svc_dir)
        .env("PAM_WRAPPER_DEBUGLEVEL", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .expect("run pamtester (apt-get install pamtester)");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        // pamtester may exit before reading everything; that is fine.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = wait_bounded(child, RUN_LIMIT);
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Like [`pamtester`] (no rhost, no extra environment), but the prompt is
/// answered only once `prompt` has been shown: then `at_prompt` runs and
/// its result is written as the one answer line, then EOF. The whole run,
/// `at_prompt` included, is bounded by [`RUN_LIMIT`].
pub fn pamtester_answer_later(
    svc_dir: &Path,
    service: &str,
    user: &str,
    prompt: &str,
    at_prompt: impl FnOnce() -> String,
) -> Run {
    pamtester_script(
        svc_dir,
        service,
        user,
        None,
        vec![(prompt, Box::new(|_: &str| Some(at_prompt())))],
    )
}

/// What to do at one prompt of [`pamtester_script`]: given everything
/// shown so far (stdout, then stderr), the line to type, or `None` to
/// close the conversation (EOF, as a closed connection or Ctrl-C).
pub type AtPrompt<'a> = Box<dyn FnOnce(&str) -> Option<String> + 'a>;

/// pamtester `authenticate` under libpam-wrapper, answering the prompts as
/// they come: for each `(text, at_prompt)` of `script` in turn it waits
/// until `text` is shown (after where the last one was found), then
/// writes what `at_prompt` says. After the script, stdin is closed. A
/// script step whose text never comes (pamtester finished) ends the
/// script. The whole run is bounded by [`RUN_LIMIT`].
pub fn pamtester_script(
    svc_dir: &Path,
    service: &str,
    user: &str,
    rhost: Option<&str>,
    script: Vec<(&str, AtPrompt)>,
) -> Run {
    use std::io::Read;
    use std::sync::mpsc;
    let start = Instant::now();
    let deadline = start + RUN_LIMIT;
    let mut cmd = Command::new("pamtester");
    cmd.arg("-v");
    if let Some(r) = rhost {
        cmd.arg("-I").arg(format!("rhost={r}"));
    }
    let mut child = cmd
        .args([service, user, "authenticate"])
        .env("LD_PRELOAD", PAM_WRAPPER)
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", svc_dir)
        .env("PAM_WRAPPER_DEBUGLEVEL", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pamtester (apt-get install pamtester)");
    let pid = child.id();
    let kill = |why: &str, out: &[Vec<u8>; 2]| -> ! {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        panic!(
            "pamtester {pid}: {why}; stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out[0]),
            String::from_utf8_lossy(&out[1])
        );
    };
    // Both streams, chunk by chunk: (0 = stdout, 1 = stderr, bytes).
    let (tx, rx) = mpsc::channel::<(usize, Vec<u8>)>();
    let mut readers = Vec::new();
    for (n, mut stream) in [
        (
            0usize,
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        ),
        (1, Box::new(child.stderr.take().expect("stderr"))),
    ] {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(k @ 1..) = stream.read(&mut buf) {
                if tx.send((n, buf[..k].to_vec())).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut out = [Vec::new(), Vec::new()];
    let mut stdin = Some(child.stdin.take().expect("stdin"));
    // Where the search for the next prompt starts, per stream.
    let mut from = [0usize, 0usize];
    let mut closed = false;
    for (prompt, at_prompt) in script {
        let found = loop {
            let hit = (0..2).find_map(|n| {
                let text = String::from_utf8_lossy(&out[n][from[n]..]).into_owned();
                text.find(prompt).map(|i| (n, from[n] + i + prompt.len()))
            });
            if hit.is_some() || closed {
                break hit;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((n, b)) => out[n].extend_from_slice(&b),
                Err(mpsc::RecvTimeoutError::Timeout) => kill("no prompt within RUN_LIMIT", &out),
                // Both streams closed: pamtester is done.
                Err(mpsc::RecvTimeoutError::Disconnected) => closed = true,
            }
        };
        let Some((n, end)) = found else {
            break;
        };
        from[n] = end;
        let shown =
            String::from_utf8_lossy(&out[0]).into_owned() + &String::from_utf8_lossy(&out[1]);
        match at_prompt(&shown) {
            Some(line) => {
                if let Some(s) = stdin.as_mut() {
                    // pamtester may have exited already; the result says so.
                    let _ = s.write_all(format!("{line}\n").as_bytes());
                }
            }
            None => drop(stdin.take()),
        }
    }
    drop(stdin);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((n, b)) => out[n].extend_from_slice(&b),
            Err(mpsc::RecvTimeoutError::Timeout) => kill("did not finish within RUN_LIMIT", &out),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for r in readers {
        r.join().expect("reader thread");
    }
    // Its output is closed: it has exited or is about to.
    let status = loop {
        match child.try_wait().expect("wait for pamtester") {
            Some(st) => break st,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            None => kill("did not exit within RUN_LIMIT", &out),
        }
    };
    Run {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&out[0]).into_owned(),
        stderr: String::from_utf8_lossy(&out[1]).into_owned(),
        elapsed: start.elapsed(),
    }
}

pub use twostep_e2e::wait_bounded;

/// A TCP listener on 127.0.0.1 that accepts connections and never answers:
/// a registry that hangs. Connections are held until the process ends.
pub fn black_hole() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind black hole");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// Creates the Unix group `group` and user `user` (in that group, no home,
/// /bin/sh) unless they exist. Idempotent; names are unique per test file.
pub fn unix_user(user: &str, group: &str) {
    let run = |args: &[&str]| {
        let st = Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(st.success(), "{args:?} failed: {st}");
    };
    run(&["groupadd", "-f", group]);
    let exists = Command::new("id")
        .arg("-u")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        // -M no home, -N no user group, -K: no mail spool noise.
        let st = Command::new("useradd")
            .args(["-M", "-N", "-g", group, "-s", "/bin/sh", user])
            .status()
            .expect("useradd");
        // Another test process may have won the race.
        assert!(
            st.success() || st.code() == Some(9),
            "useradd {user} failed: {st}"
        );
    }
}

/// Sets `user`'s Unix password (chpasswd), for pam_unix in test stacks.
pub fn set_password(user: &str, password: &str) {
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .expect("chpasswd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{user}:{password}\n").as_bytes())
        .expect("write chpasswd");
    let st = child.wait().expect("wait chpasswd");
    assert!(st.success(), "chpasswd {user} failed: {st}");
}
