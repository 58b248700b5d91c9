//! `twostep-loadgen`: enrols users through the admin API, drives RADIUS
//! PAP + TOTP servers and `POST /v1/host/verify` at fixed concurrencies with
//! fresh codes, and writes the results as JSON lines and Markdown tables.
//! `bench/run.sh` is its caller.

use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use twostep_bench::{
    access_request, check_reply, code, code_for_step, markdown_table, quantile, read_users, Error,
    RunResult, Schedule, User, Watched, LAST_RUN_START, STEP_SECONDS,
};

#[derive(Parser)]
#[command(about = "twostep's benchmark load generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options of the timed runs, shared by `radius` and `http`.
#[derive(clap::Args)]
struct RunOpts {
    /// `name,BASE32SECRET` lines (from `enrol`).
    #[arg(long)]
    users: PathBuf,
    /// Requests in flight, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    concurrency: Vec<usize>,
    /// Repetitions of the whole matrix (targets alternate within each).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Requests per run (fewer if the fresh (user, step) pairs run out).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Longest run, seconds: no request starts after it.
    #[arg(long, default_value_t = 10.0)]
    max_seconds: f64,
    /// Seconds without an answer before a request counts as a timeout.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// The steps used per user and target, kept across invocations.
    #[arg(long)]
    state: PathBuf,
    /// Appends one JSON line per run.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Writes the Markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// `TARGET=LABEL:SPEC,LABEL:SPEC`: what CPU use is measured during
    /// TARGET's runs; SPEC is a PID, `PID+` (the process and its
    /// children) or `machine` (all cores).
    #[arg(long)]
    pids: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates users with a TOTP method each through the admin API; writes
    /// `name,BASE32SECRET` lines.
    Enrol {
        /// Registry base URL.
        #[arg(long)]
        url: String,
        /// File holding the admin token.
        #[arg(long)]
        admin_token_file: PathBuf,
        /// Users to create.
        #[arg(long)]
        count: usize,
        /// Login names are PREFIX00000, PREFIX00001...
        #[arg(long, default_value = "u")]
        prefix: String,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Appends `{"enrolled":N,"seconds":S}` here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// RADIUS Access-Requests (PAP, password = current code) to each
    /// `--target NAME=HOST:PORT`, interleaved.
    Radius {
        /// `NAME=HOST:PORT`; the first is the one ratios are given for.
        #[arg(long, required = true)]
        target: Vec<String>,
        /// File holding the shared secret (one line).
        #[arg(long)]
        secret_file: PathBuf,
        #[command(flatten)]
        run: RunOpts,
    },
    /// `POST /v1/host/verify` with the current code, keep-alive, to each
    /// `--target NAME=URL[,URL...]`, interleaved; the requests of a target
    /// with several registries (on one database) are spread over them.
    Http {
        /// `NAME=URL[,URL...]` (registry base URLs).
        #[arg(long, required = true)]
        target: Vec<String>,
        /// File holding a host API key.
        #[arg(long)]
        host_key_file: PathBuf,
        /// Name of the step record in the state file, shared by all targets
        /// (they verify against one database).
        #[arg(long, default_value = "registry")]
        state_name: String,
        #[command(flatten)]
        run: RunOpts,
    },
    /// A delaying proxy in front of the registry (see `twostep_bench::proxy`).
    SlowProxy {
        /// HOST:PORT to listen on.
        #[arg(long)]
        listen: String,
        /// The registry's HOST:PORT.
        #[arg(long)]
        upstream: String,
        /// Requests holding these bytes (path or body) are held.
        #[arg(long)]
        marker: String,
        /// How long they are held, seconds.
        #[arg(long)]
        delay: f64,
    },
    /// Sends `--count` Access-Requests at once (users PREFIX00000...) and
    /// waits for their answers; prints one JSON line: sent, answered, the
    /// seconds until the last answer.
    Hold {
        /// HOST:PORT of the RADIUS server.
        #[arg(long)]
        target: String,
        /// File holding the shared secret.
        #[arg(long)]
        secret_file: PathBuf,
        /// Requests.
        #[arg(long)]
        count: usize,
        /// User name prefix.
        #[arg(long)]
        prefix: String,
        /// Longest wait for the answers, seconds.
        #[arg(long)]
        wait: f64,
    },
    /// A Markdown table from hyperfine `--export-json` files given as
    /// `NAME=FILE`; the first is compared with the others, and with `--floor`.
    PamTable {
        /// `NAME=FILE`, in table order.
        #[arg(long, required = true)]
        result: Vec<String>,
        /// Name of the floor (`pam_permit`) among them.
        #[arg(long)]
        floor: String,
        /// Writes the table here.
        #[arg(long)]
        markdown: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_trimmed(path: &Path) -> Result<String, Error> {
    Ok(std::fs::read_to_string(path)
        .map_err(io_err(path))?
        .trim()
        .to_owned())
}

fn append_line(path: &Path, line: &str) -> Result<(), Error> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    writeln!(f, "{line}").map_err(io_err(path))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

type States = HashMap<String, Schedule>;

fn load_states(path: &Path) -> States {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save_states(path: &Path, s: &States) -> Result<(), Error> {
    let text = serde_json::to_string(s).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(path, text).map_err(io_err(path))
}

fn parse_pids(specs: &[String]) -> Result<HashMap<String, Vec<(String, Watched)>>, Error> {
    let mut m: HashMap<String, Vec<(String, Watched)>> = HashMap::new();
    for s in specs {
        let (target, list) = s
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("--pids {s:?}: TARGET=LABEL:SPEC,...")))?;
        for item in list.split(',').filter(|x| !x.is_empty()) {
            let (label, pid) = item
                .split_once(':')
                .ok_or_else(|| Error::Invalid(format!("--pids {s:?}: LABEL:SPEC")))?;
            let pid = Watched::parse(pid).ok_or_else(|| {
                Error::Invalid(format!(
                    "--pids {s:?}: {pid:?} is not a PID, PID+ or machine"
                ))
            })?;
            m.entry(target.to_owned())
                .or_default()
                .push((label.to_owned(), pid));
        }
    }
    Ok(m)
}

/// Waits (at most three step boundaries) until `n` fresh pairs are there
/// and the step is young enough ([`LAST_RUN_START`]) for a run to start.
async fn wait_for_pairs(sched: &Mutex<Schedule>, n: usize, target: &str) {
    for _ in 0..3 {
        let now = unix_now();
        let avail = sched.lock().expect("lock").available(now);
        if avail >= n && now % STEP_SECONDS <= LAST_RUN_START {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let wait = STEP_SECONDS as f64 - now % STEP_SECONDS as f64 + 0.1;
        if avail < n {
            eprintln!("{target}: {avail} fresh codes < {n}: waiting {wait:.1} s for the next step");
        }
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// What one request came back with.
enum Outcome {
    Accept,
    Reject,
    Timeout,
    Error,
}

#[derive(Default)]
struct Tally {
    accepts: usize,
    rejects: usize,
    timeouts: usize,
    errors: usize,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, o: Outcome, ms: f64) {
        match o {
            Outcome::Accept => self.accepts += 1,
            Outcome::Reject => self.rejects += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Error => self.errors += 1,
        }
        if !matches!(o, Outcome::Timeout) {
            self.latencies_ms.push(ms);
        }
    }
}

/// The shared part of a run: who is next, how many were started.
struct Feed {
    users: Arc<Vec<User>>,
    sched: Arc<Mutex<Schedule>>,
    started: AtomicUsize,
    limit: usize,
    deadline: Instant,
}

impl Feed {
    /// The next (user index, code) or `None` when the run is over (its
    /// count sent or its time up). In the last second of a step, when no
    /// code may be handed out, it waits for the next step.
    async fn next(&self) -> Option<(usize, String)> {
        loop {
            if Instant::now() >= self.deadline {
                return None;
            }
            {
                let mut sched = self.sched.lock().expect("lock");
                if self.started.load(Ordering::Relaxed) >= self.limit {
                    return None;
                }
                if let Some((i, step)) = sched.next(unix_now()) {
                    self.started.fetch_add(1, Ordering::Relaxed);
                    drop(sched);
                    return Some((i, code_for_step(&self.users[i].secret, step)));
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn done(&self, i: usize) {
        self.sched.lock().expect("lock").done(i);
    }
}

async fn radius_worker(
    feed: Arc<Feed>,
    addr: String,
    secret: Arc<Vec<u8>>,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let sock = match UdpSocket::bind("127.0.0.1:0").await {
        Ok(s) => s,
        Err(_) => return tally,
    };
    if sock.connect(&addr).await.is_err() {
        return tally;
    }
    let mut id: u8 = rand::random();
    let mut buf = vec![0u8; 4096];
    while let Some((i, code)) = feed.next().await {
        id = id.wrapping_add(1);
        let ra: [u8; 16] = rand::random();
        let pkt = access_request(id, &ra, &feed.users[i].name, &code, &secret);
        let t0 = Instant::now();
        let outcome = if sock.send(&pkt).await.is_err() {
            Outcome::Error
        } else {
            let wait = async {
                loop {
                    match sock.recv(&mut buf).await {
                        Ok(n) => {
                            if let Some(c) = check_reply(&buf[..n], id, &ra, &secret) {
                                return match c {
                                    code::ACCESS_ACCEPT => Outcome::Accept,
                                    code::ACCESS_REJECT | code::ACCESS_CHALLENGE => Outcome::Reject,
                                    _ => Outcome::Error,
                                };
                            }
                            // A late answer to an earlier request: keep waiting.
                        }
                        Err(_) => return Outcome::Error,
                    }
                }
            };
            tokio::time::timeout(timeout, wait)
                .await
                .unwrap_or(Outcome::Timeout)
        };
        tally.add(outcome, t0.elapsed().as_secs_f64() * 1000.0);
        feed.done(i);
    }
    tally
}

/// Sends verifications until the run is over; with several registries,
/// request `n` of worker `k` goes to registry `(k + n) % len`.
async fn http_worker(
    feed: Arc<Feed>,
    client: reqwest::Client,
    urls: Arc<Vec<String>>,
    k: usize,
    key: Arc<String>,
) -> Tally {
    let mut tally = Tally::default();
    let mut n = k;
    while let Some((i, code)) = feed.next().await {
        let url = &urls[n % urls.len()];
        n += 1;
        let body = serde_json::json!({
            "username": feed.users[i].name,
            "code": code,
            "context": {"service": "bench", "host": "loadgen"},
        });
        let t0 = Instant::now();
        let res = client
            .post(url.as_str())
            .bearer_auth(key.as_str())
            .header("twostep-results", "replay")
            .json(&body)
            .send()
            .await;
        let outcome = match res {
            Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                Ok(v) if v["result"] == "accept" => Outcome::Accept,
                Ok(_) => Outcome::Reject,
                Err(_) => Outcome::Error,
            },
            Ok(_) => Outcome::Error,
            Err(e) if e.is_timeout() => Outcome::Timeout,
            Err(_) => Outcome::Error,
        };
        tally.add(outcome, t0.elapsed().as_secs_f64() * 1000.0);
        feed.done(i);
    }
    tally
}

/// Which kind of target a run drives.
#[derive(Clone)]
enum Driver {
    Radius {
        addr: String,
        secret: Arc<Vec<u8>>,
    },
    Http {
        client: reqwest::Client,
        urls: Arc<Vec<String>>,
        key: Arc<String>,
    },
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    target: &str,
    driver: &Driver,
    users: &Arc<Vec<User>>,
    sched: &Arc<Mutex<Schedule>>,
    opts: &RunOpts,
    concurrency: usize,
    repeat: usize,
    pids: &[(String, Watched)],
) -> RunResult {
    wait_for_pairs(sched, opts.requests, target).await;
    let feed = Arc::new(Feed {
        users: users.clone(),
        sched: sched.clone(),
        started: AtomicUsize::new(0),
        limit: opts.requests,
        deadline: Instant::now() + Duration::from_secs_f64(opts.max_seconds),
    });
    let cpu0: Vec<Option<f64>> = pids.iter().map(|(_, p)| p.cpu_seconds()).collect();
    let t0 = Instant::now();
    let timeout = Duration::from_secs_f64(opts.timeout);
    let mut handles = Vec::new();
    for k in 0..concurrency {
        let feed = feed.clone();
        handles.push(match driver.clone() {
            Driver::Radius { addr, secret } => {
                tokio::spawn(radius_worker(feed, addr, secret, timeout))
            }
            Driver::Http { client, urls, key } => {
                tokio::spawn(http_worker(feed, client, urls, k, key))
            }
        });
    }
    let mut all = Tally::default();
    for h in handles {
        if let Ok(t) = h.await {
            all.accepts += t.accepts;
            all.rejects += t.rejects;
            all.timeouts += t.timeouts;
            all.errors += t.errors;
            all.latencies_ms.extend(t.latencies_ms);
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = pids
        .iter()
        .zip(cpu0)
        .filter_map(|((label, pid), c0)| {
            Some((label.clone(), (pid.cpu_seconds()? - c0?) / seconds))
        })
        .collect();
    all.latencies_ms.sort_by(f64::total_cmp);
    let r = RunResult {
        target: target.to_owned(),
        concurrency,
        repeat,
        sent: all.accepts + all.rejects + all.timeouts + all.errors,
        accepts: all.accepts,
        rejects: all.rejects,
        timeouts: all.timeouts,
        errors: all.errors,
        seconds,
        p50_ms: quantile(&all.latencies_ms, 0.5),
        p99_ms: quantile(&all.latencies_ms, 0.99),
        cpu,
    };
    eprintln!(
        "{target} c={concurrency} rep={repeat}: {} sent, {} accept, {} reject, {} timeout, {} error in {:.2} s: {:.0} accepts/s, p50 {:.2} ms, p99 {:.2} ms",
        r.sent, r.accepts, r.rejects, r.timeouts, r.errors, r.seconds, r.accepts_per_s(), r.p50_ms, r.p99_ms
    );
    r
}

/// Runs every target at every concurrency, `opts.repeat` times, targets
/// alternating. With `shared_state`, all targets draw from one step record
/// of that name (they verify against one database); otherwise each has its
/// own, under its name.
async fn run_matrix(
    targets: Vec<(String, Driver)>,
    opts: &RunOpts,
    shared_state: Option<&str>,
) -> Result<(), Error> {
    let users = Arc::new(read_users(&opts.users)?);
    if users.is_empty() {
        return Err(Error::Invalid("no users".into()));
    }
    let pids = parse_pids(&opts.pids)?;
    let mut states = load_states(&opts.state);
    let state_names: Vec<String> = targets
        .iter()
        .map(|(name, _)| shared_state.unwrap_or(name).to_owned())
        .collect();
    let mut by_name: HashMap<String, Arc<Mutex<Schedule>>> = HashMap::new();
    let scheds: Vec<Arc<Mutex<Schedule>>> = state_names
        .iter()
        .map(|name| {
            by_name
                .entry(name.clone())
                .or_insert_with(|| {
                    let mut s = states
                        .remove(name)
                        .unwrap_or_else(|| Schedule::new(users.len()));
                    s.fit(users.len());
                    Arc::new(Mutex::new(s))
                })
                .clone()
        })
        .collect();
    let mut results = Vec::new();
    for rep in 0..opts.repeat {
        for &c in &opts.concurrency {
            for ((name, driver), sched) in targets.iter().zip(&scheds) {
                let p = pids.get(name).cloned().unwrap_or_default();
                let r = one_run(name, driver, &users, sched, opts, c, rep, &p).await;
                if let Some(j) = &opts.json {
                    let line =
                        serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string()))?;
                    append_line(j, &line)?;
                }
                results.push(r);
            }
        }
    }
    let mut states = load_states(&opts.state);
    for (name, sched) in &by_name {
        states.insert(name.clone(), sched.lock().expect("lock").clone());
    }
    save_states(&opts.state, &states)?;
    let table = markdown_table(&results);
    if let Some(m) = &opts.markdown {
        std::fs::write(m, &table).map_err(io_err(m))?;
    }
    print!("{table}");
    Ok(())
}

async fn enrol(
    url: &str,
    token_file: &Path,
    count: usize,
    prefix: &str,
    concurrency: usize,
    out: &Path,
    json: Option<&Path>,
) -> Result<(), Error> {
    let token = Arc::new(read_trimmed(token_file)?);
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let base = Arc::new(url.trim_end_matches('/').to_owned());
    let prefix = Arc::new(prefix.to_owned());
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, next, base, prefix, token) = (
            client.clone(),
            next.clone(),
            base.clone(),
            prefix.clone(),
            token.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut lines = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, Error>(lines);
                }
                let name = format!("{prefix}{i:05}");
                client
                    .post(format!("{base}/v1/admin/users"))
                    .bearer_auth(token.as_str())
                    .json(&serde_json::json!({ "username": name }))
                    .send()
                    .await?
                    .error_for_status()?;
                let v: serde_json::Value = client
                    .post(format!("{base}/v1/admin/users/{name}/methods/totp"))
                    .bearer_auth(token.as_str())
                    .json(&serde_json::json!({}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let secret = v["secret_base32"]
                    .as_str()
                    .ok_or_else(|| Error::Invalid(format!("enrol {name}: no secret_base32")))?;
                lines.push((i, format!("{name},{secret}")));
            }
        }));
    }
    let mut lines = Vec::new();
    for h in handles {
        lines.extend(
            h.await
                .map_err(|e| Error::Invalid(format!("enrol task: {e}")))??,
        );
    }
    let seconds = t0.elapsed().as_secs_f64();
    lines.sort();
    let text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
    std::fs::write(out, text).map_err(io_err(out))?;
    eprintln!(
        "enrolled {count} users with TOTP in {seconds:.2} s: {:.0} per s",
        count as f64 / seconds
    );
    if let Some(j) = json {
        append_line(
            j,
            &serde_json::json!({"enrolled": count, "concurrency": concurrency, "seconds": seconds})
                .to_string(),
        )?;
    }
    Ok(())
}

/// Identifiers used per socket by `hold` (of 256).
const HOLD_PER_SOCKET: usize = 250;

/// Sends `count` requests, paced (20 per millisecond at most, so that the
/// server's socket buffer does not overflow), `HOLD_PER_SOCKET` per socket,
/// and waits for their answers until `wait` seconds have passed.
async fn hold(
    target: &str,
    secret: &[u8],
    count: usize,
    prefix: &str,
    wait: f64,
) -> Result<(), Error> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(wait);
    let secret = Arc::new(secret.to_vec());
    let mut socks = Vec::new();
    let mut handles = Vec::new();
    for first in (0..count).step_by(HOLD_PER_SOCKET) {
        let n = HOLD_PER_SOCKET.min(count - first);
        let sock = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(io_err(Path::new("udp socket")))?;
        sock.connect(target)
            .await
            .map_err(io_err(Path::new(target)))?;
        let sock = Arc::new(sock);
        let ras: Vec<[u8; 16]> = (0..n).map(|_| rand::random()).collect();
        socks.push((sock.clone(), first, ras.clone()));
        let secret = secret.clone();
        handles.push(tokio::spawn(async move {
            let mut open: Vec<Option<[u8; 16]>> = ras.into_iter().map(Some).collect();
            let mut answered = 0usize;
            let mut buf = vec![0u8; 4096];
            while answered < n {
                let Ok(Ok(len)) =
                    tokio::time::timeout_at(deadline.into(), sock.recv(&mut buf)).await
                else {
                    break;
                };
                let id = usize::from(buf[1]);
                if let Some(Some(ra)) = open.get(id).copied() {
                    if check_reply(&buf[..len], buf[1], &ra, &secret).is_some() {
                        open[id] = None;
                        answered += 1;
                    }
                }
            }
            answered
        }));
    }
    let mut sent = 0usize;
    for (sock, first, ras) in &socks {
        for (k, ra) in ras.iter().enumerate() {
            let user = format!("{prefix}{:05}", first + k);
            let pkt = access_request(k as u8, ra, &user, "123456", &secret);
            if sock.send(&pkt).await.is_ok() {
                sent += 1;
            }
            if sent % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let send_seconds = t0.elapsed().as_secs_f64();
    let mut answered = 0;
    for h in handles {
        answered += h.await.unwrap_or(0);
    }
    println!(
        "{}",
        serde_json::json!({"sent": sent, "send_seconds": send_seconds, "answered": answered, "seconds": t0.elapsed().as_secs_f64()})
    );
    Ok(())
}

fn pam_table(results: &[String], floor: &str, markdown: &Path) -> Result<(), Error> {
    // hyperfine's export: results[0].times (seconds of each run).
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for spec in results {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("--result {spec:?}: NAME=FILE")))?;
        let p = Path::new(file);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).map_err(io_err(p))?)
                .map_err(|e| Error::Invalid(format!("{file}: {e}")))?;
        let times = v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["times"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_f64())
            .map(|s| s * 1000.0)
            .collect();
        match rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => t.extend::<Vec<f64>>(times),
            None => rows.push((name.to_owned(), times)),
        }
    }
    let med = |n: &str| {
        rows.iter()
            .find(|(m, _)| m == n)
            .map(|(_, t)| twostep_bench::median(t))
    };
    let floor_med = med(floor).unwrap_or(0.0);
    let first = rows.first().map(|(n, _)| n.clone()).unwrap_or_default();
    let mut out = String::from(
        "| PAM stack | runs | median ms | min–max ms | over the floor, ms | ratio |\n|---|---|---|---|---|---|\n",
    );
    for (name, t) in &rows {
        let m = twostep_bench::median(t);
        let min = t.iter().copied().fold(f64::INFINITY, f64::min);
        let max = t.iter().copied().fold(0.0, f64::max);
        let ratio = if *name == first {
            rows.iter()
                .filter(|(n, _)| n != name && n != floor)
                .map(|(n, ot)| format!("{:.2}× {n}", m / twostep_bench::median(ot)))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {name} | {} | {m:.2} | {min:.2}–{max:.2} | {:+.2} | {ratio} |\n",
            t.len(),
            m - floor_med
        ));
    }
    std::fs::write(markdown, &out).map_err(io_err(markdown))?;
    print!("{out}");
    Ok(())
}

fn parse_targets(specs: &[String], secret: &Arc<Vec<u8>>) -> Result<Vec<(String, Driver)>, Error> {
    specs
        .iter()
        .map(|s| {
            let (name, addr) = s
                .split_once('=')
                .ok_or_else(|| Error::Invalid(format!("--target {s:?}: NAME=HOST:PORT")))?;
            Ok((
                name.to_owned(),
                Driver::Radius {
                    addr: addr.to_owned(),
                    secret: secret.clone(),
                },
            ))
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Enrol {
            url,
            admin_token_file,
            count,
            prefix,
            concurrency,
            out,
            json,
        } => {
            enrol(
                &url,
                &admin_token_file,
                count,
                &prefix,
                concurrency,
                &out,
                json.as_deref(),
            )
            .await
        }
        Cmd::Radius {
            target,
            secret_file,
            run,
        } => match read_trimmed(&secret_file) {
            Ok(s) => {
                let secret = Arc::new(s.into_bytes());
                match parse_targets(&target, &secret) {
                    Ok(t) => run_matrix(t, &run, None).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        Cmd::Http {
            target,
            host_key_file,
            state_name,
            run,
        } => match read_trimmed(&host_key_file) {
            Ok(key) => {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1024)
                    .timeout(Duration::from_secs_f64(run.timeout))
                    .build();
                match client {
                    Ok(client) => {
                        let key = Arc::new(key);
                        let targets = target
                            .iter()
                            .map(|spec| {
                                let (name, urls) = spec.split_once('=').ok_or_else(|| {
                                    Error::Invalid(format!("--target {spec:?}: NAME=URL[,URL]"))
                                })?;
                                let urls = urls
                                    .split(',')
                                    .map(|u| format!("{}/v1/host/verify", u.trim_end_matches('/')))
                                    .collect();
                                Ok((
                                    name.to_owned(),
                                    Driver::Http {
                                        client: client.clone(),
                                        urls: Arc::new(urls),
                                        key: key.clone(),
                                    },
                                ))
                            })
                            .collect::<Result<Vec<_>, Error>>();
                        match targets {
                            Ok(t) => run_matrix(t, &run, Some(&state_name)).await,
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        },
        Cmd::SlowProxy {
            listen,
            upstream,
            marker,
            delay,
        } => twostep_bench::proxy::run(&listen, &upstream, &marker, Duration::from_secs_f64(delay))
            .await
            .map_err(|source| Error::Io {
                path: listen.clone(),
                source,
            }),
        Cmd::Hold {
            target,
            secret_file,
            count,
            prefix,
            wait,
        } => match read_trimmed(&secret_file) {
            Ok(sec) => hold(&target, sec.as_bytes(), count, &prefix, wait).await,
            Err(e) => Err(e),
        },
        Cmd::PamTable {
            result,
            floor,
            markdown,
        } => pam_table(&result, &floor, &markdown),
    };
    if let Err(e) = res {
        eprintln!("twostep-loadgen: {e}");
        std::process::exit(1);
    }
}
