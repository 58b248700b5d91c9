use crate::ConfigError;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use zeroize::Zeroizing;

/// A secret read from a `*_file` key: shared secrets, API keys, tokens.
///
/// The bytes are wiped on drop and `Debug` prints `Secret(<redacted>)`, so a
/// secret cannot reach a log by accident.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes as a secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as UTF-8 text, if they are.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Checks that `path` is a regular file owned by root or by the running
/// user, with no group or world permission bits (mode `0600` or stricter).
///
/// # Errors
/// [`ConfigError::Io`] when the file cannot be inspected,
/// [`ConfigError::Secret`] with the reason and the fix otherwise.
pub fn check_secret_file(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|error| ConfigError::Io {
        path: path.to_owned(),
        error,
    })?;
    if !meta.is_file() {
        return Err(ConfigError::Secret {
            path: path.to_owned(),
            reason: "not a regular file".into(),
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(ConfigError::Secret {
            path: path.to_owned(),
            reason: format!(
                "owned by uid {}, must be owned by root or uid {euid} (fix: chown root {})",
                meta.uid(),
                path.display()
            ),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::Secret {
            path: path.to_owned(),
            reason: format!(
                "mode {mode:04o} gives access to group or others (fix: chmod 600 {})",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Reads a secret file after [`check_secret_file`]. Surrounding whitespace
/// (a trailing newline) is removed.
///
/// # Errors
/// As [`check_secret_file`]; [`ConfigError::Secret`] when the file is empty.
pub fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    check_secret_file(path)?;
    let raw = Zeroizing::new(std::fs::read(path).map_err(|error| ConfigError::Io {
        path: path.to_owned(),
        error,
    })?);
    let start = raw.iter().position(|b| !b.is_ascii_whitespace());
    let end = raw.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => Ok(Secret::new(raw[s..=e].to_vec())),
        _ => Err(ConfigError::Secret {
            path: path.to_owned(),
            reason: "the file is empty".into(),
        }),
    }
}
