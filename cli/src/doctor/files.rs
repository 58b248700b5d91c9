//! Owner and mode of every `*_file` key: the daemons' secret-file rule
//! ([`twostep_config::secret_file_problem`]), judged for the service that
//! reads each file.

use super::report::{Finding, Status};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use twostep_config::{
    secret_file_problem, Config, ConfigFile, FileKind, FileReader, SecretFileProblem,
};

/// System user of the `twostep-api` service (Debian package).
pub const API_USER: &str = "twostep";
/// System user of the `twostep-radiusd` service (Debian package).
pub const RADIUS_USER: &str = "twostep-radius";

/// The check name of these findings.
const CHECK: &str = "files";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A secret: must exist, no group/other bits, owned by an allowed user.
    Secret,
    /// A secret the service creates on first start when missing.
    SecretCreated,
    /// Public material (certificates): must exist and be readable.
    Public,
}

/// The user name of `uid`, through NSS.
fn user_name(uid: u32) -> Option<String> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some(user.name)
}

/// The uid of the user `name`, through NSS.
fn user_id(name: &str) -> Option<u32> {
    let user = nix::unistd::User::from_name(name).ok()??;
    Some(user.uid.as_raw())
}

/// One finding for the file `path` of `key`: for secrets, the secret-file
/// rule with root, this user and `owners` (the services that read it) as
/// allowed owners. `missing` is the finding (status, fix) for a file that
/// does not exist, when the generic one would not help.
fn check_file_or(
    key: &str,
    path: &Path,
    kind: Kind,
    owners: &[&str],
    missing: Option<(Status, String)>,
) -> Finding {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && kind == Kind::SecretCreated => {
            return Finding::ok(
                CHECK,
                format!("{key} {} will be created on first start", path.display()),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Finding::new(
                Status::Warn,
                CHECK,
                format!(
                    "{key} {}: cannot inspect it as this user: {e}",
                    path.display()
                ),
                "run twostep doctor as root",
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing.is_some() => {
            let (status, fix) = missing.unwrap_or((Status::Fail, String::new()));
            return Finding::new(
                status,
                CHECK,
                format!("{key} {} does not exist", path.display()),
                fix,
            );
        }
        Err(e) => {
            return Finding::new(
                Status::Fail,
                CHECK,
                format!("{key} {}: {e}", path.display()),
                format!("create {} or correct {key} in the config", path.display()),
            )
        }
    };
    let not_regular = || {
        Finding::new(
            Status::Fail,
            CHECK,
            format!("{key} {} is not a regular file", path.display()),
            format!("point {key} at a file"),
        )
    };
    if !meta.is_file() {
        return not_regular();
    }
    if kind == Kind::Public {
        return Finding::ok(CHECK, format!("{key} {} exists", path.display()));
    }
    let readers: Vec<u32> = std::iter::once(nix::unistd::geteuid().as_raw())
        .chain(owners.iter().filter_map(|n| user_id(n)))
        .collect();
    match secret_file_problem(&meta, &readers) {
        None => {
            let mode = meta.mode() & 0o7777;
            Finding::ok(
                CHECK,
                format!(
                    "{key} {} owner and mode {mode:04o} are safe",
                    path.display()
                ),
            )
        }
        Some(SecretFileProblem::NotRegularFile) => not_regular(),
        Some(SecretFileProblem::Owner { uid }) => {
            let allowed = std::iter::once("root")
                .chain(owners.iter().copied())
                .collect::<Vec<_>>()
                .join(" or ");
            Finding::new(
                Status::Fail,
                CHECK,
                format!(
                    "{key} {} is owned by {}; the services refuse it",
                    path.display(),
                    user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
                ),
                format!("chown root {} (allowed owners: {allowed})", path.display()),
            )
        }
        Some(SecretFileProblem::Mode { mode }) => Finding::new(
            Status::Fail,
            CHECK,
            format!(
                "{key} {} has mode {mode:04o}: group or others can read the secret",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        ),
        Some(SecretFileProblem::Empty) => {
            let (status, fix) = match (kind, missing) {
                (Kind::SecretCreated, _) => (
                    Status::Fail,
                    format!(
                        "remove {}: the service creates it on first start",
                        path.display()
                    ),
                ),
                (_, Some(missing)) => missing,
                _ => (
                    Status::Fail,
                    format!("write the secret to {}", path.display()),
                ),
            };
            Finding::new(
                status,
                CHECK,
                format!("{key} {} is empty; the services refuse it", path.display()),
                fix,
            )
        }
    }
}

/// One finding per file named by the configuration ([`Config::files`], the
/// list the registry's own check reads), each judged for the service that
/// reads it.
pub fn check_files(c: &Config) -> Vec<Finding> {
    c.files().iter().map(|f| check_config_file(c, f)).collect()
}

/// The finding for one file of [`Config::files`].
fn check_config_file(c: &Config, f: &ConfigFile) -> Finding {
    let kind = match f.kind {
        FileKind::Secret => Kind::Secret,
        FileKind::SecretCreated => Kind::SecretCreated,
        FileKind::Public => Kind::Public,
    };
    let owners: &[&str] = match f.reader {
        FileReader::Api => &[API_USER],
        FileReader::Radius => &[RADIUS_USER],
        // The PAM module runs as root and accepts only root's key file; a
        // config for twostep-radiusd (it has [radius]) may give it to its user.
        FileReader::Host if c.radius.is_some() => &[RADIUS_USER],
        FileReader::Host | FileReader::Admin => &[],
    };
    let p = f.path.display();
    let missing = match (f.reader, f.kind) {
        (FileReader::Host, FileKind::Secret) => Some((
            Status::Fail,
            format!(
                "run `twostep host add NAME` on the registry and write the key printed to {p} (mode 0600)"
            ),
        )),
        (FileReader::Admin, _) => Some((
            Status::Warn,
            format!(
                "needed only where admins run `twostep`: copy the registry's admin token to {p} (mode 0600)"
            ),
        )),
        _ => None,
    };
    check_file_or(&f.key, &f.path, kind, owners, missing)
}
