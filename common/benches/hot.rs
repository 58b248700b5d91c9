//! Criterion benchmarks of the TOTP check every verification runs: a right
//! code (found in the window), a wrong one (the whole window computed), and
//! one code computation. `cargo bench -p twostep-common --bench hot`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use twostep_common::totp::{check, code_for_step, TotpParams};

fn totp(c: &mut Criterion) {
    let params = TotpParams::default();
    let secret = [0x5au8; 20];
    let now = 1_764_745_200u64;
    let step = params.time_step(now);
    let right = code_for_step(&secret, step, &params);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    c.bench_function("totp/check_right_code", |b| {
        b.iter(|| {
            check(
                black_box(&secret),
                black_box(&right),
                now,
                Some(step - 2),
                &params,
            )
        })
    });
    c.bench_function("totp/check_wrong_code", |b| {
        b.iter(|| check(black_box(&secret), black_box(wrong), now, None, &params))
    });
    c.bench_function("totp/code_for_step", |b| {
        b.iter(|| code_for_step(black_box(&secret), black_box(step), &params))
    });
}

criterion_group!(benches, totp);
criterion_main!(benches);
