//! `twostep doctor` against broken and correct fixtures: PAM stacks in a
//! temporary pam.d directory, a real `sshd -T -f` on temporary sshd
//! configs, a real registry, key files with wrong owner and mode, weak
//! RADIUS secrets. Checks each finding line and the exit status.

mod pam_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;
use twostep_common::api::HostKind;
use twostep_e2e::{bin, free_tcp_port, write_secret, Registry};

/// Debian 12's common-auth with `additional` after pam_permit.so, as
/// `pam-auth-update --enable twostep` writes it.
fn common_auth(additional: &str) -> String {
    format!(
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n\
         auth\trequisite\t\t\tpam_deny.so\n\
         auth\trequired\t\t\tpam_permit.so\n\
         {additional}\
         auth\toptional\t\t\tpam_cap.so\n"
    )
}

const SSHD_PAM: &str = "@include common-auth\naccount required pam_nologin.so\n";
const SUDO_PAM: &str = "#%PAM-1.0\nsession required pam_limits.so\n@include common-auth\n";

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir(f.pam_dir()).unwrap();
        std::fs::create_dir(f.module_dir()).unwrap();
        // A stand-in for the installed module: doctor only checks it exists.
        std::fs::write(f.module_dir().join("pam_twostep.so"), b"").unwrap();
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pam_dir(&self) -> PathBuf {
        self.path("pam.d")
    }

    fn module_dir(&self) -> PathBuf {
        self.path("security")
    }

    fn pam(&self, name: &str, text: &str) {
        std::fs::write(self.pam_dir().join(name), text).unwrap();
    }

    fn good_pam(&self) {
        self.pam(
            "common-auth",
            &common_auth("auth\trequired\t\t\tpam_twostep.so\n"),
        );
        self.pam("sshd", SSHD_PAM);
        self.pam("sudo", SUDO_PAM);
    }

    /// An sshd_config with its own host key; `settings` are added first
    /// (the first value sshd reads wins).
    fn sshd_config(&self, settings: &str) -> PathBuf {
        let key = self.path("ssh_host_ed25519_key");
        if !key.exists() {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()
                .expect("ssh-keygen");
            assert!(st.success());
        }
        // `sshd -T` refuses to run without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let path = self.path("sshd_config");
        std::fs::write(
            &path,
            format!(
                "{settings}\nHostKey {}\nListenAddress 127.0.0.1:{}\n",
                key.display(),
                free_tcp_port()
            ),
        )
        .unwrap();
        path
    }

    fn config(&self, text: &str) -> PathBuf {
        let p = self.path("twostep.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn doctor(&self, config: &Path, sshd_config: &Path, extra: &[&str]) -> (i32, String) {
        let out = Command::new(bin("twostep"))
            .arg("doctor")
            .arg("--config")
            .arg(config)
            .arg("--pam-dir")
            .arg(self.pam_dir())
            .arg("--pam-module-dir")
            .arg(self.module_dir())
            .arg("--sshd-config")
            .arg(sshd_config)
            .args(extra)
            .output()
            .expect("run twostep doctor");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.stderr.is_empty(),
            "doctor wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().expect("exit code"), stdout)
    }
}

const GOOD_SSHD: &str = "UsePAM yes\nKbdInteractiveAuthentication yes\n\
                         AuthenticationMethods publickey,keyboard-interactive\nLoginGraceTime 60\n";

/// The line starting with `status` that contains every one of `parts`.
fn line<'a>(out: &'a str, status: &str, parts: &[&str]) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(status) && parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no {status} line with {parts:?} in:\n{out}"))
}

#[test]
fn correct_setup_passes_every_check() {
    let f = Fixture::new();
    f.good_pam();
    let registry = Registry::start();
    let key = registry.add_host("doctor-ok", HostKind::Ssh);
    let config = f.config(&format!(
        "version = 1\n{}\n[pam]\ntotal_timeout = 15\n",
        registry.registry_toml(&key)
    ));
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 0, "{out}");
    for l in out.lines().filter(|l| !l.starts_with("all ")) {
        assert!(l.starts_with("ok "), "not ok: {l}\n{out}");
    }
    line(&out, "ok", &["registry:", "answers, version"]);
    line(&out, "ok", &["registry:", "accepts the host key"]);
    line(
        &out,
        "ok",
        &["pam sshd:", "pam_twostep.so runs at", "common-auth:4"],
    );
    line(&out, "ok", &["pam sudo:", "common-auth:4"]);
    line(
        &out,
        "ok",
        &[
            "sshd:",
            "AuthenticationMethods publickey,keyboard-interactive",
        ],
    );
    line(
        &out,
        "ok",
        &[
            "sshd:",
            "LoginGraceTime 60 s covers the module's 17 s deadline",
        ],
    );
    assert!(out.trim_end().ends_with("checks passed"), "{out}");
}

#[test]
fn config_error_is_placed_and_fails() {
    let f = Fixture::new();
    f.good_pam();
    let config = f.config("version = 1\n[pam]\nmax_trys = 3\n");
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "FAIL", &["config:", "max_trys"]);
    assert!(l.contains(&format!("{}:3:1:", config.display())), "{l}");
    assert!(l.contains("-- fix:"), "{l}");
    // The PAM and sshd checks still run.
    line(&out, "ok", &["pam sshd:"]);
}

#[test]
fn config_others_can_change_fails_with_the_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.good_pam();
    let config = f.config("version = 1\n");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "FAIL", &["config:"]);
    assert!(l.contains("chmod go-w"), "{l}");
    assert!(l.contains("-- fix: run the chown/chmod named above"), "{l}");
}

#[test]
fn each_broken_piece_is_reported_with_its_fix() {
    let f = Fixture::new();
    // PAM: optional in common-auth (sshd and sudo both include it) ...
    f.pam(
        "common-auth",
        &common_auth("auth\toptional\t\t\tpam_twostep.so\n"),
    );
    f.pam("sshd", SSHD_PAM);
    // ... and sudo with its own stack where `sufficient` returns early.
    f.pam(
        "sudo",
        "auth sufficient pam_unix.so\nauth required pam_twostep.so\nauth requisite pam_deny.so\n",
    );
    // Key files: world-readable, and owned by somebody else.
    let key = f.path("host.key");
    write_secret(&key, "not-a-key\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = f.path("state.key");
    write_secret(&state, &"ab".repeat(32));
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    // RADIUS: a short shared secret, a legacy client.
    let weak = f.path("nas.secret");
    write_secret(&weak, "short\n");
    let strong = f.path("nas2.secret");
    write_secret(&strong, "0123456789abcdefXYZ\n");
    // The registry: nobody listens there.
    let dead = free_tcp_port();
    let config = f.config(&format!(
        "version = 1\n\
         [registry]\nurl = \"http://127.0.0.1:{dead}\"\napi_key_file = {key:?}\nconnect_timeout = 1\ntimeout = 2\n\
         [pam]\ntotal_timeout = 30\n\
         [radius]\nlisten = \"127.0.0.1:0\"\nstate_key_file = {state:?}\n\
         [[radius.client]]\nname = \"weak\"\naddress = \"127.0.0.1/32\"\nsecret_file = {weak:?}\n\
         [[radius.client]]\nname = \"legacy\"\naddress = \"127.0.0.2/32\"\nsecret_file = {strong:?}\nrequire_message_authenticator = false\n"
    ));
    let sshd = f.sshd_config(
        "UsePAM no\nKbdInteractiveAuthentication no\nAuthenticationMethods publickey password,keyboard-interactive\nLoginGraceTime 20\n",
    );
    let (code, out) = f.doctor(&config, &sshd, &[]);
    assert_eq!(code, 1, "{out}");

    let l = line(
        &out,
        "FAIL",
        &["files:", "[registry] api_key_file", "mode 0644"],
    );
    assert!(
        l.contains(&format!("fix: chmod 600 {}", key.display())),
        "{l}"
    );
    let l = line(
        &out,
        "FAIL",
        &["files:", "[radius] state_key_file", "owned by nobody"],
    );
    assert!(
        l.contains(&format!("fix: chown root {}", state.display())),
        "{l}"
    );
    line(
        &out,
        "ok",
        &["files:", "[[radius.client]] weak secret_file", "0600"],
    );

    let l = line(
        &out,
        "FAIL",
        &["registry:", "unreachable", &format!("127.0.0.1:{dead}")],
    );
    assert!(l.contains("fix: start the registry"), "{l}");

    let l = line(
        &out,
        "FAIL",
        &["pam sshd:", "marked optional", "common-auth:4"],
    );
    assert!(l.contains("fix: change `optional` to `required`"), "{l}");
    let l = line(
        &out,
        "FAIL",
        &["pam sudo:", "after `sufficient pam_unix.so`", "sudo:1"],
    );
    assert!(l.contains("fix:"), "{l}");

    let l = line(&out, "FAIL", &["sshd:", "UsePAM is no"]);
    assert!(l.contains("fix: set `UsePAM yes`"), "{l}");
    line(
        &out,
        "FAIL",
        &["sshd:", "KbdInteractiveAuthentication is no"],
    );
    let l = line(
        &out,
        "FAIL",
        &["sshd:", "list publickey never reaches keyboard-interactive"],
    );
    assert!(
        l.contains("AuthenticationMethods publickey,keyboard-interactive"),
        "{l}"
    );
    // 30 s total_timeout + 1 s connect timeout.
    let l = line(
        &out,
        "FAIL",
        &[
            "sshd:",
            "LoginGraceTime 20 s is shorter than the module's deadline of 31 s",
        ],
    );
    assert!(l.contains("fix: set `LoginGraceTime 61`"), "{l}");

    let l = line(
        &out,
        "warn",
        &["radius:", "client \"weak\": shared secret is 5 characters"],
    );
    assert!(l.contains("fix: write 16 or more random characters"), "{l}");
    line(
        &out,
        "ok",
        &["radius:", "client legacy: shared secret has 19 characters"],
    );
    let l = line(
        &out,
        "warn",
        &[
            "radius:",
            "client legacy is in legacy mode",
            "CVE-2024-3596",
        ],
    );
    assert!(l.contains("fix:"), "{l}");
    line(
        &out,
        "ok",
        &["radius:", "client weak: Message-Authenticator required"],
    );
}

#[test]
fn refused_host_key_and_placement_problems() {
    let f = Fixture::new();
    // A jump that skips the module: inserted into the Primary block
    // without fixing success=N.
    f.pam(
        "common-auth",
        "auth [success=2 default=ignore] pam_unix.so nullok\n\
         auth required pam_twostep.so\n\
         auth requisite pam_deny.so\n\
         auth required pam_permit.so\n",
    );
    f.pam("sshd", SSHD_PAM);
    // sudo without the module at all; login with another config file.
    f.pam(
        "login",
        "auth required pam_unix.so\nauth required pam_twostep.so config=/etc/twostep/other.toml\n",
    );
    f.pam("sudo", "@include common-sudo\n");
    f.pam("common-sudo", &common_auth(""));
    let registry = Registry::start();
    let _real = registry.add_host("doctor-refused", HostKind::Ssh);
    let key = f.path("host.key");
    write_secret(&key, &format!("{}\n", "0".repeat(64)));
    let config = f.config(&format!("version = 1\n{}", registry.registry_toml(&key)));
    let (code, out) = f.doctor(
        &config,
        &f.sshd_config(GOOD_SSHD),
        &[
            "--pam-service",
            "sshd",
            "--pam-service",
            "sudo",
            "--pam-service",
            "login",
        ],
    );
    assert_eq!(code, 1, "{out}");
    line(&out, "ok", &["registry:", "answers"]);
    let l = line(
        &out,
        "warn",
        &["pam login:", "login:2 reads config=/etc/twostep/other.toml"],
    );
    assert!(
        l.contains("fix: check that file too: twostep doctor --config /etc/twostep/other.toml"),
        "{l}"
    );
    line(&out, "ok", &["pam login:", "pam_twostep.so runs at"]);
    let l = line(
        &out,
        "FAIL",
        &["registry:", "refused the host key", "(401)"],
    );
    assert!(l.contains("fix: run `twostep host add NAME`"), "{l}");
    let l = line(
        &out,
        "FAIL",
        &[
            "pam sshd:",
            "the jump `[success=2 default=ignore]`",
            "common-auth:1",
            "skips pam_twostep.so",
        ],
    );
    assert!(
        l.contains("fix: move pam_twostep.so after the jump target"),
        "{l}"
    );
    let l = line(
        &out,
        "FAIL",
        &[
            "pam sudo:",
            "not in the auth stack of",
            "sudo (includes followed)",
        ],
    );
    assert!(l.contains("pam-auth-update --enable twostep"), "{l}");
}

#[test]
fn module_named_but_not_installed() {
    let f = Fixture::new();
    f.good_pam();
    std::fs::remove_file(f.module_dir().join("pam_twostep.so")).unwrap();
    let config = f.config("version = 1\n");
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "FAIL", &["pam module:", "not installed"]);
    assert!(l.contains("fix: apt-get install libpam-twostep"), "{l}");
    // No [registry]: a warning, not a failure.
    line(&out, "warn", &["registry:", "no [registry] table"]);
}

#[test]
fn valid_pam_spellings_pass() {
    let f = Fixture::new();
    f.good_pam();
    // Upper-case type and control, a continued line with blanks after the
    // backslash and a comment line inside it (Linux-PAM accepts all three).
    f.pam(
        "sshd",
        "AUTH REQUIRED pam_unix.so\n\
         Auth  Required \\  \n\
         # the second factor\n\
         \tpam_twostep.so\n",
    );
    // As quickstart.sh writes .state/pam.d/twostep-demo: the cargo-built
    // library by absolute path.
    let lib = bin("libpam_twostep.so");
    f.pam(
        "twostep-demo",
        &format!(
            "auth     required  {} config={}\naccount  required  pam_permit.so\n",
            lib.display(),
            // The same file as --config, spelled differently: no warning.
            f.dir.path().join(".").join("twostep.toml").display()
        ),
    );
    let config = f.config("version = 1\n");
    let (code, out) = f.doctor(
        &config,
        &f.sshd_config(GOOD_SSHD),
        &["--pam-service", "sshd", "--pam-service", "twostep-demo"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    line(
        &out,
        "ok",
        &["pam sshd:", "pam_twostep.so runs at", "sshd:2"],
    );
    line(
        &out,
        "ok",
        &[
            "pam twostep-demo:",
            "pam_twostep.so runs at",
            "twostep-demo:1",
        ],
    );
    line(
        &out,
        "ok",
        &["pam module:", &format!("{} is installed", lib.display())],
    );
}

#[test]
fn module_dir_with_the_cargo_name() {
    let f = Fixture::new();
    f.good_pam();
    // --pam-module-dir target/release: cargo's name, not the installed one.
    std::fs::rename(
        f.module_dir().join("pam_twostep.so"),
        f.module_dir().join("libpam_twostep.so"),
    )
    .unwrap();
    let config = f.config("version = 1\n");
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 0, "{out}");
    let l = line(
        &out,
        "warn",
        &[
            "pam module:",
            "libpam_twostep.so exists",
            "names pam_twostep.so",
        ],
    );
    assert!(l.contains("fix: install it under that name"), "{l}");
    // A stack naming libpam_twostep.so finds it there.
    f.pam(
        "sshd",
        "auth required pam_unix.so\nauth required libpam_twostep.so\n",
    );
    f.pam(
        "sudo",
        "auth required pam_unix.so\nauth required libpam_twostep.so\n",
    );
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 0, "{out}");
    line(
        &out,
        "ok",
        &["pam module:", "libpam_twostep.so is installed"],
    );
}

/// Runs `stack` (`TWOSTEP` is the built module reading this fixture's
/// config, whose registry is down) through the real Linux-PAM with
/// pamtester, and through doctor. Returns (pamtester authenticated, the
/// doctor line for the service).
fn real_pam_and_doctor(stack: &str) -> (bool, String) {
    let f = Fixture::new();
    let key = f.path("host.key");
    write_secret(&key, &format!("{}\n", "0".repeat(64)));
    let config = f.config(&format!(
        "version = 1\n[registry]\nurl = \"http://127.0.0.1:{}\"\napi_key_file = {key:?}\nconnect_timeout = 1\ntimeout = 2\n",
        free_tcp_port()
    ));
    let text = stack.replace(
        "TWOSTEP",
        &format!(
            "{} config={}",
            bin("libpam_twostep.so").display(),
            config.display()
        ),
    );
    f.pam("svc", &text);
    let run = pam_support::pamtester(&f.pam_dir(), "svc", "demo", None, "123456\n", &[]);
    assert_eq!(
        run.module_result().as_deref(),
        Some("PAM_AUTHINFO_UNAVAIL"),
        "{run:#?}"
    );
    let (_, out) = f.doctor(
        &config,
        &f.sshd_config(GOOD_SSHD),
        &["--pam-service", "svc", "--no-sshd"],
    );
    let l = out
        .lines()
        .filter(|l| l.contains("pam svc:"))
        .collect::<Vec<_>>()
        .join("\n");
    (run.ok, l)
}

/// Finding 4a: with the registry down, the real Linux-PAM authenticates
/// exactly when doctor says a failure of the module is ignored.
#[test]
fn doctor_agrees_with_linux_pam_on_an_unreachable_registry() {
    // authinfo_unavail=ignore: fail-open in disguise.
    let (ok, l) = real_pam_and_doctor(
        "auth required pam_permit.so\nauth [success=ok authinfo_unavail=ignore default=bad] TWOSTEP\n",
    );
    assert!(ok, "Linux-PAM authenticates");
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(
        l.contains("registry unreachable (PAM_AUTHINFO_UNAVAIL) is ignored: fail-open in disguise"),
        "{l}"
    );
    assert!(
        l.contains("change `authinfo_unavail=ignore` to `bad`"),
        "{l}"
    );
    // A jump on that result past pam_deny.so.
    let (ok, l) = real_pam_and_doctor(
        "auth required pam_permit.so\nauth [success=ok authinfo_unavail=1 default=bad] TWOSTEP\n\
         auth requisite pam_deny.so\nauth required pam_permit.so\n",
    );
    assert!(ok, "Linux-PAM authenticates");
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(l.contains("(PAM_AUTHINFO_UNAVAIL) is a jump of 1"), "{l}");
    // `ok` on the failure keeps it as the stack's status: not a bypass.
    for control in ["required", "[success=ok authinfo_unavail=ok default=bad]"] {
        let (ok, l) = real_pam_and_doctor(&format!(
            "auth required pam_permit.so\nauth {control} TWOSTEP\n"
        ));
        assert!(!ok, "Linux-PAM refuses with {control}");
        assert!(l.starts_with("ok"), "{control}: {l}");
    }
}

/// Finding 6: a later line's reset is named with its effect, not the
/// module's `required`.
#[test]
fn later_reset_is_named_and_linux_pam_agrees() {
    let (ok, l) = real_pam_and_doctor(
        "auth required pam_permit.so\nauth required TWOSTEP\n\
         auth [default=reset] pam_permit.so\nauth optional pam_permit.so\n",
    );
    assert!(ok, "Linux-PAM authenticates");
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(
        l.contains("`[default=reset] pam_permit.so` at ")
            && l.contains("svc:3 resets the stack after pam_twostep.so at "),
        "{l}"
    );
    assert!(l.contains("fix: remove the `reset`"), "{l}");
    assert!(!l.contains("use `required`"), "{l}");
}

/// Findings 4c and 4d: group names checked against this host (NSS), and
/// exemptions that cover everybody.
#[test]
fn exemptions_that_cover_everybody_or_nobody() {
    let f = Fixture::new();
    f.good_pam();
    let config = f.config(
        "version = 1\n[pam]\n\
         require_groups = [\"wheel-typo\"]\n\
         exempt_groups = [\"users\", \"no-such-group-xyz\", \"root\"]\n\
         exempt_networks = [\"0.0.0.0/0\", \"::/0\", \"10.0.0.0/6\", \"192.0.2.0/24\"]\n",
    );
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 1, "{out}");
    let l = line(
        &out,
        "FAIL",
        &["policy:", "require_groups names group \"wheel-typo\""],
    );
    assert!(l.contains("nobody is asked for a code"), "{l}");
    assert!(
        l.contains("fix: correct the name (`getent group wheel-typo`"),
        "{l}"
    );
    line(
        &out,
        "warn",
        &["policy:", "\"users\" (gid 100) is meant for every user"],
    );
    line(
        &out,
        "warn",
        &["policy:", "\"no-such-group-xyz\", which does not exist"],
    );
    line(
        &out,
        "ok",
        &["policy:", "exempt_groups group \"root\" exists"],
    );
    let l = line(
        &out,
        "FAIL",
        &["policy:", "0.0.0.0/0 exempts every IPv4 address"],
    );
    assert!(l.contains("fix: remove 0.0.0.0/0"), "{l}");
    line(
        &out,
        "FAIL",
        &["policy:", "::/0 exempts every IPv6 address"],
    );
    line(&out, "warn", &["policy:", "10.0.0.0/6 is very wide"]);
    line(&out, "ok", &["policy:", "exempt_networks 192.0.2.0/24"]);
}

/// Finding 4b: Match blocks, in the file and in an Include, that `sshd -T`
/// alone never applies.
#[test]
fn match_blocks_are_read_from_the_files() {
    let f = Fixture::new();
    f.good_pam();
    let config = f.config("version = 1\n");
    let sshd_config = f.sshd_config(GOOD_SSHD);
    let dropins = f.path("sshd_config.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(
        dropins.join("50-admins.conf"),
        "# admins\nMatch User alice\n    AuthenticationMethods publickey,keyboard-interactive\n",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&sshd_config).unwrap();
    text = format!("Include {}/*.conf\n{text}", dropins.display());
    text.push_str(
        "Match Address 127.0.0.0/8\n    AuthenticationMethods publickey\n\
         Match User nobody\n    X11Forwarding no\n",
    );
    std::fs::write(&sshd_config, &text).unwrap();
    let match_line = text
        .lines()
        .position(|l| l.starts_with("Match Address"))
        .unwrap()
        + 1;
    let (code, out) = f.doctor(&config, &sshd_config, &[]);
    assert_eq!(code, 1, "{out}");
    // The global settings are fine ...
    line(
        &out,
        "ok",
        &[
            "sshd:",
            "AuthenticationMethods publickey,keyboard-interactive",
        ],
    );
    // ... the Match block is not.
    let l = line(
        &out,
        "FAIL",
        &[
            "sshd:",
            &format!(
                "Match block at {}:{match_line} (`Match Address 127.0.0.0/8`) sets AuthenticationMethods publickey",
                sshd_config.display()
            ),
            "list publickey never reaches keyboard-interactive",
        ],
    );
    let probe = l
        .split("check with `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap_or_else(|| panic!("no probe in {l}"));
    // The command doctor suggests shows the block's effect in real sshd.
    let args: Vec<&str> = probe.split_whitespace().collect();
    let shown = Command::new(args[0]).args(&args[1..]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l == "authenticationmethods publickey"),
        "{probe}:\n{shown}"
    );
    let l = line(
        &out,
        "warn",
        &[
            "sshd:",
            "50-admins.conf:2 (`Match User alice`) sets AuthenticationMethods publickey,keyboard-interactive",
        ],
    );
    assert!(l.contains("user=alice"), "{l}");
    assert!(!out.contains("Match User nobody"), "{out}");
}

/// A module named but missing fails every login, even on a `-auth` line
/// (the dash only silences the log): doctor says so, Linux-PAM agrees.
#[test]
fn missing_module_fails_closed_even_with_dash_auth() {
    let f = Fixture::new();
    f.good_pam();
    f.pam(
        "sshd",
        "auth required pam_permit.so\n-auth required /nonexistent/pam_twostep.so\n",
    );
    let config = f.config("version = 1\n");
    let (code, out) = f.doctor(&config, &f.sshd_config(GOOD_SSHD), &[]);
    assert_eq!(code, 1, "{out}");
    let l = line(
        &out,
        "FAIL",
        &["pam module:", "/nonexistent/pam_twostep.so is named"],
    );
    assert!(l.contains("PAM fails every login of that service"), "{l}");
    let run = pam_support::pamtester(&f.pam_dir(), "sshd", "demo", None, "", &[]);
    assert!(!run.ok, "{run:#?}");
    assert_eq!(run.pam_line(), "pamtester: Module is unknown", "{run:#?}");
}

/// The `*_file` secrets of `[api.sms]`, `[api.voice]`, `[api.smtp]` and the
/// webhook headers are judged like the others (the registry's own check
/// reads the same list), and `twostep-api --check` refuses the same file.
#[test]
fn gateway_and_smtp_secret_files_are_checked() {
    let f = Fixture::new();
    let sms = f.path("sms.token");
    write_secret(&sms, "AC123:secret\n");
    std::fs::set_permissions(&sms, std::fs::Permissions::from_mode(0o644)).unwrap();
    let voice = f.path("voice.token");
    let smtp = f.path("smtp.password");
    write_secret(&smtp, "pw\n");
    let relay = f.path("relay.token");
    write_secret(&relay, "Bearer x\n");
    std::fs::set_permissions(&relay, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = f.config(&format!(
        "version = 1\n\
         [api]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{db}\"\nsecret_key_file = {sk:?}\nadmin_token_file = {at:?}\n\
         [api.push]\nwebhook_url = \"https://relay.example/w\"\nwebhook_headers = {{ Authorization = {{ value_file = {relay:?} }} }}\n\
         [api.smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nusername = \"twostep\"\npassword_file = {smtp:?}\n\
         [api.sms]\nurl = \"https://sms.example.com\"\nheaders = {{ Authorization = \"Basic {{{{token}}}}\" }}\ntoken_file = {sms:?}\n\
         [api.voice]\nurl = \"https://voice.example.com\"\nheaders = {{ Authorization = \"Basic {{{{token}}}}\" }}\ntoken_file = {voice:?}\n",
        port = free_tcp_port(),
        db = f.path("registry.db").display(),
        sk = f.path("secret.key"),
        at = f.path("admin.token"),
    ));
    let (code, out) = f.doctor(
        &config,
        Path::new("/nonexistent"),
        &["--no-sshd", "--no-pam"],
    );
    assert_eq!(code, 1, "{out}");
    let l = line(
        &out,
        "FAIL",
        &["files:", "[api.sms] token_file", "mode 0644"],
    );
    assert!(
        l.contains(&format!("fix: chmod 600 {}", sms.display())),
        "{l}"
    );
    line(
        &out,
        "FAIL",
        &["files:", "[api.voice] token_file", "voice.token"],
    );
    line(
        &out,
        "ok",
        &["files:", "[api.smtp] password_file", "mode 0600 are safe"],
    );
    line(
        &out,
        "FAIL",
        &[
            "files:",
            "[api.push] webhook_headers \"Authorization\" value_file",
            "mode 0640",
        ],
    );
    line(
        &out,
        "ok",
        &["files:", "[api] secret_key_file", "will be created"],
    );

    let check = Command::new(bin("twostep-api"))
        .arg("--config")
        .arg(&config)
        .arg("--check")
        .output()
        .expect("run twostep-api --check");
    assert!(!check.status.success());
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("mode 0640") || err.contains("mode 0644"),
        "{err}"
    );
}

/// A short RADIUS shared secret is judged by one rule
/// (`twostep_config::radius::warnings`): `twostep-radiusd --check` and
/// doctor both pass with the same warning, in the same words.
#[test]
fn short_shared_secret_is_the_same_warning_for_radiusd_and_doctor() {
    let f = Fixture::new();
    let registry = Registry::start();
    let key = registry.add_host("doctor-radius", HostKind::Radius);
    let state = f.path("state.key");
    write_secret(&state, &"ab".repeat(32));
    let weak = f.path("nas.secret");
    write_secret(&weak, "short\n");
    let config = f.config(&format!(
        "version = 1\n{}\n\
         [radius]\nlisten = \"127.0.0.1:0\"\nstate_key_file = {state:?}\n\
         [[radius.client]]\nname = \"weak\"\naddress = \"127.0.0.1/32\"\nsecret_file = {weak:?}\n",
        registry.registry_toml(&key)
    ));
    let check = Command::new(bin("twostep-radiusd"))
        .arg("--config")
        .arg(&config)
        .arg("--check")
        .output()
        .expect("run twostep-radiusd --check");
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let warning = said
        .lines()
        .find_map(|l| l.split_once(": warning: ").map(|(_, w)| w))
        .unwrap_or_else(|| panic!("no warning in:\n{said}"));
    assert!(warning.contains("shared secret is 5 characters"), "{said}");
    let (code, out) = f.doctor(
        &config,
        Path::new("/nonexistent"),
        &["--no-sshd", "--no-pam"],
    );
    assert_eq!(code, 0, "{out}");
    let l = line(&out, "warn", &["radius:", warning]);
    assert!(!out.contains("FAIL"), "{out}");
    assert!(l.contains("fix: write 16 or more"), "{l}");
}
