//! twostep-radiusd against radclient (freeradius-utils) and a real
//! registry: each mode, right / wrong / replayed codes, Message-Authenticator
//! required (requests without it get no answer), legacy clients, Status-Server,
//! unenrolled users and the fail mode. Every request carries
//! `Message-Authenticator = 0x00`, so radclient computes it and drops any
//! reply whose Message-Authenticator or Response Authenticator is wrong: an
//! answer received proves both valid.

mod radius_support;

use radius_support::*;

const SECRET: &str = "nas-shared-secret-1";

fn otp_only_env() -> (Env, Radiusd) {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let body = client_toml("vpn", "127.0.0.1/32", &s, "otp-only", "");
    let d = env.radiusd("otp", &body);
    (env, d)
}

#[test]
fn otp_only_right_wrong_and_replayed_code() {
    let (env, d) = otp_only_env();
    let secret = env.enrolled_user("alice");
    let good = code(&secret);
    let r = auth(
        d.port,
        SECRET,
        "alice",
        &good,
        &[
            "NAS-Identifier = \"vpn-gw-1\"",
            "Calling-Station-Id = \"198.51.100.7\"",
        ],
    );
    r.expect("Access-Accept");
    assert_eq!(
        r.attrs.first().map(|(n, _)| n.as_str()),
        Some("Message-Authenticator"),
        "{}",
        r.output
    );

    let r = auth(d.port, SECRET, "alice", &good, &[]);
    r.expect("Access-Reject");
    assert_eq!(r.attr("Reply-Message"), Some(REPLAY_REPLY), "{}", r.output);

    let r = auth(d.port, SECRET, "alice", &wrong_code(&secret), &[]);
    r.expect("Access-Reject");
    assert_eq!(r.attr("Reply-Message"), Some("\"code refused\""));

    // The registry's audit names the RADIUS client, NAS and caller.
    let audit = twostep_e2e::block_on(env.reg.admin.audit(20)).unwrap();
    let accepted = audit
        .iter()
        .find(|e| e.action == "verify" && e.result.as_deref() == Some("accept"))
        .unwrap_or_else(|| panic!("no accepted verify in {audit:?}"));
    assert_eq!(accepted.host.as_deref(), Some("vpn-gw-1"), "{accepted:?}");
    assert_eq!(
        accepted.remote_addr.as_deref(),
        Some("198.51.100.7"),
        "{accepted:?}"
    );
    // Codes and passwords never reach the log.
    assert!(!d.log().contains(&good), "code in log:\n{}", d.log());
}

const REPLAY_REPLY: &str = "\"That code was used already. Wait for the next code in your app.\"";

/// 20 Access-Requests at once (20 radclient processes, so 20 source ports:
/// no retransmissions) with one valid code and the default lockout
/// (max_failures = 5): exactly one Access-Accept; 19 Access-Rejects saying
/// to wait for the next code, audited as `replay`; the user is not locked
/// and the next code works.
#[test]
fn twenty_parallel_requests_with_one_code_never_lock_the_user() {
    let (env, d) = otp_only_env();
    let secret = env.enrolled_user("alice");
    let good = code(&secret);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(20));
    let replies: Vec<RadReply> = (0..20)
        .map(|_| {
            let (b, good) = (barrier.clone(), good.clone());
            let port = d.port;
            std::thread::spawn(move || {
                b.wait();
                auth(port, SECRET, "alice", &good, &[])
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let codes: Vec<&str> = replies
        .iter()
        .map(|r| r.code.as_deref().unwrap_or("no answer"))
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "Access-Accept").count(),
        1,
        "{codes:?}"
    );
    let rejects: Vec<&RadReply> = replies
        .iter()
        .filter(|r| r.code.as_deref() == Some("Access-Reject"))
        .collect();
    assert_eq!(rejects.len(), 19, "{codes:?}");
    for r in &rejects {
        assert_eq!(r.attr("Reply-Message"), Some(REPLAY_REPLY), "{}", r.output);
    }
    let audit = twostep_e2e::block_on(env.reg.admin.audit(100)).unwrap();
    let verifies: Vec<_> = audit.iter().filter(|e| e.action == "verify").collect();
    assert_eq!(verifies.len(), 20, "{audit:?}");
    assert_eq!(
        verifies
            .iter()
            .filter(|e| e.result.as_deref() == Some("replay"))
            .count(),
        19,
        "{verifies:?}"
    );
    assert!(audit.iter().all(|e| e.action != "lockout"), "{audit:?}");
    let user = twostep_e2e::block_on(env.reg.admin.user("alice")).unwrap();
    assert_eq!(user.locked_until, None, "{user:?}");
    // The host's log line names the replay.
    assert!(
        d.log()
            .contains("Access-Reject: code used already (replay)"),
        "{}",
        d.log()
    );
    // The next code (one time step on, inside the skew window) works.
    let next = twostep_e2e::oathtool_code(&secret, twostep_e2e::now() + 30);
    auth(d.port, SECRET, "alice", &next, &[]).expect("Access-Accept");
}

#[test]
fn unknown_and_unenrolled_users_are_refused() {
    let (env, d) = otp_only_env();
    env.reg.add_user("bob");
    let r = auth(d.port, SECRET, "bob", "123456", &[]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"second factor not set up\"")
    );
    let r = auth(d.port, SECRET, "nobody", "123456", &[]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"second factor not set up\"")
    );
}

#[test]
fn wrong_secret_and_missing_message_authenticator_get_no_answer() {
    let (env, d) = otp_only_env();
    let secret = env.enrolled_user("carol");
    // Wrong shared secret: the Message-Authenticator does not verify.
    let r = radclient_with(
        d.port,
        "not-the-secret",
        "auth",
        &[
            "User-Name = \"carol\"".into(),
            format!("User-Password = \"{}\"", code(&secret)),
            "Message-Authenticator = 0x00".into(),
        ],
        1.0,
        1,
    );
    assert_eq!(r.code, None, "{}", r.output);
    // No Message-Authenticator on a client that requires it: dropped.
    let r = radclient_with(
        d.port,
        SECRET,
        "auth",
        &[
            "User-Name = \"carol\"".into(),
            format!("User-Password = \"{}\"", code(&secret)),
        ],
        1.0,
        1,
    );
    assert_eq!(r.code, None, "{}", r.output);
    assert!(r.output.contains("No reply"), "{}", r.output);
    assert!(
        d.log().contains("without Message-Authenticator"),
        "{}",
        d.log()
    );
    // The code was never tried: it still works.
    auth(d.port, SECRET, "carol", &code(&secret), &[]).expect("Access-Accept");
}

#[test]
fn legacy_client_only_when_configured() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let body = client_toml(
        "old-nas",
        "127.0.0.0/8",
        &s,
        "otp-only",
        "require_message_authenticator = false",
    );
    let d = env.radiusd("legacy", &body);
    let secret = env.enrolled_user("dave");
    let r = radclient_with(
        d.port,
        SECRET,
        "auth",
        &[
            "User-Name = \"dave\"".into(),
            format!("User-Password = \"{}\"", code(&secret)),
        ],
        3.0,
        1,
    );
    r.expect("Access-Accept");
    // Our reply still carries Message-Authenticator, first.
    assert_eq!(
        r.attrs.first().map(|(n, _)| n.as_str()),
        Some("Message-Authenticator"),
        "{}",
        r.output
    );
    // Proxy-State without Message-Authenticator is dropped even for a legacy client.
    let r = radclient_with(
        d.port,
        SECRET,
        "auth",
        &[
            "User-Name = \"dave\"".into(),
            "User-Password = \"000000\"".into(),
            "Proxy-State = 0x01020304".into(),
        ],
        1.0,
        1,
    );
    assert_eq!(r.code, None, "{}", r.output);
}

#[test]
fn status_server_is_answered() {
    let (_env, d) = otp_only_env();
    let r = radclient_with(
        d.port,
        SECRET,
        "status",
        &["Message-Authenticator = 0x00".into()],
        3.0,
        1,
    );
    r.expect("Access-Accept");
}

#[test]
fn challenge_mode_without_primary() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let body = client_toml("vpn", "127.0.0.1/32", &s, "challenge", "");
    let d = env.radiusd("challenge", &body);
    let secret = env.enrolled_user("erin");
    env.enrolled_user("frank");
    let r = auth(d.port, SECRET, "erin", "any password", &[]);
    r.expect("Access-Challenge");
    assert!(
        r.attr("Reply-Message")
            .is_some_and(|m| m.contains("verification code")),
        "{}",
        r.output
    );
    assert_eq!(r.attr("Session-Timeout"), Some("120"), "{}", r.output);
    let state = r.state();
    // Another user cannot use erin's State.
    auth(
        d.port,
        SECRET,
        "frank",
        &code(&secret),
        &[&format!("State = {state}")],
    )
    .expect("Access-Reject");
    // A State that was never issued.
    auth(
        d.port,
        SECRET,
        "erin",
        &code(&secret),
        &["State = 0x0102030405060708"],
    )
    .expect("Access-Reject");
    // Wrong code, then the right one, both with erin's State.
    let r = auth(
        d.port,
        SECRET,
        "erin",
        &wrong_code(&secret),
        &[&format!("State = {state}")],
    );
    r.expect("Access-Reject");
    assert_eq!(r.attr("Reply-Message"), Some("\"code refused\""));
    auth(
        d.port,
        SECRET,
        "erin",
        &code(&secret),
        &[&format!("State = {state}")],
    )
    .expect("Access-Accept");
    // The State served its login: refused before the registry is asked.
    let again = format!("State = {state}");
    auth(d.port, SECRET, "erin", &code(&secret), &[&again]).expect("Access-Reject");
    assert!(d.log().contains("State already used"), "{}", d.log());
    // Unenrolled users are refused before any prompt.
    env.reg.add_user("gina");
    let r = auth(d.port, SECRET, "gina", "pw", &[]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"second factor not set up\"")
    );
}

#[test]
fn registry_down_fails_closed_by_default_and_open_when_configured() {
    let mut env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let secret = env.enrolled_user("hank");
    let closed = env.radiusd(
        "closed",
        &client_toml("vpn", "127.0.0.1/32", &s, "otp-only", ""),
    );
    let open = env.radiusd(
        "open",
        &format!(
            "fail_mode = \"open\"\n{}",
            client_toml("vpn", "127.0.0.1/32", &s, "otp-only", "")
        ),
    );
    env.reg.stop();
    let r = auth(closed.port, SECRET, "hank", &code(&secret), &[]);
    r.expect("Access-Reject");
    assert!(
        closed.log().contains("registry unreachable"),
        "{}",
        closed.log()
    );
    let r = auth(open.port, SECRET, "hank", &wrong_code(&secret), &[]);
    r.expect("Access-Accept");
    assert!(open.log().contains("fail_mode = open"), "{}", open.log());
}

/// Challenge mode: an unknown and a locked user are refused before the
/// Access-Challenge, and `twostep audit` shows both with the NAS and the
/// caller.
#[test]
fn logins_refused_before_the_challenge_are_audited() {
    let env = Env::with_api("[api.lockout]\nmax_failures = 1\n");
    let s = env.secret_file("nas.secret", SECRET);
    let body = client_toml("vpn", "127.0.0.1/32", &s, "challenge", "");
    let d = env.radiusd("challenge", &body);
    let secret = env.enrolled_user("gina");
    let ctx = [
        "NAS-Identifier = \"vpn-gw-1\"",
        "Calling-Station-Id = \"198.51.100.7\"",
    ];
    let r = auth(d.port, SECRET, "stranger", "pw", &ctx);
    r.expect("Access-Reject");
    // Lock gina (one wrong code), then her next login is refused at once.
    let r = auth(d.port, SECRET, "gina", "pw", &ctx);
    r.expect("Access-Challenge");
    let state = format!("State = {}", r.state());
    auth(d.port, SECRET, "gina", &wrong_code(&secret), &[&state]).expect("Access-Reject");
    let r = auth(d.port, SECRET, "gina", "pw", &ctx);
    r.expect("Access-Reject");
    assert_eq!(r.attr("Reply-Message"), Some("\"account locked\""));
    let out = std::process::Command::new(twostep_e2e::bin("twostep"))
        .arg("--config")
        .arg(&env.reg.config_path)
        .args(["audit", "--limit", "100"])
        .output()
        .expect("run twostep audit");
    assert!(out.status.success(), "{out:?}");
    let audit = String::from_utf8(out.stdout).unwrap();
    let lookups: Vec<&str> = audit.lines().filter(|l| l.contains(" lookup ")).collect();
    assert_eq!(lookups.len(), 2, "{audit}");
    for (line, user, result) in [
        (lookups[0], "stranger", "unknown_user"),
        (lookups[1], "gina", "locked"),
    ] {
        for want in [
            format!("user=\"{user}\""),
            format!("result=\"{result}\""),
            "host=\"vpn-gw-1\"".into(),
            "from=\"198.51.100.7\"".into(),
            "host:radius-1".into(),
        ] {
            assert!(line.contains(&want), "{want} in {line}\n{audit}");
        }
    }
}
