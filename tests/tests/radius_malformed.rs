//! The malformed-packet corpus sent to a running twostep-radiusd: nothing
//! is answered, the server keeps running and still answers valid requests
//! (radclient) afterwards.

mod radius_support;

use radius_support::*;
use std::net::UdpSocket;
use std::time::Duration;
use twostep_radius::fuzzing::{malformed_corpus, SECRET};

#[test]
fn corpus_is_dropped_and_the_server_keeps_answering() {
    let env = Env::new();
    let secret_text = std::str::from_utf8(SECRET).unwrap();
    let s = env.secret_file("nas.secret", secret_text);
    let mut d = env.radiusd("m", &client_toml("vpn", "127.0.0.1/32", &s, "otp-only", ""));
    let user = env.enrolled_user("alice");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", d.port)).unwrap();
    let corpus = malformed_corpus();
    for (_, datagram) in &corpus {
        // Empty datagrams are sent too; the kernel delivers them.
        sock.send(datagram).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        sock.recv(&mut buf).is_err(),
        "a malformed packet was answered"
    );
    assert!(d.is_running(), "server died:\n{}", d.log());
    auth(d.port, secret_text, "alice", &code(&user), &[]).expect("Access-Accept");
    let log = d.log();
    assert!(log.contains("malformed packet"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn unknown_sources_are_dropped_and_logged_once_per_window() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", "some-secret");
    let d = env.radiusd(
        "unknown",
        &client_toml("far", "192.0.2.0/24", &s, "otp-only", ""),
    );
    let attrs = [
        "User-Name = \"alice\"".to_owned(),
        "User-Password = \"123456\"".to_owned(),
        "Message-Authenticator = 0x00".to_owned(),
    ];
    let r = radclient_with(d.port, "some-secret", "auth", &attrs, 1.0, 1);
    assert_eq!(r.code, None, "{}", r.output);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..50 {
        sock.send_to(
            &[1, 2, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ("127.0.0.1", d.port),
        )
        .unwrap();
    }
    // Bounded wait for the server to have read them: a second radclient try.
    let _ = radclient_with(d.port, "some-secret", "auth", &attrs, 1.0, 1);
    let log = d.log();
    assert_eq!(log.matches("unknown source").count(), 1, "{log}");
}

#[test]
fn a_second_user_name_or_a_name_with_a_control_character_is_rejected_not_forwarded() {
    let env = Env::new();
    let s = env.secret_file("nas.secret", "some-secret");
    let d = env.radiusd(
        "names",
        &client_toml("vpn", "127.0.0.1/32", &s, "otp-only", ""),
    );
    let user = env.enrolled_user("alice");
    for (names, why) in [
        (&["\"alice\"", "\"bob\""][..], "more than one User-Name"),
        (
            &["\"ali\\001ce\""][..],
            "User-Name refused: username contains a control character",
        ),
        (
            &["\"alice\\n\""][..],
            "User-Name refused: username has whitespace at its start or end",
        ),
    ] {
        let mut attrs: Vec<String> = names.iter().map(|n| format!("User-Name = {n}")).collect();
        attrs.push(format!("User-Password = \"{}\"", code(&user)));
        attrs.push("Message-Authenticator = 0x00".to_owned());
        let r = radclient_with(d.port, "some-secret", "auth", &attrs, 3.0, 1);
        assert_eq!(
            r.code.as_deref(),
            Some("Access-Reject"),
            "{names:?}: {}",
            r.output
        );
        let log = d.log();
        assert!(log.contains(why), "{why}: {log}");
    }
    // The right code with one clean User-Name still logs in: the refused
    // requests did not reach the registry (nothing was used or counted).
    let r = auth(d.port, "some-secret", "alice", &code(&user), &[]);
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
}
