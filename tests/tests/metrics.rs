//! `/metrics` of a real twostep-api and twostep-radiusd, scraped before
//! and after real logins with radclient and parsed with a Prometheus text
//! parser: exactly the counters the logins decided move, by exactly one
//! each, and nothing else does.

mod portal_support;
mod radius_support;

use prometheus_parse::{Scrape, Value};
use radius_support::*;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;
use twostep_e2e::{block_on, free_tcp_port};

/// One scrape: the parsed samples and the raw text.
struct Metrics {
    scrape: Scrape,
    text: String,
}

impl Metrics {
    /// The value of `metric` with exactly `labels` (0 when the series does
    /// not exist yet: a counter never moved); a histogram's count.
    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric
                    && labels.len() == s.labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .collect();
        assert!(
            found.len() <= 1,
            "{metric} {labels:?} twice in\n{}",
            self.text
        );
        match found.first().map(|s| &s.value) {
            None => 0.0,
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
            Some(Value::Histogram(buckets)) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Some(other) => panic!("{metric}: unexpected {other:?}"),
        }
    }

    /// Every series (metric name and sorted labels) with its value.
    fn series(&self) -> BTreeMap<String, f64> {
        self.scrape
            .samples
            .iter()
            .map(|s| {
                let mut labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                labels.sort();
                let key = format!("{}{{{}}}", s.metric, labels.join(","));
                let pairs: Vec<(&str, &str)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (key, self.get(&s.metric, &pairs))
            })
            .collect()
    }
}

/// `GET http://127.0.0.1:PORT/metrics`, parsed; asserts the status and type.
fn scrape(port: u16) -> Metrics {
    let (status, ctype, text) = block_on(async {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .expect("scrape /metrics");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, ctype, r.text().await.expect("body"))
    });
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        ctype.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let scrape =
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parse the metrics text");
    Metrics { scrape, text }
}

fn status_of(url: &str) -> u16 {
    block_on(async { reqwest::get(url).await.expect("GET").status().as_u16() })
}

/// `Δ` of every series between two scrapes, those that moved only.
fn moved(before: &Metrics, after: &Metrics) -> BTreeMap<String, f64> {
    let b = before.series();
    after
        .series()
        .into_iter()
        .filter_map(|(k, v)| {
            let d = v - b.get(&k).copied().unwrap_or(0.0);
            (d != 0.0).then_some((k, d))
        })
        .collect()
}

/// Counters after one Access-Accept (right code) and one Access-Reject
/// (wrong code) over radclient, then a retransmission answered from the
/// reply cache, then packets dropped for each reason a NAS can cause.
#[test]
fn counters_move_by_exactly_what_the_logins_decided() {
    let api_port = free_tcp_port();
    let env = Env::with_api(&format!(
        "[api.metrics]\nlisten = \"127.0.0.1:{api_port}\"\n"
    ));
    let rad_port = free_tcp_port();
    let secret_text = std::str::from_utf8(twostep_radius::fuzzing::SECRET).unwrap();
    let s = env.secret_file("nas.secret", secret_text);
    let body = format!(
        "{}\n[radius.metrics]\nlisten = \"127.0.0.1:{rad_port}\"\n",
        client_toml("vpn-gw", "127.0.0.1/32", &s, "otp-only", "")
    );
    let d = env.radiusd("metrics", &body);
    let out = std::process::Command::new(twostep_e2e::bin("twostep-radiusd"))
        .arg("--config")
        .arg(env.dir.path().join("metrics.toml"))
        .arg("--check")
        .output()
        .expect("twostep-radiusd --check");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(", metrics 127.0.0.1:{rad_port}")),
        "{}",
        twostep_e2e::show_output(&out)
    );
    let secret = env.enrolled_user("alice");

    let api0 = scrape(api_port);
    let rad0 = scrape(rad_port);
    // Families with no series yet print nothing; these always have one.
    for line in [
        "# TYPE twostep_api_verify_duration_seconds histogram",
        "# UNIT twostep_api_verify_duration_seconds seconds",
        "# TYPE twostep_api_push_challenges_pending gauge",
        "twostep_api_push_challenges_pending 0",
        "# TYPE twostep_api_lockouts counter",
        "twostep_api_lockouts_total 0",
        "twostep_api_database_errors_total 0",
    ] {
        assert!(
            api0.text.lines().any(|l| l == line),
            "no {line:?} in\n{}",
            api0.text
        );
    }

    auth(d.port, secret_text, "alice", &code(&secret), &[]).expect("Access-Accept");
    auth(d.port, secret_text, "alice", &wrong_code(&secret), &[]).expect("Access-Reject");

    let api1 = scrape(api_port);
    let rad1 = scrape(rad_port);
    assert!(
        api1.text
            .lines()
            .any(|l| l == "# TYPE twostep_api_verifications counter"),
        "{}",
        api1.text
    );
    for line in [
        "# TYPE twostep_radiusd_requests counter",
        "# TYPE twostep_radiusd_call_duration_seconds histogram",
        "# UNIT twostep_radiusd_call_duration_seconds seconds",
    ] {
        assert!(
            rad1.text.lines().any(|l| l == line),
            "no {line:?} in\n{}",
            rad1.text
        );
    }
    let host = [("via", "host")];
    let v = |m: &Metrics, result| {
        m.get(
            "twostep_api_verifications_total",
            &[("result", result), host[0]],
        )
    };
    assert_eq!(v(&api1, "accept") - v(&api0, "accept"), 1.0);
    assert_eq!(v(&api1, "reject") - v(&api0, "reject"), 1.0);
    let req = |m: &Metrics, result| {
        m.get(
            "twostep_radiusd_requests_total",
            &[("client", "vpn-gw"), ("result", result)],
        )
    };
    assert_eq!(req(&rad1, "accept") - req(&rad0, "accept"), 1.0);
    assert_eq!(req(&rad1, "reject") - req(&rad0, "reject"), 1.0);
    // Nothing else moved: each series that changed, with its change.
    assert_eq!(
        moved(&api0, &api1),
        BTreeMap::from([
            (
                "twostep_api_verifications_total{result=accept,via=host}".to_owned(),
                1.0
            ),
            (
                "twostep_api_verifications_total{result=reject,via=host}".to_owned(),
                1.0
            ),
            ("twostep_api_verify_duration_seconds{}".to_owned(), 2.0),
            (
                "twostep_api_verify_duration_seconds_count{}".to_owned(),
                2.0
            ),
            (
                "twostep_api_verify_duration_seconds_sum{}".to_owned(),
                api1.get("twostep_api_verify_duration_seconds_sum", &[])
                    - api0.get("twostep_api_verify_duration_seconds_sum", &[])
            ),
            // One after the other: a batch each.
            ("twostep_api_write_batch_size{}".to_owned(), 2.0),
            ("twostep_api_write_batch_size_count{}".to_owned(), 2.0),
            ("twostep_api_write_batch_size_sum{}".to_owned(), 2.0),
        ]),
        "{}",
        api1.text
    );
    let verify_sum = rad1.get(
        "twostep_radiusd_call_duration_seconds_sum",
        &[("call", "verify")],
    );
    assert!(verify_sum > 0.0 && verify_sum < 10.0, "{}", rad1.text);
    assert_eq!(
        moved(&rad0, &rad1),
        BTreeMap::from([
            (
                "twostep_radiusd_call_duration_seconds{call=verify}".to_owned(),
                2.0
            ),
            (
                "twostep_radiusd_call_duration_seconds_count{call=verify}".to_owned(),
                2.0
            ),
            (
                "twostep_radiusd_call_duration_seconds_sum{call=verify}".to_owned(),
                verify_sum
            ),
            (
                "twostep_radiusd_requests_total{client=vpn-gw,result=accept}".to_owned(),
                1.0
            ),
            (
                "twostep_radiusd_requests_total{client=vpn-gw,result=reject}".to_owned(),
                1.0
            ),
        ]),
        "{}",
        rad1.text
    );

    // The same datagram twice, the second after the first's answer: one
    // request answered, one retransmission answered from the reply cache.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", d.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let packet = twostep_radius::fuzzing::signed(&[(1, b"nobody")], b"123456");
    let mut first = [0u8; 4096];
    let mut second = [0u8; 4096];
    sock.send(&packet).unwrap();
    let n = sock.recv(&mut first).expect("an answer");
    sock.send(&packet).unwrap();
    let m = sock.recv(&mut second).expect("the cached answer");
    assert_eq!(
        first[..n],
        second[..m],
        "the retransmission got another answer"
    );
    assert_eq!(first[0], 3, "Access-Reject for an unknown user");

    // Dropped: garbage (malformed), no Message-Authenticator, a wrong
    // shared secret (bad Message-Authenticator).
    sock.send(b"not radius at all").unwrap();
    let attrs = [
        "User-Name = \"alice\"".to_owned(),
        "User-Password = \"123456\"".to_owned(),
    ];
    let r = radclient_with(d.port, secret_text, "auth", &attrs, 1.0, 1);
    assert_eq!(r.code, None, "{}", r.output);
    let r = auth(d.port, "another-secret", "alice", "123456", &[]);
    assert_eq!(r.code, None, "{}", r.output);

    let api2 = scrape(api_port);
    let rad2 = scrape(rad_port);
    assert_eq!(
        v(&api2, "unknown_user") - v(&api1, "unknown_user"),
        1.0,
        "{}",
        api2.text
    );
    let delta =
        |metric: &str, labels: &[(&str, &str)]| rad2.get(metric, labels) - rad1.get(metric, labels);
    assert_eq!(
        delta(
            "twostep_radiusd_requests_total",
            &[("client", "vpn-gw"), ("result", "reject")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "twostep_radiusd_retransmissions_total",
            &[("kind", "replayed")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "twostep_radiusd_retransmissions_total",
            &[("kind", "in_progress")]
        ),
        0.0
    );
    for reason in [
        "malformed",
        "no_message_authenticator",
        "bad_message_authenticator",
    ] {
        assert_eq!(
            delta("twostep_radiusd_dropped_total", &[("reason", reason)]),
            1.0,
            "{reason}:\n{}",
            rad2.text
        );
    }
    for reason in ["unknown_client", "max_in_flight", "unsupported_code"] {
        assert_eq!(
            rad2.get("twostep_radiusd_dropped_total", &[("reason", reason)]),
            0.0
        );
    }
}

/// Page sign-ins (the password step) are counted by result, as audited.
#[test]
fn page_sign_ins_are_counted_by_result() {
    let port = free_tcp_port();
    let reg = twostep_e2e::Registry::start_with(
        None,
        &format!("[api.metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let pw = portal_support::PASSWORD;
    portal_support::cli(
        &reg,
        &["user", "add", "pat", "--password-prompt"],
        Some(&format!("{pw}\n")),
    );
    let before = scrape(port);
    let web = portal_support::Web::new(&reg.url, None);
    block_on(async {
        web.sign_in("pat", "not the password").await;
        web.sign_in("nobody", "not the password").await;
        let r = web.sign_in("pat", pw).await;
        assert_eq!(r.status, 303, "{}", r.body);
    });
    let after = scrape(port);
    assert_eq!(
        moved(&before, &after),
        BTreeMap::from([
            (
                "twostep_api_page_sign_ins_total{result=password_ok}".to_owned(),
                1.0
            ),
            (
                "twostep_api_page_sign_ins_total{result=unknown_user}".to_owned(),
                1.0
            ),
            (
                "twostep_api_page_sign_ins_total{result=wrong_password}".to_owned(),
                1.0
            ),
        ]),
        "{}",
        after.text
    );
}

/// The metrics are only on their own listener: the API's address has no
/// `/metrics` (nor does anything else on the metrics address), and a
/// registry without `[api.metrics]` opens no metrics port.
#[test]
fn metrics_are_served_only_on_their_own_address() {
    let port = free_tcp_port();
    let reg = twostep_e2e::Registry::start_with(
        None,
        &format!("[api.metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    assert_eq!(status_of(&format!("{}/metrics", reg.url)), 404);
    assert_eq!(
        status_of(&format!("http://127.0.0.1:{port}/v1/health")),
        404
    );
    assert_eq!(status_of(&format!("http://127.0.0.1:{port}/metrics")), 200);
    assert!(
        reg.log().contains("metrics served"),
        "no startup line:\n{}",
        reg.log()
    );
    let out = std::process::Command::new(twostep_e2e::bin("twostep-api"))
        .arg("--config")
        .arg(&reg.config_path)
        .arg("--check")
        .output()
        .expect("twostep-api --check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!(", metrics 127.0.0.1:{port})")),
        "{}",
        twostep_e2e::show_output(&out)
    );

    let plain = twostep_e2e::Registry::start();
    assert!(!plain.log().contains("metrics served"), "{}", plain.log());
    assert_eq!(status_of(&format!("{}/metrics", plain.url)), 404);
}

/// Two replicas on one PostgreSQL database report the same pending push
/// challenges (the gauge is read from the database), and each counts its
/// own verifications.
#[test]
fn replicas_on_postgres_report_the_database_s_pending_pushes() {
    let db = twostep_e2e::fresh_postgres_database();
    let (p1, p2) = (free_tcp_port(), free_tcp_port());
    let metrics = |p: u16| format!("[api.metrics]\nlisten = \"127.0.0.1:{p}\"\n");
    let a = twostep_e2e::Registry::start_with(Some(&db), &metrics(p1));
    let b = a.start_replica(&metrics(p2));
    let gauge = |m: &Metrics| m.get("twostep_api_push_challenges_pending", &[]);
    assert_eq!(gauge(&scrape(p1)), 0.0);
    assert_eq!(gauge(&scrape(p2)), 0.0);
    a.add_user("carol");
    let secret = a.enrol_totp("carol").secret_base32;
    let key = a.add_host("web1", twostep_common::api::HostKind::Ssh);
    let verify = |reg: &twostep_e2e::Registry, code: &str| {
        let req = twostep_common::api::VerifyRequest {
            username: "carol".into(),
            code: code.into(),
            context: twostep_common::api::AuthContext::default(),
        };
        block_on(reg.host_client(&key).verify(&req))
            .expect("verify")
            .result
    };
    assert_eq!(
        verify(&b, &code(&secret)),
        twostep_common::api::VerifyResult::Accept
    );
    // A push device for carol (the reference authenticator), and a push
    // started on A: both replicas see it pending until it is cancelled.
    let out = twostep_e2e::twostep(&[
        "--config",
        a.config_path.to_str().unwrap(),
        "enrol",
        "carol",
        "--push",
        "--no-qr",
    ]);
    assert!(out.status.success(), "{}", twostep_e2e::show_output(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let uri = text
        .lines()
        .find_map(|l| l.strip_prefix("uri:"))
        .unwrap_or_else(|| panic!("no uri: line in {text}"))
        .trim()
        .to_owned();
    let accounts = a.dir.path().join("authenticator.json");
    let out = twostep_e2e::authenticator(&accounts, &["add", &uri, "--name", "phone"]);
    assert!(out.status.success(), "{}", twostep_e2e::show_output(&out));
    let started = block_on(
        a.host_client(&key)
            .start_push(&twostep_common::push::StartPush {
                username: "carol".into(),
                context: Default::default(),
            }),
    )
    .expect("start a push");
    let challenge = started.challenge.expect("sent");
    assert_eq!(gauge(&scrape(p1)), 1.0);
    assert_eq!(gauge(&scrape(p2)), 1.0);
    block_on(b.host_client(&key).cancel_push(&challenge.challenge_id)).expect("cancel");
    assert_eq!(gauge(&scrape(p1)), 0.0);
    assert_eq!(gauge(&scrape(p2)), 0.0);

    let accepted = |m: &Metrics| {
        m.get(
            "twostep_api_verifications_total",
            &[("result", "accept"), ("via", "host")],
        )
    };
    assert_eq!(accepted(&scrape(p1)), 0.0);
    assert_eq!(accepted(&scrape(p2)), 1.0);
}

/// Challenge mode: the password step's Access-Challenge is counted as
/// `challenge`, the answer with the code as `accept`; the registrations
/// lookup before the prompt and the verification are timed.
#[test]
fn a_challenge_and_its_answer_are_counted_apart() {
    let rad_port = free_tcp_port();
    let env = Env::new();
    let s = env.secret_file("nas.secret", "nas-shared-secret-2");
    let body = format!(
        "{}\n[radius.metrics]\nlisten = \"127.0.0.1:{rad_port}\"\n",
        client_toml("vpn-ch", "127.0.0.1/32", &s, "challenge", "")
    );
    let d = env.radiusd("challenge", &body);
    let secret = env.enrolled_user("erin");
    let before = scrape(rad_port);
    let r = auth(d.port, "nas-shared-secret-2", "erin", "any password", &[]);
    r.expect("Access-Challenge");
    let state = r.state();
    auth(
        d.port,
        "nas-shared-secret-2",
        "erin",
        &code(&secret),
        &[&format!("State = {state}")],
    )
    .expect("Access-Accept");
    let after = scrape(rad_port);
    let mut moved = moved(&before, &after);
    moved.retain(|k, _| !k.contains("_sum{"));
    assert_eq!(
        moved,
        BTreeMap::from([
            (
                "twostep_radiusd_call_duration_seconds{call=registrations}".to_owned(),
                1.0
            ),
            (
                "twostep_radiusd_call_duration_seconds_count{call=registrations}".to_owned(),
                1.0
            ),
            (
                "twostep_radiusd_call_duration_seconds{call=verify}".to_owned(),
                1.0
            ),
            (
                "twostep_radiusd_call_duration_seconds_count{call=verify}".to_owned(),
                1.0
            ),
            (
                "twostep_radiusd_requests_total{client=vpn-ch,result=accept}".to_owned(),
                1.0
            ),
            (
                "twostep_radiusd_requests_total{client=vpn-ch,result=challenge}".to_owned(),
                1.0
            ),
        ]),
        "{}",
        after.text
    );
}
