//! The registry's router driven in-process (`tower::ServiceExt::oneshot`)
//! with a fixed clock over a real SQLite file: time-dependent rules
//! (skew window against oathtool, lockout and unlock timing) without
//! sleeping, and every bad-input answer.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Command;
use support::{TestApp, ADMIN};

fn oathtool(secret: &str, t: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{t}"), secret])
        .output()
        .expect("oathtool must be installed (tests/deps/base.txt)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A code that is not `code` (differs in the last digit).
fn wrong(code: &str) -> String {
    let mut c = code.as_bytes().to_vec();
    c[5] = if c[5] == b'9' { b'0' } else { c[5] + 1 };
    String::from_utf8(c).unwrap()
}

#[tokio::test]
async fn oathtool_interop_at_fixed_times() {
    // EPOCHs chosen 1..=28 s into their time step, where -31 s and +31 s
    // land in the neighbouring steps and ±61 s two steps away.
    for epoch in [1_111_111_111u64, 1_700_000_025, 2_000_000_005] {
        let app = TestApp::new("[api.lockout]\nmax_failures = 100\n").await;
        app.clock.set(epoch);
        let (secret, id, key) = app.enrolled("dave").await;
        // ±61 s: outside the ±1 step window.
        for t in [epoch - 61, epoch + 61] {
            assert_eq!(
                app.result(&key, "dave", &oathtool(&secret, t)).await,
                "reject",
                "epoch {epoch}, t {t}"
            );
        }
        // -31 s, now, +31 s: in the window, in increasing steps.
        for t in [epoch - 31, epoch, epoch + 31] {
            let v = app.verify(&key, "dave", &oathtool(&secret, t)).await;
            assert_eq!(v["result"], "accept", "epoch {epoch}, t {t}: {v}");
            assert_eq!(v["method_id"], id);
        }
        // Replays: every code already used, and an older one, are refused
        // as `replay`.
        for t in [epoch - 31, epoch, epoch + 31] {
            assert_eq!(
                app.result(&key, "dave", &oathtool(&secret, t)).await,
                "replay",
                "replay t {t}"
            );
        }
    }
}

#[tokio::test]
async fn replays_never_lock_and_have_their_own_limit() {
    let app = TestApp::new(
        "[api.lockout]\nmax_failures = 2\nmax_replays = 3\nreplay_window_seconds = 600\n",
    )
    .await;
    let t0 = 1_700_000_025;
    app.clock.set(t0);
    let (secret, id, key) = app.enrolled("rita").await;
    let code = oathtool(&secret, t0);
    assert_eq!(app.result(&key, "rita", &code).await, "accept");
    // Five replays, more than max_failures and max_replays: all `replay`,
    // none a failure.
    for i in 0..5 {
        let v = app.verify(&key, "rita", &code).await;
        assert_eq!(v["result"], "replay", "replay {i}: {v}");
        assert_eq!(v["method_id"], id);
    }
    let user = app.admin(Method::GET, "/v1/admin/users/rita", None).await;
    assert_eq!(user["locked_until"], Value::Null, "{user}");
    // An older host (no twostep-results header) knows no `replay`: it gets
    // `reject`, still without a failure counted.
    let body = json!({"username": "rita", "code": code}).to_string();
    let (s, v) = app
        .raw_as(
            Method::POST,
            "/v1/host/verify",
            Some(&key),
            Some(body),
            false,
        )
        .await;
    assert_eq!((s, v["result"].as_str()), (StatusCode::OK, Some("reject")));
    // One wrong code is still below max_failures = 2: replays did not count.
    assert_eq!(app.result(&key, "rita", &wrong(&code)).await, "reject");
    app.clock.set(t0 + 30);
    assert_eq!(
        app.result(&key, "rita", &oathtool(&secret, t0 + 30)).await,
        "accept"
    );
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    let replays: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "verify" && e["result"] == "replay")
        .collect();
    assert_eq!(replays.len(), 6);
    // Newest first: the last three are over max_replays = 3.
    let over = |e: &Value| {
        e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("over max_replays")
    };
    assert_eq!(
        replays.iter().map(|e| over(e)).collect::<Vec<_>>(),
        vec![true, true, true, false, false, false],
        "{replays:?}"
    );
    assert!(
        replays[0]["detail"]
            .as_str()
            .unwrap()
            .contains("replays=6 within 600 s"),
        "{:?}",
        replays[0]
    );
    // The window passes: the count starts again.
    let t1 = t0 + 30 + 601;
    app.clock.set(t1);
    assert_eq!(
        app.result(&key, "rita", &oathtool(&secret, t1)).await,
        "accept"
    );
    assert_eq!(
        app.result(&key, "rita", &oathtool(&secret, t1)).await,
        "replay"
    );
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1", None)
        .await;
    let detail = audit[0]["detail"].as_str().unwrap();
    assert!(detail.contains("replays=1 within"), "{detail}");
    assert!(!detail.contains("over max_replays"), "{detail}");
}

#[tokio::test]
async fn lockout_and_unlock_timing() {
    let app =
        TestApp::new("[api.lockout]\nmax_failures = 3\nwindow_seconds = 600\nlock_seconds = 300\n")
            .await;
    let t0 = 1_700_000_025;
    app.clock.set(t0);
    let (secret, _, key) = app.enrolled("erin").await;
    let code = |t| oathtool(&secret, t);

    // Two failures, then the window passes: the count starts again.
    assert_eq!(app.result(&key, "erin", &wrong(&code(t0))).await, "reject");
    app.clock.set(t0 + 10);
    assert_eq!(
        app.result(&key, "erin", &wrong(&code(t0 + 10))).await,
        "reject"
    );
    let t1 = t0 + 10 + 601;
    app.clock.set(t1);
    assert_eq!(app.result(&key, "erin", &wrong(&code(t1))).await, "reject");
    assert_eq!(app.result(&key, "erin", &wrong(&code(t1))).await, "reject");
    // A success resets the count.
    assert_eq!(app.result(&key, "erin", &code(t1)).await, "accept");
    let t2 = t1 + 30;
    app.clock.set(t2);
    assert_eq!(app.result(&key, "erin", &wrong(&code(t2))).await, "reject");
    assert_eq!(app.result(&key, "erin", &wrong(&code(t2))).await, "reject");
    // Third failure within the window: locked for 300 s from now, and
    // answered so at once.
    assert_eq!(app.result(&key, "erin", &wrong(&code(t2))).await, "locked");
    let v = app.verify(&key, "erin", &code(t2)).await;
    assert_eq!(v["result"], "locked", "right code while locked: {v}");
    assert_eq!(v["locked_until"], t2 + 300);
    let (_, regs) = app
        .call(
            Method::GET,
            "/v1/host/users/erin/registrations",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(regs["status"], "locked");
    let user = app.admin(Method::GET, "/v1/admin/users/erin", None).await;
    assert_eq!(user["locked_until"], t2 + 300);
    // One second before the end: still locked, and wrong codes do not extend it.
    app.clock.set(t2 + 299);
    assert_eq!(
        app.result(&key, "erin", &wrong(&code(t2 + 299))).await,
        "locked"
    );
    assert_eq!(app.result(&key, "erin", &code(t2 + 299)).await, "locked");
    // At the end: the right code is accepted.
    app.clock.set(t2 + 300);
    assert_eq!(app.result(&key, "erin", &code(t2 + 300)).await, "accept");

    // Lock again, then an admin unlock lets the right code through at once.
    let t3 = t2 + 400;
    app.clock.set(t3);
    for _ in 0..2 {
        assert_eq!(app.result(&key, "erin", &wrong(&code(t3))).await, "reject");
    }
    assert_eq!(app.result(&key, "erin", &wrong(&code(t3))).await, "locked");
    assert_eq!(app.result(&key, "erin", &code(t3)).await, "locked");
    let u = app
        .admin(Method::POST, "/v1/admin/users/erin/unlock", None)
        .await;
    assert_eq!(u["locked_until"], Value::Null);
    assert_eq!(app.result(&key, "erin", &code(t3)).await, "accept");

    // The audit trail has the lockouts and the unlock, and never a code.
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "lockout").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"user.unlock"));
}

#[tokio::test]
async fn audit_and_answers_never_carry_codes_or_secrets() {
    let app = TestApp::new("").await;
    let (secret, _, key) = app.enrolled("frank").await;
    let now = app.clock.now_for_test();
    let good = oathtool(&secret, now);
    let bad = wrong(&good);
    assert_eq!(app.result(&key, "frank", &bad).await, "reject");
    assert_eq!(app.result(&key, "frank", &good).await, "accept");
    let audit = app.admin(Method::GET, "/v1/admin/audit", None).await;
    let text = audit.to_string();
    assert!(!text.contains(&good) && !text.contains(&bad), "{text}");
    assert!(!text.contains(&secret) && !text.contains(&key), "{text}");
    let verify = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "verify")
        .unwrap();
    assert_eq!(verify["actor"], "host:host-frank");
    assert_eq!(verify["host"], "web1");
    assert_eq!(verify["remote_addr"], "192.0.2.9");
    assert_eq!(verify["result"], "accept");
    // Admin and host views of the user carry no secret.
    let u = app
        .admin(Method::GET, "/v1/admin/users/frank", None)
        .await
        .to_string();
    let (_, r) = app
        .call(
            Method::GET,
            "/v1/host/users/frank/registrations",
            Some(&key),
            None,
        )
        .await;
    assert!(!u.contains(&secret) && !r.to_string().contains(&secret));
    // At rest: neither the base32 nor the raw secret is in the database file.
    let raw = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    let mut db = Vec::new();
    for f in ["registry.db", "registry.db-wal"] {
        if let Ok(b) = std::fs::read(app.dir.path().join(f)) {
            db.extend(b);
        }
    }
    assert!(!db.is_empty());
    assert!(
        !db.windows(raw.len()).any(|w| w == raw.as_slice()),
        "raw secret in the database"
    );
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "base32 secret in the database"
    );
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "host key in the database"
    );
}

#[tokio::test]
async fn bad_input_answers() {
    let app = TestApp::new("max_body_bytes = 1024\n").await;
    let (_, _, key) = app.enrolled("gina").await;
    let err = |v: &Value| v["error"].as_str().unwrap().to_owned();

    // Credentials.
    let (s, v) = app.call(Method::GET, "/v1/admin/users", None, None).await;
    assert_eq!(
        (s, err(&v).as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (s, _) = app
        .call(Method::GET, "/v1/admin/users", Some("wrong"), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .call(Method::GET, "/v1/admin/users", Some(&key), None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a host key is not the admin token"
    );
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/host/verify",
            Some(ADMIN),
            Some(json!({"username": "gina", "code": "123456"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the admin token is not a host key"
    );
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/host/verify",
            Some("tsh_00"),
            Some(json!({"username": "gina", "code": "123456"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Malformed JSON, unknown fields, wrong types, oversized bodies.
    for body in [
        "{",
        "not json",
        r#"{"username": 5, "code": "123456"}"#,
        r#"{"username":"gina","code":"123456","extra":1}"#,
    ] {
        let (s, v) = app
            .raw(
                Method::POST,
                "/v1/host/verify",
                Some(&key),
                Some(body.into()),
            )
            .await;
        assert_eq!(
            (s, err(&v).as_str()),
            (StatusCode::BAD_REQUEST, "malformed_json"),
            "{body}"
        );
    }
    let big =
        json!({"username": "gina", "code": "123456", "context": {"service": "x".repeat(2000)}});
    let (s, v) = app
        .call(Method::POST, "/v1/host/verify", Some(&key), Some(big))
        .await;
    assert_eq!(
        (s, err(&v).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    // Code format: non-digits, too short, too long, empty, non-ASCII digits.
    for code in ["12a456", "12345", "1234567", "", "123\t456", "١٢٣٤٥٦"] {
        let (s, v) = app
            .call(
                Method::POST,
                "/v1/host/verify",
                Some(&key),
                Some(json!({"username": "gina", "code": code})),
            )
            .await;
        assert_eq!(
            (s, err(&v).as_str()),
            (StatusCode::BAD_REQUEST, "invalid_code_format"),
            "{code:?}"
        );
    }
    // Bad usernames.
    for name in ["", "a/b", "x\ny"] {
        let (s, v) = app
            .call(
                Method::POST,
                "/v1/host/verify",
                Some(&key),
                Some(json!({"username": name, "code": "123456"})),
            )
            .await;
        assert_eq!(
            (s, err(&v).as_str()),
            (StatusCode::BAD_REQUEST, "invalid_username"),
            "{name:?}"
        );
        let (s, _) = app
            .call(
                Method::POST,
                "/v1/admin/users",
                Some(ADMIN),
                Some(json!({"username": name})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    // Malformed requests are not counted as failures.
    let u = app.admin(Method::GET, "/v1/admin/users/gina", None).await;
    assert_eq!(u["locked_until"], Value::Null);

    // Unknown things: 404; existing: 409.
    for path in ["/v1/admin/users/nobody", "/v1/nothing"] {
        let (s, _) = app.call(Method::GET, path, Some(ADMIN), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, v) = app
        .call(
            Method::GET,
            "/v1/host/users/nobody/registrations",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (s, err(&v).as_str()),
        (StatusCode::NOT_FOUND, "unknown_user")
    );
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/admin/users/gina/methods/999",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/admin/users/gina/methods/notanumber",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .call(Method::DELETE, "/v1/admin/hosts/nohost", Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/admin/users",
            Some(ADMIN),
            Some(json!({"username": "gina"})),
        )
        .await;
    assert_eq!((s, err(&v).as_str()), (StatusCode::CONFLICT, "user_exists"));
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/admin/hosts",
            Some(ADMIN),
            Some(json!({"name": "host-gina", "kind": "radius"})),
        )
        .await;
    assert_eq!((s, err(&v).as_str()), (StatusCode::CONFLICT, "host_exists"));
    let (s, _) = app
        .call(Method::PUT, "/v1/admin/users", Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = app
        .call(Method::GET, "/v1/admin/audit?limit=-1", Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Revoked host: 403, also for registrations.
    app.admin(Method::DELETE, "/v1/admin/hosts/host-gina", None)
        .await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/host/verify",
            Some(&key),
            Some(json!({"username": "gina", "code": "123456"})),
        )
        .await;
    assert_eq!(
        (s, err(&v).as_str()),
        (StatusCode::FORBIDDEN, "host_revoked")
    );
    let (s, _) = app
        .call(
            Method::GET,
            "/v1/host/users/gina/registrations",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The revoked host's name can be given to a new host; the old key
    // stays refused, the revoked row stays listed.
    let v = app
        .admin(
            Method::POST,
            "/v1/admin/hosts",
            Some(json!({"name": "host-gina", "kind": "ssh"})),
        )
        .await;
    let new_key = v["api_key"].as_str().expect("api_key").to_owned();
    assert_ne!(new_key, key);
    let (s, _) = app
        .call(
            Method::GET,
            "/v1/host/users/gina/registrations",
            Some(&new_key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(
            Method::GET,
            "/v1/host/users/gina/registrations",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/admin/hosts",
            Some(ADMIN),
            Some(json!({"name": "host-gina", "kind": "ssh"})),
        )
        .await;
    assert_eq!((s, err(&v).as_str()), (StatusCode::CONFLICT, "host_exists"));
    let list = app.admin(Method::GET, "/v1/admin/hosts", None).await;
    let gina: Vec<&serde_json::Value> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|h| h["name"] == "host-gina")
        .collect();
    assert_eq!(gina.len(), 2, "{list}");
    assert!(!gina[0]["revoked_at"].is_null() && gina[1]["revoked_at"].is_null());
}

#[tokio::test]
async fn methods_default_and_reset() {
    let app = TestApp::new("").await;
    let (_, first, key) = app.enrolled("hank").await;
    let second = app
        .admin(
            Method::POST,
            "/v1/admin/users/hank/methods/totp",
            Some(json!({"label": "Backup phone"})),
        )
        .await;
    assert_eq!(second["method"]["is_default"], false);
    assert_eq!(second["method"]["label"], "Backup phone");
    // Deleting the default promotes the remaining one.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/admin/users/hank/methods/{first}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let u = app.admin(Method::GET, "/v1/admin/users/hank", None).await;
    assert_eq!(u["methods"].as_array().unwrap().len(), 1);
    assert_eq!(u["methods"][0]["is_default"], true);
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/admin/users/hank/methods",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.result(&key, "hank", "123456").await, "not_enrolled");
    // Deleting the user: unknown afterwards, also to hosts.
    let (s, _) = app
        .call(Method::DELETE, "/v1/admin/users/hank", Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.result(&key, "hank", "123456").await, "unknown_user");
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let app = TestApp::new("").await;
    let (s, doc) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // An independent OpenAPI 3.0 model accepts the document.
    let parsed: openapiv3::OpenAPI =
        serde_json::from_value(doc.clone()).expect("valid OpenAPI 3.0");
    assert_eq!(parsed.paths.paths.len(), twostep_api::app::ROUTES.len());
    for (path, methods) in twostep_api::app::ROUTES {
        for m in *methods {
            assert!(
                doc["paths"][*path][*m].is_object(),
                "{m} {path} is not in the OpenAPI document"
            );
        }
    }
    let documented = doc["paths"].as_object().unwrap().len();
    assert_eq!(
        documented,
        twostep_api::app::ROUTES.len(),
        "documented paths that the router lacks"
    );
    let (s, h) = app.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!((s, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    // The node's clock against the database's: the fixed clock shows a
    // moment in 2023, so the offset is its distance from now.
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let offset = h["clock_offset_seconds"]
        .as_i64()
        .expect("clock_offset_seconds");
    assert!((offset - (1_700_000_025 - real)).abs() <= 2, "{offset}");
    app.clock.set(real as u64);
    let (_, h) = app.call(Method::GET, "/v1/health", None, None).await;
    assert!(
        h["clock_offset_seconds"].as_i64().unwrap().abs() <= 1,
        "{h}"
    );
}

#[tokio::test]
async fn every_route_is_served_and_guarded() {
    // Each route of ROUTES exists (no 404/405) and, except the public two,
    // refuses a request without a credential with 401 before reading the body.
    let app = TestApp::new("").await;
    for (path, methods) in twostep_api::app::ROUTES {
        let concrete = path
            .replace("{username}", "nobody")
            .replace("{name}", "nohost")
            .replace("{id}", "1");
        for m in *methods {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let body = matches!(*m, "post" | "patch").then(|| "{not json".to_owned());
            let (s, v) = app.raw(method, &concrete, None, body).await;
            if path.starts_with("/v1/admin") || path.starts_with("/v1/host") {
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path}: {v}");
            } else if path.starts_with("/v1/device") {
                // Public, the body is the credential (signed or an
                // activation code): a malformed one is refused.
                assert_eq!(s, StatusCode::BAD_REQUEST, "{m} {path}: {v}");
            } else {
                assert_eq!(s, StatusCode::OK, "{m} {path}: {v}");
            }
        }
    }
}

#[tokio::test]
async fn lookups_that_cannot_reach_a_code_are_audited_within_limits() {
    let app = TestApp::new("[api.lockout]\nmax_failures = 1\n").await;
    let t0 = 1_700_000_025;
    app.clock.set(t0);
    let (secret, _, key) = app.enrolled("lena").await;
    let lookup = |user: &str, query: &str| format!("/v1/host/users/{user}/registrations{query}");
    let ctx = "?service=sshd&host=web1&remote_addr=198.51.100.7&tty=pts%2F0";
    // An enrolled, active user: no record (the verification records it).
    let (s, _) = app
        .call(Method::GET, &lookup("lena", ctx), Some(&key), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Locked: recorded with the context.
    assert_eq!(
        app.result(&key, "lena", &wrong(&oathtool(&secret, t0)))
            .await,
        "locked"
    );
    let (s, _) = app
        .call(Method::GET, &lookup("lena", ctx), Some(&key), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Unknown, from an old host without context: recorded too.
    let (s, _) = app
        .call(Method::GET, &lookup("nobody", ""), Some(&key), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    let lookups: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "lookup")
        .collect();
    assert_eq!(lookups.len(), 2, "{lookups:?}");
    assert_eq!(lookups[0]["username"], "nobody");
    assert_eq!(lookups[0]["result"], "unknown_user");
    assert_eq!(lookups[1]["username"], "lena");
    assert_eq!(lookups[1]["result"], "locked");
    assert_eq!(lookups[1]["host"], "web1");
    assert_eq!(lookups[1]["remote_addr"], "198.51.100.7");
    let detail = lookups[1]["detail"].as_str().unwrap();
    assert!(detail.contains("service=sshd tty=pts/0"), "{detail}");
    // A flood of made-up names: 10 records a minute per host, then one
    // summary, then none until the window ends.
    for i in 0..30 {
        let (s, _) = app
            .call(
                Method::GET,
                &lookup(&format!("made-up-{i}"), ctx),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let count = |audit: &Value| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "lookup" && e["result"] == "unknown_user")
            .count()
    };
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    assert_eq!(count(&audit), 11, "10 (1 before the flood) + 1 summary");
    let summary = &audit[0];
    assert_eq!(summary["username"], Value::Null);
    assert!(
        summary["detail"]
            .as_str()
            .unwrap()
            .contains("more than 10 refused lookups of unknown users"),
        "{summary}"
    );
    // The next window records again.
    app.clock.set(t0 + 61);
    app.call(Method::GET, &lookup("made-up-x", ctx), Some(&key), None)
        .await;
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    assert_eq!(count(&audit), 12);
    // A context value with a control character is refused.
    let (s, _) = app
        .call(
            Method::GET,
            &lookup("lena", "?service=a%0Ab"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// `after=ID`: the events after ID, oldest first, `limit` of them; a
/// poller passing its last id sees each event once, in order.
#[tokio::test]
async fn audit_after_pages_forward_oldest_first() {
    let app = TestApp::new("").await;
    for name in ["u1", "u2", "u3", "u4"] {
        app.admin(
            Method::POST,
            "/v1/admin/users",
            Some(json!({ "username": name })),
        )
        .await;
    }
    let newest = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    let ids: Vec<i64> = newest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.len() >= 4 && ids.windows(2).all(|w| w[0] > w[1]),
        "{ids:?}"
    );
    let oldest = *ids.last().unwrap();
    let page = |after: i64, limit: u32| {
        let app = &app;
        async move {
            app.admin(
                Method::GET,
                &format!("/v1/admin/audit?after={after}&limit={limit}"),
                None,
            )
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
        }
    };
    let mut ascending = ids.clone();
    ascending.reverse();
    assert_eq!(page(oldest - 1, 1000).await, ascending);
    assert_eq!(page(oldest, 2).await, ascending[1..3].to_vec());
    assert_eq!(page(ids[0], 1000).await, Vec::<i64>::new());
    let users: Vec<Value> = app
        .admin(
            Method::GET,
            &format!("/v1/admin/audit?after={}", ids[1]),
            None,
        )
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["action"], "user.create");
    assert_eq!(users[0]["username"], "u4");
    let (s, _) = app
        .call(Method::GET, "/v1/admin/audit?after=x", Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Lockouts and verification results are counted where they are decided;
/// a request the database fails is counted once as a database error.
#[tokio::test]
async fn metrics_count_verifications_lockouts_and_database_errors() {
    let app = TestApp::new("[api.lockout]\nmax_failures = 2\n").await;
    let (secret, _, key) = app.enrolled("erin").await;
    let good = oathtool(&secret, app.clock.now_for_test());
    let bad = wrong(&good);
    assert_eq!(app.result(&key, "erin", &bad).await, "reject");
    assert_eq!(app.result(&key, "erin", &bad).await, "locked");
    assert_eq!(app.result(&key, "erin", &good).await, "locked");
    assert_eq!(app.result(&key, "nobody", &good).await, "unknown_user");
    // A malformed code is refused before any verification.
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/host/verify",
            Some(&key),
            Some(json!({"username": "erin", "code": "12x456", "context": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    app.metrics_have(&[
        "twostep_api_verifications_total{result=\"reject\",via=\"host\"} 1",
        "twostep_api_verifications_total{result=\"locked\",via=\"host\"} 2",
        "twostep_api_verifications_total{result=\"unknown_user\",via=\"host\"} 1",
        "twostep_api_verify_duration_seconds_count 4",
        "twostep_api_lockouts_total 1",
        "twostep_api_database_errors_total 0",
    ])
    .await;
    // The database goes away: each failed request counts once. The pool
    // is closed; the verification's own connections (reads, the writer)
    // find the users table gone.
    app.state.pool.close().await;
    rusqlite::Connection::open(app.dir.path().join("registry.db"))
        .unwrap()
        .execute_batch("ALTER TABLE users RENAME TO users_gone")
        .unwrap();
    let (s, v) = app
        .call(Method::GET, "/v1/admin/users", Some(ADMIN), None)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("storage_unavailable"))
    );
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/host/verify",
            Some(&key),
            Some(json!({"username": "erin", "code": good, "context": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    // A refused admin token is no database error.
    let (s, _) = app
        .call(Method::GET, "/v1/admin/users", Some("wrong"), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    app.metrics_have(&[
        "twostep_api_database_errors_total 2",
        "twostep_api_push_challenges_pending -1",
        "twostep_api_lockouts_total 1",
    ])
    .await;
}

/// Temporary access codes: typed in any case with or without dashes; used
/// up after `uses`; expired at `expires_at`; a newer code revokes the
/// older; revoked by DELETE; a wrong one counts toward the lockout; the
/// user's registrations show the open code (so a user without methods is
/// asked for one); bad hours and uses answered 400.
#[tokio::test]
async fn temporary_access_codes() {
    let app = TestApp::new("[api.lockout]\nmax_failures = 3\n").await;
    let t0 = 1_700_000_000;
    app.clock.set(t0);
    let (_, _, key) = app.enrolled("tara").await;
    let tap_path = "/v1/admin/users/tara/temporary-access";
    let issued = app
        .admin(Method::POST, tap_path, Some(json!({"hours": 1, "uses": 2})))
        .await;
    let code = issued["code"].as_str().expect("code").to_owned();
    assert_eq!(code.len(), 14, "{issued}");
    assert_eq!(code.matches('-').count(), 2);
    assert_eq!(issued["expires_at"], t0 + 3600);
    assert_eq!(issued["uses"], 2);
    let regs = || {
        app.call(
            Method::GET,
            "/v1/host/users/tara/registrations",
            Some(&key),
            None,
        )
    };
    assert_eq!(regs().await.1["temporary_access_until"], t0 + 3600);

    let typed = code.replace('-', "").to_lowercase();
    assert_eq!(app.result(&key, "tara", &typed).await, "accept");
    assert_eq!(app.result(&key, "tara", &code).await, "accept");
    // Used up: a wrong try now.
    assert_eq!(app.result(&key, "tara", &code).await, "reject");
    assert!(regs().await.1.get("temporary_access_until").is_none());

    // Expiry: works one second before, not at expires_at.
    let second = app.admin(Method::POST, tap_path, Some(json!({}))).await;
    let second = second["code"].as_str().expect("code").to_owned();
    app.clock.set(t0 + 8 * 3600 - 1);
    let third = app.admin(Method::POST, tap_path, Some(json!({}))).await;
    let third = third["code"].as_str().expect("code").to_owned();
    // The newer code revoked the older.
    assert_eq!(app.result(&key, "tara", &second).await, "reject");
    app.clock.set(t0 + 8 * 3600 - 1 + 8 * 3600);
    assert_eq!(app.result(&key, "tara", &third).await, "reject");

    // Revoked: refused. Three wrong ones lock the user like wrong codes.
    let t1 = t0 + 20 * 3600;
    app.clock.set(t1);
    let fourth = app.admin(Method::POST, tap_path, Some(json!({}))).await;
    let fourth = fourth["code"].as_str().expect("code").to_owned();
    let (s, _) = app.call(Method::DELETE, tap_path, Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for _ in 0..2 {
        assert_eq!(app.result(&key, "tara", &fourth).await, "reject");
    }
    assert_eq!(app.result(&key, "tara", &fourth).await, "locked");

    // The audit: issue, each use (with the uses left), revoke.
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=100", None)
        .await;
    let rows = audit.as_array().expect("array");
    let uses: Vec<&str> = rows
        .iter()
        .filter(|e| e["action"] == "verify" && e["result"] == "accept")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(uses.len(), 2, "{audit}");
    assert!(uses[0].contains("uses_left=0"), "{uses:?}");
    assert!(uses[1].contains("uses_left=1"), "{uses:?}");
    assert!(rows.iter().any(|e| e["action"] == "tap.revoke"));
    assert_eq!(
        rows.iter().filter(|e| e["action"] == "tap.issue").count(),
        4
    );
    assert!(
        !audit.to_string().contains(&fourth) && !audit.to_string().contains(&typed),
        "codes never in the audit"
    );

    // Bad input: a clear 400 naming the field; unknown user 404.
    for body in [
        json!({"hours": 0}),
        json!({"hours": 721}),
        json!({"uses": 0}),
        json!({"uses": 101}),
    ] {
        let (s, v) = app
            .call(Method::POST, tap_path, Some(ADMIN), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"], "invalid_field", "{v}");
    }
    let (s, v) = app
        .call(Method::POST, tap_path, Some(ADMIN), Some(json!({"ttl": 3})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown field: {v}");
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/admin/users/nobody/temporary-access",
            Some(ADMIN),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A phone change in one request: the methods go, a code comes; a user
/// with only that code is enrolled (a wrong code counts, never
/// "not_enrolled").
#[tokio::test]
async fn reset_with_a_temporary_access_code() {
    let app = TestApp::new("").await;
    app.clock.set(1_700_000_000);
    let (secret, _, key) = app.enrolled("ravi").await;
    let issued = app
        .admin(
            Method::POST,
            "/v1/admin/users/ravi/temporary-access",
            Some(json!({"reset_methods": true})),
        )
        .await;
    assert_eq!(issued["methods_deleted"], 1);
    let user = app.admin(Method::GET, "/v1/admin/users/ravi", None).await;
    assert_eq!(user["methods"], json!([]));
    assert_eq!(user["temporary_access_until"], 1_700_000_000 + 8 * 3600);
    let old = oathtool(&secret, 1_700_000_000);
    assert_eq!(app.result(&key, "ravi", &old).await, "reject");
    let code = issued["code"].as_str().expect("code");
    assert_eq!(app.result(&key, "ravi", code).await, "accept");
    // Used up: now not enrolled.
    assert_eq!(app.result(&key, "ravi", &old).await, "not_enrolled");
}

/// Verifications queued together are committed together by the one
/// writer, the replay rule holding inside a batch: 24 concurrent
/// submissions of one code give one accept and 23 replays (the user not
/// locked), while 12 users' codes submitted at once are all accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_verifications_keep_the_replay_rule() {
    let app = std::sync::Arc::new(TestApp::new("[api.lockout]\nmax_failures = 3\n").await);
    let t0 = 1_700_000_025;
    app.clock.set(t0);
    let (secret, _, key) = app.enrolled("wes").await;
    let code = oathtool(&secret, t0);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (app, key, code) = (app.clone(), key.clone(), code.clone());
        set.spawn(async move { app.result(&key, "wes", &code).await });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r.expect("task"));
    }
    assert_eq!(
        results.iter().filter(|r| *r == "accept").count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| *r == "replay").count(),
        23,
        "{results:?}"
    );
    let user = app.admin(Method::GET, "/v1/admin/users/wes", None).await;
    assert!(user["locked_until"].is_null(), "{user}");

    let mut secrets = Vec::new();
    for i in 0..12 {
        let name = format!("u{i}");
        app.admin(
            Method::POST,
            "/v1/admin/users",
            Some(json!({"username": name})),
        )
        .await;
        let e = app
            .admin(
                Method::POST,
                &format!("/v1/admin/users/{name}/methods/totp"),
                Some(json!({})),
            )
            .await;
        secrets.push((
            name,
            e["secret_base32"].as_str().expect("secret").to_owned(),
        ));
    }
    let mut set = tokio::task::JoinSet::new();
    for (name, secret) in secrets {
        let (app, key) = (app.clone(), key.clone());
        let code = oathtool(&secret, t0);
        set.spawn(async move { app.result(&key, &name, &code).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.expect("task"), "accept");
    }
    // Every one of them has its audit record.
    let audit = app
        .admin(Method::GET, "/v1/admin/audit?limit=1000", None)
        .await;
    let verifies = audit
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["action"] == "verify")
        .count();
    assert_eq!(verifies, 36);
    // They went through the writer in fewer transactions than verifications.
    let text = app.metrics().await;
    let count = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let batches = count("twostep_api_write_batch_size_count ");
    let batched = count("twostep_api_write_batch_size_sum ");
    assert_eq!(batched, 36.0, "{text}");
    assert!(
        batches < 36.0,
        "{batches} batches for 36 verifications:\n{text}"
    );
}
