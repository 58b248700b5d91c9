//! `[api.portal.webauthn]`: security keys (WebAuthn / FIDO2) on the
//! Security info page and its sign-in.
//!
//! A key is bound to a *relying party*: an id (a domain, such as
//! `registry.example.com` or `example.com`) and the origin its pages are
//! served from (`https://registry.example.com:8443`, port included).
//! Browsers offer security keys only to secure pages, so the origin is
//! `https://`, or `http://` for `localhost` alone; the id is never an IP
//! address. Both default from `[api.portal] public_url`.

use serde::Deserialize;

/// How much a security key must prove about its holder beyond a touch
/// (WebAuthn `userVerification`: a PIN or fingerprint on the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    /// Ask for it where the key can (keys with a PIN or fingerprint set up
    /// must give it every time after), accept keys without. The default.
    #[default]
    Preferred,
    /// Refuse keys that do not verify the user.
    Required,
    /// Ask only for a touch (user presence).
    Discouraged,
}

impl UserVerification {
    /// Its word in the config and in WebAuthn.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preferred => "preferred",
            Self::Required => "required",
            Self::Discouraged => "discouraged",
        }
    }
}

/// `[api.portal.webauthn]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnConfig {
    /// Relying party id, a domain: the origin's host or a parent domain of
    /// it (`example.com` for `https://registry.example.com`). Default: the
    /// origin's host.
    #[serde(default)]
    pub rp_id: Option<String>,
    /// The origin users' browsers load the pages from,
    /// `https://host[:port]` (or `http://localhost[:port]`). Default: the
    /// origin of `[api.portal] public_url`.
    #[serde(default)]
    pub origin: Option<String>,
    /// `preferred` (default), `required` or `discouraged`.
    #[serde(default)]
    pub user_verification: UserVerification,
}

/// The relying party the pages register and check security keys for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// The relying party id (a domain, lowercase).
    pub id: String,
    /// The origin, `scheme://host[:port]` (a default port left out, as
    /// browsers write it).
    pub origin: String,
}

/// Why security keys cannot be offered, and which key of the config says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingPartyProblem {
    /// The config key to point at: `origin`, `rp_id` or `public_url`.
    pub key: &'static str,
    /// One line for the administrator.
    pub message: String,
}

impl WebauthnConfig {
    /// Whether `origin` or `rp_id` is set: then they must make a relying
    /// party, or the config is refused.
    pub fn is_explicit(&self) -> bool {
        self.origin.is_some() || self.rp_id.is_some()
    }

    /// The relying party of this table, with `public_url` (from
    /// `[api.portal]`) as the default origin. `Ok(None)` when neither
    /// `origin` nor `public_url` is set (security keys are then off).
    ///
    /// # Errors
    /// When the origin is no secure web origin, its host is an IP address,
    /// or `rp_id` is not the origin's host or a parent domain of it.
    pub fn relying_party(
        &self,
        public_url: Option<&str>,
    ) -> Result<Option<RelyingParty>, RelyingPartyProblem> {
        let (key, url) = match (&self.origin, public_url) {
            (Some(o), _) => ("origin", o.as_str()),
            (None, Some(u)) => ("public_url", u),
            (None, None) if self.rp_id.is_some() => {
                return Err(RelyingPartyProblem {
                    key: "rp_id",
                    message: "rp_id needs an origin: set [api.portal.webauthn] origin or [api.portal] public_url".into(),
                })
            }
            (None, None) => return Ok(None),
        };
        let problem = |message: String| RelyingPartyProblem { key, message };
        let parsed = url::Url::parse(url)
            .map_err(|e| problem(format!("{key} {url:?} is not a URL: {e}")))?;
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(_) => {
                return Err(problem(format!(
                    "{key} {url:?} names an IP address; security keys need a host name (WebAuthn relying party ids are domains): set [api.portal.webauthn] origin to the name users' browsers use"
                )))
            }
            None => return Err(problem(format!("{key} {url:?} has no host"))),
        };
        let localhost = host == "localhost" || host.ends_with(".localhost");
        match parsed.scheme() {
            "https" => {}
            "http" if localhost => {}
            _ => {
                return Err(problem(format!(
                    "{key} {url:?}: browsers offer security keys only to https:// pages (http:// only on localhost)"
                )))
            }
        }
        // public_url may carry a path (a reverse proxy's prefix): the
        // origin is its scheme, host and port only. An explicit origin is
        // exactly that.
        if key == "origin"
            && (parsed.path() != "/"
                || parsed.query().is_some()
                || parsed.fragment().is_some()
                || !parsed.username().is_empty()
                || parsed.password().is_some())
        {
            return Err(problem(format!(
                "origin {url:?} must be scheme, host and port only, e.g. \"https://registry.example.com:8443\""
            )));
        }
        let origin = parsed.origin().ascii_serialization();
        let id = match &self.rp_id {
            None => host.clone(),
            Some(id) => {
                let id = id.to_ascii_lowercase();
                let shaped = !id.is_empty()
                    && id.parse::<std::net::IpAddr>().is_err()
                    && id.split('.').all(|l| {
                        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !shaped {
                    return Err(RelyingPartyProblem {
                        key: "rp_id",
                        message: format!(
                            "rp_id {id:?} must be a domain such as \"example.com\" (no scheme, port or IP address)"
                        ),
                    });
                }
                if host != id && !host.ends_with(&format!(".{id}")) {
                    return Err(RelyingPartyProblem {
                        key: "rp_id",
                        message: format!(
                            "rp_id {id:?} must be the origin's host {host:?} or a parent domain of it"
                        ),
                    });
                }
                id
            }
        };
        Ok(Some(RelyingParty { id, origin }))
    }

    /// A warning when `origin` is set and `public_url` (from `[api.portal]`)
    /// gives another origin (scheme, host, port): browsers refuse a key
    /// ceremony whose page origin is not the relying party's, so users who
    /// open the page at `public_url` could not add or use security keys.
    /// `None` when either is unset, unparsable (refused elsewhere) or both
    /// agree.
    pub fn origin_mismatch(&self, public_url: Option<&str>) -> Option<String> {
        let origin = url::Url::parse(self.origin.as_deref()?).ok()?;
        let page = url::Url::parse(public_url?).ok()?;
        let (origin, page) = (
            origin.origin().ascii_serialization(),
            page.origin().ascii_serialization(),
        );
        (origin != page).then(|| {
            format!(
                "[api.portal.webauthn] origin {origin} is not the origin of [api.portal] public_url ({page}): security keys work only on pages opened at {origin}"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rp_id: Option<&str>, origin: Option<&str>) -> WebauthnConfig {
        WebauthnConfig {
            rp_id: rp_id.map(str::to_owned),
            origin: origin.map(str::to_owned),
            user_verification: UserVerification::default(),
        }
    }

    fn rp(id: &str, origin: &str) -> Option<RelyingParty> {
        Some(RelyingParty {
            id: id.into(),
            origin: origin.into(),
        })
    }

    #[test]
    fn an_origin_other_than_public_urls_is_warned_about() {
        let c = cfg(None, Some("https://id.example.com:8443"));
        assert_eq!(
            c.origin_mismatch(Some("https://id.example.com:8443/my/")),
            None
        );
        assert_eq!(c.origin_mismatch(None), None);
        assert_eq!(
            cfg(None, None).origin_mismatch(Some("https://a.example")),
            None
        );
        let w = c
            .origin_mismatch(Some("https://id.example.com/"))
            .expect("another port is another origin");
        assert!(w.contains("https://id.example.com:8443"), "{w}");
        assert!(w.contains("(https://id.example.com)"), "{w}");
        assert!(c
            .origin_mismatch(Some("http://id.example.com:8443"))
            .is_some());
    }

    #[test]
    fn origins_with_ports_and_defaults_from_public_url() {
        assert_eq!(
            cfg(None, Some("https://Registry.Example.com:8443"))
                .relying_party(None)
                .unwrap(),
            rp("registry.example.com", "https://registry.example.com:8443")
        );
        // The default port is left out, as the browser writes the origin.
        assert_eq!(
            cfg(None, Some("https://registry.example.com:443"))
                .relying_party(None)
                .unwrap(),
            rp("registry.example.com", "https://registry.example.com")
        );
        assert_eq!(
            cfg(Some("example.com"), None)
                .relying_party(Some("https://id.example.com:8443/twostep/"))
                .unwrap(),
            rp("example.com", "https://id.example.com:8443")
        );
        assert_eq!(
            cfg(None, Some("http://localhost:18080"))
                .relying_party(None)
                .unwrap(),
            rp("localhost", "http://localhost:18080")
        );
        // The explicit origin wins over public_url.
        assert_eq!(
            cfg(None, Some("https://b.example.com"))
                .relying_party(Some("https://a.example.com"))
                .unwrap(),
            rp("b.example.com", "https://b.example.com")
        );
        assert_eq!(cfg(None, None).relying_party(None).unwrap(), None);
        assert!(!cfg(None, None).is_explicit());
    }

    #[test]
    fn insecure_ip_and_foreign_relying_parties_are_refused() {
        for (c, public_url, key, words) in [
            (
                cfg(None, Some("http://registry.example.com")),
                None,
                "origin",
                "https://",
            ),
            (
                cfg(None, Some("https://192.0.2.7:8443")),
                None,
                "origin",
                "IP address",
            ),
            (
                cfg(None, None),
                Some("http://127.0.0.1:8443"),
                "public_url",
                "IP address",
            ),
            (
                cfg(None, Some("https://a.example.com/my/")),
                None,
                "origin",
                "scheme, host and port",
            ),
            (cfg(None, Some("not a url")), None, "origin", "not a URL"),
            (
                cfg(Some("other.com"), Some("https://a.example.com")),
                None,
                "rp_id",
                "parent domain",
            ),
            (
                cfg(Some("xample.com"), Some("https://a.example.com")),
                None,
                "rp_id",
                "parent domain",
            ),
            (
                cfg(Some("https://a.example.com"), Some("https://a.example.com")),
                None,
                "rp_id",
                "must be a domain",
            ),
            (
                cfg(Some("example.com"), None),
                None,
                "rp_id",
                "needs an origin",
            ),
        ] {
            let e = c.relying_party(public_url).unwrap_err();
            assert_eq!(e.key, key, "{e:?}");
            assert!(e.message.contains(words), "{words}: {e:?}");
        }
    }
}
