//! twostep's benchmark load generator: the pieces `twostep-loadgen` is
//! made of, kept here so they can be unit tested.
//!
//! - [`Schedule`] hands out fresh (user, TOTP time step) pairs, so that no
//!   request is ever a replay: each user's steps only go up, inside the
//!   ±1-step window every RFC 6238 verifier accepts.
//! - [`access_request`] and [`check_reply`] build and check RADIUS PAP
//!   Access-Requests (RFC 2865) with a Message-Authenticator (RFC 3579).
//! - [`RunResult`] and [`markdown_table`] turn timed runs into the tables of
//!   `bench/README.md`.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub mod proxy;

/// Errors of the load generator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A file or argument that does not parse.
    #[error("{0}")]
    Invalid(String),
    /// An HTTP request to the registry failed.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
}

/// TOTP time step in seconds (RFC 6238 default, twostep's and rlm_totp's).
pub const STEP_SECONDS: u64 = 30;

/// An enrolled user: login name and raw TOTP secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Secret octets (decoded from base32).
    pub secret: Vec<u8>,
}

/// Reads `name,BASE32SECRET` lines.
///
/// # Errors
/// When the file cannot be read or a line does not parse.
pub fn read_users(path: &Path) -> Result<Vec<User>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, b32) = l
                .split_once(',')
                .ok_or_else(|| Error::Invalid(format!("{}: bad line {l:?}", path.display())))?;
            let secret = data_encoding::BASE32_NOPAD
                .decode(b32.trim().trim_end_matches('=').as_bytes())
                .map_err(|e| {
                    Error::Invalid(format!("{}: secret of {name}: {e}", path.display()))
                })?;
            Ok(User {
                name: name.to_owned(),
                secret,
            })
        })
        .collect()
}

/// The 6-digit SHA-1 TOTP code of `secret` for time step `step` (totp-rs,
/// independent of twostep's own code path).
pub fn code_for_step(secret: &[u8], step: u64) -> String {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .build_noncompliant()
        .generate(step * STEP_SECONDS)
        .to_string()
}

/// Seconds into a step after which no code of that step is handed out: it
/// could reach the server in the next step, where a verifier that takes
/// only the current step (FreeRADIUS `rlm_totp`) refuses it.
pub const LATE_IN_STEP: u64 = 29;

/// Latest second of a step at which a run starts; later, the load
/// generator waits for the next step, so that runs rarely span two steps.
pub const LAST_RUN_START: u64 = 25;

/// Fresh (user, step) pairs for one verifier with a replay rule.
///
/// Each user gets the code of the current step `T` once, never while one
/// of its requests is still in flight, and none in the last second of a
/// step: a verifier that refuses steps not newer than the last accepted
/// one (twostep) never sees a replay, and one that takes only the current
/// step (FreeRADIUS `rlm_totp` 3.2) never sees an expired code. With `N`
/// users that is `N` requests per 30 s step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Schedule {
    /// Last step handed out, per user.
    pub last: Vec<Option<u64>>,
    #[serde(skip)]
    busy: Vec<bool>,
    #[serde(skip)]
    cursor: usize,
}

impl Schedule {
    /// A schedule for `n` users none of whose codes were used.
    pub fn new(n: usize) -> Self {
        Self {
            last: vec![None; n],
            busy: vec![false; n],
            cursor: 0,
        }
    }

    /// Resizes after loading from a file (new users have no step used).
    pub fn fit(&mut self, n: usize) {
        self.last.resize(n, None);
        self.busy = vec![false; n];
        self.cursor = 0;
    }

    fn allowed(&self, i: usize, unix_time: u64) -> Option<u64> {
        let t = unix_time / STEP_SECONDS;
        (unix_time % STEP_SECONDS < LATE_IN_STEP && self.last[i].is_none_or(|l| l < t)).then_some(t)
    }

    /// The next fresh pair (user index, step) at `unix_time`, marking the
    /// user busy; `None` when every user is busy or used up for now.
    pub fn next(&mut self, unix_time: u64) -> Option<(usize, u64)> {
        let n = self.last.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.busy[i] {
                continue;
            }
            if let Some(s) = self.allowed(i, unix_time) {
                self.busy[i] = true;
                self.last[i] = Some(s);
                self.cursor = (i + 1) % n;
                return Some((i, s));
            }
        }
        None
    }

    /// The request for user `i` finished (whatever its answer).
    pub fn done(&mut self, i: usize) {
        self.busy[i] = false;
    }

    /// How many fresh pairs there are at `unix_time`.
    pub fn available(&self, unix_time: u64) -> usize {
        (0..self.last.len())
            .filter(|&i| self.allowed(i, unix_time).is_some())
            .count()
    }
}

/// RADIUS codes (RFC 2865 §3).
pub mod code {
    /// Access-Request.
    pub const ACCESS_REQUEST: u8 = 1;
    /// Access-Accept.
    pub const ACCESS_ACCEPT: u8 = 2;
    /// Access-Reject.
    pub const ACCESS_REJECT: u8 = 3;
    /// Access-Challenge.
    pub const ACCESS_CHALLENGE: u8 = 11;
}

fn hmac_md5(secret: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(data);
    let mut out = [0u8; 16];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// A PAP Access-Request: User-Name, User-Password (hidden with the shared
/// secret, RFC 2865 §5.2), NAS-IP-Address 127.0.0.1 and a
/// Message-Authenticator (RFC 3579 §3.2), with Request Authenticator
/// `authenticator` and Identifier `id`.
pub fn access_request(
    id: u8,
    authenticator: &[u8; 16],
    user: &str,
    password: &str,
    secret: &[u8],
) -> Vec<u8> {
    let mut p = vec![code::ACCESS_REQUEST, id, 0, 0];
    p.extend_from_slice(authenticator);
    // Message-Authenticator first, zeroed while the HMAC is computed.
    p.extend_from_slice(&[80, 18]);
    p.extend_from_slice(&[0u8; 16]);
    p.extend_from_slice(&[1, (user.len() + 2) as u8]);
    p.extend_from_slice(user.as_bytes());
    let mut padded = password.as_bytes().to_vec();
    padded.resize(password.len().div_ceil(16).max(1) * 16, 0);
    p.extend_from_slice(&[2, (padded.len() + 2) as u8]);
    let mut prev: Vec<u8> = authenticator.to_vec();
    for chunk in padded.chunks(16) {
        let mut h = Md5::new();
        h.update(secret);
        h.update(&prev);
        let b = h.finalize();
        let c: Vec<u8> = chunk.iter().zip(b.iter()).map(|(x, y)| x ^ y).collect();
        p.extend_from_slice(&c);
        prev = c;
    }
    p.extend_from_slice(&[4, 6, 127, 0, 0, 1]);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    let mac = hmac_md5(secret, &p);
    p[22..38].copy_from_slice(&mac);
    p
}

/// The code of `reply` when it answers the request with Identifier `id`
/// and Request Authenticator `authenticator` and its Response
/// Authenticator is right; `None` otherwise (a stray or forged datagram).
pub fn check_reply(reply: &[u8], id: u8, authenticator: &[u8; 16], secret: &[u8]) -> Option<u8> {
    if reply.len() < 20 || reply[1] != id {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([reply[2], reply[3]]));
    if len < 20 || len > reply.len() {
        return None;
    }
    let mut h = Md5::new();
    h.update(&reply[..4]);
    h.update(authenticator);
    h.update(&reply[20..len]);
    h.update(secret);
    (h.finalize().as_slice() == &reply[4..20]).then_some(reply[0])
}

/// CPU time (user + system) of process `pid` in seconds, from
/// `/proc/PID/stat` (clock ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What a CPU column measures (`--pids TARGET=LABEL:SPEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// `PID`: that process.
    Process(u32),
    /// `PID+`: that process and its children, summed (a PostgreSQL
    /// postmaster and its backends). A child that exits during the run
    /// takes its time with it; one started during it counts in full.
    WithChildren(u32),
    /// `machine`: every core's busy time, all processes and the kernel
    /// (`/proc/stat`: user, nice, system, irq, softirq, steal), so a run
    /// that kept all cores busy shows as many cores as the machine has.
    Machine,
}

impl Watched {
    /// Parses `PID`, `PID+` or `machine`; `None` for anything else.
    pub fn parse(spec: &str) -> Option<Self> {
        if spec == "machine" {
            return Some(Self::Machine);
        }
        match spec.strip_suffix('+') {
            Some(pid) => pid.parse().ok().map(Self::WithChildren),
            None => spec.parse().ok().map(Self::Process),
        }
    }

    /// CPU seconds used so far (cores × seconds for [`Watched::Machine`]);
    /// `None` when the process is gone or `/proc` cannot be read.
    pub fn cpu_seconds(self) -> Option<f64> {
        match self {
            Self::Process(pid) => cpu_seconds(pid),
            Self::WithChildren(pid) => {
                let own = cpu_seconds(pid)?;
                let children: f64 = std::fs::read_dir("/proc")
                    .ok()?
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                    .filter(|&p| parent_pid(p) == Some(pid))
                    .filter_map(cpu_seconds)
                    .sum();
                Some(own + children)
            }
            Self::Machine => {
                let stat = std::fs::read_to_string("/proc/stat").ok()?;
                machine_busy_seconds(stat.lines().next()?)
            }
        }
    }
}

/// The busy seconds of all cores from the `cpu` line of `/proc/stat`
/// (clock ticks of 1/100 s): user, nice, system, irq, softirq and steal;
/// idle and iowait are not busy, guest time is already in user.
pub fn machine_busy_seconds(cpu_line: &str) -> Option<f64> {
    let mut f = cpu_line.split_whitespace();
    if f.next()? != "cpu" {
        return None;
    }
    let v: Vec<f64> = f.map(|x| x.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum::<f64>();
    Some(busy / 100.0)
}

fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One timed run against one target at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Target name (`twostep`, `freeradius`, `registry`...).
    pub target: String,
    /// Requests in flight.
    pub concurrency: usize,
    /// Repetition number (0-based); targets alternate within one.
    pub repeat: usize,
    /// Requests sent.
    pub sent: usize,
    /// Access-Accept (or `accept`).
    pub accepts: usize,
    /// Access-Reject (or any other verdict).
    pub rejects: usize,
    /// No answer within the timeout.
    pub timeouts: usize,
    /// Transport errors and unexpected answers.
    pub errors: usize,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// CPU cores used during the run, per named process.
    pub cpu: Vec<(String, f64)>,
}

impl RunResult {
    /// Accepts per second.
    pub fn accepts_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.accepts as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The `q` quantile (0..=1) of sorted `v` (nearest rank); 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Median of `v` (any order); 0 when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn fmt_num(x: f64) -> String {
    if x >= 100.0 {
        let n = x.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A Markdown table of `runs`: per concurrency and target, the median of
/// accepts/s with min–max over the repetitions, median p50 and p99, the
/// answer counts summed over all runs, the median length of a run in
/// seconds, median CPU per process and, in the
/// first target's rows, the median over repetitions of its accepts/s
/// divided by each other target's in the same repetition.
pub fn markdown_table(runs: &[RunResult]) -> String {
    let mut targets: Vec<&str> = Vec::new();
    let mut concs: Vec<usize> = Vec::new();
    for r in runs {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
        if !concs.contains(&r.concurrency) {
            concs.push(r.concurrency);
        }
    }
    concs.sort_unstable();
    let mut out = String::from(
        "| in flight | target | accepts/s median (min–max) | p50 ms | p99 ms | accept / reject / timeout / error (all runs) | s per run | CPU cores, median | ratio |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for &c in &concs {
        for (ti, &t) in targets.iter().enumerate() {
            let rs: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.target == t && r.concurrency == c)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let rates: Vec<f64> = rs.iter().map(|r| r.accepts_per_s()).collect();
            let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let max = rates.iter().copied().fold(0.0, f64::max);
            let p50 = median(&rs.iter().map(|r| r.p50_ms).collect::<Vec<_>>());
            let p99 = median(&rs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
            let secs = median(&rs.iter().map(|r| r.seconds).collect::<Vec<_>>());
            let sum = |f: fn(&RunResult) -> usize| rs.iter().map(|r| f(r)).sum::<usize>();
            let mut cpu_names: Vec<&str> = Vec::new();
            for r in &rs {
                for (n, _) in &r.cpu {
                    if !cpu_names.contains(&n.as_str()) {
                        cpu_names.push(n);
                    }
                }
            }
            let cpu = cpu_names
                .iter()
                .map(|n| {
                    let v: Vec<f64> = rs
                        .iter()
                        .filter_map(|r| r.cpu.iter().find(|(m, _)| m == n).map(|(_, x)| *x))
                        .collect();
                    format!("{n} {:.2}", median(&v))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let ratio = if ti == 0 {
                targets[1..]
                    .iter()
                    .filter_map(|&other| {
                        let per_rep: Vec<f64> = rs
                            .iter()
                            .filter_map(|r| {
                                runs.iter()
                                    .find(|o| {
                                        o.target == other
                                            && o.concurrency == c
                                            && o.repeat == r.repeat
                                    })
                                    .filter(|o| o.accepts_per_s() > 0.0)
                                    .map(|o| r.accepts_per_s() / o.accepts_per_s())
                            })
                            .collect();
                        (!per_rep.is_empty()).then(|| format!("{:.3}× {other}", median(&per_rep)))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {c} | {t} | {} ({}–{}) | {:.2} | {:.2} | {} / {} / {} / {} | {secs:.2} | {cpu} | {ratio} |\n",
                fmt_num(median(&rates)),
                fmt_num(min),
                fmt_num(max),
                p50,
                p99,
                sum(|r| r.accepts),
                sum(|r| r.rejects),
                sum(|r| r.timeouts),
                sum(|r| r.errors),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_specs() {
        assert_eq!(Watched::parse("4242"), Some(Watched::Process(4242)));
        assert_eq!(Watched::parse("17+"), Some(Watched::WithChildren(17)));
        assert_eq!(Watched::parse("machine"), Some(Watched::Machine));
        for bad in ["", "+", "x", "12x", "-1", "1++", "Machine"] {
            assert_eq!(Watched::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn machine_busy_is_user_nice_system_irq_softirq_steal() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let line = "cpu  1000 20 300 90000 400 5 60 7 1000 0";
        assert_eq!(machine_busy_seconds(line), Some(13.92));
        assert_eq!(machine_busy_seconds("cpu0 1 2 3 4"), None);
        assert_eq!(machine_busy_seconds("cpu  1 x 3"), None);
    }

    #[test]
    fn a_process_with_children_counts_at_least_itself() {
        let me = std::process::id();
        let own = Watched::Process(me).cpu_seconds().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let with = Watched::WithChildren(me).cpu_seconds().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(with >= own, "{with} < {own}");
        assert!(Watched::Machine.cpu_seconds().unwrap() > 0.0);
        assert_eq!(Watched::Process(u32::MAX).cpu_seconds(), None);
    }

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 Appendix B, T = 59 s, SHA-1, last 6 of 94287082.
        assert_eq!(code_for_step(b"12345678901234567890", 1), "287082");
    }

    #[test]
    fn schedule_gives_each_user_one_code_per_step() {
        let t = 1_000_020; // 0 s into step 33334
        let step = t / STEP_SECONDS;
        let mut s = Schedule::new(2);
        assert_eq!(s.available(t), 2);
        let mut got = Vec::new();
        while let Some((i, st)) = s.next(t) {
            s.done(i);
            got.push((i, st));
        }
        assert_eq!(got, vec![(0, step), (1, step)]);
        assert_eq!(s.available(t + 10), 0);
        // Next step: one more each.
        assert_eq!(s.available(t + 30), 2);
        assert_eq!(s.next(t + 30), Some((0, step + 1)));
        // None in the last second of a step.
        let mut late = Schedule::new(1);
        assert_eq!(late.next(t + 29), None);
        assert_eq!(late.available(t + 29), 0);
    }

    #[test]
    fn busy_user_is_skipped() {
        let mut s = Schedule::new(1);
        assert_eq!(s.next(60), Some((0, 2)));
        // Still in flight in the next step: not handed out again.
        assert_eq!(s.next(90), None);
        s.done(0);
        assert_eq!(s.next(90), Some((0, 3)));
    }

    #[test]
    fn access_request_hides_password_and_signs() {
        let ra = [7u8; 16];
        let p = access_request(9, &ra, "alice", "123456", b"s3cret");
        assert_eq!(p[0], code::ACCESS_REQUEST);
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        // Message-Authenticator: HMAC-MD5 over the packet with it zeroed.
        let mut z = p.clone();
        z[22..38].fill(0);
        assert_eq!(p[20..22], [80, 18]);
        assert_eq!(hmac_md5(b"s3cret", &z), p[22..38]);
        // User-Password: first block = "123456" xor MD5(secret + RA).
        let pw = 38 + 7;
        assert_eq!(p[pw], 2);
        let mut h = Md5::new();
        h.update(b"s3cret");
        h.update(ra);
        let b = h.finalize();
        assert_eq!(p[pw + 2] ^ b[0], b'1');
        assert_eq!(p[pw + 2 + 6] ^ b[6], 0);
    }

    #[test]
    fn reply_authenticator_checked() {
        let ra = [3u8; 16];
        let mut r = vec![code::ACCESS_ACCEPT, 5, 0, 20];
        let mut h = Md5::new();
        h.update(&r[..4]);
        h.update(ra);
        h.update(b"k");
        let auth = h.finalize();
        r.extend_from_slice(&auth);
        assert_eq!(check_reply(&r, 5, &ra, b"k"), Some(code::ACCESS_ACCEPT));
        assert_eq!(check_reply(&r, 6, &ra, b"k"), None);
        assert_eq!(check_reply(&r, 5, &ra, b"x"), None);
    }

    #[test]
    fn quantiles_and_table() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        let run = |t: &str, rep, acc| RunResult {
            target: t.into(),
            concurrency: 8,
            repeat: rep,
            sent: acc,
            accepts: acc,
            rejects: 0,
            timeouts: 0,
            errors: 0,
            seconds: 1.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            cpu: vec![],
        };
        let t = markdown_table(&[
            run("twostep", 0, 1000),
            run("peer", 0, 4000),
            run("twostep", 1, 1000),
            run("peer", 1, 2000),
        ]);
        assert!(t.contains("| 8 | twostep | 1,000 (1,000–1,000)"), "{t}");
        assert!(t.contains("0.375× peer"), "{t}");
    }
}
