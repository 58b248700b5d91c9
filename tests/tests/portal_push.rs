//! Push devices on the Security info pages, in a real headless Chromium
//! against the real `twostep-api`, with the reference device `twostep
//! authenticator`: add a device (activation QR decoded with zbarimg, a
//! pending device no login reaches, the test notification denied, resent
//! and approved, the live wait noticing each answer with JavaScript on),
//! then the same device approves an SSH login through pamtester and a VPN
//! login through radclient, and the page's own sign-in (JavaScript off:
//! Continue). Abandoning the flow after the device activated removes it.
//!
//! Screenshots go to `target/portal-screenshots/` (20-… to 26-…).

mod pam_support;
mod portal_support;
mod radius_support;

use fantoccini::{Client, Locator};
use pam_support::AtPrompt;
use portal_support::*;
use std::path::Path;
use std::time::{Duration, Instant};
use twostep_common::api::HostKind;
use twostep_common::push::{PushContext, StartPush, StartResult};
use twostep_e2e::block_on;

const NAS_SECRET: &str = "portal-push-nas-secret";
const DEVICE: &str = "Test phone";

use twostep_e2e::{authenticator as device, show_output as show};

/// The device answers the oldest request with `args` (`approve --number
/// N`, `deny`); asserts the word it prints.
fn answer(accounts: &Path, args: &[&str], word: &str) {
    let mut all = args.to_vec();
    all.extend(["--wait", "20"]);
    let out = device(accounts, &all);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        word,
        "{}",
        show(&out)
    );
}

/// The number the page shows to choose in the app.
async fn number_on(c: &Client) -> u8 {
    let t = c
        .find(Locator::Css(".push-number"))
        .await
        .expect("a number on the page")
        .text()
        .await
        .expect("text");
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number in {t:?}"))
}

/// Waits (at most 15 s) until the page's text contains `words`: the live
/// wait submits the page by itself.
async fn wait_for_text(c: &Client, words: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(e) = c.find(Locator::Css("body")).await {
            if let Ok(t) = e.text().await {
                if t.contains(words) {
                    return t;
                }
                assert!(Instant::now() < deadline, "no {words:?} in:\n{t}");
            }
        }
        assert!(Instant::now() < deadline, "no {words:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A host key's verdict on starting a push for `user` (a pending device
/// must not be reachable).
fn start_result(reg: &twostep_e2e::Registry, key: &Path, user: &str) -> StartResult {
    block_on(reg.host_client(key).start_push(&StartPush {
        username: user.into(),
        context: PushContext {
            service: Some("sshd".into()),
            ..PushContext::default()
        },
    }))
    .expect("start push")
    .result
}

#[test]
fn push_device_added_on_the_page_then_ssh_vpn_and_page_sign_in() {
    let env = radius_support::Env::with_api("[api.push]\nmax_challenges = 100\n");
    let reg = &env.reg;
    cli(
        reg,
        &["user", "add", "bob", "--display-name", "Bob Pushkin"],
        None,
    );
    let link = cli(reg, &["user", "invite", "bob"], None).trim().to_owned();
    let accounts_dir = tempfile::tempdir().expect("tmp");
    let accounts = accounts_dir.path().join("authenticator.json");
    let ssh_key = reg.add_host("push-ssh-host", HostKind::Ssh);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let a = rt.block_on(driver.browser_js(true));

    let uri = rt.block_on(async {
        a.goto(&link).await.expect("goto link");
        click(&a, "Continue").await;
        fill(&a, "new_password", PASSWORD).await;
        fill(&a, "confirm_password", PASSWORD).await;
        click(&a, "Next").await;
        assert_eq!(path(&a).await, "/my/security-info/app/start");
        // Choose the notifications app instead.
        a.goto(&format!("{}/my/security-info/add", reg.url))
            .await
            .expect("goto add");
        let t = text(&a).await;
        assert!(t.contains("Authenticator app – notifications"), "{t}");
        // Codes are preselected (the common apps); choose notifications.
        a.find(fantoccini::Locator::Css("input[name=method][value=push]"))
            .await
            .expect("the notifications choice")
            .click()
            .await
            .expect("choose");
        click(&a, "Add").await;
        assert_eq!(path(&a).await, "/my/security-info/push/start");
        let t = text(&a).await;
        assert!(
            t.contains("Start by getting the app") && t.contains("twostep authenticator"),
            "{t}"
        );
        shot(&a, "20-push-get-the-app").await;
        click(&a, "Next").await;
        assert!(text(&a).await.contains("Set up your account"));
        click(&a, "Next").await;
        assert_eq!(path(&a).await, "/my/security-info/push/qr");
        let uri = read_qr(&a).await;
        assert!(
            uri.starts_with("twostep-activate://activate?") && uri.contains("user=bob"),
            "{uri}"
        );
        shot(&a, "21-push-scan-qr").await;
        press(&a, "Can't scan image?").await;
        let t = text(&a).await;
        assert!(
            t.contains("Activation code") && t.contains(&uri),
            "the link to type by hand: {t}"
        );
        shot(&a, "22-push-cant-scan").await;
        // Next before the app has the account: says so, stays.
        click(&a, "Next").await;
        let t = text(&a).await;
        assert!(t.contains("Your app hasn't been added yet"), "{t}");
        // Back and Next again: the same activation code.
        click(&a, "Back").await;
        click(&a, "Next").await;
        assert_eq!(read_qr(&a).await, uri);
        uri
    });

    // The device activates: pending, so no login reaches it yet.
    let out = device(&accounts, &["add", &uri, "--name", DEVICE]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(method_count(reg, "bob"), 0, "pending device listed");
    assert_eq!(
        start_result(reg, &ssh_key, "bob"),
        StartResult::NotEnrolled,
        "a login reached the pending device"
    );

    rt.block_on(async {
        click(&a, "Next").await;
        assert_eq!(path(&a).await, "/my/security-info/push/notify");
        let t = text(&a).await;
        assert!(t.contains("Let's try it out") && t.contains(DEVICE), "{t}");
        let _ = number_on(&a).await;
        shot(&a, "23-push-try-it-out").await;
    });
    // Denied on the device: the live wait notices, the page says so.
    answer(&accounts, &["deny"], "denied");
    rt.block_on(wait_for_text(&a, "You denied the request"));
    assert_eq!(method_count(reg, "bob"), 0, "saved after a denial");
    let n = rt.block_on(async {
        click(&a, "Resend notification").await;
        number_on(&a).await
    });
    answer(
        &accounts,
        &["approve", "--number", &n.to_string()],
        "approved",
    );
    rt.block_on(async {
        let t = wait_for_text(&a, "Notification approved").await;
        assert_eq!(path(&a).await, "/my/security-info");
        assert!(
            t.contains("Default sign-in method: Authenticator app – notification"),
            "{t}"
        );
        assert!(t.contains(DEVICE), "{t}");
        shot(&a, "24-push-added").await;
        // Devices: where the device was last seen (its last poll).
        a.goto(&format!("{}/my/devices", reg.url))
            .await
            .expect("goto devices");
        let t = text(&a).await;
        assert!(
            t.contains("Last seen") && t.contains("from 127.0.0.1"),
            "{t}"
        );
        shot(&a, "27-push-devices").await;
    });
    let user = block_on(reg.admin_client().user("bob")).expect("user");
    assert_eq!(user.methods.len(), 1);
    assert!(user.methods[0].is_default);

    // SSH through pamtester: the device approves with the number shown.
    let pam_dir = tempfile::tempdir().expect("tmp");
    let cfg = pam_dir.path().join("pam.toml");
    std::fs::write(
        &cfg,
        format!("version = 1\n{}\n[pam]\n", reg.registry_toml(&ssh_key)),
    )
    .expect("pam config");
    std::fs::create_dir(pam_dir.path().join("svc")).expect("svc");
    std::fs::write(
        pam_dir.path().join("svc/push-ssh"),
        format!(
            "auth required {} config={}\n",
            pam_support::module().display(),
            cfg.display()
        ),
    )
    .expect("service");
    let sent = format!("Push sent to {DEVICE}: enter ");
    let after = " on your phone, then press Enter: ";
    let offer = format!("Press Enter to send a push to {DEVICE}: ");
    let approve_at_prompt: AtPrompt = Box::new(|shown: &str| {
        let start = shown.rfind(&sent).expect("number prompt") + sent.len();
        let rest = &shown[start..];
        let n = &rest[..rest.find(after).expect("prompt end")];
        answer(&accounts, &["approve", "--number", n], "approved");
        Some(String::new())
    });
    let r = pam_support::pamtester_script(
        &pam_dir.path().join("svc"),
        "push-ssh",
        "bob",
        Some("198.51.100.20"),
        vec![
            (offer.as_str(), Box::new(|_: &str| Some(String::new()))),
            (after, approve_at_prompt),
        ],
    );
    r.expect(true, "PAM_SUCCESS");

    // VPN through radclient (append mode: "password,push").
    let nas = env.secret_file("nas.secret", NAS_SECRET);
    let d = env.radiusd(
        "portal-push",
        &radius_support::client_toml("vpn", "127.0.0.1/32", &nas, "append", ""),
    );
    let r = radius_support::auth(d.port, NAS_SECRET, "bob", "pw,push", &[]);
    r.expect("Access-Challenge");
    let msg = r.attr("Reply-Message").expect("Reply-Message").to_owned();
    let n: String = msg.chars().filter(char::is_ascii_digit).collect();
    answer(&accounts, &["approve", "--number", &n], "approved");
    radius_support::radclient_with(
        d.port,
        NAS_SECRET,
        "auth",
        &[
            "User-Name = \"bob\"".into(),
            "User-Password = \"ok\"".into(),
            format!("State = {}", r.state()),
            "Message-Authenticator = 0x00".into(),
        ],
        40.0,
        1,
    )
    .expect("Access-Accept");

    // The page's sign-in by push, JavaScript off: Continue.
    let b = rt.block_on(driver.browser());
    let n = rt.block_on(async {
        b.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&b, "username", "bob").await;
        fill(&b, "password", PASSWORD).await;
        click(&b, "Sign in").await;
        assert_eq!(path(&b).await, "/my/sign-in/push");
        let t = text(&b).await;
        assert!(
            t.contains("Approve sign-in request") && t.contains(DEVICE),
            "{t}"
        );
        assert!(t.contains("JavaScript is off"), "says what to do: {t}");
        shot(&b, "25-push-sign-in").await;
        // Continue before the answer: not signed in.
        click(&b, "Continue").await;
        assert_eq!(path(&b).await, "/my/sign-in/push");
        let t = text(&b).await;
        assert!(t.contains("haven't received your answer"), "{t}");
        number_on(&b).await
    });
    // A wrong number is refused.
    let wrong = if n >= 99 { 10 } else { n + 1 };
    let out = device(
        &accounts,
        &["approve", "--number", &wrong.to_string(), "--wait", "20"],
    );
    assert!(!out.status.success(), "{}", show(&out));
    let n = rt.block_on(async {
        click(&b, "Continue").await;
        let t = text(&b).await;
        assert!(t.contains("didn't match"), "{t}");
        click(&b, "Send a request to my app").await;
        number_on(&b).await
    });
    answer(
        &accounts,
        &["approve", "--number", &n.to_string()],
        "approved",
    );
    rt.block_on(async {
        click(&b, "Continue").await;
        assert_eq!(path(&b).await, "/my/");
        let t = text(&b).await;
        assert!(t.contains("Bob Pushkin"), "{t}");
        shot(&b, "26-push-signed-in").await;
    });

    // Abandon a second device's flow after it activated: it is removed.
    let other_dir = tempfile::tempdir().expect("tmp");
    let other = other_dir.path().join("authenticator.json");
    let uri2 = rt.block_on(async {
        b.goto(&format!("{}/my/security-info/add", reg.url))
            .await
            .expect("goto add");
        b.find(fantoccini::Locator::Css("input[name=method][value=push]"))
            .await
            .expect("the notifications choice")
            .click()
            .await
            .expect("choose");
        click(&b, "Add").await;
        click(&b, "Next").await;
        click(&b, "Next").await;
        read_qr(&b).await
    });
    assert_ne!(uri2, uri);
    let out = device(&other, &["add", &uri2, "--name", "Old tablet"]);
    assert!(out.status.success(), "{}", show(&out));
    rt.block_on(async {
        click(&b, "Cancel").await;
        assert_eq!(path(&b).await, "/my/security-info");
        let t = text(&b).await;
        assert!(!t.contains("Old tablet"), "{t}");
    });
    let out = device(&other, &["pending", "--wait", "0"]);
    assert!(
        !out.status.success() && show(&out).contains("no such device"),
        "the abandoned device still polls: {}",
        show(&out)
    );
    assert_eq!(method_count(reg, "bob"), 1);
    rt.block_on(async {
        a.close().await.expect("close");
        b.close().await.expect("close");
    });
    let log = reg.log();
    let code = uri
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .expect("code in the URI");
    assert!(!log.contains(code), "the activation code reached the log");
}
