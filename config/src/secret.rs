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

/// Checks that nobody but root or the running user can change the
/// configuration file at `path`, in the spirit of OpenSSH's `StrictModes`.
///
/// Symbolic links are resolved first; then the file must be a regular file
/// owned by root or the effective uid and not group- or world-writable, and
/// every directory above it up to `/` must be owned by root or the effective
/// uid and not group- or world-writable unless it has the sticky bit (as
/// `/tmp` does, where nobody can replace another user's file).
///
/// # Errors
/// [`ConfigError::Io`] when the file or a directory cannot be inspected,
/// [`ConfigError::Unsafe`] naming the file, what is wrong and the
/// `chown`/`chmod` that fixes it.
pub fn check_config_file(path: &Path) -> Result<(), ConfigError> {
    let io = |error| ConfigError::Io {
        path: path.to_owned(),
        error,
    };
    let unsafe_ = |reason: String| ConfigError::Unsafe {
        path: path.to_owned(),
        reason,
    };
    let real = std::fs::canonicalize(path).map_err(io)?;
    let meta = std::fs::metadata(&real).map_err(io)?;
    if !meta.is_file() {
        return Err(unsafe_("not a regular file".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let trusted = |uid: u32| uid == 0 || uid == euid;
    if !trusted(meta.uid()) {
        return Err(unsafe_(format!(
            "owned by uid {}, must be owned by root or uid {euid} (fix: chown root {})",
            meta.uid(),
            real.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_(format!(
            "mode {mode:04o} lets group or others change it (fix: chmod go-w {})",
            real.display()
        )));
    }
    for dir in real.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|error| ConfigError::Io {
            path: dir.to_owned(),
            error,
        })?;
        if !trusted(meta.uid()) {
            return Err(unsafe_(format!(
                "directory {} is owned by uid {}, must be owned by root or uid {euid} (fix: chown root {})",
                dir.display(),
                meta.uid(),
                dir.display()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(unsafe_(format!(
                "directory {} has mode {mode:04o}: group or others can replace the file (fix: chmod go-w {})",
                dir.display(),
                dir.display()
            )));
        }
    }
    Ok(())
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
