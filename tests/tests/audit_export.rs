//! `twostep audit --json` and `twostep audit --follow` against a real
//! registry, with logins through a real twostep-radiusd and radclient.

mod radius_support;

use radius_support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use twostep_e2e::{bin, block_on, show_output, twostep};

const SECRET: &str = "nas-shared-secret-1";

fn setup() -> (Env, Radiusd, String) {
    let env = Env::new();
    let s = env.secret_file("nas.secret", SECRET);
    let d = env.radiusd(
        "audit",
        &client_toml("vpn", "127.0.0.1/32", &s, "otp-only", ""),
    );
    let secret = env.enrolled_user("alice");
    (env, d, secret)
}

fn login(d: &Radiusd, code: &str, expect: &str) {
    auth(
        d.port,
        SECRET,
        "alice",
        code,
        &[
            "NAS-Identifier = \"vpn-gw-1\"",
            "Calling-Station-Id = \"198.51.100.7\"",
        ],
    )
    .expect(expect);
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time
/// `YYYY-MM-DDTHH:MM:SSZ` (days from the civil date, H. Hinnant's method).
fn rfc3339_seconds(t: &str) -> i64 {
    assert_eq!(t.len(), 20, "{t:?}");
    assert!(t.ends_with('Z') && &t[10..11] == "T", "{t:?}");
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3_600 + mm * 60 + ss
}

#[test]
fn rfc3339_helper() {
    assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), 0);
    assert_eq!(rfc3339_seconds("2023-11-14T22:13:20Z"), 1_700_000_000);
    assert_eq!(rfc3339_seconds("2024-02-29T12:00:00Z"), 1_709_208_000);
}

/// Every line is one JSON object with the table's fields; ids and times
/// are the registry's; the order is the table's (oldest first).
#[test]
fn audit_json_lines_carry_the_table_fields() {
    let (env, d, secret) = setup();
    login(&d, &code(&secret), "Access-Accept");
    let cfg = env.reg.config_path.display().to_string();
    let out = twostep(&["--config", &cfg, "audit", "--json", "--limit", "100"]);
    assert!(out.status.success(), "{}", show_output(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();

    let api = block_on(env.reg.admin.audit(100)).unwrap();
    assert_eq!(lines.len(), api.len(), "{text}");
    for (line, e) in lines.iter().zip(api.iter().rev()) {
        let obj = line.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "action",
                "actor",
                "at",
                "detail",
                "host",
                "id",
                "remote_addr",
                "result",
                "username"
            ]
        );
        assert_eq!(line["id"], e.id);
        assert_eq!(rfc3339_seconds(line["at"].as_str().unwrap()), e.at);
        assert_eq!(line["actor"], e.actor.as_str());
        assert_eq!(line["action"], e.action.as_str());
        assert_eq!(line["username"].as_str(), e.username.as_deref());
        assert_eq!(line["host"].as_str(), e.host.as_deref());
        assert_eq!(line["remote_addr"].as_str(), e.remote_addr.as_deref());
        assert_eq!(line["result"].as_str(), e.result.as_deref());
        assert_eq!(line["detail"].as_str(), e.detail.as_deref());
    }
    let verify = lines
        .iter()
        .find(|l| l["action"] == "verify")
        .unwrap_or_else(|| panic!("no verify in\n{text}"));
    assert_eq!(verify["actor"], "host:radius-1");
    assert_eq!(verify["username"], "alice");
    assert_eq!(verify["host"], "vpn-gw-1");
    assert_eq!(verify["remote_addr"], "198.51.100.7");
    assert_eq!(verify["result"], "accept");
    let at = rfc3339_seconds(verify["at"].as_str().unwrap());
    assert!((at - twostep_e2e::now() as i64).abs() < 120, "{verify}");

    // The table shows the same events, in the same order, at the same times.
    let out = twostep(&["--config", &cfg, "audit", "--limit", "100"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), lines.len(), "{table}");
    for (row, line) in table.lines().zip(&lines) {
        assert!(row.starts_with(line["at"].as_str().unwrap()), "{row}");
        assert!(row.contains(line["action"].as_str().unwrap()), "{row}");
    }
}

/// A running `twostep audit --follow ...` and its stdout, line by line.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(cfg: &str, extra: &[&str]) -> Follower {
        let mut child = Command::new(bin("twostep"))
            .args(["--config", cfg, "audit", "--follow"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run twostep audit --follow");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// The next `n` lines, each within `within`.
    fn take(&self, n: usize, within: Duration) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.lines.recv_timeout(within).unwrap_or_else(|e| {
                    panic!("line {i} of {n} not printed within {within:?}: {e}")
                })
            })
            .collect()
    }

    /// Lines printed during `d`.
    fn during(&self, d: Duration) -> Vec<String> {
        let end = Instant::now() + d;
        let mut got = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--follow` prints the newest events, then each new one once, in
/// order, within a few seconds; it keeps running until killed.
#[test]
fn audit_follow_prints_each_new_event_once_in_order() {
    let (env, d, secret) = setup();
    let cfg = env.reg.config_path.display().to_string();
    let before = block_on(env.reg.admin.audit(1000)).unwrap();
    assert!(before.len() >= 3, "{before:?}");

    let json = Follower::start(&cfg, &["--json", "--limit", "2"]);
    let table = Follower::start(&cfg, &["--limit", "1"]);
    let first: Vec<Value> = json
        .take(2, Duration::from_secs(10))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The newest two, oldest first.
    assert_eq!(first[0]["id"], before[1].id);
    assert_eq!(first[1]["id"], before[0].id);
    let first_row = table.take(1, Duration::from_secs(10));
    assert!(first_row[0].contains(&before[0].action), "{first_row:?}");

    login(&d, &code(&secret), "Access-Accept");
    login(&d, &wrong_code(&secret), "Access-Reject");
    let new: Vec<Value> = json
        .take(2, Duration::from_secs(5))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(new[0]["action"], "verify");
    assert_eq!(new[0]["result"], "accept");
    assert_eq!(new[1]["action"], "verify");
    assert_eq!(new[1]["result"], "reject");
    assert_eq!(new[0]["host"], "vpn-gw-1");
    let ids: Vec<i64> = first
        .iter()
        .chain(&new)
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let rows = table.take(2, Duration::from_secs(5));
    assert!(
        rows[0].contains("verify") && rows[0].contains("result=\"accept\""),
        "{rows:?}"
    );
    assert!(
        rows[1].contains("verify") && rows[1].contains("result=\"reject\""),
        "{rows:?}"
    );

    // Several polls later nothing is printed again, and both still run.
    assert_eq!(
        json.during(Duration::from_millis(2500)),
        Vec::<String>::new()
    );
    assert_eq!(
        table.during(Duration::from_millis(100)),
        Vec::<String>::new()
    );
    let mut json = json;
    assert!(
        json.child.try_wait().unwrap().is_none(),
        "--follow ended by itself"
    );
    // An admin change is followed too.
    let out = twostep(&["--config", &cfg, "user", "add", "bob"]);
    assert!(out.status.success(), "{}", show_output(&out));
    let line: Value = serde_json::from_str(&json.take(1, Duration::from_secs(5))[0]).unwrap();
    assert_eq!(line["action"], "user.create");
    assert_eq!(line["username"], "bob");
    assert_eq!(line["actor"], "admin");
}
