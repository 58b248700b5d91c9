//! Registry startup and storage failures: HTTPS with a private CA, plain
//! HTTP refused off loopback, PostgreSQL unreachable, a read-only SQLite
//! file and a full disk (503, nothing half-written).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use twostep_common::api::{
    AuthContext, CreateUser, EnrolTotp, HostKind, VerifyRequest, VerifyResult,
};
use twostep_common::client::{ClientError, RegistryClient};
use twostep_e2e::{bin, block_on, free_tcp_port, now, oathtool_code, Registry, RegistryOptions};

fn verify_req(user: &str, code: &str) -> VerifyRequest {
    VerifyRequest {
        username: user.into(),
        code: code.into(),
        context: AuthContext::default(),
    }
}

/// Runs `twostep-api --config FILE` expecting it to fail at startup within
/// `bound`; returns its stderr.
fn failing_start(config: &str, bound: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twostep.toml");
    std::fs::write(
        &path,
        config.replace("DIR", &dir.path().display().to_string()),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = Command::new(bin("twostep-api"))
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                !status.success(),
                "twostep-api should have refused to start"
            );
            break;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            panic!("twostep-api still running after {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        !dir.path().join("secret.key").exists() || err.contains("database"),
        "nothing is created before the config is accepted"
    );
    err
}

#[test]
fn https_with_private_ca() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let reg = Registry::start_opts(RegistryOptions {
        tls: Some((cert.cert.pem(), cert.key_pair.serialize_pem())),
        ..RegistryOptions::default()
    });
    assert!(reg.url.starts_with("https://127.0.0.1:"));
    // Start waited for /v1/health over HTTPS with ca_file; use it too.
    reg.add_user("tls-user");
    let e = reg.enrol_totp("tls-user");
    let key = reg.add_host("web-tls", HostKind::Ssh);
    let r = block_on(reg.host_client(&key).verify(&verify_req(
        "tls-user",
        &oathtool_code(&e.secret_base32, now()),
    )))
    .unwrap();
    assert_eq!(r.result, VerifyResult::Accept);
    // Without the CA file the certificate is not trusted: a TLS failure,
    // never "unreachable" (the fail mode must not apply to it).
    let mut cfg = reg.client_config(Some(&key));
    cfg.ca_file = None;
    let c = RegistryClient::for_host(&cfg).unwrap();
    let err = block_on(c.health()).unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    assert!(!err.is_unreachable(), "{err}");
    // Plain HTTP to the HTTPS port does not work either; something answered
    // (not HTTP), so it is not "unreachable" either.
    let mut cfg = reg.client_config(Some(&key));
    cfg.url = reg.url.replace("https://", "http://");
    let err = block_on(RegistryClient::for_host(&cfg).unwrap().health()).unwrap_err();
    assert!(!err.is_unreachable(), "{err:?}");
}

#[test]
fn tls_key_file_readable_by_others_is_refused() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = failing_start(
        &format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:{}\"\ndatabase = \"sqlite://DIR/r.db\"\nsecret_key_file = \"DIR/secret.key\"\nadmin_token_file = \"DIR/admin.token\"\ntls_cert_file = \"{}/cert.pem\"\ntls_key_file = \"{}/key.pem\"\n",
            free_tcp_port(),
            dir.path().display(),
            dir.path().display()
        ),
        Duration::from_secs(5),
    );
    assert!(
        err.contains("key.pem") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn plain_http_on_non_loopback_is_refused() {
    // The check runs before anything is bound: no socket is ever opened on 0.0.0.0.
    let err = failing_start(
        &format!(
            "version = 1\n[api]\nlisten = \"0.0.0.0:{}\"\ndatabase = \"sqlite://DIR/r.db\"\nsecret_key_file = \"DIR/secret.key\"\nadmin_token_file = \"DIR/admin.token\"\n",
            free_tcp_port()
        ),
        Duration::from_secs(5),
    );
    assert!(
        err.contains("refusing plain HTTP on non-loopback address 0.0.0.0:"),
        "{err}"
    );
    assert!(err.contains("allow_plain_http"), "{err}");
    assert_eq!(
        err.trim_end()
            .lines()
            .filter(|l| l.starts_with("twostep-api:"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn postgres_unreachable_at_startup_fails_fast() {
    let port = free_tcp_port();
    let start = Instant::now();
    let err = failing_start(
        &format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:{}\"\ndatabase = \"postgres://twostep:pw@127.0.0.1:{port}/twostep\"\nsecret_key_file = \"DIR/secret.key\"\nadmin_token_file = \"DIR/admin.token\"\n",
            free_tcp_port()
        ),
        Duration::from_secs(15),
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(
        err.contains(&format!(
            "database postgres://twostep:***@127.0.0.1:{port}/twostep"
        )),
        "{err}"
    );
    assert!(!err.contains(":pw@"), "password must not be printed: {err}");
}

/// Gives the registry's own files (directory, database, key, token) to `owner`.
fn chown_registry_files(dir: &Path, owner: &str) {
    let mut cmd = Command::new("chown");
    cmd.arg(owner).arg(dir);
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("registry.db") || name == "secret.key" || name == "admin.token" {
            cmd.arg(&p);
        }
    }
    assert!(cmd.status().unwrap().success());
}

/// A 503 answer: the registry is up but failing, so the fail mode does not apply.
fn failing(err: &ClientError) -> bool {
    matches!(err, ClientError::Server { status: 503, .. }) && !err.is_unreachable()
}

#[test]
fn read_only_sqlite_answers_503_and_writes_nothing() {
    let mut reg = Registry::start();
    reg.add_user("rita");
    let e = reg.enrol_totp("rita");
    let key = reg.add_host("web-ro", HostKind::Ssh);
    let audit_before = block_on(reg.admin_client().audit(1000)).unwrap().len();
    reg.stop();

    // Root ignores file modes, so run the registry as nobody over a 0444 database.
    let db = reg.dir.path().join("registry.db");
    chown_registry_files(reg.dir.path(), "nobody:nogroup");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    reg.wrapper = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--",
    ]
    .map(String::from)
    .to_vec();
    reg.restart();

    let admin = reg.admin_client();
    // Reads work.
    assert_eq!(block_on(admin.user("rita")).unwrap().methods.len(), 1);
    // Writes: 503 with a clear reason.
    let err = block_on(admin.create_user(&CreateUser {
        username: "newbie".into(),
        display_name: None,
    }))
    .unwrap_err();
    match &err {
        ClientError::Server { status, message } => {
            assert!(*status == 503 && message.contains("read-only"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let err = block_on(admin.enrol_totp("rita", &EnrolTotp::default())).unwrap_err();
    assert!(failing(&err), "{err}");
    let code = oathtool_code(&e.secret_base32, now());
    let err = block_on(reg.host_client(&key).verify(&verify_req("rita", &code))).unwrap_err();
    assert!(failing(&err), "verify must fail closed, not accept: {err}");

    // Writable again: nothing of the refused requests was written, and the
    // code the read-only registry could not consume is still good.
    reg.stop();
    chown_registry_files(reg.dir.path(), "root:root");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    reg.wrapper.clear();
    reg.restart();
    let admin = reg.admin_client();
    assert!(block_on(admin.user("newbie")).is_err());
    assert_eq!(block_on(admin.user("rita")).unwrap().methods.len(), 1);
    assert_eq!(block_on(admin.audit(1000)).unwrap().len(), audit_before);
    let r = block_on(reg.host_client(&key).verify(&verify_req("rita", &code))).unwrap();
    assert_eq!(r.result, VerifyResult::Accept);
    assert!(reg.log().contains("read-only"), "the log says why");
}

#[test]
fn full_disk_answers_503_and_writes_nothing() {
    // The database lives on a 4 MiB tmpfs mounted in the registry's own
    // mount namespace; the test fills it through /proc/PID/root.
    let dbdir = tempfile::tempdir().unwrap();
    let dbpath = dbdir.path().join("registry.db");
    let reg = Registry::start_opts(RegistryOptions {
        database_url: Some(format!("sqlite://{}", dbpath.display())),
        wrapper: twostep_e2e::tmpfs_wrapper(dbdir.path(), 4),
        ..RegistryOptions::default()
    });
    reg.add_user("fred");
    let e = reg.enrol_totp("fred");
    let key = reg.add_host("web-full", HostKind::Ssh);
    let admin = reg.admin_client();
    let audit_before = block_on(admin.audit(1000)).unwrap().len();

    // Fill the tmpfs.
    let inside = Path::new("/proc")
        .join(reg.pid().unwrap().to_string())
        .join("root")
        .join(dbdir.path().strip_prefix("/").unwrap());
    assert!(inside.join("registry.db").exists(), "{}", inside.display());
    let filler = inside.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
    }

    let err = block_on(admin.create_user(&CreateUser {
        username: "late".into(),
        display_name: None,
    }))
    .unwrap_err();
    assert!(failing(&err), "{err}");
    let err = block_on(admin.enrol_totp("fred", &EnrolTotp::default())).unwrap_err();
    assert!(failing(&err), "{err}");
    let code = oathtool_code(&e.secret_base32, now());
    let err = block_on(reg.host_client(&key).verify(&verify_req("fred", &code))).unwrap_err();
    assert!(failing(&err), "verify must fail closed: {err}");

    // Space again: nothing half-written, the code is still unused.
    std::fs::remove_file(&filler).unwrap();
    assert!(block_on(admin.user("late")).is_err());
    assert_eq!(block_on(admin.user("fred")).unwrap().methods.len(), 1);
    assert_eq!(block_on(admin.audit(1000)).unwrap().len(), audit_before);
    let r = block_on(reg.host_client(&key).verify(&verify_req("fred", &code))).unwrap();
    assert_eq!(r.result, VerifyResult::Accept);
}

#[test]
fn postgres_lost_at_runtime_answers_503() {
    let url = twostep_e2e::fresh_postgres_database();
    let mut reg = Registry::start_with(Some(&url), "");
    reg.add_user("pat");
    let e = reg.enrol_totp("pat");
    let key = reg.add_host("web-pg", HostKind::Ssh);
    // The database disappears under the registry (connections killed).
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let out = Command::new("psql")
        .arg(twostep_e2e::postgres_url())
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-qtAc",
            &format!("DROP DATABASE {name} WITH (FORCE)"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    let err = block_on(
        reg.host_client(&key)
            .verify(&verify_req("pat", &oathtool_code(&e.secret_base32, now()))),
    )
    .unwrap_err();
    assert!(failing(&err), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "answered within the client's deadline"
    );
    let err = block_on(reg.admin_client().health()).unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert!(
        reg.is_running(),
        "the registry keeps running; log:\n{}",
        reg.log()
    );
}

#[test]
fn wrong_secret_key_file_is_refused_at_startup() {
    let mut reg = Registry::start();
    reg.add_user("kim");
    reg.enrol_totp("kim");
    reg.stop();
    let key = reg.dir.path().join("secret.key");
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let out = Command::new(bin("twostep-api"))
        .arg("--config")
        .arg(&reg.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(KEY_MISMATCH), "{err}");
}

/// The line a node with another node's database but not its key prints.
const KEY_MISMATCH: &str = "was set up with another secret key: copy secret_key_file from the first registry node to every node";

/// One registry node in its own directory (config, key and token files
/// created by the node itself), on a shared database.
struct Node {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    port: u16,
}

impl Node {
    fn new(db: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_port();
        let config = dir.path().join("twostep.toml");
        std::fs::write(
            &config,
            format!(
                "version = 1\n[api]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {db:?}\nsecret_key_file = {:?}\nadmin_token_file = {:?}\n",
                dir.path().join("secret.key").display().to_string(),
                dir.path().join("admin.token").display().to_string(),
            ),
        )
        .unwrap();
        Node { dir, config, port }
    }

    fn spawn(&self) -> std::process::Child {
        let log = std::fs::File::create(self.dir.path().join("api.log")).unwrap();
        Command::new(bin("twostep-api"))
            .arg("--config")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("api.log")).unwrap_or_default()
    }

    /// `Ok` once the node listens (it binds only after its checks), `Err`
    /// with its log when it exits first; bounded.
    fn outcome(&self, child: &mut std::process::Child) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(!status.success(), "exited 0 at startup: {}", self.log());
                return Err(self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "no outcome within 15 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn check(&self) -> std::process::Output {
        twostep_e2e::wait_bounded(
            Command::new(bin("twostep-api"))
                .arg("--config")
                .arg(&self.config)
                .arg("--check")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
            Duration::from_secs(20),
        )
    }
}

fn stop(child: std::process::Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    twostep_e2e::wait_bounded(child, Duration::from_secs(10)).status
}

/// Two fresh nodes started together on one new database: exactly one key
/// wins; the other refuses with the fix and leaves no files behind; with
/// the winner's key copied it starts.
fn two_fresh_nodes_share_one_key(db: &str) {
    let a = Node::new(db);
    let b = Node::new(db);
    let (mut ca, mut cb) = (a.spawn(), b.spawn());
    let (ra, rb) = (a.outcome(&mut ca), b.outcome(&mut cb));
    let (winner, mut wchild, loser, err) = match (ra, rb) {
        (Ok(()), Err(e)) => (&a, ca, &b, e),
        (Err(e), Ok(())) => (&b, cb, &a, e),
        (ra, rb) => panic!("exactly one node must start: A {ra:?}, B {rb:?}"),
    };
    let line = err
        .lines()
        .find(|l| l.contains(KEY_MISMATCH))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.starts_with("twostep-api: "), "{line}");
    for f in ["secret.key", "admin.token"] {
        assert!(
            !loser.dir.path().join(f).exists(),
            "the failed start left {f} behind"
        );
    }
    // --check: the database's check value, not just the first method.
    let out = loser.check();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(KEY_MISMATCH));
    assert!(!loser.dir.path().join("secret.key").exists());
    // Another key file of its own is refused the same way, and kept.
    twostep_e2e::write_secret(&loser.dir.path().join("secret.key"), "");
    std::fs::write(loser.dir.path().join("secret.key"), [0x42u8; 32]).unwrap();
    let out = loser.check();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(KEY_MISMATCH));
    let mut c = loser.spawn();
    assert!(loser.outcome(&mut c).unwrap_err().contains(KEY_MISMATCH));
    assert!(loser.dir.path().join("secret.key").exists());
    // The winner's key: both check OK and run side by side.
    let key = std::fs::read(winner.dir.path().join("secret.key")).unwrap();
    std::fs::write(loser.dir.path().join("secret.key"), key).unwrap();
    for n in [winner, loser] {
        let out = n.check();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut c = loser.spawn();
    loser.outcome(&mut c).unwrap();
    assert!(stop(c).success());
    assert!(
        wchild.try_wait().unwrap().is_none(),
        "the first node kept running"
    );
    assert!(stop(wchild).success());
}

#[test]
fn two_fresh_nodes_on_one_sqlite_file_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("shared.db").display());
    two_fresh_nodes_share_one_key(&db);
}

#[test]
fn two_fresh_nodes_on_one_postgres_database_share_one_key() {
    two_fresh_nodes_share_one_key(&twostep_e2e::fresh_postgres_database());
}

/// Runs `sql` on the SQLite file `db` with the sqlite3 shell.
fn sqlite3(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn database_without_key_check_value_gets_one_after_the_key_opens_a_secret() {
    let mut reg = Registry::start();
    reg.add_user("kim");
    reg.enrol_totp("kim");
    reg.stop();
    let db = reg.dir.path().join("registry.db");
    // As a registry from before the key check value left it.
    sqlite3(&db, "DELETE FROM settings");
    let key = reg.dir.path().join("secret.key");
    let good = std::fs::read(&key).unwrap();
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let out = Command::new(bin("twostep-api"))
        .arg("--config")
        .arg(&reg.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not decrypt"), "{err}");
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM settings"), "0");
    std::fs::write(&key, good).unwrap();
    reg.restart();
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM settings WHERE name = 'key_check'"
        ),
        "1"
    );
}

#[test]
fn missing_key_file_on_a_set_up_database_is_refused_not_created() {
    let mut reg = Registry::start();
    reg.stop();
    let key = reg.dir.path().join("secret.key");
    std::fs::remove_file(&key).unwrap();
    let out = Command::new(bin("twostep-api"))
        .arg("--config")
        .arg(&reg.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(KEY_MISMATCH));
    assert!(!key.exists(), "no new key file next to a set-up database");
}
