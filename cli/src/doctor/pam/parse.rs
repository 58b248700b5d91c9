//! Reading a service's `auth` stack from `pam.d`, following `@include`,
//! `include` and `substack` (Linux-PAM `_pam_parse_conf_file`,
//! `_pam_assemble_line`).

use super::{Action, AuthLine, Control, Origin, RETURN_NAMES};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Depth limit for nested includes (Linux-PAM stops at a similar depth).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Why a stack could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The service file itself does not exist.
    NoService(PathBuf),
    /// A file could not be read (included file missing, permissions).
    Read {
        /// The file.
        file: PathBuf,
        /// Where it was included from, if it was.
        from: Option<Origin>,
        /// What the OS said.
        message: String,
    },
    /// A line is not valid `pam.d` syntax.
    Syntax {
        /// Where.
        at: Origin,
        /// What is wrong.
        message: String,
    },
    /// Includes nest too deep (a loop).
    TooDeep(Origin),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoService(p) => write!(f, "{} does not exist", p.display()),
            LoadError::Read {
                file,
                from: Some(o),
                message,
            } => write!(f, "{o}: cannot read included {}: {message}", file.display()),
            LoadError::Read {
                file,
                from: None,
                message,
            } => write!(f, "{}: {message}", file.display()),
            LoadError::Syntax { at, message } => write!(f, "{at}: {message}"),
            LoadError::TooDeep(o) => write!(f, "{o}: includes nest too deep (a loop?)"),
        }
    }
}

/// Reads files for [`load_auth_stack`]; `Ok(None)` when the file does not exist.
pub trait Files {
    /// The file's text.
    ///
    /// # Errors
    /// A message for a file that exists but cannot be read.
    fn read(&self, path: &Path) -> Result<Option<String>, String>;
}

/// The real file system.
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> Result<Option<String>, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// In-memory files, for tests: name (relative to the pam.d dir) → text.
impl Files for HashMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Result<Option<String>, String> {
        Ok(self.get(path).cloned())
    }
}

/// Reads `dir/service` and returns its `auth` lines with includes followed.
/// Included names are relative to `dir`; absolute names under `/etc/pam.d/`
/// are mapped into `dir` (so a copy of the directory can be checked).
///
/// # Errors
/// [`LoadError`] for a missing service file, an unreadable include, a syntax
/// error or an include loop.
pub fn load_auth_stack(
    files: &dyn Files,
    dir: &Path,
    service: &str,
) -> Result<Vec<AuthLine>, LoadError> {
    let path = dir.join(service);
    let mut out = Vec::new();
    match files.read(&path) {
        Ok(Some(text)) => load_text(files, dir, &path, &text, 0, &mut out)?,
        Ok(None) => return Err(LoadError::NoService(path)),
        Err(message) => {
            return Err(LoadError::Read {
                file: path,
                from: None,
                message,
            })
        }
    }
    Ok(out)
}

fn resolve(dir: &Path, name: &str) -> PathBuf {
    match name.strip_prefix("/etc/pam.d/") {
        Some(rest) => dir.join(rest),
        None if name.starts_with('/') => PathBuf::from(name),
        None => dir.join(name),
    }
}

/// Logical lines as Linux-PAM assembles them (`_pam_assemble_line`):
/// everything from `#` on is a comment and ends the line; a `\\` last on a
/// line (trailing blanks allowed) continues it on the next line that is
/// not blank or a comment. Each comes with its first line's number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let content = raw.trim_start_matches([' ', '\t']);
        if content.is_empty() || content.starts_with('#') {
            // Blank and comment-only lines do not end a continued line.
            continue;
        }
        if cur.is_empty() {
            start = i + 1;
        }
        if let Some((before, _comment)) = content.split_once('#') {
            cur.push_str(before);
        } else if let Some(body) = content.trim_end_matches([' ', '\t']).strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        } else {
            cur.push_str(content);
        }
        if !cur.trim().is_empty() {
            out.push((start, cur.trim().to_owned()));
        }
        cur.clear();
    }
    if !cur.trim().is_empty() {
        out.push((start, cur.trim().to_owned()));
    }
    out
}

fn load_text(
    files: &dyn Files,
    dir: &Path,
    file: &Path,
    text: &str,
    depth: usize,
    out: &mut Vec<AuthLine>,
) -> Result<(), LoadError> {
    for (line, body) in logical_lines(text) {
        let at = Origin {
            file: file.to_owned(),
            line,
        };
        if let Some(rest) = body.strip_prefix("@include") {
            let name = rest.trim();
            if name.is_empty() {
                return Err(LoadError::Syntax {
                    at,
                    message: "@include without a file name".into(),
                });
            }
            include(files, dir, name, at, depth, out)?;
            continue;
        }
        // Linux-PAM compares the type and the control keywords case
        // insensitively; the `[...]` contents case sensitively.
        let (ty, rest) = split_word(&body);
        let ty = ty.strip_prefix('-').unwrap_or(ty);
        if !ty.eq_ignore_ascii_case("auth") {
            continue;
        }
        let (control, rest) = if rest.starts_with('[') {
            let end = rest.find(']').ok_or_else(|| LoadError::Syntax {
                at: at.clone(),
                message: "unterminated [...] control".into(),
            })?;
            (&rest[..=end], rest[end + 1..].trim_start())
        } else {
            split_word(rest)
        };
        let (module, rest) = split_word(rest);
        if module.is_empty() {
            return Err(LoadError::Syntax {
                at,
                message: "auth line without a module".into(),
            });
        }
        let keyword = control.to_ascii_lowercase();
        let control = match keyword.as_str() {
            "include" | "substack" => {
                include(files, dir, module, at, depth, out)?;
                continue;
            }
            "required" => Control::Required,
            "requisite" => Control::Requisite,
            "sufficient" => Control::Sufficient,
            "optional" => Control::Optional,
            c if c.starts_with('[') => {
                parse_brackets(control).map_err(|message| LoadError::Syntax {
                    at: at.clone(),
                    message,
                })?
            }
            _ => {
                return Err(LoadError::Syntax {
                    at,
                    message: format!("unknown control {control:?}"),
                })
            }
        };
        out.push(AuthLine {
            origin: at,
            control,
            module: module.to_owned(),
            args: rest.split_whitespace().map(str::to_owned).collect(),
        });
    }
    Ok(())
}

fn include(
    files: &dyn Files,
    dir: &Path,
    name: &str,
    at: Origin,
    depth: usize,
    out: &mut Vec<AuthLine>,
) -> Result<(), LoadError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(LoadError::TooDeep(at));
    }
    let path = resolve(dir, name);
    match files.read(&path) {
        Ok(Some(text)) => load_text(files, dir, &path, &text, depth + 1, out),
        Ok(None) => Err(LoadError::Read {
            file: path,
            from: Some(at),
            message: "no such file".into(),
        }),
        Err(message) => Err(LoadError::Read {
            file: path,
            from: Some(at),
            message,
        }),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

pub(super) fn parse_brackets(c: &str) -> Result<Control, String> {
    let inner = &c[1..c.len() - 1];
    // Linux-PAM allows blanks around `=`: `[success = ok]`.
    let mut joined = String::with_capacity(inner.len());
    for part in inner.split('=') {
        if !joined.is_empty() {
            joined.push('=');
        }
        joined.push_str(if joined.is_empty() {
            part.trim_end()
        } else {
            part.trim()
        });
    }
    let mut pairs = Vec::new();
    for item in joined.split_whitespace() {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("control item {item:?} is not value=action"))?;
        if !RETURN_NAMES.contains(&k) {
            return Err(format!(
                "control value {k:?} is not a PAM result name (Linux-PAM then treats every result of the line as bad)"
            ));
        }
        let a = match v {
            "ignore" => Action::Ignore,
            "ok" => Action::Ok,
            "bad" => Action::Bad,
            "die" => Action::Die,
            "done" => Action::Done,
            "reset" => Action::Reset,
            n => Action::Jump(
                n.parse()
                    .map_err(|_| format!("control action {v:?} is not an action or a number"))?,
            ),
        };
        pairs.push((k.to_owned(), a));
    }
    Ok(Control::Brackets(pairs))
}
