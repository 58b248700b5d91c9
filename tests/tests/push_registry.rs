//! Push approvals against the real `twostep-api` binary, driven through
//! the registry client's push calls with a small test-only device: the
//! whole flow on SQLite, and two registry processes on one PostgreSQL
//! database where the device polls one, the host starts and waits on the
//! other, and each side is woken within a second.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twostep_common::api::{ApiErrorCode, HostKind, MethodKind};
use twostep_common::client::{ClientError, RegistryClient};
use twostep_common::push::{
    parse_activation_uri, ActivateDevice, CreateActivation, Decision, DeviceKey, PendingChallenge,
    PushContext, PushResult, StartPush, StartResult, StartedChallenge,
};
use twostep_e2e::{fresh_postgres_database, Registry};

/// A test-only push device: its key pair, id and client.
struct TestDevice {
    key: DeviceKey,
    id: i64,
    client: RegistryClient,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TestDevice {
    /// Activates a new device for `user` with an activation made on
    /// `admin_reg`, talking to the registry at `device_url`.
    async fn activate(admin: &RegistryClient, user: &str, device_url: &str) -> Self {
        let a = admin
            .create_activation(
                user,
                &CreateActivation {
                    label: Some("test phone".into()),
                },
            )
            .await
            .expect("activation");
        let uri = parse_activation_uri(&a.activation_uri).expect("activation URI");
        assert_eq!(uri.username, user);
        assert_eq!(uri.code, a.code);
        let client = RegistryClient::for_device(device_url, None).expect("device client");
        let key = DeviceKey::generate();
        let done = client
            .activate(&ActivateDevice {
                code: uri.code,
                device_name: "e2e device".into(),
                public_key: key.public_key(),
            })
            .await
            .expect("activate");
        assert_eq!(done.label, "test phone");
        Self {
            key,
            id: done.device_id,
            client,
        }
    }

    async fn poll(&self, wait: u64) -> Vec<PendingChallenge> {
        self.client
            .poll(&self.key.sign_poll(self.id, unix_now(), wait))
            .await
            .expect("poll")
            .challenges
    }

    async fn answer(
        &self,
        c: &PendingChallenge,
        decision: Decision,
        number: Option<u8>,
    ) -> Result<PushResult, ClientError> {
        self.client
            .answer(&self.key.sign_answer(self.id, c, decision, number))
            .await
            .map(|a| a.result)
    }
}

fn start_req(user: &str) -> StartPush {
    StartPush {
        username: user.into(),
        context: PushContext {
            service: Some("sshd".into()),
            host: Some("web1".into()),
            remote_addr: Some("192.0.2.7".into()),
            ..PushContext::default()
        },
    }
}

/// Starts a push for `user` that must be sent.
async fn sent(host: &RegistryClient, user: &str) -> StartedChallenge {
    let started = host.start_push(&start_req(user)).await.expect("start_push");
    assert_eq!(started.result, StartResult::Sent);
    started.challenge.expect("a sent push has its challenge")
}

/// What starting a push for `user` answers.
async fn start_result(host: &RegistryClient, user: &str) -> StartResult {
    host.start_push(&start_req(user))
        .await
        .expect("start_push")
        .result
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn push_flow_through_the_client_on_sqlite() {
    let reg = Registry::start();
    reg.add_user("alice");
    let key = reg.add_host("web1", HostKind::Ssh);
    let other_key = reg.add_host("web2", HostKind::Ssh);
    runtime().block_on(async {
        let admin = reg.admin_client();
        let host = reg.host_client(&key);
        let other = reg.host_client(&other_key);
        let dev = TestDevice::activate(&admin, "alice", &reg.url).await;
        let user = admin.user("alice").await.unwrap();
        assert_eq!(user.methods[0].kind, MethodKind::Push);

        // The poll is woken by the start within a second.
        let poll = tokio::spawn(async move {
            let list = dev.poll(20).await;
            (Instant::now(), list, dev)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = host.start_push(&start_req("alice")).await.unwrap();
        let created = Instant::now();
        assert_eq!(started.result, StartResult::Sent);
        let ch = started.challenge.unwrap();
        assert_eq!(ch.device_label, "test phone");
        let (woken, list, dev) = poll.await.unwrap();
        assert!(
            woken - created < Duration::from_secs(1),
            "{:?}",
            woken - created
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].challenge_id, ch.challenge_id);
        assert_eq!(list[0].context.remote_addr.as_deref(), Some("192.0.2.7"));

        // The host's wait is woken by the answer.
        let id = ch.challenge_id.clone();
        let wait = tokio::spawn(async move {
            let o = host.push_outcome(&id, Duration::from_secs(20)).await;
            (Instant::now(), o, host)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            dev.answer(&list[0], Decision::Approve, ch.number)
                .await
                .unwrap(),
            PushResult::Approved
        );
        let answered = Instant::now();
        let (woken, o, host) = wait.await.unwrap();
        assert_eq!(o.unwrap().result, PushResult::Approved);
        assert!(woken - answered < Duration::from_secs(1));
        // Once, and only to its host.
        let e = host
            .push_outcome(&ch.challenge_id, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(e.api_code(), Some(ApiErrorCode::UnknownChallenge), "{e}");
        let e = other
            .push_outcome(&ch.challenge_id, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(e.api_code(), Some(ApiErrorCode::UnknownChallenge), "{e}");
        // A replayed answer is refused.
        let e = dev
            .answer(&list[0], Decision::Approve, ch.number)
            .await
            .unwrap_err();
        assert_eq!(e.api_code(), Some(ApiErrorCode::ChallengeClosed), "{e}");

        // A host cancels; disabling the device cancels too.
        let ch = sent(&host, "alice").await;
        host.cancel_push(&ch.challenge_id).await.unwrap();
        let ch = sent(&host, "alice").await;
        let m = admin.disable_method(dev.id).await.unwrap();
        assert!(m.disabled);
        assert_eq!(
            host.push_outcome(&ch.challenge_id, Duration::from_secs(5))
                .await
                .unwrap()
                .result,
            PushResult::Cancelled
        );
        let e = dev
            .client
            .poll(&dev.key.sign_poll(dev.id, unix_now(), 0))
            .await;
        assert!(
            matches!(e, Err(ClientError::Refused { status: 403, .. })),
            "{e:?}"
        );
        assert_eq!(
            e.unwrap_err().api_code(),
            Some(ApiErrorCode::DeviceDisabled)
        );
        assert!(!admin.enable_method(dev.id).await.unwrap().disabled);
        // A code for this push-only user is wrong, never "not enrolled".
        let v = host
            .verify(&twostep_common::api::VerifyRequest {
                username: "alice".into(),
                code: "123456".into(),
                context: Default::default(),
            })
            .await
            .unwrap();
        assert_eq!(v.result, twostep_common::api::VerifyResult::Reject);
    });
}

#[test]
fn two_registry_processes_on_one_postgres_wake_each_other() {
    let url = fresh_postgres_database();
    let a = Registry::start_with(Some(&url), "");
    let b = a.start_replica("");
    a.add_user("bob");
    let key = a.add_host("web1", HostKind::Ssh);
    runtime().block_on(async {
        let dev = TestDevice::activate(&a.admin_client(), "bob", &a.url).await;
        let host_b = b.host_client(&key);
        // Let both listeners settle after start.
        tokio::time::sleep(Duration::from_millis(300)).await;

        // The device polls A; the host starts the challenge on B.
        let poll = tokio::spawn(async move {
            let list = dev.poll(20).await;
            (Instant::now(), list, dev)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ch = sent(&host_b, "bob").await;
        let created = Instant::now();
        let (woken, list, dev) = poll.await.unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert!(
            woken - created < Duration::from_secs(1),
            "device woken {:?} after the challenge was created on the other process",
            woken - created
        );

        // The host waits on B; the answer goes to A.
        let id = ch.challenge_id.clone();
        let wait = tokio::spawn(async move {
            let o = host_b.push_outcome(&id, Duration::from_secs(20)).await;
            (Instant::now(), o)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            dev.answer(&list[0], Decision::Deny, None).await.unwrap(),
            PushResult::Denied
        );
        let answered = Instant::now();
        let (woken, o) = wait.await.unwrap();
        assert_eq!(o.unwrap().result, PushResult::Denied);
        assert!(
            woken - answered < Duration::from_secs(1),
            "host woken {:?} after the answer on the other process",
            woken - answered
        );
    });
}

/// The statements of every final state, on PostgreSQL: expiry, fraud and
/// its block, unlock, the rate limit, disabling a device mid-wait.
/// Expiry is stored in whole seconds, so a challenge lives between
/// `challenge_lifetime - 1` and `challenge_lifetime` seconds: 3 leaves
/// the steps that must beat it (answer, disable) 2 s.
#[test]
fn final_states_and_limits_on_postgres() {
    let url = fresh_postgres_database();
    let reg = Registry::start_with(
        Some(&url),
        "[api.push]\nchallenge_lifetime = 3\nmax_challenges = 4\n",
    );
    reg.add_user("carol");
    let key = reg.add_host("vpn1", HostKind::Radius);
    runtime().block_on(async {
        let admin = reg.admin_client();
        let host = reg.host_client(&key);
        let dev = TestDevice::activate(&admin, "carol", &reg.url).await;
        // No answer: expired once the lifetime (3 s) is over.
        let ch = sent(&host, "carol").await;
        let list = dev.poll(0).await;
        assert_eq!(
            host.push_outcome(&ch.challenge_id, Duration::from_secs(5))
                .await
                .unwrap()
                .result,
            PushResult::Expired
        );
        let e = dev
            .answer(&list[0], Decision::Deny, None)
            .await
            .unwrap_err();
        assert_eq!(e.api_code(), Some(ApiErrorCode::ChallengeExpired), "{e}");
        // Fraud blocks; unlock clears it.
        let ch = sent(&host, "carol").await;
        let list = dev.poll(5).await;
        assert_eq!(list[0].challenge_id, ch.challenge_id);
        assert_eq!(
            dev.answer(&list[0], Decision::Fraud, None).await.unwrap(),
            PushResult::Fraud
        );
        assert_eq!(start_result(&host, "carol").await, StartResult::Blocked);
        admin.unlock_user("carol").await.unwrap();
        // Disabled mid-wait: the host sees `cancelled` at once.
        let ch = sent(&host, "carol").await;
        let id = ch.challenge_id.clone();
        let wait =
            tokio::spawn(
                async move { (host.push_outcome(&id, Duration::from_secs(20)).await, host) },
            );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        admin.disable_method(dev.id).await.unwrap();
        let (o, host) = wait.await.unwrap();
        assert_eq!(o.unwrap().result, PushResult::Cancelled);
        assert!(t.elapsed() < Duration::from_secs(1));
        admin.enable_method(dev.id).await.unwrap();
        // Four sent in the window: the fifth is refused.
        assert_eq!(start_result(&host, "carol").await, StartResult::Sent);
        assert_eq!(start_result(&host, "carol").await, StartResult::RateLimited);
        let audit = admin.audit(200).await.unwrap();
        for word in [
            "push_sent",
            "expired",
            "fraud",
            "blocked",
            "cancelled",
            "rate_limited",
        ] {
            assert!(
                audit.iter().any(|e| e.result.as_deref() == Some(word)),
                "no {word} in the audit: {audit:?}"
            );
        }
    });
}

/// Runs `twostep --config REG ARGS...`, which must succeed; its stdout.
fn twostep_cli(reg: &Registry, args: &[&str]) -> String {
    let out = std::process::Command::new(twostep_e2e::bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .args(args)
        .output()
        .expect("run twostep");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "twostep {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `twostep enrol --push`, `method disable|enable`, `user unlock` for
/// the fraud block.
#[test]
fn admin_cli_push_commands() {
    let reg = Registry::start();
    reg.add_user("dora");
    let key = reg.add_host("web1", HostKind::Ssh);
    let out = twostep_cli(
        &reg,
        &["enrol", "dora", "--push", "--label", "Dora's phone"],
    );
    assert!(
        out.contains("push device activation for dora; expires "),
        "{out}"
    );
    assert!(out.contains("(in 10 minutes)"), "{out}");
    assert!(
        out.contains('\u{2580}') || out.contains('\u{2584}'),
        "a QR code: {out}"
    );
    let uri = out
        .lines()
        .find_map(|l| l.strip_prefix("uri: "))
        .expect("uri line")
        .to_owned();
    let parsed = parse_activation_uri(&uri).unwrap();
    assert_eq!(parsed.registry, reg.url);
    let quiet = twostep_cli(&reg, &["enrol", "dora", "--push", "--no-qr"]);
    assert!(!quiet.contains('\u{2580}') && !quiet.contains('\u{2584}'));
    runtime().block_on(async {
        let client = RegistryClient::for_device(&parsed.registry, None).unwrap();
        let dk = DeviceKey::generate();
        let done = client
            .activate(&ActivateDevice {
                code: parsed.code.clone(),
                device_name: "pixel".into(),
                public_key: dk.public_key(),
            })
            .await
            .unwrap();
        assert_eq!(done.label, "Dora's phone");
        let dev = TestDevice {
            key: dk,
            id: done.device_id,
            client,
        };
        let show = twostep_cli(&reg, &["user", "show", "dora"]);
        assert!(
            show.contains("push") && show.contains("Dora's phone") && show.contains("never"),
            "{show}"
        );
        let id = dev.id.to_string();
        assert_eq!(
            twostep_cli(&reg, &["method", "disable", &id]).trim(),
            format!("disabled method {id} (\"Dora's phone\")")
        );
        assert!(twostep_cli(&reg, &["user", "show", "dora"]).contains("(disabled)"));
        let host = reg.host_client(&key);
        assert_eq!(start_result(&host, "dora").await, StartResult::NotEnrolled);
        twostep_cli(&reg, &["method", "enable", &id]);
        sent(&host, "dora").await;
        let list = dev.poll(0).await;
        dev.answer(&list[0], Decision::Fraud, None).await.unwrap();
        assert_eq!(start_result(&host, "dora").await, StartResult::Blocked);
        twostep_cli(&reg, &["user", "unlock", "dora"]);
        assert_eq!(start_result(&host, "dora").await, StartResult::Sent);
    });
}

/// `twostep enrol --push` for a disabled user is refused with a clear
/// message; `user reset` voids an activation URI printed before it.
#[test]
fn enrol_push_for_a_disabled_user_and_a_reset_voids_the_uri() {
    let reg = Registry::start();
    reg.add_user("erin");
    let out = twostep_cli(&reg, &["enrol", "erin", "--push", "--no-qr"]);
    let uri = out
        .lines()
        .find_map(|l| l.strip_prefix("uri: "))
        .expect("uri line")
        .to_owned();
    twostep_cli(&reg, &["user", "reset", "erin"]);
    let parsed = parse_activation_uri(&uri).unwrap();
    runtime().block_on(async {
        let client = RegistryClient::for_device(&parsed.registry, None).unwrap();
        let err = client
            .activate(&ActivateDevice {
                code: parsed.code.clone(),
                device_name: "found phone".into(),
                public_key: DeviceKey::generate().public_key(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.api_code(),
            Some(ApiErrorCode::UnknownActivation),
            "{err}"
        );
    });
    twostep_cli(&reg, &["user", "disable", "erin"]);
    let out = std::process::Command::new(twostep_e2e::bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .args(["enrol", "erin", "--push"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("user \"erin\" is disabled") && stderr.contains("twostep user enable erin"),
        "{stderr}"
    );
}
