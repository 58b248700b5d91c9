//! Harness for twostep's end-to-end tests: finds the built binaries, picks
//! free ports, writes secret files, computes codes with `oathtool`, and runs
//! a real `twostep-api` registry ([`Registry`]) in a temporary directory.
//!
//! Build first: `cargo build --workspace --bins --lib` (test.sh does).
//!
//! The blocking helpers ([`Registry::add_user`], [`Registry::enrol_totp`],
//! [`Registry::add_host`], [`block_on`]) run their own current-thread tokio
//! runtime: call them from plain `#[test]` functions, or from async code via
//! `tokio::task::spawn_blocking`, never directly inside a runtime. In async
//! tests use [`Registry::admin_client`] / [`Registry::host_client`] (one
//! client per runtime: reqwest's pooled connections belong to the runtime
//! that opened them).

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twostep_common::api::{CreateHost, CreateUser, EnrolTotp, HostKind, TotpEnrolment};
use twostep_common::client::RegistryClient;
use twostep_config::{RegistryClientConfig, Secret};

/// The directory holding the built binaries: `$CARGO_TARGET_DIR/debug`, or
/// `<workspace>/target/debug`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let base = match std::env::var_os("CARGO_TARGET_DIR") {
        // A relative CARGO_TARGET_DIR is relative to where cargo ran: the
        // workspace root (tests run with the package directory as cwd).
        Some(d) if Path::new(&d).is_relative() => workspace.join(d),
        Some(d) => PathBuf::from(d),
        None => workspace.join("target"),
    };
    base.join("debug")
}

/// The built binary (or library) `name` in [`target_dir`].
///
/// # Panics
/// When it is missing: run `cargo build --workspace --bins --lib` first.
pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run cargo build --workspace --bins --lib first",
        p.display()
    );
    p
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a UDP port on 127.0.0.1")
        .port()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a TCP port on 127.0.0.1")
        .port()
}

/// Writes `contents` to `path` with mode 0600 (replacing any file there).
///
/// # Panics
/// On I/O errors.
pub fn write_secret(path: &Path, contents: &str) {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(contents.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The TOTP code `oathtool --totp -b -N @unix_time SECRET` prints (6 digits,
/// 30 s step, SHA-1): an independent implementation to check ours against.
///
/// # Panics
/// When oathtool is missing or fails.
pub fn oathtool_code(secret_base32: &str, unix_time: u64) -> String {
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-b",
            "-N",
            &format!("@{unix_time}"),
            secret_base32,
        ])
        .output()
        .expect("run oathtool (apt-get install oathtool)");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(code.len(), 6, "oathtool printed {code:?}");
    code
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `fut` on a fresh current-thread runtime; for blocking helpers
/// called from plain `#[test]` functions.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}

/// How to start a [`Registry`]; `Default` is [`Registry::start`]'s setup.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Database URL; `None`: SQLite file `registry.db` in the temp dir.
    pub database_url: Option<String>,
    /// Lines appended at the end of the `[api]` table; `{port}` in them
    /// stands for the registry's listen port.
    pub extra_api_toml: String,
    /// HTTPS: PEM certificate (also trusted by the clients as `ca_file`)
    /// and PEM private key. The URL becomes `https://127.0.0.1:PORT`.
    pub tls: Option<(String, String)>,
    /// Command prefix the registry runs under, e.g. `["setpriv",
    /// "--reuid=nobody", "--"]` or an `unshare --mount` wrapper.
    pub wrapper: Vec<String>,
}

/// Longest wait for a registry to answer `/v1/health` after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `twostep-api` in a temporary directory, with its admin client.
///
/// Files in `dir`: `twostep.toml` (the config), `registry.db` (SQLite),
/// `secret.key`, `admin.token`, `api.log` (the registry's stderr, appended
/// across restarts), and one `host-NAME.key` per [`Registry::add_host`].
pub struct Registry {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The temporary directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config_path: PathBuf,
    /// A client holding the admin token.
    pub admin: RegistryClient,
    /// The registry's listen port.
    pub port: u16,
    /// The database URL in the config.
    pub database_url: String,
    /// The CA file clients trust (the registry's certificate), for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Command prefix the registry runs under (see [`RegistryOptions::wrapper`]).
    pub wrapper: Vec<String>,
    child: Option<Child>,
}

impl Registry {
    /// A registry on a fresh SQLite file; waits (at most 10 s) for `/v1/health`.
    ///
    /// # Panics
    /// When it does not start; the panic message holds its log.
    pub fn start() -> Registry {
        Self::start_with(None, "")
    }

    /// A registry on `database_url` (None: SQLite in the temp dir) with
    /// `extra_api_toml` appended at the end of the `[api]` table (e.g.
    /// `"[api.lockout]\nmax_failures = 3\n"`).
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_with(database_url: Option<&str>, extra_api_toml: &str) -> Registry {
        Self::start_opts(RegistryOptions {
            database_url: database_url.map(str::to_owned),
            extra_api_toml: extra_api_toml.to_owned(),
            ..RegistryOptions::default()
        })
    }

    /// A registry set up as `opts` says.
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_opts(opts: RegistryOptions) -> Registry {
        Self::start_in(opts, None)
    }

    /// A second registry process on the same database, secret key and admin
    /// token as `self` (a replica, as sites scale out on PostgreSQL), with
    /// its own port and directory.
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_replica(&self, extra_api_toml: &str) -> Registry {
        Self::start_in(
            RegistryOptions {
                database_url: Some(self.database_url.clone()),
                extra_api_toml: extra_api_toml.to_owned(),
                ..RegistryOptions::default()
            },
            Some(self),
        )
    }

    fn start_in(opts: RegistryOptions, like: Option<&Registry>) -> Registry {
        let port = free_tcp_port();
        let extra_api_toml = &opts.extra_api_toml.replace("{port}", &port.to_string());
        let dir = tempfile::Builder::new()
            .prefix("twostep-registry-")
            .tempdir()
            .expect("temp dir");
        let db = opts
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("registry.db").display()));
        let token_path = dir.path().join("admin.token");
        let token = match like {
            Some(other) => {
                let key = std::fs::read(other.dir.path().join("secret.key")).expect("secret.key");
                let key_path = dir.path().join("secret.key");
                write_secret(&key_path, "");
                std::fs::write(&key_path, key).expect("copy secret.key");
                std::fs::read_to_string(other.admin_token_file())
                    .expect("admin token")
                    .trim()
                    .to_owned()
            }
            None => format!("admin-{:016x}{:016x}", rand_u64(), rand_u64()),
        };
        write_secret(&token_path, &format!("{token}\n"));
        let config_path = dir.path().join("twostep.toml");
        let mut tls_toml = String::new();
        let mut ca_file = None;
        if let Some((cert, key)) = &opts.tls {
            let cert_path = dir.path().join("tls-cert.pem");
            let key_path = dir.path().join("tls-key.pem");
            std::fs::write(&cert_path, cert).expect("write certificate");
            write_secret(&key_path, key);
            tls_toml = format!(
                "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
                cert_path.display().to_string(),
                key_path.display().to_string()
            );
            ca_file = Some(cert_path);
        }
        let config = format!(
            "version = 1\n\n[api]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {db:?}\nsecret_key_file = {:?}\nadmin_token_file = {:?}\n{tls_toml}{extra_api_toml}\n",
            dir.path().join("secret.key").display().to_string(),
            token_path.display().to_string(),
        );
        std::fs::write(&config_path, config).expect("write config");
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let admin = client(&url, &token, ca_file.as_deref());
        let mut r = Registry {
            url,
            dir,
            config_path,
            admin,
            port,
            database_url: db,
            ca_file,
            wrapper: opts.wrapper,
            child: None,
        };
        r.spawn_and_wait();
        r
    }

    /// Path of the registry's stderr log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("api.log")
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Path of the admin token file.
    pub fn admin_token_file(&self) -> PathBuf {
        self.dir.path().join("admin.token")
    }

    /// A `[registry]` client config for this registry with `api_key_file`.
    pub fn client_config(&self, api_key_file: Option<&Path>) -> RegistryClientConfig {
        RegistryClientConfig {
            url: self.url.clone(),
            api_key_file: api_key_file.map(Path::to_owned),
            admin_token_file: Some(self.admin_token_file()),
            ca_file: self.ca_file.clone(),
            allow_plain_http: false,
            proxy: None,
            connect_timeout: 2,
            timeout: 10,
        }
    }

    /// A fresh admin client (use one per tokio runtime).
    pub fn admin_client(&self) -> RegistryClient {
        let token = std::fs::read_to_string(self.admin_token_file()).expect("admin token");
        client(&self.url, token.trim(), self.ca_file.as_deref())
    }

    /// A fresh host client using the key in `api_key_file`.
    pub fn host_client(&self, api_key_file: &Path) -> RegistryClient {
        RegistryClient::for_host(&self.client_config(Some(api_key_file))).expect("host client")
    }

    fn spawn_and_wait(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open api.log");
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin("twostep-api"));
                c
            }
            None => Command::new(bin("twostep-api")),
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn twostep-api");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = self.admin_client();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "twostep-api exited during startup ({status}); log:\n{}",
                    self.log()
                );
            }
            if block_on(probe.health()).is_ok_and(|h| h.status == "ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "twostep-api did not answer {} within {:?}; log:\n{}",
                twostep_common::api::HEALTH_PATH,
                START_TIMEOUT,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a user.
    ///
    /// # Panics
    /// On any error.
    pub fn add_user(&self, username: &str) {
        let c = self.admin_client();
        block_on(c.create_user(&CreateUser {
            username: username.into(),
            display_name: None,
        }))
        .unwrap_or_else(|e| panic!("add user {username}: {e}"));
    }

    /// Enrols a TOTP method for `username`; the answer holds the secret.
    ///
    /// # Panics
    /// On any error.
    pub fn enrol_totp(&self, username: &str) -> TotpEnrolment {
        let c = self.admin_client();
        block_on(c.enrol_totp(username, &EnrolTotp::default()))
            .unwrap_or_else(|e| panic!("enrol {username}: {e}"))
    }

    /// Adds a host and writes its API key to `dir/host-NAME.key` (0600);
    /// returns that path.
    ///
    /// # Panics
    /// On any error.
    pub fn add_host(&self, name: &str, kind: HostKind) -> PathBuf {
        let c = self.admin_client();
        let created = block_on(c.create_host(&CreateHost {
            name: name.into(),
            kind,
        }))
        .unwrap_or_else(|e| panic!("add host {name}: {e}"));
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.dir.path().join(format!("host-{safe}.key"));
        write_secret(&path, &format!("{}\n", created.api_key));
        path
    }

    /// A `[registry]` block for PAM and RADIUS configs.
    pub fn registry_toml(&self, api_key_file: &Path) -> String {
        format!(
            "[registry]\nurl = \"{}\"\napi_key_file = {:?}\n",
            self.url,
            api_key_file.display().to_string()
        )
    }

    /// Stops the registry: SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on our own child's pid; no memory involved.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                }
            }
        }
    }

    /// Stops and starts again on the same port, database and key files.
    ///
    /// # Panics
    /// When it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait();
    }

    /// Process id of the registry (of its wrapper, which usually execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the registry process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client(url: &str, token: &str, ca_file: Option<&Path>) -> RegistryClient {
    let cfg = RegistryClientConfig {
        url: url.to_owned(),
        api_key_file: None,
        admin_token_file: None,
        ca_file: ca_file.map(Path::to_owned),
        allow_plain_http: false,
        proxy: None,
        connect_timeout: 2,
        timeout: 10,
    };
    RegistryClient::new(&cfg, Secret::new(token.as_bytes().to_vec())).expect("registry client")
}

/// 64 random bits from the OS.
pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    // /dev/urandom never blocks once the system is up.
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("read /dev/urandom");
    u64::from_le_bytes(b)
}

/// The PostgreSQL server URL for tests, from `TWOSTEP_TEST_POSTGRES_URL`.
///
/// # Panics
/// When unset: the PostgreSQL tests must not pass by skipping. test.sh sets
/// it (tests/start-postgres.sh starts a throwaway server).
pub fn postgres_url() -> String {
    std::env::var("TWOSTEP_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "TWOSTEP_TEST_POSTGRES_URL is not set: run ./test.sh, or export \
             TWOSTEP_TEST_POSTGRES_URL=$(tests/start-postgres.sh)"
        )
    })
}

/// A test database on the test PostgreSQL server, dropped (with its
/// connections) when this value is: keep it alive as long as the
/// registries that use it (declare it before them). Derefs to its URL.
#[derive(Debug)]
pub struct PgDatabase {
    /// Its URL.
    pub url: String,
    name: String,
    base: String,
}

impl std::ops::Deref for PgDatabase {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let out = Command::new("psql")
            .arg(&self.base)
            .args([
                "-qtAc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "dropping test database {}: {}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// A new, uniquely named, empty database on the test PostgreSQL server
/// (created with `psql`), dropped again when the returned value is. Each
/// test gets its own, so tests stay independent.
///
/// # Panics
/// When the server is unreachable or [`postgres_url`] is unset.
pub fn fresh_postgres_database() -> PgDatabase {
    let base = postgres_url();
    let name = format!("twostep_t_{:016x}", rand_u64());
    // Concurrent CREATE DATABASE can fail while another copies template1
    // ("is being accessed by other users"): retry a few times.
    let mut attempt = 0;
    loop {
        let out = Command::new("psql")
            .arg(&base)
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                "-qtAc",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .expect("run psql (apt-get install postgresql-client)");
        if out.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        attempt += 1;
        assert!(
            attempt < 10 && err.contains("being accessed by other users"),
            "CREATE DATABASE on {base}: {err}"
        );
        std::thread::sleep(Duration::from_millis(100 * attempt));
    }
    let url = match base.rfind('/') {
        Some(i) if base[..i].contains("://") && i > base.find("://").map_or(0, |j| j + 2) => {
            let rest = &base[i + 1..];
            let query = rest.find('?').map_or("", |q| &rest[q..]);
            format!("{}/{name}{query}", &base[..i])
        }
        _ => format!("{}/{name}", base.trim_end_matches('/')),
    };
    PgDatabase { url, name, base }
}

/// Longest one `twostep` command run by [`twostep`] may take.
pub const TWOSTEP_RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs the built `twostep ARGS...` (stdin empty), bounded by
/// [`TWOSTEP_RUN_LIMIT`]; its output.
pub fn twostep<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    let child = Command::new(bin("twostep"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run twostep");
    wait_bounded(child, TWOSTEP_RUN_LIMIT)
}

/// `twostep authenticator --accounts ACCOUNTS ARGS...`: the reference
/// device with its accounts file.
pub fn authenticator(accounts: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&std::ffi::OsStr> = vec!["authenticator".as_ref(), "--accounts".as_ref()];
    all.push(accounts.as_os_str());
    all.extend(args.iter().map(std::ffi::OsStr::new));
    twostep(&all)
}

/// A command's exit status, stdout and stderr, for assertion messages.
pub fn show_output(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits for `child` at most `limit`, then kills it and fails the test.
pub fn wait_bounded(
    child: std::process::Child,
    limit: std::time::Duration,
) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for child"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("child {pid} did not finish within {limit:?}");
        }
    }
}

/// A [`RegistryOptions::wrapper`] that runs the registry in its own mount
/// namespace with a `size_mib` MiB tmpfs (mode 0700) mounted over `dir`:
/// a small disk the test can fill through `/proc/PID/root`, never touching
/// the real filesystem.
pub fn tmpfs_wrapper(dir: &Path, size_mib: u32) -> Vec<String> {
    vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        format!("mount -t tmpfs -o size={size_mib}m,mode=0700 tmpfs \"$0\" && exec \"$@\""),
        dir.display().to_string(),
    ]
}
