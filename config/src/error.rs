use std::path::{Path, PathBuf};

/// Errors from reading the configuration file or a secret file.
///
/// `Display` gives one line for people: `FILE:LINE:COL: message` for
/// problems inside the TOML file, `FILE: message` for file-level problems.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    ///
    /// The OS error is part of the message and deliberately not exposed as
    /// `source()`: error-chain printers (anyhow's `{:#}`, `error_chain`)
    /// would otherwise print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// Syntax error, unknown key, wrong type or invalid value, at a place in the file.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A table that this component needs is absent.
    #[error("the configuration has no [{0}] table")]
    Missing(&'static str),
    /// The configuration file, or a directory above it, could be changed by
    /// someone other than root or the running user (wrong owner, group- or
    /// world-writable), so its settings cannot be trusted.
    #[error("{}: {reason}", path.display())]
    Unsafe {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, with the fix (`chown`/`chmod` command).
        reason: String,
    },
    /// A secret file is refused or unusable (wrong owner, mode, empty).
    #[error("{}: {reason}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// Why it was refused, with the fix.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn from_toml(path: &Path, text: &str, e: &toml::de::Error) -> Self {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = line_column(text, offset);
        // toml's message may span several lines; keep one line for logs.
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Self::Parse {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    }

    /// An error placed at the first line that sets `key`, or at 1:1.
    pub(crate) fn at_key(path: &Path, text: &str, key: &str, message: String) -> Self {
        let mut offset = 0;
        for l in text.split_inclusive('\n') {
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    offset += l.len() - t.len();
                    break;
                }
            }
            offset += l.len();
        }
        if offset >= text.len() {
            offset = 0;
        }
        let (line, column) = line_column(text, offset);
        Self::Parse {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    }

    /// An error placed at the `nth` (0-based) line that sets `key` to the
    /// string `value` (`key = "value"` or `key = 'value'`) inside tables
    /// whose header is `table` (e.g. `[[radius.client]]`), or as
    /// [`ConfigError::at_key`] when there is no such line.
    pub(crate) fn at_value(
        path: &Path,
        text: &str,
        table: &str,
        (key, value): (&str, &str),
        nth: usize,
        message: String,
    ) -> Self {
        let mut offset = 0;
        let mut seen = 0;
        let mut header = "";
        for l in text.split_inclusive('\n') {
            let t = l.trim_start();
            if t.starts_with('[') {
                header = t.split('#').next().unwrap_or("").trim();
            }
            let v = t
                .strip_prefix(key)
                .and_then(|rest| rest.trim_start().strip_prefix('='))
                .map(|v| v.split('#').next().unwrap_or("").trim());
            let found = v.and_then(|v| unquote(v, '"').or_else(|| unquote(v, '\'')));
            if header == table && found == Some(value) {
                if seen == nth {
                    let (line, column) = line_column(text, offset + l.len() - t.len());
                    return Self::Parse {
                        path: path.to_owned(),
                        line,
                        column,
                        message,
                    };
                }
                seen += 1;
            }
            offset += l.len();
        }
        Self::at_key(path, text, key, message)
    }
}

/// `v` without the quote character `q` around it, if it has them.
fn unquote(v: &str, q: char) -> Option<&str> {
    v.strip_prefix(q).and_then(|v| v.strip_suffix(q))
}

/// 1-based (line, column) of byte `offset` in `text`; columns count characters.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}
