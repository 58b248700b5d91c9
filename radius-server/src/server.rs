//! The UDP loop: receive, classify, absorb or replay duplicates, bound the
//! work in flight (`max_in_flight`; a request that becomes a pending push
//! lets go of its place, bounded by `max_pending_pushes` instead), answer. Everything it decides comes from the sans-I/O
//! modules; this file only moves bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use twostep_common::client::RegistryClient;

use crate::auth::Authenticator;
use crate::cache::{Lookup, ReplyCache, RequestKey};
use crate::flow::Reply;
use crate::inbound::{classify, DropKind, Inbound};
use crate::pending::{Keyer, PendingPushes};
use crate::ratelimit::LogLimiter;
use crate::settings::{Client, Settings};
use crate::wire::{self, code, RawPacket};
use crate::Error;

/// How long an answer stays in the reply cache: longer than a NAS keeps
/// retransmitting (RFC 5080 §2.2.2).
pub const REPLY_CACHE_AGE: Duration = Duration::from_secs(60);
/// Window of the rate-limited log lines.
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

struct Shared {
    clients: Vec<Client>,
    auth: Authenticator,
    cache: Mutex<ReplyCache>,
    in_flight: Arc<Semaphore>,
    socket: UdpSocket,
}

/// Counters for rate-limited logging, owned by the receive loop.
struct Limiters {
    unknown: LogLimiter,
    /// Per client (index) and kind of fault: one misconfigured NAS does
    /// not hide another's problem.
    dropped: HashMap<(usize, DropKind), LogLimiter>,
    shed: LogLimiter,
}

/// A bound socket and everything needed to serve it.
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listen address and prepares the registry client.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound, [`Error::Config`]
    /// when the registry client cannot be set up.
    pub async fn bind(settings: Settings) -> Result<Self, Error> {
        let registry = RegistryClient::for_host(&settings.registry)
            .map_err(|e| Error::Config(format!("[registry]: {e}")))?;
        let socket = UdpSocket::bind(settings.listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", settings.listen)))?;
        // Pending pushes keep their entry in progress while they wait.
        let capacity = (settings.max_in_flight * 16).max(4096) + settings.max_pending_pushes;
        Ok(Self {
            shared: Arc::new(Shared {
                clients: settings.clients,
                auth: Authenticator {
                    registry,
                    state_key: settings.state_key,
                    state_lifetime: settings.state_lifetime,
                    challenge_max_tries: settings.challenge_max_tries,
                    fail_mode: settings.fail_mode,
                    used_states: Mutex::default(),
                    pending: Mutex::new(PendingPushes::new(settings.max_pending_pushes)),
                    keyer: Keyer::new(),
                },
                cache: Mutex::new(ReplyCache::new(capacity, REPLY_CACHE_AGE)),
                in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
                socket,
            }),
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.shared.socket.local_addr()?)
    }

    /// Serves until the socket fails.
    ///
    /// # Errors
    /// [`Error::Io`] when receiving fails for good.
    pub async fn run(self) -> Result<(), Error> {
        let mut limits = Limiters {
            unknown: LogLimiter::new(LOG_WINDOW),
            dropped: HashMap::new(),
            shed: LogLimiter::new(LOG_WINDOW),
        };
        // One octet more than the largest packet shows oversized datagrams.
        let mut buf = vec![0u8; wire::MAX_PACKET_LEN + 1];
        loop {
            let (n, source) = match self.shared.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            handle_datagram(&self.shared, &buf[..n], source, &mut limits);
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock
    )
}

fn handle_datagram(
    shared: &Arc<Shared>,
    datagram: &[u8],
    source: SocketAddr,
    limits: &mut Limiters,
) {
    let now = Instant::now();
    match classify(datagram, source, &shared.clients) {
        Inbound::UnknownSource => {
            if let Some(more) = limits.unknown.allow(now) {
                tracing::warn!(%source, suppressed = more, "dropped packet from unknown source");
            }
        }
        Inbound::Drop {
            client,
            kind,
            reason,
        } => {
            let limiter = limits
                .dropped
                .entry((client_index(shared, client), kind))
                .or_insert_with(|| LogLimiter::new(LOG_WINDOW));
            if let Some(more) = limiter.allow(now) {
                tracing::warn!(%source, client = %client.name, suppressed = more, "dropped packet: {reason}");
            }
        }
        Inbound::StatusServer { client, packet } => {
            // RFC 5997 §3: answered with Access-Accept, not cached.
            match wire::build_reply(&packet, code::ACCESS_ACCEPT, &[], client.secret.expose()) {
                Ok(bytes) => send(shared, &bytes, source),
                Err(e) => tracing::error!(client = %client.name, "Status-Server reply: {e}"),
            }
        }
        Inbound::AccessRequest { client, packet } => {
            let key = RequestKey {
                source,
                identifier: packet.identifier,
                authenticator: packet.authenticator,
            };
            let lookup = shared
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .begin(key, now);
            match lookup {
                Lookup::InProgress => {
                    tracing::debug!(%source, id = packet.identifier, "retransmission absorbed (in progress)");
                }
                Lookup::Replay(bytes) => {
                    tracing::debug!(%source, id = packet.identifier, "retransmission answered from the reply cache");
                    send(shared, &bytes, source);
                }
                Lookup::New => {
                    let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
                        shared
                            .cache
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .abandon(&key);
                        if let Some(more) = limits.shed.allow(now) {
                            tracing::warn!(%source, suppressed = more, "too many requests in flight (max_in_flight), request dropped; the NAS will retransmit");
                        }
                        return;
                    };
                    let client_index = client_index(shared, client);
                    let shared = Arc::clone(shared);
                    tokio::spawn(async move {
                        answer(&shared, client_index, packet, key, permit).await;
                    });
                }
            }
        }
    }
}

fn client_index(shared: &Shared, client: &Client) -> usize {
    shared
        .clients
        .iter()
        .position(|c| std::ptr::eq(c, client))
        .unwrap_or_default()
}

async fn answer(
    shared: &Shared,
    client_index: usize,
    packet: RawPacket,
    key: RequestKey,
    in_flight: OwnedSemaphorePermit,
) {
    let client = &shared.clients[client_index];
    let Reply { code, attrs } = shared.auth.handle(client, &packet, in_flight).await;
    match wire::build_reply(&packet, code, &attrs, client.secret.expose()) {
        Ok(bytes) => {
            // Awaited: a full socket buffer delays this answer, not the loop.
            if let Err(e) = shared.socket.send_to(&bytes, key.source).await {
                tracing::warn!(to = %key.source, "send failed: {e}");
            }
            shared
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(key, bytes, Instant::now());
        }
        Err(e) => {
            tracing::error!(client = %client.name, "cannot encode the reply: {e}");
            shared
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .abandon(&key);
        }
    }
}

/// Sends from the receive loop without waiting (a full buffer drops the
/// datagram; the NAS retransmits and gets the cached reply).
fn send(shared: &Shared, bytes: &[u8], to: SocketAddr) {
    if let Err(e) = shared.socket.try_send_to(bytes, to) {
        tracing::warn!(%to, "send failed: {e}");
    }
}
