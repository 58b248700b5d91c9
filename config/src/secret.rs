use crate::ConfigError;
use std::fmt;
use std::fs::Metadata;
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

    /// The secret held in the contents of a `*_file`: surrounding ASCII
    /// whitespace (a trailing newline) removed, `raw` wiped. The result is
    /// empty for a file of whitespace only.
    pub fn from_file_contents(raw: Vec<u8>) -> Self {
        let raw = Zeroizing::new(raw);
        let start = raw.iter().position(|b| !b.is_ascii_whitespace());
        let end = raw.iter().rposition(|b| !b.is_ascii_whitespace());
        match (start, end) {
            (Some(s), Some(e)) => Self::new(raw[s..=e].to_vec()),
            _ => Self::new(Vec::new()),
        }
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
    let refused = |reason: String| ConfigError::Unsafe {
        path: path.to_owned(),
        reason,
    };
    let real = std::fs::canonicalize(path).map_err(io)?;
    let meta = std::fs::metadata(&real).map_err(io)?;
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    let trusted = |uid: u32| uid == 0 || uid == euid;
    if !trusted(meta.uid()) {
        return Err(refused(format!(
            "owned by uid {}, must be owned by root or uid {euid} (fix: chown root {})",
            meta.uid(),
            real.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(format!(
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
            return Err(refused(format!(
                "directory {} is owned by uid {}, must be owned by root or uid {euid} (fix: chown root {})",
                dir.display(),
                meta.uid(),
                dir.display()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(refused(format!(
                "directory {} has mode {mode:04o}: group or others can replace the file (fix: chmod go-w {})",
                dir.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Why a secret file is refused: the rule that [`check_secret_file`]
/// enforces for the daemons and that `twostep doctor` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFileProblem {
    /// Not a regular file (a directory, a device, a FIFO).
    NotRegularFile,
    /// Owned by `uid`, which is neither root nor a user that reads the file.
    Owner {
        /// The file's owner.
        uid: u32,
    },
    /// Group or others have some permission (`mode & 0o077 != 0`).
    Mode {
        /// The permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The file holds nothing (or, read by [`read_secret_file`], only
    /// whitespace).
    Empty,
}

impl SecretFileProblem {
    /// The reason given by [`ConfigError::Secret`] for the file at `path`,
    /// with its fix; `reader` is the uid that reads it.
    fn reason(self, path: &Path, reader: u32) -> String {
        match self {
            Self::NotRegularFile => "not a regular file".into(),
            Self::Owner { uid } => format!(
                "owned by uid {uid}, must be owned by root or uid {reader} (fix: chown root {})",
                path.display()
            ),
            Self::Mode { mode } => format!(
                "mode {mode:04o} gives access to group or others (fix: chmod 600 {})",
                path.display()
            ),
            Self::Empty => "the file is empty".into(),
        }
    }
}

/// The secret-file rule on `meta`, the metadata of a `*_file` (symbolic
/// links followed), without reading the secret: a regular file, owned by
/// root or by one of `readers` (the uids of the services that read it),
/// with no group or world permission bits (mode `0600` or stricter), and
/// not empty. The first rule broken, or `None` when the file passes.
pub fn secret_file_problem(meta: &Metadata, readers: &[u32]) -> Option<SecretFileProblem> {
    if !meta.is_file() {
        return Some(SecretFileProblem::NotRegularFile);
    }
    if meta.uid() != 0 && !readers.contains(&meta.uid()) {
        return Some(SecretFileProblem::Owner { uid: meta.uid() });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Some(SecretFileProblem::Mode { mode });
    }
    if meta.len() == 0 {
        return Some(SecretFileProblem::Empty);
    }
    None
}

/// Checks [`secret_file_problem`] for `path` read by the running user
/// (effective uid): a regular file owned by root or by that user, with no
/// group or world permission bits (mode `0600` or stricter), not empty.
///
/// # Errors
/// [`ConfigError::Io`] when the file cannot be inspected,
/// [`ConfigError::Secret`] with the reason and the fix otherwise.
pub fn check_secret_file(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|error| ConfigError::Io {
        path: path.to_owned(),
        error,
    })?;
    let euid = nix::unistd::geteuid().as_raw();
    match secret_file_problem(&meta, &[euid]) {
        None => Ok(()),
        Some(problem) => Err(ConfigError::Secret {
            path: path.to_owned(),
            reason: problem.reason(path, euid),
        }),
    }
}

/// Reads a secret file after [`check_secret_file`]. Surrounding whitespace
/// (a trailing newline) is removed ([`Secret::from_file_contents`]).
///
/// # Errors
/// As [`check_secret_file`]; [`ConfigError::Secret`] when the file holds
/// only whitespace.
pub fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    check_secret_file(path)?;
    let raw = std::fs::read(path).map_err(|error| ConfigError::Io {
        path: path.to_owned(),
        error,
    })?;
    let secret = Secret::from_file_contents(raw);
    if secret.expose().is_empty() {
        return Err(ConfigError::Secret {
            path: path.to_owned(),
            reason: SecretFileProblem::Empty.reason(path, 0),
        });
    }
    Ok(secret)
}
