//! End-to-end tests of the registry binary on SQLite: enrolment, host
//! verification against oathtool codes, replay, restart persistence, bad
//! input and the admin routes.

use twostep_common::api::{AuthContext, HostKind, UpdateUser, VerifyRequest, VerifyResult};
use twostep_e2e::{block_on, now, oathtool_code, Registry};

fn req(user: &str, code: &str) -> VerifyRequest {
    VerifyRequest {
        username: user.into(),
        code: code.into(),
        context: AuthContext {
            service: Some("sshd".into()),
            host: Some("web1".into()),
            remote_addr: Some("192.0.2.7".into()),
            tty: None,
        },
    }
}

#[test]
fn enrol_verify_replay_and_restart_persistence() {
    let mut reg = Registry::start();
    reg.add_user("alice smith@example.com");
    let enrol = reg.enrol_totp("alice smith@example.com");
    assert!(enrol
        .otpauth_uri
        .starts_with("otpauth://totp/twostep:alice%20smith%40example.com?secret="));
    assert!(enrol.method.is_default);
    let key = reg.add_host("web1", HostKind::Ssh);
    let host = reg.host_client(&key);

    let code = oathtool_code(&enrol.secret_base32, now());
    let r = block_on(host.verify(&req("alice smith@example.com", &code))).unwrap();
    assert_eq!(r.result, VerifyResult::Accept, "{r:?}");
    assert_eq!(r.method_id, Some(enrol.method.id));
    let r = block_on(host.verify(&req("alice smith@example.com", &code))).unwrap();
    assert_eq!(r.result, VerifyResult::Replay, "replay must be refused");

    // Restart: users, methods, hosts and the replay state persist.
    reg.restart();
    let host = reg.host_client(&key);
    let r = block_on(host.verify(&req("alice smith@example.com", &code))).unwrap();
    assert_eq!(r.result, VerifyResult::Replay, "replay after restart");
    let regs = block_on(host.registrations("alice smith@example.com"))
        .unwrap()
        .unwrap();
    assert_eq!(regs.methods.len(), 1);
    assert_eq!(regs.methods[0].id, enrol.method.id);
    // The next time step's code (30 s ahead, in the skew window) is fresh.
    let next = oathtool_code(&enrol.secret_base32, now() + 30);
    let r = block_on(host.verify(&req("alice smith@example.com", &next))).unwrap();
    assert_eq!(r.result, VerifyResult::Accept, "{r:?}");
}

#[test]
fn results_for_unknown_disabled_unenrolled() {
    let reg = Registry::start();
    let key = reg.add_host("vpn", HostKind::Radius);
    let host = reg.host_client(&key);
    let r = block_on(host.verify(&req("nobody", "123456"))).unwrap();
    assert_eq!(r.result, VerifyResult::UnknownUser);
    reg.add_user("bob");
    let r = block_on(host.verify(&req("bob", "123456"))).unwrap();
    assert_eq!(r.result, VerifyResult::NotEnrolled);
    let e = reg.enrol_totp("bob");
    block_on(reg.admin_client().update_user(
        "bob",
        &UpdateUser {
            disabled: Some(true),
        },
    ))
    .unwrap();
    let code = oathtool_code(&e.secret_base32, now());
    let r = block_on(host.verify(&req("bob", &code))).unwrap();
    assert_eq!(r.result, VerifyResult::Disabled);
}

/// Usernames that look like another user's are refused on create and on
/// every lookup, by the admin and the host routes alike.
#[test]
fn lookalike_usernames_are_refused() {
    use twostep_common::api::CreateUser;
    let reg = Registry::start();
    reg.add_user("demo");
    reg.add_user("J\u{f6}rg");
    let admin = reg.admin_client();
    let key = reg.add_host("web-names", HostKind::Ssh);
    let host = reg.host_client(&key);
    for (name, why) in [
        (" demo", "whitespace at its start or end"),
        ("demo ", "whitespace at its start or end"),
        ("demo\u{a0}", "whitespace at its start or end"),
        ("Jo\u{308}rg", "not in Unicode NFC"),
    ] {
        let create = block_on(admin.create_user(&CreateUser {
            username: name.into(),
            display_name: None,
        }))
        .unwrap_err();
        let lookup = block_on(admin.user(name)).unwrap_err();
        let verify = block_on(host.verify(&req(name, "123456"))).unwrap_err();
        let regs = block_on(host.registrations(name)).unwrap_err();
        for e in [create, lookup, verify, regs] {
            match &e {
                twostep_common::client::ClientError::Api {
                    status: 400,
                    code,
                    message,
                } => assert!(
                    code == "invalid_username" && message.contains(why),
                    "{name:?}: {e}"
                ),
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }
    let names: Vec<String> = block_on(admin.list_users())
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// `GET /v1/admin/users` with `token`, on a fresh client (one per runtime).
fn list_users_with(
    reg: &Registry,
    token: &str,
) -> Result<Vec<twostep_common::api::User>, twostep_common::client::ClientError> {
    let client = twostep_common::client::RegistryClient::new(
        &reg.client_config(None),
        twostep_config::Secret::new(token.as_bytes().to_vec()),
    )
    .unwrap();
    block_on(client.list_users())
}

#[test]
fn replacing_the_admin_token_file_revokes_the_old_token_at_once() {
    use std::os::unix::fs::PermissionsExt;
    use twostep_common::client::ClientError;
    let reg = Registry::start();
    let path = reg.admin_token_file();
    let old = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    list_users_with(&reg, &old).unwrap();
    // Rotate as an admin would: a new 0600 file renamed over the old one.
    let new = "rotated-admin-token-0123456789abcdef";
    let tmp = reg.dir.path().join("admin.token.new");
    twostep_e2e::write_secret(&tmp, &format!("{new}\n"));
    std::fs::rename(&tmp, &path).unwrap();
    match list_users_with(&reg, &old) {
        Err(ClientError::Refused { status: 401, .. }) => {}
        other => panic!("old token after rotation: {other:?}"),
    }
    list_users_with(&reg, new).unwrap();
    // A token file others can read: refused (503), never accepted.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    for t in [new, old.as_str()] {
        match list_users_with(&reg, t) {
            Err(ClientError::Server {
                status: 503,
                message,
            }) => {
                assert!(message.contains("admin token file"), "{message}");
            }
            other => panic!("unsafe token file: {other:?}"),
        }
    }
    assert!(reg.log().contains("admin token file unusable"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    list_users_with(&reg, new).unwrap();
}
