//! Criterion benchmarks of the per-packet work of `twostep-radiusd`: packet
//! decode, the Message-Authenticator check (RFC 3579), User-Password
//! decoding (RFC 2865 §5.2) and the challenge State's seal and open
//! (XChaCha20-Poly1305). `cargo bench -p twostep-radius --bench hot`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use twostep_radius::state::{self, Awaiting, Contents, Primary, StateKey};
use twostep_radius::wire::{self, RawAttr};

fn packet(c: &mut Criterion) {
    let secret = b"a-shared-secret-of-24-ch";
    let attrs = vec![
        RawAttr {
            typ: 1,
            value: b"alice@example.com".to_vec(),
        },
        RawAttr {
            typ: 4,
            value: vec![127, 0, 0, 1],
        },
        RawAttr {
            typ: 31,
            value: b"203.0.113.7".to_vec(),
        },
    ];
    let (bytes, ra) = wire::build_access_request(7, &attrs, b"123456", secret).expect("build");
    c.bench_function("radius/parse_access_request", |b| {
        b.iter(|| wire::parse(black_box(&bytes)).expect("parse"))
    });
    c.bench_function("radius/check_message_authenticator", |b| {
        b.iter(|| {
            wire::check_request_message_authenticator(black_box(&bytes), secret).expect("valid")
        })
    });
    let parsed = wire::parse(&bytes).expect("parse");
    let pw = parsed.first(2).expect("User-Password").to_vec();
    c.bench_function("radius/decode_user_password", |b| {
        b.iter(|| wire::decode_user_password(black_box(&pw), secret, &ra).expect("decode"))
    });
}

fn challenge_state(c: &mut Criterion) {
    let key = StateKey::from_bytes(&[0x42; 32]);
    let contents = Contents {
        awaiting: Awaiting::Code,
        primary: Primary::UpstreamAccepted,
        expires_at: 1_764_745_320,
        attrs: vec![RawAttr {
            typ: 25,
            value: b"vpn-users".to_vec(),
        }],
    };
    c.bench_function("radius/state_seal", |b| {
        b.iter(|| state::seal(&key, "vpn-gw", b"alice", black_box(&contents)).expect("seal"))
    });
    let sealed = state::seal(&key, "vpn-gw", b"alice", &contents).expect("seal");
    c.bench_function("radius/state_open", |b| {
        b.iter(|| {
            state::open(&key, "vpn-gw", b"alice", 1_764_745_200, black_box(&sealed)).expect("open")
        })
    });
}

criterion_group!(benches, packet, challenge_state);
criterion_main!(benches);
