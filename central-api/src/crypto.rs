//! Keys and secrets: the at-rest key for TOTP secrets (XChaCha20-Poly1305),
//! the admin token, host API keys (stored as SHA-256 hashes).

use crate::error::StartupError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use subtle::ConstantTimeEq;
use twostep_config::{check_secret_file, read_secret_file, Secret};
use zeroize::Zeroizing;

/// Length of the at-rest key, in bytes.
pub const KEY_BYTES: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce, in bytes.
const NONCE_BYTES: usize = 24;

/// Encrypts and decrypts TOTP secrets at rest with XChaCha20-Poly1305 and a
/// random 192-bit nonce per secret. The associated data binds a ciphertext
/// to its method row, so a ciphertext copied to another row does not decrypt.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// HMAC key of one-time codes kept as MACs (backup codes), derived
    /// from the key: SHA-256("twostep/code-mac/v1" ‖ key).
    code_mac_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

/// The associated data of a TOTP secret: method id and owning user id.
pub fn totp_aad(method_id: i64, user_id: i64) -> Vec<u8> {
    format!("twostep/totp/v1/method/{method_id}/user/{user_id}").into_bytes()
}

impl SecretBox {
    /// A box using `key` (exactly [`KEY_BYTES`] bytes).
    pub fn new(key: &[u8; KEY_BYTES]) -> Self {
        let mut h = Sha256::new();
        h.update(b"twostep/code-mac/v1");
        h.update(key);
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            code_mac_key: Zeroizing::new(h.finalize().into()),
        }
    }

    /// HMAC-SHA256 of `code` with `salt`, under a key derived from this
    /// box's key, hex: how backup codes are kept. Without the key file a
    /// stolen database gives no way to test guesses offline, as for the
    /// TOTP secrets it encrypts; with it, a guess costs one MAC, so codes
    /// kept this way must be single-use and rate limited (the lockout).
    pub fn code_mac(&self, salt: &[u8], code: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.code_mac_key.as_ref())
            .expect("HMAC takes any key length");
        m.update(salt);
        m.update(code.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// Loads the key file, creating it (32 random bytes, mode 0600, parent
    /// directory 0700) when missing. An existing file must pass
    /// [`check_secret_file`] and hold exactly 32 bytes (read raw, no trimming).
    ///
    /// # Errors
    /// [`StartupError`] naming the file and the problem.
    pub fn load_or_create(path: &Path) -> Result<Self, StartupError> {
        if !path.exists() {
            let mut key = Zeroizing::new([0u8; KEY_BYTES]);
            rand::rngs::OsRng.fill_bytes(key.as_mut());
            create_secret_file(path, key.as_ref())?;
            tracing::info!(path = %path.display(), "created a new secret key file");
        }
        check_secret_file(path)?;
        let raw = Zeroizing::new(std::fs::read(path).map_err(|e| StartupError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?);
        let key: [u8; KEY_BYTES] = raw.as_slice().try_into().map_err(|_| StartupError::File {
            path: path.to_owned(),
            message: format!(
                "secret key file holds {} bytes, must be exactly {KEY_BYTES}",
                raw.len()
            ),
        })?;
        let key = Zeroizing::new(key);
        Ok(Self::new(&key))
    }

    /// `nonce || ciphertext` of `secret`.
    ///
    /// # Errors
    /// Only if the AEAD refuses (it does not for these sizes).
    pub fn seal(&self, secret: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad })
            .map_err(|_| "encryption failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts what [`SecretBox::seal`] produced with the same `aad`.
    ///
    /// # Errors
    /// When the data is too short, was tampered with, belongs to another
    /// row, or the key is not the one it was sealed with.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        if sealed.len() < NONCE_BYTES + 16 {
            return Err("sealed secret too short".into());
        }
        let (nonce, ct) = sealed.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| "secret does not decrypt (wrong key file or altered row)".into())
    }
}

/// The constant sealed as the database's key check value.
const KEY_CHECK_PLAINTEXT: &[u8] = b"twostep secret key check";
/// Associated data of the key check value.
const KEY_CHECK_AAD: &[u8] = b"twostep/key-check/v1";

impl SecretBox {
    /// The key check value: a fixed constant sealed with this key (random
    /// nonce), hex. It reveals nothing about the key; only the same key
    /// opens it (see [`SecretBox::matches_check_value`]).
    ///
    /// # Errors
    /// Only if the AEAD refuses (it does not for these sizes).
    pub fn key_check_value(&self) -> Result<String, String> {
        self.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
            .map(hex::encode)
    }

    /// Whether `value` (from [`SecretBox::key_check_value`], possibly of
    /// another node) was sealed with this key.
    pub fn matches_check_value(&self, value: &str) -> bool {
        hex::decode(value.trim())
            .ok()
            .and_then(|b| self.open(&b, KEY_CHECK_AAD).ok())
            .is_some_and(|p| p.as_slice() == KEY_CHECK_PLAINTEXT)
    }
}

/// Creates `path` exclusively with mode 0600 holding `contents`; creates a
/// missing parent directory with mode 0700.
///
/// # Errors
/// [`StartupError::File`] naming the file.
pub fn create_secret_file(path: &Path, contents: &[u8]) -> Result<(), StartupError> {
    let err = |e: std::io::Error| StartupError::File {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(err)?;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(())
}

/// A random token: 32 bytes from the OS generator, hex-encoded (64 characters).
pub fn random_token() -> Zeroizing<String> {
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(b.as_mut());
    Zeroizing::new(hex::encode(b.as_ref()))
}

/// The admin token, compared in constant time. One read from a file is
/// read again at every check, so replacing the file revokes the old token
/// at once, without a restart.
pub struct AdminToken(TokenSource);

enum TokenSource {
    Fixed(Secret),
    File(std::path::PathBuf),
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            TokenSource::Fixed(_) => f.write_str("AdminToken(<redacted>)"),
            TokenSource::File(p) => write!(f, "AdminToken(file {})", p.display()),
        }
    }
}

impl AdminToken {
    /// A fixed token (not read from a file).
    pub fn new(token: Secret) -> Self {
        Self(TokenSource::Fixed(token))
    }

    /// Checks the admin token file, creating one (random, mode 0600) when
    /// missing; its path (never the token) is logged. The file is read
    /// again by every [`AdminToken::check`].
    ///
    /// # Errors
    /// [`StartupError`] when the file has an owner or mode others could use, is empty or cannot be created.
    pub fn load_or_create(path: &Path) -> Result<Self, StartupError> {
        if !path.exists() {
            let token = random_token();
            let mut line = token.as_bytes().to_vec();
            line.push(b'\n');
            create_secret_file(path, &line)?;
            tracing::warn!(path = %path.display(), "created a new admin token file");
        }
        read_secret_file(path)?;
        Ok(Self(TokenSource::File(path.to_owned())))
    }

    /// Whether `presented` is the token (as the file holds it now), in time
    /// independent of where they differ.
    ///
    /// # Errors
    /// The file's problem (one line naming it) when it cannot be read or is
    /// refused now ([`read_secret_file`]'s rules): no token is accepted then.
    pub fn check(&self, presented: &[u8]) -> Result<bool, String> {
        let current;
        let token = match &self.0 {
            TokenSource::Fixed(t) => t,
            TokenSource::File(path) => {
                current = read_secret_file(path).map_err(|e| e.to_string())?;
                &current
            }
        };
        Ok(token.expose().ct_eq(presented).into())
    }
}

/// Prefix of host API keys, so a leaked key is recognisable.
pub const HOST_KEY_PREFIX: &str = "tsh_";

/// A new host API key: [`HOST_KEY_PREFIX`] and 64 hex digits.
pub fn new_host_key() -> Zeroizing<String> {
    Zeroizing::new(format!("{HOST_KEY_PREFIX}{}", random_token().as_str()))
}

/// SHA-256 of a host API key, hex; what the database keeps.
pub fn host_key_hash(key: &[u8]) -> String {
    hex::encode(Sha256::digest(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let b = SecretBox::new(&[7u8; KEY_BYTES]);
        let s = b.seal(b"secret bytes", &totp_aad(1, 2)).unwrap();
        assert_eq!(
            b.open(&s, &totp_aad(1, 2)).unwrap().as_slice(),
            b"secret bytes"
        );
        assert!(b.open(&s, &totp_aad(2, 2)).is_err());
        let other = SecretBox::new(&[8u8; KEY_BYTES]);
        assert!(other.open(&s, &totp_aad(1, 2)).is_err());
        // Two seals of the same secret differ (random nonce).
        assert_ne!(s, b.seal(b"secret bytes", &totp_aad(1, 2)).unwrap());
    }

    #[test]
    fn key_check_value_only_matches_its_key() {
        let a = SecretBox::new(&[1u8; KEY_BYTES]);
        let b = SecretBox::new(&[2u8; KEY_BYTES]);
        let v = a.key_check_value().unwrap();
        assert!(a.matches_check_value(&v));
        assert!(!b.matches_check_value(&v));
        assert!(!a.matches_check_value("zz"));
        assert!(!a.matches_check_value(""));
        assert_ne!(v, a.key_check_value().unwrap());
    }

    #[test]
    fn key_file_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.key");
        let a = SecretBox::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_BYTES as u64);
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        let sealed = a.seal(b"x", b"ad").unwrap();
        let b = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(b.open(&sealed, b"ad").unwrap().as_slice(), b"x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SecretBox::load_or_create(&path).is_err());
    }

    #[test]
    fn wrong_length_key_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        create_secret_file(&path, b"short\n").unwrap();
        let e = SecretBox::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("exactly 32"), "{e}");
    }

    #[test]
    fn code_macs_depend_on_key_salt_and_code() {
        let a = SecretBox::new(&[7u8; KEY_BYTES]);
        let b = SecretBox::new(&[8u8; KEY_BYTES]);
        let m = a.code_mac(b"salt", "12345678");
        assert_eq!(m.len(), 64);
        assert_eq!(m, a.code_mac(b"salt", "12345678"));
        assert_ne!(m, a.code_mac(b"salt", "12345679"));
        assert_ne!(m, a.code_mac(b"pepper", "12345678"));
        assert_ne!(m, b.code_mac(b"salt", "12345678"));
    }

    #[test]
    fn admin_token_constant_time_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let t = AdminToken::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(t.check(text.trim().as_bytes()), Ok(true));
        assert_eq!(t.check(b"wrong"), Ok(false));
        assert_eq!(t.check(b""), Ok(false));
        // Replaced: the old token is refused at once, the new one accepted.
        std::fs::remove_file(&path).unwrap();
        create_secret_file(&path, b"new-token\n").unwrap();
        assert_eq!(t.check(text.trim().as_bytes()), Ok(false));
        assert_eq!(t.check(b"new-token"), Ok(true));
        // Unsafe now: nothing is accepted.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(t.check(b"new-token").is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(t.check(b"new-token").is_err());
    }
}
