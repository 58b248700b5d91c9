//! A registry that answers but fails (HTTP 503: its SQLite database is on a
//! full disk, so it cannot record the failure it has just judged) is not
//! "unreachable": `fail_mode = "open"` must not turn its answer into a
//! login, neither through the PAM module nor through twostep-radiusd.

mod pam_support;
mod radius_support;

use std::path::{Path, PathBuf};
use twostep_common::api::HostKind;
use twostep_e2e::{write_secret, Registry, RegistryOptions};

/// The 4 MiB tmpfs a [`FullDisk::start`] registry keeps its database on,
/// mounted in the registry's own mount namespace.
struct FullDisk {
    /// The mount point (as the test sees it, without the tmpfs).
    _dbdir: tempfile::TempDir,
    /// A file inside the tmpfs, reached through /proc/PID/root.
    filler: PathBuf,
}

impl FullDisk {
    /// Starts a registry on SQLite on its own small tmpfs.
    fn start() -> (Registry, FullDisk) {
        let dbdir = tempfile::tempdir().expect("temp dir");
        let reg = Registry::start_opts(RegistryOptions {
            database_url: Some(format!(
                "sqlite://{}",
                dbdir.path().join("registry.db").display()
            )),
            wrapper: twostep_e2e::tmpfs_wrapper(dbdir.path(), 4),
            ..RegistryOptions::default()
        });
        // The tmpfs as the registry sees it, through /proc/PID/root.
        let filler = Path::new("/proc")
            .join(reg.pid().expect("registry pid").to_string())
            .join("root")
            .join(dbdir.path().strip_prefix("/").expect("absolute"))
            .join("filler");
        (
            reg,
            FullDisk {
                _dbdir: dbdir,
                filler,
            },
        )
    }

    /// Fills the tmpfs to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(&self.filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&[0u8]).is_ok() {}
    }

    /// Frees the tmpfs again.
    fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove filler");
    }
}

#[test]
fn pam_fails_closed_on_a_failing_registry_even_when_open() {
    use pam_support::*;
    let (reg, disk) = FullDisk::start();
    let f = Fixture::with_registry(reg);
    let secret = f.enrolled("alice");
    f.config("open", "", "fail_mode = \"open\"\nmax_tries = 1\n");
    f.service("open", "auth required TWOSTEP CONFIG(open)\n");

    // Healthy: a wrong code is refused.
    let r = f.auth("open", "alice", None, &wrong_code(&secret));
    r.expect(false, "PAM_MAXTRIES");

    // Full: the registry answers 503; the module fails closed.
    disk.fill();
    let r = f.auth("open", "alice", None, &wrong_code(&secret));
    r.expect(false, "PAM_AUTHINFO_UNAVAIL");
    let log = r.module_log().join("\n");
    assert!(
        log.contains("registry failed (503)") && !log.contains("fail-open"),
        "logged as a failing registry, not fail-open: {log}"
    );

    // Space again: the right code works.
    disk.free();
    let r = f.auth("open", "alice", None, &code(&secret));
    r.expect(true, "PAM_SUCCESS");
}

#[test]
fn radius_rejects_on_a_failing_registry_even_when_open() {
    use radius_support::*;
    const SECRET: &str = "nas-shared-secret-1";
    let (reg, disk) = FullDisk::start();
    let host_key = reg.add_host("radius-1", HostKind::Radius);
    let dir = tempfile::Builder::new()
        .prefix("twostep-radius-")
        .tempdir()
        .expect("temp dir");
    let state_key = dir.path().join("state.key");
    write_secret(&state_key, &format!("{}\n", hex(&random_bytes(32))));
    let env = Env {
        reg,
        dir,
        host_key,
        state_key,
    };
    let s = env.secret_file("nas.secret", SECRET);
    let secret = env.enrolled_user("hank");
    let open = env.radiusd(
        "open",
        &format!(
            "fail_mode = \"open\"\n{}",
            client_toml("vpn", "127.0.0.1/32", &s, "otp-only", "")
        ),
    );
    auth(open.port, SECRET, "hank", &wrong_code(&secret), &[]).expect("Access-Reject");

    disk.fill();
    auth(open.port, SECRET, "hank", &wrong_code(&secret), &[]).expect("Access-Reject");
    let log = open.log();
    assert!(
        log.contains("registry failed (503)") && !log.contains("fail_mode = open lets"),
        "{log}"
    );

    disk.free();
    auth(open.port, SECRET, "hank", &code(&secret), &[]).expect("Access-Accept");
}
