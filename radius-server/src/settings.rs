//! The server's runtime settings: `[radius]` and `[registry]` of the
//! configuration file with every secret file read and checked up front.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use twostep_config::radius::Warning;
use twostep_config::{read_secret_file, Config, FailMode, RadiusMode, Secret};

use crate::state::StateKey;
use crate::Error;

/// An upstream RADIUS server that checks primary passwords.
#[derive(Debug)]
pub struct Upstream {
    /// Name from the configuration.
    pub name: String,
    /// Address and port.
    pub address: SocketAddr,
    /// Shared secret of this leg.
    pub secret: Secret,
    /// Wait for one answer.
    pub timeout: Duration,
    /// Retransmissions after the first try.
    pub retries: u32,
    /// Whether answers must carry Message-Authenticator.
    pub require_message_authenticator: bool,
    /// RadSec instead of UDP: the TLS client setup and the name the
    /// upstream's certificate must carry.
    pub radsec: Option<UpstreamTls>,
}

/// The TLS side of an upstream reached over RadSec.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Client certificate presented, upstream certificate verified.
    pub config: Arc<rustls::ClientConfig>,
    /// Name (or IP address) expected in the upstream's certificate.
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Longest time one primary check can take: every try waits `timeout`.
    pub fn deadline(&self) -> Duration {
        self.timeout * (self.retries + 1)
    }
}

/// One NAS (or network of them) allowed to send requests.
#[derive(Debug)]
pub struct Client {
    /// Name used in logs and as `radius:NAME` service in the registry's audit.
    pub name: String,
    /// Source network.
    pub network: IpNet,
    /// Shared secret (RFC 2865 §3).
    pub secret: Secret,
    /// How the second factor arrives.
    pub mode: RadiusMode,
    /// Delimiter in `append` mode.
    pub delimiter: String,
    /// Whether Access-Requests must carry Message-Authenticator.
    pub require_message_authenticator: bool,
    /// The primary password check, or `None` for `primary = "none"`.
    pub primary: Option<Arc<Upstream>>,
    /// Whether the NAS shows an Access-Challenge's Reply-Message (the
    /// number of a push); `false` holds push requests until the answer.
    pub push_number_matching: bool,
}

/// The RadSec listener (`[radius.radsec]`), its TLS set up.
pub struct Radsec {
    /// TCP listen address.
    pub listen: SocketAddr,
    /// Server certificate and key, client certificates required.
    pub tls: Arc<rustls::ServerConfig>,
    /// The clients as over UDP, each with the shared secret `radsec`
    /// (RFC 6614 §2.3), most specific network first.
    pub clients: Vec<Client>,
}

impl std::fmt::Debug for Radsec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Radsec")
            .field("listen", &self.listen)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

/// Everything the server needs, loaded and checked.
#[derive(Debug)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// RadSec, when `[radius.radsec]` is set.
    pub radsec: Option<Radsec>,
    /// The metrics listener's address, when `[radius.metrics]` is set.
    pub metrics_listen: Option<SocketAddr>,
    /// Clients, most specific network first.
    pub clients: Vec<Client>,
    /// State sealing key.
    pub state_key: StateKey,
    /// State lifetime.
    pub state_lifetime: Duration,
    /// Wrong answers one challenge State takes.
    pub challenge_max_tries: u32,
    /// Requests worked on at once.
    pub max_in_flight: usize,
    /// Push logins worked on at once, beside `max_in_flight`.
    pub max_pending_pushes: usize,
    /// Registry unreachable: closed or open.
    pub fail_mode: FailMode,
    /// `[registry]`.
    pub registry: twostep_config::RegistryClientConfig,
    /// [`twostep_config::radius::warnings`] for `[radius]` and the secrets
    /// read.
    warnings: Vec<Warning>,
}

impl Settings {
    /// Loads `[radius]` and `[registry]` from `config`, reading every secret
    /// file (root-owned, mode 0600) and the State key.
    ///
    /// # Errors
    /// [`Error::Config`] naming the table, key or file at fault.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let radius = config.radius().map_err(|e| Error::Config(e.to_string()))?;
        let registry = config
            .registry()
            .map_err(|e| Error::Config(e.to_string()))?
            .clone();
        if registry.api_key_file.is_none() {
            return Err(Error::Config(
                "[registry] needs api_key_file (the key printed by `twostep host add NAME --kind radius`)".into(),
            ));
        }
        // Names are unique: twostep_config refuses duplicates at their line.
        let mut upstreams: Vec<Arc<Upstream>> = Vec::new();
        for u in &radius.upstreams {
            if u.timeout == 0 {
                return Err(Error::Config(format!(
                    "[[radius.upstream]] {:?}: timeout must be at least 1 second",
                    u.name
                )));
            }
            let what = format!("upstream {:?}", u.name);
            let (secret, radsec) = match (&u.secret_file, &u.radsec) {
                (Some(file), None) => (read_secret(file, &what)?, None),
                (None, Some(r)) => {
                    let name = match &r.server_name {
                        Some(n) => n.clone(),
                        None => u.address.ip().to_string(),
                    };
                    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                        .map_err(|e| Error::Config(format!("{what}: server_name {name:?}: {e}")))?;
                    let config =
                        crate::radsec::client_config(&r.cert_file, &r.key_file, &r.ca_file)
                            .map_err(|e| Error::Config(format!("{what}: {e}")))?;
                    (
                        Secret::new(crate::radsec::RADSEC_SECRET.to_vec()),
                        Some(UpstreamTls {
                            config,
                            server_name,
                        }),
                    )
                }
                // twostep_config refuses both and neither at their line.
                _ => {
                    return Err(Error::Config(format!(
                        "{what}: secret_file or [radius.upstream.radsec], one of them"
                    )))
                }
            };
            upstreams.push(Arc::new(Upstream {
                name: u.name.clone(),
                address: u.address,
                secret,
                radsec,
                timeout: Duration::from_secs(u.timeout),
                retries: u.retries,
                require_message_authenticator: u.require_message_authenticator,
            }));
        }
        let mut clients = Vec::new();
        for c in &radius.clients {
            let primary = match c.primary.as_str() {
                "none" => None,
                name => Some(
                    upstreams
                        .iter()
                        .find(|u| u.name == name)
                        .cloned()
                        .ok_or_else(|| {
                            Error::Config(format!(
                                "client {:?}: primary {name:?} names no [[radius.upstream]]",
                                c.name
                            ))
                        })?,
                ),
            };
            if c.mode == RadiusMode::OtpOnly && primary.is_some() {
                return Err(Error::Config(format!(
                    "client {:?}: mode otp-only carries no password for primary {:?}; use mode append or challenge",
                    c.name, c.primary
                )));
            }
            clients.push(Client {
                name: c.name.clone(),
                network: c.address.trunc(),
                secret: read_secret(&c.secret_file, &format!("client {:?}", c.name))?,
                mode: c.mode,
                delimiter: c.delimiter.clone(),
                require_message_authenticator: c.require_message_authenticator,
                primary,
                push_number_matching: c.push_number_matching,
            });
        }
        for (i, c) in clients.iter().enumerate() {
            if let Some(other) = clients[..i].iter().find(|o| o.network == c.network) {
                return Err(Error::Config(format!(
                    "[[radius.client]] {:?}: address {} is also client {:?}'s; one client per network",
                    c.name, c.network, other.name
                )));
            }
        }
        // `clients` and `upstreams` are still in the file's order here.
        let lengths: Vec<(&Path, usize)> = radius
            .clients
            .iter()
            .map(|c| c.secret_file.as_path())
            .zip(clients.iter().map(|c| c.secret.expose().len()))
            .chain(
                radius
                    .upstreams
                    .iter()
                    .zip(upstreams.iter())
                    .filter_map(|(c, u)| {
                        Some((c.secret_file.as_deref()?, u.secret.expose().len()))
                    }),
            )
            .collect();
        let warnings = twostep_config::radius::warnings(radius, |path| {
            lengths.iter().find(|(p, _)| *p == path).map(|(_, n)| *n)
        });
        most_specific_first(&mut clients);
        let radsec = match &radius.radsec {
            None => None,
            Some(r) => Some(Radsec {
                listen: r.listen,
                tls: crate::radsec::server_config(&r.cert_file, &r.key_file, &r.ca_file)?,
                clients: clients
                    .iter()
                    .map(|c| Client {
                        name: c.name.clone(),
                        network: c.network,
                        secret: Secret::new(crate::radsec::RADSEC_SECRET.to_vec()),
                        mode: c.mode,
                        delimiter: c.delimiter.clone(),
                        require_message_authenticator: c.require_message_authenticator,
                        primary: c.primary.clone(),
                        push_number_matching: c.push_number_matching,
                    })
                    .collect(),
            }),
        };
        let state_key = StateKey::load(&radius.state_key_file)?;
        Ok(Self {
            listen: radius.listen,
            radsec,
            metrics_listen: radius.metrics.as_ref().map(|m| m.listen),
            clients,
            state_key,
            state_lifetime: Duration::from_secs(radius.state_lifetime),
            challenge_max_tries: radius.challenge_max_tries,
            max_in_flight: radius.max_in_flight,
            max_pending_pushes: radius.max_pending_pushes,
            fail_mode: radius.fail_mode,
            registry,
            warnings,
        })
    }
}

impl Settings {
    /// What works but weakens the setup, one sentence each with the fix, for
    /// the startup log and `--check`: [`twostep_config::radius::warnings`]
    /// (short shared secrets, legacy clients and upstreams, unchecked
    /// passwords, networks inside another client's). Empty when there is
    /// nothing to say.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.iter().map(ToString::to_string).collect()
    }
}

/// Orders clients longest prefix first (stable), so [`find_client`]'s first
/// match is the most specific network whatever the order in the file.
fn most_specific_first(clients: &mut [Client]) {
    clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
}

fn read_secret(path: &Path, what: &str) -> Result<Secret, Error> {
    read_secret_file(path).map_err(|e| Error::Config(format!("{what}: secret_file: {e}")))
}

/// The client whose network holds `ip`: the first in `clients`, which
/// [`Settings::from_config`] orders most specific network (longest prefix)
/// first, so 127.0.0.2/32 wins over 127.0.0.0/8 whatever the file order.
/// IPv4-mapped IPv6 sources match IPv4 networks.
pub fn find_client(clients: &[Client], ip: IpAddr) -> Option<&Client> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    clients.iter().find(|c| c.network.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, net: &str, secret: &str, require: bool) -> Client {
        Client {
            name: name.into(),
            network: net.parse().unwrap(),
            secret: Secret::new(secret.as_bytes().to_vec()),
            mode: RadiusMode::OtpOnly,
            delimiter: ",".into(),
            require_message_authenticator: require,
            primary: None,
            push_number_matching: true,
        }
    }

    #[test]
    fn most_specific_network_wins() {
        let mut c = vec![
            client("all", "127.0.0.0/8", "s", true),
            client("one", "127.0.0.2/32", "s", true),
        ];
        most_specific_first(&mut c);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(find_client(&c, ip("127.0.0.2")).unwrap().name, "one");
        assert_eq!(find_client(&c, ip("127.0.0.3")).unwrap().name, "all");
        assert_eq!(find_client(&c, ip("::ffff:127.0.0.2")).unwrap().name, "one");
        assert!(find_client(&c, ip("10.0.0.1")).is_none());
    }
}
