//! The malformed-packet corpus, run against the whole packet-handling path
//! with the real login flow and scripted registry and primary answers
//! (`twostep_radius::fuzzing::exercise`): every malformed datagram is
//! dropped without a panic, and well-formed ones still get a correct reply.
//! The same corpus is sent to the running server by
//! `tests/tests/radius_malformed.rs`; `fuzz/` fuzzes the same function.

use std::net::SocketAddr;
use twostep_radius::fuzzing::{
    clients, exercise, malformed_corpus, raw, signed, with_len, Outcome, SECRET,
};
use twostep_radius::wire::{self, attr, code, MessageAuth};

const STRICT: ([u8; 4], u16) = ([127, 0, 0, 1], 40000);
const APPEND: ([u8; 4], u16) = ([127, 0, 0, 2], 40000);
const CHALLENGE: ([u8; 4], u16) = ([127, 0, 0, 3], 40000);

fn src(a: ([u8; 4], u16)) -> SocketAddr {
    SocketAddr::from(a)
}

#[test]
fn malformed_datagrams_are_dropped() {
    let cs = clients();
    for (name, d) in malformed_corpus() {
        for s in [STRICT, APPEND, CHALLENGE] {
            match exercise(&cs, &d, src(s)) {
                Outcome::Dropped(_) => {}
                // Random bytes can make a well-formed packet without
                // Message-Authenticator, which a legacy client may send.
                Outcome::Answered(reply) if name == "garbage" && s != STRICT => {
                    let req = wire::parse(&d).unwrap();
                    assert_eq!(
                        wire::check_response(&reply, &req.authenticator, SECRET).unwrap(),
                        MessageAuth::Valid
                    );
                }
                other => panic!("{name} from {s:?}: expected drop, got {other:?}"),
            }
        }
    }
}

#[test]
fn unknown_source_is_not_answered() {
    let d = signed(&[(attr::USER_NAME, b"alice")], b"123456");
    assert_eq!(
        exercise(&clients(), &d, SocketAddr::from(([127, 0, 0, 9], 1))),
        Outcome::UnknownSource
    );
}

fn expect_reply(outcome: Outcome, request: &[u8], want_code: u8) -> wire::RawPacket {
    let Outcome::Answered(bytes) = outcome else {
        panic!("expected an answer, got {outcome:?}");
    };
    let req = wire::parse(request).unwrap();
    assert_eq!(
        wire::check_response(&bytes, &req.authenticator, SECRET).unwrap(),
        MessageAuth::Valid
    );
    let r = wire::parse(&bytes).unwrap();
    assert_eq!(r.code, want_code);
    assert_eq!(r.attrs[0].typ, attr::MESSAGE_AUTHENTICATOR);
    r
}

#[test]
fn odd_but_authenticated_requests_get_a_reply() {
    let cs = clients();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no User-Name", signed(&[], b"123456")),
        (
            "non-UTF-8 User-Name",
            signed(&[(attr::USER_NAME, &[0xff, 0xfe])], b"123456"),
        ),
        (
            "CHAP",
            signed(
                &[(attr::USER_NAME, b"a"), (attr::CHAP_PASSWORD, &[1; 17])],
                b"x",
            ),
        ),
        (
            "EAP",
            signed(
                &[
                    (attr::USER_NAME, b"a"),
                    (attr::EAP_MESSAGE, &[2, 0, 0, 5, 1]),
                ],
                b"x",
            ),
        ),
        (
            "two passwords",
            signed(
                &[(attr::USER_NAME, b"a"), (attr::USER_PASSWORD, &[0; 16])],
                b"x",
            ),
        ),
        ("password of 15 octets", {
            let mut b = signed(&[(attr::USER_NAME, b"a"), (attr::NAS_PORT, &[0; 4])], b"x");
            // Replace User-Password (last attribute, 16 octets) by a 15-octet one,
            // then sign again by hand: rebuild from attributes instead.
            b.truncate(b.len() - 18);
            b.extend([attr::USER_PASSWORD, 17]);
            b.extend([0; 15]);
            resign(b)
        }),
        ("password of 144 octets", {
            let mut b = signed(&[(attr::USER_NAME, b"a")], b"x");
            b.truncate(b.len() - 18);
            b.extend([attr::STATE, 146]);
            b.extend([0; 144]);
            resign(b)
        }),
        (
            "bogus State",
            signed(
                &[(attr::USER_NAME, b"a"), (attr::STATE, &[1; 60])],
                b"123456",
            ),
        ),
        ("many Proxy-States", {
            let ps = [7u8; 253];
            let attrs: Vec<(u8, &[u8])> = (0..15).map(|_| (attr::PROXY_STATE, &ps[..])).collect();
            signed(
                &[&[(attr::USER_NAME, &b"a"[..])][..], &attrs].concat(),
                b"123456",
            )
        }),
    ];
    for (name, d) in cases {
        for s in [STRICT, APPEND, CHALLENGE] {
            let out = exercise(&cs, &d, src(s));
            // A well-formed first request in challenge mode from an
            // enrolled user is challenged, Proxy-States echoed all the same.
            let want = if name == "many Proxy-States" && s == CHALLENGE {
                code::ACCESS_CHALLENGE
            } else {
                code::ACCESS_REJECT
            };
            let r = expect_reply(out, &d, want);
            let ps: Vec<&[u8]> = r.all(attr::PROXY_STATE).collect();
            let parsed = wire::parse(&d).unwrap();
            let want: Vec<&[u8]> = parsed.all(attr::PROXY_STATE).collect();
            assert_eq!(ps, want, "{name}");
        }
    }
}

/// Recomputes Length and Message-Authenticator (first attribute) of a
/// hand-edited request.
fn resign(mut b: Vec<u8>) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let l = b.len() as u16;
    b[2..4].copy_from_slice(&l.to_be_bytes());
    assert_eq!(b[20], attr::MESSAGE_AUTHENTICATOR);
    b[22..38].fill(0);
    let mut mac = Hmac::<md5::Md5>::new_from_slice(SECRET).unwrap();
    mac.update(&b);
    let m = mac.finalize().into_bytes();
    b[22..38].copy_from_slice(&m);
    b
}

#[test]
fn packet_too_big_for_its_reply_is_dropped_not_panicking() {
    // 4096 octets: 59 of header, Message-Authenticator, User-Name and
    // User-Password, then Proxy-State to the brim. The echo plus the
    // append-mode message would exceed 4096 octets.
    let ps = [7u8; 253];
    let mut attrs: Vec<(u8, &[u8])> = (0..15).map(|_| (attr::PROXY_STATE, &ps[..])).collect();
    attrs.push((attr::PROXY_STATE, &ps[..210]));
    let d = signed(
        &[&[(attr::USER_NAME, &b"a"[..])][..], &attrs].concat(),
        b"123456",
    );
    assert_eq!(d.len(), 4096);
    assert!(matches!(
        exercise(&clients(), &d, src(APPEND)),
        Outcome::Dropped(_)
    ));
    expect_reply(
        exercise(&clients(), &d, src(STRICT)),
        &d,
        code::ACCESS_REJECT,
    );
}

#[test]
fn legacy_rules() {
    let cs = clients();
    let unsigned = |extra: &[(u8, &[u8])]| {
        // A legacy request without Message-Authenticator; the password is
        // hidden correctly by building a signed packet and dropping the
        // Message-Authenticator (first attribute).
        let b = signed(
            &[&[(attr::USER_NAME, &b"alice"[..])][..], extra].concat(),
            b"123456",
        );
        let mut out = b[..20].to_vec();
        out.extend_from_slice(&b[38..]);
        let l = out.len() as u16;
        with_len(out, l)
    };
    let plain = unsigned(&[]);
    assert!(matches!(
        exercise(&cs, &plain, src(STRICT)),
        Outcome::Dropped(_)
    ));
    expect_reply(
        exercise(&cs, &plain, src(APPEND)),
        &plain,
        code::ACCESS_REJECT,
    );
    let proxied = unsigned(&[(attr::PROXY_STATE, b"x")]);
    assert!(matches!(
        exercise(&cs, &proxied, src(APPEND)),
        Outcome::Dropped(_)
    ));
}

#[test]
fn status_server_is_answered() {
    let cs = clients();
    let mut b = raw(12, 77, &[(attr::MESSAGE_AUTHENTICATOR, &[0; 16])]);
    b = resign(b);
    let r = expect_reply(exercise(&cs, &b, src(STRICT)), &b, code::ACCESS_ACCEPT);
    assert_eq!(r.identifier, 77);
}

#[test]
fn padding_beyond_length_is_ignored() {
    let mut d = signed(&[(attr::USER_NAME, b"alice")], b"123456");
    let clean = d.clone();
    d.extend([0xee; 100]);
    expect_reply(
        exercise(&clients(), &d, src(STRICT)),
        &clean,
        code::ACCESS_REJECT,
    );
}

/// Writes the corpus as fuzzing seeds when TWOSTEP_WRITE_FUZZ_SEEDS names a directory.
#[test]
fn write_fuzz_seeds_on_request() {
    let Some(dir) = std::env::var_os("TWOSTEP_WRITE_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (_, d)) in malformed_corpus().into_iter().enumerate().take(40) {
        std::fs::write(dir.join(format!("malformed-{i:03}")), d).unwrap();
    }
    std::fs::write(
        dir.join("valid"),
        signed(&[(attr::USER_NAME, b"alice")], b"123456"),
    )
    .unwrap();
}
