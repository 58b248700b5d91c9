//! Security keys (WebAuthn / FIDO2) on the Security info pages, in a real
//! headless Chromium (JavaScript on) with Chromium's virtual authenticator
//! (the WebDriver WebAuthn extension of chromedriver: CTAP2 over USB),
//! against the real `twostep-api` with `[api.portal.webauthn] origin =
//! "http://localhost:PORT"` (a port in the origin): add a key, sign out,
//! sign in with password and key; resident and non-resident credentials;
//! with and without user verification, `user_verification = "required"`
//! refusing a key without it; the same key twice refused; the key as the
//! default method and as the fresh second factor; a removed key no longer
//! signs in; a cloned key (its counter going backwards) refused. Asserts
//! the database, the audit trail and what the page says.
//!
//! Screenshots go to `target/portal-screenshots/` (40-… to 49-…).

mod portal_support;

use fantoccini::Client;
use portal_support::*;
use serde_json::{json, Value};
use std::process::Command;
use twostep_common::api::MethodKind;
use twostep_e2e::{block_on, Registry};

const KEY_NAME: &str = "YubiKey 5";

/// A registry whose pages offer security keys at `http://localhost:PORT`,
/// with `user_verification = uv`, and user alice with a page password.
fn registry(uv: &str) -> Registry {
    registry_on(None, uv)
}

/// As [`registry`], on database `db` (None: SQLite).
fn registry_on(db: Option<&str>, uv: &str) -> Registry {
    let reg = Registry::start_with(
        db,
        &format!(
            "[api.portal.webauthn]\norigin = \"http://localhost:{{port}}\"\nuser_verification = \"{uv}\"\n"
        ),
    );
    cli(
        &reg,
        &["user", "add", "alice", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    reg
}

fn base(reg: &Registry) -> String {
    format!("http://localhost:{}", reg.port)
}

/// One value from the registry's SQLite database (`sqlite3`).
fn sql(reg: &Registry, query: &str) -> String {
    let db = reg.dir.path().join("registry.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(query)
        .output()
        .expect("run sqlite3 (apt-get install sqlite3)");
    assert!(out.status.success(), "sqlite3: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The stored credential's signature counter.
fn stored_counter(reg: &Registry, label: &str) -> u64 {
    let json = sql(
        reg,
        &format!(
            "SELECT credential FROM methods WHERE kind = 'security_key' AND label = '{label}'"
        ),
    );
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["cred"]["counter"].as_u64().expect("counter")
}

/// The newest audit records (newest first) of `action`.
async fn audit(reg: &Registry, action: &str) -> Vec<twostep_common::api::AuditEvent> {
    reg.admin_client()
        .audit(200)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

async fn key_methods(reg: &Registry) -> Vec<twostep_common::api::Method> {
    reg.admin_client()
        .user("alice")
        .await
        .expect("user")
        .methods
        .into_iter()
        .filter(|m| m.kind == MethodKind::SecurityKey)
        .collect()
}

// ---- Chromium's virtual authenticator (WebDriver WebAuthn extension) ----------

/// A virtual authenticator in one browser session.
struct Authenticator {
    url: String,
}

impl Authenticator {
    /// Adds a CTAP2 USB authenticator to `c`'s session: the user always
    /// touches it; it verifies the user when `uv`.
    async fn add(driver: &Driver, c: &Client, resident: bool, uv: bool) -> Authenticator {
        let sid = c
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let session = format!("http://127.0.0.1:{}/session/{sid}", driver.port());
        let v = webdriver(
            reqwest::Method::POST,
            &format!("{session}/webauthn/authenticator"),
            Some(json!({
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": resident,
                "hasUserVerification": uv,
                "isUserConsenting": true,
                "isUserVerified": uv,
            })),
        )
        .await;
        let id = v.as_str().expect("authenticator id");
        Authenticator {
            url: format!("{session}/webauthn/authenticator/{id}"),
        }
    }

    async fn credentials(&self) -> Vec<Value> {
        webdriver(
            reqwest::Method::GET,
            &format!("{}/credentials", self.url),
            None,
        )
        .await
        .as_array()
        .expect("credentials")
        .clone()
    }

    async fn remove_all(&self) {
        webdriver(
            reqwest::Method::DELETE,
            &format!("{}/credentials", self.url),
            None,
        )
        .await;
    }

    async fn add_credential(&self, cred: Value) {
        webdriver(
            reqwest::Method::POST,
            &format!("{}/credential", self.url),
            Some(cred),
        )
        .await;
    }

    async fn remove(self) {
        webdriver(reqwest::Method::DELETE, &self.url, None).await;
    }
}

async fn webdriver(method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
    let http = reqwest::Client::new();
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("chromedriver");
    let status = resp.status();
    let v: Value = resp.json().await.expect("chromedriver JSON");
    assert!(status.is_success(), "{url}: {status} {v}");
    v["value"].clone()
}

// ---- page steps -----------------------------------------------------------------

async fn sign_in_password(c: &Client, reg: &Registry) {
    c.goto(&format!("{}/my/", base(reg))).await.expect("goto");
    fill(c, "username", "alice").await;
    fill(c, "password", PASSWORD).await;
    click(c, "Sign in").await;
}

async fn sign_out(c: &Client) {
    click(c, "Sign out").await;
    assert!(text(c).await.contains("You've signed out."));
}

/// Security info → Add → Security key → name → Use my security key; the
/// page it ends on.
async fn add_key(c: &Client, reg: &Registry, name: &str, shots: Option<&str>) -> String {
    c.goto(&format!("{}/my/security-info/add", base(reg)))
        .await
        .expect("goto");
    let choice = c
        .find(fantoccini::Locator::Css("input[value='security-key']"))
        .await
        .expect("Security key offered on Add a method");
    choice.click().await.expect("choose");
    if let Some(prefix) = shots {
        shot(c, &format!("{prefix}-add-method")).await;
    }
    click(c, "Add").await;
    assert_eq!(path(c).await, "/my/security-info/security-key");
    assert!(text(c).await.contains("Name your security key"));
    fill(c, "label", name).await;
    if let Some(prefix) = shots {
        shot(c, &format!("{prefix}-name-key")).await;
    }
    click(c, "Next").await;
    let t = text(c).await;
    assert!(t.contains("Use your security key"), "{t}");
    assert!(t.contains(name), "{t}");
    if let Some(prefix) = shots {
        shot(c, &format!("{prefix}-use-key")).await;
    }
    click(c, "Use my security key").await;
    text(c).await
}

// ---- the tests ------------------------------------------------------------------------

#[test]
fn a_key_is_added_then_signs_in_with_the_password() {
    let reg = registry("preferred");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        let auth = Authenticator::add(&driver, &c, false, true).await;
        sign_in_password(&c, &reg).await;
        // No method yet: straight to Security info, where a key is offered.
        assert_eq!(path(&c).await, "/my/security-info");
        // A name is required.
        c.goto(&format!("{}/my/security-info/security-key", base(&reg)))
            .await
            .expect("goto");
        fill(&c, "label", "   ").await;
        click(&c, "Next").await;
        assert!(text(&c).await.contains("Give your security key a name"));

        let t = add_key(&c, &reg, KEY_NAME, Some("40")).await;
        assert_eq!(path(&c).await, "/my/security-info", "{t}\n{}", reg.log());
        assert!(t.contains("Security key added"), "{t}");
        assert!(t.contains(KEY_NAME), "{t}");
        assert!(
            t.contains("Default sign-in method: Security key – WebAuthn"),
            "{t}"
        );
        shot(&c, "41-security-info-with-key").await;

        // The key in the database: its credential id is the authenticator's.
        let creds = auth.credentials().await;
        assert_eq!(creds.len(), 1, "{creds:?}");
        assert_eq!(creds[0]["isResidentCredential"], false);
        assert_eq!(creds[0]["rpId"], "localhost");
        let stored_id = sql(
            &reg,
            "SELECT credential_id FROM methods WHERE kind = 'security_key'",
        );
        assert_eq!(
            stored_id.trim_end_matches('='),
            creds[0]["credentialId"]
                .as_str()
                .unwrap()
                .trim_end_matches('=')
        );
        assert_eq!(
            sql(&reg, "SELECT COUNT(*) FROM webauthn_ceremonies"),
            "0",
            "the ceremony was used up"
        );
        let keys = key_methods(&reg).await;
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].label, KEY_NAME);
        assert!(keys[0].is_default);
        let added = audit(&reg, "security_key.enrol").await;
        assert_eq!(added.len(), 1, "{added:?}");
        assert_eq!(added[0].actor, "user:alice");
        assert_eq!(added[0].result.as_deref(), Some("ok"));
        let counter_after_add = stored_counter(&reg, KEY_NAME);

        // The Privacy page lists it.
        c.goto(&format!("{}/my/privacy", base(&reg)))
            .await
            .expect("goto");
        assert!(text(&c).await.contains("Security key added"));

        // Sign out, sign in: password, then the key (the code step sends
        // a key-only user to the key).
        sign_out(&c).await;
        sign_in_password(&c, &reg).await;
        assert_eq!(path(&c).await, "/my/sign-in/security-key");
        c.goto(&format!("{}/my/sign-in/code", base(&reg)))
            .await
            .expect("goto");
        assert_eq!(path(&c).await, "/my/sign-in/security-key");
        let t = text(&c).await;
        assert!(
            t.contains("Use your security key") && t.contains(KEY_NAME),
            "{t}"
        );
        shot(&c, "42-sign-in-with-key").await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/");
        assert!(text(&c).await.contains("My Profile"));
        let signed = audit(&reg, "portal.sign_in").await;
        let with_key: Vec<_> = signed
            .iter()
            .filter(|e| e.result.as_deref() == Some("security_key"))
            .collect();
        assert_eq!(with_key.len(), 1, "{signed:?}");
        assert_eq!(with_key[0].actor, "user:alice");
        assert!(
            stored_counter(&reg, KEY_NAME) > counter_after_add,
            "the counter moved forward"
        );
        assert_ne!(
            sql(
                &reg,
                "SELECT COALESCE(last_used_at, 0) FROM methods WHERE kind = 'security_key'"
            ),
            "0"
        );
        // Security info opens (the key was the fresh factor).
        c.goto(&format!("{}/my/security-info", base(&reg)))
            .await
            .expect("goto");
        assert_eq!(path(&c).await, "/my/security-info");
        assert!(text(&c).await.contains("Page only"), "where the key counts");
        // Deleting the only key asks first and says what it means.
        click(&c, &format!("Delete {KEY_NAME}")).await;
        let t = text(&c).await;
        assert!(
            t.contains("only two-step verification method, and it works on this page only")
                && t.contains("password alone"),
            "{t}"
        );
        click(&c, "Cancel").await;
        assert_eq!(key_methods(&reg).await.len(), 1);
    });
    // Not for SSH and VPN: the registry answers hosts that alice is not
    // enrolled there (the place table of main).
    let methods = block_on(reg.admin_client().user("alice"))
        .expect("user")
        .methods;
    assert_eq!(
        twostep_common::methods::enrolled_places(&methods),
        vec![twostep_common::methods::Place::Page]
    );
}

#[test]
fn resident_and_non_resident_keys_with_and_without_user_verification() {
    let reg = registry("preferred");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        // A key that cannot verify the user (touch only), keeping resident
        // credentials.
        let plain = Authenticator::add(&driver, &c, true, false).await;
        sign_in_password(&c, &reg).await;
        let t = add_key(&c, &reg, "Touch-only key", None).await;
        assert!(t.contains("Security key added"), "{t}");
        let creds = plain.credentials().await;
        assert_eq!(creds.len(), 1);
        // Make it a resident credential (as keys that keep every credential
        // do): the same private key and id, stored on the key with the
        // user's handle.
        let mut cred = creds[0].clone();
        cred["isResidentCredential"] = json!(true);
        let handle = sql(
            &reg,
            "SELECT webauthn_user_id FROM users WHERE username = 'alice'",
        );
        assert_eq!(handle.len(), 36, "a UUID user handle: {handle}");
        let uuid = handle.replace('-', "");
        let bytes: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&uuid[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        cred["userHandle"] = json!(data_encoding::BASE64URL_NOPAD.encode(&bytes));
        plain.remove_all().await;
        plain.add_credential(cred).await;
        assert_eq!(plain.credentials().await[0]["isResidentCredential"], true);
        sign_out(&c).await;
        sign_in_password(&c, &reg).await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/", "{}", text(&c).await);
        plain.remove().await;

        // A second key that verifies the user (PIN or fingerprint).
        let verifying = Authenticator::add(&driver, &c, false, true).await;
        let t = add_key(&c, &reg, "Key with PIN", None).await;
        assert!(t.contains("Security key added"), "{t}");
        assert_eq!(key_methods(&reg).await.len(), 2);
        let cred: Value = serde_json::from_str(&sql(
            &reg,
            "SELECT credential FROM methods WHERE label = 'Key with PIN'",
        ))
        .unwrap();
        assert_eq!(cred["cred"]["user_verified"], true, "{cred}");
        let cred: Value = serde_json::from_str(&sql(
            &reg,
            "SELECT credential FROM methods WHERE label = 'Touch-only key'",
        ))
        .unwrap();
        assert_eq!(cred["cred"]["user_verified"], false, "{cred}");
        sign_out(&c).await;
        sign_in_password(&c, &reg).await;
        let t = text(&c).await;
        assert!(t.contains("Touch-only key, Key with PIN"), "{t}");
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/", "{}", text(&c).await);
        let signed: Vec<_> = audit(&reg, "portal.sign_in")
            .await
            .into_iter()
            .filter(|e| e.result.as_deref() == Some("security_key"))
            .collect();
        // The newest sign-in was the key with a PIN.
        let pin_id = sql(&reg, "SELECT id FROM methods WHERE label = 'Key with PIN'");
        assert_eq!(signed.len(), 2);
        assert_eq!(
            signed[0].detail.as_deref(),
            Some(&*format!("method {pin_id}"))
        );
        verifying.remove().await;
    });
}

#[test]
fn required_user_verification_refuses_a_key_without_it() {
    let reg = registry("required");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        let plain = Authenticator::add(&driver, &c, false, false).await;
        sign_in_password(&c, &reg).await;
        let t = add_key(&c, &reg, "Old key", None).await;
        assert_eq!(path(&c).await, "/my/security-info/security-key/finish");
        assert!(t.contains("PIN or fingerprint"), "{t}");
        assert!(t.contains("your organisation requires"), "{t}");
        assert!(
            t.contains("Name your security key"),
            "the name step again: {t}"
        );
        shot(&c, "43-key-refused-no-uv").await;
        assert!(key_methods(&reg).await.is_empty(), "nothing stored");
        let refused = audit(&reg, "security_key.enrol").await;
        assert_eq!(refused.len(), 1);
        assert_ne!(refused[0].result.as_deref(), Some("ok"));
        assert!(
            refused[0]
                .detail
                .as_deref()
                .unwrap_or("")
                .contains("nothing stored"),
            "{refused:?}"
        );
        plain.remove().await;
        // A key that verifies the user is taken, and signs in.
        let _pin = Authenticator::add(&driver, &c, false, true).await;
        let t = add_key(&c, &reg, "Key with PIN", None).await;
        assert!(t.contains("Security key added"), "{t}");
        sign_out(&c).await;
        sign_in_password(&c, &reg).await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/");
    });
}

#[test]
fn the_same_key_twice_is_refused_and_a_cloned_key_is_refused() {
    let reg = registry("preferred");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        let auth = Authenticator::add(&driver, &c, false, true).await;
        sign_in_password(&c, &reg).await;
        assert!(add_key(&c, &reg, KEY_NAME, None)
            .await
            .contains("Security key added"));
        // The same authenticator again: it refuses (the registry excluded
        // its credential), the page says so, nothing more is stored.
        let t = add_key(&c, &reg, "Same key again", None).await;
        assert!(t.contains("already registered"), "{t}");
        shot(&c, "44-key-already-registered").await;
        assert_eq!(key_methods(&reg).await.len(), 1);
        assert_eq!(auth.credentials().await.len(), 1);
        let refused = audit(&reg, "security_key.enrol").await;
        assert_eq!(refused[0].result.as_deref(), Some("already_registered"));
        // The Privacy page says so too: one key added, one not.
        c.goto(&format!("{}/my/privacy", base(&reg)))
            .await
            .expect("goto");
        let t = text(&c).await;
        assert!(t.contains("Security key not added"), "{t}");
        assert_eq!(t.matches("Security key added").count(), 1, "{t}");
        // The activity table on a phone: one record per block, each
        // value under its label, nothing wider than the screen.
        c.set_window_size(390, 844).await.expect("window size");
        c.goto(&format!("{}/my/privacy#recent", base(&reg)))
            .await
            .expect("goto");
        let widest = c
            .execute(
                "return Math.max(...[...document.querySelectorAll('.activity td')].map(e => e.getBoundingClientRect().right));",
                vec![],
            )
            .await
            .expect("script");
        let width = c
            .execute("return document.documentElement.clientWidth;", vec![])
            .await
            .expect("script");
        assert!(
            widest.as_f64().unwrap() <= width.as_f64().unwrap(),
            "{widest} > {width}"
        );
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(
            screenshot_dir().join("46-privacy-activity-phone.png"),
            png,
        )
        .expect("write png");

        // Sign in twice, then give the key its old counter back (a copy
        // made before those sign-ins): refused as a possible clone.
        sign_out(&c).await;
        let old = auth.credentials().await[0].clone();
        for _ in 0..2 {
            sign_in_password(&c, &reg).await;
            click(&c, "Use my security key").await;
            assert_eq!(path(&c).await, "/my/");
            sign_out(&c).await;
        }
        let counter = stored_counter(&reg, KEY_NAME);
        assert!(counter >= 2, "{counter}");
        // A user locked after wrong codes is locked for the key too.
        sql(
            &reg,
            "UPDATE users SET locked_until = 4102444800 WHERE username = 'alice'",
        );
        sign_in_password(&c, &reg).await;
        click(&c, "Use my security key").await;
        assert!(text(&c).await.contains("Your account is locked"));
        assert_eq!(
            stored_counter(&reg, KEY_NAME),
            counter,
            "the key was not used"
        );
        sql(
            &reg,
            "UPDATE users SET locked_until = NULL WHERE username = 'alice'",
        );
        c.goto(&format!("{}/my/", base(&reg))).await.expect("goto");
        click(&c, "Sign in with a different account").await;
        auth.remove_all().await;
        auth.add_credential(old).await;
        sign_in_password(&c, &reg).await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/sign-in/security-key");
        let t = text(&c).await;
        assert!(t.contains("can mean the key was copied"), "{t}");
        shot(&c, "45-key-cloned").await;
        assert_eq!(stored_counter(&reg, KEY_NAME), counter, "not moved back");
        let refused: Vec<_> = audit(&reg, "portal.sign_in")
            .await
            .into_iter()
            .filter(|e| e.result.as_deref() == Some("security_key_refused"))
            .collect();
        assert_eq!(refused[0].detail.as_deref(), Some("possible_clone"));
    });
    assert!(reg.log().contains("cloned key"), "{}", reg.log());
}

#[test]
fn a_key_as_default_and_fresh_factor_then_removed_no_longer_signs_in() {
    let reg = registry("preferred");
    let app = reg.enrol_totp("alice");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    let mut last = 0;
    let code = next_code(&app.secret_base32, &mut last);
    rt.block_on(async {
        let auth = Authenticator::add(&driver, &c, false, true).await;
        sign_in_password(&c, &reg).await;
        assert_eq!(path(&c).await, "/my/sign-in/code");
        fill(&c, "code", &code).await;
        click(&c, "Verify").await;
        assert!(add_key(&c, &reg, KEY_NAME, None)
            .await
            .contains("Security key added"));
        // The app stays the default until the user chooses the key.
        let t = text(&c).await;
        assert!(
            t.contains("Default sign-in method: Authenticator app – code"),
            "{t}"
        );
        click(&c, "Change").await;
        let key_id = key_methods(&reg).await[0].id;
        c.find(fantoccini::Locator::Css(&format!(
            "input[name='method_id'][value='{key_id}']"
        )))
        .await
        .expect("the key on the change-default page")
        .click()
        .await
        .expect("choose");
        shot(&c, "46-default-key").await;
        click(&c, "Confirm").await;
        assert!(text(&c)
            .await
            .contains("Default sign-in method: Security key – WebAuthn"));
        assert!(key_methods(&reg).await[0].is_default);

        // Signing in now asks for the key first, with the app as the
        // way out; the code page offers the key back.
        sign_out(&c).await;
        sign_in_password(&c, &reg).await;
        assert_eq!(path(&c).await, "/my/sign-in/security-key");
        click(&c, "Use a verification code instead").await;
        assert!(text(&c).await.contains("Use my security key instead"));
        click(&c, "Use my security key instead").await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/");

        // The fresh second factor with the key: after 10 minutes Security
        // info asks again (the session's factor made old here).
        sql(
            &reg,
            "UPDATE portal_sessions SET factor_at = factor_at - 601",
        );
        c.goto(&format!("{}/my/security-info", base(&reg)))
            .await
            .expect("goto");
        assert_eq!(path(&c).await, "/my/verify");
        let t = text(&c).await;
        assert!(
            t.contains("Verify your identity") && t.contains(KEY_NAME),
            "{t}"
        );
        shot(&c, "47-verify-with-key").await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/security-info");
        assert_eq!(
            audit(&reg, "portal.verify").await[0].result.as_deref(),
            Some("security_key")
        );

        // A second browser opens the key's sign-in page (a ceremony for
        // this key) before the key is removed in the first.
        let b = driver.browser_js(true).await;
        let b_auth = Authenticator::add(&driver, &b, false, true).await;
        b_auth
            .add_credential(auth.credentials().await[0].clone())
            .await;
        sign_in_password(&b, &reg).await;
        assert_eq!(path(&b).await, "/my/sign-in/security-key");

        // Deleting the app instead would leave SSH and VPN without a
        // method (the key does not count there): the page says so.
        let app_id = reg
            .admin_client()
            .user("alice")
            .await
            .expect("user")
            .methods
            .iter()
            .find(|m| m.kind == MethodKind::Totp)
            .expect("the app")
            .id;
        c.goto(&format!(
            "{}/my/security-info/methods/{app_id}/delete",
            base(&reg)
        ))
        .await
        .expect("goto");
        let t = text(&c).await;
        assert!(
            t.contains("only method that works for SSH and VPN")
                && t.contains("Your other methods work on this page only"),
            "{t}"
        );
        click(&c, "Cancel").await;

        // Remove the key on the page: the app is left, nothing lost.
        c.goto(&format!(
            "{}/my/security-info/methods/{key_id}/delete",
            base(&reg)
        ))
        .await
        .expect("goto");
        let t = text(&c).await;
        assert!(
            t.contains("Delete this method?") && t.contains(KEY_NAME),
            "{t}"
        );
        assert!(t.contains("this page will no longer accept it"), "{t}");
        assert!(!t.contains("only method"), "the app remains: {t}");
        shot(&c, "48-delete-key").await;
        click(&c, "Delete").await;
        assert!(text(&c).await.contains("The method was deleted."));
        assert!(key_methods(&reg).await.is_empty());
        let deleted = audit(&reg, "security_key.delete").await;
        assert_eq!(deleted.len(), 1);
        assert_eq!(deleted[0].actor, "user:alice");

        // The ceremony opened before the removal: the key's answer is
        // refused.
        click(&b, "Use my security key").await;
        assert_eq!(path(&b).await, "/my/sign-in/security-key");
        let t = text(&b).await;
        assert!(t.contains("isn't registered to your account"), "{t}");
        assert!(t.contains("no security key that works here"), "{t}");
        shot(&b, "49-removed-key-refused").await;
        b.close().await.expect("close");

        // A new sign-in no longer offers the key at all.
        sign_out(&c).await;
        sign_in_password(&c, &reg).await;
        assert_eq!(path(&c).await, "/my/sign-in/code");
        let t = text(&c).await;
        assert!(!t.contains("security key"), "{t}");
        c.goto(&format!("{}/my/sign-in/security-key", base(&reg)))
            .await
            .expect("goto");
        assert!(text(&c)
            .await
            .contains("You have no security key that works here any more."));
    });
}

#[test]
fn keys_on_postgresql_add_sign_in_refuse_twice_and_delete() {
    let db = twostep_e2e::fresh_postgres_database();
    let reg = registry_on(Some(&db), "preferred");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        let _auth = Authenticator::add(&driver, &c, false, true).await;
        sign_in_password(&c, &reg).await;
        assert!(add_key(&c, &reg, KEY_NAME, None)
            .await
            .contains("Security key added"));
        assert!(add_key(&c, &reg, "Again", None)
            .await
            .contains("already registered"));
        assert_eq!(key_methods(&reg).await.len(), 1);
        sign_out(&c).await;
        sign_in_password(&c, &reg).await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/");
        let id = key_methods(&reg).await[0].id;
        assert!(key_methods(&reg).await[0].last_used_at.is_some());
        c.goto(&format!(
            "{}/my/security-info/methods/{id}/delete",
            base(&reg)
        ))
        .await
        .expect("goto");
        click(&c, "Delete").await;
        assert!(key_methods(&reg).await.is_empty());
        assert_eq!(audit(&reg, "security_key.delete").await.len(), 1);
    });
}

/// On a key page: lets the key answer, then posts that one answer twice
/// (from the page, with its cookies); the two answers' final URLs and
/// texts.
async fn answer_twice(c: &Client) -> Vec<String> {
    let script = r#"
        const done = arguments[arguments.length - 1];
        const f = document.getElementById("key-form");
        const post = (body) => fetch(f.action, { method: "POST", body, credentials: "same-origin" })
            .then((r) => r.text().then((t) => [r.url, t]));
        f.submit = function () {
            const body = new URLSearchParams(new FormData(f));
            post(body).then((a) => post(body).then((b) => done(a.concat(b))));
        };
        document.getElementById("key-button").click();
    "#;
    let v = c.execute_async(script, vec![]).await.expect("script");
    v.as_array()
        .expect("four strings")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn a_ceremony_is_used_once() {
    let reg = registry("preferred");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        let _auth = Authenticator::add(&driver, &c, false, true).await;
        sign_in_password(&c, &reg).await;
        // Registration: the answer saves the key once; the same answer
        // again finds no ceremony.
        c.goto(&format!("{}/my/security-info/security-key", base(&reg)))
            .await
            .expect("goto");
        fill(&c, "label", KEY_NAME).await;
        click(&c, "Next").await;
        let r = answer_twice(&c).await;
        assert!(r[0].ends_with("/my/security-info?done=added-key"), "{r:?}");
        assert!(r[1].contains("Security key added"));
        assert!(r[3].contains("used twice"), "{}", r[3]);
        assert_eq!(key_methods(&reg).await.len(), 1);
        // The fresh second factor: one answer, one verification.
        sql(
            &reg,
            "UPDATE portal_sessions SET factor_at = factor_at - 601",
        );
        c.goto(&format!("{}/my/security-info", base(&reg)))
            .await
            .expect("goto");
        assert_eq!(path(&c).await, "/my/verify");
        let r = answer_twice(&c).await;
        assert!(r[0].ends_with("/my/security-info"), "{r:?}");
        assert!(r[3].contains("used twice"), "{}", r[3]);
        let verified: Vec<_> = audit(&reg, "portal.verify").await;
        assert_eq!(verified.len(), 2, "{verified:?}");
        assert_eq!(verified[0].detail.as_deref(), Some("expired"));
        assert_eq!(verified[1].result.as_deref(), Some("security_key"));
    });
}

#[test]
fn an_https_origin_with_a_port_over_tls() {
    // The registry over TLS with a certificate for localhost that the
    // browser trusts (its own NSS database), origin https://localhost:PORT.
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let reg = Registry::start_opts(twostep_e2e::RegistryOptions {
        tls: Some((cert.cert.pem(), cert.key_pair.serialize_pem())),
        extra_api_toml: "[api.portal]\npublic_url = \"https://localhost:{port}\"\n".into(),
        ..Default::default()
    });
    block_on(async {
        let admin = reg.admin_client();
        admin
            .create_user(&twostep_common::api::CreateUser {
                username: "alice".into(),
                display_name: None,
            })
            .await
            .expect("add alice");
        admin
            .set_password(
                "alice",
                &twostep_common::portal::SetPassword {
                    password: PASSWORD.into(),
                },
            )
            .await
            .expect("set password");
    });
    let home = tempfile::tempdir().expect("home");
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).expect("nssdb");
    let db = format!("sql:{}", nssdb.display());
    let run = |args: &[&str]| {
        let out = Command::new("certutil")
            .args(args)
            .output()
            .expect("run certutil (apt-get install libnss3-tools)");
        assert!(out.status.success(), "certutil {args:?}: {out:?}");
    };
    run(&["-N", "-d", &db, "--empty-password"]);
    let ca = reg.ca_file.clone().expect("certificate");
    run(&[
        "-A",
        "-d",
        &db,
        "-n",
        "twostep-test",
        "-t",
        "P,,",
        "-i",
        &ca.display().to_string(),
    ]);
    let origin = format!("https://localhost:{}", reg.port);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start_with_home(home.path());
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        let _auth = Authenticator::add(&driver, &c, false, true).await;
        c.goto(&format!("{origin}/my/")).await.expect("goto");
        fill(&c, "username", "alice").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        assert_eq!(path(&c).await, "/my/security-info");
        c.goto(&format!("{origin}/my/security-info/security-key"))
            .await
            .expect("goto");
        fill(&c, "label", KEY_NAME).await;
        click(&c, "Next").await;
        click(&c, "Use my security key").await;
        let t = text(&c).await;
        assert!(t.contains("Security key added"), "{t}\n{}", reg.log());
        click(&c, "Sign out").await;
        c.goto(&format!("{origin}/my/")).await.expect("goto");
        fill(&c, "username", "alice").await;
        fill(&c, "password", PASSWORD).await;
        click(&c, "Sign in").await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/", "{}", text(&c).await);
        assert!(c.get_named_cookie("__Host-twostep-session").await.is_ok());
    });
    assert!(
        reg.log().contains(&format!("origin={origin}")),
        "the origin from public_url, port included: {}",
        reg.log()
    );
}

#[test]
fn without_an_origin_no_key_is_offered() {
    // public_url with an IP address cannot be a relying party: keys off.
    let reg = Registry::start_with(
        None,
        "[api.portal]\npublic_url = \"http://127.0.0.1:{port}\"\n",
    );
    cli(
        &reg,
        &["user", "add", "alice", "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
    let web = Web::new(&reg.url, None);
    block_on(async {
        web.sign_in("alice", PASSWORD).await;
        let add = web.get("/my/security-info/add").await;
        assert_eq!(add.status, 200);
        assert!(!add.body.contains("security-key"), "{}", add.body);
        let page = web.get("/my/security-info/security-key").await;
        assert_eq!(page.status, 303);
        assert_eq!(location(&page), "/my/security-info/add");
    });
    assert!(reg.log().contains("security keys off"), "{}", reg.log());
}

/// "Forgot password?" for `user` in `c`: the username, then the choose
/// page's text.
async fn begin_reset(c: &Client, reg: &Registry, user: &str) -> String {
    c.goto(&format!("{}/my/reset", base(reg)))
        .await
        .expect("goto");
    fill(c, "username", user).await;
    click(c, "Next").await;
    assert_eq!(path(c).await, "/my/reset/verify");
    text(c).await
}

#[test]
fn a_security_key_proves_a_password_reset_and_a_removed_one_does_not() {
    let reg = registry("preferred");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        let _auth = Authenticator::add(&driver, &c, false, true).await;
        sign_in_password(&c, &reg).await;
        let t = add_key(&c, &reg, KEY_NAME, None).await;
        assert!(t.contains("Security key added"), "{t}");
        sign_out(&c).await;

        // The key is alice's one kind of proof: it alone resets.
        let t = begin_reset(&c, &reg, "alice").await;
        assert!(t.contains("Use my security key"), "{t}");
        assert!(
            !t.contains("Enter a code from my authenticator app")
                && !t.contains("Approve a request"),
            "only what alice has: {t}"
        );
        shot(&c, "reset-50-choose-key").await;
        click_css(&c, "a[href='/my/reset/security-key']").await;
        let t = text(&c).await;
        assert!(t.contains("Use your security key"), "{t}");
        assert!(!t.contains(KEY_NAME), "no key names on a reset: {t}");
        shot(&c, "reset-51-security-key").await;
        click(&c, "Use my security key").await;
        assert_eq!(path(&c).await, "/my/reset/password", "{}", text(&c).await);
        shot(&c, "reset-52-new-password-after-key").await;
        let proofs = audit(&reg, "portal.reset_proof").await;
        assert_eq!(proofs[0].result.as_deref(), Some("security_key"));
        assert_eq!(
            sql(&reg, "SELECT COUNT(*) FROM webauthn_ceremonies"),
            "0",
            "the ceremony was used up"
        );

        // Removed from the account (the authenticator still has it): a
        // new reset offers made-up keys, and the key proves nothing.
        let key_proofs = |proofs: &[twostep_common::api::AuditEvent]| {
            proofs
                .iter()
                .filter(|e| e.result.as_deref() == Some("security_key"))
                .count()
        };
        let proven_before = key_proofs(&audit(&reg, "portal.reset_proof").await);
        sql(&reg, "DELETE FROM methods WHERE kind = 'security_key'");
        begin_reset(&c, &reg, "alice").await;
        c.goto(&format!("{}/my/reset/security-key", base(&reg)))
            .await
            .expect("goto");
        if text(&c).await.contains("no security key that works here") {
            // The made-up list for this name was empty: nothing to press.
        } else {
            click(&c, "Use my security key").await;
            let t = text(&c).await;
            assert_eq!(path(&c).await, "/my/reset/security-key", "{t}");
            assert!(t.contains("The key wasn't used"), "{t}");
            shot(&c, "reset-53-removed-key-refused").await;
        }
        c.goto(&format!("{}/my/reset/password", base(&reg)))
            .await
            .expect("goto");
        assert_eq!(path(&c).await, "/my/reset/verify");
        // No new key proof, whether a made-up key was offered (and
        // refused) or the made-up list was empty.
        let proofs = audit(&reg, "portal.reset_proof").await;
        assert_eq!(key_proofs(&proofs), proven_before, "{proofs:?}");
    });
}
