use super::describe::Via;
use super::parse::parse_brackets;
use super::*;
use std::collections::HashMap;
use std::path::Path;

/// Debian 12's common-auth as pam-auth-update writes it, with `extra` in
/// the Additional block (after pam_permit.so).
fn debian_common_auth(primary_extra: &str, additional: &str) -> String {
    format!(
        "# here are the per-package modules (the \"Primary\" block)\n\
         auth\t[success=1 default=ignore]\tpam_unix.so nullok\n\
         {primary_extra}\
         # here's the fallback if no module succeeds\n\
         auth\trequisite\t\t\tpam_deny.so\n\
         auth\trequired\t\t\tpam_permit.so\n\
         # and here are more per-package modules (the \"Additional\" block)\n\
         {additional}\
         auth\toptional\t\t\tpam_cap.so\n"
    )
}

/// Every failure result of the module, in report order.
fn every_failure() -> Vec<Ret> {
    TWOSTEP_RESULTS
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| *r != Ret::SUCCESS && *r != Ret::IGNORE)
        .collect()
}

fn stack(files: &[(&str, &str)], service: &str) -> Result<Vec<AuthLine>, LoadError> {
    let map: HashMap<PathBuf, String> = files
        .iter()
        .map(|(n, t)| (Path::new("/pam").join(n), (*t).to_owned()))
        .collect();
    load_auth_stack(&map, Path::new("/pam"), service)
}

fn problems(files: &[(&str, &str)]) -> Vec<Problem> {
    analyse(&stack(files, "sshd").expect("stack loads"))
}

const SSHD: &str = "# PAM configuration for the Secure Shell service\n\
                    @include common-auth\n\
                    account    required     pam_nologin.so\n\
                    @include common-account\n";

#[test]
fn pam_auth_update_placement_is_correct() {
    let common = debian_common_auth("", "auth\trequired\t\t\tpam_twostep.so\n");
    let p = problems(&[
        ("sshd", SSHD),
        ("common-auth", &common),
        ("common-account", "account required pam_permit.so\n"),
    ]);
    assert_eq!(p, vec![]);
}

#[test]
fn requisite_and_code_first_are_correct() {
    let common = debian_common_auth("", "auth requisite pam_twostep.so\n");
    assert_eq!(
        problems(&[
            ("sshd", SSHD),
            ("common-auth", &common),
            ("common-account", "")
        ]),
        vec![]
    );
    // Code first, then the password stack: also safe.
    let sshd = "auth required pam_twostep.so\n@include common-auth\n";
    let common = debian_common_auth("", "");
    assert_eq!(
        problems(&[("sshd", sshd), ("common-auth", &common)]),
        vec![]
    );
}

#[test]
fn done_then_deny_stack_is_correct() {
    // The pattern from the admin guide: jump past pam_deny.so only on success.
    let sshd = "auth required pam_unix.so\n\
                auth [success=done default=ignore] pam_twostep.so\n\
                auth requisite pam_deny.so\n";
    assert_eq!(problems(&[("sshd", sshd)]), vec![]);
}

#[test]
fn absent() {
    let common = debian_common_auth("", "");
    assert_eq!(
        problems(&[
            ("sshd", SSHD),
            ("common-auth", &common),
            ("common-account", "")
        ]),
        vec![Problem::Absent]
    );
}

#[test]
fn optional_is_reported_with_its_line() {
    let common = debian_common_auth("", "auth optional pam_twostep.so\n");
    let p = problems(&[
        ("sshd", SSHD),
        ("common-auth", &common),
        ("common-account", ""),
    ]);
    assert_eq!(
        p,
        vec![Problem::Optional(Origin {
            file: "/pam/common-auth".into(),
            line: 7
        })]
    );
    let (what, fix) = p[0].describe();
    assert!(what.contains("/pam/common-auth:7"), "{what}");
    assert!(fix.contains("required"), "{fix}");
}

#[test]
fn after_sufficient_line() {
    let sshd = "auth sufficient pam_unix.so\n\
                auth required pam_twostep.so\n\
                auth requisite pam_deny.so\n";
    assert_eq!(
        problems(&[("sshd", sshd)]),
        vec![Problem::AfterSufficient {
            at: Origin {
                file: "/pam/sshd".into(),
                line: 1
            },
            module: "pam_unix.so".into(),
            control: "sufficient".into(),
        }]
    );
}

#[test]
fn sufficient_twostep_ignores_failure() {
    let sshd = "auth required pam_unix.so\nauth sufficient pam_twostep.so\n";
    let p = problems(&[("sshd", sshd)]);
    assert_eq!(
        p,
        vec![Problem::FailureIgnored {
            at: Origin {
                file: "/pam/sshd".into(),
                line: 2
            },
            control: "sufficient".into(),
            results: every_failure(),
            via: Via::Ignored(vec![]),
        }]
    );
    let (what, fix) = p[0].describe();
    assert_eq!(
        what,
        "pam_twostep.so at /pam/sshd:2 has control `sufficient`: a wrong code (PAM_AUTH_ERR), \
         registry unreachable (PAM_AUTHINFO_UNAVAIL), a locked, disabled or unenrolled user \
         (PAM_PERM_DENIED) and 9 other failures are ignored: a wrong code does not fail the stack"
    );
    assert_eq!(fix, "use `required` at /pam/sshd:2");
}

#[test]
fn jump_over_the_module_in_the_primary_block() {
    // Inserted between pam_unix.so and pam_deny.so without fixing the jump:
    // success=2 now jumps over the module straight to pam_permit.so.
    let common = "auth [success=2 default=ignore] pam_unix.so nullok\n\
                  auth required pam_twostep.so\n\
                  auth requisite pam_deny.so\n\
                  auth required pam_permit.so\n";
    let p = problems(&[
        ("sshd", SSHD),
        ("common-auth", common),
        ("common-account", ""),
    ]);
    assert_eq!(
        p,
        vec![Problem::JumpSkips {
            at: Origin {
                file: "/pam/common-auth".into(),
                line: 1
            },
            module: "pam_unix.so".into(),
            control: "[success=2 default=ignore]".into(),
            module_at: Origin {
                file: "/pam/common-auth".into(),
                line: 2
            },
        }]
    );
}

#[test]
fn after_deny() {
    // success=1 skips the module and lands on pam_deny.so; failure reaches
    // the module, then pam_deny.so: nobody ever gets in.
    let common = "auth [success=1 default=ignore] pam_unix.so nullok\n\
                  auth required pam_twostep.so\n\
                  auth requisite pam_deny.so\n\
                  auth required pam_permit.so\n";
    let p = problems(&[
        ("sshd", SSHD),
        ("common-auth", common),
        ("common-account", ""),
    ]);
    assert_eq!(p, vec![Problem::NeverSucceeds]);
    // Appended after an unconditional deny.
    let sshd =
        "auth required pam_unix.so\nauth requisite pam_deny.so\nauth required pam_twostep.so\n";
    assert_eq!(
        problems(&[("sshd", sshd)]),
        vec![Problem::AfterDeny {
            at: Origin {
                file: "/pam/sshd".into(),
                line: 2
            }
        }]
    );
}

#[test]
fn default_ignore_without_deny_lets_failure_through() {
    let sshd = "auth required pam_unix.so\nauth [success=ok default=ignore] pam_twostep.so\n";
    let p = problems(&[("sshd", sshd)]);
    assert!(
        matches!(&p[..], [Problem::FailureIgnored { control, .. }] if control == "[success=ok default=ignore]"),
        "{p:?}"
    );
}

#[test]
fn include_keyword_substack_and_continuations() {
    let sshd = "auth substack password-auth\nauth include postlogin\n";
    let pw = "auth required pam_env.so\n\
              auth sufficient pam_unix.so \\\n   try_first_pass nullok\n\
              auth required pam_deny.so\n";
    let p = problems(&[
        ("sshd", sshd),
        ("password-auth", pw),
        ("postlogin", "auth required pam_twostep.so\n"),
    ]);
    assert!(
        matches!(&p[..], [Problem::AfterSufficient { at, .. }] if at.line == 2),
        "{p:?}"
    );
    let s = stack(
        &[("sshd", sshd), ("password-auth", pw), ("postlogin", "")],
        "sshd",
    )
    .unwrap();
    assert_eq!(s[1].args, vec!["try_first_pass", "nullok"]);
}

#[test]
fn dash_lines_and_absolute_module_paths() {
    let sshd = "-auth required /usr/lib/x86_64-linux-gnu/security/pam_twostep.so debug\n";
    let s = stack(&[("sshd", sshd)], "sshd").unwrap();
    assert!(s[0].is_twostep());
    assert_eq!(s[0].args, vec!["debug"]);
}

#[test]
fn load_errors() {
    assert_eq!(
        stack(&[], "sshd"),
        Err(LoadError::NoService("/pam/sshd".into()))
    );
    let e = stack(&[("sshd", "@include common-auth\n")], "sshd").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/pam/sshd:1: cannot read included /pam/common-auth"),
        "{e}"
    );
    let e = stack(&[("sshd", "auth [success=1 pam_unix.so\n")], "sshd").unwrap_err();
    assert_eq!(e.to_string(), "/pam/sshd:1: unterminated [...] control");
    let e = stack(&[("sshd", "auth [success=x] pam_unix.so\n")], "sshd").unwrap_err();
    assert!(e.to_string().contains("not an action"), "{e}");
    let e = stack(&[("sshd", "auth maybe pam_unix.so\n")], "sshd").unwrap_err();
    assert!(e.to_string().contains("unknown control"), "{e}");
    let e = stack(&[("sshd", "@include sshd\n")], "sshd").unwrap_err();
    assert!(matches!(e, LoadError::TooDeep(_)), "{e}");
}

#[test]
fn bracket_defaults_follow_linux_pam() {
    let c = parse_brackets("[success=1 default=ignore]").unwrap();
    assert_eq!(c.action(Ret::SUCCESS), Action::Jump(1));
    assert_eq!(c.action(Ret::AUTH_ERR), Action::Ignore);
    let c = parse_brackets("[success=ok]").unwrap();
    assert_eq!(c.action(Ret::AUTH_ERR), Action::Bad);
    assert_eq!(Control::Sufficient.action(Ret::SUCCESS), Action::Done);
    assert_eq!(Control::Requisite.action(Ret::AUTH_ERR), Action::Die);
}

#[test]
fn type_and_control_keywords_are_case_insensitive() {
    // Linux-PAM compares both with strcasecmp.
    let sshd = "AUTH REQUIRED pam_unix.so\nAuth Requisite pam_twostep.so\n";
    let s = stack(&[("sshd", sshd)], "sshd").unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].control, Control::Requisite);
    assert!(s[1].is_twostep());
    assert_eq!(analyse(&s), vec![]);
    let sshd = "auth SubStack common-auth\n-Auth OPTIONAL pam_cap.so\n";
    let common = "auth required pam_unix.so\nAUTH required pam_twostep.so\n";
    let s = stack(&[("sshd", sshd), ("common-auth", common)], "sshd").unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(analyse(&s), vec![]);
}

#[test]
fn continuations_follow_linux_pam() {
    // Blanks after the backslash; a blank and a comment-only line inside
    // the continued line do not end it; `#` ends it.
    let sshd = "auth required pam_unix.so\n\
                auth   required \\  \n\
                \n\
                # the second factor\n\
                \t pam_twostep.so \\\t\n\
                config=/etc/twostep/twostep.toml # a comment \\\n\
                auth required pam_permit.so\n";
    let s = stack(&[("sshd", sshd)], "sshd").unwrap();
    assert_eq!(s.len(), 3, "{s:?}");
    assert!(s[1].is_twostep());
    assert_eq!(s[1].origin.line, 2);
    assert_eq!(s[1].args, vec!["config=/etc/twostep/twostep.toml"]);
    assert_eq!(s[2].module, "pam_permit.so");
    assert_eq!(s[2].origin.line, 7);
    assert_eq!(analyse(&s), vec![]);
}

#[test]
fn cargo_built_module_name_by_absolute_path() {
    // As quickstart.sh writes it.
    let demo = "auth     required  /work/target/release/libpam_twostep.so config=/work/.state/twostep.toml\n\
                account  required  pam_permit.so\n";
    let s = stack(&[("twostep-demo", demo)], "twostep-demo").unwrap();
    assert!(s[0].is_twostep());
    assert_eq!(analyse(&s), vec![]);
    let s = stack(&[("x", "auth required libpam_twostep.so\n")], "x").unwrap();
    assert!(s[0].is_twostep());
    let s = stack(&[("x", "auth required pam_twostep.so.bak\n")], "x").unwrap();
    assert!(!s[0].is_twostep());
}

#[test]
fn bracket_syntax_follows_linux_pam() {
    let c = parse_brackets("[success = ok  default= bad]").unwrap();
    assert_eq!(
        c,
        Control::Brackets(vec![
            ("success".into(), Action::Ok),
            ("default".into(), Action::Bad)
        ])
    );
    // Names inside brackets are case sensitive; unknown names are errors.
    let e = parse_brackets("[SUCCESS=ok default=bad]").unwrap_err();
    assert!(e.contains("\"SUCCESS\" is not a PAM result name"), "{e}");
    let e = parse_brackets("[sucess=ok]").unwrap_err();
    assert!(e.contains("\"sucess\""), "{e}");
}

/// Finding 4a: controls that map some failure results of the module to
/// ignore, found whichever result it is.
#[test]
fn every_result_of_the_module_is_considered() {
    let fail = |control: &str| {
        let sshd = format!("auth required pam_unix.so\nauth {control} pam_twostep.so\n");
        problems(&[("sshd", &sshd)])
    };
    let p = fail("[success=ok authinfo_unavail=ignore default=bad]");
    assert_eq!(
        p,
        vec![Problem::FailureIgnored {
            at: Origin {
                file: "/pam/sshd".into(),
                line: 2
            },
            control: "[success=ok authinfo_unavail=ignore default=bad]".into(),
            results: vec![Ret("authinfo_unavail")],
            via: Via::Ignored(vec!["authinfo_unavail=ignore".into()]),
        }]
    );
    let (what, fix) = p[0].describe();
    assert!(
        what.ends_with(
            "registry unreachable (PAM_AUTHINFO_UNAVAIL) is ignored: fail-open in disguise"
        ),
        "{what}"
    );
    assert_eq!(
        fix,
        "at /pam/sshd:2 change `authinfo_unavail=ignore` to `bad` (or use `required`)"
    );
    // One result at a time, each named.
    for (key, name) in [
        ("perm_denied", "PAM_PERM_DENIED"),
        ("maxtries", "PAM_MAXTRIES"),
        ("conv_err", "PAM_CONV_ERR"),
        ("user_unknown", "PAM_USER_UNKNOWN"),
        ("abort", "PAM_ABORT"),
        ("service_err", "PAM_SERVICE_ERR"),
        ("buf_err", "PAM_BUF_ERR"),
        ("system_err", "PAM_SYSTEM_ERR"),
    ] {
        let p = fail(&format!("[success=ok {key}=ignore default=bad]"));
        assert_eq!(p.len(), 1, "{key}: {p:?}");
        let (what, _) = p[0].describe();
        assert!(what.contains(&format!("({name}) is ignored")), "{what}");
    }
    // default=ignore catches every failure not listed.
    let p = fail("[success=ok auth_err=bad default=ignore]");
    let Problem::FailureIgnored { results, via, .. } = &p[0] else {
        panic!("{p:?}")
    };
    assert!(!results.contains(&Ret::AUTH_ERR));
    assert!(results.contains(&Ret("authinfo_unavail")));
    assert_eq!(via, &Via::Ignored(vec!["default=ignore".into()]));
    // A jump on failure past pam_deny.so.
    let sshd = "auth required pam_unix.so\n\
                auth [success=ok authinfo_unavail=1 default=bad] pam_twostep.so\n\
                auth requisite pam_deny.so\n\
                auth required pam_permit.so\n";
    let p = problems(&[("sshd", sshd)]);
    assert!(
        matches!(&p[..], [Problem::FailureIgnored { via: Via::Jump(1), results, .. }] if results == &vec![Ret("authinfo_unavail")]),
        "{p:?}"
    );
    // ok/done on a failure records it: the stack fails (Linux-PAM keeps the
    // failure as the status), so these are safe.
    assert_eq!(fail("[success=ok new_authtok_reqd=ok default=bad]"), vec![]);
    assert_eq!(fail("[success=ok authinfo_unavail=ok default=bad]"), vec![]);
    assert_eq!(
        fail("[success=ok authinfo_unavail=done default=bad]"),
        vec![]
    );
    assert_eq!(fail("[success=ok ignore=ignore default=die]"), vec![]);
    // PAM_IGNORE (an exempt user) may pass: that is policy, not a bypass.
    assert_eq!(fail("[success=ok ignore=ignore default=bad]"), vec![]);
    assert_eq!(fail("required"), vec![]);
}

#[test]
fn keyword_controls_follow_linux_pam() {
    let nar = Ret("new_authtok_reqd");
    assert_eq!(Control::Required.action(nar), Action::Ok);
    assert_eq!(Control::Requisite.action(nar), Action::Ok);
    assert_eq!(Control::Sufficient.action(nar), Action::Done);
    assert_eq!(Control::Optional.action(Ret::IGNORE), Action::Ignore);
    assert_eq!(Control::Required.action(Ret::IGNORE), Action::Ignore);
    assert_eq!(Control::Required.action(Ret("abort")), Action::Bad);
    assert_eq!(Control::Requisite.action(Ret("conv_err")), Action::Die);
    // In brackets the last value= wins, then the first default=.
    let c = parse_brackets("[default=ignore success=ok default=bad success=done]").unwrap();
    assert_eq!(c.action(Ret::SUCCESS), Action::Done);
    assert_eq!(c.action(Ret::AUTH_ERR), Action::Ignore);
}

/// Finding 6: a later `reset` is named, not the module's own control.
#[test]
fn later_reset_is_named() {
    let common = debian_common_auth(
        "",
        "auth required pam_twostep.so\nauth [default=reset] pam_permit.so\n",
    );
    let p = problems(&[
        ("sshd", SSHD),
        ("common-auth", &common),
        ("common-account", ""),
    ]);
    assert_eq!(p.len(), 1, "{p:?}");
    let Problem::FailureIgnored { at, via, .. } = &p[0] else {
        panic!("{p:?}")
    };
    assert_eq!(at.line, 7);
    assert_eq!(
        via,
        &Via::Reset {
            at: Origin {
                file: "/pam/common-auth".into(),
                line: 8
            },
            module: "pam_permit.so".into(),
            control: "[default=reset]".into(),
        }
    );
    let (what, fix) = p[0].describe();
    assert!(
        what.starts_with(
            "`[default=reset] pam_permit.so` at /pam/common-auth:8 resets the stack after \
             pam_twostep.so at /pam/common-auth:7 failed: a wrong code (PAM_AUTH_ERR)"
        ),
        "{what}"
    );
    assert!(!fix.contains("use `required`"), "{fix}");
    assert_eq!(
        fix,
        "remove the `reset` from `[default=reset]` at /pam/common-auth:8, \
         or move pam_twostep.so after /pam/common-auth:8"
    );
    // A reset with nothing succeeding after it fails the stack: fine.
    let sshd = "auth required pam_unix.so\nauth required pam_twostep.so\nauth [default=reset] pam_permit.so\n";
    assert_eq!(problems(&[("sshd", sshd)]), vec![Problem::NeverSucceeds]);
}

/// A Red Hat style password-auth with the code asked first: every result
/// of every module explored, no problem, no "too complex".
#[test]
fn red_hat_password_auth_with_code_first() {
    let pw = "auth required pam_env.so\n\
              auth required pam_faildelay.so delay=2000000\n\
              auth [default=1 ignore=ignore success=ok] pam_usertype.so isregular\n\
              auth [default=1 ignore=ignore success=ok] pam_localuser.so\n\
              auth sufficient pam_unix.so nullok\n\
              auth [default=1 ignore=ignore success=ok] pam_usertype.so isregular\n\
              auth sufficient pam_sss.so forward_pass\n\
              auth required pam_deny.so\n";
    let sshd = "auth required pam_sepermit.so\nauth required pam_twostep.so\nauth substack password-auth\nauth include postlogin\n";
    let started = std::time::Instant::now();
    let p = problems(&[
        ("sshd", sshd),
        ("password-auth", pw),
        ("postlogin", "auth optional pam_faillock.so authsucc\n"),
    ]);
    assert_eq!(p, vec![]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// The three-line `forward_pass stash_code` stack: no problem; without
/// its verify_stashed line the code is never checked; a `required`
/// password module between the two lets a wrong password use the code up.
#[test]
fn stash_code_stack() {
    let good = "auth required pam_twostep.so forward_pass stash_code\n\
                auth requisite pam_unix.so use_first_pass\n\
                auth required pam_twostep.so verify_stashed\n";
    assert_eq!(problems(&[("sshd", good)]), vec![]);
    let brackets = "auth required pam_twostep.so forward_pass stash_code\n\
                    auth [success=ok default=die] pam_unix.so use_first_pass\n\
                    auth required pam_twostep.so verify_stashed\n";
    assert_eq!(problems(&[("sshd", brackets)]), vec![]);

    let p = problems(&[(
        "sshd",
        "auth required pam_twostep.so forward_pass stash_code\n\
         auth requisite pam_unix.so use_first_pass\n",
    )]);
    let at = |line| Origin {
        file: PathBuf::from("/pam/sshd"),
        line,
    };
    assert_eq!(p[0], Problem::StashNotVerified { at: at(1) });
    assert!(
        p.iter().any(|x| matches!(x, Problem::Bypass { .. })),
        "a login succeeds on the password alone: {p:?}"
    );

    let p = problems(&[(
        "sshd",
        "auth required pam_unix.so\nauth required pam_twostep.so verify_stashed\n",
    )]);
    assert_eq!(p, vec![Problem::NothingStashed { at: at(2) }]);

    let p = problems(&[(
        "sshd",
        "auth required pam_twostep.so forward_pass stash_code\n\
         auth required pam_unix.so use_first_pass\n\
         auth required pam_twostep.so verify_stashed\n",
    )]);
    assert_eq!(
        p,
        vec![Problem::PasswordFailureGoesOn {
            at: at(2),
            module: "pam_unix.so".into(),
            control: "required".into(),
            verify_at: at(3),
        }]
    );
    let (what, fix) = p[0].describe();
    assert!(what.contains("uses up the code"), "{what}");
    assert!(fix.contains("requisite"), "{fix}");
}
