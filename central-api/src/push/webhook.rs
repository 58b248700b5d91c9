//! The wake-up webhook: on each new challenge, one POST per device to
//! `[api.push] webhook_url`, so a site can relay a wake-up to a mobile
//! push service. It runs beside the request, with its own deadline
//! (`webhook_timeout`); a failure is logged at warning and never fails
//! the challenge. The body holds ids only, never the nonce or number.

use std::collections::BTreeMap;
use std::time::Duration;
use twostep_config::{render_webhook_body, PushConfig, WebhookHeader};

/// The configured webhook, or nothing.
#[derive(Debug)]
pub struct Webhook {
    target: Option<Target>,
    /// `alert_webhook_url`, sent with the same client and headers.
    alert: Option<Target>,
}

#[derive(Debug)]
struct Target {
    client: reqwest::Client,
    url: String,
    headers: BTreeMap<String, WebhookHeader>,
    body: String,
}

impl Webhook {
    /// From `[api.push]`; none when `webhook_url` is not set (or the HTTP
    /// client cannot be built, logged as an error).
    pub fn new(cfg: &PushConfig) -> Self {
        let alert = cfg.alert_webhook_url.as_ref().and_then(|url| {
            Self::with_url(cfg, url).target.map(|t| Target {
                body: String::new(),
                ..t
            })
        });
        let Some(url) = &cfg.webhook_url else {
            return Self {
                target: None,
                alert,
            };
        };
        Self {
            alert,
            ..Self::with_url(cfg, url)
        }
    }

    fn with_url(cfg: &PushConfig, url: &str) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(cfg.webhook_timeout))
            .timeout(Duration::from_secs(cfg.webhook_timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("twostep-api/", env!("CARGO_PKG_VERSION")))
            .build();
        match client {
            Ok(client) => Self {
                alert: None,
                target: Some(Target {
                    client,
                    url: url.to_owned(),
                    headers: cfg.webhook_headers.clone(),
                    body: cfg.webhook_body.clone(),
                }),
            },
            Err(e) => {
                tracing::error!(error = %twostep_common::error_chain(&e), "push webhook disabled: HTTP client setup failed");
                Self {
                    target: None,
                    alert: None,
                }
            }
        }
    }

    /// Calls the webhook for each of `device_ids` in background tasks.
    pub fn fire(&self, username: &str, device_ids: &[i64], challenge_id: &str) {
        let Some(t) = &self.target else { return };
        for &device_id in device_ids {
            let body = render_webhook_body(&t.body, username, device_id, challenge_id);
            let Some(req) = t.request(body, "push") else {
                return;
            };
            let url = t.url.clone();
            let challenge = challenge_id.to_owned();
            tokio::spawn(async move {
                match sent(req).await {
                    Ok(()) => tracing::debug!(%url, device_id, "push webhook called"),
                    Err(why) => tracing::warn!(
                        %url, device_id, challenge_id = %challenge, error = %why,
                        "push webhook failed; the challenge goes on"
                    ),
                }
            });
        }
    }

    /// Tells the admins, through `alert_webhook_url` when set, that pushes
    /// to `username` are blocked since `event` (`push_fraud`,
    /// `user_report`) at `at` (Unix seconds) from `remote_addr`; in a
    /// background task, a failure logged at warning.
    pub fn alert(&self, event: &str, username: &str, at: i64, remote_addr: Option<&str>) {
        let Some(t) = &self.alert else { return };
        let body = serde_json::json!({
            "event": event,
            "username": username,
            "at": at,
            "remote_addr": remote_addr,
        })
        .to_string();
        let Some(req) = t.request(body, "alert") else {
            return;
        };
        let url = t.url.clone();
        let event = event.to_owned();
        tokio::spawn(async move {
            match sent(req).await {
                Ok(()) => tracing::debug!(%url, %event, "alert webhook called"),
                Err(why) => tracing::warn!(%url, %event, error = %why, "alert webhook failed"),
            }
        });
    }
}

impl Target {
    /// The POST of `body` with the configured headers; `None` (logged)
    /// when a header's secret file cannot be read.
    fn request(&self, body: String, which: &str) -> Option<reqwest::RequestBuilder> {
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in &self.headers {
            match header_value(value) {
                Ok(v) => req = req.header(name.as_str(), v),
                Err(e) => {
                    tracing::warn!(header = %name, error = %e, "{which} webhook not called: header value unusable");
                    return None;
                }
            }
        }
        Some(req)
    }
}

/// Sends `req`; why it failed (no answer, or an error status).
async fn sent(req: reqwest::RequestBuilder) -> Result<(), String> {
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("answered {}", resp.status().as_u16())),
        Err(e) => Err(twostep_common::error_chain(&e)),
    }
}

/// A header's value: as written, or the first line of its secret file.
fn header_value(v: &WebhookHeader) -> Result<String, String> {
    match v {
        WebhookHeader::Value(s) => Ok(s.clone()),
        WebhookHeader::File(f) => {
            let secret =
                twostep_config::read_secret_file(&f.value_file).map_err(|e| e.to_string())?;
            let text = secret
                .expose_str()
                .ok_or_else(|| format!("{}: not UTF-8 text", f.value_file.display()))?;
            Ok(text.lines().next().unwrap_or("").trim().to_owned())
        }
    }
}
