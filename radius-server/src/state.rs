//! Sealed challenge State (RFC 2865 §5.24).
//!
//! In `challenge` mode the first Access-Request is answered with an
//! Access-Challenge whose State attribute carries everything the second
//! request needs, sealed with XChaCha20-Poly1305 under a key every server of
//! a pool shares (`[radius].state_key_file`). Any server holding the key can
//! finish a challenge another began; the server keeps nothing.
//!
//! Layout of the State value (at most 253 octets):
//!
//! ```text
//! version (1) = 1 | nonce (24, random) | ciphertext (n) | tag (16)
//! plaintext  = primary (1: 0 none, 1 upstream accepted) | expiry (8, Unix s, BE)
//!              | attributes of the upstream Access-Accept, RADIUS-encoded
//! associated = "twostep-radius-state-1" | len(client) (2) | client | len(user) (2) | user
//! ```
//!
//! User and client are bound as associated data: a State presented for
//! another user or by another client does not open. The primary password is
//! never stored.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::path::Path;

use crate::wire::RawAttr;
use crate::Error;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"twostep-radius-state-1";
/// Largest State value (an attribute value), in octets.
pub const MAX_STATE_LEN: usize = 253;
/// Room left for the upstream attributes inside a State, in octets
/// (RADIUS-encoded, 2 octets of header each).
pub const MAX_SEALED_ATTRS_LEN: usize = MAX_STATE_LEN - 1 - NONCE_LEN - TAG_LEN - 1 - 8;

/// The key that seals State: 32 octets, stored as 64 hex digits in a
/// root-only file.
pub struct StateKey(XChaCha20Poly1305);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

impl StateKey {
    /// A key from its 32 raw octets.
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(&(*key).into()))
    }

    /// Reads the key file: 64 hex digits (surrounding whitespace ignored),
    /// root-owned, mode 0600 (checked by [`twostep_config::read_secret_file`]).
    /// Create one with `(umask 077; openssl rand -hex 32 > FILE)`.
    ///
    /// # Errors
    /// [`Error::Config`] when the file is missing, unsafe or not 64 hex digits.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let secret = twostep_config::read_secret_file(path).map_err(|e| {
            Error::Config(format!(
                "state_key_file: {e} (create it on one server with `(umask 077; openssl rand -hex 32 > {})` and copy it to every server of the pool)",
                path.display()
            ))
        })?;
        let raw = zeroize::Zeroizing::new(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(secret.expose())
                .map_err(|_| {
                    Error::Config(format!(
                        "{}: state key must be 64 hex digits (32 octets)",
                        path.display()
                    ))
                })?,
        );
        let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
            Error::Config(format!(
                "{}: state key must be 64 hex digits (32 octets), found {} octets",
                path.display(),
                raw.len()
            ))
        })?;
        let k = Self::from_bytes(&key);
        let mut key = key;
        zeroize::Zeroize::zeroize(&mut key);
        Ok(k)
    }
}

/// How the primary password was checked before the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primary {
    /// No primary check (`primary = "none"`).
    None,
    /// The upstream server answered Access-Accept.
    UpstreamAccepted,
}

/// What an opened State holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The primary result.
    pub primary: Primary,
    /// Unix seconds after which the State is refused.
    pub expires_at: u64,
    /// Attributes of the upstream Access-Accept to copy to the final Accept.
    pub attrs: Vec<RawAttr>,
}

/// Why a State was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Wrong version, length, key, user or client, or tampered with.
    #[error("State does not open (other key, user or client, or altered)")]
    DoesNotOpen,
    /// Opened but past its expiry.
    #[error("State expired")]
    Expired,
}

fn aad(client: &str, user: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + 4 + client.len() + user.len());
    a.extend_from_slice(AAD_LABEL);
    a.extend_from_slice(&(client.len() as u16).to_be_bytes());
    a.extend_from_slice(client.as_bytes());
    a.extend_from_slice(&(user.len() as u16).to_be_bytes());
    a.extend_from_slice(user);
    a
}

/// Seals a State for `user` at `client`, valid until `expires_at` (Unix s).
///
/// # Errors
/// [`Error::StateTooLarge`] when the attributes need more than
/// [`MAX_SEALED_ATTRS_LEN`] octets.
pub fn seal(
    key: &StateKey,
    client: &str,
    user: &[u8],
    expires_at: u64,
    primary: Primary,
    attrs: &[RawAttr],
) -> Result<Vec<u8>, Error> {
    let mut plain = Vec::with_capacity(MAX_STATE_LEN);
    plain.push(match primary {
        Primary::None => 0,
        Primary::UpstreamAccepted => 1,
    });
    plain.extend_from_slice(&expires_at.to_be_bytes());
    let mut attr_len = 0;
    for a in attrs {
        attr_len += a.value.len() + 2;
        plain.push(a.typ);
        plain.push((a.value.len() + 2) as u8);
        plain.extend_from_slice(&a.value);
    }
    if attr_len > MAX_SEALED_ATTRS_LEN {
        return Err(Error::StateTooLarge(attr_len));
    }
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(client, user);
    let ct = key
        .0
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| Error::Encode("sealing State failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    debug_assert!(out.len() <= MAX_STATE_LEN);
    Ok(out)
}

/// Opens a State presented by `client` for `user` at `now` (Unix s).
///
/// # Errors
/// [`StateError::DoesNotOpen`] or [`StateError::Expired`].
pub fn open(
    key: &StateKey,
    client: &str,
    user: &[u8],
    now: u64,
    state: &[u8],
) -> Result<Opened, StateError> {
    if state.len() < 1 + NONCE_LEN + TAG_LEN + 9 || state[0] != VERSION {
        return Err(StateError::DoesNotOpen);
    }
    let nonce: [u8; NONCE_LEN] = state[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| StateError::DoesNotOpen)?;
    let aad = aad(client, user);
    let plain = key
        .0
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &state[1 + NONCE_LEN..],
                aad: &aad,
            },
        )
        .map_err(|_| StateError::DoesNotOpen)?;
    let primary = match plain[0] {
        0 => Primary::None,
        1 => Primary::UpstreamAccepted,
        _ => return Err(StateError::DoesNotOpen),
    };
    let expires_at = u64::from_be_bytes(
        plain[1..9]
            .try_into()
            .map_err(|_| StateError::DoesNotOpen)?,
    );
    if now > expires_at {
        return Err(StateError::Expired);
    }
    let mut attrs = Vec::new();
    let mut i = 9;
    while i < plain.len() {
        let len = usize::from(*plain.get(i + 1).ok_or(StateError::DoesNotOpen)?);
        if len < 2 || i + len > plain.len() {
            return Err(StateError::DoesNotOpen);
        }
        attrs.push(RawAttr {
            typ: plain[i],
            value: plain[i + 2..i + len].to_vec(),
        });
        i += len;
    }
    Ok(Opened {
        primary,
        expires_at,
        attrs,
    })
}

/// States that already completed a login on this server, so a State is
/// good for one Access-Accept here (the reply cache answers retransmissions
/// of that request). Entries are kept until the State's own expiry. Other
/// servers of a pool do not see this list; there the registry's replay rule
/// still refuses the used code. Sans-I/O: the caller passes the clock.
#[derive(Debug, Default)]
pub struct UsedStates {
    entries: std::collections::HashMap<Vec<u8>, u64>,
}

impl UsedStates {
    /// Whether `state` already completed a login and has not expired at `now`.
    pub fn contains(&self, state: &[u8], now: u64) -> bool {
        self.entries.get(state).is_some_and(|&exp| now <= exp)
    }

    /// Records `state` (valid until `expires_at`) as used; forgets entries
    /// expired at `now`.
    pub fn insert(&mut self, state: &[u8], expires_at: u64, now: u64) {
        self.entries.retain(|_, exp| now <= *exp);
        self.entries.insert(state.to_vec(), expires_at);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Generates a fresh key file content: 64 lowercase hex digits and a newline.
pub fn generate_key_hex() -> String {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut k[..]);
    format!("{}\n", data_encoding::HEXLOWER.encode(&k[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StateKey {
        StateKey::from_bytes(&[b; 32])
    }

    fn class(v: &[u8]) -> RawAttr {
        RawAttr {
            typ: 25,
            value: v.to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let attrs = vec![
            class(b"group=vpn"),
            RawAttr {
                typ: 11,
                value: b"std.acl".to_vec(),
            },
        ];
        let s = seal(
            &key(1),
            "gw",
            b"alice",
            1000,
            Primary::UpstreamAccepted,
            &attrs,
        )
        .unwrap();
        assert!(s.len() <= MAX_STATE_LEN);
        let o = open(&key(1), "gw", b"alice", 999, &s).unwrap();
        assert_eq!(o.primary, Primary::UpstreamAccepted);
        assert_eq!(o.attrs, attrs);
        assert_eq!(o.expires_at, 1000);
        assert_eq!(
            open(&key(1), "gw", b"alice", 1000, &s).unwrap().attrs,
            attrs
        );
    }

    #[test]
    fn refused_for_other_user_client_key_or_time() {
        let s = seal(&key(1), "gw", b"alice", 1000, Primary::None, &[]).unwrap();
        assert_eq!(
            open(&key(1), "gw", b"bob", 0, &s),
            Err(StateError::DoesNotOpen)
        );
        assert_eq!(
            open(&key(1), "gw2", b"alice", 0, &s),
            Err(StateError::DoesNotOpen)
        );
        assert_eq!(
            open(&key(2), "gw", b"alice", 0, &s),
            Err(StateError::DoesNotOpen)
        );
        assert_eq!(
            open(&key(1), "gw", b"alice", 1001, &s),
            Err(StateError::Expired)
        );
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            assert_eq!(
                open(&key(1), "gw", b"alice", 0, &t),
                Err(StateError::DoesNotOpen),
                "octet {i}"
            );
        }
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, b""),
            Err(StateError::DoesNotOpen)
        );
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &s[..40]),
            Err(StateError::DoesNotOpen)
        );
    }

    #[test]
    fn used_states_expire() {
        let mut u = UsedStates::default();
        assert!(!u.contains(b"s1", 0));
        u.insert(b"s1", 100, 0);
        assert!(u.contains(b"s1", 100));
        assert!(!u.contains(b"s1", 101));
        assert!(!u.contains(b"s2", 50));
        u.insert(b"s2", 300, 200);
        assert_eq!(u.len(), 1, "s1 pruned");
    }

    #[test]
    fn nonces_differ() {
        let a = seal(&key(1), "gw", b"alice", 1000, Primary::None, &[]).unwrap();
        let b = seal(&key(1), "gw", b"alice", 1000, Primary::None, &[]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn too_many_attributes_are_refused() {
        let big = [class(&[b'x'; 210])];
        assert!(matches!(
            seal(&key(1), "gw", b"alice", 1, Primary::UpstreamAccepted, &big),
            Err(Error::StateTooLarge(212))
        ));
        let fits = [class(&vec![b'x'; MAX_SEALED_ATTRS_LEN - 2])];
        let s = seal(&key(1), "gw", b"alice", 1, Primary::UpstreamAccepted, &fits).unwrap();
        assert_eq!(s.len(), MAX_STATE_LEN);
    }

    #[test]
    fn key_file_format() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("twostep-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        std::fs::write(&p, generate_key_hex()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(StateKey::load(&p).is_ok());
        std::fs::write(&p, "abcd\n").unwrap();
        let e = StateKey::load(&p).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(StateKey::load(&p).is_err());
        let e = StateKey::load(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("openssl rand -hex 32"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
