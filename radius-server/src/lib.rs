//! twostep's RADIUS server, `twostep-radiusd`: the second factor for VPN
//! concentrators (NAS) speaking RADIUS over UDP (RFC 2865).
//!
//! The protocol logic is sans-I/O, pure functions of packet, state and clock,
//! each with its tests:
//!
//! - [`wire`]: what the `radius` crate's codec lacks: attribute walk in wire
//!   order, Message-Authenticator (RFC 3579 §3.2), User-Password decoding
//!   (RFC 2865 §5.2), reply assembly with Message-Authenticator first
//!   (CVE-2024-3596) and Proxy-State echoed in order.
//! - [`inbound`]: from datagram to a checked request: client lookup,
//!   structure, Message-Authenticator before anything else.
//! - [`request`]: what a checked Access-Request asks (user, password, code
//!   or `push`, State, context).
//! - [`cache`]: duplicate detection and the reply cache (RFC 5080 §2.2.2).
//! - [`flow`]: the login of one Access-Request as a step machine: it says
//!   what to ask (primary, registrations, verify, start or wait for a push)
//!   and, given the answers and the time, what to reply.
//! - [`state`]: the sealed challenge State (XChaCha20-Poly1305), with the
//!   kind of answer it awaits (a code, or the result of a push).
//! - [`pending`]: pending push logins, so that a retransmission with a new
//!   Identifier joins the push instead of starting another.
//! - [`ratelimit`]: rate-limited logging.
//! - [`metrics`]: the Prometheus metrics on `[radius.metrics] listen`.
//!
//! The I/O sits at the edges: [`upstream`] (PAP proxy to the primary
//! server), [`auth`] (the driver that performs the flow's actions: primary
//! and registry calls, the pending-push table, the clock) and [`server`]
//! (the UDP loop, in-flight bound, cache).
//!
//! Not supported: CHAP, MS-CHAP and EAP (answered with Access-Reject),
//! accounting, RADIUS over plain TCP. RADIUS over TLS (RadSec, RFC 6614):
//! [`radsec`] frames the stream, [`server`] serves it beside UDP.

#![warn(missing_docs)]

pub mod auth;
pub mod cache;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbound;
pub mod metrics;
pub mod pending;
pub mod radsec;
pub mod ratelimit;
pub mod request;
pub mod server;
pub mod settings;
pub mod state;
pub mod upstream;
pub mod wire;

/// Errors of the RADIUS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The datagram is not a well-formed RADIUS packet.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// Message-Authenticator present but wrong (RFC 3579 §3.2).
    #[error("Message-Authenticator is wrong (shared secret mismatch or altered packet)")]
    BadMessageAuthenticator,
    /// The Response Authenticator of an upstream reply is wrong (RFC 2865 §3).
    #[error("Response Authenticator is wrong (shared secret mismatch or altered packet)")]
    BadResponseAuthenticator,
    /// A packet could not be encoded.
    #[error("cannot encode packet: {0}")]
    Encode(String),
    /// The upstream attributes (and the challenge's own data) do not fit
    /// in a State attribute.
    #[error("upstream reply attributes take {0} octets, more than a State can carry ({max})", max = state::MAX_SEALED_ATTRS_LEN)]
    StateTooLarge(usize),
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// Socket I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
