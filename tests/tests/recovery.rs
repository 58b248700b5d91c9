//! Temporary access codes end to end: issued with `twostep user tap` /
//! `twostep user reset --tap`, used through pamtester (the built
//! pam_twostep.so under libpam-wrapper) and radclient (a real
//! twostep-radiusd), until used up or revoked; each use in the audit log;
//! and a phone change in a real headless Chromium: the old push device's
//! answer refused, the page signed in with the code, the new app added,
//! then an SSH-style login with it.

mod pam_support;
mod portal_support;
mod radius_support;

use radius_support::{auth, client_toml, Env};
use std::path::PathBuf;
use std::process::{Command, Output};
use twostep_common::api::HostKind;
use twostep_e2e::{bin, block_on, Registry};

fn twostep(reg: &Registry, args: &[&str]) -> Output {
    Command::new(bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .args(args)
        .output()
        .expect("run twostep")
}

/// Standard output of a `twostep` command that must succeed.
fn ok(reg: &Registry, args: &[&str]) -> (String, String) {
    let out = twostep(reg, args);
    assert!(
        out.status.success(),
        "twostep {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A PAM service directory under `dir` with service `name`: pam_twostep
/// alone, with `[pam]` holding `pam`, for `reg` with the SSH host key
/// `key`; the directory.
fn service_in(
    reg: &Registry,
    key: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    pam: &str,
) -> PathBuf {
    let config = dir.join("pam.toml");
    std::fs::write(
        &config,
        format!("version = 1\n{}\n[pam]\n{pam}", reg.registry_toml(key)),
    )
    .expect("pam.toml");
    let svc = dir.join("svc");
    std::fs::create_dir_all(&svc).expect("svc");
    std::fs::write(
        svc.join(name),
        format!(
            "auth required {} config={}\n",
            pam_support::module().display(),
            config.display()
        ),
    )
    .expect("service");
    svc
}

/// A PAM service `tap` (pam_twostep alone) for `env`'s registry, with its
/// own SSH host key; the service directory.
fn pam_service(env: &Env) -> PathBuf {
    let key = env.reg.add_host("pam-tap", HostKind::Ssh);
    service_in(&env.reg, &key, env.dir.path(), "tap", "")
}

fn pam(svc: &std::path::Path, user: &str, answer: &str) -> pam_support::Run {
    pam_support::pamtester(svc, "tap", user, None, &format!("{answer}\n"), &[])
}

/// The registry's audit details of `user`'s accepted verifications, newest
/// first.
fn accepts(reg: &Registry, user: &str) -> Vec<String> {
    block_on(reg.admin_client().audit(1000))
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "verify" && e.username.as_deref() == Some(user))
        .filter(|e| e.result.as_deref() == Some("accept"))
        .map(|e| e.detail.unwrap_or_default())
        .collect()
}

#[test]
fn temporary_access_code_through_pam_and_radius() {
    let env = Env::new();
    let secret = env.enrolled_user("tess");
    let svc = pam_service(&env);
    let radius_secret = "tap radius secret 1";
    let s = env.secret_file("vpn.secret", radius_secret);
    let radiusd = env.radiusd(
        "tap",
        &client_toml("vpn", "127.0.0.1/32", &s, "otp-only", ""),
    );
    let challenge = env.radiusd(
        "tap-challenge",
        &client_toml("vpn", "127.0.0.1/32", &s, "challenge", ""),
    );
    let append = env.radiusd(
        "tap-append",
        &client_toml("vpn", "127.0.0.1/32", &s, "append", ""),
    );

    let (tap, said) = ok(&env.reg, &["user", "tap", "tess", "--uses", "4"]);
    assert_eq!(tap.len(), 14, "{tap:?}");
    assert!(said.contains("works for 4 login(s)"), "{said}");
    assert!(said.contains("shown only this once"), "{said}");
    let (show, _) = ok(&env.reg, &["user", "show", "tess"]);
    assert!(show.contains("temporary access code: open until"), "{show}");

    // Typed in lower case without dashes at the PAM prompt.
    let typed = tap.replace('-', "").to_lowercase();
    let r = pam(&svc, "tess", &typed);
    r.expect(true, "PAM_SUCCESS");
    assert!(!r.stderr.contains(&typed), "never logged");
    // As the password of an otp-only RADIUS client, the answer to an
    // Access-Challenge, and after the comma in append mode.
    auth(radiusd.port, radius_secret, "tess", &tap, &[]).expect("Access-Accept");
    let r = auth(challenge.port, radius_secret, "tess", "pw", &[]);
    r.expect("Access-Challenge");
    let state = format!("State = {}", r.state());
    auth(challenge.port, radius_secret, "tess", &tap, &[&state]).expect("Access-Accept");
    auth(
        append.port,
        radius_secret,
        "tess",
        &format!("pw,{typed}"),
        &[],
    )
    .expect("Access-Accept");
    // Used up: refused by both.
    let r = pam(&svc, "tess", &tap);
    r.expect(false, "PAM_AUTH_ERR");
    auth(radiusd.port, radius_secret, "tess", &tap, &[]).expect("Access-Reject");
    let details = accepts(&env.reg, "tess");
    assert_eq!(details.len(), 4, "{details:?}");
    for (i, d) in details.iter().enumerate() {
        assert!(d.contains(&format!("uses_left={i}")), "{details:?}");
    }
    assert!(details[3].contains("service=tap"), "{details:?}");
    assert!(
        env.reg.log().contains("temporary access code used"),
        "warning line in the registry log"
    );

    // Revoked: refused; the app's code still works.
    let (tap2, _) = ok(&env.reg, &["user", "tap", "tess"]);
    let (said, _) = ok(&env.reg, &["user", "tap", "tess", "--revoke"]);
    assert_eq!(said, "revoked the open temporary access code of tess");
    let (said, _) = ok(&env.reg, &["user", "tap", "tess", "--revoke"]);
    assert_eq!(
        said,
        "tess has no open temporary access code; nothing to revoke"
    );
    let r = pam(&svc, "tess", &tap2);
    r.expect(false, "PAM_AUTH_ERR");
    let r = pam(&svc, "tess", &radius_support::code(&secret));
    r.expect(true, "PAM_SUCCESS");

    // Bad input: one clear line, nothing issued.
    for (args, says) in [
        (
            vec!["user", "tap", "tess", "--hours", "0"],
            "0 is not in 1..=720",
        ),
        (
            vec!["user", "tap", "tess", "--hours", "721"],
            "721 is not in 1..=720",
        ),
        (
            vec!["user", "tap", "tess", "--hours", "4294967296"],
            "1..=720",
        ),
        (
            vec!["user", "tap", "tess", "--uses", "0"],
            "0 is not in 1..=100",
        ),
        (vec!["user", "tap", "nobody"], "nobody"),
    ] {
        let out = twostep(&env.reg, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = twostep(
        &env.reg,
        &["user", "tap", "tess", "--revoke", "--hours", "2"],
    );
    assert!(!out.status.success(), "--revoke with --hours is refused");
}

/// A phone change: `user reset --tap` deletes the app and the push device
/// and prints a code; the old app's code is refused (the user is enrolled
/// by the code, so it is a wrong code, not "not enrolled"), the code
/// lets the user in once, then the user is not enrolled.
#[test]
fn reset_with_tap_for_a_phone_change() {
    let env = Env::new();
    let secret = env.enrolled_user("rita");
    let svc = pam_service(&env);
    let (tap, said) = ok(&env.reg, &["user", "reset", "rita", "--tap"]);
    assert!(said.contains("deleted all methods of rita (1)"), "{said}");
    let (show, _) = ok(&env.reg, &["user", "show", "rita"]);
    assert!(show.contains("temporary access code: open until"), "{show}");
    assert!(!show.contains("not enrolled"), "{show}");

    let r = pam(&svc, "rita", &radius_support::code(&secret));
    r.expect(false, "PAM_AUTH_ERR");
    // Prompted (a wrong code, asked again, no more answers).
    assert_eq!(r.prompts("Verification code: "), 2, "{r:#?}");
    let r = pam(&svc, "rita", &tap);
    r.expect(true, "PAM_SUCCESS");
    // Nothing left: not enrolled (the default `unenrolled = "deny"`).
    let r = pam(&svc, "rita", &tap);
    r.expect(false, "PAM_PERM_DENIED");
    let out = twostep(&env.reg, &["user", "reset", "rita", "--hours", "2"]);
    assert!(!out.status.success(), "--hours needs --tap");
}

/// The help desk's phone change, end to end: pat has an app and a push
/// device with a push open; `user reset pat --tap` cancels that push (the
/// old phone's approval is refused), pat signs in to the Security info
/// page with the password and the code (typed with spaces, lower case),
/// adds the new app with the flow, and logs in through pamtester with it.
#[test]
fn phone_change_in_the_browser() {
    use portal_support::*;
    use twostep_common::push::{PushContext, PushResult, StartPush, StartResult};
    let reg = Registry::start();
    cli(
        &reg,
        &["user", "add", "pat", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    let old_app = reg.enrol_totp("pat");
    let dir = tempfile::tempdir().expect("tmp");
    let (enrolled, _) = ok(&reg, &["enrol", "pat", "--push", "--no-qr"]);
    let uri = enrolled
        .lines()
        .find_map(|l| l.strip_prefix("uri:"))
        .expect("uri line")
        .trim()
        .to_owned();
    let phone = dir.path().join("old-phone.json");
    let out = twostep_e2e::authenticator(&phone, &["add", &uri, "--name", "Old phone"]);
    assert!(out.status.success(), "{}", twostep_e2e::show_output(&out));
    let key = reg.add_host("web1", HostKind::Ssh);
    let host = reg.host_client(&key);
    let started = block_on(host.start_push(&StartPush {
        username: "pat".into(),
        context: PushContext {
            service: Some("sshd".into()),
            host: Some("web1".into()),
            remote_addr: Some("192.0.2.7".into()),
            ..PushContext::default()
        },
    }))
    .expect("start push");
    assert_eq!(started.result, StartResult::Sent);
    let challenge = started.challenge.expect("challenge");

    let (tap, _) = ok(&reg, &["user", "reset", "pat", "--tap"]);
    // The old phone can no longer answer; the push ended as cancelled.
    let number = challenge.number.map(|n| n.to_string()).unwrap_or_default();
    let out = twostep_e2e::authenticator(&phone, &["approve", "--number", &number]);
    assert!(
        !out.status.success(),
        "old phone approved: {}",
        twostep_e2e::show_output(&out)
    );
    let outcome =
        block_on(host.push_outcome(&challenge.challenge_id, std::time::Duration::from_secs(1)))
            .expect("outcome");
    assert_eq!(outcome.result, PushResult::Cancelled);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser());
    let typed = tap.replace('-', " ").to_lowercase();
    let secret = rt.block_on(async {
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&c, "username", "pat").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        assert_eq!(path(&c).await, "/my/sign-in/code");
        let t = text(&c).await;
        assert!(
            t.contains("temporary access code your help desk gave you"),
            "{t}"
        );
        shot(&c, "40-sign-in-temporary-access-code").await;
        // The old app's code is refused now.
        fill(&c, "code", &pam_support::code(&old_app.secret_base32)).await;
        click(&c, "Verify").await;
        assert!(text(&c).await.contains("didn't work"), "{}", text(&c).await);
        fill(&c, "code", &typed).await;
        click(&c, "Verify").await;
        assert_eq!(path(&c).await, "/my/security-info");
        let t = text(&c).await;
        assert!(
            t.contains("Getting a new phone? Add it here before you give the old one away."),
            "{t}"
        );
        shot(&c, "41-security-info-after-reset").await;
        click(&c, "Add sign-in method").await;
        c.find(fantoccini::Locator::Css("input[name=method][value=app]"))
            .await
            .expect("the codes app choice")
            .click()
            .await
            .expect("choose");
        click(&c, "Add").await;
        click(&c, "Next").await;
        click(&c, "Next").await;
        let secret = secret_of(&read_qr(&c).await);
        click(&c, "Next").await;
        secret
    });
    let mut last = 0;
    let code = next_code(&secret, &mut last);
    rt.block_on(async {
        fill(&c, "code", &code).await;
        click(&c, "Next").await;
        assert!(text(&c).await.contains("Authenticator app added"));
        c.close().await.expect("close");
    });
    // SSH-style login with the new app.
    let env_dir = tempfile::tempdir().expect("tmp");
    let svc = service_in(&reg, &key, env_dir.path(), "tap", "");
    let r = pam(&svc, "pat", &next_code(&secret, &mut last));
    r.expect(true, "PAM_SUCCESS");
    // The code was used once, on the page.
    assert_eq!(
        accepts(&reg, "pat")
            .iter()
            .filter(|d| d.contains("temporary_access_code="))
            .count(),
        1
    );
}

/// Backup codes: ten, printed once; each works once at the PAM prompt
/// (typed as shown, with the space); a new set voids the old one; the
/// audit counts what is left; they are never the method a login asks for
/// (the app stays the default), and backup codes alone do not enrol.
#[test]
fn backup_codes_through_pam() {
    let env = Env::new();
    let svc = pam_service(&env);
    // Backup codes first, then the app: the app is the method.
    env.reg.add_user("bea");
    let (first, said) = ok(&env.reg, &["user", "backup-codes", "bea"]);
    assert!(said.contains("shown only this once"), "{said}");
    let first: Vec<&str> = first.lines().collect();
    assert_eq!(first.len(), 10, "{first:?}");
    assert!(
        first
            .iter()
            .all(|c| c.len() == 9 && c.as_bytes()[4] == b' '),
        "{first:?}"
    );
    // Backup codes alone: not enrolled.
    let r = pam(&svc, "bea", first[0]);
    r.expect(false, "PAM_PERM_DENIED");
    let secret = env.reg.enrol_totp("bea").secret_base32;
    let user = block_on(env.reg.admin_client().user("bea")).expect("user");
    assert_eq!(user.methods.len(), 1);
    assert!(user.methods[0].is_default, "the app is the default");
    assert_eq!(user.backup_codes_left, Some(10));

    let r = pam(&svc, "bea", first[0]);
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts("Verification code: "), 1, "the app's prompt");
    let r = pam(&svc, "bea", first[0]);
    r.expect(false, "PAM_AUTH_ERR");
    let r = pam(&svc, "bea", &first[1].replace(' ', ""));
    r.expect(true, "PAM_SUCCESS");
    let (show, _) = ok(&env.reg, &["user", "show", "bea"]);
    assert!(show.contains("backup codes: 8 of 10 unused"), "{show}");
    let details = accepts(&env.reg, "bea");
    assert!(details[0].contains("backup_codes_left=8"), "{details:?}");

    // A new set: the old unused ones stop working.
    let (second, _) = ok(&env.reg, &["user", "backup-codes", "bea"]);
    let second: Vec<&str> = second.lines().collect();
    let r = pam(&svc, "bea", first[2]);
    r.expect(false, "PAM_AUTH_ERR");
    let r = pam(&svc, "bea", second[0]);
    r.expect(true, "PAM_SUCCESS");
    // The app still works.
    let r = pam(&svc, "bea", &radius_support::code(&secret));
    r.expect(true, "PAM_SUCCESS");
}

/// Backup codes on the Security info page: generated (shown once, ten),
/// counted, used at the page's sign-in through "Use a backup code", and a
/// new set voids the old one for SSH too.
#[test]
fn backup_codes_on_the_page() {
    use portal_support::*;
    let reg = Registry::start();
    cli(
        &reg,
        &["user", "add", "bo", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    let app = reg.enrol_totp("bo");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser());
    let mut last = 0;
    let first_code = next_code(&app.secret_base32, &mut last);
    let codes: Vec<String> = rt.block_on(async {
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&c, "username", "bo").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        // No backup codes yet: not offered.
        assert!(!text(&c).await.contains("Use a backup code"));
        fill(&c, "code", &first_code).await;
        click(&c, "Verify").await;
        c.goto(&format!("{}/my/security-info", reg.url))
            .await
            .expect("goto");
        click(&c, "Generate backup codes").await;
        let t = text(&c).await;
        assert!(t.contains("Your backup codes"), "{t}");
        shot(&c, "42-backup-codes").await;
        let items = c
            .find_all(fantoccini::Locator::Css(".backup-codes code"))
            .await
            .expect("codes");
        let mut codes = Vec::new();
        for i in items {
            codes.push(i.text().await.expect("text"));
        }
        click(&c, "Done").await;
        let t = text(&c).await;
        assert!(t.contains("10 of 10 unused"), "{t}");
        assert!(t.contains("Generate new codes"), "{t}");
        shot(&c, "43-security-info-backup").await;
        click(&c, "Sign out").await;
        fill(&c, "username", "bo").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        click(&c, "Use a backup code").await;
        let t = text(&c).await;
        assert!(t.contains("Backup code"), "{t}");
        shot(&c, "44-sign-in-backup-code").await;
        fill(&c, "code", &codes[0]).await;
        click(&c, "Verify").await;
        assert_eq!(path(&c).await, "/my/");
        c.goto(&format!("{}/my/security-info", reg.url))
            .await
            .expect("goto");
        assert!(text(&c).await.contains("9 of 10 unused"));
        codes
    });
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 9), "{codes:?}");
    let user = block_on(reg.admin_client().user("bo")).expect("user");
    assert_eq!(user.backup_codes_left, Some(9));
    assert_eq!(user.methods.len(), 1, "backup codes are not a method");
    // A new set from the page voids the old.
    rt.block_on(async {
        click(&c, "Generate new codes").await;
        assert!(text(&c)
            .await
            .contains("earlier backup codes no longer work"));
        c.close().await.expect("close");
    });
    let key = reg.add_host("web-bo", HostKind::Ssh);
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_in(&reg, &key, dir.path(), "tap", "");
    let r = pam(&svc, "bo", &codes[1]);
    r.expect(false, "PAM_AUTH_ERR");
}

/// A one-request HTTP server on 127.0.0.1 that answers 200 and hands over
/// the body it received (the admins' alert hook).
fn one_request_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut length = 0usize;
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            line.clear();
        }
        let mut body = vec![0u8; length];
        let _ = reader.read_exact(&mut body);
        let mut stream = stream;
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
    });
    (port, rx)
}

/// "This wasn't me" on the Privacy page: the user's own sign-ins are
/// listed (an SSH login through pamtester with its service and host);
/// the report blocks pushes at once (a new push start is refused), is
/// audited, logged at warning and sent to `alert_webhook_url`.
#[test]
fn this_wasnt_me_blocks_pushes_and_alerts_the_admins() {
    use portal_support::*;
    use twostep_common::push::{PushContext, StartPush, StartResult};
    let (hook_port, hook) = one_request_server();
    let reg = Registry::start_with(
        None,
        &format!("[api.push]\nalert_webhook_url = \"http://127.0.0.1:{hook_port}/alert\"\n"),
    );
    cli(
        &reg,
        &["user", "add", "nia", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    let app = reg.enrol_totp("nia");
    let dir = tempfile::tempdir().expect("tmp");
    let (enrolled, _) = ok(&reg, &["enrol", "nia", "--push", "--no-qr"]);
    let uri = enrolled
        .lines()
        .find_map(|l| l.strip_prefix("uri:"))
        .expect("uri line")
        .trim()
        .to_owned();
    let out = twostep_e2e::authenticator(&dir.path().join("phone.json"), &["add", &uri]);
    assert!(out.status.success(), "{}", twostep_e2e::show_output(&out));
    let key = reg.add_host("web-nia", HostKind::Ssh);
    let svc = service_in(&reg, &key, dir.path(), "nia-ssh", "push = \"off\"\n");
    let mut last = 0;
    let ssh_code = next_code(&app.secret_base32, &mut last);
    let r = pam_support::pamtester(
        &svc,
        "nia-ssh",
        "nia",
        Some("203.0.113.9"),
        &format!("{ssh_code}\n"),
        &[],
    );
    r.expect(true, "PAM_SUCCESS");

    let page_code = next_code(&app.secret_base32, &mut last);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser());
    rt.block_on(async {
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&c, "username", "nia").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        fill(&c, "code", &page_code).await;
        click(&c, "Verify").await;
        c.goto(&format!("{}/my/privacy", reg.url))
            .await
            .expect("goto");
        let t = text(&c).await;
        assert!(t.contains("My sign-ins"), "{t}");
        assert!(t.contains("Code checked (nia-ssh on"), "{t}");
        assert!(t.contains("203.0.113.9"), "{t}");
        shot(&c, "45-my-sign-ins").await;
        click(&c, "This wasn't me").await;
        assert!(text(&c)
            .await
            .contains("Report sign-ins you don't recognise?"));
        shot(&c, "46-this-wasnt-me").await;
        click(&c, "This wasn't me").await;
        let t = text(&c).await;
        assert!(t.contains("your administrators were told"), "{t}");
        assert!(t.contains("Reported: this wasn't me"), "{t}");
        c.close().await.expect("close");
    });
    let alert = hook
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the alert webhook was called");
    let v: serde_json::Value = serde_json::from_str(&alert).expect("JSON alert");
    assert_eq!(v["event"], "user_report", "{v}");
    assert_eq!(v["username"], "nia", "{v}");
    let started = block_on(reg.host_client(&key).start_push(&StartPush {
        username: "nia".into(),
        context: PushContext {
            service: Some("sshd".into()),
            ..PushContext::default()
        },
    }))
    .expect("start");
    assert_eq!(started.result, StartResult::Blocked);
    assert!(
        reg.log().contains("This wasn't me"),
        "warning in the registry log"
    );
    let audit = block_on(reg.admin_client().audit(100)).expect("audit");
    assert!(audit
        .iter()
        .any(|e| e.action == "user.report" && e.result.as_deref() == Some("not_me")));
    // An admin clears it.
    ok(&reg, &["user", "unlock", "nia"]);
}
