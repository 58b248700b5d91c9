//! The authenticator's account file: TOTP secrets and push device keys.
//!
//! JSON, mode 0600, owned by the user running `twostep`; a file that gives
//! any access to group or others is refused (as every twostep secret file
//! is, [`twostep_config::read_secret_file`]). Changes are written to a new
//! file beside it (mode 0600) and renamed over it, under an exclusive
//! `flock(2)` on `FILE.lock`, so a reader never sees half a file and two
//! `add`s never lose each other's account. The file may not be a symbolic
//! link, and neither it nor a directory above it may be changeable by
//! anyone but its user or root ([`twostep_config::check_config_file`]).

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Name of the account file inside `$XDG_CONFIG_HOME/twostep/`.
pub const FILE_NAME: &str = "authenticator.json";

/// Version of the account file's format.
pub const FORMAT_VERSION: u32 = 1;

/// Permission bits of the account file and its temporary copies.
pub const FILE_MODE: u32 = 0o600;

/// Permission bits of a config directory the authenticator creates.
pub const DIR_MODE: u32 = 0o700;

/// The default account file: `$XDG_CONFIG_HOME/twostep/authenticator.json`
/// when `XDG_CONFIG_HOME` is an absolute path (XDG Base Directory
/// Specification), else `$HOME/.config/twostep/authenticator.json`.
///
/// # Errors
/// When neither variable gives an absolute directory.
pub fn default_path() -> anyhow::Result<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_CONFIG_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".config")))
        .ok_or_else(|| {
            anyhow!("neither XDG_CONFIG_HOME nor HOME is an absolute path: pass --accounts FILE")
        })?;
    Ok(base.join("twostep").join(FILE_NAME))
}

/// Text that is a secret (a base32 TOTP secret, a device's private key):
/// wiped on drop, `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// Wraps `s`.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The text itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// A TOTP account (RFC 6238, HMAC-SHA-1) from an `otpauth://totp/` URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpAccount {
    /// Local name, unique in the file (`--account`).
    pub name: String,
    /// Who issued it (`issuer=`, or the label's prefix).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The account name of the label (`alice@example.com`).
    pub account: String,
    /// The shared secret, RFC 4648 base32 without padding.
    pub secret: SecretText,
    /// Code length in digits (6 to 8).
    pub digits: u32,
    /// Time step X, in seconds (RFC 6238 §4.1).
    pub period: u64,
    /// Unix seconds when it was added.
    pub added_at: i64,
}

/// A push device registered with a twostep registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAccount {
    /// Local name, unique in the file (`--account`).
    pub name: String,
    /// The registry's base URL.
    pub registry: String,
    /// CA certificates trusted for the registry instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The user this device answers for.
    pub username: String,
    /// The method's label in the registry.
    pub label: String,
    /// The device's name as sent at activation.
    pub device_name: String,
    /// The device's id (its push method's id).
    pub device_id: i64,
    /// The Ed25519 secret key (RFC 8032 §5.1.5), base64url without padding.
    pub secret_key: SecretText,
    /// Unix seconds when it was activated.
    pub added_at: i64,
}

/// One account of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Account {
    /// Shows codes.
    Totp(TotpAccount),
    /// Answers push challenges.
    Push(PushAccount),
}

impl Account {
    /// The account's local name.
    pub fn name(&self) -> &str {
        match self {
            Self::Totp(a) => &a.name,
            Self::Push(a) => &a.name,
        }
    }

    /// `totp` or `push`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::Push(_) => "push",
        }
    }
}

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// In the order they were added.
    pub accounts: Vec<Account>,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            version: FORMAT_VERSION,
            accounts: Vec::new(),
        }
    }
}

impl Accounts {
    /// Reads `path`; a missing file is an empty set of accounts.
    ///
    /// # Errors
    /// A file that is a symbolic link, is not a regular file owned by the
    /// user (or root), gives group or others any access, sits in a
    /// directory others can write to, is not JSON of this format, or is of
    /// another version.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            return Ok(Self::default());
        }
        // The secret-file rule first (its fix is `chmod 600`), then where
        // the file sits.
        let raw = twostep_config::read_secret_file(path)?;
        check_place(path)?;
        let accounts: Self = serde_json::from_slice(raw.expose())
            .map_err(|e| anyhow!("{}: not an account file: {e}", path.display()))?;
        if accounts.version != FORMAT_VERSION {
            bail!(
                "{}: account file version {} is not supported (this twostep reads version {FORMAT_VERSION})",
                path.display(),
                accounts.version
            );
        }
        Ok(accounts)
    }

    /// Writes the accounts to `path` atomically: a new file beside it
    /// (mode 0600), flushed to disk, renamed over `path`; the directory is
    /// created (mode 0700) when missing.
    ///
    /// # Errors
    /// Any I/O failure; `path` is then unchanged.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = create_parent(path)?;
        let json = Zeroizing::new(serde_json::to_vec_pretty(self).context("account file JSON")?);
        let file_name = path
            .file_name()
            .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?
            .to_string_lossy();
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&tmp)?;
            // The umask may have cleared bits of 0600 but never adds any;
            // set the mode explicitly all the same.
            f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename itself reaches the disk with the directory.
            File::open(dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            bail!("{}: cannot write the account file: {e}", path.display());
        }
        Ok(())
    }

    /// The account named `name`.
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name() == name)
    }

    /// `base`, or `base-2`, `base-3`... whichever no account has yet.
    pub fn free_name(&self, base: &str) -> String {
        if self.get(base).is_none() {
            return base.to_owned();
        }
        (2u32..)
            .map(|n| format!("{base}-{n}"))
            .find(|n| self.get(n).is_none())
            .unwrap_or_else(|| base.to_owned())
    }

    /// The push accounts, or only the one named `name`.
    ///
    /// # Errors
    /// No push account, or `name` is unknown or not a push account.
    pub fn push_accounts(&self, name: Option<&str>) -> anyhow::Result<Vec<&PushAccount>> {
        let all: Vec<&PushAccount> = self
            .accounts
            .iter()
            .filter_map(|a| match a {
                Account::Push(p) => Some(p),
                Account::Totp(_) => None,
            })
            .collect();
        match name {
            Some(n) => match self.get(n) {
                Some(Account::Push(p)) => Ok(vec![p]),
                Some(Account::Totp(_)) => {
                    bail!("account {n:?} is a TOTP account: it shows codes and gets no sign-in requests")
                }
                None => bail!("no account named {n:?} (see `twostep authenticator list`)"),
            },
            None if all.is_empty() => bail!(
                "no push account: add one with `twostep authenticator add 'twostep-activate://...'`"
            ),
            None => Ok(all),
        }
    }

    /// The one push account to answer with: `name`, or the only one.
    ///
    /// # Errors
    /// As [`Accounts::push_accounts`]; several push accounts and no `name`.
    pub fn one_push_account(&self, name: Option<&str>) -> anyhow::Result<&PushAccount> {
        let list = self.push_accounts(name)?;
        match list.as_slice() {
            [one] => Ok(one),
            many => bail!(
                "several push accounts: pass --account with one of {}",
                many.iter()
                    .map(|a| format!("{:?}", a.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Refuses an account file at `path` that is a symbolic link, or that
/// (or a directory above which) others than its user and root can change.
fn check_place(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("{}: cannot inspect the account file", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "{}: the account file is a symbolic link: refused (give its real path with --accounts)",
            path.display()
        );
    }
    twostep_config::check_config_file(path)?;
    Ok(())
}

/// The directory of `path`, created (mode 0700) when missing.
fn create_parent(path: &Path) -> anyhow::Result<&Path> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    Ok(dir)
}

/// A TOTP account with the RFC 6238 Appendix B seed, for tests.
#[cfg(test)]
pub fn example_totp(name: &str) -> TotpAccount {
    TotpAccount {
        name: name.into(),
        issuer: Some("twostep".into()),
        account: "alice".into(),
        secret: SecretText::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".into()),
        digits: 6,
        period: 30,
        added_at: 1,
    }
}

/// The account file opened for a change: holds an exclusive `flock(2)` on
/// `FILE.lock` until dropped, so concurrent changes run one after another.
pub struct Locked {
    path: PathBuf,
    /// The accounts as read under the lock.
    pub accounts: Accounts,
    _lock: nix::fcntl::Flock<File>,
}

impl Locked {
    /// Locks and reads `path` (creating its directory, mode 0700).
    ///
    /// # Errors
    /// As [`Accounts::load`]; the lock file cannot be created or locked.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        create_parent(path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&lock_path)
            .with_context(|| format!("{}: cannot open the lock file", lock_path.display()))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow!("{}: cannot lock: {e}", lock_path.display()))?;
        // The lock file beside it: its directories are the new file's.
        check_place(&lock_path)?;
        Ok(Self {
            path: path.to_owned(),
            accounts: Accounts::load(path)?,
            _lock: lock,
        })
    }

    /// Writes the changed accounts back ([`Accounts::save`]).
    ///
    /// # Errors
    /// As [`Accounts::save`].
    pub fn commit(&self) -> anyhow::Result<()> {
        self.accounts.save(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn totp(name: &str) -> Account {
        Account::Totp(example_totp(name))
    }

    #[test]
    fn saved_file_is_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet is created, 0700.
        let path = dir.path().join("cfg/twostep").join(FILE_NAME);
        let mut a = Accounts::default();
        a.accounts.push(totp("twostep:alice"));
        a.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(Accounts::load(&path).unwrap(), a);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![FILE_NAME.to_owned()]);
    }

    #[test]
    fn replacing_keeps_mode_and_is_a_new_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut a = Accounts::default();
        a.save(&path).unwrap();
        let before = std::fs::metadata(&path).unwrap().ino();
        // A reader holding the old file keeps reading the old contents.
        let old = std::fs::read_to_string(&path).unwrap();
        let held = File::open(&path).unwrap();
        a.accounts.push(totp("x"));
        a.save(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_ne!(meta.ino(), before, "written beside, then renamed over");
        assert_eq!(meta.mode() & 0o777, 0o600);
        let mut still = String::new();
        std::io::Read::read_to_string(&mut &held, &mut still).unwrap();
        assert_eq!(still, old);
        assert_eq!(Accounts::load(&path).unwrap().accounts.len(), 1);
    }

    #[test]
    fn failed_write_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut a = Accounts::default();
        a.accounts.push(totp("kept"));
        a.save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        // The rename target is now a non-empty directory: rename(2) fails.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join(FILE_NAME).join("x")).unwrap();
        let err = a.save(&blocked.join(FILE_NAME)).unwrap_err().to_string();
        assert!(err.contains("cannot write the account file"), "{err}");
        assert_eq!(
            std::fs::read_dir(&blocked).unwrap().count(),
            1,
            "the temporary file was removed"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_symlink_or_an_open_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        Accounts::default().save(&real).unwrap();
        let link = dir.path().join(FILE_NAME);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = Accounts::load(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(Locked::open(&link).is_err());
        assert!(Accounts::load(&real).is_ok());
        // A directory others can write to (no sticky bit): refused, for
        // an existing file and for a new one.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        Accounts::default().save(&open.join(FILE_NAME)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", Accounts::load(&open.join(FILE_NAME)).unwrap_err());
        assert!(err.contains("chmod go-w"), "{err}");
        let err = format!("{:#}", Locked::open(&open.join("new.json")).err().unwrap());
        assert!(err.contains("chmod go-w"), "{err}");
    }

    #[test]
    fn group_or_world_access_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        Accounts::default().save(&path).unwrap();
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Accounts::load(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "mode {mode:o}: {err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Accounts::load(&path).is_ok());
    }

    #[test]
    fn missing_file_is_empty_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(Accounts::load(&path).unwrap(), Accounts::default());
        let write = |text: &str| {
            let _ = std::fs::remove_file(&path);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        write("{\"version\": 2, \"accounts\": []}");
        assert!(Accounts::load(&path)
            .unwrap_err()
            .to_string()
            .contains("version 2 is not supported"));
        write("[]");
        assert!(Accounts::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not an account file"));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_names_stay_unique() {
        let a = totp("twostep:alice");
        assert!(!format!("{a:?}").contains("GEZDGNBV"));
        let mut all = Accounts::default();
        all.accounts.push(a);
        assert_eq!(all.free_name("other"), "other");
        assert_eq!(all.free_name("twostep:alice"), "twostep:alice-2");
        all.accounts.push(totp("twostep:alice-2"));
        assert_eq!(all.free_name("twostep:alice"), "twostep:alice-3");
        assert!(all
            .one_push_account(None)
            .unwrap_err()
            .to_string()
            .contains("no push account"));
        assert!(all
            .one_push_account(Some("twostep:alice"))
            .unwrap_err()
            .to_string()
            .contains("is a TOTP account"));
    }

    #[test]
    fn lock_serialises_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut first = Locked::open(&path).unwrap();
        first.accounts.accounts.push(totp("one"));
        let p2 = path.clone();
        let second = std::thread::spawn(move || {
            let mut l = Locked::open(&p2).unwrap();
            l.accounts.accounts.push(totp("two"));
            l.commit().unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        first.commit().unwrap();
        drop(first);
        second.join().unwrap();
        let names: Vec<String> = Accounts::load(&path)
            .unwrap()
            .accounts
            .iter()
            .map(|a| a.name().to_owned())
            .collect();
        assert_eq!(names, ["one", "two"], "the second saw the first's change");
    }
}
