//! What works in `[radius]` but weakens the setup: the one set of rules
//! that `twostep-radiusd` logs at startup and prints with `--check`, and
//! that `twostep doctor` reports.
//!
//! [`warnings`] looks at the configuration and at the length of each
//! shared secret, which the caller supplies (the daemon from the secrets
//! it loaded, doctor from the files), so nothing here reads a secret.

use crate::{RadiusConfig, RadiusMode};
use ipnet::IpNet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Shortest shared secret, in octets, that draws no warning: RFC 2865 §3
/// asks for at least 16 octets; shorter ones can be found offline from one
/// captured request.
pub const MIN_SHARED_SECRET: usize = 16;

/// The other end of a shared secret: a `[[radius.client]]` (a NAS) or a
/// `[[radius.upstream]]` (a server checking primary passwords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A `[[radius.client]]`, by name.
    Client(String),
    /// A `[[radius.upstream]]`, by name.
    Upstream(String),
}

impl Peer {
    /// `"client"` or `"upstream"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Peer::Client(_) => "client",
            Peer::Upstream(_) => "upstream",
        }
    }

    /// The name from the configuration.
    pub fn name(&self) -> &str {
        match self {
            Peer::Client(n) | Peer::Upstream(n) => n,
        }
    }
}

impl fmt::Display for Peer {
    /// `client "vpn"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind(), self.name())
    }
}

/// One thing that works but weakens the setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A shared secret shorter than [`MIN_SHARED_SECRET`] octets.
    ShortSecret {
        /// Whose secret.
        peer: Peer,
        /// Its `secret_file`.
        file: PathBuf,
        /// Its length in octets, surrounding whitespace removed.
        octets: usize,
    },
    /// `require_message_authenticator = false` (RFC 3579 §3.2,
    /// CVE-2024-3596): a legacy NAS, or an upstream whose answers are
    /// taken without Message-Authenticator.
    NoMessageAuthenticator {
        /// Which client or upstream.
        peer: Peer,
    },
    /// `primary = "none"` on a client whose mode carries a password: the
    /// password part is not checked.
    PasswordUnchecked {
        /// The client's name.
        client: String,
    },
    /// A client's network lies inside another client's; requests from it
    /// go to the most specific one.
    NetworkInside {
        /// The client with the narrower network.
        client: String,
        /// Its network.
        network: IpNet,
        /// The client with the wider network.
        outer: String,
        /// The wider network.
        outer_network: IpNet,
    },
    /// `push_number_matching = false`: a NAS that cannot show the number
    /// of a push. Its pushes go through only while the registry's
    /// `[api.push] number_matching` is off, approved without matching a
    /// number (open to approval by reflex, "push fatigue").
    NoPushNumberMatching {
        /// The client's name.
        client: String,
    },
    /// A client's network is every address (`0.0.0.0/0`, `::/0`): only
    /// the shared secret tells its requests from anyone's.
    AnyAddress {
        /// The client's name.
        client: String,
        /// Its network.
        network: IpNet,
    },
    /// `fail_mode = "open"`: while the registry cannot be reached, logins
    /// pass without a second factor.
    FailOpen {
        /// Whether an `otp-only` client exists, where the code is all there
        /// is: then nothing at all is checked.
        otp_only: bool,
    },
    /// `[radius]` has no client: every request is dropped.
    NoClients,
}

impl Warning {
    /// What to do about it, one sentence.
    pub fn fix(&self) -> String {
        match self {
            Warning::ShortSecret { file, .. } => format!(
                "write {MIN_SHARED_SECRET} or more random characters (e.g. `openssl rand -base64 24 > {}`), chmod 600, and set the same secret on the other side",
                file.display()
            ),
            Warning::NoMessageAuthenticator {
                peer: Peer::Client(_),
            } => "make the NAS send Message-Authenticator, then remove require_message_authenticator = false".into(),
            Warning::NoMessageAuthenticator {
                peer: Peer::Upstream(_),
            } => "make the server send Message-Authenticator, then remove require_message_authenticator = false".into(),
            Warning::PasswordUnchecked { .. } => {
                "set primary to the [[radius.upstream]] that checks passwords, or use mode = \"otp-only\"".into()
            }
            Warning::NetworkInside {
                client,
                network,
                outer,
                ..
            } => format!(
                "nothing if intended; if requests from {network} belong to client {outer:?}, remove client {client:?} or change its address"
            ),
            Warning::NoPushNumberMatching { .. } => "use a NAS that shows Access-Challenge prompts (mode = \"challenge\" or \"auto-push\") and remove push_number_matching = false; codes work either way".into(),
            Warning::AnyAddress { .. } => {
                "set address to the NAS's own address (or its management network)".into()
            }
            Warning::FailOpen { .. } => {
                "set fail_mode = \"closed\" (the default)".into()
            }
            Warning::NoClients => "add a [[radius.client]] for each NAS".into(),
        }
    }
}

impl fmt::Display for Warning {
    /// One sentence for a log line, naming the client or upstream.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ShortSecret { peer, octets, .. } => write!(
                f,
                "{peer}: shared secret is {octets} characters, use at least {MIN_SHARED_SECRET} (RFC 2865 §3), e.g. `openssl rand -base64 24`"
            ),
            Warning::NoMessageAuthenticator {
                peer: peer @ Peer::Client(_),
            } => write!(
                f,
                "{peer}: require_message_authenticator = false: legacy NAS, Access-Requests without Message-Authenticator (RFC 3579 §3.2) are accepted; set it to true once the NAS sends it"
            ),
            Warning::NoMessageAuthenticator {
                peer: peer @ Peer::Upstream(_),
            } => write!(
                f,
                "{peer}: require_message_authenticator = false: its answers are accepted without Message-Authenticator (RFC 3579 §3.2, CVE-2024-3596); set it to true once the server sends it"
            ),
            Warning::PasswordUnchecked { client } => write!(
                f,
                "client {client:?}: primary = \"none\": the password part is not checked by twostep-radiusd, only the code"
            ),
            Warning::NetworkInside {
                client,
                network,
                outer,
                outer_network,
            } => write!(
                f,
                "client {client:?} ({network}) lies inside client {outer:?} ({outer_network}): requests from {network} go to {client:?}, the most specific network"
            ),
            Warning::NoPushNumberMatching { client } => write!(
                f,
                "client {client:?}: push_number_matching = false: pushes to this NAS carry no number to match, so they are refused while the registry's [api.push] number_matching is on, and approved by a tap (open to push fatigue) when it is off"
            ),
            Warning::AnyAddress { client, network } => write!(
                f,
                "client {client:?}: address {network} takes requests from every address: only its shared secret keeps anyone else from sending logins"
            ),
            Warning::FailOpen { otp_only } => {
                f.write_str("[radius] fail_mode = \"open\": while the registry is unreachable, VPN logins pass without a second factor")?;
                if *otp_only {
                    f.write_str(" (and at an otp-only client, where the code is all there is, without any check: any name and any code)")?;
                }
                Ok(())
            }
            Warning::NoClients => f.write_str("[radius] has no [[radius.client]]: every request is dropped"),
        }
    }
}

/// Everything in `radius` that works but weakens the setup, clients first
/// (most specific network first, as the daemon matches them), then
/// upstreams, then overlapping networks: shared secrets shorter than
/// [`MIN_SHARED_SECRET`], clients and upstreams that do not require
/// Message-Authenticator, clients with `primary = "none"` outside
/// `otp-only`, clients with `push_number_matching = false` outside
/// `otp-only` (which has no push), a client whose network is every
/// address, networks inside another client's, `fail_mode = "open"`, no
/// client at all.
///
/// `secret_len` gives the length in octets of the secret in a
/// `secret_file` (surrounding whitespace removed, as
/// [`read_secret_file`](crate::read_secret_file) returns it), or `None`
/// when it is unknown (unreadable): then its length is not judged.
pub fn warnings(
    radius: &RadiusConfig,
    secret_len: impl Fn(&Path) -> Option<usize>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let short = |peer: Peer, file: &Path| {
        let octets = secret_len(file)?;
        (octets < MIN_SHARED_SECRET).then(|| Warning::ShortSecret {
            peer,
            file: file.to_owned(),
            octets,
        })
    };
    // Stable: clients with the same prefix length keep the file's order.
    let mut clients: Vec<_> = radius.clients.iter().collect();
    clients.sort_by_key(|c| std::cmp::Reverse(c.address.prefix_len()));
    for c in &clients {
        out.extend(short(Peer::Client(c.name.clone()), &c.secret_file));
        if !c.require_message_authenticator {
            out.push(Warning::NoMessageAuthenticator {
                peer: Peer::Client(c.name.clone()),
            });
        }
        if c.primary == "none" && c.mode != RadiusMode::OtpOnly {
            out.push(Warning::PasswordUnchecked {
                client: c.name.clone(),
            });
        }
        if !c.push_number_matching && c.mode != RadiusMode::OtpOnly {
            out.push(Warning::NoPushNumberMatching {
                client: c.name.clone(),
            });
        }
        if c.address.prefix_len() == 0 {
            out.push(Warning::AnyAddress {
                client: c.name.clone(),
                network: c.address,
            });
        }
    }
    for u in &radius.upstreams {
        if let Some(file) = &u.secret_file {
            out.extend(short(Peer::Upstream(u.name.clone()), file));
        }
        if !u.require_message_authenticator {
            out.push(Warning::NoMessageAuthenticator {
                peer: Peer::Upstream(u.name.clone()),
            });
        }
    }
    for (i, inner) in clients.iter().enumerate() {
        let network = inner.address.trunc();
        for outer in &clients[i + 1..] {
            let outer_network = outer.address.trunc();
            // The same network twice is refused by the daemon, not warned of.
            if outer_network != network && outer_network.contains(&network) {
                out.push(Warning::NetworkInside {
                    client: inner.name.clone(),
                    network,
                    outer: outer.name.clone(),
                    outer_network,
                });
            }
        }
    }
    if radius.fail_mode == crate::FailMode::Open {
        out.push(Warning::FailOpen {
            otp_only: radius.clients.iter().any(|c| c.mode == RadiusMode::OtpOnly),
        });
    }
    if radius.clients.is_empty() {
        out.push(Warning::NoClients);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn radius(clients: &str) -> RadiusConfig {
        let text = format!("version = 1\n[radius]\nstate_key_file = \"/k\"\n{clients}");
        Config::parse(&text, Path::new("t.toml"))
            .expect("valid")
            .radius
            .expect("[radius]")
    }

    fn client(name: &str, net: &str, secret: &str, extra: &str) -> String {
        format!(
            "[[radius.client]]\nname = {name:?}\naddress = {net:?}\nsecret_file = {secret:?}\n{extra}\n"
        )
    }

    /// Secret lengths by file name: `/sN` holds N octets.
    fn len(p: &Path) -> Option<usize> {
        p.to_str()?.strip_prefix("/s")?.parse().ok()
    }

    #[test]
    fn a_good_client_draws_no_warning() {
        let r = radius(&client("vpn", "10.0.0.0/8", "/s16", ""));
        assert_eq!(warnings(&r, len), vec![]);
    }

    #[test]
    fn short_secrets_legacy_clients_and_overlaps_are_named() {
        let r = radius(&format!(
            "{}{}{}",
            client("all", "127.0.0.0/8", "/s20", ""),
            client(
                "legacy",
                "10.1.0.0/16",
                "/s20",
                "require_message_authenticator = false"
            ),
            client("one", "127.0.0.2/32", "/s5", ""),
        ));
        let w: Vec<String> = warnings(&r, len).iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(w[0].starts_with("client \"one\": shared secret is 5 characters, use at least 16"));
        assert!(w[1].starts_with("client \"legacy\": require_message_authenticator = false"));
        assert_eq!(
            w[2],
            "client \"one\" (127.0.0.2/32) lies inside client \"all\" (127.0.0.0/8): requests from 127.0.0.2/32 go to \"one\", the most specific network"
        );
    }

    #[test]
    fn upstreams_unchecked_passwords_and_no_clients() {
        let r = radius(
            "[[radius.upstream]]\nname = \"idp\"\naddress = \"10.0.0.5:1812\"\nsecret_file = \"/s3\"\nrequire_message_authenticator = false\n\
             [[radius.client]]\nname = \"vpn\"\naddress = \"10.0.0.0/8\"\nsecret_file = \"/s16\"\nmode = \"append\"\n",
        );
        let w = warnings(&r, len);
        assert_eq!(
            w,
            vec![
                Warning::PasswordUnchecked {
                    client: "vpn".into()
                },
                Warning::ShortSecret {
                    peer: Peer::Upstream("idp".into()),
                    file: "/s3".into(),
                    octets: 3
                },
                Warning::NoMessageAuthenticator {
                    peer: Peer::Upstream("idp".into())
                },
            ]
        );
        assert!(w[2].to_string().contains("CVE-2024-3596"), "{}", w[2]);
        assert!(w[1].fix().contains("openssl rand -base64 24 > /s3"));
        assert_eq!(warnings(&radius(""), len), vec![Warning::NoClients]);
    }

    #[test]
    fn push_without_number_matching_is_named() {
        let r = radius(&format!(
            "{}{}",
            client(
                "old-vpn",
                "10.0.0.0/8",
                "/s16",
                "mode = \"append\"\nprimary = \"none\"\npush_number_matching = false"
            ),
            client(
                "codes",
                "10.1.0.0/16",
                "/s16",
                "push_number_matching = false"
            ),
        ));
        let w = warnings(&r, len);
        assert_eq!(
            w[1..],
            [
                Warning::NoPushNumberMatching {
                    client: "old-vpn".into()
                },
                Warning::NetworkInside {
                    client: "codes".into(),
                    network: "10.1.0.0/16".parse().unwrap(),
                    outer: "old-vpn".into(),
                    outer_network: "10.0.0.0/8".parse().unwrap(),
                },
            ],
            "otp-only has no push: no warning for \"codes\""
        );
        assert!(w[1].to_string().starts_with(
            "client \"old-vpn\": push_number_matching = false: pushes to this NAS carry no number"
        ));
        assert!(w[1].fix().contains("remove push_number_matching = false"));
    }

    #[test]
    fn push_keys_and_their_defaults() {
        let r = radius(&client("vpn", "10.0.0.0/8", "/s16", "mode = \"auto-push\""));
        assert_eq!(r.max_pending_pushes, 10_000);
        assert_eq!(r.clients[0].mode, RadiusMode::AutoPush);
        assert!(r.clients[0].push_number_matching);
        let e = Config::parse(
            "version = 1\n[radius]\nstate_key_file = \"/k\"\nmax_pending_pushes = 0\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e, "t.toml:4:1: max_pending_pushes must be at least 1",
            "{e}"
        );
    }

    #[test]
    fn challenge_max_tries_default_and_range() {
        let r = radius(&client("vpn", "10.0.0.0/8", "/s16", ""));
        assert_eq!(r.challenge_max_tries, 3);
        for (v, ok) in [("0", false), ("1", true), ("10", true), ("11", false)] {
            let got = Config::parse(
                &format!(
                    "version = 1\n[radius]\nstate_key_file = \"/k\"\nchallenge_max_tries = {v}\n"
                ),
                Path::new("t.toml"),
            );
            match (got, ok) {
                (Ok(c), true) => {
                    assert_eq!(c.radius.unwrap().challenge_max_tries.to_string(), v)
                }
                (Err(e), false) => assert_eq!(
                    e.to_string(),
                    "t.toml:4:1: challenge_max_tries must be between 1 and 10"
                ),
                (got, _) => panic!("{v}: {:?}", got.map(|_| ())),
            }
        }
    }

    #[test]
    fn a_client_of_every_address_is_warned_of() {
        for net in ["0.0.0.0/0", "::/0"] {
            let r = radius(&client("any", net, "/s16", ""));
            let w = warnings(&r, len);
            assert_eq!(
                w,
                vec![Warning::AnyAddress {
                    client: "any".into(),
                    network: net.parse().unwrap()
                }]
            );
            assert!(
                w[0].to_string()
                    .contains("takes requests from every address"),
                "{}",
                w[0]
            );
        }
    }

    #[test]
    fn fail_open_is_warned_of_and_worse_with_otp_only() {
        let r = radius(&format!(
            "fail_mode = \"open\"\n{}",
            client("vpn", "10.0.0.0/8", "/s16", "mode = \"otp-only\"")
        ));
        let w = warnings(&r, len);
        assert_eq!(w, vec![Warning::FailOpen { otp_only: true }]);
        assert!(
            w[0].to_string()
                .contains("without any check: any name and any code"),
            "{}",
            w[0]
        );
        let r = radius(&format!(
            "fail_mode = \"open\"\n{}",
            client(
                "vpn",
                "10.0.0.0/8",
                "/s16",
                "mode = \"append\"\nprimary = \"none\""
            )
        ));
        assert!(warnings(&r, len).contains(&Warning::FailOpen { otp_only: false }));
    }

    #[test]
    fn unknown_lengths_and_equal_networks_draw_no_warning() {
        let r = radius(&format!(
            "{}{}",
            client("a", "10.0.0.0/8", "/unreadable", ""),
            client("b", "10.0.0.0/8", "/unreadable", ""),
        ));
        assert_eq!(warnings(&r, len), vec![]);
    }
}
