//! The registry's router driven in-process (`tower::ServiceExt::oneshot`)
//! over a real SQLite file with a fixed clock, shared by the test files.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;
use twostep_api::app::{router, AppState};
use twostep_api::clock::FixedClock;
use twostep_common::api::ErrorBody;

/// The admin token of every [`TestApp`].
pub const ADMIN: &str = "test-admin-token-0123456789";

/// Writes `text` to a new file at `path` with mode 0600.
pub fn write_secret(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The router over a fresh SQLite registry in a temp dir, with a fixed clock.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub state: Arc<AppState>,
    pub clock: FixedClock,
}

impl TestApp {
    pub async fn new(extra_api: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("admin.token");
        write_secret(&token, &format!("{ADMIN}\n"));
        let text = format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:1\"\ndatabase = \"sqlite://{}/registry.db\"\nsecret_key_file = \"{}/secret.key\"\nadmin_token_file = \"{}\"\n{extra_api}\n",
            dir.path().display(),
            dir.path().display(),
            token.display()
        );
        let config =
            twostep_config::Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
        let clock = FixedClock::new(1_700_000_025);
        let state = twostep_api::server::prepare(config.api().unwrap(), Arc::new(clock.clone()))
            .await
            .unwrap();
        Self { dir, state, clock }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.raw(method, path, token, body.map(|b| b.to_string()))
            .await
    }

    /// A request as the current client sends it (with `twostep-results:
    /// replay`).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        self.raw_as(method, path, token, body, true).await
    }

    /// [`Self::raw`], as an older host when `current` is false (no
    /// `twostep-results` header).
    pub async fn raw_as(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        current: bool,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if current {
            b = b.header(twostep_common::api::RESULTS_HEADER, "replay");
        }
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(text) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(text))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"))
        };
        if !status.is_success() {
            // Every error is an ErrorBody.
            serde_json::from_value::<ErrorBody>(v.clone())
                .unwrap_or_else(|e| panic!("{status}: not an ErrorBody ({e}): {v}"));
        }
        (status, v)
    }

    /// `GET /metrics` of the metrics listener's router: the text.
    pub async fn metrics(&self) -> String {
        let req = Request::builder()
            .uri(twostep_api::metrics::METRICS_PATH)
            .body(Body::empty())
            .unwrap();
        let resp = twostep_api::metrics::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            twostep_api::metrics::CONTENT_TYPE
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Asserts that the metrics text has each of `lines`, whole.
    pub async fn metrics_have(&self, lines: &[&str]) {
        let text = self.metrics().await;
        for line in lines {
            assert!(text.lines().any(|l| l == *line), "no {line:?} in\n{text}");
        }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method.clone(), path, Some(ADMIN), body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }

    /// Adds `user`, enrols TOTP, adds a host; returns (secret_base32, method id, host key).
    pub async fn enrolled(&self, user: &str) -> (String, i64, String) {
        self.admin(
            Method::POST,
            "/v1/admin/users",
            Some(json!({"username": user})),
        )
        .await;
        let e = self
            .admin(
                Method::POST,
                &format!("/v1/admin/users/{user}/methods/totp"),
                Some(json!({})),
            )
            .await;
        let name = format!("host-{user}");
        let h = self
            .admin(
                Method::POST,
                "/v1/admin/hosts",
                Some(json!({"name": name, "kind": "ssh"})),
            )
            .await;
        (
            e["secret_base32"].as_str().unwrap().to_owned(),
            e["method"]["id"].as_i64().unwrap(),
            h["api_key"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn verify(&self, key: &str, user: &str, code: &str) -> Value {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/host/verify",
                Some(key),
                Some(json!({"username": user, "code": code,
                            "context": {"service": "sshd", "host": "web1", "remote_addr": "192.0.2.9"}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    pub async fn result(&self, key: &str, user: &str, code: &str) -> String {
        self.verify(key, user, code).await["result"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
