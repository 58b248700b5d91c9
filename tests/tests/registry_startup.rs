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
    // Without the CA file the certificate is not trusted: unreachable.
    let mut cfg = reg.client_config(Some(&key));
    cfg.ca_file = None;
    let c = RegistryClient::for_host(&cfg).unwrap();
    let err = block_on(c.health()).unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    // Plain HTTP to the HTTPS port does not work either.
    let mut cfg = reg.client_config(Some(&key));
    cfg.url = reg.url.replace("https://", "http://");
    let err = block_on(RegistryClient::for_host(&cfg).unwrap().health()).unwrap_err();
    assert!(err.is_unreachable(), "{err}");
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
        wrapper: [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount -t tmpfs -o size=4m,mode=0700 tmpfs \"$0\" && exec \"$@\"",
            &dbdir.path().display().to_string(),
        ]
        .map(String::from)
        .to_vec(),
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
    assert!(
        err.contains("secret.key") && err.contains("does not decrypt"),
        "{err}"
    );
}
