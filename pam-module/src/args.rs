//! Module arguments: the words after the module path in a pam.d line.
//!
//! | argument | meaning |
//! |---|---|
//! | `config=PATH` | configuration file; default `/etc/twostep/twostep.toml` |
//! | `debug` | extra log lines at `LOG_DEBUG` (never codes or passwords) |
//! | `forward_pass` | one prompt for password and code; the trailing 6-digit code is cut off and the password is set as PAM_AUTHTOK for a following `pam_unix.so use_first_pass` |
//! | `stash_code` | with `forward_pass` (implied): the code is not verified here but kept in PAM data for a `verify_stashed` line after the password module; this line never returns `PAM_SUCCESS` |
//! | `verify_stashed` | verify the code a `stash_code` line kept (or repeat how that line ended); never prompts; other arguments but `config=` and `debug` are ignored |
//! | `try_first_pass` | take the first answer from PAM_AUTHTOK when it is set and has the right shape, then prompt |
//! | `use_first_pass` | take the only answer from PAM_AUTHTOK; never prompt |
//!
//! Unknown arguments are logged and ignored, as `pam_unix` does.

use std::path::PathBuf;
use twostep_config::DEFAULT_CONFIG_PATH;

/// Where the first answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstPass {
    /// Always prompt.
    #[default]
    Prompt,
    /// PAM_AUTHTOK first, if usable; then prompt.
    Try,
    /// PAM_AUTHTOK only.
    Use,
}

/// Parsed module arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `config=PATH`.
    pub config: PathBuf,
    /// `debug`.
    pub debug: bool,
    /// `forward_pass`.
    pub forward_pass: bool,
    /// `stash_code` (sets `forward_pass` too).
    pub stash_code: bool,
    /// `verify_stashed`.
    pub verify_stashed: bool,
    /// `try_first_pass` / `use_first_pass` (the last one given wins).
    pub first_pass: FirstPass,
    /// Arguments this module does not know, to be logged.
    pub unknown: Vec<String>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            config: PathBuf::from(DEFAULT_CONFIG_PATH),
            debug: false,
            forward_pass: false,
            stash_code: false,
            verify_stashed: false,
            first_pass: FirstPass::Prompt,
            unknown: Vec::new(),
        }
    }
}

impl Args {
    /// Parses the module arguments in order.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for a in args {
            match a {
                "debug" => out.debug = true,
                "forward_pass" => out.forward_pass = true,
                "stash_code" => {
                    out.stash_code = true;
                    out.forward_pass = true;
                }
                "verify_stashed" => out.verify_stashed = true,
                "try_first_pass" => out.first_pass = FirstPass::Try,
                "use_first_pass" => out.first_pass = FirstPass::Use,
                _ => match a.strip_prefix("config=") {
                    Some(p) if !p.is_empty() => out.config = PathBuf::from(p),
                    _ => out.unknown.push(a.to_owned()),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let a = Args::parse([]);
        assert_eq!(a, Args::default());
        assert_eq!(a.config, PathBuf::from("/etc/twostep/twostep.toml"));
    }

    #[test]
    fn all_arguments() {
        let a = Args::parse([
            "debug",
            "config=/tmp/x.toml",
            "forward_pass",
            "try_first_pass",
            "use_first_pass",
            "bogus",
            "config=",
        ]);
        assert!(a.debug);
        assert!(a.forward_pass);
        assert_eq!(a.first_pass, FirstPass::Use);
        assert_eq!(a.config, PathBuf::from("/tmp/x.toml"));
        assert_eq!(a.unknown, vec!["bogus".to_owned(), "config=".to_owned()]);
        assert!(!a.stash_code && !a.verify_stashed);
    }

    #[test]
    fn stash_code_implies_forward_pass() {
        let a = Args::parse(["stash_code"]);
        assert!(a.stash_code && a.forward_pass && !a.verify_stashed);
        let a = Args::parse(["verify_stashed", "config=/c"]);
        assert!(a.verify_stashed && !a.forward_pass && !a.stash_code);
        assert!(a.unknown.is_empty());
    }
}
