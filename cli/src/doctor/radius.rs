//! `[radius]`: the warnings `twostep-radiusd` logs at startup
//! ([`twostep_config::radius::warnings`]), as findings, and an ok line for
//! each shared secret and client that passes.

use super::report::{Finding, Status};
use twostep_config::radius::{warnings, Peer, Warning};
use twostep_config::{Config, RadiusConfig, Secret};

/// The check name of these findings.
const CHECK: &str = "radius";

/// Length in octets of the secret in `path` as the daemon reads it
/// (surrounding whitespace removed); `None` when it cannot be read, which
/// the file checks report.
fn secret_len(path: &std::path::Path) -> Option<usize> {
    let raw = std::fs::read(path).ok()?;
    Some(Secret::from_file_contents(raw).expose().len())
}

/// Findings for `[radius]`, when the configuration has it: per client and
/// upstream the length of its shared secret, per client whether it
/// requires Message-Authenticator, then the other warnings.
pub fn check_radius(c: &Config) -> Vec<Finding> {
    let Some(r) = &c.radius else {
        return Vec::new();
    };
    let mut out = findings(r, &warnings(r, secret_len), secret_len);
    out.extend(check_radsec(r));
    out
}

/// `[radius.radsec]`: the certificate, key and CA loaded as
/// `twostep-radiusd` loads them.
fn check_radsec(r: &RadiusConfig) -> Option<Finding> {
    let rs = r.radsec.as_ref()?;
    Some(
        match twostep_radius::radsec::load_server_config(&rs.cert_file, &rs.key_file, &rs.ca_file) {
            Ok(_) => Finding::ok(
                CHECK,
                format!(
                    "RadSec on {}: certificate {}, key and CA {} load",
                    rs.listen,
                    rs.cert_file.display(),
                    rs.ca_file.display()
                ),
            ),
            Err(e) => Finding::new(
                Status::Fail,
                CHECK,
                format!("RadSec: {e}"),
                "give a PEM certificate chain, its PEM private key (mode 0600) and the PEM CA certificates that sign the clients' certificates",
            ),
        },
    )
}

/// [`check_radius`] over the warnings `found`; `secret_len` as for
/// [`warnings`].
fn findings(
    r: &RadiusConfig,
    found: &[Warning],
    secret_len: impl Fn(&std::path::Path) -> Option<usize>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut reported = vec![false; found.len()];
    let mut take = |want: &dyn Fn(&Warning) -> bool| {
        let i = (0..found.len()).find(|&i| !reported[i] && want(&found[i]))?;
        reported[i] = true;
        Some(&found[i])
    };
    let peers =
        r.clients
            .iter()
            .map(|cl| (Peer::Client(cl.name.clone()), &cl.secret_file))
            .chain(r.upstreams.iter().filter_map(|up| {
                Some((Peer::Upstream(up.name.clone()), up.secret_file.as_ref()?))
            }));
    for (peer, file) in peers {
        let what = format!("{} {}", peer.kind(), peer.name());
        match take(&|w| matches!(w, Warning::ShortSecret { peer: p, .. } if *p == peer)) {
            // The daemon's own warning, word for word and as a warning: a
            // short secret works (RFC 2865 §3 prefers 16 octets), so
            // `twostep-radiusd --check` passes with it and so does doctor.
            Some(w @ Warning::ShortSecret { .. }) => {
                out.push(Finding::new(Status::Warn, CHECK, w.to_string(), w.fix()))
            }
            _ => {
                if let Some(len) = secret_len(file) {
                    out.push(Finding::ok(
                        CHECK,
                        format!("{what}: shared secret has {len} characters"),
                    ));
                }
            }
        }
    }
    for cl in &r.clients {
        let peer = Peer::Client(cl.name.clone());
        match take(&|w| matches!(w, Warning::NoMessageAuthenticator { peer: p } if *p == peer)) {
            Some(w) => out.push(Finding::new(
                Status::Warn,
                CHECK,
                format!(
                    "client {} is in legacy mode (require_message_authenticator = false): Access-Requests without Message-Authenticator are accepted, open to forgery (Blast-RADIUS, CVE-2024-3596)",
                    cl.name
                ),
                w.fix(),
            )),
            None => out.push(Finding::ok(
                CHECK,
                format!("client {}: Message-Authenticator required", cl.name),
            )),
        }
    }
    for (w, _) in found.iter().zip(reported).filter(|(_, done)| !done) {
        out.push(Finding::new(Status::Warn, CHECK, w.to_string(), w.fix()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn radius(text: &str) -> RadiusConfig {
        let text = format!("version = 1\n[radius]\nstate_key_file = \"/k\"\n{text}");
        Config::parse(&text, Path::new("t.toml"))
            .expect("valid")
            .radius
            .expect("[radius]")
    }

    /// `/sN` holds N octets.
    fn len(p: &Path) -> Option<usize> {
        p.to_str()?.strip_prefix("/s")?.parse().ok()
    }

    fn check(text: &str) -> Vec<Finding> {
        let r = radius(text);
        findings(&r, &warnings(&r, len), len)
    }

    fn radius_of_weak() -> RadiusConfig {
        radius(
            "[[radius.client]]\nname = \"weak\"\naddress = \"10.0.0.0/8\"\nsecret_file = \"/s5\"\n",
        )
    }

    #[test]
    fn every_warning_is_a_finding_once() {
        let f = check(
            "[[radius.upstream]]\nname = \"idp\"\naddress = \"10.0.0.5:1812\"\nsecret_file = \"/s3\"\nrequire_message_authenticator = false\n\
             [[radius.client]]\nname = \"weak\"\naddress = \"10.0.0.0/8\"\nsecret_file = \"/s5\"\nmode = \"append\"\n\
             [[radius.client]]\nname = \"legacy\"\naddress = \"10.1.0.0/16\"\nsecret_file = \"/s19\"\nrequire_message_authenticator = false\n",
        );
        let lines: Vec<String> = f.iter().map(ToString::to_string).collect();
        let st: Vec<Status> = f.iter().map(|f| f.status).collect();
        assert_eq!(
            st,
            vec![
                Status::Warn,
                Status::Ok,
                Status::Warn,
                Status::Ok,
                Status::Warn,
                Status::Warn,
                Status::Warn,
                Status::Warn,
            ],
            "{lines:#?}"
        );
        // The words twostep-radiusd --check prints, as a warning.
        let weak = warnings(&radius_of_weak(), len);
        assert_eq!(
            lines[0],
            format!("warn radius: {} -- fix: {}", weak[0], weak[0].fix())
        );
        assert!(lines[0].starts_with(
            "warn radius: client \"weak\": shared secret is 5 characters, use at least 16 (RFC 2865 §3)"
        ));
        assert_eq!(
            lines[1],
            "ok   radius: client legacy: shared secret has 19 characters"
        );
        assert!(lines[2].contains("upstream \"idp\": shared secret is 3 characters"));
        assert_eq!(
            lines[3],
            "ok   radius: client weak: Message-Authenticator required"
        );
        assert!(lines[4].contains("client legacy is in legacy mode"));
        assert!(lines[5].contains("client \"weak\": primary = \"none\""));
        assert!(lines[6].contains("upstream \"idp\": require_message_authenticator = false"));
        assert!(lines[7].contains("client \"legacy\" (10.1.0.0/16) lies inside client \"weak\""));
    }

    #[test]
    fn push_without_number_matching_is_flagged() {
        let f = check(
            "[[radius.client]]\nname = \"old-vpn\"\naddress = \"10.0.0.0/8\"\nsecret_file = \"/s16\"\nmode = \"append\"\npush_number_matching = false\n",
        );
        let flagged: Vec<&Finding> = f
            .iter()
            .filter(|f| f.message.contains("push_number_matching = false"))
            .collect();
        assert_eq!(flagged.len(), 1, "{f:#?}");
        assert_eq!(flagged[0].status, Status::Warn);
        assert!(flagged[0].message.starts_with("client \"old-vpn\": "));
    }

    #[test]
    fn no_clients_is_a_warning() {
        let f = check("");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Warn);
        assert!(f[0].message.contains("has no [[radius.client]]"));
    }
}
