//! Push approvals through `twostep-radiusd`: radclient (freeradius-utils)
//! as the NAS, a real registry, and the reference device `twostep
//! authenticator` activated from `twostep enrol USER --push`. In append,
//! challenge and auto-push modes: the right number lets in, a wrong number,
//! a denial, no answer, a fraud report (and the next push after it), and a
//! device disabled mid-wait keep out; retransmissions during a pending
//! push, with the same Identifier or a new one, make exactly one challenge
//! in the registry; 1,000 pending pushes leave code logins answered, with
//! the memory each pending push takes measured.

mod radius_support;

use radius_support::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use twostep_e2e::block_on;

const SECRET: &str = "nas-shared-secret-push";

/// A registry (with `[api.push]` as given), a RADIUS server with one
/// client, and alice with an authenticator app and a push device whose
/// accounts file `twostep authenticator` uses.
struct Push {
    env: Env,
    d: Radiusd,
    accounts: PathBuf,
    _accounts_dir: tempfile::TempDir,
    /// alice's TOTP secret (base32).
    totp: String,
    /// The push device's method id.
    device_id: i64,
}

use twostep_e2e::{show_output as show, twostep};

/// `twostep --config REG_CONFIG ARGS...`: an admin command.
fn admin(reg_config: &Path, args: &[&str]) -> Output {
    let config = reg_config.to_str().expect("UTF-8 path");
    twostep(&[&["--config", config], args].concat())
}

impl Push {
    /// `mode` for client "vpn" (primary none: the password part is not
    /// checked) with `client_extra` in its table, `api_push` in the
    /// registry's `[api.push]`, `radius_extra` in `[radius]`.
    fn start(mode: &str, client_extra: &str, api_push: &str, radius_extra: &str) -> Push {
        let env = Env::with_api(&format!("[api.push]\nmax_challenges = 5000\n{api_push}"));
        let s = env.secret_file("nas.secret", SECRET);
        let body = format!(
            "{radius_extra}\n{}",
            client_toml("vpn", "127.0.0.1/32", &s, mode, client_extra)
        );
        let d = env.radiusd("push", &body);
        let totp = env.enrolled_user("alice");
        let out = admin(
            &env.reg.config_path,
            &["enrol", "alice", "--push", "--no-qr"],
        );
        assert!(out.status.success(), "{}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let uri = text
            .lines()
            .find_map(|l| l.strip_prefix("uri:"))
            .unwrap_or_else(|| panic!("no uri: line in {text}"))
            .trim()
            .to_owned();
        let accounts_dir = tempfile::tempdir().unwrap();
        let accounts = accounts_dir.path().join("authenticator.json");
        let mut p = Push {
            env,
            d,
            accounts,
            _accounts_dir: accounts_dir,
            totp,
            device_id: 0,
        };
        let out = p.device(&["add", &uri, "--name", "e2e phone"]);
        assert!(out.status.success(), "{}", show(&out));
        let file = std::fs::read_to_string(&p.accounts).unwrap();
        let v: serde_json::Value = serde_json::from_str(&file).unwrap();
        p.device_id = v["accounts"][0]["device_id"].as_i64().unwrap();
        p
    }

    /// `twostep authenticator ARGS...` with alice's device.
    fn device(&self, args: &[&str]) -> Output {
        let accounts = self.accounts.to_str().expect("UTF-8 path");
        twostep(&[&["authenticator", "--accounts", accounts], args].concat())
    }

    /// The device answers the pending request: `args` as `approve
    /// --number N`, `deny`, `fraud`; asserts the word it prints.
    fn answer(&self, args: &[&str], word: &str) {
        let mut all = args.to_vec();
        all.extend(["--wait", "20"]);
        let out = self.device(&all);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            word,
            "{}",
            show(&out)
        );
    }

    /// An Access-Request for alice, answered within 3 s.
    fn auth(&self, password: &str, extra: &[&str]) -> RadReply {
        auth(self.d.port, SECRET, "alice", password, extra)
    }

    /// The request that collects a push's result: any text, the State;
    /// radclient waits 40 s, one try.
    fn collect(&self, state: &str) -> RadReply {
        collect(self.d.port, state, 40.0, 1)
    }

    /// How many pushes the registry sent (audit rows `push_sent`).
    fn pushes_sent(&self) -> usize {
        block_on(self.env.reg.admin.audit(5000))
            .unwrap()
            .iter()
            .filter(|e| e.result.as_deref() == Some("push_sent"))
            .count()
    }
}

/// Collects with `state` from 127.0.0.1:`port`: `timeout` s per try.
fn collect(port: u16, state: &str, timeout: f32, tries: u32) -> RadReply {
    radclient_with(
        port,
        SECRET,
        "auth",
        &[
            "User-Name = \"alice\"".into(),
            "User-Password = \"ok\"".into(),
            format!("State = {state}"),
            "Message-Authenticator = 0x00".into(),
        ],
        timeout,
        tries,
    )
}

/// The number in an Access-Challenge "Approve on your phone: enter N, then press OK".
fn number_of(r: &RadReply) -> u8 {
    let m = r
        .attr("Reply-Message")
        .unwrap_or_else(|| panic!("no Reply-Message:\n{}", r.output));
    let n = m
        .strip_prefix("\"Approve on your phone: enter ")
        .and_then(|rest| rest.strip_suffix(", then press OK\""))
        .unwrap_or_else(|| panic!("not a push prompt: {m}"));
    n.parse().unwrap_or_else(|_| panic!("no number in {m}"))
}

/// A number from 10 to 99 other than `n`.
fn other_than(n: u8) -> u8 {
    if n == 99 {
        10
    } else {
        n + 1
    }
}

fn message(r: &RadReply) -> &str {
    r.attr("Reply-Message").unwrap_or_default()
}

/// `pw,push` in append mode: the Access-Challenge with the number; its
/// State and number.
fn pushed(p: &Push) -> (String, u8) {
    let r = p.auth("pw,push", &[]);
    r.expect("Access-Challenge");
    (r.state(), number_of(&r))
}

#[test]
fn append_push_right_number_wrong_number_deny() {
    let p = Push::start("append", "", "", "");
    // The right number: in, with the result collected by the next request
    // (which waits for it).
    let r = p.auth("pw,push", &[]);
    r.expect("Access-Challenge");
    let (state, n) = (r.state(), number_of(&r));
    let session_timeout: u64 = r
        .attr("Session-Timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no Session-Timeout:\n{}", r.output));
    assert!((55..=62).contains(&session_timeout), "{session_timeout}");
    let waiter = {
        let port = p.d.port;
        let state = state.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            (collect(port, &state, 40.0, 1), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    p.answer(&["approve", "--number", &n.to_string()], "approved");
    let (r, took) = waiter.join().unwrap();
    r.expect("Access-Accept");
    assert!(took >= Duration::from_secs(1), "it waited: {took:?}");
    // The State served its login.
    p.collect(&state).expect("Access-Reject");

    // A wrong number keeps out.
    let (state, n) = pushed(&p);
    p.answer(
        &["approve", "--number", &other_than(n).to_string()],
        "wrong_number",
    );
    let r = p.collect(&state);
    r.expect("Access-Reject");
    assert_eq!(
        message(&r),
        "\"wrong number entered on the phone\"",
        "{}",
        r.output
    );

    // A denial keeps out.
    let (state, n) = pushed(&p);
    p.answer(&["deny"], "denied");
    let r = p.collect(&state);
    r.expect("Access-Reject");
    assert_eq!(message(&r), "\"push denied\"", "{}", r.output);
    // Codes still work beside push.
    p.auth(&format!("pw,{}", code(&p.totp)), &[])
        .expect("Access-Accept");
    // Numbers never reach the log.
    assert!(!p.d.log().contains(&format!("enter {n}")), "{}", p.d.log());
    assert_eq!(p.pushes_sent(), 3);
}

#[test]
fn challenge_mode_push_then_number_then_result() {
    let p = Push::start("challenge", "", "", "");
    let r = p.auth("pw", &[]);
    r.expect("Access-Challenge");
    assert_eq!(
        message(&r),
        "\"Enter the code from your app, or type push\"",
        "{}",
        r.output
    );
    let first = r.state();
    let r = p.auth("push", &[&format!("State = {first}")]);
    r.expect("Access-Challenge");
    let n = number_of(&r);
    let second = r.state();
    assert_ne!(second, first);
    p.answer(&["approve", "--number", &n.to_string()], "approved");
    p.collect(&second).expect("Access-Accept");
    // The code prompt still takes a code.
    let r = p.auth("pw", &[]);
    p.auth(&code(&p.totp), &[&format!("State = {}", r.state())])
        .expect("Access-Accept");
    assert_eq!(p.pushes_sent(), 1);
}

#[test]
fn auto_push_number_first_then_result() {
    let p = Push::start("auto-push", "", "", "");
    let r = p.auth("pw", &[]);
    r.expect("Access-Challenge");
    let n = number_of(&r);
    let state = r.state();
    // The collecting request waits while the device answers.
    let waiter = {
        let port = p.d.port;
        std::thread::spawn(move || collect(port, &state, 40.0, 1))
    };
    std::thread::sleep(Duration::from_millis(500));
    p.answer(&["approve", "--number", &n.to_string()], "approved");
    waiter.join().unwrap().expect("Access-Accept");
    assert_eq!(p.pushes_sent(), 1);
}

#[test]
fn no_answer_is_a_reject_at_the_deadline() {
    let p = Push::start("append", "", "challenge_lifetime = 3\n", "");
    let (state, _) = pushed(&p);
    let t = Instant::now();
    let r = p.collect(&state);
    r.expect("Access-Reject");
    assert_eq!(message(&r), "\"push not answered in time\"", "{}", r.output);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn fraud_is_a_reject_and_blocks_the_next_push() {
    let p = Push::start("append", "", "", "");
    let (state, _) = pushed(&p);
    p.answer(&["fraud"], "fraud");
    let r = p.collect(&state);
    r.expect("Access-Reject");
    assert!(message(&r).contains("reported as fraud"), "{}", r.output);
    let r = p.auth("pw,push", &[]);
    r.expect("Access-Reject");
    assert_eq!(
        message(&r),
        "\"push blocked after a fraud report: ask an administrator to clear it\"",
        "{}",
        r.output
    );
    assert!(
        p.d.log().contains("push not sent: blocked"),
        "{}",
        p.d.log()
    );
    // Codes are not blocked.
    p.auth(&format!("pw,{}", code(&p.totp)), &[])
        .expect("Access-Accept");
}

#[test]
fn a_device_disabled_mid_wait_is_a_reject() {
    let p = Push::start("auto-push", "", "", "");
    let r = p.auth("pw", &[]);
    let state = r.state();
    let waiter = {
        let port = p.d.port;
        std::thread::spawn(move || {
            let t = Instant::now();
            (collect(port, &state, 40.0, 1), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let out = admin(
        &p.env.reg.config_path,
        &["method", "disable", &p.device_id.to_string()],
    );
    assert!(out.status.success(), "{}", show(&out));
    let (r, took) = waiter.join().unwrap();
    r.expect("Access-Reject");
    assert_eq!(message(&r), "\"push cancelled\"", "{}", r.output);
    assert!(
        took < Duration::from_secs(10),
        "woken by the cancel: {took:?}"
    );
}

#[test]
fn retransmissions_make_exactly_one_challenge() {
    let p = Push::start("append", "", "", "");
    // A new Identifier for the same user, NAS and password: the same
    // Access-Challenge (number and State), no second push.
    let first = p.auth("pw,push", &[]);
    first.expect("Access-Challenge");
    let again = p.auth("pw,push", &[]);
    again.expect("Access-Challenge");
    assert_eq!(again.state(), first.state());
    assert_eq!(number_of(&again), number_of(&first));
    assert_eq!(p.pushes_sent(), 1);
    // The collecting request: radclient retransmits it (same Identifier)
    // every second, and a second NAS process sends it with a new one,
    // while the push is pending; the device answers after 4 s.
    let state = first.state();
    let same_id = {
        let port = p.d.port;
        let state = state.clone();
        std::thread::spawn(move || collect(port, &state, 1.0, 15))
    };
    let new_id = {
        let port = p.d.port;
        let state = state.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            collect(port, &state, 40.0, 1)
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    p.answer(
        &["approve", "--number", &number_of(&first).to_string()],
        "approved",
    );
    same_id.join().unwrap().expect("Access-Accept");
    new_id.join().unwrap().expect("Access-Accept");
    let log = p.d.log();
    assert!(
        log.contains("retransmission absorbed (in progress)"),
        "{log}"
    );
    assert!(
        log.contains("the reply of an identical pending push login"),
        "{log}"
    );
    assert_eq!(p.pushes_sent(), 1);
}

#[test]
fn a_nas_without_challenges_gets_a_held_push_or_a_clear_refusal() {
    // The registry matches numbers: refused, never silently dropped.
    let p = Push::start("append", "push_number_matching = false", "", "");
    assert!(
        p.d.log().contains("push_number_matching = false"),
        "warned at startup: {}",
        p.d.log()
    );
    let r = p.auth("pw,push", &[]);
    r.expect("Access-Reject");
    assert_eq!(
        message(&r),
        "\"push needs a number this VPN cannot show: use a code from your app\"",
        "{}",
        r.output
    );
    // Cancelled at once: nothing left for the device.
    let out = p.device(&["pending", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "{}",
        show(&out)
    );

    // Number matching off in the registry: the request is held until the
    // answer; its retransmissions (same and new Identifier) join it.
    let p = Push::start(
        "append",
        "push_number_matching = false",
        "number_matching = false\n",
        "",
    );
    let held = |tries| {
        let port = p.d.port;
        std::thread::spawn(move || {
            radclient_with(
                port,
                SECRET,
                "auth",
                &[
                    "User-Name = \"alice\"".into(),
                    "User-Password = \"pw,push\"".into(),
                    "Message-Authenticator = 0x00".into(),
                ],
                if tries > 1 { 2.0 } else { 40.0 },
                tries,
            )
        })
    };
    let same_id = held(15);
    std::thread::sleep(Duration::from_millis(1000));
    let new_id = held(1);
    std::thread::sleep(Duration::from_secs(3));
    p.answer(&["approve"], "approved");
    same_id.join().unwrap().expect("Access-Accept");
    new_id.join().unwrap().expect("Access-Accept");
    assert_eq!(p.pushes_sent(), 1);
}

/// Resident set size of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Established IPv4 TCP connections whose remote end is 127.0.0.1:`port`.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2] == remote && f[3] == "01"
        })
        .count()
}

/// Sends `datagram` from a socket of its own and waits for the reply,
/// sending the same datagram again every `every` (a request dropped by
/// `max_in_flight` is then worked on; one in progress is absorbed) until
/// `within` has passed. `replied` counts the replies of all such exchanges.
async fn exchange(
    port: u16,
    datagram: Vec<u8>,
    every: Duration,
    within: Duration,
    replied: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Option<twostep_radius::wire::RawPacket> {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.connect(("127.0.0.1", port)).await.unwrap();
    let end = Instant::now() + within;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < end {
        s.send(&datagram).await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(every, s.recv(&mut buf)).await {
            replied.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return twostep_radius::wire::parse(&buf[..n]).ok();
        }
    }
    None
}

/// [`exchange`] for each datagram, 20 every 10 ms.
async fn exchange_all(
    port: u16,
    datagrams: impl Iterator<Item = Vec<u8>>,
    every: Duration,
    within: Duration,
    replied: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Option<twostep_radius::wire::RawPacket>>> {
    let mut tasks = Vec::new();
    for (i, d) in datagrams.enumerate() {
        tasks.push(tokio::spawn(exchange(
            port,
            d,
            every,
            within,
            replied.clone(),
        )));
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tasks
}

fn access_request(id: u8, user: &str, password: &str, state: Option<&[u8]>) -> Vec<u8> {
    use twostep_radius::wire::{attr, build_access_request, RawAttr};
    let mut attrs = vec![
        RawAttr {
            typ: attr::USER_NAME,
            value: user.as_bytes().to_vec(),
        },
        RawAttr {
            typ: attr::NAS_IDENTIFIER,
            value: b"load-nas".to_vec(),
        },
    ];
    if let Some(s) = state {
        attrs.push(RawAttr {
            typ: attr::STATE,
            value: s.to_vec(),
        });
    }
    build_access_request(id, &attrs, password.as_bytes(), SECRET.as_bytes())
        .unwrap()
        .0
}

const PENDING: usize = 1000;

#[test]
fn a_thousand_pending_pushes_leave_code_logins_answered() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use twostep_radius::wire::{attr, code as rcode};
    let p = Push::start("append", "", "", "max_in_flight = 16\n");
    let coders: Vec<(String, String)> = (0..5)
        .map(|i| {
            let user = format!("coder{i}");
            let secret = p.env.enrolled_user(&user);
            (user, secret)
        })
        .collect();
    let port = p.d.port;
    let pid = p.d.pid().expect("running");
    let registry_port = p.env.reg.port;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // 1,000 push logins (distinct passwords: distinct logins), each an
        // Access-Challenge with its number and State.
        let idle = rss_kib(pid);
        let t = Instant::now();
        let starts = (0..PENDING).map(|i| access_request(1, "alice", &format!("pw{i},push"), None));
        let started = Arc::new(AtomicUsize::new(0));
        let tasks = exchange_all(port, starts, Duration::from_secs(2), Duration::from_secs(90), &started).await;
        let mut states = Vec::with_capacity(PENDING);
        for task in tasks {
            let r = task.await.unwrap().expect("an answer to every push login");
            assert_eq!(r.code, rcode::ACCESS_CHALLENGE);
            states.push(r.first(attr::STATE).expect("State").to_vec());
        }
        let before = rss_kib(pid);
        eprintln!(
            "{PENDING} pushes started in {:?}; RSS {idle} KiB idle, {before} KiB with their numbers shown: {} bytes each",
            t.elapsed(),
            before.saturating_sub(idle) * 1024 / PENDING as u64
        );

        // 1,000 requests collecting their results, all left pending.
        let collects = states.iter().map(|st| access_request(2, "alice", "ok", Some(st)));
        let collected = Arc::new(AtomicUsize::new(0));
        let waiting = exchange_all(port, collects, Duration::from_secs(3), Duration::from_secs(25), &collected).await;
        // Each waits on the registry with a long-poll of its own, all of
        // them streams of one HTTP/2 connection (prior knowledge on
        // loopback plain HTTP), not a connection each.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let open = connections_to(registry_port);
        assert!(
            (1..=2).contains(&open),
            "{open} connections to the registry for {PENDING} pending long-polls, want one"
        );
        let during = rss_kib(pid);
        let per_push = during.saturating_sub(before) * 1024 / PENDING as u64;
        eprintln!(
            "RSS {before} KiB before, {during} KiB with {PENDING} pending pushes: {per_push} bytes each"
        );

        // Code logins are answered meanwhile.
        for (i, (user, secret)) in coders.iter().enumerate() {
            let t = Instant::now();
            let d = access_request(i as u8, user, &format!("pw,{}", code(secret)), None);
            let once = Arc::new(AtomicUsize::new(0));
            let r = exchange(port, d, Duration::from_secs(10), Duration::from_secs(10), once)
                .await
                .unwrap_or_else(|| panic!("code login of {user} unanswered"));
            assert_eq!(r.code, rcode::ACCESS_ACCEPT, "{user}");
            eprintln!("code login of {user} answered in {:?}", t.elapsed());
        }
        // And not one pending push was answered meanwhile.
        assert_eq!(collected.load(Ordering::SeqCst), 0);
        assert!(per_push < 24 * 1024, "{per_push} bytes per pending push");
        for w in waiting {
            w.abort();
        }
    });
    assert_eq!(p.pushes_sent(), PENDING);
}
