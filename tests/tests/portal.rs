//! The Security info pages in a real headless Chromium (chromedriver over
//! WebDriver, JavaScript turned off in the browser), against the real
//! `twostep-api`: setup link → password → authenticator app (QR decoded
//! with zbarimg, codes from oathtool) → the same user through pamtester
//! and radclient → sign out everywhere. Plus escaping, CSRF, the sign-in
//! rate limit, the same answer for unknown users, abandoned flows, cookie
//! flags over TLS and sessions shared by registry nodes on PostgreSQL.
//!
//! Screenshots of each step (1366×900 and 390×844) go to
//! `target/portal-screenshots/`.

mod pam_support;
mod portal_support;
mod radius_support;

use fantoccini::Locator;
use portal_support::*;
use std::process::Command;
use std::time::Instant;
use twostep_common::api::HostKind;
use twostep_e2e::{Registry, RegistryOptions};
const NAS_SECRET: &str = "portal-nas-secret-1";

// ---- the whole flow ------------------------------------------------------------

#[test]
fn invite_to_authenticator_app_to_ssh_and_vpn_then_sign_out_everywhere() {
    let env = radius_support::Env::new();
    let reg = &env.reg;
    cli(
        reg,
        &["user", "add", "alice", "--display-name", "Alice Charon"],
        None,
    );
    let link = cli(reg, &["user", "invite", "alice"], None)
        .trim()
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/my/invite/", reg.url)),
        "{link}"
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let a = rt.block_on(driver.browser());
    let mut last_step = 0u64;

    let secret = rt.block_on(async {
        // The link: what it is for, and Continue.
        a.goto(&link).await.expect("goto link");
        assert!(text(&a).await.contains("Set up your security info"));
        shot(&a, "01-invite").await;
        click(&a, "Continue").await;
        // Choose a password.
        assert_eq!(path(&a).await, "/my/welcome");
        fill(&a, "new_password", "alice-password-1").await;
        fill(&a, "confirm_password", "alice-password-1").await;
        click(&a, "Next").await;
        let t = text(&a).await;
        assert!(t.contains("Don't use your name or username"), "{t}");
        fill(&a, "new_password", PASSWORD).await;
        fill(&a, "confirm_password", PASSWORD).await;
        shot(&a, "02-choose-password").await;
        click(&a, "Next").await;
        // Straight into "Authenticator app".
        assert_eq!(path(&a).await, "/my/security-info/app/start");
        let t = text(&a).await;
        assert!(t.contains("Start by getting the app"), "{t}");
        assert!(
            t.contains("Microsoft Authenticator") && t.contains("Aegis"),
            "{t}"
        );
        shot(&a, "03-get-the-app").await;
        click(&a, "Next").await;
        assert!(text(&a).await.contains("Set up your account"));
        shot(&a, "04-set-up-account").await;
        // Back works, and Next again.
        click(&a, "Back").await;
        assert!(text(&a).await.contains("Start by getting the app"));
        click(&a, "Next").await;
        click(&a, "Next").await;
        assert!(text(&a).await.contains("Scan the QR code"));
        shot(&a, "05-scan-qr").await;
        let uri = read_qr(&a).await;
        assert!(
            uri.starts_with("otpauth://totp/twostep:alice?secret="),
            "{uri}"
        );
        let secret = secret_of(&uri);
        // Can't scan image? shows the same key in groups of four.
        press(&a, "Can't scan image?").await;
        let t = text(&a).await;
        let grouped: Vec<String> = secret
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert!(t.contains(&grouped.join(" ")), "{t}");
        assert!(t.contains("Account name") && t.contains("Issuer"), "{t}");
        shot(&a, "06-cant-scan").await;
        // Back from the QR step and Next again: the same secret.
        click(&a, "Back").await;
        click(&a, "Next").await;
        assert_eq!(secret_of(&read_qr(&a).await), secret);
        click(&a, "Next").await;
        assert!(text(&a).await.contains("Let's try it out"));
        // A wrong code first: refused, nothing saved.
        fill(&a, "code", &pam_support::wrong_code(&secret)).await;
        click(&a, "Next").await;
        let wrong = text(&a).await;
        assert!(wrong.contains("That code didn't work"), "{wrong}");
        shot(&a, "07-try-it-out").await;
        secret
    });
    assert_eq!(
        method_count(reg, "alice"),
        0,
        "saved before the code was proven"
    );
    let code = next_code(&secret, &mut last_step);
    rt.block_on(async {
        fill(&a, "code", &code).await;
        click(&a, "Next").await;
        assert_eq!(path(&a).await, "/my/security-info");
        let t = text(&a).await;
        assert!(t.contains("Authenticator app added"), "{t}");
        assert!(
            t.contains("Default sign-in method: Authenticator app – code"),
            "{t}"
        );
        assert!(t.contains("Last used"), "{t}");
        shot(&a, "08-security-info").await;
    });
    let user = twostep_e2e::block_on(reg.admin_client().user("alice")).expect("user");
    assert_eq!(user.methods.len(), 1);
    assert!(user.methods[0].is_default);

    // The code that proved the app is used up: SSH refuses it (replay).
    let pam_key = reg.add_host("portal-pam-host", HostKind::Ssh);
    let pam_dir = tempfile::tempdir().expect("tmp");
    let cfg = pam_dir.path().join("pam.toml");
    std::fs::write(
        &cfg,
        format!("version = 1\n{}\n[pam]\n", reg.registry_toml(&pam_key)),
    )
    .expect("pam config");
    std::fs::create_dir(pam_dir.path().join("svc")).expect("svc");
    std::fs::write(
        pam_dir.path().join("svc/portal-ssh"),
        format!(
            "auth required {} config={}\n",
            pam_support::module().display(),
            cfg.display()
        ),
    )
    .expect("service");
    let svc = pam_dir.path().join("svc");
    let r = pam_support::pamtester(&svc, "portal-ssh", "alice", None, &format!("{code}\n"), &[]);
    r.expect(false, "PAM_AUTH_ERR");
    // SSH with the next code.
    let ssh_code = next_code(&secret, &mut last_step);
    let r = pam_support::pamtester(
        &svc,
        "portal-ssh",
        "alice",
        Some("198.51.100.9"),
        &format!("{ssh_code}\n"),
        &[],
    );
    r.expect(true, "PAM_SUCCESS");
    // VPN with the one after.
    let nas = env.secret_file("nas.secret", NAS_SECRET);
    let d = env.radiusd(
        "portal",
        &radius_support::client_toml("vpn", "127.0.0.1/32", &nas, "otp-only", ""),
    );
    let vpn_code = next_code(&secret, &mut last_step);
    radius_support::auth(d.port, NAS_SECRET, "alice", &vpn_code, &[]).expect("Access-Accept");

    // A second browser signs in with password and code.
    let b = rt.block_on(driver.browser());
    let sign_in_code = next_code(&secret, &mut last_step);
    rt.block_on(async {
        b.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        shot(&b, "00-sign-in").await;
        fill(&b, "username", "alice").await;
        fill(&b, "password", PASSWORD).await;
        click(&b, "Sign in").await;
        assert_eq!(path(&b).await, "/my/sign-in/code");
        assert!(text(&b).await.contains("Enter code"));
        shot(&b, "09-enter-code").await;
        let before = session_cookie(&b).await;
        fill(&b, "code", &sign_in_code).await;
        click(&b, "Verify").await;
        // The session id changed with the second factor; the old one is dead.
        let after = session_cookie(&b).await;
        assert_ne!(before, after);
        let old = Web::new(&reg.url, None);
        old.jar
            .lock()
            .unwrap()
            .insert("twostep-session".into(), before);
        let r = old.get("/my/").await;
        assert!(r.body.contains("Your session ended"), "{}", r.body);
        let t = text(&b).await;
        assert!(
            t.contains("Alice Charon") && t.contains("UPDATE INFO"),
            "{t}"
        );
        shot(&b, "10-my-profile").await;
        for (page, name) in [
            ("/my/devices", "11-devices"),
            ("/my/password", "12-password"),
            ("/my/privacy", "13-privacy"),
            ("/my/security-info/add", "14-add-method"),
        ] {
            b.goto(&format!("{}{page}", reg.url)).await.expect("goto");
            assert_eq!(path(&b).await, page, "fresh factor: no re-verification yet");
            shot(&b, name).await;
        }
        let t = text(&b).await;
        assert!(t.contains("Which method would you like to add?"), "{t}");
        b.goto(&format!("{}/my/privacy", reg.url))
            .await
            .expect("goto");
        let t = text(&b).await;
        assert!(
            t.contains("Code checked (portal-ssh"),
            "SSH login in the activity: {t}"
        );
        assert!(t.contains("Authenticator app added"), "{t}");

        // Delete confirmation for the only method says what it means.
        b.goto(&format!("{}/my/security-info", reg.url))
            .await
            .expect("goto");
        click(&b, "Delete Authenticator app").await;
        let t = text(&b).await;
        assert!(
            t.contains("SSH and VPN logins") && t.contains("only two-step"),
            "{t}"
        );
        shot(&b, "15-delete-last-method").await;
        click(&b, "Cancel").await;

        // The first browser signs out everywhere.
        a.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        click(&a, "Sign out everywhere").await;
        shot(&a, "16-sign-out-everywhere").await;
        click(&a, "Sign out everywhere").await;
        let t = text(&a).await;
        assert!(t.contains("You've been signed out everywhere."), "{t}");
        // ...which ended the second browser's session too.
        b.goto(&format!("{}/my/security-info", reg.url))
            .await
            .expect("goto");
        assert_eq!(path(&b).await, "/my/");
        let t = text(&b).await;
        assert!(
            t.contains("Sign in") && t.contains("Your session ended"),
            "{t}"
        );
        a.close().await.expect("close");
        b.close().await.expect("close");
    });
    assert_eq!(
        method_count(reg, "alice"),
        1,
        "cancelled delete kept the method"
    );
    let log = reg.log();
    assert!(!log.contains(&secret), "the secret reached the log");
    assert!(!log.contains(PASSWORD), "the password reached the log");
}

// ---- abandoned flows -----------------------------------------------------------

#[test]
fn back_from_the_qr_step_and_abandon_saves_nothing() {
    let reg = Registry::start();
    // bob: password only. carol: an authenticator app enrolled by the admin.
    cli(
        &reg,
        &["user", "add", "bob", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    cli(&reg, &["user", "add", "carol"], None);
    cli(
        &reg,
        &["user", "passwd", "carol"],
        Some(&format!("{PASSWORD}\n")),
    );
    let carol = reg.enrol_totp("carol");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser());
    let mut last = 0;
    rt.block_on(async {
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&c, "username", "bob").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        // No method yet: straight to Security info.
        assert_eq!(path(&c).await, "/my/security-info");
        assert!(text(&c)
            .await
            .contains("You haven't set up a sign-in method yet"));
        shot(&c, "20-no-method-yet").await;
        click(&c, "Add sign-in method").await;
        click(&c, "Add").await;
        click(&c, "Next").await;
        click(&c, "Next").await;
        assert!(text(&c).await.contains("Scan the QR code"));
        click(&c, "Back").await;
        assert!(text(&c).await.contains("Set up your account"));
        // Abandon: go elsewhere.
        c.goto(&format!("{}/my/security-info", reg.url))
            .await
            .expect("goto");
        assert!(text(&c)
            .await
            .contains("You haven't set up a sign-in method yet"));
        // Cancel from the QR step ends the flow: its pages are gone.
        click(&c, "Add sign-in method").await;
        click(&c, "Add").await;
        click(&c, "Next").await;
        click(&c, "Next").await;
        click(&c, "Cancel").await;
        c.goto(&format!("{}/my/security-info/app/qr", reg.url))
            .await
            .expect("goto");
        assert_eq!(path(&c).await, "/my/security-info/add");
        click(&c, "Sign out").await;
    });
    assert_eq!(method_count(&reg, "bob"), 0);

    let code = next_code(&carol.secret_base32, &mut last);
    rt.block_on(async {
        fill(&c, "username", "carol").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        fill(&c, "code", &code).await;
        click(&c, "Verify").await;
        c.goto(&format!("{}/my/security-info/add", reg.url))
            .await
            .expect("goto");
        click(&c, "Add").await;
        click(&c, "Next").await;
        click(&c, "Next").await;
        assert!(text(&c).await.contains("Scan the QR code"));
        click(&c, "Back").await;
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
    });
    // carol's working method is untouched and still the default.
    let user = twostep_e2e::block_on(reg.admin_client().user("carol")).expect("carol");
    assert_eq!(user.methods.len(), 1);
    assert!(user.methods[0].is_default);
    assert_eq!(user.methods[0].id, carol.method.id);

    // Devices: a push device (as the push side registers them) is
    // disabled, enabled again and removed; the default can be changed.
    let db = reg.dir.path().join("registry.db");
    let sql = |q: &str| {
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(q)
            .output()
            .expect("sqlite3");
        assert!(out.status.success(), "{q}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    sql("INSERT INTO methods (user_id, kind, label, is_default, created_at)
         SELECT id, 'push', 'Carol''s phone', 0, strftime('%s','now') FROM users WHERE username = 'carol'");
    let phone = "SELECT disabled FROM methods WHERE kind = 'push'";
    rt.block_on(async {
        c.goto(&format!("{}/my/devices", reg.url))
            .await
            .expect("goto");
        assert!(text(&c).await.contains("Carol's phone"));
        shot(&c, "21-devices").await;
        click(&c, "Disable lost device Carol's phone").await;
        assert!(text(&c).await.contains("The device is disabled"));
    });
    assert_eq!(sql(phone), "1");
    rt.block_on(async {
        shot(&c, "22-device-disabled").await;
        click(&c, "Enable Carol's phone").await;
    });
    assert_eq!(sql(phone), "0");
    rt.block_on(async {
        c.goto(&format!("{}/my/security-info/default", reg.url))
            .await
            .expect("goto");
        shot(&c, "23-change-default").await;
        c.find(Locator::Css("input[name=method_id]:not(:checked)"))
            .await
            .expect("the other method")
            .click()
            .await
            .expect("choose");
        click(&c, "Confirm").await;
        let t = text(&c).await;
        assert!(
            t.contains("Default sign-in method: Authenticator app – notification"),
            "{t}"
        );
        c.goto(&format!("{}/my/devices", reg.url))
            .await
            .expect("goto");
        click(&c, "Remove Carol's phone").await;
        click(&c, "Remove").await;
        assert!(text(&c).await.contains("The device was removed."));
        c.close().await.expect("close");
    });
    assert_eq!(sql("SELECT COUNT(*) FROM methods WHERE kind = 'push'"), "0");
    let user = twostep_e2e::block_on(reg.admin_client().user("carol")).expect("carol");
    assert_eq!(user.methods.len(), 1);
    assert!(user.methods[0].is_default, "the app is the default again");
}

// ---- escaping, CSRF, rate limit, same answer ---------------------------------------

#[test]
fn html_escaped_csrf_required_rate_limited_same_answer() {
    let reg = Registry::start();
    let evil = "<script>alert(1)</script>";
    cli(
        &reg,
        &["user", "add", "mallory", "--display-name", evil],
        None,
    );
    cli(
        &reg,
        &["user", "passwd", "mallory"],
        Some(&format!("{PASSWORD}\n")),
    );
    cli(
        &reg,
        &["user", "add", "dave", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser());
    rt.block_on(async {
        // The display name is shown as text.
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&c, "username", "mallory").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        let name = c
            .find(Locator::Id("profile-name"))
            .await
            .expect("name")
            .text()
            .await
            .expect("text");
        assert_eq!(name, evil);
        let src = c.source().await.expect("source");
        assert!(!src.contains(evil) && src.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        shot(&c, "30-escaped-name").await;
    });

    let web = Web::new(&reg.url, None);
    rt.block_on(async {
        // Headers of every page.
        let page = web.get("/my/").await;
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["cache-control"], "no-store");
        let at = page
            .body
            .find("/my/static/portal.css?v=")
            .expect("stylesheet link");
        let href = page.body[at..].split('"').next().expect("href").to_owned();
        let css = web.get(&href).await;
        assert_eq!(css.status, 200);
        assert!(css.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000"));

        // Without the CSRF token (or with another visitor's): 403.
        let token = csrf(&page.body);
        let r = web
            .post(
                "/my/sign-in",
                &[("username", "dave"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("This form has expired"));
        let other = Web::new(&reg.url, None);
        let other_token = csrf(&other.get("/my/").await.body);
        let r = web
            .post(
                "/my/sign-in",
                &[
                    ("csrf", &other_token),
                    ("username", "dave"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, 403);
        // Signed in, a form without its token is refused and changes nothing.
        let r = web
            .post(
                "/my/sign-in",
                &[
                    ("csrf", &token),
                    ("username", "dave"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!((r.status, location(&r)), (303, "/my/security-info"));
        let set = r.headers["set-cookie"].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let r = web.post("/my/sign-out-everywhere", &[]).await;
        assert_eq!(r.status, 403);
        let r = web.get("/my/security-info").await;
        assert_eq!(r.status, 200, "still signed in");

        // Unknown user and wrong password: the same page, in similar time.
        let anon = Web::new(&reg.url, None);
        let t = csrf(&anon.get("/my/").await.body);
        let started = Instant::now();
        let wrong = anon
            .post(
                "/my/sign-in",
                &[
                    ("csrf", &t),
                    ("username", "dave"),
                    ("password", "not the password"),
                ],
            )
            .await;
        let wrong_took = started.elapsed();
        let started = Instant::now();
        let unknown = anon
            .post(
                "/my/sign-in",
                &[
                    ("csrf", &t),
                    ("username", "nosuchuser"),
                    ("password", "not the password"),
                ],
            )
            .await;
        let unknown_took = started.elapsed();
        assert_eq!(wrong.status, unknown.status);
        assert_eq!(
            wrong.body.replace("value=\"dave\"", ""),
            unknown.body.replace("value=\"nosuchuser\"", "")
        );
        assert!(wrong
            .body
            .contains("Your username or password is incorrect."));
        assert!(
            unknown_took * 3 > wrong_took,
            "unknown user answered in {unknown_took:?}, wrong password in {wrong_took:?}"
        );
    });

    // Ten wrong passwords for dave (one above, eight here, the tenth from
    // the browser): rate limited, even with the right password afterwards.
    let web = Web::new(&reg.url, None);
    rt.block_on(async {
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        click(&c, "Sign out").await;
        for _ in 0..8 {
            let r = web.sign_in("dave", "wrong wrong wrong").await;
            assert!(r.body.contains("Your username or password is incorrect."));
        }
        fill(&c, "username", "dave").await;
        fill(&c, "password", "wrong wrong wrong").await;
        click(&c, "Sign in").await;
        assert!(text(&c)
            .await
            .contains("Your username or password is incorrect."));
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        let t = text(&c).await;
        assert!(t.contains("Too many sign-in attempts"), "{t}");
        shot(&c, "31-rate-limited").await;
        let r = web.sign_in("dave", PASSWORD).await;
        assert_eq!(r.status, 429);
        // Unknown names are limited the same way.
        for _ in 0..10 {
            web.sign_in("ghost", "wrong wrong wrong").await;
        }
        assert_eq!(web.sign_in("ghost", "wrong wrong wrong").await.status, 429);
        c.close().await.expect("close");
    });
}

// ---- TLS cookie flags ------------------------------------------------------------

#[test]
fn cookies_are_secure_and_host_prefixed_over_tls() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let reg = Registry::start_opts(RegistryOptions {
        tls: Some((cert.cert.pem(), cert.key_pair.serialize_pem())),
        ..RegistryOptions::default()
    });
    let web = Web::new(&reg.url, reg.ca_file.as_deref());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let admin = reg.admin_client();
        admin
            .create_user(&twostep_common::api::CreateUser {
                username: "erin".into(),
                display_name: None,
            })
            .await
            .expect("add erin");
        admin
            .set_password(
                "erin",
                &twostep_common::portal::SetPassword {
                    password: PASSWORD.into(),
                },
            )
            .await
            .expect("set password");
        let page = web.get("/my/").await;
        let pre = page.headers["set-cookie"].to_str().unwrap().to_owned();
        assert!(pre.starts_with("__Host-twostep-pre="), "{pre}");
        let r = web.sign_in("erin", PASSWORD).await;
        assert_eq!(r.status, 303);
        let session = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("__Host-twostep-session="))
            .expect("session cookie");
        for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(session.contains(flag), "{flag} missing: {session}");
        }
        assert_eq!(web.get("/my/security-info").await.status, 200);
    });
}

// ---- sessions on several nodes -----------------------------------------------------

#[test]
fn sessions_are_shared_by_registry_nodes_on_postgresql() {
    let db = twostep_e2e::fresh_postgres_database();
    let first = Registry::start_with(Some(&db), "");
    let second = first.start_replica("");
    cli(
        &first,
        &["user", "add", "frank", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let on_first = Web::new(&first.url, None);
        let r = on_first.sign_in("frank", PASSWORD).await;
        assert_eq!(r.status, 303);
        // The same cookies on the other node: the same session.
        let on_second = Web::new(&second.url, None);
        *on_second.jar.lock().unwrap() = on_first.jar.lock().unwrap().clone();
        let page = on_second.get("/my/security-info").await;
        assert_eq!(page.status, 200, "{}", page.body);
        // Sign out everywhere on the second node ends it on the first.
        let r = on_second
            .post("/my/sign-out-everywhere", &[("csrf", &csrf(&page.body))])
            .await;
        assert_eq!((r.status, location(&r)), (303, "/my/?done=everywhere"));
        let r = on_first.get("/my/security-info").await;
        assert_eq!((r.status, location(&r)), (303, "/my/"));
    });
}

/// A GET on a path that only takes a form's POST (the address left in the
/// bar after a wrong password, reloaded or bookmarked) is a 303 to the
/// page that shows the form, never a blank 405.
#[test]
fn get_on_a_form_address_goes_to_its_page() {
    let reg = Registry::start();
    cli(
        &reg,
        &["user", "add", "gina", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let web = Web::new(&reg.url, None);
        // The reported case: a wrong password, then the address reloaded.
        let r = web.sign_in("gina", "not-the-password").await;
        assert_ne!(r.status, 405);
        for (path, page) in [
            ("/my/sign-in", "/my/"),
            ("/my/invite", "/my/"),
            ("/my/sign-out", "/my/"),
            ("/my/sign-in/code/send", "/my/sign-in/code"),
            ("/my/sign-in/push/resend", "/my/sign-in/push"),
            ("/my/verify/push", "/my/verify"),
            ("/my/verify/push/resend", "/my/verify"),
            ("/my/verify/security-key", "/my/verify"),
            ("/my/reset/email/send", "/my/reset/email"),
            ("/my/reset/push/send", "/my/reset/verify"),
            ("/my/reset/phone/send", "/my/reset/verify"),
            ("/my/reset/phone/resend", "/my/reset/phone"),
            ("/my/security-info/backup-codes", "/my/security-info"),
            (
                "/my/security-info/security-key/finish",
                "/my/security-info/security-key",
            ),
            ("/my/devices/1/disable", "/my/devices"),
        ] {
            let r = web.get(path).await;
            assert_eq!((r.status, location(&r)), (303, page), "GET {path}");
        }
        // The page it leads to answers (the sign-in form, signed out).
        let r = web.get("/my/").await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("name=\"password\""), "{}", r.body);
    });
}
