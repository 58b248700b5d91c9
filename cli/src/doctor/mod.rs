//! `twostep doctor`: reads the configuration and the system and reports,
//! one line per check, what is wrong and how to fix it.
//!
//! Checks: the config file (`FILE:LINE:COL` errors); owner and mode of every
//! `*_file` key; the registry's health and whether it accepts this host's
//! API key; where `pam_twostep.so` sits in the `auth` stacks of
//! `/etc/pam.d/sshd` and `/etc/pam.d/sudo` ([`pam`]); `[pam]` require and
//! exempt groups and networks against this host; sshd's effective
//! configuration from `sshd -T`, and the `Match` blocks of its files, which
//! `sshd -T` alone never applies ([`sshd`]); RADIUS clients with weak shared
//! secrets or without Message-Authenticator.
//!
//! Exit status: 0 when no check failed (warnings allowed), 1 otherwise.
//! The analysis is pure ([`pam::analyse`], [`sshd::analyse`]); this module
//! does the reading and the network calls.

pub mod pam;
pub mod report;
pub mod sshd;

use report::{Finding, Status};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use twostep_common::client::{ClientError, RegistryClient};
use twostep_config::{Config, ConfigError, FailMode, Secret, UnenrolledPolicy};

/// System user of the `twostep-api` service (Debian package).
pub const API_USER: &str = "twostep";
/// System user of the `twostep-radiusd` service (Debian package).
pub const RADIUS_USER: &str = "twostep-radius";
/// Username asked about to test the host key; any answer but 401/403 means
/// the key is accepted.
pub const PROBE_USER: &str = "twostep-doctor-probe";
/// Shortest acceptable RADIUS shared secret, in characters.
pub const MIN_SHARED_SECRET: usize = 16;
/// How long `sshd -T` may take.
const SSHD_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `pam_twostep.so` is looked for when the stack names it without a path.
fn default_module_dirs() -> Vec<PathBuf> {
    // Debian's multiarch tuple for the common 64-bit targets.
    let multiarch = format!("/usr/lib/{}-linux-gnu/security", std::env::consts::ARCH);
    vec![
        PathBuf::from(multiarch),
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib/security"),
    ]
}

/// Options of `twostep doctor`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  twostep doctor                       # /etc/twostep/twostep.toml, /etc/pam.d, sshd -T
  twostep doctor --config /etc/twostep/radiusd.toml --no-pam --no-sshd
  twostep doctor --sshd-config /etc/ssh/sshd_config.new   # before reloading sshd
  twostep doctor --pam-dir /root/pam.d.test --pam-service login

One line per check: ok, warn or FAIL, with the fix. Exit status 0 when no
check failed (warnings allowed), 1 otherwise.")]
pub struct DoctorArgs {
    /// PAM configuration directory to check.
    #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
    pub pam_dir: PathBuf,
    /// PAM services whose auth stack must run the module (repeatable).
    #[arg(long = "pam-service", value_name = "NAME", default_values_t = ["sshd".to_owned(), "sudo".to_owned()])]
    pub pam_services: Vec<String>,
    /// Directory PAM loads modules named without a path from (holding
    /// pam_twostep.so, or libpam_twostep.so as cargo builds it) [default:
    /// the multiarch PAM module dir].
    #[arg(long, value_name = "DIR")]
    pub pam_module_dir: Option<PathBuf>,
    /// The sshd binary, run as `sshd -T` to read its effective settings.
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    pub sshd: PathBuf,
    /// sshd configuration file to check (`sshd -T -f FILE`; its Match blocks
    /// and Includes are read too) [default: /etc/ssh/sshd_config].
    #[arg(long, value_name = "FILE")]
    pub sshd_config: Option<PathBuf>,
    /// Skip the sshd checks (a RADIUS-only or registry-only machine).
    #[arg(long)]
    pub no_sshd: bool,
    /// Skip the PAM checks.
    #[arg(long)]
    pub no_pam: bool,
}

impl crate::Run for DoctorArgs {
    fn run(self, global: &crate::Global) -> anyhow::Result<ExitCode> {
        Ok(run(&global.config, &self))
    }
}

/// Runs every check, prints one line per finding and a summary, and returns
/// the exit status (1 when a check failed).
pub fn run(config_path: &Path, args: &DoctorArgs) -> ExitCode {
    let findings = collect(config_path, args);
    for f in &findings {
        println!("{f}");
    }
    let fails = findings.iter().filter(|f| f.status == Status::Fail).count();
    let warns = findings.iter().filter(|f| f.status == Status::Warn).count();
    if fails == 0 && warns == 0 {
        println!("all {} checks passed", findings.len());
    } else {
        println!(
            "{fails} failed, {warns} warnings, {} checks",
            findings.len()
        );
    }
    if fails > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Every finding, in the order printed.
pub fn collect(config_path: &Path, args: &DoctorArgs) -> Vec<Finding> {
    let mut out = Vec::new();
    let config = match Config::load(config_path) {
        Ok(c) => {
            out.push(Finding::ok(
                "config",
                format!("{} is valid", config_path.display()),
            ));
            Some(c)
        }
        Err(e) => {
            let fix = match &e {
                ConfigError::Io { .. } => format!(
                    "create {} (example: /usr/share/doc/twostep/examples/twostep.toml) or pass --config FILE",
                    config_path.display()
                ),
                ConfigError::Unsafe { .. } => "run the chown/chmod named above: every twostep component refuses a configuration others can change".into(),
                _ => "correct the line and column named; /usr/share/doc/twostep/examples/twostep.toml documents every key".into(),
            };
            out.push(Finding::new(Status::Fail, "config", e.to_string(), fix));
            None
        }
    };
    if let Some(c) = &config {
        out.extend(check_policy(c));
        out.extend(check_exemptions(&c.pam, &SystemGroups::load()));
        out.extend(check_files(c));
        out.extend(check_registry(c));
        out.extend(check_radius(c));
    }
    if !args.no_pam {
        out.extend(check_pam(config_path, args));
    }
    if !args.no_sshd {
        let pam = config.as_ref().map(|c| c.pam.clone()).unwrap_or_default();
        let connect = config
            .as_ref()
            .and_then(|c| c.registry.as_ref())
            .map_or(2, |r| r.connect_timeout);
        out.extend(check_sshd(args, pam.total_timeout + connect));
    }
    out
}

// ---- policy ----------------------------------------------------------------

/// Settings that weaken the second factor on purpose: worth a warning.
fn check_policy(c: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    if c.pam.fail_mode == FailMode::Open {
        out.push(Finding::new(
            Status::Warn,
            "policy",
            "[pam] fail_mode = \"open\": while the registry is unreachable, logins pass without a second factor",
            "set fail_mode = \"closed\" (the default) and keep a break-glass path instead (README, Lock-out recovery)",
        ));
    }
    if c.pam.unenrolled == UnenrolledPolicy::Ignore {
        out.push(Finding::new(
            Status::Warn,
            "policy",
            "[pam] unenrolled = \"ignore\": users without a method log in without a second factor",
            "enrol everybody (twostep enrol NAME), then set unenrolled = \"deny\"",
        ));
    }
    if c.radius
        .as_ref()
        .is_some_and(|r| r.fail_mode == FailMode::Open)
    {
        out.push(Finding::new(
            Status::Warn,
            "policy",
            "[radius] fail_mode = \"open\": while the registry is unreachable, VPN logins pass without a second factor",
            "set fail_mode = \"closed\" (the default)",
        ));
    }
    out
}

// ---- exemptions ------------------------------------------------------------

/// Narrowest IPv4 prefix in `exempt_networks` that passes without a warning.
pub const MIN_EXEMPT_PREFIX_V4: u8 = 8;
/// Narrowest IPv6 prefix in `exempt_networks` that passes without a warning.
pub const MIN_EXEMPT_PREFIX_V6: u8 = 16;
/// A group that is the primary group of this many regular users or more is
/// "everybody's group" (Debian's `users`, gid 100, is one by design).
pub const MANY_USERS: usize = 2;
/// gid of Debian's `users` group, meant for every human user.
const USERS_GID: u32 = 100;

/// A group as NSS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its gid.
    pub gid: u32,
    /// Its supplementary members (user names).
    pub members: Vec<String>,
}

/// A regular (human) user: name and primary gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegularUser {
    /// Login name.
    pub name: String,
    /// Primary gid.
    pub gid: u32,
}

/// What the exemption checks need to know about the system.
pub trait Groups {
    /// The group `name`, `None` when it does not exist.
    fn group(&self, name: &str) -> Option<GroupInfo>;
    /// Regular users (uid in login.defs' UID_MIN..=UID_MAX).
    fn regular_users(&self) -> Vec<RegularUser>;
}

/// This host: groups through NSS (getgrnam, as the PAM module resolves
/// them), regular users from /etc/passwd (NSS user enumeration is often
/// off for directory services; local users are the ones at risk here).
pub struct SystemGroups {
    users: Vec<RegularUser>,
}

impl SystemGroups {
    /// Reads /etc/login.defs and /etc/passwd.
    pub fn load() -> Self {
        let defs = std::fs::read_to_string("/etc/login.defs").unwrap_or_default();
        let def = |key: &str, default: u32| {
            defs.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some(key)).then(|| w.next()?.parse().ok())?
                })
                .next_back()
                .unwrap_or(default)
        };
        let (min, max) = (def("UID_MIN", 1000), def("UID_MAX", 60000));
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let users = passwd
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let uid: u32 = f.get(2)?.parse().ok()?;
                let gid: u32 = f.get(3)?.parse().ok()?;
                (min..=max).contains(&uid).then(|| RegularUser {
                    name: f[0].to_owned(),
                    gid,
                })
            })
            .collect();
        Self { users }
    }
}

impl Groups for SystemGroups {
    fn group(&self, name: &str) -> Option<GroupInfo> {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| GroupInfo {
                gid: g.gid.as_raw(),
                members: g.mem,
            })
    }

    fn regular_users(&self) -> Vec<RegularUser> {
        self.users.clone()
    }
}

/// `[pam]` require/exempt groups and networks against this system: a
/// require group that does not exist asks nobody for a code; exempt
/// groups that hold everybody and networks that cover everything exempt
/// everybody.
pub fn check_exemptions(pam: &twostep_config::PamConfig, sys: &dyn Groups) -> Vec<Finding> {
    let check = "policy";
    let mut out = Vec::new();
    let missing: Vec<&String> = pam
        .require_groups
        .iter()
        .filter(|g| sys.group(g).is_none())
        .collect();
    for g in &missing {
        let effect = if missing.len() == pam.require_groups.len() {
            "no group listed exists, so nobody is asked for a code"
        } else {
            "its intended members are not asked for a code"
        };
        out.push(Finding::new(
            Status::Fail,
            check,
            format!("[pam] require_groups names group {g:?}, which does not exist on this host: {effect}"),
            format!("correct the name (`getent group {g}` must print it) or create the group"),
        ));
    }
    for g in pam.require_groups.iter().filter(|g| !missing.contains(g)) {
        out.push(Finding::ok(
            check,
            format!("[pam] require_groups group {g:?} exists"),
        ));
    }
    let users = sys.regular_users();
    for g in &pam.exempt_groups {
        let Some(info) = sys.group(g) else {
            out.push(Finding::new(
                Status::Warn,
                check,
                format!("[pam] exempt_groups names group {g:?}, which does not exist on this host: it exempts nobody"),
                format!("correct the name (`getent group {g}` must print it) or remove it"),
            ));
            continue;
        };
        let primary = users.iter().filter(|u| u.gid == info.gid).count();
        let everyone = !users.is_empty()
            && users
                .iter()
                .all(|u| u.gid == info.gid || info.members.contains(&u.name));
        let why = if info.gid == USERS_GID || g == "users" {
            Some(format!("{g:?} (gid {}) is meant for every user", info.gid))
        } else if everyone {
            Some(format!(
                "{g:?} holds every regular user of this host ({})",
                users.len()
            ))
        } else if primary >= MANY_USERS {
            Some(format!("{g:?} is the primary group of {primary} users"))
        } else {
            None
        };
        match why {
            Some(why) => out.push(Finding::new(
                Status::Warn,
                check,
                format!("[pam] exempt_groups: {why}: they all log in without a second factor"),
                "exempt a dedicated group (e.g. twostep-exempt) holding only the accounts that must skip the code",
            )),
            None => out.push(Finding::ok(
                check,
                format!("[pam] exempt_groups group {g:?} exists"),
            )),
        }
    }
    for net in &pam.exempt_networks {
        let v4 = net.addr().is_ipv4();
        let min = if v4 {
            MIN_EXEMPT_PREFIX_V4
        } else {
            MIN_EXEMPT_PREFIX_V6
        };
        if net.prefix_len() == 0 {
            out.push(Finding::new(
                Status::Fail,
                check,
                format!("[pam] exempt_networks {net} exempts every {} address: nobody logging in over the network is asked for a code", if v4 { "IPv4" } else { "IPv6" }),
                format!("remove {net}; list only the admin networks that may skip the code"),
            ));
        } else if net.prefix_len() < min {
            out.push(Finding::new(
                Status::Warn,
                check,
                format!("[pam] exempt_networks {net} is very wide (prefix shorter than /{min}): logins from all of it skip the second factor"),
                format!("narrow {net} to the admin networks that may skip the code"),
            ));
        } else {
            out.push(Finding::ok(check, format!("[pam] exempt_networks {net}")));
        }
    }
    out
}

// ---- files -----------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A secret: must exist, no group/other bits, owned by an allowed user.
    Secret,
    /// A secret the service creates on first start when missing.
    SecretCreated,
    /// Public material (certificates): must exist and be readable.
    Public,
}

/// The user name of `uid`, from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

fn check_file(key: &str, path: &Path, kind: Kind, owners: &[&str]) -> Finding {
    check_file_or(key, path, kind, owners, None)
}

/// As [`check_file`]; `missing` is the finding (status, fix) for a file that
/// does not exist, when the generic one would not help.
fn check_file_or(
    key: &str,
    path: &Path,
    kind: Kind,
    owners: &[&str],
    missing: Option<(Status, String)>,
) -> Finding {
    let check = "files";
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && kind == Kind::SecretCreated => {
            return Finding::ok(
                check,
                format!("{key} {} will be created on first start", path.display()),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Finding::new(
                Status::Warn,
                check,
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
                check,
                format!("{key} {} does not exist", path.display()),
                fix,
            );
        }
        Err(e) => {
            return Finding::new(
                Status::Fail,
                check,
                format!("{key} {}: {e}", path.display()),
                format!("create {} or correct {key} in the config", path.display()),
            )
        }
    };
    if !meta.is_file() {
        return Finding::new(
            Status::Fail,
            check,
            format!("{key} {} is not a regular file", path.display()),
            format!("point {key} at a file"),
        );
    }
    if kind == Kind::Public {
        return Finding::ok(check, format!("{key} {} exists", path.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc_geteuid() };
    let owner = user_name(meta.uid());
    let owner_ok = meta.uid() == 0
        || meta.uid() == euid
        || owner.as_deref().is_some_and(|n| owners.contains(&n));
    if !owner_ok {
        let allowed = std::iter::once("root")
            .chain(owners.iter().copied())
            .collect::<Vec<_>>()
            .join(" or ");
        return Finding::new(
            Status::Fail,
            check,
            format!(
                "{key} {} is owned by {}; the services refuse it",
                path.display(),
                owner.unwrap_or_else(|| format!("uid {}", meta.uid()))
            ),
            format!("chown root {} (allowed owners: {allowed})", path.display()),
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Finding::new(
            Status::Fail,
            check,
            format!(
                "{key} {} has mode {mode:04o}: group or others can read the secret",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        );
    }
    Finding::ok(
        check,
        format!(
            "{key} {} owner and mode {mode:04o} are safe",
            path.display()
        ),
    )
}

// geteuid(2) from the C library std already links; one declaration is
// lighter than a dependency for it.
extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn check_files(c: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let api_owners = [API_USER];
    let radius_owners = [RADIUS_USER];
    if let Some(api) = &c.api {
        out.push(check_file(
            "[api] secret_key_file",
            &api.secret_key_file,
            Kind::SecretCreated,
            &api_owners,
        ));
        out.push(check_file(
            "[api] admin_token_file",
            &api.admin_token_file,
            Kind::SecretCreated,
            &api_owners,
        ));
        if let Some(p) = &api.tls_key_file {
            out.push(check_file(
                "[api] tls_key_file",
                p,
                Kind::Secret,
                &api_owners,
            ));
        }
        if let Some(p) = &api.tls_cert_file {
            out.push(check_file("[api] tls_cert_file", p, Kind::Public, &[]));
        }
    }
    if let Some(reg) = &c.registry {
        // The PAM module runs as root and accepts only root's key file; a
        // config for twostep-radiusd (it has [radius]) may give it to its user.
        let key_owners: &[&str] = if c.radius.is_some() {
            &radius_owners
        } else {
            &[]
        };
        if let Some(p) = &reg.api_key_file {
            out.push(check_file_or(
                "[registry] api_key_file",
                p,
                Kind::Secret,
                key_owners,
                Some((
                    Status::Fail,
                    format!(
                        "run `twostep host add NAME` on the registry and write the key printed to {} (mode 0600)",
                        p.display()
                    ),
                )),
            ));
        }
        if let Some(p) = &reg.admin_token_file {
            out.push(check_file_or(
                "[registry] admin_token_file",
                p,
                Kind::Secret,
                &[],
                Some((
                    Status::Warn,
                    format!(
                        "needed only where admins run `twostep`: copy the registry's admin token to {} (mode 0600)",
                        p.display()
                    ),
                )),
            ));
        }
        if let Some(p) = &reg.ca_file {
            out.push(check_file("[registry] ca_file", p, Kind::Public, &[]));
        }
    }
    if let Some(r) = &c.radius {
        out.push(check_file(
            "[radius] state_key_file",
            &r.state_key_file,
            Kind::Secret,
            &radius_owners,
        ));
        for cl in &r.clients {
            out.push(check_file(
                &format!("[[radius.client]] {} secret_file", cl.name),
                &cl.secret_file,
                Kind::Secret,
                &radius_owners,
            ));
        }
        for up in &r.upstreams {
            out.push(check_file(
                &format!("[[radius.upstream]] {} secret_file", up.name),
                &up.secret_file,
                Kind::Secret,
                &radius_owners,
            ));
        }
    }
    out
}

// ---- registry --------------------------------------------------------------

fn check_registry(c: &Config) -> Vec<Finding> {
    let check = "registry";
    let Some(reg) = &c.registry else {
        return vec![Finding::new(
            Status::Warn,
            check,
            "the config has no [registry] table: pam_twostep.so and twostep-radiusd cannot reach the registry",
            "add [registry] with url and api_key_file",
        )];
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return vec![Finding::new(
                Status::Fail,
                check,
                format!("cannot start the async runtime: {e}"),
                "check the process limits",
            )]
        }
    };
    let mut out = Vec::new();
    let anon = match RegistryClient::new(reg, Secret::new(b"none".to_vec())) {
        Ok(c) => c,
        Err(e) => {
            return vec![Finding::new(
                Status::Fail,
                check,
                e.to_string(),
                "correct [registry] url, ca_file or proxy",
            )]
        }
    };
    match rt.block_on(anon.health()) {
        Ok(h) if h.status == "ok" => out.push(Finding::ok(
            check,
            format!("{} answers, version {}", reg.url, h.version),
        )),
        Ok(h) => out.push(Finding::new(
            Status::Fail,
            check,
            format!("{} reports status {:?}", reg.url, h.status),
            "check the registry's log and its database (journalctl -u twostep-api)",
        )),
        Err(e) => {
            out.push(Finding::new(
                Status::Fail,
                check,
                e.to_string(),
                format!(
                    "start the registry (systemctl start twostep-api) or correct [registry] url = {:?}; check firewalls and, for https, ca_file",
                    reg.url
                ),
            ));
            return out;
        }
    }
    let Some(key_file) = &reg.api_key_file else {
        out.push(Finding::new(
            Status::Warn,
            check,
            "[registry] has no api_key_file: this host cannot ask the registry",
            "run `twostep host add NAME` on the registry and write the key to a root-only file named by api_key_file",
        ));
        return out;
    };
    let client = match RegistryClient::for_host(reg) {
        Ok(c) => c,
        // Owner and mode problems are reported by the file checks.
        Err(ClientError::Config(_)) => return out,
        Err(e) => {
            out.push(Finding::new(
                Status::Fail,
                check,
                e.to_string(),
                "correct [registry]",
            ));
            return out;
        }
    };
    let fix_key = format!(
        "run `twostep host add NAME` on the registry and write the key printed to {} (mode 0600)",
        key_file.display()
    );
    match rt.block_on(client.registrations(PROBE_USER)) {
        Ok(_) => out.push(Finding::ok(
            check,
            format!(
                "the registry accepts the host key in {}",
                key_file.display()
            ),
        )),
        Err(ClientError::Refused {
            status: 403,
            message,
        }) => out.push(Finding::new(
            Status::Fail,
            check,
            format!(
                "the host key in {} is revoked: {message}",
                key_file.display()
            ),
            fix_key,
        )),
        Err(ClientError::Refused { status, message }) => out.push(Finding::new(
            Status::Fail,
            check,
            format!(
                "the registry refused the host key in {} ({status}): {message}",
                key_file.display()
            ),
            fix_key,
        )),
        Err(e) => out.push(Finding::new(
            Status::Fail,
            check,
            format!("asking the registry with the host key: {e}"),
            "check the registry's log (journalctl -u twostep-api)",
        )),
    }
    out
}

// ---- radius ----------------------------------------------------------------

fn check_radius(c: &Config) -> Vec<Finding> {
    let check = "radius";
    let Some(r) = &c.radius else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut secret = |what: String, path: &Path| {
        let Ok(raw) = std::fs::read(path) else {
            return; // reported by the file checks
        };
        let len = String::from_utf8_lossy(&raw).trim().chars().count();
        if len < MIN_SHARED_SECRET {
            out.push(Finding::new(
                Status::Fail,
                check,
                format!(
                    "{what}: shared secret in {} is {len} characters, fewer than {MIN_SHARED_SECRET}",
                    path.display()
                ),
                format!(
                    "write 16 or more random characters (e.g. `openssl rand -base64 24 > {}`), chmod 600, and set the same secret on the other side",
                    path.display()
                ),
            ));
        } else {
            out.push(Finding::ok(
                check,
                format!("{what}: shared secret has {len} characters"),
            ));
        }
    };
    for cl in &r.clients {
        secret(format!("client {}", cl.name), &cl.secret_file);
    }
    for up in &r.upstreams {
        secret(format!("upstream {}", up.name), &up.secret_file);
    }
    for cl in &r.clients {
        if cl.require_message_authenticator {
            out.push(Finding::ok(
                check,
                format!("client {}: Message-Authenticator required", cl.name),
            ));
        } else {
            out.push(Finding::new(
                Status::Warn,
                check,
                format!(
                    "client {} is in legacy mode (require_message_authenticator = false): Access-Requests without Message-Authenticator are accepted, open to forgery (Blast-RADIUS, CVE-2024-3596)",
                    cl.name
                ),
                "make the NAS send Message-Authenticator, then remove require_message_authenticator = false",
            ));
        }
    }
    if r.clients.is_empty() {
        out.push(Finding::new(
            Status::Warn,
            check,
            "[radius] has no [[radius.client]]: every request is dropped",
            "add a [[radius.client]] for each NAS",
        ));
    }
    out
}

// ---- pam -------------------------------------------------------------------

fn check_pam(config_path: &Path, args: &DoctorArgs) -> Vec<Finding> {
    let mut out = Vec::new();
    // Every distinct module path named, checked once each below.
    let mut wants_modules: Vec<String> = Vec::new();
    for service in &args.pam_services {
        let check = format!("pam {service}");
        match pam::load_auth_stack(&pam::Disk, &args.pam_dir, service) {
            Err(pam::LoadError::NoService(p)) => out.push(Finding::ok(
                &check,
                format!("{} does not exist; skipped", p.display()),
            )),
            Err(e) => out.push(Finding::new(
                Status::Fail,
                &check,
                e.to_string(),
                "correct the PAM file; a broken file locks everybody out of this service",
            )),
            Ok(stack) => {
                for l in stack.iter().filter(|l| l.is_twostep()) {
                    if !wants_modules.contains(&l.module) {
                        wants_modules.push(l.module.clone());
                    }
                }
                // The module reads config=PATH when given: say so when that
                // is not the file checked here.
                for l in stack.iter().filter(|l| l.is_twostep()) {
                    let other = l
                        .args
                        .iter()
                        .filter_map(|a| a.strip_prefix("config="))
                        .find(|p| !same_file(Path::new(p), config_path));
                    if let Some(p) = other {
                        out.push(Finding::new(
                            Status::Warn,
                            &check,
                            format!(
                                "{} at {} reads config={p}, not {}",
                                pam::MODULE,
                                l.origin,
                                config_path.display()
                            ),
                            format!("check that file too: twostep doctor --config {p}"),
                        ));
                    }
                }
                let problems = pam::analyse(&stack);
                if problems.is_empty() {
                    let at = stack
                        .iter()
                        .find(|l| l.is_twostep())
                        .map(|l| l.origin.to_string())
                        .unwrap_or_default();
                    out.push(Finding::ok(
                        &check,
                        format!("{} runs at {at} on every successful login", pam::MODULE),
                    ));
                }
                for p in problems {
                    let (mut what, fix) = p.describe();
                    if p == pam::Problem::Absent {
                        what = format!(
                            "{what} of {} (includes followed)",
                            args.pam_dir.join(service).display()
                        );
                    }
                    let status = if p == pam::Problem::TooComplex {
                        Status::Warn
                    } else {
                        Status::Fail
                    };
                    out.push(Finding::new(status, &check, what, fix));
                }
            }
        }
    }
    for module in wants_modules {
        out.push(check_module_file(args, &module));
    }
    out
}

/// Whether `a` and `b` name the same file (`.state/x.toml` and
/// `/work/.state/x.toml`); literal comparison when either does not exist.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn check_module_file(args: &DoctorArgs, module: &str) -> Finding {
    let check = "pam module";
    let candidates: Vec<PathBuf> = if module.starts_with('/') {
        vec![PathBuf::from(module)]
    } else if let Some(d) = &args.pam_module_dir {
        vec![d.join(module)]
    } else {
        default_module_dirs()
            .iter()
            .map(|d| d.join(module))
            .collect()
    };
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Finding::ok(check, format!("{} is installed", p.display()));
    }
    // The same module under its other name (cargo builds libpam_twostep.so,
    // the package installs pam_twostep.so): there, but PAM will not load
    // it under the name the stack uses.
    let other = candidates.iter().find_map(|p| {
        let name = p.file_name()?.to_str()?;
        pam::MODULE_NAMES
            .iter()
            .filter(|n| **n != name)
            .map(|n| p.with_file_name(n))
            .find(|q| q.is_file())
            .map(|q| (p, q))
    });
    if let Some((wanted, found)) = other {
        return Finding::new(
            Status::Warn,
            check,
            format!(
                "{} exists, but the PAM stack names {module}: PAM looks for {}",
                found.display(),
                wanted.display()
            ),
            format!(
                "install it under that name (`install -m 0644 {} {}`) or name {} in the stack",
                found.display(),
                wanted.display(),
                found.display()
            ),
        );
    }
    Finding::new(
        Status::Fail,
        check,
        format!(
            "{module} is named in the PAM stack but not installed ({}): PAM fails every login of that service",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "apt-get install libpam-twostep",
    )
}

// ---- sshd ------------------------------------------------------------------

fn check_sshd(args: &DoctorArgs, deadline: u64) -> Vec<Finding> {
    let check = "sshd";
    if !args.sshd.exists() {
        return vec![Finding::ok(
            check,
            format!("{} is not installed; skipped", args.sshd.display()),
        )];
    }
    let mut cmd = Command::new(&args.sshd);
    cmd.arg("-T");
    if let Some(f) = &args.sshd_config {
        cmd.arg("-f").arg(f);
    }
    let sshd_cmd = format!(
        "{}{}",
        args.sshd.display(),
        args.sshd_config
            .as_ref()
            .map(|f| format!(" -f {}", f.display()))
            .unwrap_or_default()
    );
    let shown = format!(
        "{} -T{}",
        args.sshd.display(),
        args.sshd_config
            .as_ref()
            .map(|f| format!(" -f {}", f.display()))
            .unwrap_or_default()
    );
    let mut global = sshd::SshdSettings::default();
    let mut out = match run_bounded(&mut cmd, SSHD_TIMEOUT) {
        Ok((true, stdout, _)) => {
            global = sshd::SshdSettings::parse(&stdout);
            sshd::analyse(&global, deadline)
        }
        Ok((false, _, stderr)) => {
            let first = stderr.lines().next().unwrap_or("no message");
            let fix = if first.contains("privilege separation directory") {
                "create it: `install -d -m 0755 /run/sshd` (ssh.service does this when it starts)"
            } else {
                "correct the sshd configuration (`sshd -t` shows the error)"
            };
            vec![Finding::new(
                Status::Fail,
                check,
                format!("`{shown}` failed: {first}"),
                fix,
            )]
        }
        Err(e) => vec![Finding::new(
            Status::Fail,
            check,
            format!("`{shown}`: {e}"),
            "run doctor as root, or pass --no-sshd",
        )],
    };
    // `sshd -T` without -C applies no Match block: read them from the files.
    let file = args
        .sshd_config
        .clone()
        .unwrap_or_else(|| Path::new(sshd::SSH_DIR).join("sshd_config"));
    match sshd::match_blocks(&file, Path::new(sshd::SSH_DIR)) {
        Ok(blocks) => out.extend(sshd::analyse_match_blocks(&global, &blocks, &sshd_cmd)),
        Err(e) => out.push(Finding::new(
            Status::Warn,
            check,
            format!("cannot read the Match blocks: {e}"),
            "run doctor as root",
        )),
    }
    out
}

/// Runs `cmd`, killing it after `limit`; (exit success, stdout, stderr).
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::io::Result<(bool, String, String)> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    Ok((status.success(), out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeGroups {
        groups: Vec<(&'static str, u32, Vec<&'static str>)>,
        users: Vec<(&'static str, u32)>,
    }

    impl Groups for FakeGroups {
        fn group(&self, name: &str) -> Option<GroupInfo> {
            self.groups
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, gid, m)| GroupInfo {
                    gid: *gid,
                    members: m.iter().map(|s| (*s).to_owned()).collect(),
                })
        }
        fn regular_users(&self) -> Vec<RegularUser> {
            self.users
                .iter()
                .map(|(n, g)| RegularUser {
                    name: (*n).to_owned(),
                    gid: *g,
                })
                .collect()
        }
    }

    fn host() -> FakeGroups {
        FakeGroups {
            groups: vec![
                ("users", 100, vec![]),
                ("wheel", 10, vec!["alice"]),
                ("staff", 50, vec![]),
                ("alice", 1000, vec![]),
                ("bob", 1001, vec![]),
                ("everyone", 2000, vec!["alice", "bob", "carol", "dave"]),
            ],
            users: vec![("alice", 1000), ("bob", 1001), ("carol", 50), ("dave", 50)],
        }
    }

    fn exemptions(pam: &str) -> Vec<Finding> {
        check_exemptions(
            &config(&format!("version = 1\n[pam]\n{pam}\n")).pam,
            &host(),
        )
    }

    #[test]
    fn require_group_that_does_not_exist_fails() {
        let f = exemptions("require_groups = [\"wheel-typo\"]");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Fail);
        assert!(
            f[0].message
                .contains("\"wheel-typo\", which does not exist")
                && f[0].message.contains("nobody is asked for a code"),
            "{}",
            f[0].message
        );
        let f = exemptions("require_groups = [\"wheel\", \"wheel-typo\"]");
        assert_eq!(f[0].status, Status::Fail);
        assert!(
            f[0].message.contains("intended members"),
            "{}",
            f[0].message
        );
        assert_eq!(f[1].status, Status::Ok);
        assert_eq!(exemptions("")[..], []);
    }

    #[test]
    fn exempt_groups_missing_or_for_everybody_warn() {
        let f = exemptions(
            "exempt_groups = [\"nogroup-typo\", \"users\", \"staff\", \"everyone\", \"wheel\"]",
        );
        let st: Vec<Status> = f.iter().map(|f| f.status).collect();
        assert_eq!(
            st,
            vec![
                Status::Warn,
                Status::Warn,
                Status::Warn,
                Status::Warn,
                Status::Ok
            ]
        );
        assert!(f[0].message.contains("does not exist"), "{}", f[0].message);
        assert!(f[1].message.contains("gid 100"), "{}", f[1].message);
        assert!(
            f[2].message.contains("primary group of 2 users"),
            "{}",
            f[2].message
        );
        assert!(
            f[3].message.contains("every regular user of this host (4)"),
            "{}",
            f[3].message
        );
    }

    #[test]
    fn exempt_networks_that_cover_everything() {
        let f = exemptions(
            "exempt_networks = [\"0.0.0.0/0\", \"::/0\", \"10.0.0.0/7\", \"2001::/15\", \"10.0.0.0/8\", \"fd00::/16\"]",
        );
        let st: Vec<Status> = f.iter().map(|f| f.status).collect();
        assert_eq!(
            st,
            vec![
                Status::Fail,
                Status::Fail,
                Status::Warn,
                Status::Warn,
                Status::Ok,
                Status::Ok
            ]
        );
        assert!(
            f[0].message
                .contains("0.0.0.0/0 exempts every IPv4 address"),
            "{}",
            f[0].message
        );
        assert!(f[1].message.contains("::/0 exempts every IPv6 address"));
        assert!(f[2].message.contains("very wide"));
    }

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("t.toml")).expect("valid")
    }

    #[test]
    fn weakening_policy_is_a_warning() {
        assert_eq!(check_policy(&config("version = 1\n")), vec![]);
        let f = check_policy(&config(
            "version = 1\n[pam]\nfail_mode = \"open\"\nunenrolled = \"ignore\"\n",
        ));
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.status == Status::Warn));
        assert!(f[0].message.contains("fail_mode = \"open\""));
        assert!(f[1]
            .fix
            .as_deref()
            .unwrap()
            .contains("unenrolled = \"deny\""));
    }
}
