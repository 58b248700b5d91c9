//! `twostep authenticator watch`: waits for sign-in requests on every push
//! account and asks the user, request by request, for the number shown at
//! the login and for approve, deny or report as fraud.
//!
//! One task per account long-polls the registry (signed, at most
//! [`POLL_WAIT_SECS`] per request) and backs off on errors; the main loop
//! asks about one request at a time, each question bounded by the
//! request's expiry. Lines typed before a question are thrown away, so
//! nothing typed ahead approves a request by reflex.

use super::device::{answer_error, describe, result_message, unix_now, Device};
use crate::output::text;
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use twostep_common::client::ClientError;
use twostep_common::push::{Decision, PendingChallenge, MAX_CLOCK_SKEW_SECS};

/// Seconds each poll asks the registry to hold it open.
pub const POLL_WAIT_SECS: u64 = 25;

/// Least time between two polls that brought nothing new: requests still
/// pending make the registry answer at once.
pub const REPOLL_PAUSE: Duration = Duration::from_secs(2);

/// First wait after a failed poll; doubled after each failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Longest wait between retries after failed polls.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A request, from the account that polled it.
struct Incoming {
    device: Arc<Device>,
    challenge: PendingChallenge,
}

/// Watches `devices` until Ctrl-C (exit status 0) or until none of them
/// can receive requests any more (an error).
///
/// # Errors
/// Standard input closed while a question waits; every account stopped
/// (disabled devices).
pub async fn watch(devices: Vec<Device>) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = devices
        .iter()
        .map(|d| format!("{:?}", d.account.name))
        .collect();
    let (tx, mut rx) = mpsc::channel(32);
    let mut pollers = tokio::task::JoinSet::new();
    for d in devices {
        pollers.spawn(poll_loop(Arc::new(d), tx.clone()));
    }
    drop(tx);
    let mut input = Input::spawn();
    twostep_common::outln!(
        "Waiting for sign-in requests for {}; Ctrl-C stops.",
        names.join(", ")
    );
    let run = async {
        while let Some(incoming) = rx.recv().await {
            ask_and_answer(&incoming, &mut input).await?;
        }
        bail!("no account can receive sign-in requests any more")
    };
    tokio::select! {
        r = run => r,
        r = tokio::signal::ctrl_c() => {
            r.context("waiting for Ctrl-C")?;
            twostep_common::outln!();
            eprintln!("stopped");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Polls one account for ever, handing each request on once.
async fn poll_loop(device: Arc<Device>, tx: mpsc::Sender<Incoming>) {
    let name = text(&device.account.name).into_owned();
    // Requests handed on, with their expiry; kept a clock skew longer, so
    // a registry whose clock is behind ours does not show one twice.
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        match device.poll(POLL_WAIT_SECS).await {
            Ok(list) => {
                backoff = FIRST_BACKOFF;
                let now = unix_now();
                seen.retain(|_, expires| expires.saturating_add(MAX_CLOCK_SKEW_SECS) >= now);
                let mut fresh = false;
                for challenge in list {
                    if seen
                        .insert(challenge.challenge_id.clone(), challenge.expires_at)
                        .is_some()
                    {
                        continue;
                    }
                    fresh = true;
                    let incoming = Incoming {
                        device: Arc::clone(&device),
                        challenge,
                    };
                    if tx.send(incoming).await.is_err() {
                        return;
                    }
                }
                if !fresh {
                    tokio::time::sleep_until(started + REPOLL_PAUSE).await;
                }
            }
            Err(ClientError::Refused {
                status: 403,
                message,
                ..
            }) => {
                eprintln!(
                    "twostep: {name}: {}; this account gets no more sign-in requests",
                    text(&message)
                );
                return;
            }
            Err(e) => {
                eprintln!(
                    "twostep: {name}: {}; retrying in {} s",
                    twostep_common::error_chain(&e),
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Lines from standard input, read on a thread of their own (a blocking
/// read cannot be cancelled); `None` once it is closed.
struct Input {
    rx: mpsc::Receiver<String>,
}

impl Input {
    fn spawn() -> Self {
        let (tx, rx) = mpsc::channel(8);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.blocking_send(line.trim().to_owned()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Self { rx }
    }

    /// Prints `prompt` and waits for a line until `deadline`: `Ok(None)`
    /// when it passed. Lines typed before the prompt are dropped.
    ///
    /// # Errors
    /// Standard input is closed.
    async fn ask(&mut self, prompt: &str, deadline: Instant) -> anyhow::Result<Option<String>> {
        while self.rx.try_recv().is_ok() {}
        twostep_common::out!("{prompt}");
        let _ = std::io::stdout().flush();
        tokio::select! {
            line = self.rx.recv() => match line {
                Some(l) => Ok(Some(l)),
                None => bail!(
                    "standard input is closed: cannot ask for an answer (scripts use `twostep authenticator approve` or `deny`)"
                ),
            },
            () = tokio::time::sleep_until(deadline) => {
                twostep_common::outln!();
                Ok(None)
            }
        }
    }
}

/// What the user typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// Send this answer.
    Answer(Decision, Option<u8>),
    /// Ask "really report as fraud?" first.
    Fraud,
    /// Leave the request unanswered (the login waits until it expires).
    Skip,
}

fn prompt(number_matching: bool) -> &'static str {
    if number_matching {
        "Type the number shown at the login to approve, d to deny, f to report as fraud, s to skip: "
    } else {
        "a to approve, d to deny, f to report as fraud, s to skip: "
    }
}

/// The answer `line` gives, or why it gives none (ask again).
fn parse_choice(line: &str, number_matching: bool) -> Result<Choice, &'static str> {
    let word = line.trim().to_ascii_lowercase();
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        if !number_matching {
            return Err("this request has no number to match: type a to approve");
        }
        return match word.parse::<u8>() {
            Ok(n) if word.len() <= 2 => Ok(Choice::Answer(Decision::Approve, Some(n))),
            _ => Err("the number shown at the login has two digits"),
        };
    }
    match word.as_str() {
        "a" | "approve" | "y" | "yes" if number_matching => {
            Err("to approve, type the number shown at the login")
        }
        "a" | "approve" | "y" | "yes" => Ok(Choice::Answer(Decision::Approve, None)),
        "d" | "deny" | "n" | "no" => Ok(Choice::Answer(Decision::Deny, None)),
        "f" | "fraud" => Ok(Choice::Fraud),
        "s" | "skip" => Ok(Choice::Skip),
        "" => Err("no answer typed"),
        _ => Err("not an answer"),
    }
}

/// Shows one request, asks, and sends the answer.
async fn ask_and_answer(incoming: &Incoming, input: &mut Input) -> anyhow::Result<()> {
    let (device, c) = (&incoming.device, &incoming.challenge);
    let now = unix_now();
    if c.expires_at <= now {
        twostep_common::outln!(
            "A sign-in request for {} expired before it could be shown.",
            text(&c.username)
        );
        return Ok(());
    }
    twostep_common::outln!();
    twostep_common::out!("{}", describe(&device.account.name, c, now));
    let left = u64::try_from(c.expires_at.saturating_sub(now)).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(left);
    let (decision, number) = loop {
        let Some(line) = input.ask(prompt(c.number_matching), deadline).await? else {
            twostep_common::outln!("The request expired without an answer.");
            return Ok(());
        };
        match parse_choice(&line, c.number_matching) {
            Ok(Choice::Answer(d, n)) => break (d, n),
            Ok(Choice::Skip) => {
                twostep_common::outln!("Skipped: the login waits until the request expires.");
                return Ok(());
            }
            Ok(Choice::Fraud) => {
                let question = format!(
                    "Report as fraud? New sign-in requests for {} are then blocked until an admin clears them. [y/N]: ",
                    text(&c.username)
                );
                match input.ask(&question, deadline).await? {
                    None => {
                        twostep_common::outln!("The request expired without an answer.");
                        return Ok(());
                    }
                    Some(l) if matches!(l.to_ascii_lowercase().as_str(), "y" | "yes") => {
                        break (Decision::Fraud, None)
                    }
                    Some(_) => {}
                }
            }
            Err(why) => twostep_common::outln!("{why}."),
        }
    };
    match device.answer(c, decision, number).await {
        Ok(result) => twostep_common::outln!("{}", result_message(result, &c.username)),
        Err(e) => eprintln!(
            "twostep: {}: {}",
            text(&device.account.name),
            answer_error(&e)
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_answers() {
        let approve = |n| Ok(Choice::Answer(Decision::Approve, Some(n)));
        assert_eq!(parse_choice("42", true), approve(42));
        assert_eq!(parse_choice(" 07 \n", true), approve(7));
        assert_eq!(
            parse_choice("D", true),
            Ok(Choice::Answer(Decision::Deny, None))
        );
        assert_eq!(parse_choice("fraud", true), Ok(Choice::Fraud));
        assert_eq!(parse_choice("s", true), Ok(Choice::Skip));
        // Under number matching only the number approves.
        assert!(parse_choice("a", true).is_err());
        assert!(parse_choice("yes", true).is_err());
        assert!(parse_choice("", true).is_err());
        assert!(parse_choice("420", true).is_err());
        assert!(parse_choice("4 2", true).is_err());
        // Without a number, "a" approves and a number is refused.
        assert_eq!(
            parse_choice("a", false),
            Ok(Choice::Answer(Decision::Approve, None))
        );
        assert!(parse_choice("42", false).is_err());
    }
}
