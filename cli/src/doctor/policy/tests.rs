use super::*;
use std::path::Path;

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
