//! Sealed challenge State (RFC 2865 §5.24).
//!
//! When the flow answers with an Access-Challenge ([`crate::flow`]), the
//! State attribute carries everything the next Access-Request needs, sealed
//! with XChaCha20-Poly1305 under a key every server of a pool shares
//! (`[radius].state_key_file`). Any server holding the key can finish a
//! challenge another began; the server keeps nothing.
//!
//! Layout of the State value (at most 253 octets), version 2:
//!
//! ```text
//! version (1) = 2 | nonce (24, random) | ciphertext (n) | tag (16)
//! plaintext  = awaiting (1) | expiry (8, Unix s, BE) | primary (1: 0 none, 1 upstream accepted)
//!              | len(data) (1) | data (awaiting-specific)
//!              | attributes of the upstream Access-Accept, RADIUS-encoded
//! associated = "twostep-radius-state-2" | len(client) (2) | client | len(user) (2) | user
//! ```
//!
//! `awaiting` names what the next request answers ([`Awaiting`]): 1 for a
//! code typed at the prompt (no data); 2 for the result of a push whose
//! number the Access-Challenge showed (data: number (1) | the challenge's
//! expiry (8, Unix s, BE) | challenge id (ASCII, 1 to
//! [`MAX_CHALLENGE_ID_LEN`] octets)). A new kind of challenge (a
//! text-message code) is a new tag and its data, in the same layout; a
//! server that meets a tag it does not know refuses the State
//! ([`StateError::UnknownKind`]). A new layout takes a new version octet and
//! a new label in the associated data.
//!
//! Version 1 States (`primary | expiry | attributes`, label
//! `"twostep-radius-state-1"`, always awaiting a code) still open, so a pool
//! can be upgraded one server at a time while challenges are in flight.
//!
//! User and client are bound as associated data: a State presented for
//! another user or by another client does not open. The version is bound
//! by the label. The primary password is never stored.

use chacha20poly1305::aead::{self, Aead};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::path::Path;

use crate::wire::RawAttr;
use crate::Error;

/// The layout written by [`seal`].
const VERSION: u8 = 2;
/// The first layout, still read by [`open`].
const VERSION_1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"twostep-radius-state-2";
const AAD_LABEL_1: &[u8] = b"twostep-radius-state-1";
/// Plaintext before the awaiting-specific data: awaiting, expiry,
/// primary, len(data).
const HEADER_LEN: usize = 1 + 8 + 1 + 1;
/// Largest State value (an attribute value), in octets.
pub const MAX_STATE_LEN: usize = 253;
/// Room left in a State for the awaiting-specific data plus the upstream
/// attributes (RADIUS-encoded, 2 octets of header each), in octets. All of
/// it goes to the attributes when awaiting a code.
pub const MAX_SEALED_ATTRS_LEN: usize = MAX_STATE_LEN - 1 - NONCE_LEN - TAG_LEN - HEADER_LEN;

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
    /// [`Error::Config`] when the file is missing, refused by the owner and mode rule, or not 64 hex digits.
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

/// Longest push challenge id a State carries, in octets (the registry's
/// are 22: 16 random octets in base64url).
pub const MAX_CHALLENGE_ID_LEN: usize = 64;

/// What a challenge State waits for: the kind of answer the next
/// Access-Request brings. Sealed as a tag octet and kind-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Awaiting {
    /// The code from the authenticator app, typed at the Access-Challenge
    /// prompt, or `push` for a push approval instead (tag 1, no data).
    Code,
    /// The result of a push whose number the Access-Challenge showed: the
    /// next request (whatever it types) collects it (tag 2).
    PushResult {
        /// The registry's challenge id (ASCII, at most
        /// [`MAX_CHALLENGE_ID_LEN`] octets).
        challenge_id: String,
        /// The number shown, to show again while the push is pending.
        number: u8,
        /// The challenge's expiry, Unix seconds (the registry's clock).
        expires_at: u64,
    },
}

impl Awaiting {
    const CODE: u8 = 1;
    const PUSH_RESULT: u8 = 2;

    fn tag(&self) -> u8 {
        match self {
            Self::Code => Self::CODE,
            Self::PushResult { .. } => Self::PUSH_RESULT,
        }
    }

    /// The kind-specific data, at most [`MAX_SEALED_ATTRS_LEN`] octets.
    fn data(&self) -> Result<Vec<u8>, Error> {
        match self {
            Self::Code => Ok(Vec::new()),
            Self::PushResult {
                challenge_id,
                number,
                expires_at,
            } => {
                if !challenge_id_fits(challenge_id) {
                    return Err(Error::Encode(format!(
                        "push challenge id of {} octets does not fit a State (1 to {MAX_CHALLENGE_ID_LEN} printable ASCII)",
                        challenge_id.len()
                    )));
                }
                let mut d = Vec::with_capacity(9 + challenge_id.len());
                d.push(*number);
                d.extend_from_slice(&expires_at.to_be_bytes());
                d.extend_from_slice(challenge_id.as_bytes());
                Ok(d)
            }
        }
    }

    fn from_parts(tag: u8, data: &[u8]) -> Result<Self, StateError> {
        match (tag, data) {
            (Self::CODE, []) => Ok(Self::Code),
            (Self::CODE, _) => Err(StateError::DoesNotOpen),
            (Self::PUSH_RESULT, [number, rest @ ..]) if rest.len() > 8 => {
                let (expiry, id) = rest.split_at(8);
                let challenge_id = std::str::from_utf8(id)
                    .ok()
                    .filter(|id| challenge_id_fits(id))
                    .ok_or(StateError::DoesNotOpen)?;
                Ok(Self::PushResult {
                    challenge_id: challenge_id.to_owned(),
                    number: *number,
                    expires_at: be_u64(expiry)?,
                })
            }
            (Self::PUSH_RESULT, _) => Err(StateError::DoesNotOpen),
            (other, _) => Err(StateError::UnknownKind(other)),
        }
    }
}

/// Whether a challenge id can be sealed: 1 to [`MAX_CHALLENGE_ID_LEN`]
/// octets of printable ASCII.
fn challenge_id_fits(id: &str) -> bool {
    (1..=MAX_CHALLENGE_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// What a State carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// What the next Access-Request answers.
    pub awaiting: Awaiting,
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
    /// Opened, but awaits a kind of answer this server does not know
    /// (sealed by a newer server of the pool).
    #[error("State awaits an answer of kind {0}, unknown to this server (a newer twostep-radiusd in the pool?)")]
    UnknownKind(u8),
}

fn aad(label: &[u8], client: &str, user: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(label.len() + 4 + client.len() + user.len());
    a.extend_from_slice(label);
    a.extend_from_slice(&(client.len() as u16).to_be_bytes());
    a.extend_from_slice(client.as_bytes());
    a.extend_from_slice(&(user.len() as u16).to_be_bytes());
    a.extend_from_slice(user);
    a
}

fn primary_octet(p: Primary) -> u8 {
    match p {
        Primary::None => 0,
        Primary::UpstreamAccepted => 1,
    }
}

fn primary_of(octet: u8) -> Result<Primary, StateError> {
    match octet {
        0 => Ok(Primary::None),
        1 => Ok(Primary::UpstreamAccepted),
        _ => Err(StateError::DoesNotOpen),
    }
}

/// Seals `contents` as a State for `user` at `client`.
///
/// # Errors
/// [`Error::StateTooLarge`] when the awaiting-specific data and the
/// attributes need more than [`MAX_SEALED_ATTRS_LEN`] octets;
/// [`Error::Encode`] for a push challenge id that is not 1 to
/// [`MAX_CHALLENGE_ID_LEN`] octets of printable ASCII.
pub fn seal(
    key: &StateKey,
    client: &str,
    user: &[u8],
    contents: &Contents,
) -> Result<Vec<u8>, Error> {
    let data = contents.awaiting.data()?;
    let attr_len: usize = contents.attrs.iter().map(|a| a.value.len() + 2).sum();
    if data.len() + attr_len > MAX_SEALED_ATTRS_LEN {
        return Err(Error::StateTooLarge(data.len() + attr_len));
    }
    let mut plain = Vec::with_capacity(MAX_STATE_LEN);
    plain.push(contents.awaiting.tag());
    plain.extend_from_slice(&contents.expires_at.to_be_bytes());
    plain.push(primary_octet(contents.primary));
    plain.push(data.len() as u8);
    plain.extend_from_slice(&data);
    for a in &contents.attrs {
        plain.push(a.typ);
        plain.push((a.value.len() + 2) as u8);
        plain.extend_from_slice(&a.value);
    }
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(AAD_LABEL, client, user);
    let ct = key
        .0
        .encrypt(
            &XNonce::from(nonce),
            aead::Payload {
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
/// [`StateError::DoesNotOpen`], [`StateError::Expired`] or
/// [`StateError::UnknownKind`].
pub fn open(
    key: &StateKey,
    client: &str,
    user: &[u8],
    now: u64,
    state: &[u8],
) -> Result<Contents, StateError> {
    let (label, min_plain) = match state.first() {
        Some(&VERSION) => (AAD_LABEL, HEADER_LEN),
        Some(&VERSION_1) => (AAD_LABEL_1, 9),
        _ => return Err(StateError::DoesNotOpen),
    };
    if state.len() < 1 + NONCE_LEN + TAG_LEN + min_plain {
        return Err(StateError::DoesNotOpen);
    }
    let nonce: [u8; NONCE_LEN] = state[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| StateError::DoesNotOpen)?;
    let aad = aad(label, client, user);
    let plain = key
        .0
        .decrypt(
            &XNonce::from(nonce),
            aead::Payload {
                msg: &state[1 + NONCE_LEN..],
                aad: &aad,
            },
        )
        .map_err(|_| StateError::DoesNotOpen)?;
    let (awaiting, primary, expires_at, attrs) = if state[0] == VERSION {
        let data_end = HEADER_LEN + usize::from(plain[HEADER_LEN - 1]);
        let data = plain
            .get(HEADER_LEN..data_end)
            .ok_or(StateError::DoesNotOpen)?;
        (
            Some((plain[0], data)),
            primary_of(plain[9])?,
            be_u64(&plain[1..9])?,
            &plain[data_end..],
        )
    } else {
        (
            None,
            primary_of(plain[0])?,
            be_u64(&plain[1..9])?,
            &plain[9..],
        )
    };
    if now > expires_at {
        return Err(StateError::Expired);
    }
    let awaiting = match awaiting {
        Some((tag, data)) => Awaiting::from_parts(tag, data)?,
        None => Awaiting::Code,
    };
    Ok(Contents {
        awaiting,
        primary,
        expires_at,
        attrs: decode_attrs(attrs)?,
    })
}

fn be_u64(b: &[u8]) -> Result<u64, StateError> {
    Ok(u64::from_be_bytes(
        b.try_into().map_err(|_| StateError::DoesNotOpen)?,
    ))
}

fn decode_attrs(mut b: &[u8]) -> Result<Vec<RawAttr>, StateError> {
    let mut attrs = Vec::new();
    while let [typ, len, ..] = *b {
        let len = usize::from(len);
        if len < 2 || len > b.len() {
            return Err(StateError::DoesNotOpen);
        }
        attrs.push(RawAttr {
            typ,
            value: b[2..len].to_vec(),
        });
        b = &b[len..];
    }
    if b.is_empty() {
        Ok(attrs)
    } else {
        Err(StateError::DoesNotOpen)
    }
}

/// What this server remembers of the challenge States it opened: those
/// that completed a login, so a State is good for one Access-Accept here
/// (the reply cache answers retransmissions of that request), and the wrong
/// codes each took, so a State takes at most `[radius]
/// challenge_max_tries` of them. Entries are kept until the State's own
/// expiry; only States that opened (sealed by a server holding the key,
/// unexpired) are recorded. Other servers of a pool do not see this list;
/// there the registry's replay rule still refuses the used code and its
/// lockout bounds wrong ones. Sans-I/O: the caller passes the clock.
#[derive(Debug, Default)]
pub struct UsedStates {
    entries: std::collections::HashMap<Vec<u8>, StateUse>,
}

/// One State's record in [`UsedStates`].
#[derive(Debug, Clone, Copy, Default)]
struct StateUse {
    /// The State's expiry (Unix s).
    expires_at: u64,
    /// It served an Access-Accept, or it was ended after its last try.
    spent: bool,
    /// Wrong answers it took.
    wrong: u32,
}

impl UsedStates {
    /// Whether `state` already completed a login (or was ended) and has
    /// not expired at `now`.
    pub fn contains(&self, state: &[u8], now: u64) -> bool {
        self.live(state, now).is_some_and(|u| u.spent)
    }

    /// Wrong answers `state` took so far (0 once expired at `now`).
    pub fn wrong_tries(&self, state: &[u8], now: u64) -> u32 {
        self.live(state, now).map_or(0, |u| u.wrong)
    }

    fn live(&self, state: &[u8], now: u64) -> Option<&StateUse> {
        self.entries.get(state).filter(|u| now <= u.expires_at)
    }

    fn entry(&mut self, state: &[u8], expires_at: u64, now: u64) -> &mut StateUse {
        self.entries.retain(|_, u| now <= u.expires_at);
        let e = self.entries.entry(state.to_vec()).or_default();
        e.expires_at = expires_at;
        e
    }

    /// Records `state` (valid until `expires_at`) as used; forgets entries
    /// expired at `now`.
    pub fn insert(&mut self, state: &[u8], expires_at: u64, now: u64) {
        self.entry(state, expires_at, now).spent = true;
    }

    /// Counts one wrong answer to `state` (valid until `expires_at`);
    /// returns its wrong answers so far. Forgets entries expired at `now`.
    pub fn count_wrong(&mut self, state: &[u8], expires_at: u64, now: u64) -> u32 {
        let e = self.entry(state, expires_at, now);
        e.wrong = e.wrong.saturating_add(1);
        e.wrong
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

    fn code_state(primary: Primary, expires_at: u64, attrs: Vec<RawAttr>) -> Contents {
        Contents {
            awaiting: Awaiting::Code,
            primary,
            expires_at,
            attrs,
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
        let c = code_state(Primary::UpstreamAccepted, 1000, attrs);
        let s = seal(&key(1), "gw", b"alice", &c).unwrap();
        assert!(s.len() <= MAX_STATE_LEN);
        assert_eq!(s[0], 2, "version");
        assert_eq!(open(&key(1), "gw", b"alice", 999, &s), Ok(c.clone()));
        assert_eq!(open(&key(1), "gw", b"alice", 1000, &s), Ok(c));
    }

    /// `s`, sealed for alice at gw until 1000, opens for nobody else, and
    /// not after 1000.
    fn assert_bound(s: &[u8]) {
        for (client, user) in [("gw", &b"bob"[..]), ("gw2", b"alice")] {
            assert_eq!(
                open(&key(1), client, user, 0, s),
                Err(StateError::DoesNotOpen)
            );
        }
        assert_eq!(
            open(&key(1), "gw", b"alice", 1001, s),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn refused_for_other_user_client_key_or_time() {
        let s = seal(
            &key(1),
            "gw",
            b"alice",
            &code_state(Primary::None, 1000, vec![]),
        )
        .unwrap();
        assert_bound(&s);
        assert_eq!(
            open(&key(2), "gw", b"alice", 0, &s),
            Err(StateError::DoesNotOpen)
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
        // Version 2 relabelled as version 1 (and back) does not open.
        let mut t = s.clone();
        t[0] = 1;
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &t),
            Err(StateError::DoesNotOpen)
        );
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, b""),
            Err(StateError::DoesNotOpen)
        );
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &s[..40]),
            Err(StateError::DoesNotOpen)
        );
    }

    /// Seals a plaintext by hand under `version` and `label`, as another
    /// (older or newer) server would.
    fn seal_raw(version: u8, label: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = [3u8; NONCE_LEN];
        let ct = key(1)
            .0
            .encrypt(
                &XNonce::from(nonce),
                aead::Payload {
                    msg: plain,
                    aad: &aad(label, "gw", b"alice"),
                },
            )
            .unwrap();
        [&[version][..], &nonce, &ct].concat()
    }

    #[test]
    fn version_1_states_still_open_as_awaiting_a_code() {
        let mut plain = vec![1];
        plain.extend_from_slice(&500u64.to_be_bytes());
        plain.extend_from_slice(&[25, 4, b'c', b'1']);
        let s = seal_raw(1, AAD_LABEL_1, &plain);
        assert_eq!(
            open(&key(1), "gw", b"alice", 400, &s),
            Ok(code_state(
                Primary::UpstreamAccepted,
                500,
                vec![class(b"c1")]
            ))
        );
        assert_eq!(
            open(&key(1), "gw", b"alice", 501, &s),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn unknown_kind_is_refused_by_name() {
        let mut plain = vec![9];
        plain.extend_from_slice(&500u64.to_be_bytes());
        plain.extend_from_slice(&[0, 3, b'a', b'b', b'c']);
        let s = seal_raw(2, AAD_LABEL, &plain);
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &s),
            Err(StateError::UnknownKind(9))
        );
        // Awaiting a code carries no data; data there is not ours.
        plain[0] = 1;
        let s = seal_raw(2, AAD_LABEL, &plain);
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &s),
            Err(StateError::DoesNotOpen)
        );
        // Data longer than the plaintext.
        let mut plain = vec![1];
        plain.extend_from_slice(&500u64.to_be_bytes());
        plain.extend_from_slice(&[0, 40]);
        let s = seal_raw(2, AAD_LABEL, &plain);
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &s),
            Err(StateError::DoesNotOpen)
        );
    }

    fn push_state(challenge_id: &str, attrs: Vec<RawAttr>) -> Contents {
        Contents {
            awaiting: Awaiting::PushResult {
                challenge_id: challenge_id.into(),
                number: 42,
                expires_at: 1_700_000_060,
            },
            primary: Primary::UpstreamAccepted,
            expires_at: 1000,
            attrs,
        }
    }

    #[test]
    fn push_result_round_trip_bound_to_user_and_client() {
        let c = push_state("Xk3v9QbT2mW8sLp0aZr4Yw", vec![class(b"group=vpn")]);
        let s = seal(&key(1), "gw", b"alice", &c).unwrap();
        assert_eq!(open(&key(1), "gw", b"alice", 1000, &s), Ok(c));
        assert_bound(&s);
    }

    #[test]
    fn push_result_ids_that_do_not_fit_are_refused() {
        for id in ["", "with space", "\u{e9}t\u{e9}"] {
            assert!(
                matches!(
                    seal(&key(1), "gw", b"alice", &push_state(id, vec![])),
                    Err(Error::Encode(_))
                ),
                "{id:?}"
            );
        }
        let longest = "a".repeat(MAX_CHALLENGE_ID_LEN);
        let s = seal(&key(1), "gw", b"alice", &push_state(&longest, vec![])).unwrap();
        assert!(open(&key(1), "gw", b"alice", 0, &s).is_ok());
        let too_long = "a".repeat(MAX_CHALLENGE_ID_LEN + 1);
        assert!(seal(&key(1), "gw", b"alice", &push_state(&too_long, vec![])).is_err());
        // The id and the attributes share the room of a State.
        let big = vec![class(&[b'x'; MAX_SEALED_ATTRS_LEN - 2 - 30])];
        assert!(matches!(
            seal(&key(1), "gw", b"alice", &push_state(&"a".repeat(22), big)),
            Err(Error::StateTooLarge(_))
        ));
    }

    #[test]
    fn push_result_data_is_checked_when_opened() {
        let plain = |data: &[u8]| {
            let mut p = vec![2];
            p.extend_from_slice(&500u64.to_be_bytes());
            p.extend_from_slice(&[0, data.len() as u8]);
            p.extend_from_slice(data);
            seal_raw(2, AAD_LABEL, &p)
        };
        // Number and expiry but no id; a non-ASCII id.
        let mut d = vec![42];
        d.extend_from_slice(&9u64.to_be_bytes());
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &plain(&d)),
            Err(StateError::DoesNotOpen)
        );
        d.extend_from_slice(&[0xc3, 0xa9]);
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &plain(&d)),
            Err(StateError::DoesNotOpen)
        );
        assert_eq!(
            open(&key(1), "gw", b"alice", 0, &plain(&[])),
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
    fn wrong_tries_are_counted_until_expiry() {
        let mut u = UsedStates::default();
        assert_eq!(u.wrong_tries(b"s1", 0), 0);
        assert_eq!(u.count_wrong(b"s1", 100, 0), 1);
        assert_eq!(u.count_wrong(b"s1", 100, 10), 2);
        assert_eq!(u.wrong_tries(b"s1", 100), 2);
        assert!(!u.contains(b"s1", 50), "wrong tries do not spend it");
        u.insert(b"s1", 100, 20);
        assert!(u.contains(b"s1", 50));
        assert_eq!(u.wrong_tries(b"s1", 101), 0);
        u.insert(b"s2", 300, 200);
        assert_eq!(u.len(), 1, "s1 pruned");
    }

    #[test]
    fn nonces_differ() {
        let c = code_state(Primary::None, 1000, vec![]);
        let a = seal(&key(1), "gw", b"alice", &c).unwrap();
        let b = seal(&key(1), "gw", b"alice", &c).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn too_many_attributes_are_refused() {
        let big = code_state(Primary::UpstreamAccepted, 1, vec![class(&[b'x'; 210])]);
        assert!(matches!(
            seal(&key(1), "gw", b"alice", &big),
            Err(Error::StateTooLarge(212))
        ));
        let fits = vec![class(&[b'x'; MAX_SEALED_ATTRS_LEN - 2])];
        let fits = code_state(Primary::UpstreamAccepted, 1, fits);
        let s = seal(&key(1), "gw", b"alice", &fits).unwrap();
        assert_eq!(s.len(), MAX_STATE_LEN);
        assert_eq!(open(&key(1), "gw", b"alice", 0, &s), Ok(fits));
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
