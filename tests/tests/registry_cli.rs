//! The `twostep` admin command line against a real registry.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use twostep_common::api::{AuthContext, VerifyRequest, VerifyResult};
use twostep_common::client::ClientError;
use twostep_e2e::{bin, block_on, free_tcp_port, now, oathtool_code, Registry};

fn twostep(reg: &Registry, args: &[&str]) -> Output {
    Command::new(bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .args(args)
        .output()
        .expect("run twostep")
}

fn ok(reg: &Registry, args: &[&str]) -> String {
    let out = twostep(reg, args);
    assert!(
        out.status.success(),
        "twostep {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} line in:\n{text}"))
        .trim()
}

fn verify(
    reg: &Registry,
    key: &std::path::Path,
    user: &str,
    code: &str,
) -> Result<VerifyResult, ClientError> {
    block_on(reg.host_client(key).verify(&VerifyRequest {
        username: user.into(),
        code: code.into(),
        context: AuthContext::default(),
    }))
    .map(|r| r.result)
}

#[test]
fn admin_commands_end_to_end() {
    let reg = Registry::start();
    let out = ok(
        &reg,
        &["user", "add", "alice", "--display-name", "Alice Smith"],
    );
    assert_eq!(out.trim(), "added user alice");
    let list = ok(&reg, &["user", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("alice ") && l.contains("active")),
        "{list}"
    );

    // Enrol without QR: the secret and URI lines are there for typing in.
    let enrol = ok(&reg, &["enrol", "alice", "--no-qr", "--label", "Pixel 8"]);
    let secret = field(&enrol, "secret:").to_owned();
    let uri = field(&enrol, "uri:");
    assert!(
        uri.starts_with("otpauth://totp/twostep:alice?secret="),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}&")));
    assert!(
        !enrol.contains('\u{2580}') && !enrol.contains('\u{2584}'),
        "no QR with --no-qr"
    );
    // With QR: half-block characters.
    let enrol2 = ok(&reg, &["enrol", "alice"]);
    assert!(
        enrol2.contains('\u{2580}') || enrol2.contains('\u{2584}') || enrol2.contains('\u{2588}'),
        "{enrol2}"
    );

    // --qr-png / --qr-svg: files (0600) whose QR code zbarimg reads as
    // the printed URI; an existing file is refused before enrolling.
    ok(&reg, &["user", "add", "quinn"]);
    let png = reg.dir.path().join("quinn.png");
    let svg = reg.dir.path().join("quinn.svg");
    let enrol3 = ok(
        &reg,
        &[
            "enrol",
            "quinn",
            "--no-qr",
            "--qr-png",
            png.to_str().unwrap(),
            "--qr-svg",
            svg.to_str().unwrap(),
        ],
    );
    let uri3 = field(&enrol3, "uri:").to_owned();
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&png, &svg] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
    let read = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png)
        .output()
        .expect("run zbarimg (apt-get install zbar-tools)");
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), uri3);
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg_text.starts_with("<svg ") && svg_text.contains("<path"),
        "{svg_text}"
    );
    let methods_before = ok(&reg, &["user", "show", "quinn"]);
    let again = twostep(&reg, &["enrol", "quinn", "--qr-png", png.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        ok(&reg, &["user", "show", "quinn"]),
        methods_before,
        "enrolled anyway"
    );
    // A directory that does not exist: refused before enrolling too, and
    // an SVG file created for the same run is not left behind.
    let svg2 = reg.dir.path().join("second.svg");
    let missing = twostep(
        &reg,
        &[
            "enrol",
            "quinn",
            "--qr-svg",
            svg2.to_str().unwrap(),
            "--qr-png",
            "/nonexistent-dir/quinn.png",
        ],
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("/nonexistent-dir/quinn.png: cannot create"),
        "{err}"
    );
    assert!(missing.stdout.is_empty(), "no secret printed");
    assert!(!svg2.exists(), "the other image file was removed");
    assert_eq!(
        ok(&reg, &["user", "show", "quinn"]),
        methods_before,
        "enrolled with a missing directory"
    );

    // A host key written to a 0600 file works against /v1/host/verify.
    let key = reg.dir.path().join("web1.key");
    let out = ok(
        &reg,
        &[
            "host",
            "add",
            "web1",
            "--kind",
            "ssh",
            "--key-file",
            key.to_str().unwrap(),
        ],
    );
    assert!(out.contains("written to"), "{out}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let code = oathtool_code(&secret, now());
    assert_eq!(
        verify(&reg, &key, "alice", &code).unwrap(),
        VerifyResult::Accept
    );

    // An existing key file (web1's key) is never overwritten, and the host
    // is not added either.
    let web1_key = std::fs::read_to_string(&key).unwrap();
    let out = twostep(
        &reg,
        &[
            "host",
            "add",
            "web2",
            "--kind",
            "ssh",
            "--key-file",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("{}: already exists", key.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), web1_key);
    assert!(!ok(&reg, &["host", "list"]).contains("web2"));
    // A host name taken leaves no key file behind.
    let spare = reg.dir.path().join("spare.key");
    let out = twostep(
        &reg,
        &[
            "host",
            "add",
            "web1",
            "--kind",
            "ssh",
            "--key-file",
            spare.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!spare.exists());

    // Without --key-file the key goes to stdout, alone on its line.
    let printed = ok(&reg, &["host", "add", "vpn1", "--kind", "radius"]);
    assert!(
        printed.trim().starts_with("tsh_") && printed.lines().count() == 1,
        "{printed}"
    );
    let hosts = ok(&reg, &["host", "list"]);
    assert!(
        hosts.contains("web1") && hosts.contains("vpn1") && hosts.contains("radius"),
        "{hosts}"
    );

    // Disable / enable.
    ok(&reg, &["user", "disable", "alice"]);
    assert_eq!(
        verify(&reg, &key, "alice", "000000").unwrap(),
        VerifyResult::Disabled
    );
    assert!(ok(&reg, &["user", "show", "alice"]).contains("status:       disabled"));
    ok(&reg, &["user", "enable", "alice"]);

    // Show lists both methods; delete one, then reset the rest.
    let show = ok(&reg, &["user", "show", "alice"]);
    assert!(
        show.contains("display name: Alice Smith") && show.contains("Pixel 8"),
        "{show}"
    );
    let ids: Vec<i64> = show
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(ids.len(), 2, "{show}");
    ok(&reg, &["method", "delete", "alice", &ids[0].to_string()]);
    let show = ok(&reg, &["user", "show", "alice"]);
    assert!(
        !show.contains("Pixel 8") && show.contains("default"),
        "{show}"
    );
    ok(&reg, &["user", "reset", "alice"]);
    assert_eq!(
        verify(&reg, &key, "alice", "123456").unwrap(),
        VerifyResult::NotEnrolled
    );

    // Revoke: the key is refused with 403.
    ok(&reg, &["host", "revoke", "web1"]);
    match verify(&reg, &key, "alice", "123456") {
        Err(ClientError::Refused { status: 403, .. }) => {}
        other => panic!("revoked host: {other:?}"),
    }
    assert!(ok(&reg, &["host", "list"]).contains("revoked"));

    // Audit shows the admin actions, never the secret or the key.
    let audit = ok(&reg, &["audit", "--limit", "100"]);
    for action in [
        "user.create",
        "totp.enrol",
        "host.create",
        "user.disable",
        "host.revoke",
        "verify",
    ] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }
    assert!(
        !audit.contains(&secret) && !audit.contains(&code),
        "{audit}"
    );

    ok(&reg, &["user", "delete", "alice"]);
    assert!(!ok(&reg, &["user", "list"]).contains("alice"));
}

#[test]
fn errors_are_one_line_with_exit_1() {
    let reg = Registry::start();
    let out = twostep(&reg, &["user", "show", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("twostep: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(err.contains("nobody"), "{err}");

    ok(&reg, &["user", "add", "bob"]);
    let out = twostep(&reg, &["user", "add", "bob"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));

    // Wrong admin token.
    let bad = reg.dir.path().join("bad.token");
    twostep_e2e::write_secret(&bad, "not-the-token\n");
    let out = twostep(
        &reg,
        &["--admin-token-file", bad.to_str().unwrap(), "user", "list"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // Missing config file.
    let out = Command::new(bin("twostep"))
        .args(["--config", "/nonexistent/twostep.toml", "user", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("twostep: /nonexistent/twostep.toml"));
}

#[test]
fn help_and_version() {
    let out = Command::new(bin("twostep")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && help.contains("Examples:") && help.contains("twostep enrol alice"),
        "{help}"
    );
    let out = Command::new(bin("twostep"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("twostep "));
}

/// Runs `twostep-api ARGS` with `RUST_BACKTRACE=1`.
fn api(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin("twostep-api"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("run twostep-api")
}

/// Asserts the one-line fatal error shape of `twostep-api`: exit status 1,
/// exactly one stderr line, `twostep-api: ` first, mentioning `needle`.
fn api_fails_with_one_line(args: &[&std::ffi::OsStr], needle: &str) -> String {
    let out = api(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{err}");
    assert!(lines[0].starts_with("twostep-api: "), "{err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(
        !err.contains("Caused by") && !err.contains("acktrace"),
        "{err}"
    );
    lines[0].to_owned()
}

#[test]
fn api_fatal_errors_are_one_line_even_with_backtraces_on() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "version = 1\n[api\n").unwrap();
    let line =
        api_fails_with_one_line(&["--config".as_ref(), broken.as_os_str()], "broken.toml:2:");
    assert!(line.contains("invalid table header"), "{line}");
    let absent = dir.path().join("absent.toml");
    let line = api_fails_with_one_line(&["--config".as_ref(), absent.as_os_str()], "absent.toml");
    assert_eq!(
        line.matches("No such file or directory").count(),
        1,
        "{line}"
    );
    // Refused at startup, after logging is up: still one line, not a log
    // line and a plain line.
    let cfg = dir.path().join("open.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[api]\nlisten = \"0.0.0.0:1\"\ndatabase = \"sqlite://{d}/r.db\"\nsecret_key_file = \"{d}/secret.key\"\nadmin_token_file = \"{d}/admin.token\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    api_fails_with_one_line(
        &["--config".as_ref(), cfg.as_os_str()],
        "refusing plain HTTP",
    );
    assert!(!dir.path().join("secret.key").exists());
}

#[test]
fn api_check_validates_without_creating_anything() {
    // A fresh setup: OK, with notes about what the first start creates.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let cfg = dir.path().join("fresh.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:1\"\ndatabase = \"sqlite://{d}/db/r.db\"\nsecret_key_file = \"{d}/keys/secret.key\"\nadmin_token_file = \"{d}/keys/admin.token\"\n\
             [api.portal]\npublic_url = \"https://id.example.com/\"\n\
             [api.portal.webauthn]\norigin = \"https://id.example.com:8443\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = api(&["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "{}: OK (listen 127.0.0.1:1 plain HTTP, database SQLite",
            cfg.display()
        )),
        "{stdout}"
    );
    assert_eq!(stdout.matches(": note: ").count(), 4, "{stdout}");
    assert!(stdout.contains("secret.key does not exist"), "{stdout}");
    // An origin other than the page's: security keys would fail there.
    assert!(
        stdout.contains(
            "note: [api.portal.webauthn] origin https://id.example.com:8443 is not the origin of [api.portal] public_url (https://id.example.com)"
        ),
        "{stdout}"
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["fresh.toml"], "--check created nothing");

    // A registry in use: OK while it runs and after it stopped, with the
    // key checked against a stored secret.
    let mut reg = Registry::start();
    reg.add_user("kim");
    reg.enrol_totp("kim");
    let check = |reg: &Registry| {
        api(&[
            "--config".as_ref(),
            reg.config_path.as_os_str(),
            "--check".as_ref(),
        ])
    };
    let out = check(&reg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reg.stop();
    let db = reg.dir.path().join("registry.db");
    let before = std::fs::read(&db).unwrap();
    let out = check(&reg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("note:"), "{stdout}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database is not written"
    );

    // A key that does not match the database's key check value.
    let key = reg.dir.path().join("secret.key");
    let good = std::fs::read(&key).unwrap();
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let args = [
        "--config".as_ref(),
        reg.config_path.as_os_str(),
        "--check".as_ref(),
    ];
    let line = api_fails_with_one_line(&args, "registry.db");
    assert!(line.contains(KEY_MISMATCH), "{line}");
    // A key others can read.
    std::fs::write(&key, &good).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = api_fails_with_one_line(&args, "secret.key");
    assert!(line.contains("chmod 600"), "{line}");
    // No key at all, but a database set up with one.
    std::fs::remove_file(&key).unwrap();
    let line = api_fails_with_one_line(&args, "registry.db");
    assert!(line.contains(KEY_MISMATCH), "{line}");
    assert!(!key.exists(), "--check created no key");
    // A database URL that does not parse.
    let bad = reg.dir.path().join("bad-db.toml");
    let text = std::fs::read_to_string(&reg.config_path)
        .unwrap()
        .replace(&reg.database_url, "mysql://localhost/x");
    std::fs::write(&bad, text).unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    api_fails_with_one_line(
        &["--config".as_ref(), bad.as_os_str(), "--check".as_ref()],
        "mysql://localhost/x",
    );
}

#[test]
fn api_help_shows_check() {
    let out = Command::new(bin("twostep-api"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && help.contains("--check")
            && help.contains("twostep-api --config /etc/twostep/twostep.toml --check"),
        "{help}"
    );
}

#[test]
fn api_check_on_postgres_checks_the_key_against_stored_secrets() {
    let db = twostep_e2e::fresh_postgres_database();
    let mut reg = Registry::start_with(Some(&db), "");
    reg.add_user("kim");
    reg.enrol_totp("kim");
    reg.stop();
    let args = [
        "--config".as_ref(),
        reg.config_path.as_os_str(),
        "--check".as_ref(),
    ];
    let out = api(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(": OK (") && stdout.contains("PostgreSQL"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("note:"), "{stdout}");
    std::fs::write(reg.dir.path().join("secret.key"), [0x42u8; 32]).unwrap();
    let line = api_fails_with_one_line(&args, "postgres://");
    assert!(line.contains(KEY_MISMATCH), "{line}");
}

/// How `twostep-api` refuses a key file that is not the database's.
const KEY_MISMATCH: &str = "was set up with another secret key: copy secret_key_file from the first registry node to every node";

#[test]
fn api_check_loads_the_tls_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    twostep_e2e::write_secret(&key_path, &cert.key_pair.serialize_pem());
    let cfg = dir.path().join("tls.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[api]\nlisten = \"0.0.0.0:1\"\ndatabase = \"sqlite://{d}/r.db\"\nsecret_key_file = \"{d}/secret.key\"\nadmin_token_file = \"{d}/admin.token\"\ntls_cert_file = \"{d}/cert.pem\"\ntls_key_file = \"{d}/key.pem\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let args = ["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()];
    let out = api(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK (listen 0.0.0.0:1 HTTPS"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A certificate file that holds no certificate.
    std::fs::write(&cert_path, "not a certificate\n").unwrap();
    api_fails_with_one_line(&args, "cert.pem");
    // A key others can read.
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    api_fails_with_one_line(&args, "key.pem");
}

/// A self-signed certificate for 127.0.0.1 valid from `from` to `until`
/// (`YYYY-MM-DD`), and its key, PEM.
fn cert_valid(from: &str, until: &str) -> (String, String) {
    let ymd = |d: &str| {
        let p: Vec<i32> = d.split('-').map(|x| x.parse().unwrap()).collect();
        rcgen::date_time_ymd(p[0], p[1] as u8, p[2] as u8)
    };
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    params.not_before = ymd(from);
    params.not_after = ymd(until);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// `date -u -d OFFSET +%F`: a date relative to today.
fn date_in(offset: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", offset, "+%F"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn api_check_fails_on_an_expired_or_not_yet_valid_certificate_and_warns_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    let cfg = dir.path().join("tls.toml");
    let port = free_tcp_port();
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{d}/r.db\"\nsecret_key_file = \"{d}/secret.key\"\nadmin_token_file = \"{d}/admin.token\"\ntls_cert_file = \"{d}/cert.pem\"\ntls_key_file = \"{d}/key.pem\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let use_cert = |(cert, key): (String, String)| {
        std::fs::write(&cert_path, cert).unwrap();
        let _ = std::fs::remove_file(&key_path);
        twostep_e2e::write_secret(&key_path, &key);
    };
    let args = ["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()];

    use_cert(cert_valid("2020-01-01", "2021-01-01"));
    let line = api_fails_with_one_line(&args, "cert.pem");
    assert!(
        line.contains("expired on") && line.contains("2021"),
        "{line}"
    );

    use_cert(cert_valid("2090-01-01", "2091-01-01"));
    let line = api_fails_with_one_line(&args, "cert.pem");
    assert!(
        line.contains("not valid before") && line.contains("2090"),
        "{line}"
    );

    use_cert(cert_valid("2020-01-01", &date_in("+7 days")));
    let out = api(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let note = stdout
        .lines()
        .find(|l| l.contains("note: TLS certificate"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        note.contains("expires on") && note.contains("renew it"),
        "{note}"
    );

    use_cert(cert_valid("2020-01-01", &date_in("+60 days")));
    let out = api(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("TLS certificate"),
        "{stdout}"
    );

    // At startup an expired certificate is logged as an error; the
    // registry still starts (documented in README).
    use_cert(cert_valid("2020-01-01", "2021-01-01"));
    let log = dir.path().join("api.log");
    let child = Command::new(bin("twostep-api"))
        .arg("--config")
        .arg(&cfg)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("listening") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    twostep_e2e::wait_bounded(child, std::time::Duration::from_secs(10));
    let line = text
        .lines()
        .find(|l| l.contains("expired on"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("ERROR") && line.contains("cert.pem"),
        "{line}"
    );
}

#[test]
fn readme_tells_how_to_check_a_packaged_install_and_share_the_key() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = |title: &str| -> String {
        let start = readme.find(title).unwrap_or_else(|| panic!("no {title}"));
        let rest = &readme[start + title.len()..];
        let end = rest.find("\n## ").unwrap_or(rest.len());
        // Words as one line: prose wraps anywhere.
        rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let check = "runuser -u twostep -- twostep-api --config /etc/twostep/twostep.toml --check";
    for title in ["## The registry and the admin CLI", "## Debian packages"] {
        let text = section(title);
        assert!(text.contains(check), "{title}: no {check:?}");
        assert!(
            text.contains("secret.key") && text.contains("0600"),
            "{title}: how to copy the key"
        );
    }
    // The error the README quotes is the one twostep-api prints.
    assert!(section("## The registry and the admin CLI").contains(KEY_MISMATCH));
}

/// A gateway's token file refused by `--check` (and at start) is named by
/// its key and placed at its line, missing or with a loose mode.
#[test]
fn api_check_names_the_key_of_a_refused_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let token = dir.path().join("sms.token");
    let cfg = dir.path().join("wm.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{d}/r.db\"\nsecret_key_file = \"{d}/secret.key\"\nadmin_token_file = \"{d}/admin.token\"\n\
             [api.sms]\nurl = \"https://sms.example.com/send\"\nheaders = {{ Authorization = \"Basic {{{{token}}}}\" }}\ntoken_file = {token:?}\n",
            port = free_tcp_port()
        ),
    )
    .unwrap();
    let check = ["--config".as_ref(), cfg.as_os_str(), "--check".as_ref()];
    let line = api_fails_with_one_line(&check, "[api.sms] token_file: ");
    assert!(
        line.contains(&format!(
            "wm.toml:10:1: [api.sms] token_file: {}: No such file",
            token.display()
        )),
        "{line}"
    );
    twostep_e2e::write_secret(&token, "QUMxMjM6c2VjcmV0\n");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = api_fails_with_one_line(&check, "[api.sms] token_file: ");
    assert!(
        line.ends_with(&format!(
            "wm.toml:10:1: [api.sms] token_file: {}: mode 0644 gives access to group or others (fix: chmod 600 {})",
            token.display(),
            token.display()
        )),
        "{line}"
    );
}
