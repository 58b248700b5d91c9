//! Settings that weaken the second factor on purpose, and `[pam]` require
//! and exempt groups and networks against this host.

use super::report::{Finding, Status};
use twostep_config::{Config, FailMode, PamConfig, UnenrolledPolicy};

/// Settings that weaken the second factor on purpose: worth a warning.
pub fn check_policy(c: &Config) -> Vec<Finding> {
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
    // [radius] fail_mode is one of the radius warnings
    // (twostep_config::radius::warnings), which the radius checks report.
    out
}

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
pub fn check_exemptions(pam: &PamConfig, sys: &dyn Groups) -> Vec<Finding> {
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

#[cfg(test)]
mod tests;
