//! `[api.sms]` and `[api.voice]`: the HTTP gateways that carry one-time
//! codes by text message and by phone call.
//!
//! The registry makes one HTTP request per code: `method` to `url`, with
//! `headers` (a value may hold `{{token}}`, the first line of
//! `token_file`), and, for POST, `body` with `{{phone}}` (E.164) and
//! `{{message}}` (`message` with `{{code}}` filled in) escaped for
//! `content_type`. A GET puts `{{phone}}` and `{{message}}` in the URL's
//! query instead. The gateway's answer decides: 2xx is "sent", anything
//! else (or no answer within `timeout`) is "could not send". Rendering
//! lives in `twostep_common::phone`.

use crate::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `content_type` of a form post (Twilio and most SMS APIs).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// `content_type` of a JSON post.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Default `message` of `[api.sms]`.
pub const DEFAULT_SMS_MESSAGE: &str = "Your twostep verification code is {{code}}";
/// Default `message` of `[api.voice]`; its `{{code}}` is read digit by
/// digit (the digits are sent spaced).
pub const DEFAULT_VOICE_MESSAGE: &str =
    "Your twostep verification code is {{code}}. Again: {{code}}.";
/// Default `body` of a form post.
pub const DEFAULT_FORM_BODY: &str = "phone={{phone}}&message={{message}}";
/// Default `body` of a JSON post.
pub const DEFAULT_JSON_BODY: &str = r#"{"phone":"{{phone}}","message":"{{message}}"}"#;
/// Longest accepted `timeout`, in seconds.
pub const MAX_GATEWAY_TIMEOUT: u64 = 30;

/// The HTTP method of a gateway call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum GatewayMethod {
    /// A POST with `body` (the default).
    #[default]
    #[serde(rename = "POST")]
    Post,
    /// A GET; `{{phone}}` and `{{message}}` go in the URL's query.
    #[serde(rename = "GET")]
    Get,
}

/// `[api.sms]` / `[api.voice]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The gateway's URL, `https://…` or `http://…`; with `method = "GET"`
    /// it holds `{{phone}}` and `{{message}}` in its query.
    pub url: String,
    /// `"POST"` (default) or `"GET"`.
    #[serde(default)]
    pub method: GatewayMethod,
    /// Extra request headers, name = "value"; `{{token}}` in a value is
    /// replaced by the first line of `token_file` (e.g. `Authorization =
    /// "Basic {{token}}"`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// File holding the gateway's credential (first line), a secret file:
    /// owned by root or the service's user, not group- or world-readable;
    /// read at each call.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `"application/x-www-form-urlencoded"` (default) or
    /// `"application/json"`: how `body`'s placeholders are escaped, and
    /// the request's `Content-Type`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Body template of a POST with `{{phone}}` and `{{message}}`.
    /// Default [`DEFAULT_FORM_BODY`] or [`DEFAULT_JSON_BODY`] by
    /// `content_type`.
    #[serde(default)]
    pub body: Option<String>,
    /// The text with `{{code}}`. Default [`DEFAULT_SMS_MESSAGE`] /
    /// [`DEFAULT_VOICE_MESSAGE`].
    #[serde(default)]
    pub message: Option<String>,
    /// Seconds one call may take, connection included (1 to 30). Default 4:
    /// under the hosts' `[registry] timeout` (5 s by default), so that the
    /// registry answers "could not send" before a host stops waiting.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_content_type() -> String {
    FORM_CONTENT_TYPE.to_owned()
}
fn default_timeout() -> u64 {
    4
}

impl GatewayConfig {
    /// Whether the body is JSON (else form-urlencoded).
    pub fn is_json(&self) -> bool {
        self.content_type == JSON_CONTENT_TYPE
    }

    /// The body template, `body` or the default for `content_type`.
    pub fn body_template(&self) -> &str {
        match &self.body {
            Some(b) => b,
            None if self.is_json() => DEFAULT_JSON_BODY,
            None => DEFAULT_FORM_BODY,
        }
    }

    /// The message template of a gateway of `table` (`"sms"` or
    /// `"voice"`).
    pub fn message_template(&self, voice: bool) -> &str {
        match &self.message {
            Some(m) => m,
            None if voice => DEFAULT_VOICE_MESSAGE,
            None => DEFAULT_SMS_MESSAGE,
        }
    }

    /// A warning when `url` is plain `http://` to a host other than
    /// loopback: the token header and every code would cross the network
    /// in clear text. `table` is `"sms"` or `"voice"`.
    pub fn plain_http_note(&self, table: &str) -> Option<String> {
        let u = url::Url::parse(&self.url.replace(['{', '}'], "")).ok()?;
        let loopback = match u.host()? {
            url::Host::Domain(d) => d == "localhost",
            url::Host::Ipv4(a) => a.is_loopback(),
            url::Host::Ipv6(a) => a.is_loopback(),
        };
        (u.scheme() == "http" && !loopback).then(|| {
            format!(
                "[api.{table}] url {} is plain http:// to another host: the gateway's token and every code cross the network unencrypted; use https://",
                self.url
            )
        })
    }

    /// Checks what serde cannot; `table` is `"sms"` or `"voice"`, errors
    /// at the key's line inside `[api.TABLE]`.
    pub(crate) fn validate(&self, table: &str, path: &Path, text: &str) -> Result<(), ConfigError> {
        let at = |key: &str, message: String| {
            table_key_error(path, text, &format!("[api.{table}]"), key, message)
        };
        let sample = |s: &str| {
            s.replace("{{phone}}", "+15550100042")
                .replace("{{message}}", "x")
                .replace("{{token}}", "t")
        };
        // Every {{…}} must be one the key fills in: a typo ({{tokn}},
        // {{username}}) would otherwise be sent as it is.
        let url_names: &[&str] = &["phone", "message"];
        let mut templates: Vec<(&str, &str, &[&str])> = vec![("url", &self.url, url_names)];
        if let Some(b) = &self.body {
            templates.push(("body", b, url_names));
        }
        if let Some(m) = &self.message {
            templates.push(("message", m, &["code"]));
        }
        for v in self.headers.values() {
            templates.push(("headers", v, &["token"]));
        }
        for (key, template, known) in templates {
            if let Some(name) = unknown_placeholder(template, known) {
                let known: Vec<String> = known.iter().map(|k| format!("{{{{{k}}}}}")).collect();
                return Err(at(
                    key,
                    format!(
                        "[api.{table}] {key}: {{{{{name}}}}} is not a placeholder here; {} can be used",
                        known.join(", ")
                    ),
                ));
            }
        }
        if let Some(why) = crate::push::url_problem(&sample(&self.url), false) {
            return Err(at("url", format!("[api.{table}] url {:?} {why}", self.url)));
        }
        if self.method == GatewayMethod::Get {
            if !self.url.contains("{{message}}") {
                return Err(at(
                    "url",
                    format!("[api.{table}] method = \"GET\" needs {{{{message}}}} (and {{{{phone}}}}) in url"),
                ));
            }
            if self.body.is_some() {
                return Err(at(
                    "body",
                    format!("[api.{table}] body is not sent with method = \"GET\"; put {{{{phone}}}} and {{{{message}}}} in url"),
                ));
            }
        }
        if self.content_type != FORM_CONTENT_TYPE && self.content_type != JSON_CONTENT_TYPE {
            return Err(at(
                "content_type",
                format!(
                    "[api.{table}] content_type must be {FORM_CONTENT_TYPE:?} or {JSON_CONTENT_TYPE:?}"
                ),
            ));
        }
        if self.method == GatewayMethod::Post {
            let body = self.body_template();
            if !body.contains("{{message}}") || !body.contains("{{phone}}") {
                return Err(at(
                    "body",
                    format!("[api.{table}] body must hold {{{{phone}}}} and {{{{message}}}}"),
                ));
            }
            if self.is_json() {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&sample(body)) {
                    return Err(at(
                        "body",
                        format!("[api.{table}] body is not JSON once its placeholders are filled in ({e})"),
                    ));
                }
            }
        }
        let message = self.message_template(table == "voice");
        if !message.contains("{{code}}") {
            return Err(at(
                "message",
                format!("[api.{table}] message must hold {{{{code}}}}"),
            ));
        }
        if message.chars().count() > 300 || message.chars().any(char::is_control) {
            return Err(at(
                "message",
                format!(
                    "[api.{table}] message must be at most 300 characters without control characters"
                ),
            ));
        }
        if !(1..=MAX_GATEWAY_TIMEOUT).contains(&self.timeout) {
            return Err(at(
                "timeout",
                format!(
                    "[api.{table}] timeout must be between 1 and {MAX_GATEWAY_TIMEOUT} seconds"
                ),
            ));
        }
        for (name, value) in &self.headers {
            if !crate::push::is_header_name(name) {
                return Err(at(
                    "headers",
                    format!("[api.{table}] headers: {name:?} is not an HTTP header name"),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(at(
                    "headers",
                    format!("[api.{table}] headers: the value of {name:?} has a control character"),
                ));
            }
        }
        let uses_token = self.headers.values().any(|v| v.contains("{{token}}"));
        match &self.token_file {
            None if uses_token => {
                return Err(at(
                    "headers",
                    format!("[api.{table}] a header uses {{{{token}}}} but token_file is not set"),
                ))
            }
            Some(_) if !uses_token => {
                return Err(at(
                    "token_file",
                    format!(
                        "[api.{table}] token_file is set but no header value uses {{{{token}}}}"
                    ),
                ))
            }
            Some(f) if !f.is_absolute() => {
                return Err(at(
                    "token_file",
                    format!(
                        "[api.{table}] token_file must be an absolute path, not {}",
                        f.display()
                    ),
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

/// An error at the first line setting `key` inside the table headed
/// `header` (e.g. `[api.sms]`), else at `header`, else at 1:1.
pub(crate) fn table_key_error(
    path: &Path,
    text: &str,
    header: &str,
    key: &str,
    message: String,
) -> ConfigError {
    let mut offset = 0;
    let mut inside = false;
    let mut found = None;
    let mut header_at = None;
    for l in text.split_inclusive('\n') {
        let t = l.trim_start();
        let lead = l.len() - t.len();
        if t.starts_with('[') {
            let h = t.split('#').next().unwrap_or("").trim();
            inside = h == header;
            if inside && header_at.is_none() {
                header_at = Some(offset + lead);
            }
        } else if inside {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    found = Some(offset + lead);
                    break;
                }
            }
        }
        offset += l.len();
    }
    let at = found.or(header_at).unwrap_or(0);
    let (line, column) = crate::error::line_column(text, at);
    ConfigError::Parse {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// The first `{{name}}` in `template` whose name is not in `known`.
fn unknown_placeholder<'a>(template: &'a str, known: &[&str]) -> Option<&'a str> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let name = &after[..end];
        if !known.contains(&name) {
            return Some(name);
        }
        rest = &after[end + 2..];
    }
    None
}
