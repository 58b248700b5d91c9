//! pam_twostep.so through real libpam (pamtester under libpam-wrapper, with
//! private service files) against a real twostep-api registry, codes from
//! oathtool.

mod pam_support;

use pam_support::*;
use std::time::Duration;
use twostep_common::api::UpdateUser;
use twostep_e2e::{block_on, Registry, RegistryOptions};

const PROMPT: &str = "Verification code: ";

fn lines(answers: &[&str]) -> String {
    answers.iter().map(|a| format!("{a}\n")).collect()
}

#[test]
fn right_wrong_maxtries_replay_malformed() {
    let f = Fixture::new();
    f.config("base", "", "");
    f.service("alone", "auth required TWOSTEP CONFIG(base)\n");

    // Right code: success after one prompt.
    let alice = f.enrolled("alice");
    let good = code(&alice);
    let r = f.auth("alone", "alice", Some("198.51.100.7"), &lines(&[&good]));
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.pam_line(), SUCCESS);
    assert_eq!(r.prompts(PROMPT), 1, "{r:#?}");
    let log = r.module_log().join("\n");
    assert!(log.contains("user=\"alice\""), "{log}");
    assert!(log.contains("service=\"alone\""), "{log}");
    assert!(log.contains("rhost=\"198.51.100.7\""), "{log}");
    assert!(!r.stderr.contains(&good), "the code must never be logged");
    // The registry recorded the context: this host's name, rhost, service.
    let audit = block_on(f.reg.admin_client().audit(100)).expect("audit");
    let ev = audit
        .iter()
        .find(|e| e.action == "verify" && e.username.as_deref() == Some("alice"))
        .expect("verify event for alice");
    assert_eq!(ev.result.as_deref(), Some("accept"), "{ev:?}");
    assert_eq!(ev.remote_addr.as_deref(), Some("198.51.100.7"), "{ev:?}");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(ev.host.as_deref(), Some(hostname.trim()), "{ev:?}");
    assert!(
        ev.detail.as_deref().unwrap_or("").contains("service=alone"),
        "{ev:?}"
    );

    // The same code again: replay, refused; the next prompt says to wait
    // for the next code, and the log line names the replay.
    let r = f.auth("alone", "alice", None, &lines(&[&good]));
    r.expect(false, "PAM_AUTH_ERR");
    assert_eq!(r.pam_line(), AUTH_ERR);
    assert_eq!(
        r.prompts("That code was used already. Wait for the next code in your app."),
        1,
        "{r:#?}"
    );
    let log = r.module_log().join("\n");
    assert!(log.contains("code used already (replay)"), "{log}");
    let audit = block_on(f.reg.admin_client().audit(1)).expect("audit");
    assert_eq!(audit[0].result.as_deref(), Some("replay"), "{audit:?}");

    // One wrong code, then the user gives up: PAM_AUTH_ERR.
    let bob = f.enrolled("bob");
    let r = f.auth("alone", "bob", None, &lines(&[&wrong_code(&bob)]));
    r.expect(false, "PAM_AUTH_ERR");
    assert_eq!(r.pam_line(), AUTH_ERR);
    assert_eq!(r.prompts(PROMPT), 2, "re-prompted after a wrong code");

    // Two wrong, then right: success on the third prompt.
    let carol = f.enrolled("carol");
    let w = wrong_code(&carol);
    let r = f.auth("alone", "carol", None, &lines(&[&w, &w, &code(&carol)]));
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts(PROMPT), 3);

    // Three wrong: PAM_MAXTRIES, no fourth prompt.
    let dave = f.enrolled("dave");
    let w = wrong_code(&dave);
    let r = f.auth("alone", "dave", None, &lines(&[&w, &w, &w, &code(&dave)]));
    r.expect(false, "PAM_MAXTRIES");
    assert_eq!(r.pam_line(), MAXTRIES);
    assert_eq!(r.prompts(PROMPT), 3);

    // Malformed answers are wrong tries that never reach the registry.
    let erin = f.enrolled("erin");
    let r = f.auth(
        "alone",
        "erin",
        None,
        &lines(&["12345", "abcdef", "1234567"]),
    );
    r.expect(false, "PAM_MAXTRIES");
    let audit = block_on(f.reg.admin_client().audit(1000)).expect("audit");
    assert!(
        !audit
            .iter()
            .any(|e| e.username.as_deref() == Some("erin") && e.action.contains("verify")),
        "malformed codes reached the registry: {audit:#?}"
    );
    // ...while a well-formed wrong code does.
    assert!(
        audit
            .iter()
            .any(|e| e.username.as_deref() == Some("dave") && e.action.contains("verify")),
        "{audit:#?}"
    );
    // max_tries from the config.
    f.config("one-try", "", "max_tries = 1\n");
    f.service("one-try", "auth required TWOSTEP CONFIG(one-try)\n");
    let r = f.auth("one-try", "erin", None, &lines(&["000000x", &code(&erin)]));
    r.expect(false, "PAM_MAXTRIES");
    assert_eq!(r.prompts(PROMPT), 1);
}

#[test]
fn unenrolled_disabled_and_unknown_users() {
    let f = Fixture::new();
    f.config("deny", "", "unenrolled = \"deny\"\n");
    f.config("ignore", "", "unenrolled = \"ignore\"\n");
    f.service("deny", "auth required TWOSTEP CONFIG(deny)\n");
    f.service("ignore", "auth required TWOSTEP CONFIG(ignore)\n");
    f.service(
        "ignore-permit",
        "auth required TWOSTEP CONFIG(ignore)\nauth required pam_permit.so\n",
    );
    f.reg.add_user("newbie"); // known, no method

    for user in ["newbie", "stranger"] {
        let r = f.auth("deny", user, None, "");
        r.expect(false, "PAM_PERM_DENIED");
        assert_eq!(r.pam_line(), PERM_DENIED);
        assert_eq!(r.prompts(PROMPT), 0, "no prompt for {user}");

        // ignore: PAM_IGNORE, never PAM_SUCCESS. Alone in the stack that
        // leaves libpam with no success at all.
        let r = f.auth("ignore", user, None, "");
        r.expect(false, "PAM_IGNORE");
        assert_eq!(r.prompts(PROMPT), 0);
        // With a module after it, that module decides.
        let r = f.auth("ignore-permit", user, None, "");
        r.expect(true, "PAM_IGNORE");
    }

    // A name the registry could never hold (whitespace at an end, a '/')
    // is refused without a prompt or a registry call, even under ignore:
    // fail closed, never "unreachable".
    for odd in ["stranger ", "a/b"] {
        let r = f.auth("ignore-permit", odd, None, "");
        r.expect(false, "PAM_USER_UNKNOWN");
        assert_eq!(r.prompts(PROMPT), 0);
    }

    // Disabled: refused without a prompt, even under ignore.
    let secret = f.enrolled("gone");
    block_on(f.reg.admin_client().update_user(
        "gone",
        &UpdateUser {
            disabled: Some(true),
        },
    ))
    .expect("disable");
    let r = f.auth("ignore-permit", "gone", None, &lines(&[&code(&secret)]));
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(r.prompts(PROMPT), 0);
}

#[test]
fn exempt_group_network_and_require_groups() {
    unix_user("twostep-pam-ex", "twostep-pam-exg");
    let f = Fixture::new();
    let secret = f.enrolled("twostep-pam-ex");
    f.config("exg", "", "exempt_groups = [\"twostep-pam-exg\"]\n");
    f.config(
        "exn",
        "",
        "exempt_networks = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n",
    );
    f.config(
        "req",
        "",
        "require_groups = [\"twostep-pam-nobody-is-here\"]\n",
    );
    f.config("req-member", "", "require_groups = [\"twostep-pam-exg\"]\n");
    for s in ["exg", "exn", "req", "req-member"] {
        f.service(
            s,
            &format!("auth required TWOSTEP CONFIG({s})\nauth required pam_permit.so\n"),
        );
    }

    let r = f.auth("exg", "twostep-pam-ex", None, "");
    r.expect(true, "PAM_IGNORE");
    assert_eq!(r.prompts(PROMPT), 0);
    assert!(r
        .module_log()
        .join("\n")
        .contains("member of group twostep-pam-exg"));

    for rhost in ["192.0.2.77", "::ffff:192.0.2.78", "2001:db8::5"] {
        let r = f.auth("exn", "twostep-pam-ex", Some(rhost), "");
        r.expect(true, "PAM_IGNORE");
        assert_eq!(r.prompts(PROMPT), 0, "{rhost}");
    }
    // Outside the exempt networks the code is required.
    let r = f.auth("exn", "twostep-pam-ex", Some("198.51.100.1"), "");
    r.expect(false, "PAM_CONV_ERR");
    assert_eq!(r.prompts(PROMPT), 1);

    let r = f.auth("req", "twostep-pam-ex", None, "");
    r.expect(true, "PAM_IGNORE");
    // A member of a required group must pass.
    let w = wrong_code(&secret);
    let r = f.auth("req-member", "twostep-pam-ex", None, &lines(&[&w, &w, &w]));
    r.expect(false, "PAM_MAXTRIES");
}

/// Every result inside the stacks admins write; nobody without a valid
/// second factor ends authenticated (PAM_IGNORE passes only where the
/// stack lets the next module decide, and that module here is pam_permit).
#[test]
fn results_inside_admin_stacks() {
    let f = Fixture::new();
    f.config("base", "", "exempt_networks = [\"192.0.2.0/24\"]\n");
    let stacks = [
        (
            "required",
            "auth required TWOSTEP CONFIG(base)\nauth required pam_permit.so\n",
            true,
        ),
        (
            "requisite",
            "auth requisite TWOSTEP CONFIG(base)\nauth required pam_permit.so\n",
            true,
        ),
        (
            "done",
            "auth [success=done default=ignore] TWOSTEP CONFIG(base)\nauth requisite pam_deny.so\n",
            false,
        ),
        (
            "sufficient",
            "auth sufficient TWOSTEP CONFIG(base)\nauth required pam_deny.so\n",
            false,
        ),
    ];
    f.reg.add_user("unenrolled");
    for (i, (name, stack, ignore_passes)) in stacks.iter().enumerate() {
        f.service(name, stack);
        let user = format!("u{i}");
        let secret = f.enrolled(&user);

        let r = f.auth(name, &user, None, &lines(&[&code(&secret)]));
        r.expect(true, "PAM_SUCCESS");

        let w = wrong_code(&secret);
        let r = f.auth(name, &user, None, &lines(&[&w]));
        r.expect(false, "PAM_AUTH_ERR");
        let r = f.auth(name, &user, None, &lines(&[&w, &w, &w]));
        r.expect(false, "PAM_MAXTRIES");
        let r = f.auth(name, &user, None, "");
        r.expect(false, "PAM_CONV_ERR");

        let r = f.auth(name, "unenrolled", None, "");
        r.expect(false, "PAM_PERM_DENIED");

        let r = f.auth(name, &user, Some("192.0.2.1"), "");
        r.expect(*ignore_passes, "PAM_IGNORE");
    }
    // Registry gone, fail closed: nobody gets in through any stack.
    let mut f = f;
    f.reg.stop();
    for (i, (name, _, _)) in stacks.iter().enumerate() {
        let r = f.auth(name, &format!("u{i}"), None, "123456\n");
        r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    }
}

#[test]
fn registry_stopped_closed_and_open() {
    let mut f = Fixture::new();
    let secret = f.enrolled("alice");
    f.config("closed", "", "fail_mode = \"closed\"\n");
    f.config("open", "", "fail_mode = \"open\"\n");
    f.service("closed", "auth required TWOSTEP CONFIG(closed)\n");
    f.service("open", "auth required TWOSTEP CONFIG(open)\n");
    f.reg.stop();

    let r = f.auth("closed", "alice", None, &lines(&[&code(&secret)]));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    assert_eq!(r.pam_line(), AUTHINFO_UNAVAIL);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);

    let r = f.auth("open", "alice", None, &lines(&[&code(&secret)]));
    r.expect(true, "PAM_SUCCESS");
    let log = r.module_log().join("\n");
    // pam_wrapper shows the priority: 4 is LOG_WARNING.
    assert!(
        log.contains("SYSLOG(4)") && log.contains("fail-open"),
        "fail-open is logged at warning level: {log}"
    );

    // Back up: the normal path works again.
    f.reg.restart();
    let r = f.auth("closed", "alice", None, &lines(&[&code(&secret)]));
    r.expect(true, "PAM_SUCCESS");
}

#[test]
fn registry_black_holed_closed_and_open() {
    let f = Fixture::new();
    let port = black_hole();
    let reg = format!(
        "[registry]\nurl = \"http://127.0.0.1:{port}\"\napi_key_file = {:?}\n",
        f.key.display().to_string()
    );
    // total_timeout (2 s) cuts the request timeout (10 s) short...
    f.write_config(
        "closed",
        &format!("version = 1\n{reg}connect_timeout = 1\ntimeout = 10\n[pam]\nfail_mode = \"closed\"\ntotal_timeout = 2\n"),
    );
    // ...and the request timeout (2 s) cuts total_timeout (10 s) short.
    f.write_config(
        "open",
        &format!("version = 1\n{reg}connect_timeout = 1\ntimeout = 2\n[pam]\nfail_mode = \"open\"\ntotal_timeout = 10\n"),
    );
    f.service("closed", "auth required TWOSTEP CONFIG(closed)\n");
    f.service("open", "auth required TWOSTEP CONFIG(open)\n");

    let r = f.auth("closed", "alice", None, "123456\n");
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    assert!(
        r.elapsed >= Duration::from_millis(1900) && r.elapsed < Duration::from_millis(3500),
        "closed returned after {:?}",
        r.elapsed
    );
    let r = f.auth("open", "alice", None, "123456\n");
    r.expect(true, "PAM_SUCCESS");
    assert!(
        r.elapsed >= Duration::from_millis(1900) && r.elapsed < Duration::from_millis(3500),
        "open returned after {:?}",
        r.elapsed
    );
}

/// `forward_pass` in front of `pam_unix.so use_first_pass`: one prompt,
/// the code checked by the registry, the password by pam_unix (a real
/// /etc/shadow entry of a test user). pam_matrix cannot stand in here: it
/// always prompts and ignores PAM_AUTHTOK.
#[test]
fn forward_pass_hands_the_password_to_pam_unix() {
    let user = "twostep-pam-fwd";
    unix_user(user, "twostep-pam-fwdg");
    set_password(user, "s3cret pass,");
    let f = Fixture::new();
    let secret = f.enrolled(user);
    f.config("fwd", "", "");
    f.service(
        "fwd",
        "auth required TWOSTEP CONFIG(fwd) forward_pass\nauth required pam_unix.so use_first_pass\n",
    );
    let fwd_prompt = "Password and verification code: ";

    // Password and code in one answer: both checked, one prompt only.
    let r = f.auth(
        "fwd",
        user,
        None,
        &format!("s3cret pass,{}\n", code(&secret)),
    );
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts(fwd_prompt), 1, "{r:#?}");
    assert!(
        !r.stderr.contains("Password: "),
        "pam_unix prompted: {r:#?}"
    );

    // Right code, wrong password: pam_unix refuses.
    let r = f.auth("fwd", user, None, &format!("wrong{}\n", code(&secret)));
    assert!(!r.ok, "{r:#?}");
    assert_eq!(r.pam_line(), AUTH_ERR);

    // Right password, wrong codes: refused by pam_twostep.
    let w = format!("s3cret pass,{}", wrong_code(&secret));
    let r = f.auth("fwd", user, None, &lines(&[&w, &w, &w]));
    r.expect(false, "PAM_MAXTRIES");
    assert_eq!(r.prompts(fwd_prompt), 3);
    // No code at the end: a wrong try; the password is not forwarded.
    let r = f.auth("fwd", user, None, "s3cret pass,\n");
    r.expect(false, "PAM_AUTH_ERR");
    assert!(
        !r.stderr.contains("s3cret"),
        "the password must never be logged"
    );
}

/// The three-line stack: `forward_pass stash_code`, `requisite pam_unix.so
/// use_first_pass`, `verify_stashed`. A wrong password with the right code
/// fails and leaves the code unused (no verify reached the registry), so
/// the right password with the same code gets in right after; that code
/// is then used up.
#[test]
fn stash_code_consumes_the_code_only_after_the_password() {
    let user = "twostep-pam-stash";
    unix_user(user, "twostep-pam-stashg");
    set_password(user, "stash pass 1");
    let f = Fixture::new();
    let secret = f.enrolled(user);
    f.config("stash", "", "");
    f.service(
        "stash",
        "auth required TWOSTEP CONFIG(stash) forward_pass stash_code
\
         auth requisite pam_unix.so use_first_pass
\
         auth required TWOSTEP CONFIG(stash) verify_stashed
",
    );
    let verifies = || {
        block_on(f.reg.admin_client().audit(1000))
            .expect("audit")
            .into_iter()
            .filter(|e| e.action == "verify" && e.username.as_deref() == Some(user))
            .filter_map(|e| e.result)
            .collect::<Vec<_>>()
    };
    let good = code(&secret);

    let r = f.auth("stash", user, None, &format!("wrong pass{good}\n"));
    assert!(!r.ok, "{r:#?}");
    assert_eq!(r.pam_line(), AUTH_ERR, "pam_unix's failure ends the stack");
    assert_eq!(r.prompts("Password and verification code: "), 1);
    let log = r.module_log().join("\n");
    assert!(log.contains("code kept for verify_stashed"), "{log}");
    assert!(!log.contains("result=PAM_SUCCESS"), "{log}");
    assert!(
        verifies().is_empty(),
        "no code was verified: {:?}",
        verifies()
    );

    // The same code with the right password, at once: accepted.
    let r = f.auth("stash", user, None, &format!("stash pass 1{good}\n"));
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts("Password and verification code: "), 1);
    assert_eq!(verifies(), vec!["accept".to_owned()]);

    // Used once; the next login with it is a replay.
    let r = f.auth("stash", user, None, &format!("stash pass 1{good}\n"));
    assert!(!r.ok, "{r:#?}");
    assert_eq!(verifies(), vec!["replay".to_owned(), "accept".to_owned()]);
    // Right password, wrong code: refused by verify_stashed, one try.
    let r = f.auth(
        "stash",
        user,
        None,
        &format!("stash pass 1{}\n", wrong_code(&secret)),
    );
    r.expect(false, "PAM_AUTH_ERR");
    assert!(
        !r.stderr.contains("stash pass"),
        "the password must never be logged"
    );

    // A temporary access code after the password (a phone change), as
    // shown and typed in lower case without dashes.
    let tap = block_on(f.reg.admin_client().issue_tap(
        user,
        &twostep_common::api::IssueTap {
            uses: Some(2),
            ..Default::default()
        },
    ))
    .expect("tap");
    let r = f.auth("stash", user, None, &format!("stash pass 1{}\n", tap.code));
    r.expect(true, "PAM_SUCCESS");
    let typed = tap.code.replace('-', "").to_lowercase();
    let r = f.auth("stash", user, None, &format!("stash pass 1{typed}\n"));
    r.expect(true, "PAM_SUCCESS");
}

#[test]
fn first_pass_modes_read_pam_authtok() {
    let f = Fixture::new();
    let secret = f.enrolled("trent");
    f.config("fp", "", "");
    f.service(
        "use",
        &format!(
            "auth required {PAM_SET_ITEMS}\nauth required TWOSTEP CONFIG(fp) use_first_pass\n"
        ),
    );
    f.service(
        "try",
        &format!(
            "auth required {PAM_SET_ITEMS}\nauth required TWOSTEP CONFIG(fp) try_first_pass\n"
        ),
    );
    let run = |svc: &str, authtok: Option<&str>, input: &str| {
        let env: Vec<(&str, &str)> = authtok
            .map(|t| vec![("PAM_AUTHTOK", t)])
            .unwrap_or_default();
        pamtester(&f.svc_dir(), svc, "trent", None, input, &env)
    };
    let r = run("use", Some(&code(&secret)), "");
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts(PROMPT), 0);
    // use_first_pass never prompts.
    let r = run("use", Some(&wrong_code(&secret)), &lines(&[&code(&secret)]));
    r.expect(false, "PAM_AUTH_ERR");
    assert_eq!(r.prompts(PROMPT), 0);
    let r = run("use", None, &lines(&[&code(&secret)]));
    r.expect(false, "PAM_AUTH_ERR");
    // try_first_pass: a password in PAM_AUTHTOK is not a code; prompt.
    let r = run("try", Some("not-a-code"), &lines(&[&wrong_code(&secret)]));
    r.expect(false, "PAM_AUTH_ERR");
    assert_eq!(r.prompts(PROMPT), 2);
}

#[test]
fn unsafe_key_file_and_bad_config_fail_closed() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let secret = f.enrolled("alice");
    let key = f.dir.path().join("loose.key");
    std::fs::copy(&f.key, &key).expect("copy key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let reg = format!(
        "[registry]\nurl = {:?}\napi_key_file = {:?}\n",
        f.reg.url,
        key.display().to_string()
    );
    f.write_config(
        "loose",
        &format!("version = 1\n{reg}[pam]\nfail_mode = \"open\"\n"),
    );
    f.service("loose", "auth required TWOSTEP CONFIG(loose)\n");
    let r = f.auth("loose", "alice", None, &lines(&[&code(&secret)]));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    let log = r.module_log().join("\n");
    assert!(
        log.contains(&key.display().to_string()) && log.contains("mode 0644"),
        "{log}"
    );
    assert_eq!(r.prompts(PROMPT), 0);

    // Owned by someone other than root.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&key, Some(65534), None).expect("chown");
    let r = f.auth("loose", "alice", None, &lines(&[&code(&secret)]));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    assert!(
        r.module_log().join("\n").contains("owned by uid 65534"),
        "{r:#?}"
    );

    // A broken config with fail_mode = "open" is still refused.
    f.write_config(
        "broken",
        "version = 1\n[pam]\nfail_mode = \"open\"\nmax_tries = \"three\"\n",
    );
    f.service("broken", "auth required TWOSTEP CONFIG(broken) bogus_arg\n");
    let r = f.auth("broken", "alice", None, &lines(&[&code(&secret)]));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    let log = r.module_log().join("\n");
    assert!(log.contains("broken.toml:4:"), "{log}");
    assert!(
        log.contains("unknown module argument \"bogus_arg\""),
        "{log}"
    );
}

#[test]
fn debug_argument_and_environment_proxies() {
    let f = Fixture::new();
    let secret = f.enrolled("alice");
    f.config("base", "", "");
    f.service("debug", "auth required TWOSTEP CONFIG(base) debug\n");
    // sudo keeps the caller's environment: proxy variables pointing at a
    // black hole must not be used.
    let hole = format!("http://127.0.0.1:{}", black_hole());
    let env: Vec<(&str, &str)> = [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ]
    .iter()
    .map(|k| (*k, hole.as_str()))
    .collect();
    let good = code(&secret);
    let r = pamtester(
        &f.svc_dir(),
        "debug",
        "alice",
        None,
        &format!("{good}\n"),
        &env,
    );
    r.expect(true, "PAM_SUCCESS");
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
    // debug: extra lines at LOG_DEBUG (pam_wrapper shows priority 7), still
    // without the code.
    let log = r.module_log().join("\n");
    assert!(log.contains("SYSLOG(7)") && log.contains("try 1"), "{log}");
    assert!(!r.stderr.contains(&good), "{log}");

    // A proxy in the config is used: here it is the black hole, so the
    // registry is unreachable within total_timeout.
    f.config(
        "proxied",
        &format!("proxy = \"{hole}\"\ntimeout = 10\n"),
        "total_timeout = 1\n",
    );
    f.service("proxied", "auth required TWOSTEP CONFIG(proxied)\n");
    let r = f.auth("proxied", "alice", None, &format!("{}\n", code(&secret)));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
}

#[test]
fn locked_user_is_denied_without_prompt() {
    let f = Fixture::with_registry(twostep_e2e::Registry::start_with(
        None,
        "[api.lockout]\nmax_failures = 3\nwindow_seconds = 600\nlock_seconds = 600\n",
    ));
    let secret = f.enrolled("alice");
    f.config("base", "", "");
    f.service("alone", "auth required TWOSTEP CONFIG(base)\n");
    let w = wrong_code(&secret);
    let r = f.auth("alone", "alice", None, &lines(&[&w, &w, &w]));
    // The third wrong code locks: said at once, no more prompts, and the
    // user is told why (pamtester shows a PAM_ERROR_MSG on stderr).
    const LOCKED: &str = "your account is locked for a while. Try again later.";
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(r.prompts(PROMPT), 3);
    assert!(
        r.module_log().join("\n").contains("account locked"),
        "{r:#?}"
    );
    assert_eq!(r.stderr.matches(LOCKED).count(), 1, "{r:#?}");
    // Locked now: even the right code is refused, without a prompt.
    let r = f.auth("alone", "alice", None, &lines(&[&code(&secret)]));
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(r.prompts(PROMPT), 0);
    assert!(
        r.module_log().join("\n").contains("account locked"),
        "{r:#?}"
    );
    assert_eq!(r.stderr.matches(LOCKED).count(), 1, "{r:#?}");
    // An unknown user, refused without a prompt too.
    let r = f.auth("alone", "stranger", Some("203.0.113.5"), "");
    r.expect(false, "PAM_PERM_DENIED");
    assert_eq!(r.prompts(PROMPT), 0);
    // `twostep audit` shows both logins refused before a code was asked,
    // with service, host and remote address.
    let out = std::process::Command::new(twostep_e2e::bin("twostep"))
        .arg("--config")
        .arg(&f.reg.config_path)
        .args(["audit", "--limit", "100"])
        .output()
        .expect("run twostep audit");
    assert!(out.status.success(), "{out:?}");
    let audit = String::from_utf8(out.stdout).unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let hostname = hostname.trim();
    let lookups: Vec<&str> = audit.lines().filter(|l| l.contains(" lookup ")).collect();
    assert_eq!(lookups.len(), 2, "{audit}");
    assert!(
        lookups[0].contains("user=\"alice\"")
            && lookups[0].contains(&format!("host=\"{hostname}\""))
            && lookups[0].contains("result=\"locked\"")
            && lookups[0].contains("service=alone"),
        "{audit}"
    );
    assert!(
        lookups[1].contains("user=\"stranger\"")
            && lookups[1].contains("from=\"203.0.113.5\"")
            && lookups[1].contains("result=\"unknown_user\"")
            && lookups[1].contains("refused before a code was asked"),
        "{audit}"
    );
}

/// README "Lock-out recovery": a pam_succeed_if line before the module lets
/// a break-glass group in while the registry is down, even with a broken
/// twostep configuration; nobody else gets in.
#[test]
fn break_glass_group_when_registry_is_down() {
    unix_user("twostep-pam-bg", "twostep-pam-bgg");
    let mut f = Fixture::new();
    let secret = f.enrolled("twostep-pam-bg");
    f.enrolled("alice");
    f.write_config("broken", "version = 1\n[pam]\nmax_tries = 0\n");
    f.config("base", "", "");
    for cfg in ["base", "broken"] {
        f.service(
            cfg,
            &format!(
                "auth [success=1 default=ignore] pam_succeed_if.so quiet user ingroup twostep-pam-bgg\n\
                 auth required TWOSTEP CONFIG({cfg})\nauth required pam_permit.so\n"
            ),
        );
    }
    f.reg.stop();
    for cfg in ["base", "broken"] {
        let r = f.auth(cfg, "twostep-pam-bg", None, &lines(&[&code(&secret)]));
        assert!(r.ok, "{cfg}: {r:#?}");
        assert_eq!(r.prompts(PROMPT), 0);
        assert!(r.module_log().is_empty(), "module skipped: {r:#?}");
        let r = f.auth(cfg, "alice", None, "123456\n");
        r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    }
}

/// A configuration file others can write is not trusted, whatever it says:
/// someone could point it at a dead registry with `fail_mode = "open"`.
#[test]
fn writable_config_fails_closed_even_when_open() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let secret = f.enrolled("alice");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = f.write_config(
        "rewritten",
        &format!(
            "version = 1\n[registry]\nurl = \"http://127.0.0.1:{dead}\"\napi_key_file = {:?}\n[pam]\nfail_mode = \"open\"\n",
            f.key.display().to_string()
        ),
    );
    f.service("rewritten", "auth required TWOSTEP CONFIG(rewritten)\n");

    // Owner-only writable: fail-open applies as configured (the control case).
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = f.auth("rewritten", "alice", None, &lines(&[&wrong_code(&secret)]));
    r.expect(true, "PAM_SUCCESS");

    // World-writable: refused before anything in it is used.
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let r = f.auth("rewritten", "alice", None, &lines(&[&wrong_code(&secret)]));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    assert_eq!(r.prompts(PROMPT), 0);
    let log = r.module_log().join("\n");
    assert!(
        log.contains(&format!("{}: mode 0666", cfg.display()))
            && log.contains(&format!("chmod go-w {}", cfg.display())),
        "{log}"
    );

    // A world-writable directory above it (no sticky bit) is refused too.
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let r = f.auth("rewritten", "alice", None, &lines(&[&wrong_code(&secret)]));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    let log = r.module_log().join("\n");
    assert!(
        log.contains(&format!(
            "directory {} has mode 0777",
            f.dir.path().display()
        )),
        "{log}"
    );
}

/// A certificate from another CA than `ca_file`'s fails the handshake:
/// someone may be intercepting, so `fail_mode = "open"` does not apply and
/// the login is refused, logged as an error naming the cause.
#[test]
fn tls_failure_fails_closed_even_when_open() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let f = Fixture::with_registry(Registry::start_opts(RegistryOptions {
        tls: Some((cert.cert.pem(), cert.key_pair.serialize_pem())),
        ..RegistryOptions::default()
    }));
    let secret = f.enrolled("alice");
    // The CA the host trusts: not the one that signed the registry's
    // certificate (its own name, so the issuer is unknown).
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "twostep test other CA");
    let other = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let other_ca = f.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.pem()).expect("write CA");
    let right_ca = f.reg.ca_file.clone().expect("registry CA file");
    for (name, ca) in [("right-ca", &right_ca), ("other-ca", &other_ca)] {
        f.config(
            name,
            &format!("ca_file = {:?}\n", ca.display().to_string()),
            "fail_mode = \"open\"\n",
        );
        f.service(name, &format!("auth required TWOSTEP CONFIG({name})\n"));
    }

    // Control: with the registry's CA the code is checked over TLS.
    let r = f.auth("right-ca", "alice", None, &lines(&[&code(&secret)]));
    r.expect(true, "PAM_SUCCESS");
    assert!(
        r.module_log().join("\n").contains("reason=\"verified\""),
        "{r:#?}"
    );

    let r = f.auth("other-ca", "alice", None, &lines(&["000000"]));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    assert_eq!(r.pam_line(), AUTHINFO_UNAVAIL);
    assert_eq!(r.prompts(PROMPT), 0, "no prompt without a trusted registry");
    let log = r.module_log().join("\n");
    assert!(!log.contains("fail-open"), "{log}");
    let line = r
        .module_log()
        .into_iter()
        .find(|l| l.contains("result=PAM_AUTHINFO_UNAVAIL"))
        .expect("result line")
        .to_owned();
    // pam_wrapper shows the priority: 3 is LOG_ERR.
    assert!(line.contains("SYSLOG(3)"), "{line}");
    assert!(
        line.contains("registry TLS failure: ")
            && line.contains("invalid peer certificate: UnknownIssuer")
            && line.contains("fail_mode does not apply"),
        "{line}"
    );
}

/// A registry restart while the user is at the prompt: the module opened a
/// connection for the registrations lookup before the prompt; the verify
/// after it must not go out on that connection (closed by the restart) and
/// the right code passes.
#[test]
fn registry_restart_while_at_the_prompt() {
    let mut f = Fixture::new();
    let secret = f.enrolled("alice");
    f.config("base", "", "");
    f.service("base", "auth required TWOSTEP CONFIG(base)\n");
    let svc = f.svc_dir();
    let reg = &mut f.reg;
    let mut pid_before = None;
    let r = pamtester_answer_later(&svc, "base", "alice", PROMPT, || {
        pid_before = reg.pid();
        reg.restart();
        code(&secret)
    });
    assert_ne!(pid_before, f.reg.pid(), "the registry was restarted");
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(r.prompts(PROMPT), 1, "{r:#?}");
    assert_eq!(r.pam_line(), SUCCESS);
}

/// A code typed as some apps show it (`123 456`) is the code; a wrong one
/// re-prompts saying so.
#[test]
fn spaced_code_and_the_wrong_code_notice() {
    let f = Fixture::new();
    let secret = f.enrolled("spacey");
    f.config("sp", "", "");
    f.service("sp", "auth required TWOSTEP CONFIG(sp)\n");
    let good = code(&secret);
    let spaced = format!("{} {}", &good[..3], &good[3..]);
    let r = f.auth(
        "sp",
        "spacey",
        None,
        &lines(&[&wrong_code(&secret), &spaced]),
    );
    r.expect(true, "PAM_SUCCESS");
    assert_eq!(
        r.prompts("That code didn't work. Try again.\nVerification code: "),
        1,
        "{r:#?}"
    );
}

/// An https:// URL pointed at a plain-HTTP registry: the registry answers
/// the TLS ClientHello with a 400 and closes, the module's next write
/// meets a closed connection. That is a refused login (TLS failure, fail
/// closed even when open), never a SIGPIPE that kills the application.
#[test]
fn https_url_to_a_plain_registry_fails_closed_without_killing_the_caller() {
    let f = Fixture::new();
    let secret = f.enrolled("alice");
    let plain = f.reg.registry_toml(&f.key);
    let https = plain.replace("url = \"http://", "url = \"https://");
    assert_ne!(plain, https, "{plain}");
    f.write_config(
        "https",
        &format!("version = 1\n{https}\n[pam]\nfail_mode = \"open\"\n"),
    );
    f.service("https", "auth required TWOSTEP CONFIG(https)\n");
    for _ in 0..3 {
        let r = f.auth("https", "alice", None, &lines(&[&code(&secret)]));
        r.expect(false, "PAM_AUTHINFO_UNAVAIL");
        assert_eq!(r.pam_line(), AUTHINFO_UNAVAIL, "{r:#?}");
        assert_eq!(r.prompts(PROMPT), 0);
        let log = r.module_log().join("\n");
        assert!(!log.contains("fail-open"), "{log}");
    }
}

/// The module needs no shared library beyond libpam, libc and libm: each
/// one would be loaded (and its constructors run) at every login. The
/// unwinder is linked in (pam-module/build.rs); libm only when the module
/// is built with the other binaries, whose tokio scheduler calls `pow`.
#[test]
fn the_module_needs_no_libgcc_s() {
    let out = std::process::Command::new("readelf")
        .arg("-d")
        .arg(module())
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libpam.so.0"), "{needed:?}");
    for lib in &needed {
        assert!(
            [
                "libpam.so.0",
                "libc.so.6",
                "libm.so.6",
                "ld-linux-x86-64.so.2"
            ]
            .contains(lib),
            "pam_twostep.so needs {lib}: {needed:?}"
        );
    }
    // The unwinder is in the module: a panic caught at the FFI boundary
    // needs it.
    let symbols = std::process::Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(module())
        .output()
        .expect("run nm (binutils)");
    let undefined = String::from_utf8_lossy(&symbols.stdout);
    assert!(!undefined.contains("_Unwind_"), "{undefined}");
}
