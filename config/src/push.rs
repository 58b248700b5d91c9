//! `[api.push]`: push approvals in the registry (challenge lifetime,
//! number matching, abuse limits, device activation, the wake-up webhook).

use crate::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest challenge lifetime accepted, in seconds.
pub const MAX_CHALLENGE_LIFETIME: u64 = 120;

/// `[api.push]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Whether the user must type on the device the 2-digit number shown
    /// at the login to approve. Default `true`.
    #[serde(default = "default_true")]
    pub number_matching: bool,
    /// Seconds a challenge waits for an answer (1 to 120). Default 60.
    #[serde(default = "default_challenge_lifetime")]
    pub challenge_lifetime: u64,
    /// Seconds a device activation code stays valid (60 to 86400).
    /// Default 600.
    #[serde(default = "default_activation_lifetime")]
    pub activation_lifetime: u64,
    /// Challenges per user within `rate_window`; more are refused as
    /// `rate_limited` (at least 1). Logins and password resets are
    /// counted apart, so resets (anyone can start one by name) cannot use
    /// up a user's login pushes. Default 5.
    #[serde(default = "default_max_challenges")]
    pub max_challenges: u32,
    /// Window of `max_challenges`, in seconds (at least 1). Default 600.
    #[serde(default = "default_rate_window")]
    pub rate_window: u64,
    /// Base URL devices use to reach the registry, put in activation URIs,
    /// e.g. `"https://registry.example.com:8443"`. Default: derived from
    /// `[api] listen` (`https` with a certificate, `http` without; an
    /// unspecified address becomes loopback).
    #[serde(default)]
    pub public_url: Option<String>,
    /// URL POSTed to when a challenge is created, once per device, so a
    /// site can relay a wake-up to a mobile push service. Default: none.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Extra request headers of the webhook: name = "value", or
    /// name = { value_file = "/path" } for a secret (a token), read at each
    /// call under the rules of `*_file` keys.
    #[serde(default)]
    pub webhook_headers: BTreeMap<String, WebhookHeader>,
    /// JSON body template of the webhook; `{{username}}`, `{{device_id}}`
    /// and `{{challenge_id}}` are replaced (JSON-string escaped). Default
    /// [`DEFAULT_WEBHOOK_BODY`]. Never holds a secret: the challenge's
    /// nonce and number are not available to it.
    #[serde(default = "default_webhook_body")]
    pub webhook_body: String,
    /// Deadline of one webhook call, in seconds (1 to 30). Default 5.
    #[serde(default = "default_webhook_timeout")]
    pub webhook_timeout: u64,
    /// URL POSTed to when pushes to a user are blocked: a push reported as
    /// fraud from a device, or "This wasn't me" on the Security info page,
    /// so the admins hear of it (a chat or ticket hook). The body is JSON
    /// `{"event":..., "username":..., "at":..., "remote_addr":...}`; sent
    /// with `webhook_headers` and within `webhook_timeout`. Default: none.
    #[serde(default)]
    pub alert_webhook_url: Option<String>,
}

/// The webhook body when `webhook_body` is not set.
pub const DEFAULT_WEBHOOK_BODY: &str =
    r#"{"username":"{{username}}","device_id":{{device_id}},"challenge_id":"{{challenge_id}}"}"#;

/// One webhook header value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WebhookHeader {
    /// The value itself (nothing secret).
    Value(String),
    /// The value read from a secret file (first line).
    File(WebhookHeaderFile),
}

/// `{ value_file = "/path" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookHeaderFile {
    /// File holding the header's value; owned by root or the service's
    /// user, not group- or world-readable.
    pub value_file: PathBuf,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            number_matching: true,
            challenge_lifetime: default_challenge_lifetime(),
            activation_lifetime: default_activation_lifetime(),
            max_challenges: default_max_challenges(),
            rate_window: default_rate_window(),
            public_url: None,
            webhook_url: None,
            alert_webhook_url: None,
            webhook_headers: BTreeMap::new(),
            webhook_body: default_webhook_body(),
            webhook_timeout: default_webhook_timeout(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_challenge_lifetime() -> u64 {
    60
}
fn default_activation_lifetime() -> u64 {
    600
}
fn default_max_challenges() -> u32 {
    5
}
fn default_rate_window() -> u64 {
    600
}
fn default_webhook_body() -> String {
    DEFAULT_WEBHOOK_BODY.to_owned()
}
fn default_webhook_timeout() -> u64 {
    5
}

impl crate::ApiConfig {
    /// The URL of this registry as seen from the machine it runs on:
    /// `https://LISTEN` with a certificate, `http://LISTEN` without, an
    /// unspecified address (`0.0.0.0`, `::`) replaced by loopback.
    pub fn local_url(&self) -> String {
        let scheme = if self.tls_cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("{scheme}://{addr}")
    }
}

/// Replaces the placeholders of a webhook body `template`: each value is
/// JSON-string escaped (without quotes), so a username cannot break out of
/// the string it is placed in.
pub fn render_webhook_body(
    template: &str,
    username: &str,
    device_id: i64,
    challenge_id: &str,
) -> String {
    let esc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out
    };
    template
        .replace("{{username}}", &esc(username))
        .replace("{{device_id}}", &device_id.to_string())
        .replace("{{challenge_id}}", &esc(challenge_id))
}

/// Whether `name` is an HTTP header name (RFC 9110 §5.1: a token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl PushConfig {
    /// Checks the values serde cannot: ranges, URLs (parsed), the body
    /// template (JSON once filled in), header names, values and the form
    /// of their `value_file`s (the files themselves: [`Config::check_files`](crate::Config::check_files)).
    pub(crate) fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let at = |key: &str, message: String| ConfigError::at_key(path, text, key, message);
        if !(1..=MAX_CHALLENGE_LIFETIME).contains(&self.challenge_lifetime) {
            return Err(at(
                "challenge_lifetime",
                format!(
                    "challenge_lifetime must be between 1 and {MAX_CHALLENGE_LIFETIME} seconds"
                ),
            ));
        }
        if !(60..=86_400).contains(&self.activation_lifetime) {
            return Err(at(
                "activation_lifetime",
                "activation_lifetime must be between 60 and 86400 seconds".into(),
            ));
        }
        if self.max_challenges == 0 {
            return Err(at(
                "max_challenges",
                "max_challenges must be at least 1".into(),
            ));
        }
        if self.rate_window == 0 {
            return Err(at("rate_window", "rate_window must be at least 1".into()));
        }
        for (key, url, base) in [
            ("public_url", &self.public_url, true),
            ("webhook_url", &self.webhook_url, false),
            ("alert_webhook_url", &self.alert_webhook_url, false),
        ] {
            if let Some(u) = url {
                if let Some(why) = url_problem(u, base) {
                    return Err(at(key, format!("{key} {u:?} {why}")));
                }
            }
        }
        let sample = render_webhook_body(&self.webhook_body, "alice", 1, "challenge");
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&sample) {
            return Err(at(
                "webhook_body",
                format!(
                    "webhook_body is not JSON once its placeholders are filled in ({e}): {sample}"
                ),
            ));
        }
        if !(1..=30).contains(&self.webhook_timeout) {
            return Err(at(
                "webhook_timeout",
                "webhook_timeout must be between 1 and 30 seconds".into(),
            ));
        }
        if let Some(name) = self.webhook_headers.keys().find(|n| !is_header_name(n)) {
            return Err(at(
                "webhook_headers",
                format!("webhook_headers: {name:?} is not an HTTP header name"),
            ));
        }
        for (name, value) in &self.webhook_headers {
            let at = |message| header_at(path, text, name, message);
            match value {
                WebhookHeader::Value(v) if v.chars().any(char::is_control) => {
                    return Err(at(format!(
                        "webhook_headers: the value of {name:?} has a control character"
                    )));
                }
                WebhookHeader::File(f) if !f.value_file.is_absolute() => {
                    return Err(at(format!(
                        "webhook_headers: the value_file of {name:?} must be an absolute path, not {}",
                        f.value_file.display()
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Why `u` is not an http(s) URL with a host (`base`: nor one with a
/// query or fragment, as it is the base of other URLs), if it is not.
pub(crate) fn url_problem(u: &str, base: bool) -> Option<String> {
    let parsed = match url::Url::parse(u) {
        Ok(p) => p,
        Err(e) => return Some(format!("is not a URL: {e}")),
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some("must start with https:// or http://".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Some("has no host".into());
    }
    if base && (parsed.query().is_some() || parsed.fragment().is_some()) {
        return Some("must not have a query (?...) or fragment (#...)".into());
    }
    None
}

/// An error at the line setting webhook header `name` (a
/// `[api.push.webhook_headers]` table), else at `webhook_headers`.
pub(crate) fn header_at(path: &Path, text: &str, name: &str, message: String) -> ConfigError {
    let quoted = format!("{name:?}");
    let key = [name, quoted.as_str()]
        .into_iter()
        .find(|k| {
            text.lines().any(|l| {
                l.trim_start()
                    .strip_prefix(k)
                    .is_some_and(|r| r.trim_start().starts_with('='))
            })
        })
        .unwrap_or("webhook_headers");
    ConfigError::at_key(path, text, key, message)
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn parse(push: &str) -> Result<Config, String> {
        let text = format!(
            "version = 1\n[api]\nlisten = \"127.0.0.1:8443\"\ndatabase = \"sqlite:///x.db\"\nsecret_key_file = \"/k\"\nadmin_token_file = \"/t\"\n[api.push]\n{push}"
        );
        Config::parse(&text, std::path::Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        let p = &c.api.unwrap().push;
        assert!(p.number_matching);
        assert_eq!(p.challenge_lifetime, 60);
        assert_eq!(p.activation_lifetime, 600);
        assert_eq!((p.max_challenges, p.rate_window), (5, 600));
        assert_eq!(p.webhook_url, None);
        assert_eq!(p.webhook_timeout, 5);
    }

    #[test]
    fn values_are_checked_at_their_line() {
        assert_eq!(
            parse("challenge_lifetime = 121\n").unwrap_err(),
            "t.toml:8:1: challenge_lifetime must be between 1 and 120 seconds"
        );
        assert_eq!(
            parse("max_challenges = 0\n").unwrap_err(),
            "t.toml:8:1: max_challenges must be at least 1"
        );
        assert_eq!(
            parse("number_matching = true\nwebhook_url = \"ftp://x\"\n").unwrap_err(),
            "t.toml:9:1: webhook_url \"ftp://x\" must start with https:// or http://"
        );
        let e = parse("webhook_headers = { \"bad name\" = \"x\" }\n").unwrap_err();
        assert!(
            e.starts_with("t.toml:8:1: webhook_headers: \"bad name\""),
            "{e}"
        );
        let e = parse("colour = 1\n").unwrap_err();
        assert!(e.starts_with("t.toml:8:1: unknown field `colour`"), "{e}");
    }

    #[test]
    fn webhook_headers_from_values_and_files() {
        let c = parse(
            "webhook_url = \"https://relay.example/wake\"\nwebhook_headers = { \"X-Site\" = \"prod\", Authorization = { value_file = \"/etc/twostep/relay.token\" } }\n",
        )
        .unwrap();
        let p = c.api.unwrap().push;
        assert_eq!(
            p.webhook_headers["X-Site"],
            super::WebhookHeader::Value("prod".into())
        );
        assert_eq!(
            p.webhook_headers["Authorization"],
            super::WebhookHeader::File(super::WebhookHeaderFile {
                value_file: "/etc/twostep/relay.token".into()
            })
        );
    }

    #[test]
    fn webhook_body_escapes_values() {
        let body = super::render_webhook_body(super::DEFAULT_WEBHOOK_BODY, "a\"b\\c", 7, "cid");
        assert_eq!(
            body,
            r#"{"username":"a\"b\\c","device_id":7,"challenge_id":"cid"}"#
        );
    }

    #[test]
    fn urls_are_parsed() {
        for (line, want) in [
            ("webhook_url = \"https://\"\n", "webhook_url \"https://\" is not a URL: empty host"),
            ("webhook_url = \"file:///relay\"\n", "webhook_url \"file:///relay\" must start with https:// or http://"),
            ("public_url = \"https://reg.example/?x=1\"\n", "public_url \"https://reg.example/?x=1\" must not have a query (?...) or fragment (#...)"),
            ("public_url = \"https://reg .example\"\n", "public_url \"https://reg .example\" is not a URL: invalid international domain name"),
        ] {
            assert_eq!(parse(line).unwrap_err(), format!("t.toml:8:1: {want}"));
        }
        let c = parse("public_url = \"https://reg.example:8443/\"\nwebhook_url = \"https://relay.example/w?k=1\"\n");
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn the_webhook_body_must_render_to_json() {
        let e = parse("webhook_body = '{\"u\": {{username}}}'\n").unwrap_err();
        assert!(
            e.starts_with(
                "t.toml:8:1: webhook_body is not JSON once its placeholders are filled in"
            ),
            "{e}"
        );
        assert!(
            parse("webhook_body = '{\"u\": \"{{username}}\", \"d\": {{device_id}}}'\n").is_ok()
        );
    }

    #[test]
    fn header_value_files_follow_the_secret_file_rule() {
        use std::os::unix::fs::PermissionsExt;
        let e =
            parse("[api.push.webhook_headers]\nAuthorization = { value_file = \"relay.token\" }\n")
                .unwrap_err();
        assert_eq!(
            e,
            "t.toml:9:1: webhook_headers: the value_file of \"Authorization\" must be an absolute path, not relay.token"
        );
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("relay.token");
        let cfg = |file: &std::path::Path| {
            format!("webhook_url = \"https://relay.example/w\"\nwebhook_headers = {{ Authorization = {{ value_file = {:?} }} }}\n", file.display().to_string())
        };
        let check = |file: &std::path::Path| {
            let text = format!(
                "version = 1\n[api]\nlisten = \"127.0.0.1:8443\"\ndatabase = \"sqlite:///x.db\"\nsecret_key_file = \"/k\"\nadmin_token_file = \"/t\"\n[api.push]\n{}",
                cfg(file)
            );
            let c = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
            let toml = dir.path().join("t.toml");
            std::fs::write(&toml, &text).unwrap();
            c.check_files(&toml)
                .map_err(|e| e.to_string().replace(&toml.display().to_string(), "t.toml"))
        };
        let e = check(&token).unwrap_err();
        assert!(
            e.starts_with("t.toml:9:1: [api.push] webhook_headers \"Authorization\" value_file: "),
            "{e}"
        );
        std::fs::write(&token, "Bearer x\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check(&token).unwrap_err();
        assert!(e.starts_with("t.toml:9:1: ") && e.contains("0644"), "{e}");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(check(&token), Ok(()));
    }
}
