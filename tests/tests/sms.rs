//! Text-message and phone-call codes end to end: a small HTTP server
//! started here is the `[api.sms]` / `[api.voice]` gateway and records
//! each request it gets (a real HTTP exchange with the registry); the
//! code it received logs the user in through pamtester (the built
//! pam_twostep.so under libpam-wrapper) and radclient (a real
//! twostep-radiusd, challenge and append modes) once and not twice; a
//! gateway answering 500 and one that cannot be reached give a clear
//! message and no login; the sixth send within the hour is refused; and
//! in a real headless Chromium the Security info page adds a number only
//! once the code sent to it is typed (a wrong one refused), then signs in
//! with a code asked for by "Text me a code". Screenshots go to
//! `target/portal-screenshots/` (`sms-*`).

mod gateway_support;
mod pam_support;
mod portal_support;
mod radius_support;

use gateway_support::{gateways_toml, phone, Gateway};

use pam_support::{pamtester_script, AtPrompt};
use radius_support::{auth, client_toml, Env};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use twostep_common::api::{AuthContext, HostKind};
use twostep_common::phone::{Channel, EnrolPhone, SendCode, SendResult};
use twostep_e2e::{block_on, free_tcp_port, Registry};

/// A PAM service `sms` (pam_twostep alone) for `env`'s registry.
fn pam_service(env: &Env) -> PathBuf {
    let key = env.reg.add_host("pam-sms", HostKind::Ssh);
    let dir = env.dir.path();
    let config = dir.join("pam.toml");
    std::fs::write(
        &config,
        format!("version = 1\n{}\n[pam]\n", env.reg.registry_toml(&key)),
    )
    .expect("pam.toml");
    let svc = dir.join("svc");
    std::fs::create_dir_all(&svc).expect("svc");
    std::fs::write(
        svc.join("sms"),
        format!(
            "auth required {} config={}\n",
            pam_support::module().display(),
            config.display()
        ),
    )
    .expect("service");
    svc
}

/// Types `answer` at `prompt`.
fn say<'a>(prompt: &'a str, answer: impl Into<String> + 'a) -> (&'a str, AtPrompt<'a>) {
    let a = answer.into();
    (prompt, Box::new(move |_: &str| Some(a)))
}

/// Types the code the gateway received last, once `prompt` is shown.
fn code_from<'a>(prompt: &'a str, gw: &'a Gateway) -> (&'a str, AtPrompt<'a>) {
    (prompt, Box::new(move |_: &str| Some(gw.last().code())))
}

/// Everything pamtester showed (prompts, messages, log).
fn shown(r: &pam_support::Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

fn audit(reg: &Registry, user: &str, action: &str) -> Vec<(String, String)> {
    block_on(reg.admin_client().audit(1000))
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == action && e.username.as_deref() == Some(user))
        .map(|e| (e.result.unwrap_or_default(), e.detail.unwrap_or_default()))
        .collect()
}

#[test]
fn sent_code_logs_in_once_through_pam_and_radius() {
    let sms = Gateway::start(201);
    let voice = Gateway::start(200);
    let scratch = tempfile::tempdir().expect("tmp");
    let env = Env::with_api(&gateways_toml(scratch.path(), sms.port, voice.port));
    let svc = pam_service(&env);

    // sam: a phone number only (the default): the code goes out at once.
    env.reg.add_user("sam");
    phone(&env.reg, "sam", Channel::Sms, "+1 555 010 0042", false);
    let sent = "Code sent by text message to ••42: ";
    let r = pamtester_script(&svc, "sms", "sam", None, vec![code_from(sent, &sms)]);
    r.expect(true, "PAM_SUCCESS");
    let got = sms.last();
    assert_eq!(got.method, "POST");
    assert_eq!(got.target, "/2010-04-01/Accounts/AC123/Messages.json");
    assert_eq!(got.header("authorization"), Some("Basic QUMxMjM6c2VjcmV0"));
    assert_eq!(
        got.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        got.body.starts_with(
            "To=%2B15550100042&From=%2B15550000000&Body=Your+twostep+verification+code+is+"
        ),
        "{}",
        got.body
    );
    let first = got.code();
    assert!(!r.stderr.contains(&first), "the code is never logged");
    assert!(!env.reg.log().contains(&first), "nor by the registry");
    // The same code again: a new one is sent, the old one is a replay.
    let r = pamtester_script(&svc, "sms", "sam", None, vec![say(sent, first.clone())]);
    assert!(!r.ok, "a used code logs in once: {r:#?}");
    assert!(
        shown(&r).contains("That code was used already"),
        "{}",
        shown(&r)
    );
    assert_eq!(sms.requests().len(), 2);
    let accepts = audit(&env.reg, "sam", "verify");
    assert!(
        accepts
            .iter()
            .any(|(res, d)| res == "accept" && d.contains("sent_code channel=sms")),
        "{accepts:?}"
    );
    assert!(
        accepts.iter().any(|(res, _)| res == "replay"),
        "{accepts:?}"
    );
    let sends = audit(&env.reg, "sam", "otp.send");
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert!(sends.iter().all(|(res, d)| res == "sent"
        && d.contains("channel=sms")
        && d.contains("to=+1 ••• ••• ••42")
        && !d.contains(&first)));

    // tina: an app (the default) and a number: `sms` at the prompt.
    let secret = env.enrolled_user("tina");
    phone(&env.reg, "tina", Channel::Sms, "+15550100042", false);
    let r = pamtester_script(
        &svc,
        "sms",
        "tina",
        None,
        vec![
            say("Verification code, or type sms: ", "sms"),
            code_from(sent, &sms),
        ],
    );
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(sms.requests().len(), 3);
    // Her app's codes still work.
    let r = pamtester_script(
        &svc,
        "sms",
        "tina",
        None,
        vec![say(
            "Verification code, or type sms: ",
            pam_support::code(&secret),
        )],
    );
    r.expect(true, "PAM_SUCCESS");

    // vic: a call, JSON post, the digits spaced for text-to-speech.
    env.reg.add_user("vic");
    phone(&env.reg, "vic", Channel::Voice, "+447700900123", true);
    let r = pamtester_script(
        &svc,
        "sms",
        "vic",
        None,
        vec![code_from("Code read out by phone call to ••23: ", &voice)],
    );
    r.expect(true, "PAM_SUCCESS");
    let call = voice.last();
    assert_eq!(call.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&call.body).expect("JSON");
    assert_eq!(v["to"], "+447700900123");
    let say_text = v["say"].as_str().unwrap();
    let c = call.code();
    let spaced: Vec<String> = c.chars().map(String::from).collect();
    assert!(say_text.contains(&spaced.join(" ")), "{say_text}");

    // RADIUS, challenge mode: sam's default sends at the first request.
    let radius_secret = "sms radius secret 1";
    let s = env.secret_file("vpn.secret", radius_secret);
    let challenge = env.radiusd(
        "sms-challenge",
        &client_toml("vpn", "127.0.0.1/32", &s, "challenge", ""),
    );
    let r = auth(challenge.port, radius_secret, "sam", "pw", &[]);
    r.expect("Access-Challenge");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"Code sent by text message to ••42\""),
        "{}",
        r.output
    );
    let code = sms.last().code();
    let state = format!("State = {}", r.state());
    auth(challenge.port, radius_secret, "sam", &code, &[&state]).expect("Access-Accept");
    // Once: the same code on a new challenge is refused as a replay.
    let r = auth(challenge.port, radius_secret, "sam", "pw", &[]);
    r.expect("Access-Challenge");
    let state = format!("State = {}", r.state());
    let r = auth(challenge.port, radius_secret, "sam", &code, &[&state]);
    r.expect("Access-Reject");
    assert!(
        r.output.contains("That code was used already"),
        "{}",
        r.output
    );
    // tina (app by default) is offered sms in the challenge, and types it.
    let r = auth(challenge.port, radius_secret, "tina", "pw", &[]);
    r.expect("Access-Challenge");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"Enter the verification code from your authenticator app, or type sms\""),
        "{}",
        r.output
    );
    let state = format!("State = {}", r.state());
    let r = auth(challenge.port, radius_secret, "tina", "sms", &[&state]);
    r.expect("Access-Challenge");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"Code sent by text message to ••42\"")
    );
    let state = format!("State = {}", r.state());
    let code = sms.last().code();
    auth(challenge.port, radius_secret, "tina", &code, &[&state]).expect("Access-Accept");

    // RADIUS, append mode: `password,sms` answers with an Access-Challenge.
    let append = env.radiusd(
        "sms-append",
        &client_toml("vpn", "127.0.0.1/32", &s, "append", ""),
    );
    let r = auth(append.port, radius_secret, "tina", "pw,sms", &[]);
    r.expect("Access-Challenge");
    assert_eq!(
        r.attr("Reply-Message"),
        Some("\"Code sent by text message to ••42\"")
    );
    let state = format!("State = {}", r.state());
    let code = sms.last().code();
    auth(append.port, radius_secret, "tina", &code, &[&state]).expect("Access-Accept");
    let r = auth(
        append.port,
        radius_secret,
        "tina",
        &format!("pw,{code}"),
        &[],
    );
    r.expect("Access-Reject");
}

#[test]
fn failing_gateways_refuse_clearly_and_sends_are_limited() {
    let sms = Gateway::start(500);
    // Nothing listens on the voice gateway's port.
    let dead = free_tcp_port();
    let scratch = tempfile::tempdir().expect("tmp");
    let env = Env::with_api(&gateways_toml(scratch.path(), sms.port, dead));
    let svc = pam_service(&env);

    env.reg.add_user("una");
    phone(&env.reg, "una", Channel::Sms, "+15550100042", false);
    let r = pamtester_script(
        &svc,
        "sms",
        "una",
        None,
        vec![(
            "Could not send the text message; try again later or use another method",
            Box::new(|_: &str| None),
        )],
    );
    assert!(!r.ok, "{r:#?}");
    assert!(
        shown(&r).contains("Could not send the text message"),
        "{}",
        shown(&r)
    );
    // The gateway got a code but said 500: that code logs nobody in.
    let code = sms.last().code();
    let r = pamtester_script(
        &svc,
        "sms",
        "una",
        None,
        vec![(
            "Could not send the text message",
            Box::new(move |_: &str| Some(code)),
        )],
    );
    assert!(!r.ok, "{r:#?}");
    let log = env.reg.log();
    assert!(log.contains("the gateway answered HTTP 500"), "{log}");
    assert!(
        !log.contains(&sms.last().code()),
        "the code is never logged"
    );
    let sends = audit(&env.reg, "una", "otp.send");
    assert!(
        sends
            .iter()
            .all(|(res, d)| res == "could_not_send" && d.contains("HTTP 500")),
        "{sends:?}"
    );

    // A call through a gateway that cannot be reached.
    env.reg.add_user("vic");
    let cli = |args: &[&str]| {
        std::process::Command::new(twostep_e2e::bin("twostep"))
            .arg("--config")
            .arg(&env.reg.config_path)
            .args(args)
            .output()
            .expect("run twostep")
    };
    let bad = cli(&["enrol", "vic", "--call", "0155 5010"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("international form"), "{err}");
    let ok = cli(&["enrol", "vic", "--call", "+1 555 010 0077", "--default"]);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        said.contains("(phone call, +1 ••• ••• ••77) for vic; the default"),
        "{said}"
    );
    let r = pamtester_script(
        &svc,
        "sms",
        "vic",
        None,
        vec![("Could not place the phone call", Box::new(|_: &str| None))],
    );
    assert!(!r.ok, "{r:#?}");
    let radius_secret = "sms radius secret 2";
    let s = env.secret_file("vpn.secret", radius_secret);
    let append = env.radiusd(
        "fail-append",
        &client_toml("vpn", "127.0.0.1/32", &s, "append", ""),
    );
    let r = auth(append.port, radius_secret, "vic", "pw,call", &[]);
    r.expect("Access-Reject");
    assert!(
        r.output.contains("Could not place the phone call"),
        "{}",
        r.output
    );
    assert!(
        env.reg.log().contains("the gateway could not be reached"),
        "{}",
        env.reg.log()
    );

    // At most 5 codes per user within the hour; sends the gateway refused
    // (an outage) do not count.
    env.reg.add_user("lim");
    phone(&env.reg, "lim", Channel::Sms, "+15550100099", false);
    let key = env.reg.add_host("sender", HostKind::Ssh);
    let host = env.reg.host_client(&key);
    let send = || {
        block_on(host.send_code(
            "lim",
            &SendCode {
                channel: Channel::Sms,
                context: AuthContext::default(),
            },
        ))
        .expect("send")
    };
    for _ in 0..4 {
        assert_eq!(send().result, SendResult::CouldNotSend);
    }
    sms.status.store(200, Ordering::SeqCst);
    for _ in 0..5 {
        let s = send();
        assert_eq!(s.result, SendResult::Sent, "{s:?}");
        assert_eq!(s.sent_to.as_deref(), Some("••99"));
    }
    assert_eq!(send().result, SendResult::RateLimited);
    let before = sms.requests().len();
    let r = pamtester_script(
        &svc,
        "sms",
        "lim",
        None,
        vec![(
            "Too many codes sent; try again later",
            Box::new(|_: &str| None),
        )],
    );
    assert!(!r.ok);
    assert!(
        shown(&r).contains("Too many codes sent; try again later"),
        "{}",
        shown(&r)
    );
    assert_eq!(sms.requests().len(), before, "no message past the limit");
    assert!(audit(&env.reg, "lim", "otp.send")
        .iter()
        .any(|(res, _)| res == "rate_limited"));
}

#[test]
fn the_page_adds_a_number_once_its_code_is_typed_and_signs_in_with_it() {
    use portal_support::{click, fill, method_count, path, shot, text, Driver, PASSWORD};
    let sms = Gateway::start(200);
    let voice = Gateway::start(200);
    let scratch = tempfile::tempdir().expect("tmp");
    let reg = Registry::start_with(None, &gateways_toml(scratch.path(), sms.port, voice.port));
    reg.add_user("pat");
    let secret = reg.enrol_totp("pat").secret_base32;
    block_on(reg.admin_client().set_password(
        "pat",
        &twostep_common::portal::SetPassword {
            password: PASSWORD.into(),
        },
    ))
    .expect("password");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let driver = Driver::start();
    let a = rt.block_on(driver.browser());
    let mut last = 0u64;
    let first = portal_support::next_code(&secret, &mut last);
    rt.block_on(async {
        a.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&a, "username", "pat").await;
        fill(&a, "password", PASSWORD).await;
        click(&a, "Sign in").await;
        assert_eq!(path(&a).await, "/my/sign-in/code");
        let t = text(&a).await;
        assert!(t.contains("Enter code"), "{t}");
        fill(&a, "code", &first).await;
        click(&a, "Verify").await;
        a.goto(&format!("{}/my/security-info/add", reg.url))
            .await
            .expect("goto add");
        a.find(fantoccini::Locator::Css("input[name=method][value=phone]"))
            .await
            .expect("Phone is offered")
            .click()
            .await
            .expect("choose phone");
        click(&a, "Add").await;
        assert_eq!(path(&a).await, "/my/security-info/phone");
        shot(&a, "sms-01-number").await;
        // Not E.164: a clear error, nothing sent.
        fill(&a, "number", "555 0100").await;
        click(&a, "Send code").await;
        let t = text(&a).await;
        assert!(
            t.contains(
                "That is not a phone number we can use: enter the number in international form"
            ),
            "{t}"
        );
        shot(&a, "sms-02-bad-number").await;
        assert!(sms.requests().is_empty());
        fill(&a, "number", "+1 (555) 010-0042").await;
        click(&a, "Send code").await;
        assert_eq!(path(&a).await, "/my/security-info/phone/code");
        let t = text(&a).await;
        assert!(
            t.contains("We texted a 6-digit code to +1 ••• ••• ••42"),
            "{t}"
        );
        // A wrong code: refused, nothing saved.
        let right = sms.last().code();
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        fill(&a, "code", wrong).await;
        click(&a, "Next").await;
        let t = text(&a).await;
        assert!(t.contains("That code didn't work"), "{t}");
        shot(&a, "sms-03-wrong-code").await;
    });
    assert_eq!(
        method_count(&reg, "pat"),
        1,
        "saved before the code was typed"
    );
    let right = sms.last().code();
    assert_eq!(sms.requests().len(), 1);
    assert!(sms.last().body.starts_with("To=%2B15550100042&"));
    rt.block_on(async {
        fill(&a, "code", &right).await;
        click(&a, "Next").await;
        assert_eq!(path(&a).await, "/my/security-info");
        let t = text(&a).await;
        assert!(t.contains("Phone number added"), "{t}");
        assert!(t.contains("Phone – text message"), "{t}");
        assert!(t.contains("+1 ••• ••• ••42"), "{t}");
        assert!(!t.contains("0100042"), "the number is shown masked: {t}");
        shot(&a, "sms-04-security-info").await;
    });
    assert_eq!(method_count(&reg, "pat"), 2);
    // The same number again, typed another way: refused before any send.
    rt.block_on(async {
        a.goto(&format!("{}/my/security-info/phone", reg.url))
            .await
            .expect("goto phone");
        fill(&a, "number", "+15550100042").await;
        click(&a, "Send code").await;
        assert_eq!(path(&a).await, "/my/security-info/phone");
        let t = text(&a).await;
        assert!(
            t.contains("+1 ••• ••• ••42 is already on your Security info for text messages."),
            "{t}"
        );
        shot(&a, "sms-04b-number-twice").await;
    });
    assert_eq!(sms.requests().len(), 1, "no code sent to a number twice");
    assert_eq!(method_count(&reg, "pat"), 2);
    let added = audit(&reg, "pat", "portal.phone");
    assert!(
        added
            .iter()
            .any(|(r, d)| r == "added" && d.contains("channel=sms number=+1 ••• ••• ••42")),
        "{added:?}"
    );
    // The enrolment's code is no login code.
    let key = reg.add_host("pam-page", HostKind::Ssh);
    let host = reg.host_client(&key);
    let v = block_on(host.verify(&twostep_common::api::VerifyRequest {
        username: "pat".into(),
        code: right.clone(),
        context: AuthContext::default(),
    }))
    .expect("verify");
    assert_ne!(v.result, twostep_common::api::VerifyResult::Accept);

    // Sign-in: the app is the default, so the page offers "Text me a code".
    let b = rt.block_on(driver.browser());
    rt.block_on(async {
        b.goto(&format!("{}/my/", reg.url)).await.expect("goto");
        fill(&b, "username", "pat").await;
        fill(&b, "password", PASSWORD).await;
        click(&b, "Sign in").await;
        assert_eq!(path(&b).await, "/my/sign-in/code");
        assert_eq!(sms.requests().len(), 1, "nothing sent before asked");
        click(&b, "Text me a code").await;
        let t = text(&b).await;
        assert!(t.contains("We texted a code to +1 ••• ••• ••42"), "{t}");
        assert!(t.contains("Send a new code"), "{t}");
        shot(&b, "sms-05-sign-in-texted").await;
        assert_eq!(sms.requests().len(), 2);
        fill(&b, "code", &sms.last().code()).await;
        click(&b, "Verify").await;
        assert_eq!(path(&b).await, "/my/");
    });
    let sends = audit(&reg, "pat", "otp.send");
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert!(sends.iter().any(|(_, d)| d.contains("new number")));
}

#[test]
fn sent_codes_on_postgresql_once_within_their_tries_and_limit() {
    let db = twostep_e2e::fresh_postgres_database();
    let sms = Gateway::start(200);
    let scratch = tempfile::tempdir().expect("tmp");
    let reg = Registry::start_with(
        Some(&db.url),
        &gateways_toml(scratch.path(), sms.port, free_tcp_port()),
    );
    reg.add_user("pg");
    phone(&reg, "pg", Channel::Sms, "+15550100042", false);
    let key = reg.add_host("pg-host", HostKind::Ssh);
    let host = reg.host_client(&key);
    let send = || {
        block_on(host.send_code(
            "pg",
            &SendCode {
                channel: Channel::Sms,
                context: AuthContext::default(),
            },
        ))
        .expect("send")
        .result
    };
    let verify = |code: &str| {
        block_on(host.verify(&twostep_common::api::VerifyRequest {
            username: "pg".into(),
            code: code.into(),
            context: AuthContext::default(),
        }))
        .expect("verify")
        .result
    };
    use twostep_common::api::VerifyResult;
    assert_eq!(send(), SendResult::Sent);
    let code = sms.last().code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(verify(wrong), VerifyResult::Reject);
    assert_eq!(verify(&code), VerifyResult::Accept);
    assert_eq!(verify(&code), VerifyResult::Replay, "once");
    // Three wrong tries end a code: the right one no longer works.
    assert_eq!(send(), SendResult::Sent);
    let code = sms.last().code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        assert_eq!(verify(wrong), VerifyResult::Reject);
    }
    block_on(reg.admin_client().unlock_user("pg")).expect("unlock");
    assert_ne!(
        verify(&code),
        VerifyResult::Accept,
        "used up by 3 wrong tries"
    );
    // A new code voids the one before.
    assert_eq!(send(), SendResult::Sent);
    let old = sms.last().code();
    assert_eq!(send(), SendResult::Sent);
    let new = sms.last().code();
    if old != new {
        assert_ne!(
            verify(&old),
            VerifyResult::Accept,
            "voided by the newer code"
        );
    }
    assert_eq!(verify(&new), VerifyResult::Accept);
    // 5 sends within the hour, then none.
    assert_eq!(send(), SendResult::Sent);
    assert_eq!(send(), SendResult::RateLimited);
    assert_eq!(sms.requests().len(), 5);
}

/// `twostep enrol --sms` refuses a number the user has for text messages
/// already, however it is typed; the same number for calls is another
/// method.
#[test]
fn the_same_number_twice_is_refused_by_the_admin_route() {
    let scratch = tempfile::tempdir().expect("tmp");
    let reg = Registry::start_with(
        None,
        &gateways_toml(scratch.path(), free_tcp_port(), free_tcp_port()),
    );
    reg.add_user("bob");
    let cli = |args: &[&str]| {
        std::process::Command::new(twostep_e2e::bin("twostep"))
            .arg("--config")
            .arg(&reg.config_path)
            .args(args)
            .output()
            .expect("run twostep")
    };
    let first = cli(&["enrol", "bob", "--sms", "+15550100042"]);
    assert!(first.status.success(), "{first:?}");
    let again = cli(&["enrol", "bob", "--sms", "+1 555 010 0042"]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bob already has +1 ••• ••• ••42 for text messages"),
        "{err}"
    );
    assert_eq!(portal_support::method_count(&reg, "bob"), 1);
    // Without the admin token the answer is the handler's 401, whatever
    // the body: nothing is learnt about bob's numbers.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/admin/users/bob/methods/phone", reg.url))
            .header("authorization", "Bearer wrong")
            .json(&EnrolPhone {
                channel: Channel::Sms,
                number: "+15550100042".into(),
                default: false,
            })
            .send()
            .await
            .expect("POST")
            .status()
            .as_u16()
    });
    assert_eq!(status, 401);
    let call = cli(&["enrol", "bob", "--call", "+1 555 010 0042"]);
    assert!(call.status.success(), "{call:?}");
    // Another user may have the same number.
    reg.add_user("amy");
    let other = cli(&["enrol", "amy", "--sms", "+15550100042"]);
    assert!(other.status.success(), "{other:?}");
    assert_eq!(portal_support::method_count(&reg, "bob"), 2);
}
