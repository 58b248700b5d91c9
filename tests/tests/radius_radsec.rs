//! RadSec (RADIUS over TLS, RFC 6614) against real peers: `radsecproxy` and
//! FreeRADIUS 3.2 as RadSec proxies in front of `twostep-radiusd`
//! (radclient → proxy over UDP → RadSec → twostep), and TLS clients
//! without a certificate from the configured CA refused at the handshake.
//! Certificates are made per test with `openssl`.

mod radius_support;

use radius_support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twostep_e2e::{free_tcp_port, free_udp_port, wait_bounded};

/// Secret between radclient and the proxy in front of twostep.
const NAS_SECRET: &str = "nas-secret-0123456789abcdef";

fn openssl(dir: &Path, args: &[&str]) {
    let out = wait_bounded(
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl (apt-get install openssl)"),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `NAME-ca.pem` (key `NAME-ca.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `NAME.pem` with key `NAME.key` (mode 0600) signed by CA
/// `ca`, for `usage` (`serverAuth` or `clientAuth`), name 127.0.0.1.
fn make_cert(dir: &Path, ca: &str, name: &str, usage: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
    )
    .expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join(format!("{name}.key")),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod key");
}

/// A registry, an enrolled user and `twostep-radiusd` with RadSec on a free
/// TCP port; certificates: CA `good` signing `server` and `client`, CA
/// `rogue` signing `rogue`.
struct Setup {
    env: Env,
    radiusd: Radiusd,
    radsec_port: u16,
    secret: String,
}

impl Setup {
    fn new() -> Setup {
        Self::with_mode("otp-only")
    }

    fn with_mode(mode: &str) -> Setup {
        let env = Env::new();
        let dir = env.dir.path();
        make_ca(dir, "good");
        make_ca(dir, "rogue");
        make_cert(dir, "good", "server", "serverAuth");
        make_cert(dir, "good", "client", "clientAuth");
        make_cert(dir, "rogue", "rogue", "clientAuth");
        let secret = env.enrolled_user("alice");
        let udp_secret = env.secret_file("udp.secret", "udp-secret-0123456789abcdef");
        let radsec_port = free_tcp_port();
        let body = format!(
            "{}[radius.radsec]\nlisten = \"127.0.0.1:{radsec_port}\"\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
            client_toml("proxy", "127.0.0.1/32", &udp_secret, mode, ""),
            path(dir, "server.pem"),
            path(dir, "server.key"),
            path(dir, "good-ca.pem"),
        );
        let radiusd = env.radiusd("radsec", &body);
        let log = radiusd.log();
        assert!(
            log.contains(&format!(
                "RadSec (RADIUS over TLS) listening on 127.0.0.1:{radsec_port}"
            )),
            "{log}"
        );
        Setup {
            env,
            radiusd,
            radsec_port,
            secret,
        }
    }

    fn file(&self, name: &str) -> String {
        path(self.env.dir.path(), name)
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// An otp-only login through the proxy on `port`: (code, result).
fn login(port: u16, code: &str) -> RadReply {
    let attrs = vec![
        "User-Name = \"alice\"".to_owned(),
        format!("User-Password = \"{code}\""),
        "Message-Authenticator = 0x00".to_owned(),
    ];
    radclient_with(port, NAS_SECRET, "auth", &attrs, 5.0, 2)
}

struct RadsecProxy {
    child: Child,
    log: PathBuf,
}

impl Drop for RadsecProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn radsecproxy(s: &Setup, udp_port: u16) -> RadsecProxy {
    let dir = s.env.dir.path();
    let conf = format!(
        "ListenUDP 127.0.0.1:{udp_port}\n\
         PidFile {dir}/radsecproxy.pid\n\
         tls default {{\n  CACertificateFile {ca}\n  CertificateFile {cert}\n  CertificateKeyFile {key}\n}}\n\
         client nas {{\n  host 127.0.0.1\n  type udp\n  secret {NAS_SECRET}\n}}\n\
         server twostep {{\n  host 127.0.0.1\n  port {port}\n  type tls\n  tls default\n  CertificateNameCheck off\n}}\n\
         realm * {{\n  server twostep\n}}\n",
        dir = dir.display(),
        ca = s.file("good-ca.pem"),
        cert = s.file("client.pem"),
        key = s.file("client.key"),
        port = s.radsec_port,
    );
    let conf_path = dir.join("radsecproxy.conf");
    std::fs::write(&conf_path, conf).expect("write radsecproxy.conf");
    let log = dir.join("radsecproxy.log");
    let out = std::fs::File::create(&log).expect("log");
    let child = Command::new("radsecproxy")
        .args(["-f", "-d", "5", "-c"])
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("run radsecproxy (apt-get install radsecproxy)");
    let mut p = RadsecProxy { child, log };
    // Ready once it has bound the UDP port.
    let deadline = Instant::now() + READY_TIMEOUT;
    while std::net::UdpSocket::bind(("127.0.0.1", udp_port)).is_ok() {
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!(
                "radsecproxy exited ({st}): {}",
                std::fs::read_to_string(&p.log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "radsecproxy not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

#[test]
fn radsecproxy_carries_logins_over_radsec() {
    let s = Setup::new();
    let udp_port = free_udp_port();
    let proxy = radsecproxy(&s, udp_port);
    let r = login(udp_port, &code(&s.secret));
    let log = || {
        format!(
            "twostep:\n{}\nradsecproxy:\n{}",
            s.radiusd.log(),
            std::fs::read_to_string(&proxy.log).unwrap_or_default()
        )
    };
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Accept"),
        "{}\n{}",
        r.output,
        log()
    );
    let r = login(udp_port, &wrong_code(&s.secret));
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Reject"),
        "{}\n{}",
        r.output,
        log()
    );
    assert_verdicts_by_twostep(&s.radiusd);
}

/// Both answers are twostep's verdicts (not the proxy's own), over RadSec.
fn assert_verdicts_by_twostep(r: &Radiusd) {
    let log = r.log();
    assert!(log.contains("RadSec connection accepted"), "{log}");
    let verdict = |code: &str| {
        log.lines()
            .any(|l| l.contains(code) && l.contains("client=proxy") && l.contains("user=\"alice\""))
    };
    assert!(
        verdict("Access-Accept") && verdict("Access-Reject"),
        "{log}"
    );
}

#[test]
fn challenge_mode_over_radsec() {
    // The same modes as over UDP: the State of an Access-Challenge comes
    // back through radsecproxy and completes the login once.
    let s = Setup::with_mode("challenge");
    let udp_port = free_udp_port();
    let proxy = radsecproxy(&s, udp_port);
    let log = || {
        format!(
            "twostep:\n{}\nradsecproxy:\n{}",
            s.radiusd.log(),
            std::fs::read_to_string(&proxy.log).unwrap_or_default()
        )
    };
    let ask = |password: &str, extra: &[String]| {
        let mut attrs = vec![
            "User-Name = \"alice\"".to_owned(),
            format!("User-Password = \"{password}\""),
            "Message-Authenticator = 0x00".to_owned(),
        ];
        attrs.extend_from_slice(extra);
        radclient_with(udp_port, NAS_SECRET, "auth", &attrs, 5.0, 2)
    };
    let r = ask("any password", &[]);
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Challenge"),
        "{}\n{}",
        r.output,
        log()
    );
    let state = r.state();
    let answer = [format!("State = {state}")];
    let r = ask(&code(&s.secret), &answer);
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Accept"),
        "{}\n{}",
        r.output,
        log()
    );
    let r = ask(&code(&s.secret), &answer);
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Reject"),
        "State used once:\n{}\n{}",
        r.output,
        log()
    );
    assert!(s.radiusd.log().contains("State already used"), "{}", log());
}

#[test]
fn freeradius_proxies_to_twostep_over_radsec() {
    let s = Setup::new();
    let tls = format!(
        "proto = tcp\n  tls {{\n    private_key_file = {}\n    certificate_file = {}\n    ca_file = {}\n    fragment_size = 8192\n    check_crl = no\n  }}",
        s.file("client.key"),
        s.file("client.pem"),
        s.file("good-ca.pem"),
    );
    let fr = FreeRadius::proxy_with(NAS_SECRET, s.radsec_port, "radsec", &tls);
    let log = || format!("twostep:\n{}\nfreeradius:\n{}", s.radiusd.log(), fr.log());
    let r = login(fr.port, &code(&s.secret));
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Accept"),
        "{}\n{}",
        r.output,
        log()
    );
    let r = login(fr.port, &wrong_code(&s.secret));
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Reject"),
        "{}\n{}",
        r.output,
        log()
    );
    assert_verdicts_by_twostep(&s.radiusd);
}

/// `openssl s_client` to the RadSec port with `cert_args`, sending
/// `input`; its output.
fn s_client(s: &Setup, cert_args: &[String], input: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", s.radsec_port))
        .args(["-CAfile", &s.file("good-ca.pem"), "-ign_eof"])
        .args(cert_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input);
    }
    let out = wait_bounded(child, Duration::from_secs(20));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_for_log(r: &Radiusd, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = r.log();
        if log.contains(what) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn clients_without_a_certificate_from_the_ca_are_refused() {
    let s = Setup::new();
    let rogue = [
        "-cert".to_owned(),
        s.file("rogue.pem"),
        "-key".to_owned(),
        s.file("rogue.key"),
    ];
    let out = s_client(&s, &rogue, b"");
    let log = wait_for_log(&s.radiusd, "RadSec connection refused");
    let line = log
        .lines()
        .find(|l| l.contains("RadSec connection refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}\ns_client:\n{out}"));
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(
        line.contains("client \"proxy\": TLS handshake failed"),
        "{line}"
    );
    assert!(line.contains("UnknownIssuer"), "{line}");
    assert!(
        out.contains("alert"),
        "s_client sees the server's alert:\n{out}"
    );
    assert!(!log.contains("RadSec connection accepted"), "{log}");
}

#[test]
fn clients_without_any_certificate_are_refused() {
    let s = Setup::new();
    let out = s_client(&s, &[], b"");
    let log = wait_for_log(&s.radiusd, "RadSec connection refused");
    let line = log
        .lines()
        .find(|l| l.contains("RadSec connection refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}\ns_client:\n{out}"));
    assert!(line.contains("TLS handshake failed"), "{line}");
    assert!(out.contains("certificate required"), "s_client:\n{out}");
    assert!(!log.contains("RadSec connection accepted"), "{log}");
}

#[test]
fn a_malformed_length_closes_the_connection_with_one_line() {
    let s = Setup::new();
    let good = [
        "-cert".to_owned(),
        s.file("client.pem"),
        "-key".to_owned(),
        s.file("client.key"),
    ];
    // An Access-Request header announcing 5000 octets.
    let _ = s_client(&s, &good, &[1, 7, 0x13, 0x88]);
    let log = wait_for_log(&s.radiusd, "RadSec connection closed: ");
    assert!(log.contains("RadSec connection accepted"), "{log}");
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("RadSec connection closed: "))
        .collect();
    assert_eq!(closed.len(), 1, "{log}");
    assert!(
        closed[0].contains("malformed packet: Length 5000 outside 20..=4096"),
        "{}",
        closed[0]
    );
}

#[test]
fn passwords_are_checked_by_an_upstream_over_radsec() {
    // twostep-radiusd (append mode) → RadSec → FreeRADIUS checking the
    // password; certificates: `good` signs both sides.
    let env = Env::new();
    let dir = env.dir.path();
    make_ca(dir, "good");
    make_cert(dir, "good", "server", "serverAuth");
    make_cert(dir, "good", "client", "clientAuth");
    let secret = env.enrolled_user("alice");
    let upstream_port = free_tcp_port();
    let listen = format!(
        "thread pool {{\n  start_servers = 2\n  max_servers = 4\n  min_spare_servers = 1\n  max_spare_servers = 4\n  max_requests_per_server = 0\n}}\nlisten {{\n  type = auth\n  ipaddr = 127.0.0.1\n  port = {upstream_port}\n  proto = tcp\n  virtual_server = default\n  clients = radsec\n  tls {{\n    private_key_file = {}\n    certificate_file = {}\n    ca_file = {}\n    fragment_size = 8192\n    require_client_cert = yes\n    check_crl = no\n  }}\n}}\nclients radsec {{\n  client twostep {{\n    ipaddr = 127.0.0.1\n    proto = tls\n    secret = radsec\n  }}\n}}\n",
        path(dir, "server.key"),
        path(dir, "server.pem"),
        path(dir, "good-ca.pem"),
    );
    let fr = FreeRadius::upstream_with(
        "unused-udp-secret-0123456789",
        "alice Cleartext-Password := \"primary-pw\"\n\tFilter-Id = \"vpn-users\"\n",
        &listen,
    );
    let nas = env.secret_file("nas.secret", NAS_SECRET);
    let body = format!(
        "{}[[radius.upstream]]\nname = \"corp\"\naddress = \"127.0.0.1:{upstream_port}\"\n[radius.upstream.radsec]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
        client_toml("nas", "127.0.0.1/32", &nas, "append", "primary = \"corp\""),
        path(dir, "client.pem"),
        path(dir, "client.key"),
        path(dir, "good-ca.pem"),
    );
    let d = env.radiusd("upstream-radsec", &body);
    let log = || format!("twostep:\n{}\nfreeradius:\n{}", d.log(), fr.log());
    let r = auth(
        d.port,
        NAS_SECRET,
        "alice",
        &format!("primary-pw,{}", code(&secret)),
        &[],
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Accept"),
        "{}\n{}",
        r.output,
        log()
    );
    assert_eq!(r.attr("Filter-Id"), Some("\"vpn-users\""), "{}", r.output);
    let r = auth(
        d.port,
        NAS_SECRET,
        "alice",
        &format!("wrong-pw,{}", code(&secret)),
        &[],
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Reject"),
        "{}\n{}",
        r.output,
        log()
    );
    assert!(
        fr.log().contains("proto tcp") || fr.log().contains("TLS"),
        "{}",
        log()
    );
}

#[test]
fn check_and_doctor_load_the_radsec_files_and_refuse_a_readable_key() {
    let env = Env::new();
    let dir = env.dir.path();
    make_ca(dir, "good");
    make_cert(dir, "good", "server", "serverAuth");
    let udp = env.secret_file("udp.secret", "udp-secret-0123456789abcdef");
    let port = free_tcp_port();
    let body = format!(
        "{}[radius.radsec]\nlisten = \"127.0.0.1:{port}\"\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
        client_toml("proxy", "127.0.0.1/32", &udp, "otp-only", ""),
        path(dir, "server.pem"),
        path(dir, "server.key"),
        path(dir, "good-ca.pem"),
    );
    let cfg = env.config("check", free_udp_port(), &body);
    let run = |cmd: &str, args: &[&str]| {
        let out = Command::new(twostep_e2e::bin(cmd))
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .args(if cmd == "twostep" {
                &["--no-pam", "--no-sshd"][..]
            } else {
                &["--check"][..]
            })
            .output()
            .expect("run");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run("twostep-radiusd", &[]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!(", RadSec 127.0.0.1:{port}")), "{out}");
    let (_, out) = run("twostep", &["doctor"]);
    let line = out
        .lines()
        .find(|l| l.contains("RadSec on"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with("ok") && line.contains("server.pem"),
        "{line}"
    );

    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, out) = run("twostep-radiusd", &[]);
    assert!(!ok, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("[radius.radsec] key_file") && out.contains("server.key"),
        "{out}"
    );
    let (ok, out) = run("twostep", &["doctor"]);
    assert!(!ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("[radius.radsec] key_file")),
        "{out}"
    );
}
