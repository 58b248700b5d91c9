//! Man pages and shell completions generated from a binary's clap
//! definition, so they never drift from `--help`.
//!
//! Every twostep binary calls [`handle_hidden`] first thing in `main`. It
//! answers two hidden subcommands, used when building packages:
//!
//! - `BINARY generate-man DIR`: `DIR/BINARY.1`, plus `DIR/BINARY-SUB.1` for
//!   each subcommand (clap_mangen, roff);
//! - `BINARY generate-completions DIR`: `DIR/BINARY.bash`, `DIR/_BINARY`
//!   (zsh), `DIR/BINARY.fish` (clap_complete).
//!
//! Any other command line is left to the binary's own parser.

use clap::Command;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// A file or directory could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Error {
    /// The file or directory.
    pub path: PathBuf,
    /// What the OS said.
    pub source: std::io::Error,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error {
        path: path.to_owned(),
        source,
    }
}

/// What the first arguments ask for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `generate-man DIR`.
    Man(PathBuf),
    /// `generate-completions DIR`.
    Completions(PathBuf),
}

/// Recognises the hidden subcommands in `args` (without the program name).
pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Option<Request> {
    let mut it = args.into_iter();
    let sub = it.next()?;
    let dir = it.next()?;
    if it.next().is_some() {
        return None;
    }
    match sub.to_str()? {
        "generate-man" => Some(Request::Man(dir.into())),
        "generate-completions" => Some(Request::Completions(dir.into())),
        _ => None,
    }
}

/// Writes the man pages of `cmd` and its subcommands into `dir` (created if
/// missing); returns the files written.
///
/// # Errors
/// [`Error`] naming the file that could not be written.
pub fn write_man(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut cmd = cmd;
    cmd.build();
    let mut written = Vec::new();
    write_man_rec(&cmd, cmd.get_name().to_owned(), dir, &mut written)?;
    Ok(written)
}

fn write_man_rec(
    cmd: &Command,
    name: String,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let page = cmd.clone().name(name.clone());
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .map_err(|e| io_err(&path, e))?;
    std::fs::write(&path, buf).map_err(|e| io_err(&path, e))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_man_rec(sub, format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// Writes bash, zsh and fish completions for `cmd` into `dir` (created if
/// missing); returns the files written.
///
/// # Errors
/// [`Error`] naming the file that could not be written.
pub fn write_completions(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut cmd = cmd;
    let bin = cmd.get_name().to_owned();
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path =
            clap_complete::generate_to(shell, &mut cmd, &bin, dir).map_err(|e| io_err(dir, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Answers `generate-man DIR` / `generate-completions DIR` and exits the
/// process (status 0, or 1 with a one-line error); returns for any other
/// command line. `command` builds the binary's clap definition
/// (`<Args as clap::CommandFactory>::command`).
pub fn handle_hidden(command: impl FnOnce() -> Command) {
    let Some(req) = parse(std::env::args_os().skip(1)) else {
        return;
    };
    let cmd = command();
    let bin = cmd.get_name().to_owned();
    let result = match &req {
        Request::Man(dir) => write_man(cmd, dir),
        Request::Completions(dir) => write_completions(cmd, dir),
    };
    match result {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{bin}: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn demo() -> Command {
        Command::new("demo")
            .version("1.2.3")
            .about("Demo tool")
            .arg(Arg::new("config").long("config").help("Configuration file"))
            .subcommand(
                Command::new("user")
                    .about("Manage users")
                    .subcommand(Command::new("add")),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn recognises_only_the_hidden_forms() {
        let a = |v: &[&str]| parse(v.iter().map(std::ffi::OsString::from));
        assert_eq!(a(&["generate-man", "/x"]), Some(Request::Man("/x".into())));
        assert_eq!(
            a(&["generate-completions", "d"]),
            Some(Request::Completions("d".into()))
        );
        assert_eq!(a(&["generate-man"]), None);
        assert_eq!(a(&["generate-man", "a", "b"]), None);
        assert_eq!(a(&["--config", "x"]), None);
    }

    #[test]
    fn man_pages_for_every_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_man(demo(), dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["demo.1", "demo-user.1", "demo-user-add.1"]);
        let page = std::fs::read_to_string(dir.path().join("demo.1")).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "roff: {page}");
        assert!(page.contains(".TH demo 1"), "{page}");
        assert!(page.contains("\\-\\-config"), "{page}");
        assert!(page.contains("1.2.3"), "{page}");
    }

    #[test]
    fn completions_for_three_shells() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_completions(demo(), dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        let bash = std::fs::read_to_string(dir.path().join("demo.bash")).unwrap();
        assert!(bash.contains("complete -F _demo"), "{bash}");
        assert!(bash.contains("--config"), "{bash}");
        assert!(dir.path().join("_demo").is_file());
        assert!(dir.path().join("demo.fish").is_file());
    }
}
