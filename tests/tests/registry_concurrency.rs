//! The replay rule under concurrency: 20 simultaneous submissions of one
//! valid code give exactly one accept and 19 `replay` (never failures, so
//! the user is not locked), on SQLite, on PostgreSQL, and across two
//! registry processes sharing one PostgreSQL database.

use std::sync::Arc;
use twostep_common::api::{AuthContext, HostKind, VerifyRequest, VerifyResult};
use twostep_common::client::RegistryClient;
use twostep_e2e::{fresh_postgres_database, now, oathtool_code, Registry};

/// The default lockout: 19 replays must not lock the user.
const NO_LOCKOUT: &str = "[api.lockout]\nmax_failures = 5\n";

fn request(code: &str) -> VerifyRequest {
    VerifyRequest {
        username: "carol".into(),
        code: code.into(),
        context: AuthContext::default(),
    }
}

/// Sends `n` verifications of `code`, spread over `clients`, all at once
/// (a barrier releases them together); returns the results.
fn storm(clients: Vec<RegistryClient>, code: &str, n: usize) -> Vec<VerifyResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let mut tasks = Vec::new();
        for i in 0..n {
            let c = clients[i % clients.len()].clone();
            let b = barrier.clone();
            let req = request(code);
            tasks.push(tokio::spawn(async move {
                b.wait().await;
                c.verify(&req).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().expect("verify answered").result);
        }
        out
    })
}

fn assert_one_accept(results: &[VerifyResult]) {
    let accepts = results
        .iter()
        .filter(|r| **r == VerifyResult::Accept)
        .count();
    let replays = results
        .iter()
        .filter(|r| **r == VerifyResult::Replay)
        .count();
    assert_eq!(accepts, 1, "exactly one accept expected: {results:?}");
    assert_eq!(
        replays,
        results.len() - 1,
        "the rest are replays: {results:?}"
    );
}

fn setup(reg: &Registry) -> (String, std::path::PathBuf) {
    reg.add_user("carol");
    let e = reg.enrol_totp("carol");
    let key = reg.add_host("pool", HostKind::Radius);
    (e.secret_base32, key)
}

#[test]
fn twenty_concurrent_submissions_one_accept_sqlite() {
    let reg = Registry::start_with(None, NO_LOCKOUT);
    let (secret, key) = setup(&reg);
    let code = oathtool_code(&secret, now());
    let results = storm(vec![reg.host_client(&key)], &code, 20);
    assert_one_accept(&results);
    let user = twostep_e2e::block_on(reg.admin_client().user("carol")).unwrap();
    assert_eq!(user.locked_until, None, "replays must not lock: {user:?}");
}

#[test]
fn twenty_concurrent_submissions_one_accept_postgres() {
    let url = fresh_postgres_database();
    let reg = Registry::start_with(Some(&url), NO_LOCKOUT);
    let (secret, key) = setup(&reg);
    let code = oathtool_code(&secret, now());
    let results = storm(vec![reg.host_client(&key)], &code, 20);
    assert_one_accept(&results);
}

#[test]
fn two_registry_processes_on_one_postgres() {
    let url = fresh_postgres_database();
    let a = Registry::start_with(Some(&url), NO_LOCKOUT);
    let b = a.start_replica(NO_LOCKOUT);
    let (secret, key) = setup(&a);
    // What one replica wrote, the other sees: b knows the host and the user.
    let regs = twostep_e2e::block_on(b.host_client(&key).registrations("carol"))
        .unwrap()
        .expect("user visible on the replica");
    assert_eq!(regs.methods.len(), 1);
    let code = oathtool_code(&secret, now());
    let results = storm(vec![a.host_client(&key), b.host_client(&key)], &code, 20);
    assert_one_accept(&results);

    // Lookups of unknown users on both replicas share one per-host record
    // limit (10 a minute, then one summary).
    let ctx = AuthContext {
        service: Some("radius:vpn".into()),
        remote_addr: Some("198.51.100.7".into()),
        ..AuthContext::default()
    };
    for i in 0..16 {
        let c = if i % 2 == 0 { &a } else { &b }.host_client(&key);
        let r = twostep_e2e::block_on(c.registrations_for(&format!("nobody-{i}"), &ctx)).unwrap();
        assert!(r.is_none());
    }
    let audit = twostep_e2e::block_on(a.admin_client().audit(1000)).unwrap();
    let lookups: Vec<_> = audit.iter().filter(|e| e.action == "lookup").collect();
    assert_eq!(lookups.len(), 11, "{lookups:?}");
    assert!(lookups
        .iter()
        .all(|e| e.remote_addr.as_deref() == Some("198.51.100.7")));
    assert_eq!(lookups[0].username, None, "the summary: {:?}", lookups[0]);
}

/// 20 wrong codes at once with max_failures = 5, spread over `regs`: every
/// answer is reject or locked, exactly four rejects (the fifth failure
/// sets the lock and is answered `locked`), one lockout recorded, and the
/// right code is then refused as locked.
fn wrong_code_storm(regs: &[&Registry], secret: &str, key: &std::path::Path) {
    let good = oathtool_code(secret, now());
    let wrong = format!("{:06}", (good.parse::<u32>().unwrap() + 1) % 1_000_000);
    let clients = regs.iter().map(|r| r.host_client(key)).collect();
    let results = storm(clients, &wrong, 20);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, VerifyResult::Reject | VerifyResult::Locked)),
        "{results:?}"
    );
    let rejects = results
        .iter()
        .filter(|r| **r == VerifyResult::Reject)
        .count();
    assert_eq!(
        rejects, 4,
        "the four failures before the one that locks: {results:?}"
    );
    let audit = twostep_e2e::block_on(regs[0].admin_client().audit(1000)).unwrap();
    let lockouts = audit.iter().filter(|e| e.action == "lockout").count();
    assert_eq!(lockouts, 1, "{audit:?}");
    let r = twostep_e2e::block_on(regs[0].host_client(key).verify(&request(&good))).unwrap();
    assert_eq!(r.result, VerifyResult::Locked);
    assert!(r.locked_until.is_some_and(|t| t > now() as i64 + 200));
}

#[test]
fn concurrent_wrong_codes_lock_exactly_once() {
    let reg = Registry::start_with(None, "[api.lockout]\nmax_failures = 5\n");
    let (secret, key) = setup(&reg);
    wrong_code_storm(&[&reg], &secret, &key);
}

#[test]
fn concurrent_wrong_codes_lock_exactly_once_two_processes_postgres() {
    let url = fresh_postgres_database();
    let a = Registry::start_with(Some(&url), "[api.lockout]\nmax_failures = 5\n");
    let b = a.start_replica("[api.lockout]\nmax_failures = 5\n");
    let (secret, key) = setup(&a);
    wrong_code_storm(&[&a, &b], &secret, &key);
}
