//! The server's runtime settings: `[radius]` and `[registry]` of the
//! configuration file with every secret file read and checked up front.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
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
}

/// Everything the server needs, loaded and checked.
#[derive(Debug)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Clients, most specific network first.
    pub clients: Vec<Client>,
    /// State sealing key.
    pub state_key: StateKey,
    /// State lifetime.
    pub state_lifetime: Duration,
    /// Requests worked on at once.
    pub max_in_flight: usize,
    /// Registry unreachable: closed or open.
    pub fail_mode: FailMode,
    /// `[registry]`.
    pub registry: twostep_config::RegistryClientConfig,
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
        let mut upstreams = Vec::new();
        for u in &radius.upstreams {
            if upstreams.iter().any(|x: &Arc<Upstream>| x.name == u.name) {
                return Err(Error::Config(format!(
                    "[[radius.upstream]] name {:?} is used twice",
                    u.name
                )));
            }
            if u.timeout == 0 {
                return Err(Error::Config(format!(
                    "[[radius.upstream]] {:?}: timeout must be at least 1 second",
                    u.name
                )));
            }
            upstreams.push(Arc::new(Upstream {
                name: u.name.clone(),
                address: u.address,
                secret: read_secret(&u.secret_file, &format!("upstream {:?}", u.name))?,
                timeout: Duration::from_secs(u.timeout),
                retries: u.retries,
                require_message_authenticator: u.require_message_authenticator,
            }));
        }
        let mut clients = Vec::new();
        for c in &radius.clients {
            if clients.iter().any(|x: &Client| x.name == c.name) {
                return Err(Error::Config(format!(
                    "[[radius.client]] name {:?} is used twice",
                    c.name
                )));
            }
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
            });
        }
        // Most specific network first, so lookups take the best match.
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        let state_key = StateKey::load(&radius.state_key_file)?;
        Ok(Self {
            listen: radius.listen,
            clients,
            state_key,
            state_lifetime: Duration::from_secs(radius.state_lifetime),
            max_in_flight: radius.max_in_flight,
            fail_mode: radius.fail_mode,
            registry,
        })
    }
}

fn read_secret(path: &Path, what: &str) -> Result<Secret, Error> {
    read_secret_file(path).map_err(|e| Error::Config(format!("{what}: secret_file: {e}")))
}

/// The client whose network holds `ip` (most specific first); IPv4-mapped
/// IPv6 sources match IPv4 networks.
pub fn find_client(clients: &[Client], ip: IpAddr) -> Option<&Client> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    clients.iter().find(|c| c.network.contains(&ip))
}
