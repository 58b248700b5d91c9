//! twostep-radiusd with FreeRADIUS 3.2 on both sides: as the upstream
//! primary server (a users file with a cleartext password and reply
//! attributes that must reach our final Access-Accept) and as a proxy in
//! front of twostep-radiusd (Proxy-State echoed, Message-Authenticator on
//! both legs). Plus the retransmission test: a slow primary (a relay that
//! delays FreeRADIUS's answers) and the same request sent three times.

mod radius_support;

use radius_support::*;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use twostep_radius::wire::{self, attr, code, RawAttr};

const NAS_SECRET: &str = "nas-shared-secret-1";
const UPSTREAM_SECRET: &str = "upstream-secret-2";
const USERS: &str = "alice Cleartext-Password := \"primary-pw\"\n\tFilter-Id = \"vpn-users\", Class = 0x7477\n\nbob Cleartext-Password := \"bob-pw\"\n\tFilter-Id = \"bob-acl\"\n\ncarl Cleartext-Password := \"pa,ss\"\n";

fn upstream_toml(env: &Env, port: u16, extra: &str) -> String {
    let s = env.secret_file("upstream.secret", UPSTREAM_SECRET);
    format!(
        "[[radius.upstream]]\nname = \"corp\"\naddress = \"127.0.0.1:{port}\"\nsecret_file = {:?}\ntimeout = 2\nretries = 1\n{extra}\n",
        s.display().to_string()
    )
}

fn server(env: &Env, name: &str, mode: &str, upstream_port: u16) -> Radiusd {
    let s = env.secret_file("nas.secret", NAS_SECRET);
    let body = format!(
        "{}{}",
        client_toml("vpn", "127.0.0.1/32", &s, mode, "primary = \"corp\""),
        upstream_toml(env, upstream_port, "")
    );
    env.radiusd(name, &body)
}

#[test]
fn append_mode_with_freeradius_primary() {
    let fr = FreeRadius::upstream(UPSTREAM_SECRET, USERS);
    let env = Env::new();
    let secret = env.enrolled_user("alice");
    let d = server(&env, "append", "append", fr.port);
    let c = code(&secret);

    // Wrong password with the right code: refused, and the code is not consumed.
    let r = auth(d.port, NAS_SECRET, "alice", &format!("wrong-pw,{c}"), &[]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"password refused\""),
        "{}",
        r.output
    );
    assert_eq!(r.attr("Filter-Id"), None);

    // Right password, same code: accepted with the upstream's attributes.
    let r = auth(d.port, NAS_SECRET, "alice", &format!("primary-pw,{c}"), &[]);
    r.expect("Access-Accept");
    assert_eq!(r.attr("Filter-Id"), Some("\"vpn-users\""), "{}", r.output);
    assert_eq!(r.attr("Class"), Some("0x7477"), "{}", r.output);
    assert_eq!(r.attrs[0].0, "Message-Authenticator");

    // Right password, replayed code.
    let r = auth(d.port, NAS_SECRET, "alice", &format!("primary-pw,{c}"), &[]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"That code was used already. Wait for the next code in your app.\"")
    );
    // Right password, wrong code.
    auth(
        d.port,
        NAS_SECRET,
        "alice",
        &format!("primary-pw,{}", wrong_code(&secret)),
        &[],
    )
    .expect("Access-Reject");
    // A password containing the delimiter: split on the last one.
    let carl = env.enrolled_user("carl");
    auth(
        d.port,
        NAS_SECRET,
        "carl",
        &format!("pa,ss,{}", code(&carl)),
        &[],
    )
    .expect("Access-Accept");
    assert!(
        fr.log().contains("Message-Authenticator"),
        "FreeRADIUS saw no Message-Authenticator"
    );
}

#[test]
fn challenge_mode_with_freeradius_primary() {
    let fr = FreeRadius::upstream(UPSTREAM_SECRET, USERS);
    let env = Env::new();
    let secret = env.enrolled_user("bob");
    let d = server(&env, "challenge", "challenge", fr.port);

    let r = auth(d.port, NAS_SECRET, "bob", "not-bobs", &[]);
    r.expect("Access-Reject");
    let r = auth(d.port, NAS_SECRET, "bob", "bob-pw", &[]);
    r.expect("Access-Challenge");
    assert_eq!(
        r.attr("Filter-Id"),
        None,
        "attributes only on the final Accept"
    );
    let state = r.state();
    let r = auth(
        d.port,
        NAS_SECRET,
        "bob",
        &code(&secret),
        &[&format!("State = {state}")],
    );
    r.expect("Access-Accept");
    assert_eq!(r.attr("Filter-Id"), Some("\"bob-acl\""), "{}", r.output);
}

#[test]
fn unreachable_primary_rejects_within_its_deadline() {
    let env = Env::new();
    let secret = env.enrolled_user("alice");
    // Nobody listens there.
    let d = server(&env, "dead", "append", twostep_e2e::free_udp_port());
    let t = std::time::Instant::now();
    let r = radclient_with(
        d.port,
        NAS_SECRET,
        "auth",
        &[
            "User-Name = \"alice\"".into(),
            format!("User-Password = \"primary-pw,{}\"", code(&secret)),
            "Message-Authenticator = 0x00".into(),
        ],
        8.0,
        1,
    );
    r.expect("Access-Reject");
    // The user is told which check failed: the password, not the code.
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"password check unavailable, try again later\"")
    );
    // timeout 2 s x 2 tries, plus slack.
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    assert!(d.log().contains("primary unreachable"), "{}", d.log());
}

#[test]
fn freeradius_proxy_in_front() {
    let env = Env::new();
    let secret = env.enrolled_user("carol");
    let s = env.secret_file("nas.secret", NAS_SECRET);
    let otp = env.radiusd(
        "otp",
        &client_toml("freeradius", "127.0.0.1/32", &s, "otp-only", ""),
    );
    let fr = FreeRadius::proxy("front-secret", otp.port, NAS_SECRET);
    let r = auth(fr.port, "front-secret", "carol", &code(&secret), &[]);
    r.expect("Access-Accept");
    let r = auth(fr.port, "front-secret", "carol", &wrong_code(&secret), &[]);
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"code refused\""),
        "{}",
        r.output
    );
    assert!(otp.log().contains("Access-Accept"), "{}", otp.log());
    // FreeRADIUS got our answer with Message-Authenticator first and its
    // Proxy-State echoed.
    let log = fr.log();
    let at = log
        .find("Received Access-Accept")
        .unwrap_or_else(|| panic!("{log}"));
    let lines: Vec<&str> = log[at..].lines().take(3).collect();
    assert!(lines[1].contains("Message-Authenticator = 0x"), "{lines:?}");
    assert!(lines[2].contains("Proxy-State = 0x"), "{lines:?}");
}

#[test]
fn freeradius_proxy_in_front_of_a_challenge() {
    let env = Env::new();
    let secret = env.enrolled_user("dave");
    let s = env.secret_file("nas.secret", NAS_SECRET);
    let d = env.radiusd(
        "chal",
        &client_toml("freeradius", "127.0.0.1/32", &s, "challenge", ""),
    );
    let fr = FreeRadius::proxy("front-secret", d.port, NAS_SECRET);
    let r = auth(fr.port, "front-secret", "dave", "pw", &[]);
    r.expect("Access-Challenge");
    let state = r.state();
    auth(
        fr.port,
        "front-secret",
        "dave",
        &code(&secret),
        &[&format!("State = {state}")],
    )
    .expect("Access-Accept");
}

/// A slow primary: a relay that receives each request from twostep-radiusd,
/// counts it, waits `delay`, passes it to FreeRADIUS and relays the answer
/// back. Returns its port and the request counter.
fn slow_relay(upstream_port: u16, delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = front.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            c.fetch_add(1, Ordering::SeqCst);
            let req = buf[..n].to_vec();
            let front = front.try_clone().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let back = UdpSocket::bind("127.0.0.1:0").unwrap();
                back.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                back.connect(("127.0.0.1", upstream_port)).unwrap();
                back.send(&req).unwrap();
                let mut rbuf = [0u8; 4096];
                if let Ok(m) = back.recv(&mut rbuf) {
                    let _ = front.send_to(&rbuf[..m], from);
                }
            });
        }
    });
    (port, count)
}

#[test]
fn retransmissions_during_a_slow_primary_are_absorbed_then_replayed() {
    let fr = FreeRadius::upstream(UPSTREAM_SECRET, USERS);
    let (relay_port, upstream_requests) = slow_relay(fr.port, Duration::from_millis(1500));
    let env = Env::new();
    let secret = env.enrolled_user("alice");
    let d = server(&env, "retrans", "append", relay_port);

    let password = format!("primary-pw,{}", code(&secret));
    let attrs = [RawAttr {
        typ: attr::USER_NAME,
        value: b"alice".to_vec(),
    }];
    let (packet, _) =
        wire::build_access_request(77, &attrs, password.as_bytes(), NAS_SECRET.as_bytes()).unwrap();
    let nas = UdpSocket::bind("127.0.0.1:0").unwrap();
    nas.connect(("127.0.0.1", d.port)).unwrap();
    nas.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut replies: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut drain = |replies: &mut Vec<Vec<u8>>, for_how_long: Duration| {
        let until = std::time::Instant::now() + for_how_long;
        while std::time::Instant::now() < until {
            if let Ok(n) = nas.recv(&mut buf) {
                replies.push(buf[..n].to_vec());
            }
        }
    };
    // Three copies while the primary is still thinking.
    for _ in 0..3 {
        nas.send(&packet).unwrap();
        drain(&mut replies, Duration::from_millis(300));
    }
    assert!(replies.is_empty(), "answered before the primary did");
    drain(&mut replies, Duration::from_millis(3000));
    assert_eq!(replies.len(), 1, "duplicates in progress must be absorbed");
    // Two more copies after the answer: the cached reply, byte for byte.
    for _ in 0..2 {
        nas.send(&packet).unwrap();
        drain(&mut replies, Duration::from_millis(500));
    }
    assert_eq!(replies.len(), 3);
    assert!(replies.iter().all(|r| r == &replies[0]), "replies differ");
    assert_eq!(
        upstream_requests.load(Ordering::SeqCst),
        1,
        "one upstream request"
    );
    let req = wire::parse(&packet).unwrap();
    wire::check_response(&replies[0], &req.authenticator, NAS_SECRET.as_bytes()).unwrap();
    let r = wire::parse(&replies[0]).unwrap();
    // Accepted once: a second verification would have refused the used code.
    assert_eq!(r.code, code::ACCESS_ACCEPT);
    assert_eq!(r.first(11), Some(&b"vpn-users"[..]), "Filter-Id copied");
    assert!(d.log().contains("retransmission absorbed"), "{}", d.log());
}

#[test]
fn requests_beyond_max_in_flight_are_shed_until_retransmitted() {
    let fr = FreeRadius::upstream(UPSTREAM_SECRET, USERS);
    let (relay_port, upstream_requests) = slow_relay(fr.port, Duration::from_millis(1000));
    let env = Env::new();
    let alice = env.enrolled_user("alice");
    let bob = env.enrolled_user("bob");
    let s = env.secret_file("nas.secret", NAS_SECRET);
    let body = format!(
        "max_in_flight = 1\n{}{}",
        client_toml("vpn", "127.0.0.1/32", &s, "append", "primary = \"corp\""),
        upstream_toml(&env, relay_port, "")
    );
    let d = env.radiusd("bound", &body);
    let packet = |id: u8, user: &str, pw: String| {
        let attrs = [RawAttr {
            typ: attr::USER_NAME,
            value: user.as_bytes().to_vec(),
        }];
        wire::build_access_request(id, &attrs, pw.as_bytes(), NAS_SECRET.as_bytes())
            .unwrap()
            .0
    };
    let a = packet(1, "alice", format!("primary-pw,{}", code(&alice)));
    let b = packet(2, "bob", format!("bob-pw,{}", code(&bob)));
    let nas = UdpSocket::bind("127.0.0.1:0").unwrap();
    nas.connect(("127.0.0.1", d.port)).unwrap();
    nas.set_read_timeout(Some(Duration::from_millis(3000)))
        .unwrap();
    nas.send(&a).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    nas.send(&b).unwrap(); // shed: alice's request holds the only slot
    let mut buf = [0u8; 4096];
    let n = nas.recv(&mut buf).expect("alice's answer");
    assert_eq!(buf[1], 1, "first answer is alice's");
    assert_eq!(buf[0], code::ACCESS_ACCEPT, "{:?}", &buf[..n]);
    nas.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        nas.recv(&mut buf).is_err(),
        "bob's shed request was answered"
    );
    assert!(
        d.log().contains("too many requests in flight"),
        "{}",
        d.log()
    );
    // The NAS retransmits: now there is room.
    nas.set_read_timeout(Some(Duration::from_millis(3000)))
        .unwrap();
    nas.send(&b).unwrap();
    let _ = nas.recv(&mut buf).expect("bob's answer");
    assert_eq!((buf[0], buf[1]), (code::ACCESS_ACCEPT, 2));
    assert_eq!(upstream_requests.load(Ordering::SeqCst), 2);
}

#[test]
fn refused_primary_answers_tell_the_user_the_password_check_is_unavailable() {
    // A forged primary: it answers every request with Access-Accept but
    // cannot compute the Response Authenticator (it copies the request's),
    // as an attacker without the shared secret would.
    let fake = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fake_port = fake.local_addr().unwrap().port();
    let answered = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&answered);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = fake.recv_from(&mut buf) {
            buf[0] = code::ACCESS_ACCEPT;
            let _ = fake.send_to(&buf[..n], from);
            a.fetch_add(1, Ordering::SeqCst);
        }
    });
    let env = Env::new();
    let secret = env.enrolled_user("alice");
    let d = server(&env, "forged", "append", fake_port);
    let r = radclient_with(
        d.port,
        NAS_SECRET,
        "auth",
        &[
            "User-Name = \"alice\"".into(),
            format!("User-Password = \"primary-pw,{}\"", code(&secret)),
            "Message-Authenticator = 0x00".into(),
        ],
        8.0,
        1,
    );
    r.expect("Access-Reject");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"password check unavailable, try again later\"")
    );
    assert!(
        answered.load(Ordering::SeqCst) >= 1,
        "the fake primary was asked"
    );
    assert!(d.log().contains("primary unreachable"), "{}", d.log());
}
