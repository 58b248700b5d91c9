//! Sealed challenge State across processes: two twostep-radiusd sharing a
//! State key file finish each other's challenges; a server with another key,
//! or the same key but another client name, refuses the State.

mod radius_support;

use radius_support::*;
use twostep_e2e::{free_udp_port, write_secret};

const SECRET: &str = "nas-shared-secret-1";

#[test]
fn two_servers_share_challenges() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let client = client_toml("vpn", "127.0.0.1/32", &s, "challenge", "");
    let a = env.radiusd("a", &client);
    let b = env.radiusd("b", &client);
    let other_key = env.dir.path().join("other.key");
    write_secret(&other_key, &format!("{}\n", hex(&random_bytes(32))));
    let port = free_udp_port();
    let c_cfg = env.config_with_key("c", port, &other_key, &client);
    let c = Radiusd::start(&c_cfg, port, &env.dir.path().join("c.log"));
    let renamed = env.radiusd(
        "d",
        &client_toml("vpn-renamed", "127.0.0.1/32", &s, "challenge", ""),
    );

    let secret = env.enrolled_user("alice");
    let r = auth(a.port, SECRET, "alice", "pw", &[]);
    r.expect("Access-Challenge");
    let state = format!("State = {}", r.state());
    // Another key, another client name: refused.
    let r = auth(c.port, SECRET, "alice", &code(&secret), &[&state]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"challenge expired, start again\"")
    );
    auth(renamed.port, SECRET, "alice", &code(&secret), &[&state]).expect("Access-Reject");
    // The other server of the pool finishes it.
    auth(b.port, SECRET, "alice", &code(&secret), &[&state]).expect("Access-Accept");

    // And the other way round.
    let secret2 = env.enrolled_user("bob");
    let r = auth(b.port, SECRET, "bob", "pw", &[]);
    r.expect("Access-Challenge");
    let state = format!("State = {}", r.state());
    auth(a.port, SECRET, "bob", &code(&secret2), &[&state]).expect("Access-Accept");
}

#[test]
fn expired_state_is_refused() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let d = env.radiusd(
        "short",
        &format!(
            "state_lifetime = 1\n{}",
            client_toml("vpn", "127.0.0.1/32", &s, "challenge", "")
        ),
    );
    let secret = env.enrolled_user("carol");
    let r = auth(d.port, SECRET, "carol", "pw", &[]);
    r.expect("Access-Challenge");
    assert_eq!(r.attr("Session-Timeout"), Some("1"));
    let state = format!("State = {}", r.state());
    // Expiry has whole-second resolution: past it after at most 2 s.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = auth(d.port, SECRET, "carol", &code(&secret), &[&state]);
    r.expect("Access-Reject");
    assert!(d.log().contains("State expired"), "{}", d.log());
}

/// `challenge_max_tries = 2`: the first wrong answer is "code refused", the
/// second ends the State ("too many wrong codes, start again") and then even
/// the right code with that State is refused; a new challenge works. An
/// answer with the password again (not a code) is one wrong try and an
/// Access-Reject, never another Access-Challenge.
#[test]
fn challenge_state_ends_after_max_tries() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let d = env.radiusd(
        "tries",
        &format!(
            "challenge_max_tries = 2\n{}",
            client_toml("vpn", "127.0.0.1/32", &s, "challenge", "")
        ),
    );
    let secret = env.enrolled_user("alice");
    let r = auth(d.port, SECRET, "alice", "pw", &[]);
    r.expect("Access-Challenge");
    let state = format!("State = {}", r.state());
    // The password again instead of a code.
    let r = auth(d.port, SECRET, "alice", "pw", &[&state]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"code refused\""),
        "{}",
        r.output
    );
    let r = auth(d.port, SECRET, "alice", &wrong_code(&secret), &[&state]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"too many wrong codes, start again\""),
        "{}",
        r.output
    );
    let r = auth(d.port, SECRET, "alice", &code(&secret), &[&state]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"too many wrong codes, start again\"")
    );
    assert!(
        d.log()
            .contains("State ended after 2 wrong codes (challenge_max_tries)"),
        "{}",
        d.log()
    );
    // The registry saw one wrong code only (the password is no code) and
    // not the right code sent with the ended State.
    let audit = twostep_e2e::block_on(env.reg.admin.audit(100)).unwrap();
    let verifies: Vec<_> = audit.iter().filter(|e| e.action == "verify").collect();
    assert_eq!(verifies.len(), 1, "{verifies:?}");
    assert_eq!(verifies[0].result.as_deref(), Some("reject"));
    // Start again: a new State, the right code.
    let r = auth(d.port, SECRET, "alice", "pw", &[]);
    r.expect("Access-Challenge");
    let state = format!("State = {}", r.state());
    auth(d.port, SECRET, "alice", &code(&secret), &[&state]).expect("Access-Accept");
}
