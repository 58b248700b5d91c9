use super::*;
use std::os::unix::fs::PermissionsExt;

const FULL: &str = r#"
version = 1

[api]
listen = "127.0.0.1:8443"
database = "sqlite:///tmp/x.db"
secret_key_file = "/tmp/k"
admin_token_file = "/tmp/t"

[api.lockout]
max_failures = 3

[registry]
url = "http://127.0.0.1:8443"
api_key_file = "/tmp/host.key"

[pam]
exempt_networks = ["10.0.0.0/8", "192.0.2.7/32"]
unenrolled = "ignore"

[radius]
listen = "127.0.0.1:1812"
state_key_file = "/tmp/s"

[[radius.client]]
name = "vpn"
address = "127.0.0.1/32"
secret_file = "/tmp/c"
mode = "append"
primary = "corp"

[[radius.upstream]]
name = "corp"
address = "127.0.0.1:1645"
secret_file = "/tmp/u"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/twostep/twostep.toml"))
}

#[test]
fn full_example_parses_with_defaults() {
    let c = parse(FULL).unwrap();
    let api = c.api().unwrap();
    assert_eq!(api.lockout.max_failures, 3);
    assert_eq!(api.lockout.window_seconds, 600);
    assert_eq!(api.lockout.lock_seconds, 300);
    assert_eq!(api.lockout.max_replays, 20);
    assert_eq!(api.lockout.replay_window_seconds, 600);
    assert_eq!(api.totp.skew_steps, 1);
    assert!(api.portal.enabled);
    assert_eq!(api.portal.session_lifetime, 28_800);
    assert_eq!(api.portal.idle_timeout, 1_800);
    assert_eq!(api.portal.public_url, None);
    assert_eq!(c.pam.max_tries, 3);
    assert_eq!(c.pam.unenrolled, UnenrolledPolicy::Ignore);
    assert_eq!(c.pam.fail_mode, FailMode::Closed);
    assert_eq!(c.pam.exempt_networks.len(), 2);
    let r = c.radius().unwrap();
    assert_eq!(r.clients[0].mode, RadiusMode::Append);
    assert!(r.clients[0].require_message_authenticator);
    assert_eq!(r.upstreams[0].retries, 2);
    assert!(r.upstreams[0].require_message_authenticator);
    let legacy = FULL.replace(
        "secret_file = \"/tmp/u\"",
        "secret_file = \"/tmp/u\"\nrequire_message_authenticator = false",
    );
    let c = parse(&legacy).unwrap();
    assert!(!c.radius().unwrap().upstreams[0].require_message_authenticator);
}

#[test]
fn packaged_example_is_valid() {
    let text = include_str!("../../packaging/twostep.toml");
    parse(text).unwrap();
}

#[test]
fn unknown_key_names_line_and_column() {
    let text = "version = 1\n[pam]\nmax_trys = 3\n";
    let e = parse(text).unwrap_err().to_string();
    assert!(e.starts_with("/etc/twostep/twostep.toml:3:1: "), "got {e}");
    assert!(e.contains("max_trys"), "got {e}");
}

#[test]
fn wrong_type_and_bad_cidr_are_placed() {
    let e = parse("version = 1\n[pam]\nmax_tries = \"three\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":3:13: "), "got {e}");
    let e = parse("version = 1\n[pam]\nexempt_networks = [\"10.0.0.0/33\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":3:"), "got {e}");
}

#[test]
fn a_client_address_is_one_host_or_a_network() {
    let with = |address: &str| {
        FULL.replace(
            "address = \"127.0.0.1/32\"",
            &format!("address = \"{address}\""),
        )
    };
    let client =
        |address: &str| parse(&with(address)).map(|c| c.radius().unwrap().clients[0].address);
    assert_eq!(
        client("192.0.2.10").unwrap(),
        "192.0.2.10/32".parse().unwrap()
    );
    assert_eq!(
        client("2001:db8::1").unwrap(),
        "2001:db8::1/128".parse().unwrap()
    );
    assert_eq!(
        client("192.0.2.0/24").unwrap(),
        "192.0.2.0/24".parse().unwrap()
    );
    // As a dual-stack socket shows an IPv4 peer: the IPv4 address.
    assert_eq!(
        client("::ffff:192.0.2.10").unwrap(),
        "192.0.2.10/32".parse().unwrap()
    );
    assert_eq!(
        client("::ffff:192.0.2.0/120").unwrap(),
        "192.0.2.0/24".parse().unwrap()
    );
    let e = client("192.0.2.10/24").unwrap_err().to_string();
    assert!(
        e.contains(
            "has host bits set: write 192.0.2.0/24 for the network, or 192.0.2.10 for one host"
        ),
        "got {e}"
    );
    let e = client("192.0.2.300").unwrap_err().to_string();
    assert!(
        e.contains(":27:11: \"192.0.2.300\" is not an IP address (192.0.2.10) or a network"),
        "got {e}"
    );
}

#[test]
fn cross_key_rules_are_placed() {
    let e = parse("version = 2\n").unwrap_err().to_string();
    assert!(e.contains(":1:1: unsupported config version 2"), "got {e}");
    let e = parse("[pam]\nmax_tries = 3\n").unwrap_err().to_string();
    assert!(
        e.contains(":1:1: no `version`: the file starts with `version = 1`"),
        "got {e}"
    );
    let e = parse("version = 1\n\n[pam]\nmax_tries = 0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":4:1: max_tries must be at least 1"), "got {e}");
    let bad_primary = FULL.replace("primary = \"corp\"", "primary = \"nope\"");
    let e = parse(&bad_primary).unwrap_err().to_string();
    assert!(e.contains("names no [[radius.upstream]]"), "got {e}");
}

#[test]
fn missing_table_is_named() {
    let c = parse("version = 1\n").unwrap();
    assert_eq!(
        c.radius().unwrap_err().to_string(),
        "the configuration has no [radius] table"
    );
}

#[test]
fn secret_file_modes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("secret");
    std::fs::write(&p, "s3cret\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = read_secret_file(&p).unwrap();
    assert_eq!(s.expose(), b"s3cret");
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");

    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = read_secret_file(&p).unwrap_err().to_string();
    assert!(e.contains("mode 0640"), "got {e}");
    assert!(e.contains("chmod 600"), "got {e}");

    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o604)).unwrap();
    assert!(read_secret_file(&p).is_err());

    std::fs::write(&p, "\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(read_secret_file(&p)
        .unwrap_err()
        .to_string()
        .contains("empty"));

    let e = read_secret_file(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
}

#[test]
fn io_error_is_printed_once() {
    let e = Config::load(Path::new("/nonexistent/twostep.toml")).unwrap_err();
    let shown = e.to_string();
    assert_eq!(
        shown,
        "/nonexistent/twostep.toml: No such file or directory (os error 2)"
    );
    // The OS error is in the message only, so a chain printer shows it once.
    assert!(std::error::Error::source(&e).is_none());
}

#[test]
fn config_file_must_be_changeable_only_by_root_or_us() {
    use std::os::unix::fs::chown;
    let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    set(&dir, 0o755).unwrap();
    let p = dir.join("twostep.toml");
    std::fs::write(&p, "version = 1\n").unwrap();
    set(&p, 0o644).unwrap();
    Config::load(&p).unwrap();
    check_config_file(&p).unwrap();

    // Group- or world-writable file.
    for mode in [0o666, 0o664, 0o646] {
        set(&p, mode).unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(matches!(e, ConfigError::Unsafe { .. }), "{e}");
        let e = e.to_string();
        assert!(e.starts_with(&format!("{}: ", p.display())), "{e}");
        assert!(e.contains(&format!("mode {mode:04o}")), "{e}");
        assert!(
            e.contains(&format!("fix: chmod go-w {}", p.display())),
            "{e}"
        );
    }
    set(&p, 0o644).unwrap();

    // A world-writable directory above it, with and without the sticky bit.
    set(&dir, 0o777).unwrap();
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(
        e.contains(&format!("directory {} has mode 0777", dir.display()))
            && e.contains(&format!("fix: chmod go-w {}", dir.display())),
        "{e}"
    );
    set(&dir, 0o1777).unwrap();
    Config::load(&p).unwrap();
    set(&dir, 0o755).unwrap();

    // A symlink is judged by what it points to.
    let link = top.path().join("link.toml");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    set(&p, 0o666).unwrap();
    let e = Config::load(&link).unwrap_err().to_string();
    assert!(e.contains("mode 0666"), "{e}");
    set(&p, 0o644).unwrap();

    // Owners: only when run as root can the test give files away.
    if nix::unistd::geteuid().is_root() {
        chown(&p, Some(65534), None).unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("owned by uid 65534") && e.contains(&format!("chown root {}", p.display())),
            "{e}"
        );
        chown(&p, Some(0), None).unwrap();
        chown(&dir, Some(65534), None).unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "directory {} is owned by uid 65534",
                dir.display()
            )),
            "{e}"
        );
        chown(&dir, Some(0), None).unwrap();
        Config::load(&p).unwrap();
    }

    // Not a regular file.
    let e = Config::load(&dir).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn nonsense_api_values_are_refused() {
    let api = |extra: &str| {
        format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:1\"\ndatabase = \"sqlite:///var/lib/r.db\"\nsecret_key_file = \"/k\"\nadmin_token_file = \"/t\"\n{extra}"
        )
    };
    parse(&api("max_body_bytes = 1024\n")).unwrap();
    for (extra, want) in [
        (
            "max_body_bytes = 0\n",
            ":7:1: max_body_bytes must be at least 1024",
        ),
        (
            "max_body_bytes = 1023\n",
            ":7:1: max_body_bytes must be at least 1024",
        ),
        (
            "[api.lockout]\nlock_seconds = 0\n",
            ":8:1: lock_seconds must be at least 1",
        ),
        (
            "[api.lockout]\nwindow_seconds = 0\n",
            ":8:1: window_seconds must be at least 1",
        ),
        (
            "[api.lockout]\nmax_replays = 0\n",
            ":8:1: max_replays must be at least 1",
        ),
        (
            "[api.lockout]\nmax_failures = 2\nreplay_window_seconds = 0\n",
            ":9:1: replay_window_seconds must be at least 1",
        ),
        (
            "[api.portal]\nsession_lifetime = 59\n",
            ":8:1: session_lifetime must be between 60 and 604800 seconds",
        ),
        (
            "[api.portal]\nsession_lifetime = 600\nidle_timeout = 601\n",
            ":9:1: idle_timeout must be at least 60 seconds and at most session_lifetime",
        ),
        (
            "[api.portal]\npublic_url = \"registry.example.com\"\n",
            ":8:1: public_url must start with https:// or http://",
        ),
    ] {
        let e = parse(&api(extra)).unwrap_err().to_string();
        assert!(e.ends_with(want), "{extra:?}: got {e}");
    }
    for (url, ok) in [
        ("sqlite:///var/lib/twostep/r.db", true),
        ("sqlite:///var/lib/twostep/r.db?mode=rwc", true),
        ("sqlite::memory:", true),
        ("postgres://twostep@db/twostep", true),
        ("sqlite://tmp/cf/db/r.db", false),
        ("sqlite:r.db", false),
        ("sqlite://", false),
    ] {
        let text = api("").replace("sqlite:///var/lib/r.db", url);
        match parse(&text) {
            Ok(_) => assert!(ok, "{url} accepted"),
            Err(e) => {
                let e = e.to_string();
                assert!(!ok, "{url}: {e}");
                assert!(
                    e.contains(":4:1: database")
                        && e.contains("relative path")
                        && e.contains("sqlite:///absolute/path"),
                    "{url}: {e}"
                );
            }
        }
    }
}

#[test]
fn radius_delimiter_and_duplicate_names_are_refused() {
    let digit = FULL.replace("mode = \"append\"", "mode = \"append\"\ndelimiter = \"1\"");
    let e = parse(&digit).unwrap_err().to_string();
    assert!(
        e.contains(":30:1: client \"vpn\": delimiter \"1\" contains a digit"),
        "got {e}"
    );
    let ok = FULL.replace("mode = \"append\"", "mode = \"append\"\ndelimiter = \"+\"");
    parse(&ok).unwrap();

    // A second client named "vpn" after the upstream: placed at its own line.
    let two_clients = format!(
        "{FULL}\n[[radius.client]]\nname = 'vpn'\naddress = \"127.0.0.2/32\"\nsecret_file = \"/tmp/c\"\n"
    );
    let e = parse(&two_clients).unwrap_err().to_string();
    assert!(
        e.ends_with(":38:1: [[radius.client]] name \"vpn\" is used twice"),
        "got {e}"
    );
    // An upstream may share a client's name; two upstreams may not.
    let shared = format!(
        "{FULL}\n[[radius.upstream]]\nname = \"vpn\"\naddress = \"127.0.0.1:1646\"\nsecret_file = \"/tmp/u\"\n"
    );
    parse(&shared).unwrap();
    let two_upstreams = shared.replace(
        "name = \"vpn\"\naddress = \"127.0.0.1:1646\"",
        "name = \"corp\"\naddress = \"127.0.0.1:1646\"",
    );
    let e = parse(&two_upstreams).unwrap_err().to_string();
    assert!(
        e.ends_with(":38:1: [[radius.upstream]] name \"corp\" is used twice"),
        "got {e}"
    );
}

#[test]
fn pam_push_values() {
    assert_eq!(parse("version = 1\n").unwrap().pam.push, PamPush::Prompt);
    for (word, value) in [
        ("prompt", PamPush::Prompt),
        ("auto", PamPush::Auto),
        ("off", PamPush::Off),
    ] {
        let c = parse(&format!("version = 1\n[pam]\npush = \"{word}\"\n")).unwrap();
        assert_eq!(c.pam.push, value, "{word}");
    }
    let e = parse("version = 1\n[pam]\npush = \"yes\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":3:8: "), "got {e}");
    assert!(e.contains("unknown variant `yes`"), "got {e}");
}

#[test]
fn radsec_table_defaults_and_unknown_keys() {
    let base = "version = 1\n[radius]\nstate_key_file = \"/k\"\n[radius.radsec]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\nca_file = \"/ca.pem\"\n";
    let c = parse(base).unwrap();
    let rs = c.radius.unwrap().radsec.unwrap();
    assert_eq!(rs.listen, "0.0.0.0:2083".parse().unwrap());
    assert_eq!(rs.ca_file, std::path::Path::new("/ca.pem"));
    let e = parse(&format!("{base}ca_fil = \"/x\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/etc/twostep/twostep.toml:8:1: "), "got {e}");
    assert!(e.contains("ca_fil"), "got {e}");
    let e = parse(
        "version = 1\n[radius]\nstate_key_file = \"/k\"\n[radius.radsec]\ncert_file = \"/c.pem\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("key_file"), "got {e}");
}

#[test]
fn an_upstream_has_a_secret_file_or_radsec() {
    let head = "version = 1\n[radius]\nstate_key_file = \"/k\"\n[[radius.upstream]]\nname = \"corp\"\naddress = \"127.0.0.1:2083\"\n";
    let e = parse(head).unwrap_err().to_string();
    assert!(
        e.contains("upstream \"corp\": secret_file is required (or [radius.upstream.radsec]"),
        "got {e}"
    );
    let radsec =
        "[radius.upstream.radsec]\ncert_file = \"/c\"\nkey_file = \"/k\"\nca_file = \"/ca\"\n";
    let c = parse(&format!("{head}{radsec}")).unwrap();
    let u = &c.radius.unwrap().upstreams[0];
    assert!(u.secret_file.is_none());
    assert_eq!(u.radsec.as_ref().unwrap().server_name, None);
    let e = parse(&format!("{head}secret_file = \"/s\"\n{radsec}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":7:1: upstream \"corp\": secret_file is not used over RadSec"),
        "got {e}"
    );
    let e = parse(&format!("{head}{radsec}verify = false\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains(":11:1: ") && e.contains("verify"), "got {e}");
}

#[test]
fn metrics_tables_are_off_unless_given() {
    let c = parse(FULL).unwrap();
    assert!(c.api().unwrap().metrics.is_none());
    assert!(c.radius().unwrap().metrics.is_none());
    let text = FULL
        .replace(
            "[api.lockout]",
            "[api.metrics]\nlisten = \"127.0.0.1:9464\"\n\n[api.lockout]",
        )
        .replace(
            "[[radius.client]]",
            "[radius.metrics]\nlisten = \"[::1]:9465\"\n\n[[radius.client]]",
        );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.api().unwrap().metrics.as_ref().unwrap().listen,
        "127.0.0.1:9464".parse().unwrap()
    );
    assert_eq!(
        c.radius().unwrap().metrics.as_ref().unwrap().listen,
        "[::1]:9465".parse().unwrap()
    );
    // `listen` is required; unknown keys are placed.
    let e = parse(&FULL.replace("[api.lockout]", "[api.metrics]\n[api.lockout]"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("listen"), "got {e}");
    let e = parse(&FULL.replace(
        "[api.lockout]",
        "[api.metrics]\nlisten = \"127.0.0.1:9464\"\npath = \"/m\"\n[api.lockout]",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("/etc/twostep/twostep.toml:12:1: "), "got {e}");
    assert!(e.contains("path"), "got {e}");
    // The metrics need a port of their own.
    let api_listen = c.api().unwrap().listen;
    let e = parse(&FULL.replace(
        "[api.lockout]",
        &format!(
            "[api.metrics]\nlisten = \"0.0.0.0:{}\"\n[api.lockout]",
            api_listen.port()
        ),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("give the metrics a port of their own"),
        "got {e}"
    );
}

#[test]
fn smtp_table_defaults_rules_and_password_file() {
    assert!(parse(FULL).unwrap().api().unwrap().smtp.is_none());
    let with = |table: &str| FULL.replace("[api.lockout]", &format!("{table}\n[api.lockout]"));
    let c = parse(&with(
        "[api.smtp]\nhost = \"smtp.example.com\"\nfrom = \"twostep <no-reply@example.com>\"\n",
    ))
    .unwrap();
    let smtp = c.api().unwrap().smtp.clone().unwrap();
    assert_eq!(smtp.port, 587);
    assert!(smtp.starttls, "STARTTLS is required by default");
    assert_eq!(smtp.timeout, 10);
    assert_eq!(smtp.username, None);
    for (table, key) in [
        // An unknown key is named and placed.
        ("host = \"smtp.example.com\"\nfrom = \"a@example.com\"\ntls = \"none\"", "tls"),
        ("host = \"smtp.example.com\"\nfrom = \"not an address\"", "from"),
        ("host = \"smtp.example.com\"\nfrom = \"a@example.com\"\nusername = \"u\"", "username"),
        (
            "host = \"smtp.example.com\"\nfrom = \"a@example.com\"\nstarttls = false\nusername = \"u\"\npassword_file = \"/tmp/p\"",
            "starttls",
        ),
        ("host = \"smtp.example.com\"\nfrom = \"a@example.com\"\ntimeout = 0", "timeout"),
        ("from = \"a@example.com\"", "host"),
    ] {
        let e = parse(&with(&format!("[api.smtp]\n{table}\n")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/twostep/twostep.toml:"), "got {e}");
        assert!(e.contains(key), "{key}: got {e}");
    }
    // The password file is a secret file: refused when group-readable.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("smtp.password");
    std::fs::write(&pw, "hunter2-hunter2\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    let file = dir.path().join("twostep.toml");
    std::fs::write(
        &file,
        with(&format!(
            "[api.smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nusername = \"twostep\"\npassword_file = {:?}\n",
            pw.display().to_string()
        )),
    )
    .unwrap();
    let c = Config::parse(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
    let e = c.check_files(&file).unwrap_err().to_string();
    assert!(
        e.contains("mode 0640") && e.contains("chmod 600"),
        "got {e}"
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    c.check_files(&file).unwrap();
}

#[test]
fn webauthn_table_defaults_and_placed_errors() {
    use crate::webauthn::UserVerification;
    let c = parse(FULL).unwrap();
    let w = &c.api().unwrap().portal.webauthn;
    assert_eq!(w.user_verification, UserVerification::Preferred);
    assert_eq!(
        w.relying_party(None).unwrap(),
        None,
        "off without an origin"
    );
    let with = |table: &str| {
        FULL.replace(
            "[api.lockout]",
            &format!("[api.portal]\npublic_url = \"https://id.example.com:8443\"\n\n[api.portal.webauthn]\n{table}\n[api.lockout]"),
        )
    };
    let c = parse(&with("user_verification = \"required\"\n")).unwrap();
    let portal = &c.api().unwrap().portal;
    assert_eq!(
        portal.webauthn.user_verification,
        UserVerification::Required
    );
    let rp = portal
        .webauthn
        .relying_party(portal.public_url.as_deref())
        .unwrap()
        .unwrap();
    assert_eq!(
        (rp.id.as_str(), rp.origin.as_str()),
        ("id.example.com", "https://id.example.com:8443")
    );
    // A bad value, an unknown key, a bad origin: FILE:LINE:COL.
    let e = parse(&with("user_verification = \"sometimes\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/etc/twostep/twostep.toml:"), "got {e}");
    assert!(
        e.contains("sometimes") && e.contains("preferred"),
        "got {e}"
    );
    let line = with("user_verification = \"sometimes\"\n")
        .lines()
        .position(|l| l.starts_with("user_verification"))
        .unwrap()
        + 1;
    assert!(e.contains(&format!(":{line}:21: ")), "got {e}");
    let e = parse(&with("rpid = \"example.com\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rpid"), "got {e}");
    let e = parse(&with("origin = \"http://id.example.com\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("https://") && e.contains(":"), "got {e}");
    let e = parse(&with("rp_id = \"other.example.org\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("parent domain"), "got {e}");
    // Derived from an IP public_url: not an error, only off.
    let ip = FULL.replace(
        "[api.lockout]",
        "[api.portal]\npublic_url = \"http://127.0.0.1:8443\"\n\n[api.lockout]",
    );
    let c = parse(&ip).unwrap();
    let portal = &c.api().unwrap().portal;
    assert!(portal
        .webauthn
        .relying_party(portal.public_url.as_deref())
        .is_err());
}

#[test]
fn sms_and_voice_gateways_defaults_rules_and_token_file() {
    let api = parse(FULL).unwrap();
    assert!(api.api().unwrap().sms.is_none() && api.api().unwrap().voice.is_none());
    let with = |table: &str| FULL.replace("[api.lockout]", &format!("{table}\n[api.lockout]"));
    let c = parse(&with(
        "[api.sms]\nurl = \"https://sms.example.com/send\"\n[api.voice]\nurl = \"https://voice.example.com/call\"\ncontent_type = \"application/json\"\n",
    ))
    .unwrap();
    let sms = c.api().unwrap().sms.clone().unwrap();
    assert_eq!(sms.method, GatewayMethod::Post);
    assert_eq!(sms.timeout, 4, "under the hosts' 5 s registry timeout");
    assert_eq!(sms.body_template(), DEFAULT_FORM_BODY);
    assert_eq!(sms.message_template(false), DEFAULT_SMS_MESSAGE);
    let voice = c.api().unwrap().voice.clone().unwrap();
    assert!(voice.is_json());
    assert_eq!(voice.body_template(), DEFAULT_JSON_BODY);
    assert_eq!(voice.message_template(true), DEFAULT_VOICE_MESSAGE);
    for (table, key, words) in [
        ("url = \"x\"\nsender = \"me\"", "sender", "unknown field"),
        ("url = \"ftp://sms.example.com\"", "url", "https://"),
        ("url = \"https://sms.example.com\"\nmethod = \"PUT\"", "method", "POST"),
        ("url = \"https://sms.example.com\"\ntimeout = 0", "timeout", "between 1 and 30"),
        ("url = \"https://sms.example.com\"\ntimeout = 31", "timeout", "between 1 and 30"),
        ("url = \"https://sms.example.com\"\ncontent_type = \"text/plain\"", "content_type", "application/json"),
        ("url = \"https://sms.example.com\"\nbody = \"to={{phone}}\"", "body", "{{message}}"),
        ("url = \"https://sms.example.com\"\ncontent_type = \"application/json\"\nbody = \"{\\\"to\\\":{{phone}},\\\"m\\\":\\\"{{message}}\\\"\"", "body", "not JSON"),
        ("url = \"https://sms.example.com\"\nmessage = \"hello\"", "message", "{{code}}"),
        ("url = \"https://sms.example.com\"\nmethod = \"GET\"", "url", "{{message}}"),
        ("url = \"https://sms.example.com\"\nheaders = { Authorization = \"Bearer {{token}}\" }", "headers", "token_file"),
        ("url = \"https://sms.example.com\"\ntoken_file = \"/etc/twostep/sms.token\"", "token_file", "no header"),
        ("url = \"https://sms.example.com\"\nheaders = { \"Bad Name\" = \"x\" }", "headers", "header name"),
        ("url = \"https://sms.example.com\"\nmessage = \"Code {{code}} for {{username}}\"", "message", "{{username}} is not a placeholder here; {{code}} can be used"),
        ("url = \"https://sms.example.com\"\nheaders = { Authorization = \"Basic {{tokn}}\" }\ntoken_file = \"/etc/t\"", "headers", "{{tokn}} is not a placeholder here; {{token}} can be used"),
        ("url = \"https://sms.example.com\"\nbody = \"To={{phone}}&Body={{message}}&Id={{id}}\"", "body", "{{id}} is not a placeholder here"),
    ] {
        let e = parse(&with(&format!("[api.sms]\n{table}\n")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/twostep/twostep.toml:"), "got {e}");
        assert!(e.contains(words), "{key}: got {e}");
    }
    // Plain http:// to another host: a warning for --check, not an error.
    let c = parse(&with("[api.sms]\nurl = \"http://sms.example.com/send\"\n")).unwrap();
    let note = c
        .api()
        .unwrap()
        .sms
        .as_ref()
        .unwrap()
        .plain_http_note("sms");
    assert!(
        note.as_deref().is_some_and(
            |n| n.starts_with("[api.sms] url http://sms.example.com/send is plain http://")
        ),
        "{note:?}"
    );
    let c = parse(&with("[api.sms]\nurl = \"http://127.0.0.1:8099/send\"\n")).unwrap();
    assert_eq!(
        c.api()
            .unwrap()
            .sms
            .as_ref()
            .unwrap()
            .plain_http_note("sms"),
        None
    );
    // The error is placed inside [api.sms], not at [registry] url.
    let text = with("[api.sms]\nurl = \"ftp://x\"\n");
    let e = parse(&text).unwrap_err().to_string();
    let line = text.lines().position(|l| l == "url = \"ftp://x\"").unwrap() + 1;
    assert!(
        e.starts_with(&format!("/etc/twostep/twostep.toml:{line}:1:")),
        "got {e}"
    );
    // A GET with the placeholders in the query.
    let c = parse(&with(
        "[api.sms]\nurl = \"https://sms.example.com/send?to={{phone}}&text={{message}}\"\nmethod = \"GET\"\n",
    ))
    .unwrap();
    assert_eq!(
        c.api().unwrap().sms.as_ref().unwrap().method,
        GatewayMethod::Get
    );
    // The token file is a secret file: refused when group-readable.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("sms.token");
    std::fs::write(&token, "AC123:secret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
    let file = dir.path().join("twostep.toml");
    std::fs::write(
        &file,
        with(&format!(
            "[api.sms]\nurl = \"https://sms.example.com\"\nheaders = {{ Authorization = \"Basic {{{{token}}}}\" }}\ntoken_file = {:?}\n",
            token.display().to_string()
        )),
    )
    .unwrap();
    let c = Config::parse(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
    let e = c.check_files(&file).unwrap_err().to_string();
    assert!(e.contains("mode 0640"), "got {e}");
    // The error names the key and is placed at its line.
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("token_file ="))
        .unwrap()
        + 1;
    assert_eq!(
        e,
        format!(
            "{}:{line}:1: [api.sms] token_file: {}: mode 0640 gives access to group or others (fix: chmod 600 {})",
            file.display(),
            token.display(),
            token.display()
        )
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    c.check_files(&file).unwrap();
    // A missing file too.
    std::fs::remove_file(&token).unwrap();
    let e = c.check_files(&file).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:{line}:1: [api.sms] token_file: {}: No such file",
            file.display(),
            token.display()
        )),
        "got {e}"
    );
}
