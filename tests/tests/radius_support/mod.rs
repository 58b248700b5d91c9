//! Shared pieces of the RADIUS end-to-end tests: a registry with a RADIUS
//! host key, `twostep-radiusd` processes, `radclient` runs and FreeRADIUS
//! instances in temporary directories, all on 127.0.0.1 and free ports.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twostep_common::api::HostKind;
use twostep_e2e::{bin, free_udp_port, now, oathtool_code, write_secret, Registry};

/// Longest wait for a server to report it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A registry, a RADIUS host key, a State key and a temp dir for configs.
pub struct Env {
    /// The running registry.
    pub reg: Registry,
    /// Config files, secrets and logs of this test.
    pub dir: tempfile::TempDir,
    /// This RADIUS server's host API key file.
    pub host_key: PathBuf,
    /// The State key file (64 hex digits, 0600).
    pub state_key: PathBuf,
}

impl Env {
    /// Starts a registry and registers a RADIUS host.
    pub fn new() -> Env {
        Self::with_api("")
    }

    /// As [`Env::new`] with `extra_api_toml` at the end of the registry's
    /// `[api]` table (e.g. `"[api.push]\nchallenge_lifetime = 3\n"`).
    pub fn with_api(extra_api_toml: &str) -> Env {
        let reg = Registry::start_with(None, extra_api_toml);
        let host_key = reg.add_host("radius-1", HostKind::Radius);
        let dir = tempfile::Builder::new()
            .prefix("twostep-radius-")
            .tempdir()
            .expect("temp dir");
        let state_key = dir.path().join("state.key");
        write_secret(&state_key, &format!("{}\n", hex(&random_bytes(32))));
        Env {
            reg,
            dir,
            host_key,
            state_key,
        }
    }

    /// Writes a 0600 secret file `name` holding `value`.
    pub fn secret_file(&self, name: &str, value: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        write_secret(&p, &format!("{value}\n"));
        p
    }

    /// Creates `user` with a TOTP method; returns the base32 secret.
    pub fn enrolled_user(&self, user: &str) -> String {
        self.reg.add_user(user);
        self.reg.enrol_totp(user).secret_base32
    }

    /// Writes `NAME.toml`: version, `[registry]`, `[radius]` listening on
    /// 127.0.0.1:`port` with this env's State key, then `radius_body`
    /// (more `[radius]` keys, `[[radius.client]]`, `[[radius.upstream]]`).
    pub fn config(&self, name: &str, port: u16, radius_body: &str) -> PathBuf {
        self.config_with_key(name, port, &self.state_key, radius_body)
    }

    /// As [`Env::config`] with another State key file.
    pub fn config_with_key(&self, name: &str, port: u16, key: &Path, radius_body: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            "version = 1\n\n{}\n[radius]\nlisten = \"127.0.0.1:{port}\"\nstate_key_file = {:?}\n{radius_body}\n",
            self.reg.registry_toml(&self.host_key),
            key.display().to_string()
        );
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// Starts `twostep-radiusd` with a config from [`Env::config`].
    pub fn radiusd(&self, name: &str, radius_body: &str) -> Radiusd {
        let port = free_udp_port();
        let cfg = self.config(name, port, radius_body);
        Radiusd::start(&cfg, port, &self.dir.path().join(format!("{name}.log")))
    }
}

/// A `[[radius.client]]` block.
pub fn client_toml(
    name: &str,
    address: &str,
    secret_file: &Path,
    mode: &str,
    extra: &str,
) -> String {
    format!(
        "[[radius.client]]\nname = {name:?}\naddress = {address:?}\nsecret_file = {:?}\nmode = {mode:?}\n{extra}\n",
        secret_file.display().to_string()
    )
}

/// A running `twostep-radiusd`.
pub struct Radiusd {
    child: Option<Child>,
    /// UDP port on 127.0.0.1.
    pub port: u16,
    /// Its stderr.
    pub log_path: PathBuf,
}

impl Radiusd {
    /// Spawns the server and waits (bounded) for its "listening on" line.
    pub fn start(config: &Path, port: u16, log_path: &Path) -> Radiusd {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("open log");
        let start_len = std::fs::metadata(log_path).map_or(0, |m| m.len()) as usize;
        let child = Command::new(bin("twostep-radiusd"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "twostep_radius=debug,info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn twostep-radiusd");
        let mut r = Radiusd {
            child: Some(child),
            port,
            log_path: log_path.to_owned(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = r.log();
            if log
                .get(start_len..)
                .is_some_and(|l| l.contains("listening on"))
            {
                return r;
            }
            if let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("twostep-radiusd exited at start ({status}); log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "twostep-radiusd not ready; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Radiusd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What radclient received.
#[derive(Debug)]
pub struct RadReply {
    /// "Access-Accept", "Access-Reject", "Access-Challenge", or None (no valid reply).
    pub code: Option<String>,
    /// Reply attributes as radclient prints them (`name`, `value`).
    pub attrs: Vec<(String, String)>,
    /// radclient's stdout and stderr, for failure messages.
    pub output: String,
}

impl RadReply {
    /// The first value of attribute `name`, as printed (strings quoted).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of attribute `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The State attribute as radclient prints it (`0x...`).
    pub fn state(&self) -> String {
        self.attr("State")
            .unwrap_or_else(|| panic!("no State in reply:\n{}", self.output))
            .to_owned()
    }

    /// Asserts the code, showing the whole exchange otherwise.
    pub fn expect(&self, code: &str) -> &Self {
        assert_eq!(
            self.code.as_deref(),
            Some(code),
            "radclient:\n{}",
            self.output
        );
        self
    }
}

/// Runs `radclient -x` against 127.0.0.1:`port` with `command` (`auth` or
/// `status`) and the attribute lines `attrs` (values as radclient reads
/// them: quote strings). Waits `timeout` seconds per try, `tries` tries.
pub fn radclient_with(
    port: u16,
    secret: &str,
    command: &str,
    attrs: &[String],
    timeout: f32,
    tries: u32,
) -> RadReply {
    let mut child = Command::new("radclient")
        .args(["-x", "-t", &timeout.to_string(), "-r", &tries.to_string()])
        .arg(format!("127.0.0.1:{port}"))
        .arg(command)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run radclient (apt-get install freeradius-utils)");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{}\n", attrs.join("\n")).as_bytes())
            .expect("write radclient input");
    }
    let out = wait_bounded(
        child,
        Duration::from_secs_f32(timeout * tries as f32 + 10.0),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let output = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let mut code = None;
    let mut attrs_out = Vec::new();
    let mut in_reply = false;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            code = rest.split_whitespace().next().map(str::to_owned);
            in_reply = true;
            attrs_out.clear();
        } else if in_reply && line.starts_with('\t') {
            if let Some((n, v)) = line.trim().split_once(" = ") {
                attrs_out.push((n.to_owned(), v.to_owned()));
            }
        } else {
            in_reply = false;
        }
    }
    RadReply {
        code,
        attrs: attrs_out,
        output,
    }
}

/// An Access-Request for `user` with `password`, with
/// `Message-Authenticator = 0x00` (radclient then computes it and checks
/// the reply's), plus `extra` lines.
pub fn auth(port: u16, secret: &str, user: &str, password: &str, extra: &[&str]) -> RadReply {
    let mut attrs = vec![
        format!("User-Name = {user:?}"),
        format!("User-Password = {password:?}"),
        "Message-Authenticator = 0x00".to_owned(),
    ];
    attrs.extend(extra.iter().map(|s| (*s).to_owned()));
    radclient_with(port, secret, "auth", &attrs, 3.0, 1)
}

/// The current code for a base32 secret (oathtool).
pub fn code(secret: &str) -> String {
    oathtool_code(secret, now())
}

/// A 6-digit code that is not valid now (not in the window ±2 steps).
pub fn wrong_code(secret: &str) -> String {
    let t = now();
    let valid: Vec<String> = (0..5)
        .map(|i| oathtool_code(secret, t + i * 30 - 60))
        .collect();
    (0..1000u32)
        .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

pub use twostep_e2e::wait_bounded;

/// `n` random octets from /dev/urandom.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("read /dev/urandom");
    b
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A FreeRADIUS 3.2 server (`freeradius -X -d DIR`) with a minimal
/// configuration generated in a temp dir.
pub struct FreeRadius {
    child: Option<Child>,
    /// UDP port on 127.0.0.1.
    pub port: u16,
    /// Its config dir (removed on drop).
    pub dir: tempfile::TempDir,
}

const FR_HEAD: &str = r#"
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = @DIR@
raddbdir = @DIR@
radacctdir = @DIR@
name = freeradius
confdir = @DIR@
modconfdir = @DIR@
run_dir = @DIR@
db_dir = @DIR@
libdir = /usr/lib/freeradius
pidfile = @DIR@/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
  destination = stdout
  colourise = no
}
security {
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}
"#;

impl FreeRadius {
    /// An upstream primary server: PAP against `users` (a users file) for a
    /// client 127.0.0.1 with `secret`, Message-Authenticator required on
    /// requests and added to every reply (FreeRADIUS < 3.2.5 adds it only
    /// when told to in post-auth).
    pub fn upstream(secret: &str, users: &str) -> FreeRadius {
        Self::upstream_with(secret, users, "")
    }

    /// As [`FreeRadius::upstream`] with `extra` at the top level of the
    /// configuration (e.g. a RadSec `listen` with `proto = tcp` and
    /// `tls { }`, served by the default server, and its `clients`).
    /// With `extra`, FreeRADIUS runs threaded (`-f -xx -l stdout`).
    pub fn upstream_with(secret: &str, users: &str, extra: &str) -> FreeRadius {
        let server = r#"
@EXTRA@"#
            .replace("@EXTRA@", extra)
            + r#"
modules {
  files {
    filename = @DIR@/users
  }
  pap {
  }
}
server default {
  listen {
    type = auth
    ipaddr = 127.0.0.1
    port = @PORT@
  }
  authorize {
    files
    pap
  }
  authenticate {
    Auth-Type PAP {
      pap
    }
  }
  post-auth {
    update reply {
      Message-Authenticator := 0x00
    }
    Post-Auth-Type REJECT {
      update reply {
        Message-Authenticator := 0x00
      }
    }
  }
}
"#;
        if extra.is_empty() {
            Self::start(secret, &server, users)
        } else {
            Self::start_args(secret, &server, users, &["-f", "-xx", "-l", "stdout"])
        }
    }

    /// A proxy: every Access-Request from 127.0.0.1 (`client_secret`) goes
    /// to the home server 127.0.0.1:`home_port` (`home_secret`).
    pub fn proxy(client_secret: &str, home_port: u16, home_secret: &str) -> FreeRadius {
        Self::proxy_with(client_secret, home_port, home_secret, "")
    }

    /// As [`FreeRadius::proxy`] with `home_extra` lines in the
    /// `home_server` block (e.g. `proto = tcp` and a `tls { }` block for
    /// RadSec).
    pub fn proxy_with(
        client_secret: &str,
        home_port: u16,
        home_secret: &str,
        home_extra: &str,
    ) -> FreeRadius {
        let server = format!(
            r#"
proxy_requests = yes
proxy server {{
  default_fallback = no
}}
home_server twostep {{
  type = auth
  ipaddr = 127.0.0.1
  port = {home_port}
  secret = {home_secret}
  response_window = 20
  zombie_period = 40
  status_check = none
{home_extra}
}}
home_server_pool twostep_pool {{
  type = fail-over
  home_server = twostep
}}
realm twostep {{
  auth_pool = twostep_pool
  nostrip
}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = @PORT@
  }}
  authorize {{
    update control {{
      &Proxy-To-Realm := "twostep"
    }}
  }}
  authenticate {{
  }}
  post-auth {{
  }}
  pre-proxy {{
  }}
  post-proxy {{
  }}
}}
"#
        );
        Self::start(client_secret, &server, "")
    }

    fn start(client_secret: &str, server: &str, users: &str) -> FreeRadius {
        Self::start_args(client_secret, server, users, &["-X"])
    }

    /// `freeradius ARGS -d DIR`: `-X` (single-threaded, full debug) for
    /// most, `-f -xx -l stdout` (threaded, which TLS listeners need).
    fn start_args(client_secret: &str, server: &str, users: &str, args: &[&str]) -> FreeRadius {
        let dir = tempfile::Builder::new()
            .prefix("twostep-freeradius-")
            .tempdir()
            .expect("temp dir");
        let port = free_udp_port();
        let d = dir.path().display().to_string();
        let client = format!(
            "client nas {{\n  ipaddr = 127.0.0.1\n  secret = {client_secret}\n  require_message_authenticator = yes\n}}\n"
        );
        let conf = format!("{FR_HEAD}{client}{server}")
            .replace("@DIR@", &d)
            .replace("@PORT@", &port.to_string());
        std::fs::write(dir.path().join("radiusd.conf"), conf).expect("radiusd.conf");
        std::fs::write(dir.path().join("dictionary"), "").expect("dictionary");
        std::fs::write(dir.path().join("users"), users).expect("users");
        let log_path = dir.path().join("freeradius.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let child = Command::new("freeradius")
            .args(args)
            .arg("-d")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("run freeradius (apt-get install freeradius)");
        let mut fr = FreeRadius {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = fr.log();
            if log.contains("Ready to process requests") {
                return fr;
            }
            if let Some(status) = fr.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("freeradius exited at start ({status}); log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "freeradius not ready; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its log (`-X` output) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("freeradius.log")).unwrap_or_default()
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
