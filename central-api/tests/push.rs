//! Push approvals through the router in-process (SQLite, fixed clock):
//! activation, the challenge lifecycle, number matching, the refusals of
//! forged, replayed, late and foreign answers, abuse limits, long-poll
//! wake-ups and the webhook. The same flows across two real processes on
//! PostgreSQL are in `tests/tests/push_registry.rs`.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{TestApp, ADMIN};
use twostep_common::push::{Decision, DeviceKey, PendingChallenge, PendingChallenges};

/// A registered device: its key pair and id.
struct Dev {
    key: DeviceKey,
    id: i64,
}

async fn add_user(app: &TestApp, name: &str) {
    app.admin(
        Method::POST,
        "/v1/admin/users",
        Some(json!({ "username": name })),
    )
    .await;
}

async fn add_host(app: &TestApp, name: &str) -> String {
    let h = app
        .admin(
            Method::POST,
            "/v1/admin/hosts",
            Some(json!({"name": name, "kind": "ssh"})),
        )
        .await;
    h["api_key"].as_str().unwrap().to_owned()
}

async fn activation_code(app: &TestApp, user: &str) -> String {
    let a = app
        .admin(
            Method::POST,
            &format!("/v1/admin/users/{user}/methods/push"),
            Some(json!({})),
        )
        .await;
    assert!(a["activation_uri"]
        .as_str()
        .unwrap()
        .starts_with("twostep-activate://activate?registry=http%3A%2F%2F127.0.0.1%3A1&code="));
    a["code"].as_str().unwrap().to_owned()
}

async fn activate_with(app: &TestApp, code: &str, key: &DeviceKey) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/v1/device/activate",
        None,
        Some(json!({"code": code, "device_name": "Alice's phone", "public_key": key.public_key()})),
    )
    .await
}

/// A user `name` with one activated push device.
async fn device_for(app: &TestApp, name: &str) -> Dev {
    add_user(app, name).await;
    let code = activation_code(app, name).await;
    let key = DeviceKey::generate();
    let (s, v) = activate_with(app, &code, &key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    Dev {
        key,
        id: v["device_id"].as_i64().unwrap(),
    }
}

fn now(app: &TestApp) -> i64 {
    app.clock.now_for_test() as i64
}

async fn start(app: &TestApp, host_key: &str, user: &str) -> Value {
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/host/push",
            Some(host_key),
            Some(json!({"username": user, "context": {"service": "sshd", "host": "web1", "remote_addr": "192.0.2.9"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Starts a push that must be sent; returns (challenge id, number).
async fn sent(app: &TestApp, host_key: &str, user: &str) -> (String, Option<u8>) {
    let v = start(app, host_key, user).await;
    assert_eq!(v["result"], "sent", "{v}");
    let c = &v["challenge"];
    (
        c["challenge_id"].as_str().unwrap().to_owned(),
        c["number"].as_u64().map(|n| u8::try_from(n).unwrap()),
    )
}

async fn poll_raw(app: &TestApp, poll: &twostep_common::push::DevicePoll) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/v1/device/poll",
        None,
        Some(serde_json::to_value(poll).unwrap()),
    )
    .await
}

async fn poll(app: &TestApp, dev: &Dev, wait: u64) -> Vec<PendingChallenge> {
    let (s, v) = poll_raw(app, &dev.key.sign_poll(dev.id, now(app), wait)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    serde_json::from_value::<PendingChallenges>(v)
        .unwrap()
        .challenges
}

async fn answer(
    app: &TestApp,
    dev: &Dev,
    c: &PendingChallenge,
    decision: Decision,
    number: Option<u8>,
) -> (StatusCode, Value) {
    let a = dev.key.sign_answer(dev.id, c, decision, number);
    app.call(
        Method::POST,
        "/v1/device/answer",
        None,
        Some(serde_json::to_value(&a).unwrap()),
    )
    .await
}

async fn outcome(app: &TestApp, host_key: &str, id: &str, wait: u64) -> (StatusCode, Value) {
    app.call(
        Method::GET,
        &format!("/v1/host/push/{id}?wait={wait}"),
        Some(host_key),
        None,
    )
    .await
}

/// The one pending challenge the device sees.
async fn the_challenge(app: &TestApp, dev: &Dev, id: &str) -> PendingChallenge {
    let list = poll(app, dev, 0).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].challenge_id, id);
    list[0].clone()
}

/// The results of audit records with `action`, oldest first.
async fn audit_results(app: &TestApp, action: &str) -> Vec<String> {
    let v = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["result"].as_str().unwrap_or("").to_owned())
        .collect();
    out.reverse();
    out
}

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap()
}

#[tokio::test]
async fn activation_is_one_time_and_expires() {
    let app = TestApp::new("").await;
    add_user(&app, "alice").await;
    let code = activation_code(&app, "alice").await;
    let key = DeviceKey::generate();
    // A malformed public key is refused without using the code.
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/device/activate",
            None,
            Some(json!({"code": code, "device_name": "p", "public_key": "AAAA"})),
        )
        .await;
    assert_eq!(
        (s, error(&v)),
        (StatusCode::BAD_REQUEST, "invalid_public_key")
    );
    // Typed by hand: lower case with a dash works.
    let typed = format!("{}-{}", &code[..4].to_lowercase(), &code[4..]);
    let (s, v) = activate_with(&app, &typed, &key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["username"], "alice");
    assert_eq!(v["label"], "Alice's phone");
    let id = v["device_id"].as_i64().unwrap();
    // Used once: refused the second time.
    let (s, v) = activate_with(&app, &code, &DeviceKey::generate()).await;
    assert_eq!((s, error(&v)), (StatusCode::CONFLICT, "activation_used"));
    // Expired after activation_lifetime (600 s).
    let late = activation_code(&app, "alice").await;
    app.clock.advance(601);
    let (s, v) = activate_with(&app, &late, &DeviceKey::generate()).await;
    assert_eq!((s, error(&v)), (StatusCode::GONE, "activation_expired"));
    let (s, v) = activate_with(&app, "NOSUCHCODE", &DeviceKey::generate()).await;
    assert_eq!(
        (s, error(&v)),
        (StatusCode::NOT_FOUND, "unknown_activation")
    );
    // The device is the user's method, and the default as the first one.
    let u = app.admin(Method::GET, "/v1/admin/users/alice", None).await;
    let m = &u["methods"][0];
    assert_eq!(
        (
            m["id"].as_i64(),
            &m["kind"],
            &m["is_default"],
            &m["disabled"]
        ),
        (Some(id), &json!("push"), &json!(true), &json!(false))
    );
    assert_eq!(m["last_used_at"], Value::Null);
    assert_eq!(
        audit_results(&app, "push.activate").await,
        ["ok", "activation_used", "activation_expired"]
    );
}

#[tokio::test]
async fn approve_with_the_right_number_is_handed_out_once_to_its_host() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "alice").await;
    let host = add_host(&app, "web1").await;
    let other = add_host(&app, "web2").await;
    let (id, number) = sent(&app, &host, "alice").await;
    let number = number.expect("number matching is on by default");
    assert!((10..=99).contains(&number));
    let c = the_challenge(&app, &dev, &id).await;
    assert!(c.number_matching);
    assert_eq!(c.username, "alice");
    assert_eq!(c.context.remote_addr.as_deref(), Some("192.0.2.9"));
    // Still pending: the wait runs out.
    let (s, v) = outcome(&app, &host, &id, 0).await;
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("pending")));
    // Approving without the number is refused and leaves it open.
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, None).await;
    assert_eq!((s, error(&v)), (StatusCode::BAD_REQUEST, "number_required"));
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, Some(number)).await;
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("approved")));
    // Another host never sees it.
    let (s, v) = outcome(&app, &other, &id, 0).await;
    assert_eq!((s, error(&v)), (StatusCode::NOT_FOUND, "unknown_challenge"));
    let (s, v) = outcome(&app, &host, &id, 5).await;
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("approved")));
    // Handed out once.
    let (s, v) = outcome(&app, &host, &id, 0).await;
    assert_eq!((s, error(&v)), (StatusCode::NOT_FOUND, "unknown_challenge"));
    // A replay of the answer finds it closed.
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, Some(number)).await;
    assert_eq!((s, error(&v)), (StatusCode::CONFLICT, "challenge_closed"));
    // The device is no longer offered it, and was used now.
    assert!(poll(&app, &dev, 0).await.is_empty());
    let u = app.admin(Method::GET, "/v1/admin/users/alice", None).await;
    assert_eq!(u["methods"][0]["last_used_at"].as_i64(), Some(now(&app)));
    assert_eq!(audit_results(&app, "push.start").await, ["push_sent"]);
    assert_eq!(
        audit_results(&app, "push.answer").await,
        ["number_required", "approved", "challenge_closed"]
    );
}

#[tokio::test]
async fn wrong_number_and_deny_end_the_challenge() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "bob").await;
    let host = add_host(&app, "web1").await;
    let (id, number) = sent(&app, &host, "bob").await;
    let c = the_challenge(&app, &dev, &id).await;
    let wrong = if number == Some(99) {
        98
    } else {
        number.unwrap() + 1
    };
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, Some(wrong)).await;
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("wrong_number")));
    // Ended: the right number afterwards is refused.
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, number).await;
    assert_eq!((s, error(&v)), (StatusCode::CONFLICT, "challenge_closed"));
    assert_eq!(
        outcome(&app, &host, &id, 0).await.1["result"],
        "wrong_number"
    );

    let (id, _) = sent(&app, &host, "bob").await;
    let c = the_challenge(&app, &dev, &id).await;
    let (s, v) = answer(&app, &dev, &c, Decision::Deny, None).await;
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("denied")));
    assert_eq!(outcome(&app, &host, &id, 0).await.1["result"], "denied");
    assert_eq!(
        audit_results(&app, "push.answer").await,
        ["wrong_number", "challenge_closed", "denied"]
    );
}

#[tokio::test]
async fn number_matching_off_sends_no_number() {
    let app = TestApp::new("[api.push]\nnumber_matching = false\n").await;
    let dev = device_for(&app, "nina").await;
    let host = add_host(&app, "vpn").await;
    let (id, number) = sent(&app, &host, "nina").await;
    assert_eq!(number, None);
    let c = the_challenge(&app, &dev, &id).await;
    assert!(!c.number_matching);
    let (_, v) = answer(&app, &dev, &c, Decision::Approve, None).await;
    assert_eq!(v["result"], "approved");
}

#[tokio::test]
async fn fraud_blocks_new_pushes_until_unlock() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "carol").await;
    let host = add_host(&app, "web1").await;
    let (id, _) = sent(&app, &host, "carol").await;
    let c = the_challenge(&app, &dev, &id).await;
    let (_, v) = answer(&app, &dev, &c, Decision::Fraud, None).await;
    assert_eq!(v["result"], "fraud");
    assert_eq!(outcome(&app, &host, &id, 0).await.1["result"], "fraud");
    let v = start(&app, &host, "carol").await;
    assert_eq!(v["result"], "blocked");
    assert_eq!(v["challenge"], Value::Null);
    // Admins see the block, in show and in list.
    let u = app.admin(Method::GET, "/v1/admin/users/carol", None).await;
    assert_eq!(u["push_blocked_at"].as_i64(), Some(now(&app)));
    let list = app.admin(Method::GET, "/v1/admin/users", None).await;
    assert_eq!(list[0]["push_blocked_at"].as_i64(), Some(now(&app)));
    app.admin(Method::POST, "/v1/admin/users/carol/unlock", None)
        .await;
    let u = app.admin(Method::GET, "/v1/admin/users/carol", None).await;
    assert_eq!(u["push_blocked_at"], Value::Null);
    sent(&app, &host, "carol").await;
    assert_eq!(
        audit_results(&app, "push.start").await,
        ["push_sent", "blocked", "push_sent"]
    );
    assert_eq!(audit_results(&app, "push.answer").await, ["fraud"]);
}

#[tokio::test]
async fn unanswered_challenge_expires_and_late_answers_are_refused() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "dan").await;
    let host = add_host(&app, "web1").await;
    let v = start(&app, &host, "dan").await;
    let id = v["challenge"]["challenge_id"].as_str().unwrap().to_owned();
    assert_eq!(
        v["challenge"]["expires_at"].as_i64(),
        Some(now(&app) + 60),
        "challenge_lifetime defaults to 60 s"
    );
    let c = the_challenge(&app, &dev, &id).await;
    app.clock.advance(60);
    assert!(poll(&app, &dev, 0).await.is_empty(), "expired: not offered");
    let number = None;
    let (s, v) = answer(&app, &dev, &c, Decision::Deny, number).await;
    assert_eq!((s, error(&v)), (StatusCode::GONE, "challenge_expired"));
    let (s, v) = outcome(&app, &host, &id, 0).await;
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("expired")));
    // Audited once, however often it is looked at.
    let (s, _) = answer(&app, &dev, &c, Decision::Deny, None).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(audit_results(&app, "push.expire").await, ["expired"]);
}

#[tokio::test]
async fn forged_replayed_foreign_and_disabled_requests_are_refused() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "erin").await;
    let mallory = device_for(&app, "mallory").await;
    let host = add_host(&app, "web1").await;
    let (id, number) = sent(&app, &host, "erin").await;
    let c = the_challenge(&app, &dev, &id).await;

    // Forged: signed with another key, claiming erin's device.
    let forger = Dev {
        key: DeviceKey::generate(),
        id: dev.id,
    };
    let (s, v) = answer(&app, &forger, &c, Decision::Approve, number).await;
    assert_eq!((s, error(&v)), (StatusCode::UNAUTHORIZED, "bad_signature"));
    let (s, v) = poll_raw(&app, &forger.key.sign_poll(dev.id, now(&app), 0)).await;
    assert_eq!((s, error(&v)), (StatusCode::UNAUTHORIZED, "bad_signature"));
    // A signature over other values than sent.
    let mut tampered = dev.key.sign_answer(dev.id, &c, Decision::Deny, None);
    tampered.decision = Decision::Approve;
    tampered.number = number;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/device/answer",
            None,
            Some(serde_json::to_value(&tampered).unwrap()),
        )
        .await;
    assert_eq!((s, error(&v)), (StatusCode::UNAUTHORIZED, "bad_signature"));
    // Another user's device cannot answer (nor see) erin's challenge.
    assert!(poll(&app, &mallory, 0).await.is_empty());
    let (s, v) = answer(&app, &mallory, &c, Decision::Approve, number).await;
    assert_eq!((s, error(&v)), (StatusCode::NOT_FOUND, "unknown_challenge"));
    // Unknown device.
    let ghost = Dev {
        key: DeviceKey::generate(),
        id: 9999,
    };
    let (s, v) = answer(&app, &ghost, &c, Decision::Approve, number).await;
    assert_eq!((s, error(&v)), (StatusCode::UNAUTHORIZED, "unknown_device"));

    // A replayed poll (same nonce), and polls outside ±60 s.
    let p = dev.key.sign_poll(dev.id, now(&app), 0);
    assert_eq!(poll_raw(&app, &p).await.0, StatusCode::OK);
    let (s, v) = poll_raw(&app, &p).await;
    assert_eq!((s, error(&v)), (StatusCode::UNAUTHORIZED, "replayed_nonce"));
    for skew in [-61, 61] {
        let p = dev.key.sign_poll(dev.id, now(&app) + skew, 0);
        let (s, v) = poll_raw(&app, &p).await;
        assert_eq!(
            (s, error(&v)),
            (StatusCode::UNAUTHORIZED, "clock_skew"),
            "{skew}"
        );
    }
    for skew in [-60, 60] {
        let p = dev.key.sign_poll(dev.id, now(&app) + skew, 0);
        assert_eq!(poll_raw(&app, &p).await.0, StatusCode::OK, "{skew}");
    }

    // A disabled device: its poll and answer are refused.
    app.admin(
        Method::POST,
        &format!("/v1/admin/methods/{}/disable", dev.id),
        None,
    )
    .await;
    let (s, v) = poll_raw(&app, &dev.key.sign_poll(dev.id, now(&app), 0)).await;
    assert_eq!((s, error(&v)), (StatusCode::FORBIDDEN, "device_disabled"));
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, number).await;
    assert_eq!((s, error(&v)), (StatusCode::FORBIDDEN, "device_disabled"));
    // Disabling cancelled the open challenge.
    assert_eq!(outcome(&app, &host, &id, 0).await.1["result"], "cancelled");
    // No enabled device left: not enrolled for push; enabled again, sent.
    assert_eq!(start(&app, &host, "erin").await["result"], "not_enrolled");
    let m = app
        .admin(
            Method::POST,
            &format!("/v1/admin/methods/{}/enable", dev.id),
            None,
        )
        .await;
    assert_eq!(m["disabled"], false);
    sent(&app, &host, "erin").await;
    assert_eq!(
        audit_results(&app, "push.answer").await,
        [
            "bad_signature",
            "bad_signature",
            "unknown_challenge",
            "device_disabled"
        ]
    );
    assert_eq!(
        audit_results(&app, "push.poll").await,
        [
            "bad_signature",
            "replayed_nonce",
            "clock_skew",
            "clock_skew",
            "device_disabled"
        ]
    );
    assert_eq!(audit_results(&app, "push.cancel").await, ["cancelled"]);
}

#[tokio::test]
async fn disabling_the_device_mid_wait_cancels_at_once() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "fay").await;
    let host = add_host(&app, "web1").await;
    let (id, _) = sent(&app, &host, "fay").await;
    let started = Instant::now();
    let wait = outcome(&app, &host, &id, 20);
    let disable = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.admin(
            Method::POST,
            &format!("/v1/admin/methods/{}/disable", dev.id),
            None,
        )
        .await
    };
    let ((s, v), _) = tokio::join!(wait, disable);
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("cancelled")));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn host_cancel_and_answer_wake_the_waits() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "gus").await;
    let host = add_host(&app, "web1").await;
    // The answer wakes the host's wait.
    let (id, number) = sent(&app, &host, "gus").await;
    let c = the_challenge(&app, &dev, &id).await;
    let started = Instant::now();
    let approve = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        answer(&app, &dev, &c, Decision::Approve, number).await
    };
    let ((s, v), _) = tokio::join!(outcome(&app, &host, &id, 20), approve);
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("approved")));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The host cancels: the device can no longer answer.
    let (id, number) = sent(&app, &host, "gus").await;
    let c = the_challenge(&app, &dev, &id).await;
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/host/push/{id}"),
            Some(&host),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, number).await;
    assert_eq!((s, error(&v)), (StatusCode::CONFLICT, "challenge_closed"));
    assert_eq!(outcome(&app, &host, &id, 0).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn device_poll_wakes_within_a_second_of_the_challenge() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "hal").await;
    let host = add_host(&app, "web1").await;
    let started = Instant::now();
    let create = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        (Instant::now(), sent(&app, &host, "hal").await)
    };
    let (list, (created, (id, _))) = tokio::join!(poll(&app, &dev, 20), create);
    let woken = Instant::now();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].challenge_id, id);
    assert!(
        woken - created < Duration::from_secs(1),
        "{:?}",
        woken - created
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // Nothing pending (answered): the poll lasts its wait, no longer.
    let c = list[0].clone();
    answer(&app, &dev, &c, Decision::Deny, None).await;
    let t = Instant::now();
    assert!(poll(&app, &dev, 1).await.is_empty());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn sixth_push_within_the_window_is_rate_limited() {
    let app = TestApp::new("").await;
    device_for(&app, "ivy").await;
    let host = add_host(&app, "web1").await;
    for _ in 0..5 {
        sent(&app, &host, "ivy").await;
    }
    let v = start(&app, &host, "ivy").await;
    assert_eq!(v["result"], "rate_limited");
    // After the window (600 s) the user may be pushed again.
    app.clock.advance(601);
    sent(&app, &host, "ivy").await;
    let results = audit_results(&app, "push.start").await;
    assert_eq!(results.iter().filter(|r| *r == "push_sent").count(), 6);
    assert_eq!(results[5], "rate_limited");
    // The five unanswered ones expired meanwhile, each audited once.
    assert_eq!(audit_results(&app, "push.expire").await.len(), 5);
}

#[tokio::test]
async fn refusals_for_users_and_hosts() {
    let app = TestApp::new("").await;
    let host = add_host(&app, "web1").await;
    assert_eq!(start(&app, &host, "nobody").await["result"], "unknown_user");
    add_user(&app, "jo").await;
    assert_eq!(start(&app, &host, "jo").await["result"], "not_enrolled");
    device_for(&app, "kim").await;
    app.admin(
        Method::PATCH,
        "/v1/admin/users/kim",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(start(&app, &host, "kim").await["result"], "disabled");
    // Without a host key: 401.
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/host/push",
            None,
            Some(json!({"username": "kim"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A context field with a control character is refused.
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/host/push",
            Some(&host),
            Some(json!({"username": "kim", "context": {"host": "a\nb"}})),
        )
        .await;
    assert_eq!((s, error(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/admin/methods/4242/disable",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!((s, error(&v)), (StatusCode::NOT_FOUND, "unknown_method"));
}

#[tokio::test]
async fn a_code_for_a_push_only_user_is_reject() {
    let app = TestApp::new("").await;
    device_for(&app, "lee").await;
    let host = add_host(&app, "web1").await;
    assert_eq!(app.result(&host, "lee", "123456").await, "reject");
}

/// A one-request HTTP server on 127.0.0.1: returns its port and the
/// request (head and body) it received.
async fn one_request_server() -> (u16, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        let _ = s
            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .await;
        let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
    });
    (port, rx)
}

#[tokio::test]
async fn webhook_receives_the_ids_and_never_a_secret() {
    let (port, got) = one_request_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("relay.token");
    support::write_secret(&token, "Bearer relay-secret\n");
    let app = TestApp::new(&format!(
        "[api.push]\nwebhook_url = \"http://127.0.0.1:{port}/wake\"\nwebhook_headers = {{ \"X-Site\" = \"lab\", Authorization = {{ value_file = {:?} }} }}\n",
        token.display().to_string()
    ))
    .await;
    let dev = device_for(&app, "max").await;
    let host = add_host(&app, "web1").await;
    let (id, number) = sent(&app, &host, "max").await;
    let req = tokio::time::timeout(Duration::from_secs(5), got)
        .await
        .expect("webhook called within 5 s")
        .unwrap();
    assert!(req.starts_with("POST /wake HTTP/1.1\r\n"), "{req}");
    let lower = req.to_ascii_lowercase();
    assert!(lower.contains("\r\nx-site: lab\r\n"), "{req}");
    assert!(
        lower.contains("\r\nauthorization: bearer relay-secret\r\n"),
        "{req}"
    );
    let body: Value = serde_json::from_str(req.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(
        body,
        json!({"username": "max", "device_id": dev.id, "challenge_id": id})
    );
    // Neither the nonce nor the number.
    let c = the_challenge(&app, &dev, &id).await;
    assert!(!req.contains(&c.nonce));
    let _ = number;
}

#[tokio::test]
async fn a_failing_webhook_never_fails_the_challenge() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::new(&format!(
        "[api.push]\nwebhook_url = \"http://127.0.0.1:{port}/closed\"\nwebhook_timeout = 1\n"
    ))
    .await;
    let dev = device_for(&app, "ned").await;
    let host = add_host(&app, "web1").await;
    let (id, number) = sent(&app, &host, "ned").await;
    let c = the_challenge(&app, &dev, &id).await;
    let (_, v) = answer(&app, &dev, &c, Decision::Approve, number).await;
    assert_eq!(v["result"], "approved");
    assert_eq!(outcome(&app, &host, &id, 0).await.1["result"], "approved");
}

#[tokio::test]
async fn reset_disable_and_delete_void_open_activations() {
    let app = TestApp::new("").await;
    add_user(&app, "ivan").await;
    // Lost phone: the admin resets; the leaked URI registers nothing.
    let leaked = activation_code(&app, "ivan").await;
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/admin/users/ivan/methods",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = activate_with(&app, &leaked, &DeviceKey::generate()).await;
    assert_eq!(
        (s, error(&v)),
        (StatusCode::NOT_FOUND, "unknown_activation")
    );
    // Disabled: the open code is voided, and no new one is made.
    let leaked = activation_code(&app, "ivan").await;
    app.admin(
        Method::PATCH,
        "/v1/admin/users/ivan",
        Some(json!({"disabled": true})),
    )
    .await;
    let (s, v) = activate_with(&app, &leaked, &DeviceKey::generate()).await;
    assert_eq!(
        (s, error(&v)),
        (StatusCode::NOT_FOUND, "unknown_activation")
    );
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/admin/users/ivan/methods/push",
            Some(ADMIN),
            Some(json!({})),
        )
        .await;
    assert_eq!((s, error(&v)), (StatusCode::FORBIDDEN, "device_disabled"));
    assert!(v["message"].as_str().unwrap().contains("disabled"), "{v}");
    // Deleted: voided (and audited) before the user goes.
    app.admin(
        Method::PATCH,
        "/v1/admin/users/ivan",
        Some(json!({"disabled": false})),
    )
    .await;
    activation_code(&app, "ivan").await;
    let (s, _) = app
        .call(Method::DELETE, "/v1/admin/users/ivan", Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        audit_results(&app, "push.activation.void").await,
        ["ok", "ok", "ok"]
    );
    assert!(audit_results(&app, "push.activate")
        .await
        .iter()
        .all(|r| r == "unknown_activation"));
}

#[tokio::test]
async fn a_disabled_users_code_activates_nothing() {
    let app = TestApp::new("").await;
    add_user(&app, "jane").await;
    let code = activation_code(&app, "jane").await;
    // Disabled behind the registry's back (another node's old version):
    // the activation still checks the user.
    sqlx::query("UPDATE users SET disabled = 1 WHERE username = 'jane'")
        .execute(&app.state.pool)
        .await
        .unwrap();
    let (s, v) = activate_with(&app, &code, &DeviceKey::generate()).await;
    assert_eq!((s, error(&v)), (StatusCode::FORBIDDEN, "device_disabled"));
    let u = app.admin(Method::GET, "/v1/admin/users/jane", None).await;
    assert_eq!(u["methods"], json!([]));
}

#[tokio::test]
async fn a_locked_users_approval_is_refused_and_a_lockout_cancels() {
    let app = TestApp::new("[api.lockout]\nmax_failures = 2\n").await;
    let dev = device_for(&app, "lena").await;
    let host = add_host(&app, "web1").await;
    // Locked while the challenge is open (by another node): the approval
    // is refused and the host sees `cancelled`.
    let (id, number) = sent(&app, &host, "lena").await;
    let c = the_challenge(&app, &dev, &id).await;
    sqlx::query("UPDATE users SET locked_until = $1 WHERE username = 'lena'")
        .bind(now(&app) + 300)
        .execute(&app.state.pool)
        .await
        .unwrap();
    let (s, v) = answer(&app, &dev, &c, Decision::Approve, number).await;
    assert_eq!((s, error(&v)), (StatusCode::FORBIDDEN, "device_disabled"));
    assert_eq!(outcome(&app, &host, &id, 0).await.1["result"], "cancelled");
    app.admin(Method::POST, "/v1/admin/users/lena/unlock", None)
        .await;
    // The failure that sets the lock cancels the open challenge at once.
    app.admin(
        Method::POST,
        "/v1/admin/users/lena/methods/totp",
        Some(json!({})),
    )
    .await;
    let (id, _) = sent(&app, &host, "lena").await;
    let c = the_challenge(&app, &dev, &id).await;
    assert_eq!(app.result(&host, "lena", "000000").await, "reject");
    assert_eq!(app.result(&host, "lena", "000001").await, "locked");
    assert!(poll(&app, &dev, 0).await.is_empty());
    assert_eq!(outcome(&app, &host, &id, 0).await.1["result"], "cancelled");
    let (s, v) = answer(&app, &dev, &c, Decision::Deny, None).await;
    assert_eq!((s, error(&v)), (StatusCode::CONFLICT, "challenge_closed"));
    assert_eq!(audit_results(&app, "push.cancel").await, ["cancelled"]);
    assert_eq!(
        audit_results(&app, "push.answer").await,
        ["cancelled", "challenge_closed"]
    );
}

#[tokio::test]
async fn disabling_the_user_mid_wait_cancels_at_once() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "otto").await;
    let host = add_host(&app, "web1").await;
    let (id, _) = sent(&app, &host, "otto").await;
    let started = Instant::now();
    let wait = outcome(&app, &host, &id, 5);
    let disable = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.admin(
            Method::PATCH,
            "/v1/admin/users/otto",
            Some(json!({"disabled": true})),
        )
        .await
    };
    let ((s, v), _) = tokio::join!(wait, disable);
    assert_eq!((s, &v["result"]), (StatusCode::OK, &json!("cancelled")));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(poll_raw(&app, &dev.key.sign_poll(dev.id, now(&app), 0))
        .await
        .0
        .is_client_error());
    assert_eq!(audit_results(&app, "push.cancel").await, ["cancelled"]);
}

#[tokio::test]
async fn a_poll_timestamp_at_the_ends_of_i64_is_clock_skew() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "pia").await;
    for t in [i64::MIN, i64::MAX, i64::MIN + 1] {
        let (s, v) = poll_raw(&app, &dev.key.sign_poll(dev.id, t, 0)).await;
        assert_eq!(
            (s, error(&v)),
            (StatusCode::UNAUTHORIZED, "clock_skew"),
            "{t}"
        );
    }
    assert_eq!(
        audit_results(&app, "push.poll").await,
        ["clock_skew", "clock_skew", "clock_skew"]
    );
}

#[tokio::test]
async fn the_device_and_the_audit_name_the_registered_host() {
    let app = TestApp::new("").await;
    let dev = device_for(&app, "quin").await;
    // The host's key is web7's; it claims to be web1 (the `start` context).
    let host = add_host(&app, "web7").await;
    let (id, _) = sent(&app, &host, "quin").await;
    let c = the_challenge(&app, &dev, &id).await;
    assert_eq!(c.context.host.as_deref(), Some("web7"));
    assert_eq!(c.claimed_host.as_deref(), Some("web1"));
    let (_, v) = answer(&app, &dev, &c, Decision::Deny, None).await;
    assert_eq!(v["result"], "denied");
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    for action in ["push.start", "push.answer"] {
        let e = audit
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .unwrap();
        assert_eq!(e["host"], "web7", "{e}");
        assert!(
            e["detail"]
                .as_str()
                .unwrap()
                .contains("claimed_host=\"web1\""),
            "{e}"
        );
    }
    // A host that claims its own name has no claim shown.
    let web1 = add_host(&app, "web1").await;
    let (id, _) = sent(&app, &web1, "quin").await;
    let c = the_challenge(&app, &dev, &id).await;
    assert_eq!(
        (c.context.host.as_deref(), c.claimed_host),
        (Some("web1"), None)
    );
}

#[tokio::test]
async fn bidi_formatting_in_device_names_and_labels_is_refused() {
    let app = TestApp::new("").await;
    add_user(&app, "rosa").await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/admin/users/rosa/methods/push",
            Some(ADMIN),
            Some(json!({"label": "phone\u{202E}gpj.exe"})),
        )
        .await;
    assert_eq!((s, error(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    let code = activation_code(&app, "rosa").await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/device/activate",
            None,
            Some(json!({"code": code, "device_name": "a\u{2067}b\u{2069}",
                        "public_key": DeviceKey::generate().public_key()})),
        )
        .await;
    assert_eq!((s, error(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    // The code was not used by the refusal.
    let (s, _) = activate_with(&app, &code, &DeviceKey::generate()).await;
    assert_eq!(s, StatusCode::CREATED);
}

/// `twostep_api_push_challenges_pending` counts the challenges still open
/// in the database: up with each push sent, down with each answer and
/// each expiry.
#[tokio::test]
async fn pending_push_challenges_gauge_follows_the_database() {
    let app = TestApp::new("").await;
    let gauge = |n: u32| format!("twostep_api_push_challenges_pending {n}");
    app.metrics_have(&[&gauge(0)]).await;
    let alice = device_for(&app, "alice").await;
    let _bob = device_for(&app, "bob").await;
    let host = add_host(&app, "web1").await;
    let (id, number) = sent(&app, &host, "alice").await;
    app.metrics_have(&[&gauge(1)]).await;
    app.clock.advance(10);
    sent(&app, &host, "bob").await;
    app.metrics_have(&[&gauge(2)]).await;
    let c = the_challenge(&app, &alice, &id).await;
    let (s, _) = answer(&app, &alice, &c, Decision::Approve, number).await;
    assert_eq!(s, StatusCode::OK);
    app.metrics_have(&[&gauge(1)]).await;
    // Bob's, unanswered, expires 60 s after it was sent.
    app.clock.advance(59);
    app.metrics_have(&[&gauge(1)]).await;
    app.clock.advance(1);
    app.metrics_have(&[&gauge(0)]).await;
}
