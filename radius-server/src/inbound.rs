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

/// Classifies one datagram from `source`.
pub fn classify<'a>(datagram: &[u8], source: SocketAddr, clients: &'a [Client]) -> Inbound<'a> {
    let Some(client) = find_client(clients, source.ip()) else {
        return Inbound::UnknownSource;
    };
    let drop = |reason: String| Inbound::Drop { client, reason };
    let packet = match wire::parse(datagram) {
        Ok(p) => p,
        Err(e) => return drop(e.to_string()),
    };
    if packet.code != code::ACCESS_REQUEST && packet.code != code::STATUS_SERVER {
        return drop(format!("packet code {} is not served here", packet.code));
    }
    let ma = match wire::check_request_message_authenticator(&packet.bytes, client.secret.expose())
    {
        Ok(ma) => ma,
        Err(e) => return drop(e.to_string()),
    };
    if ma == MessageAuth::Absent {
        if packet.code == code::STATUS_SERVER {
            return drop("Status-Server without Message-Authenticator (RFC 5997 §3)".into());
        }
        if client.require_message_authenticator {
            return drop(
                "Access-Request without Message-Authenticator (required for this client)".into(),
            );
        }
        if packet.first(wire::attr::PROXY_STATE).is_some() {
            return drop(
                "Access-Request with Proxy-State but without Message-Authenticator".into(),
            );
        }
        if packet.first(wire::attr::EAP_MESSAGE).is_some() {
            return drop("EAP-Message without Message-Authenticator (RFC 3579 §3.2)".into());
        }
    }
    if packet.code == code::STATUS_SERVER {
        Inbound::StatusServer { client, packet }
    } else {
        Inbound::AccessRequest { client, packet }
    }
}
