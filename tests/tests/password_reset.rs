//! Self-service password reset of the Security info page's password,
//! against the real `twostep-api` sending mail to a real SMTP server
//! (Python's `smtpd` DebuggingServer, which prints each message it takes):
//!
//! - in headless Chromium: an email address added on Security info (saved
//!   only once the code sent to it is typed), three security questions;
//!   then "Forgot password?" with the emailed code and the answers → the
//!   new password works, the old one does not, the other browser's
//!   session is gone;
//! - over plain HTTP: an unknown name gets the same pages as a user with
//!   email and questions (and about the same time for wrong answers);
//!   wrong answers, an expired code and a used code are refused; a user
//!   with only an app resets with one code from it; the limiter stops a
//!   run of wrong codes;
//! - through pamtester under `unenrolled = "deny"` and radclient: a user
//!   with only an email address and security questions is refused exactly
//!   like a user with nothing; the registrations lookup says not enrolled;
//! - two-step methods as proofs, over plain HTTP with the reference
//!   device `twostep authenticator` and a test HTTP gateway for
//!   `[api.sms]` / `[api.voice]`: a push denied proves nothing (and shows
//!   as unanswered, then timed out), one
//!   approved with the number shown (its request saying `portal-reset`)
//!   proves the app (with a number to match even under `number_matching
//!   = false`), one reported as fraud proves nothing and blocks the next; a text-message code the gateway received proves the
//!   phone once (a wrong one, and the same one again, refused); an
//!   unknown name sees a choose page of the same shape, a push that only
//!   times out and a "code sent" page that sent nothing;
//! - STARTTLS required by default, the SMTP password file a secret file.
//!
//! Screenshots of each new page (1366×900 and 390×844) go to
//! `target/portal-screenshots/reset-*.png`.

mod gateway_support;
mod pam_support;
mod portal_support;
mod radius_support;

use fantoccini::Locator;
use portal_support::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twostep_e2e::{block_on, free_tcp_port, Registry};

const NEW_PASSWORD: &str = "a brand new page password";

// ---- a real SMTP server ----------------------------------------------------------

/// Python's DebuggingServer on 127.0.0.1: takes every message and prints
/// it to its stdout (a file here).
struct Smtp {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Smtp {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("smtp.log");
        let port = free_tcp_port();
        // Python 3.12 dropped smtpd: aiosmtpd (python3-aiosmtpd) prints
        // messages the same way.
        let has_smtpd = Command::new("python3")
            .args(["-W", "ignore", "-c", "import smtpd"])
            .status()
            .is_ok_and(|s| s.success());
        let mut cmd = Command::new("python3");
        if has_smtpd {
            cmd.args([
                "-u",
                "-W",
                "ignore",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
            ]);
        } else {
            cmd.args(["-u", "-m", "aiosmtpd", "-n", "-l"]);
        }
        let child = cmd
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m smtpd (Debian 12's python3 3.11) or python3 -m aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtpd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// `[api.smtp]` for a registry sending here (no TLS on loopback).
    fn api_toml(&self) -> String {
        format!(
            "\n[api.smtp]\nhost = \"127.0.0.1\"\nport = {}\nstarttls = false\nfrom = \"twostep <no-reply@example.test>\"\ntimeout = 5\n",
            self.port
        )
    }

    /// The messages printed so far.
    fn messages(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.split("---------- MESSAGE FOLLOWS ----------")
            .skip(1)
            .map(|m| {
                m.split("------------ END MESSAGE ------------")
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    /// The codes (a line of 6 digits) of the messages to `to`, oldest first.
    fn codes_to(&self, to: &str) -> Vec<String> {
        self.messages()
            .iter()
            .filter(|m| m.lines().any(|l| l.contains("To: ") && l.contains(to)))
            .filter_map(|m| {
                m.lines()
                    .map(|l| {
                        l.trim()
                            .trim_start_matches("b'")
                            .trim_end_matches('\'')
                            .trim()
                    })
                    .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Waits (at most 10 s) for the `n`-th message to `to` (from 1) and
    /// returns its code.
    fn code(&self, to: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.codes_to(to).get(n - 1) {
                return c.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no message {n} to {to}: {:?}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn add_user_with_password(reg: &Registry, user: &str) {
    cli(
        reg,
        &["user", "add", user, "--password-prompt"],
        Some(&format!("{PASSWORD}\n")),
    );
}

/// Makes the open emailed codes of the registry's database expired: with
/// sqlite3 on its SQLite file, or psql on PostgreSQL.
fn expire_codes(reg: &Registry) {
    let out = if reg.database_url.starts_with("postgres") {
        Command::new("psql")
            .arg(&reg.database_url)
            .args(["-v", "ON_ERROR_STOP=1", "-qtAc"])
            .arg("UPDATE password_resets SET code_expires_at = extract(epoch from now())::bigint - 1 WHERE code_hash IS NOT NULL")
            .output()
            .expect("psql")
    } else {
        Command::new("sqlite3")
            .arg(reg.dir.path().join("registry.db"))
            .arg("UPDATE password_resets SET code_expires_at = strftime('%s','now') - 1 WHERE code_hash IS NOT NULL")
            .output()
            .expect("sqlite3")
    };
    assert!(out.status.success(), "{out:?}");
}

async fn select(c: &fantoccini::Client, id: &str, value: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .select_by_value(value)
        .await
        .expect("select");
}

// ---- in the browser ----------------------------------------------------------------

#[test]
fn email_and_questions_added_then_forgot_password_in_the_browser() {
    let smtp = Smtp::start();
    let reg = Registry::start_with(None, &smtp.api_toml());
    add_user_with_password(&reg, "alice");
    let secret = reg.enrol_totp("alice").secret_base32;
    let mut last = 0u64;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let a = rt.block_on(driver.browser());
    let c = rt.block_on(driver.browser());
    rt.block_on(async {
        // Browser A signs in (password, code) and adds the two methods.
        a.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        assert!(text(&a).await.contains("Forgot password?"));
        fill(&a, "username", "alice").await;
        fill(&a, "password", PASSWORD).await;
        click(&a, "Sign in").await;
        fill(&a, "code", &next_code(&secret, &mut last)).await;
        click(&a, "Verify").await;
        a.goto(&format!("{}/my/security-info", reg.url))
            .await
            .expect("security info");
        let t = text(&a).await;
        assert!(
            t.contains("Password reset methods") && t.contains("None yet"),
            "{t}"
        );
        click(&a, "Add sign-in method").await;
        let t = text(&a).await;
        assert!(
            t.contains("Email") && t.contains("Security questions"),
            "{t}"
        );
        assert!(t.contains("Password reset only"), "{t}");
        a.find(Locator::Css("input[value=email]"))
            .await
            .expect("email choice")
            .click()
            .await
            .expect("choose email");
        shot(&a, "reset-01-add-method").await;
        click(&a, "Add").await;
        assert_eq!(path(&a).await, "/my/security-info/email");
        fill(&a, "address", "Alice@Example.TEST").await;
        shot(&a, "reset-02-email-address").await;
        click(&a, "Send code").await;
        assert_eq!(path(&a).await, "/my/security-info/email/code");
        let code = smtp.code("Alice@example.test", 1);
        let t = text(&a).await;
        assert!(
            t.contains("We sent a 6-digit code to Alice@example.test"),
            "{t}"
        );
        // A wrong code saves nothing.
        let wrong = if code == "000000" { "111111" } else { "000000" };
        fill(&a, "code", wrong).await;
        click(&a, "Next").await;
        assert!(text(&a).await.contains("That code didn't work"));
        shot(&a, "reset-03-email-code").await;
        fill(&a, "code", &code).await;
        click(&a, "Next").await;
        assert_eq!(path(&a).await, "/my/security-info");
        let t = text(&a).await;
        assert!(t.contains("Email address saved"), "{t}");
        assert!(t.contains("Alice@example.test"), "{t}");

        // Security questions: three different ones, each answered.
        click(&a, "Add sign-in method").await;
        a.find(Locator::Css("input[value=questions]"))
            .await
            .expect("questions choice")
            .click()
            .await
            .expect("choose questions");
        click(&a, "Add").await;
        assert_eq!(path(&a).await, "/my/security-info/questions");
        for (i, (q, ans)) in [("0", "Rex"), ("1", "Lyon"), ("3", "Citroën 2CV")]
            .iter()
            .enumerate()
        {
            select(&a, &format!("question{}", i + 1), q).await;
            fill(&a, &format!("answer{}", i + 1), ans).await;
        }
        // The same question twice is refused, and the choices are kept.
        select(&a, "question3", "0").await;
        click(&a, "Save").await;
        assert!(text(&a).await.contains("Choose three different questions"));
        select(&a, "question3", "3").await;
        for (i, ans) in ["Rex", "Lyon", "Citroën 2CV"].iter().enumerate() {
            fill(&a, &format!("answer{}", i + 1), ans).await;
        }
        shot(&a, "reset-04-security-questions").await;
        click(&a, "Save").await;
        let t = text(&a).await;
        assert!(t.contains("Security questions saved"), "{t}");
        assert!(t.contains("3 questions answered"), "{t}");
        shot(&a, "reset-05-security-info").await;

        // Browser C: Forgot password?
        c.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        click(&c, "Forgot password?").await;
        assert_eq!(path(&c).await, "/my/reset");
        fill(&c, "username", "alice").await;
        shot(&c, "reset-06-username").await;
        click(&c, "Next").await;
        assert_eq!(path(&c).await, "/my/reset/verify");
        let t = text(&c).await;
        assert!(t.contains("Prove it's you"), "{t}");
        assert!(t.contains("Email me a code") && t.contains("Answer my security questions"));
        shot(&c, "reset-07-choose").await;
        click_css(&c, "button.reset-option").await;
        assert_eq!(path(&c).await, "/my/reset/email");
        let code = smtp.code("Alice@example.test", 2);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        fill(&c, "code", wrong).await;
        click(&c, "Verify").await;
        assert!(text(&c).await.contains("That code didn't work"));
        shot(&c, "reset-08-email-code").await;
        fill(&c, "code", &code).await;
        click(&c, "Verify").await;
        // Two kinds registered (three, with the app): one more proof.
        assert_eq!(path(&c).await, "/my/reset/verify");
        let t = text(&c).await;
        assert!(
            t.contains("One more step") && t.contains("Done: emailed code"),
            "{t}"
        );
        assert!(!t.contains("Email me a code"), "{t}");
        shot(&c, "reset-09-one-more").await;
        click_css(&c, "a[href='/my/reset/questions']").await;
        let t = text(&c).await;
        assert!(
            t.contains("What was the name of your first pet?")
                && t.contains("In what city were you born?")
                && t.contains("What was the make of your first car?"),
            "{t}"
        );
        fill(&c, "answer1", "Rex").await;
        fill(&c, "answer2", "Paris").await;
        fill(&c, "answer3", "Citroën 2CV").await;
        click(&c, "Verify").await;
        assert!(text(&c).await.contains("Those answers don't match"));
        shot(&c, "reset-10-questions").await;
        // Case, outer and inner spaces do not matter.
        fill(&c, "answer1", "  rEX ").await;
        fill(&c, "answer2", "LYON").await;
        fill(&c, "answer3", "citroën   2cv").await;
        click(&c, "Verify").await;
        assert_eq!(path(&c).await, "/my/reset/password");
        fill(&c, "new_password", NEW_PASSWORD).await;
        fill(&c, "confirm_password", NEW_PASSWORD).await;
        shot(&c, "reset-11-new-password").await;
        click(&c, "Reset password").await;
        assert_eq!(path(&c).await, "/my/");
        let t = text(&c).await;
        assert!(t.contains("Your password was reset"), "{t}");
        shot(&c, "reset-12-done").await;

        // Browser A's session ended with the reset.
        a.goto(&format!("{}/my/security-info", reg.url))
            .await
            .expect("reload");
        let t = text(&a).await;
        assert!(
            t.contains("Sign in") && t.contains("Your session ended"),
            "{t}"
        );

        // The old password no longer works; the new one does (then the code).
        let web = Web::new(&reg.url, None);
        let r = web.sign_in("alice", PASSWORD).await;
        assert!(r.body.contains("Your username or password is incorrect."));
        let r = web.sign_in("alice", NEW_PASSWORD).await;
        assert_eq!(r.status, 303);
        assert_eq!(location(&r), "/my/sign-in/code");
        // The mailbox got a notice of the reset.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !smtp
            .messages()
            .iter()
            .any(|m| m.contains("Your password was reset"))
        {
            assert!(Instant::now() < deadline, "no reset notice");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        a.close().await.expect("close a");
        c.close().await.expect("close c");
    });
    let audit = cli(&reg, &["audit", "--limit", "200"], None);
    assert!(audit.contains("portal.password_reset"), "{audit}");
    assert!(
        audit.contains("proofs=email,questions; 1 sessions ended"),
        "{audit}"
    );
    assert!(
        audit.contains("wrong_email_code") && audit.contains("wrong_answers"),
        "{audit}"
    );
    // No code in the audit.
    for c in smtp.codes_to("Alice@example.test") {
        assert!(!audit.contains(&c), "code {c} in the audit");
    }
}

// ---- over plain HTTP ---------------------------------------------------------------

/// A page's body with the apostrophes unescaped.
fn said(a: &Answer) -> String {
    a.body.replace("&#39;", "'")
}

/// The pages' bodies with the username and CSRF tokens taken out.
fn plain(body: &str, user: &str) -> String {
    let mut out = body.replace(user, "USER");
    while let Some(at) = out.find("name=\"csrf\" value=\"") {
        let start = at + 19;
        out.replace_range(at..start + 64, "CSRF");
    }
    out
}

/// A choose page as [`plain`], with its list of ways taken out, and the
/// titles of the ways it lists.
fn shape(body: &str, user: &str) -> (String, Vec<String>) {
    let mut out = plain(body, user);
    let titles = body
        .split("<strong>")
        .skip(1)
        .filter_map(|t| t.split("</strong>").next())
        .map(|t| t.replace("&#39;", "'"))
        .collect();
    if let (Some(a), Some(b)) = (out.find("<ul class=\"reset-options\""), out.find("</ul>")) {
        out.replace_range(a..b, "OPTIONS");
    }
    (out, titles)
}

/// The visitor's CSRF token, from the reset's questions page (which
/// always has a form: the ways a choose page lists may all be links).
async fn token(web: &Web) -> String {
    csrf(&web.get("/my/reset/questions").await.body)
}

/// The new password ([`NEW_PASSWORD`]) of a complete reset.
async fn set_new_password(web: &Web, token: &str) {
    let r = web
        .post(
            "/my/reset/password",
            &[
                ("csrf", token),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(location(&r), "/my/?done=reset", "{}", r.body);
}

async fn begin_reset(web: &Web, user: &str) -> Answer {
    let page = web.get("/my/reset").await;
    let token = csrf(&page.body);
    let r = web
        .post("/my/reset", &[("csrf", &token), ("username", user)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/my/reset/verify");
    web.get("/my/reset/verify").await
}

/// Adds `address` (proven by the code sent to it) and three answered
/// questions for the user signed in on `web` with no method.
async fn add_reset_methods(web: &Web, smtp: &Smtp, address: &str, nth: usize) {
    let page = web.get("/my/security-info/email").await;
    let token = csrf(&page.body);
    let r = web
        .post(
            "/my/security-info/email",
            &[("csrf", &token), ("address", address)],
        )
        .await;
    assert_eq!(location(&r), "/my/security-info/email/code", "{}", r.body);
    let code = smtp.code(address, nth);
    let r = web
        .post(
            "/my/security-info/email/code",
            &[("csrf", &token), ("code", &code)],
        )
        .await;
    assert_eq!(location(&r), "/my/security-info?done=email");
    let r = web
        .post(
            "/my/security-info/questions",
            &[
                ("csrf", &token),
                ("question1", "2"),
                ("answer1", "Hill Street Primary"),
                ("question2", "5"),
                ("answer2", "Ghent"),
                ("question3", "9"),
                ("answer3", "Mrs Peel"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/my/security-info?done=questions");
}

#[test]
fn unknown_user_same_pages_and_refusals_over_http() {
    same_pages_and_refusals(None);
}

/// The same on PostgreSQL (`TWOSTEP_TEST_POSTGRES_URL`).
#[test]
fn unknown_user_same_pages_and_refusals_on_postgresql() {
    let db = twostep_e2e::fresh_postgres_database();
    same_pages_and_refusals(Some(&db));
}

fn same_pages_and_refusals(database: Option<&str>) {
    let smtp = Smtp::start();
    let reg = Registry::start_with(database, &smtp.api_toml());
    add_user_with_password(&reg, "bob");
    add_user_with_password(&reg, "dan");
    let dan_secret = reg.enrol_totp("dan").secret_base32;
    add_user_with_password(&reg, "gone");
    block_on(reg.admin_client().update_user(
        "gone",
        &twostep_common::api::UpdateUser {
            disabled: Some(true),
        },
    ))
    .expect("disable gone");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // bob has no method: the password alone signs in (to Security info).
        let signed = Web::new(&reg.url, None);
        let r = signed.sign_in("bob", PASSWORD).await;
        assert_eq!(location(&r), "/my/security-info");
        add_reset_methods(&signed, &smtp, "bob@example.test", 1).await;

        // The same pages for bob and for a name nobody has.
        let known = Web::new(&reg.url, None);
        let unknown = Web::new(&reg.url, None);
        let kb = begin_reset(&known, "bob").await;
        let ub = begin_reset(&unknown, "nobody").await;
        // The same page but for the ways listed: bob's own, and for the
        // name nobody has ways made up from the name, the same each time.
        let (k_shape, k_ways) = shape(&kb.body, "bob");
        let (u_shape, u_ways) = shape(&ub.body, "nobody");
        assert_eq!(k_shape, u_shape);
        assert_eq!(k_ways, ["Email me a code", "Answer my security questions"]);
        assert!(!u_ways.is_empty());
        assert_eq!(ub.body, unknown.get("/my/reset/verify").await.body);
        // A disabled user too.
        let gb = begin_reset(&Web::new(&reg.url, None), "gone").await;
        assert_eq!(shape(&gb.body, "gone").0, u_shape);
        let kt = csrf(&kb.body);
        let ut = token(&unknown).await;
        let ks = known.post("/my/reset/email/send", &[("csrf", &kt)]).await;
        let us = unknown.post("/my/reset/email/send", &[("csrf", &ut)]).await;
        assert_eq!((ks.status, location(&ks)), (us.status, location(&us)));
        assert_eq!(location(&ks), "/my/reset/email");
        let ke = known.get("/my/reset/email").await;
        let ue = unknown.get("/my/reset/email").await;
        assert_eq!(plain(&ke.body, "bob"), plain(&ue.body, "nobody"));
        let code = smtp.code("bob@example.test", 2);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let kw = known
            .post("/my/reset/email", &[("csrf", &kt), ("code", wrong)])
            .await;
        let uw = unknown
            .post("/my/reset/email", &[("csrf", &ut), ("code", wrong)])
            .await;
        assert_eq!(plain(&kw.body, "bob"), plain(&uw.body, "nobody"));
        assert!(said(&kw).contains("That code didn't work"), "{}", kw.body);
        // Only one message went out: to bob.
        assert_eq!(smtp.messages().len(), 2);

        // Questions: three asked of either, the same ones at each visit.
        let kq = known.get("/my/reset/questions").await;
        let uq = unknown.get("/my/reset/questions").await;
        assert_eq!(kq.body.matches("name=\"answer").count(), 3);
        assert_eq!(uq.body.matches("name=\"answer").count(), 3);
        assert!(kq.body.contains("What was the name of your first school?"));
        assert_eq!(uq.body, unknown.get("/my/reset/questions").await.body);
        // Wrong answers: the same answer, in about the same time.
        let answers = |t: &str| {
            vec![
                ("csrf".to_owned(), t.to_owned()),
                ("answer1".to_owned(), "wrong one".to_owned()),
                ("answer2".to_owned(), "wrong two".to_owned()),
                ("answer3".to_owned(), "wrong three".to_owned()),
            ]
        };
        // Interleaved, the quickest of each (other tests share the CPU).
        let mut best = (Duration::MAX, Duration::MAX);
        for _ in 0..4 {
            let f = answers(&kt);
            let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let t0 = Instant::now();
            let k = known.post("/my/reset/questions", &f).await;
            best.0 = best.0.min(t0.elapsed());
            let f = answers(&ut);
            let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let t0 = Instant::now();
            let u = unknown.post("/my/reset/questions", &f).await;
            best.1 = best.1.min(t0.elapsed());
            assert_eq!(k.status, u.status);
            assert!(k.body.contains("Those answers don"), "{}", k.body);
            assert!(u.body.contains("Those answers don"), "{}", u.body);
        }
        let ratio = best.0.as_secs_f64() / best.1.as_secs_f64();
        assert!(
            (0.4..2.5).contains(&ratio),
            "wrong answers took {:?} for bob and {:?} for an unknown name",
            best.0,
            best.1
        );

        // The right code works once; a used code is refused.
        let r = known
            .post("/my/reset/email", &[("csrf", &kt), ("code", &code)])
            .await;
        assert_eq!(location(&r), "/my/reset/verify");
        let r = known
            .post("/my/reset/email", &[("csrf", &kt), ("code", &code)])
            .await;
        assert!(r.body.contains("was used already"), "{}", r.body);
        // Not complete with one proof of two kinds.
        let r = known.get("/my/reset/password").await;
        assert_eq!(location(&r), "/my/reset/verify");

        // An expired code is refused, even the right one.
        let later = Web::new(&reg.url, None);
        let lb = begin_reset(&later, "bob").await;
        let lt = csrf(&lb.body);
        later.post("/my/reset/email/send", &[("csrf", &lt)]).await;
        let code3 = smtp.code("bob@example.test", 3);
        expire_codes(&reg);
        let r = later
            .post("/my/reset/email", &[("csrf", &lt), ("code", &code3)])
            .await;
        assert!(r.body.contains("That code has expired"), "{}", r.body);

        // The questions with the right answers (case and spaces aside),
        // then the password page; the signed-in session of bob ends.
        let f = [
            ("csrf", kt.as_str()),
            ("answer1", " hill street  PRIMARY"),
            ("answer2", "ghent"),
            ("answer3", "mrs peel"),
        ];
        let r = known.post("/my/reset/questions", &f).await;
        assert_eq!(location(&r), "/my/reset/password", "{}", r.body);
        set_new_password(&known, &kt).await;
        let r = signed.get("/my/security-info").await;
        assert_eq!(location(&r), "/my/", "bob's other session ended");
        // The unknown name never gets a password page.
        let r = unknown.get("/my/reset/password").await;
        assert_eq!(location(&r), "/my/reset/verify");

        // dan has only the app: one code from it resets. Wrong codes typed
        // on the reset page first (anyone can start a reset for dan) are
        // refused, but do not lock dan out of his logins.
        let d = Web::new(&reg.url, None);
        begin_reset(&d, "dan").await;
        let dt = token(&d).await;
        let wrong = pam_support::wrong_code(&dan_secret);
        for _ in 0..6 {
            let r = d
                .post("/my/reset/app", &[("csrf", &dt), ("code", &wrong)])
                .await;
            assert!(said(&r).contains("didn't work"), "{}", r.body);
        }
        let dan = reg.admin_client().user("dan").await.expect("dan");
        assert_eq!(
            dan.locked_until, None,
            "a stranger's wrong codes lock no one"
        );
        let r = d
            .post(
                "/my/reset/app",
                &[("csrf", &dt), ("code", &pam_support::code(&dan_secret))],
            )
            .await;
        assert_eq!(location(&r), "/my/reset/password", "{}", r.body);

        // A run of wrong codes is stopped by the limiter (10 a name in 15
        // minutes), for a name nobody has as well.
        let z = Web::new(&reg.url, None);
        begin_reset(&z, "zed").await;
        let zt = token(&z).await;
        let mut status = 0;
        for _ in 0..12 {
            status = z
                .post("/my/reset/app", &[("csrf", &zt), ("code", "123456")])
                .await
                .status;
            if status == 429 {
                break;
            }
        }
        assert_eq!(status, 429, "the limiter never answered");
        let r = z.get("/my/reset").await;
        let r = z
            .post(
                "/my/reset",
                &[("csrf", &csrf(&r.body)), ("username", "zed")],
            )
            .await;
        assert_eq!(r.status, 429);
        assert!(r.body.contains("Too many attempts"));
    });
}

// ---- two-step methods as proofs: push and phone codes ----------------------------

/// The reference device answers the oldest request with `args`
/// (`approve --number N`, `deny`); asserts the word it prints.
fn device_answers(accounts: &std::path::Path, args: &[&str], word: &str) {
    let mut all = args.to_vec();
    all.extend(["--wait", "20"]);
    let out = twostep_e2e::authenticator(accounts, &all);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        word,
        "{}",
        twostep_e2e::show_output(&out)
    );
}

/// The number a push page shows to choose in the app.
fn number_shown(body: &str) -> String {
    let at = body
        .find("class=\"push-number\"")
        .expect("a number on the page");
    body[at..]
        .split("</span>")
        .nth(1)
        .expect("number")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// The audit results of `action` for `user`, oldest first.
async fn audited(reg: &Registry, user: &str, action: &str) -> Vec<String> {
    let mut r: Vec<String> = reg
        .admin_client()
        .audit(1000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == action && e.username.as_deref() == Some(user))
        .map(|e| e.result.unwrap_or_default())
        .collect();
    r.reverse();
    r
}

/// Waits (at most 10 s) until the gateway got `n` requests.
fn gateway_got(gw: &gateway_support::Gateway, n: usize) -> gateway_support::Got {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.requests().len() < n {
        assert!(
            Instant::now() < deadline,
            "the gateway got {:?}",
            gw.requests()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The registry keeps the code's row once the gateway answered.
    std::thread::sleep(Duration::from_millis(300));
    gw.last()
}

/// Enrols a push device named `name` for `user` (`twostep enrol --push`,
/// activated by the reference device); its accounts file, in `dir`.
fn push_device(reg: &Registry, dir: &std::path::Path, user: &str, name: &str) -> PathBuf {
    let out = cli(reg, &["enrol", user, "--push", "--no-qr"], None);
    let uri = out
        .lines()
        .find_map(|l| l.strip_prefix("uri:"))
        .expect("uri: line")
        .trim()
        .to_owned();
    let accounts = dir.join(format!("{user}-authenticator.json"));
    let added = twostep_e2e::authenticator(&accounts, &["add", &uri, "--name", name]);
    assert!(
        added.status.success(),
        "{}",
        twostep_e2e::show_output(&added)
    );
    accounts
}

#[test]
fn push_and_text_message_prove_a_reset_and_unknown_names_look_the_same() {
    use gateway_support::{gateways_toml, phone, Gateway};
    use twostep_common::phone::Channel;
    let sms = Gateway::start(200);
    let voice = Gateway::start(200);
    let dir = tempfile::tempdir().expect("tmp");
    let reg = Registry::start_with(
        None,
        &format!(
            "{}\n[api.push]\nmax_challenges = 100\nchallenge_lifetime = 8\nnumber_matching = false\n",
            gateways_toml(dir.path(), sms.port, voice.port)
        ),
    );
    add_user_with_password(&reg, "pia");
    // pia's phone app approves pushes; her phone takes text messages.
    let accounts = push_device(&reg, dir.path(), "pia", "Pia's phone");
    phone(&reg, "pia", Channel::Sms, "+15551234567", false);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let w = Web::new(&reg.url, None);
        let page = begin_reset(&w, "pia").await;
        let (pia_shape, ways) = shape(&page.body, "pia");
        assert_eq!(
            ways,
            ["Approve a request in my app", "Text me a code"],
            "only what pia has"
        );
        let t = csrf(&page.body);

        // A denied push proves nothing.
        let r = w.post("/my/reset/push/send", &[("csrf", &t)]).await;
        assert_eq!(location(&r), "/my/reset/push", "{}", r.body);
        let pushed = w.get("/my/reset/push").await;
        assert!(
            pushed.body.contains("/my/reset/push-status"),
            "{}",
            pushed.body
        );
        assert!(!pushed.body.contains("Pia's phone"), "no device names");
        let pending = twostep_e2e::authenticator(&accounts, &["pending", "--json"]);
        let pending = String::from_utf8_lossy(&pending.stdout).into_owned();
        assert!(pending.contains("portal-reset"), "{pending}");
        device_answers(&accounts, &["deny"], "denied");
        // Whoever started the reset may not be pia: the page shows the
        // denial as a request still waiting, then timed out, as a
        // decoy's push that nobody answers; only the audit says denied.
        let r = w.get("/my/reset/push-status").await;
        assert_eq!(r.body, r#"{"status":"pending"}"#);
        let r = w.post("/my/reset/push", &[("csrf", &t)]).await;
        assert!(
            said(&r).contains("haven't received your answer"),
            "{}",
            r.body
        );
        assert!(!r.body.contains("denied"), "{}", r.body);
        let r = w.get("/my/reset/password").await;
        assert_eq!(location(&r), "/my/reset/verify");
        tokio::time::sleep(Duration::from_secs(9)).await;
        let r = w.get("/my/reset/push-status").await;
        assert_eq!(r.body, r#"{"status":"expired"}"#);
        let r = w.post("/my/reset/push", &[("csrf", &t)]).await;
        assert!(said(&r).contains("The request timed out"), "{}", r.body);
        let r = w.get("/my/reset/password").await;
        assert_eq!(location(&r), "/my/reset/verify");

        // Approved with the number shown: the app is proven, one more
        // kind is asked for (pia has two).
        w.post("/my/reset/push/send", &[("csrf", &t)]).await;
        let pushed = w.get("/my/reset/push").await;
        let n = number_shown(&pushed.body);
        // A reset's push carries a number to match even with
        // `number_matching = false` (as this registry has).
        assert_eq!(n.len(), 2, "number matching: {}", pushed.body);
        device_answers(&accounts, &["approve", "--number", &n], "approved");
        let r = w.post("/my/reset/push", &[("csrf", &t)]).await;
        assert_eq!(location(&r), "/my/reset/verify", "{}", r.body);
        let r = w.get("/my/reset/password").await;
        assert_eq!(location(&r), "/my/reset/verify", "one kind is not enough");
        let page = w.get("/my/reset/verify").await;
        assert!(
            said(&page).contains("Done: authenticator app"),
            "{}",
            page.body
        );
        assert_eq!(shape(&page.body, "pia").1, ["Text me a code"]);
        // The approval is used once: Continue again proves nothing more.
        let r = w.post("/my/reset/push", &[("csrf", &t)]).await;
        assert_eq!(location(&r), "/my/reset/verify");

        // A text message: a wrong code refused, the one the gateway got
        // proves the phone, the same code a second time is refused.
        let before = sms.requests().len();
        let r = w
            .post("/my/reset/phone/send", &[("csrf", &t), ("channel", "sms")])
            .await;
        assert_eq!(location(&r), "/my/reset/phone", "{}", r.body);
        let code = gateway_got(&sms, before + 1).code();
        assert!(
            sms.last().body.contains("%2B15551234567"),
            "{:?}",
            sms.last()
        );
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let r = w
            .post("/my/reset/phone", &[("csrf", &t), ("code", wrong)])
            .await;
        assert!(said(&r).contains("That code didn't work"), "{}", r.body);
        let r = w.get("/my/reset/password").await;
        assert_eq!(location(&r), "/my/reset/verify");
        let r = w
            .post("/my/reset/phone", &[("csrf", &t), ("code", &code)])
            .await;
        assert_eq!(location(&r), "/my/reset/password", "{}", r.body);
        let r = w
            .post("/my/reset/phone", &[("csrf", &t), ("code", &code)])
            .await;
        assert!(said(&r).contains("was used already"), "{}", r.body);
        set_new_password(&w, &t).await;
        let r = Web::new(&reg.url, None).sign_in("pia", NEW_PASSWORD).await;
        assert!(
            location(&r).starts_with("/my/sign-in/"),
            "the new password leads to the second factor: {}",
            r.body
        );
        assert_eq!(
            audited(&reg, "pia", "portal.reset_push").await,
            ["sent", "sent"]
        );
        let proofs = audited(&reg, "pia", "portal.reset_proof").await;
        assert_eq!(
            proofs,
            [
                "push_denied",
                "app",
                "wrong_phone_code",
                "phone",
                "phone_code_gone"
            ]
        );
        assert_eq!(audited(&reg, "pia", "portal.reset_phone").await, ["sent"]);

        // A name nobody has: the same page shape, a push that shows a
        // number and only times out, a "code sent" page that sent nothing.
        let u = Web::new(&reg.url, None);
        let ub = begin_reset(&u, "nobody").await;
        let (u_shape, u_ways) = shape(&ub.body, "nobody");
        assert_eq!(u_shape, pia_shape);
        let all = [
            "Approve a request in my app",
            "Enter a code from my authenticator app",
            "Text me a code",
            "Call me with a code",
            "Answer my security questions",
        ];
        assert!(
            u_ways.iter().all(|w| all.contains(&w.as_str())),
            "{u_ways:?}"
        );
        let ut = token(&u).await;
        let r = u.post("/my/reset/push/send", &[("csrf", &ut)]).await;
        assert_eq!(location(&r), "/my/reset/push");
        let up = u.get("/my/reset/push").await;
        assert_eq!(number_shown(&up.body).len(), 2);
        let strip_number = |b: &str, user: &str| {
            let n = number_shown(b);
            plain(b, user).replace(&format!("</span>{n}</p>"), "</span>NN</p>")
        };
        // The seconds left differ by the time between the two.
        let seconds = |b: String| {
            let at = b.find("data-push-seconds=\"").map(|i| i + 19).unwrap_or(0);
            let mut b = b;
            if let Some(end) = b[at..].find('"') {
                b.replace_range(at..at + end, "S");
            }
            b
        };
        let k = Web::new(&reg.url, None);
        let kb = begin_reset(&k, "pia").await;
        let kt = csrf(&kb.body);
        k.post("/my/reset/push/send", &[("csrf", &kt)]).await;
        let kp = k.get("/my/reset/push").await;
        assert_eq!(
            seconds(strip_number(&kp.body, "pia")),
            seconds(strip_number(&up.body, "nobody"))
        );
        let r = u.get("/my/reset/push-status").await;
        assert_eq!(r.body, r#"{"status":"pending"}"#);
        let r = u.post("/my/reset/push", &[("csrf", &ut)]).await;
        assert!(
            said(&r).contains("haven't received your answer"),
            "{}",
            r.body
        );
        // After the challenge lifetime (8 s here), as an unanswered one.
        tokio::time::sleep(Duration::from_secs(9)).await;
        let r = u.get("/my/reset/push-status").await;
        assert_eq!(r.body, r#"{"status":"expired"}"#);
        let r = u.post("/my/reset/push", &[("csrf", &ut)]).await;
        assert!(said(&r).contains("The request timed out"), "{}", r.body);
        let kr = k.post("/my/reset/push", &[("csrf", &kt)]).await;
        assert_eq!(plain(&kr.body, "pia"), plain(&r.body, "nobody"));
        // A text message to nobody: nothing reaches the gateway, and the
        // page and the refusals read the same as pia's.
        let before = sms.requests().len();
        let r = u
            .post("/my/reset/phone/send", &[("csrf", &ut), ("channel", "sms")])
            .await;
        assert_eq!(location(&r), "/my/reset/phone");
        let r = k
            .post("/my/reset/phone/send", &[("csrf", &kt), ("channel", "sms")])
            .await;
        assert_eq!(location(&r), "/my/reset/phone");
        gateway_got(&sms, before + 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sms.requests().len(), before + 1, "nothing sent for nobody");
        let kc = k.get("/my/reset/phone").await;
        let uc = u.get("/my/reset/phone").await;
        assert_eq!(plain(&kc.body, "pia"), plain(&uc.body, "nobody"));
        for _ in 0..3 {
            let kw = k
                .post("/my/reset/phone", &[("csrf", &kt), ("code", "123456")])
                .await;
            let uw = u
                .post("/my/reset/phone", &[("csrf", &ut), ("code", "123456")])
                .await;
            assert_eq!(plain(&kw.body, "pia"), plain(&uw.body, "nobody"));
        }
        let r = u.get("/my/reset/password").await;
        assert_eq!(location(&r), "/my/reset/verify");
        // A call: the page says so, and nothing reaches the gateway.
        let calls = voice.requests().len();
        let r = u
            .post(
                "/my/reset/phone/send",
                &[("csrf", &ut), ("channel", "voice")],
            )
            .await;
        assert_eq!(location(&r), "/my/reset/phone");
        let r = u.get("/my/reset/phone").await;
        assert!(r.body.contains("Answer your phone"), "{}", r.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(voice.requests().len(), calls);
        assert_eq!(
            audited(&reg, "nobody", "portal.reset_phone").await,
            ["no_user", "no_user"]
        );
        assert_eq!(
            audited(&reg, "nobody", "portal.reset_push").await,
            ["no_user"]
        );
    });

    // The new screens in Chromium, for pia (JavaScript on: the live wait).
    let driver = Driver::start();
    let c = rt.block_on(driver.browser_js(true));
    rt.block_on(async {
        c.goto(&format!("{}/my/reset", reg.url))
            .await
            .expect("goto");
        fill(&c, "username", "pia").await;
        click(&c, "Next").await;
        let t = text(&c).await;
        assert!(t.contains("Approve a request in my app"), "{t}");
        shot(&c, "reset-60-choose-push-or-text").await;
        click_css(&c, "form[action='/my/reset/push/send'] button").await;
        assert_eq!(path(&c).await, "/my/reset/push");
        let t = text(&c).await;
        assert!(t.contains("Approve the request in your app"), "{t}");
        shot(&c, "reset-61-push-wait").await;
        // Reported as fraud on the phone: the live wait goes on waiting
        // until the request's lifetime is over, then shows it timed out,
        // as for a name nobody has; nothing is proven, and the next
        // request is blocked (it looks sent, and never reaches the phone).
        device_answers(&accounts, &["fraud"], "fraud");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !text(&c).await.contains("The request timed out") {
            assert!(Instant::now() < deadline, "{}", text(&c).await);
            assert!(!text(&c).await.contains("fraud"), "{}", text(&c).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shot(&c, "reset-63-push-fraud").await;
        click_css(&c, "form[action='/my/reset/push/send'] button").await;
        assert_eq!(path(&c).await, "/my/reset/push");
        assert!(text(&c).await.contains("Approve the request in your app"));
        assert_eq!(
            audited(&reg, "pia", "portal.reset_push")
                .await
                .last()
                .map(String::as_str),
            Some("blocked")
        );
        let pending = twostep_e2e::authenticator(&accounts, &["pending", "--json"]);
        assert_eq!(String::from_utf8_lossy(&pending.stdout).trim(), "[]");
        assert_eq!(
            audited(&reg, "pia", "portal.reset_proof")
                .await
                .last()
                .map(String::as_str),
            Some("push_fraud")
        );
        c.goto(&format!("{}/my/reset/verify", reg.url))
            .await
            .expect("goto");
        click_css(&c, "form[action='/my/reset/phone/send'] button").await;
        assert_eq!(path(&c).await, "/my/reset/phone");
        assert!(text(&c).await.contains("Check your phone"));
        shot(&c, "reset-62-text-code").await;
    });
}

// ---- PAM: password-reset methods are no second factor ------------------------------

#[test]
fn reset_pushes_a_stranger_starts_leave_the_users_login_pushes() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = Registry::start_with(None, "[api.push]\nmax_challenges = 2\n");
    add_user_with_password(&reg, "quin");
    push_device(&reg, dir.path(), "quin", "Quin's phone");
    let key = reg.add_host("vpn1", twostep_common::api::HostKind::Radius);
    let host = reg.host_client(&key);
    let login = || {
        block_on(host.start_push(&twostep_common::push::StartPush {
            username: "quin".into(),
            context: Default::default(),
        }))
        .expect("start a login push")
        .result
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // A stranger sends three reset pushes: two reach the phone, the
        // third is over the limit (the page looks the same).
        let w = Web::new(&reg.url, None);
        let page = begin_reset(&w, "quin").await;
        let t = csrf(&page.body);
        for _ in 0..3 {
            let r = w.post("/my/reset/push/send", &[("csrf", &t)]).await;
            assert_eq!(location(&r), "/my/reset/push", "{}", r.body);
        }
        assert_eq!(
            audited(&reg, "quin", "portal.reset_push").await,
            ["sent", "sent", "rate_limited"]
        );
    });
    // quin's own logins still get their two pushes, then the limit.
    use twostep_common::push::StartResult;
    assert_eq!(login(), StartResult::Sent);
    assert_eq!(login(), StartResult::Sent);
    assert_eq!(login(), StartResult::RateLimited);
}

#[test]
fn only_email_and_questions_is_not_enrolled_for_pam() {
    use pam_support::{Fixture, PERM_DENIED};
    let smtp = Smtp::start();
    let f = Fixture::with_registry(Registry::start_with(None, &smtp.api_toml()));
    f.config("deny", "", "unenrolled = \"deny\"\n");
    f.service("deny", "auth required TWOSTEP CONFIG(deny)\n");
    add_user_with_password(&f.reg, "carol");
    f.reg.add_user("newbie"); // nothing at all
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let web = Web::new(&f.reg.url, None);
        let r = web.sign_in("carol", PASSWORD).await;
        assert_eq!(location(&r), "/my/security-info");
        add_reset_methods(&web, &smtp, "carol@example.test", 1).await;
        let privacy = said(&web.get("/my/privacy").await);
        assert!(
            privacy.contains("Email address carol@example.test; 3 security questions"),
            "{privacy}"
        );
        let page = web.get("/my/security-info").await;
        assert!(page.body.contains("carol@example.test"));
        assert!(page.body.contains("3 questions answered"));
        assert!(said(&page).contains("You haven't set up a sign-in method yet"));
        // The page's sign-in asks no second factor either: straight to
        // Security info, as for a user with nothing.
        let again = Web::new(&f.reg.url, None);
        assert_eq!(
            location(&again.sign_in("carol", PASSWORD).await),
            "/my/security-info"
        );
    });
    let regs = block_on(f.reg.host_client(&f.key).registrations("carol"))
        .expect("lookup")
        .expect("known");
    assert!(regs.methods.is_empty(), "{regs:?}");
    assert!(!regs.is_enrolled());
    assert_eq!(method_count(&f.reg, "carol"), 0);
    let carol = f.auth("deny", "carol", None, "");
    let newbie = f.auth("deny", "newbie", None, "");
    for r in [&carol, &newbie] {
        r.expect(false, "PAM_PERM_DENIED");
        assert_eq!(r.pam_line(), PERM_DENIED);
        assert_eq!(r.prompts("Verification code: "), 0, "{r:?}");
    }
    assert_eq!(carol.module_result(), newbie.module_result());

    // RADIUS (otp-only): the same "second factor not set up" for both.
    use radius_support::{auth, client_toml, hex, random_bytes, Radiusd};
    let host_key = f
        .reg
        .add_host("radius-1", twostep_common::api::HostKind::Radius);
    let state_key = f.dir.path().join("state.key");
    twostep_e2e::write_secret(&state_key, &format!("{}\n", hex(&random_bytes(32))));
    let nas = f.dir.path().join("nas.secret");
    twostep_e2e::write_secret(&nas, "reset-nas-secret-1\n");
    let port = twostep_e2e::free_udp_port();
    let cfg = f.dir.path().join("radiusd.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n\n{}\n[radius]\nlisten = \"127.0.0.1:{port}\"\nstate_key_file = {:?}\n{}",
            f.reg.registry_toml(&host_key),
            state_key.display().to_string(),
            client_toml("vpn", "127.0.0.1/32", &nas, "otp-only", "")
        ),
    )
    .expect("radiusd config");
    let _radiusd = Radiusd::start(&cfg, port, &f.dir.path().join("radiusd.log"));
    for user in ["carol", "newbie"] {
        let r = auth(port, "reset-nas-secret-1", user, "123456", &[]);
        r.expect("Access-Reject");
        assert_eq!(
            r.attr("Reply-Message"),
            Some("\"second factor not set up\""),
            "{user}"
        );
    }
}

// ---- STARTTLS required, the SMTP password a secret file ----------------------------

#[test]
fn starttls_is_required_by_default_and_the_password_file_is_a_secret() {
    // The DebuggingServer offers no STARTTLS: with the default
    // `starttls = true` nothing is sent to it.
    let smtp = Smtp::start();
    let toml = format!(
        "\n[api.smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"no-reply@example.test\"\ntimeout = 5\n",
        smtp.port
    );
    let reg = Registry::start_with(None, &toml);
    add_user_with_password(&reg, "erin");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let web = Web::new(&reg.url, None);
        web.sign_in("erin", PASSWORD).await;
        let page = web.get("/my/security-info/email").await;
        let token = csrf(&page.body);
        let r = web
            .post(
                "/my/security-info/email",
                &[("csrf", &token), ("address", "erin@example.test")],
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(
            said(&r).contains("We couldn't send a code to that address"),
            "{}",
            r.body
        );
        // Nothing saved: the Security info page has no address.
        let page = web.get("/my/security-info").await;
        assert!(!page.body.contains("erin@example.test"));
        assert!(page.body.contains("None yet"));
    });
    assert!(smtp.messages().is_empty(), "{:?}", smtp.messages());
    let log = reg.log();
    assert!(
        log.contains("could not send the code proving a password-reset address"),
        "{log}"
    );

    // `--check` refuses an SMTP password file others can read.
    let pw = reg.dir.path().join("smtp.password");
    std::fs::write(&pw, "smtp-secret-password\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let text = std::fs::read_to_string(&reg.config_path)
        .expect("config")
        .replace(
            "from = \"no-reply@example.test\"",
            &format!(
                "from = \"no-reply@example.test\"\nusername = \"twostep\"\npassword_file = {:?}",
                pw.display().to_string()
            ),
        );
    let config = reg.dir.path().join("with-password.toml");
    std::fs::write(&config, text).expect("write config");
    let check = || {
        twostep_e2e::wait_bounded(
            Command::new(twostep_e2e::bin("twostep-api"))
                .arg("--config")
                .arg(&config)
                .arg("--check")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("twostep-api --check"),
            Duration::from_secs(30),
        )
    };
    let out = check();
    let said = twostep_e2e::show_output(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("smtp.password") && said.contains("0640"),
        "{said}"
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = check();
    assert!(out.status.success(), "{}", twostep_e2e::show_output(&out));
}
