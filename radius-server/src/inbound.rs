//! From a datagram to a checked request, in this order: client lookup by
//! source address, structure (RFC 2865 §3, §5), code, then the
//! Message-Authenticator (RFC 3579 §3.2) in constant time, before anything
//! else looks at the attributes, the password above all.

use std::net::SocketAddr;

use crate::settings::{find_client, Client};
use crate::wire::{self, code, MessageAuth, RawPacket};

/// What the server does with a datagram.
#[derive(Debug)]
pub enum Inbound<'a> {
    /// The source belongs to no configured client: drop, log rate-limited.
    UnknownSource,
    /// Drop without an answer; the reason is for the log.
    Drop {
        /// The client it came from.
        client: &'a Client,
        /// What kind of fault, for rate-limiting the log per kind.
        kind: DropKind,
        /// One line for the log.
        reason: String,
    },
    /// A Status-Server with a valid Message-Authenticator (RFC 5997): answer Access-Accept.
    StatusServer {
        /// The client it came from.
        client: &'a Client,
        /// The packet.
        packet: RawPacket,
    },
    /// An authenticated Access-Request, ready for [`crate::request::parse`].
    AccessRequest {
        /// The client it came from.
        client: &'a Client,
        /// The packet.
        packet: RawPacket,
    },
}

/// Kinds of dropped packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropKind {
    /// Not a well-formed RADIUS packet.
    Malformed,
    /// A code this server does not serve (accounting, replies, ...).
    Code,
    /// Message-Authenticator wrong (usually a shared secret mismatch).
    BadMessageAuthenticator,
    /// Message-Authenticator missing where it is required.
    MissingMessageAuthenticator,
}

/// Classifies one datagram from `source`.
pub fn classify<'a>(datagram: &[u8], source: SocketAddr, clients: &'a [Client]) -> Inbound<'a> {
    let Some(client) = find_client(clients, source.ip()) else {
        return Inbound::UnknownSource;
    };
    let drop = |kind: DropKind, reason: String| Inbound::Drop {
        client,
        kind,
        reason,
    };
    let packet = match wire::parse(datagram) {
        Ok(p) => p,
        Err(e) => return drop(DropKind::Malformed, e.to_string()),
    };
    if packet.code != code::ACCESS_REQUEST && packet.code != code::STATUS_SERVER {
        return drop(
            DropKind::Code,
            format!("packet code {} is not served here", packet.code),
        );
    }
    let ma = match wire::check_request_message_authenticator(&packet.bytes, client.secret.expose())
    {
        Ok(ma) => ma,
        Err(e @ crate::Error::BadMessageAuthenticator) => {
            return drop(DropKind::BadMessageAuthenticator, e.to_string())
        }
        Err(e) => return drop(DropKind::Malformed, e.to_string()),
    };
    let missing = |reason: &str| drop(DropKind::MissingMessageAuthenticator, reason.into());
    if ma == MessageAuth::Absent {
        if packet.code == code::STATUS_SERVER {
            return missing("Status-Server without Message-Authenticator (RFC 5997 §3)");
        }
        if client.require_message_authenticator {
            return missing(
                "Access-Request without Message-Authenticator (required for this client)",
            );
        }
        if packet.first(wire::attr::PROXY_STATE).is_some() {
            return missing("Access-Request with Proxy-State but without Message-Authenticator");
        }
        if packet.first(wire::attr::EAP_MESSAGE).is_some() {
            return missing("EAP-Message without Message-Authenticator (RFC 3579 §3.2)");
        }
    }
    if packet.code == code::STATUS_SERVER {
        Inbound::StatusServer { client, packet }
    } else {
        Inbound::AccessRequest { client, packet }
    }
}
