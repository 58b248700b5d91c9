//! Password-reset methods through the router in-process (SQLite, fixed
//! clock): migration 12 is recorded last; a user with only a registered
//! email address and security questions is not enrolled for hosts (the
//! registrations lookup and the verification say `not_enrolled`, exactly
//! as for a user with nothing); the reset pages answer without a reset in
//! progress; a reset row ends with its 30 minutes. The whole flow against
//! a real SMTP server and browser is in `tests/tests/password_reset.rs`.

mod support;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use sqlx::Row;
use support::{TestApp, ADMIN};
use tower::ServiceExt;

/// A page request without cookies: status, `Location`, body.
async fn page(app: &TestApp, method: Method, path: &str) -> (StatusCode, String, String) {
    let (s, l, b, _) = send(app, method, path, "", None).await;
    (s, l, b)
}

/// A page request with `cookies` and a form `body`: status, `Location`,
/// body and the `name=value` of each `Set-Cookie`.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    cookies: &str,
    form: Option<String>,
) -> (StatusCode, String, String, Vec<String>) {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookies);
    if form.is_some() {
        b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let req = b.body(form.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = twostep_api::app::router(app.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let set: Vec<String> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        String::from_utf8_lossy(&body).into_owned(),
        set,
    )
}

fn csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    body[at..at + 64].to_owned()
}

#[tokio::test]
async fn reset_methods_alone_do_not_enrol() {
    let app = TestApp::new("").await;
    let versions: Vec<i64> =
        sqlx::query("SELECT version FROM schema_migrations ORDER BY applied_at, version")
            .fetch_all(&app.state.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("version").unwrap())
            .collect();
    // Migration 12 (the reset tables) is applied, in order with the rest.
    assert!(versions.contains(&12), "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");

    // ivy: a host, an app (deleted again), then only reset methods.
    let (_, _, key) = app.enrolled("ivy").await;
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/admin/users/ivy/methods",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let uid: i64 = sqlx::query("SELECT id FROM users WHERE username = 'ivy'")
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
        .try_get("id")
        .unwrap();
    sqlx::query("INSERT INTO reset_emails (user_id, address, created_at) VALUES ($1, $2, $3)")
        .bind(uid)
        .bind("ivy@example.test")
        .bind(1_700_000_000i64)
        .execute(&app.state.pool)
        .await
        .unwrap();
    for q in 0..3i64 {
        sqlx::query(
            "INSERT INTO security_answers (user_id, question, answer_hash, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(uid)
        .bind(q)
        .bind(twostep_api::portal::password::hash("an answer").unwrap())
        .bind(1_700_000_000i64 + q)
        .execute(&app.state.pool)
        .await
        .unwrap();
    }
    let (s, regs) = app
        .call(
            Method::GET,
            "/v1/host/users/ivy/registrations",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{regs}");
    assert_eq!(regs["methods"], serde_json::json!([]), "{regs}");
    let regs: twostep_common::api::Registrations = serde_json::from_value(regs).unwrap();
    assert!(!regs.is_enrolled());
    // Neither an answer nor any 6 digits pass as a code.
    assert_eq!(app.result(&key, "ivy", "123456").await, "not_enrolled");
    let u = app.admin(Method::GET, "/v1/admin/users/ivy", None).await;
    assert_eq!(u["methods"].as_array().unwrap().len(), 0, "{u}");
}

#[tokio::test]
async fn reset_pages_without_a_reset_in_progress() {
    let app = TestApp::new("").await;
    let (s, _, body) = page(&app, Method::GET, "/my/reset").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("Get back into your account"), "{body}");
    // Every later step without the reset cookie goes back to the start.
    for path in [
        "/my/reset/verify",
        "/my/reset/email",
        "/my/reset/questions",
        "/my/reset/app",
        "/my/reset/password",
    ] {
        let (s, to, _) = page(&app, Method::GET, path).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(to, "/my/reset?done=expired", "{path}");
    }
    // A form without its CSRF token is refused before anything is read.
    let (s, _, _) = page(&app, Method::POST, "/my/reset").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The sign-in page links to it.
    let (_, _, body) = page(&app, Method::GET, "/my/").await;
    assert!(body.contains("href=\"/my/reset\""), "{body}");
    // Without [api.smtp] nothing offers email: the Email method's page
    // sends a signed-out visitor to sign in like every Security info page.
    let (s, to, _) = page(&app, Method::GET, "/my/security-info/email").await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/my/"));
    assert!(app.state.mailer.is_none());
}

#[tokio::test]
async fn a_reset_ends_after_30_minutes() {
    let app = TestApp::new("").await;
    let (_, _, body, set) = send(&app, Method::GET, "/my/reset", "", None).await;
    let pre = set[0].clone();
    let token = csrf(&body);
    let (s, to, _, set) = send(
        &app,
        Method::POST,
        "/my/reset",
        &pre,
        Some(format!("csrf={token}&username=nobody")),
    )
    .await;
    assert_eq!(
        (s, to.as_str()),
        (StatusCode::SEE_OTHER, "/my/reset/verify")
    );
    let reset = set
        .iter()
        .find(|c| c.starts_with("twostep-reset="))
        .expect("reset cookie")
        .clone();
    let cookies = format!("{pre}; {reset}");
    let (s, _, body, _) = send(&app, Method::GET, "/my/reset/verify", &cookies, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("Prove it&#39;s you"), "{body}");
    app.clock.set(1_700_000_025 + 1799);
    let (s, _, _, _) = send(&app, Method::GET, "/my/reset/questions", &cookies, None).await;
    assert_eq!(s, StatusCode::OK);
    app.clock.set(1_700_000_025 + 1800);
    let (s, to, _, _) = send(&app, Method::GET, "/my/reset/questions", &cookies, None).await;
    assert_eq!(
        (s, to.as_str()),
        (StatusCode::SEE_OTHER, "/my/reset?done=expired")
    );
}
