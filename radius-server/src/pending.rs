//! Pending pushes: one challenge in the registry per push login, however
//! often the NAS sends it.
//!
//! The reply cache ([`crate::cache`]) absorbs retransmissions that repeat
//! the Identifier and Request Authenticator. Many NASes retry with a new
//! Identifier instead; for a code that is harmless (the registry refuses
//! the code the second time), for a push it would send a second
//! notification. So a push login is identified by what the user sent
//! instead: client, User-Name, NAS, the password (or the text typed at a
//! challenge) and the State it answers, hashed with a key made at startup
//! ([`Keyer`]), so the table holds no password.
//!
//! An entry is made when a login reaches its first push call (after the
//! primary accepted the password) and lives as long as its push:
//!
//! - while the first request works (starting the push, or waiting for its
//!   answer), an identical request waits for that request's reply
//!   ([`Join::Wait`]);
//! - once the reply is an Access-Challenge showing the push's number, the
//!   entry keeps that reply until the push ends (its answer collected here,
//!   or its expiry): an identical request gets the same Access-Challenge,
//!   the same number and State ([`Join::Replay`]);
//! - a final reply (Access-Accept or Access-Reject) ends the entry, and the
//!   entries whose Access-Challenge showed that push.
//!
//! The table holds at most `capacity` entries (`[radius]
//! max_pending_pushes`); past that, new push logins are refused
//! ([`Join::Full`]), never a code login. At most [`MAX_WAITERS`] requests wait
//! on one entry. Sans-I/O: the caller passes the clock (Unix s); a waiting
//! request holds a [`tokio::sync::watch`] receiver, which needs no runtime
//! to be made or fed.

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::flow::{PushMark, Reply};

/// Most requests that wait on one pending push login besides the first.
pub const MAX_WAITERS: usize = 16;

/// A request still working after this long (seconds) is forgotten: longer
/// than any push login takes (a held push waits 120 s at most).
pub const MAX_WORKING_SECS: u64 = 600;

/// What identifies a push login: a keyed hash (HMAC-SHA-256) of client,
/// User-Name, NAS, password or typed text, and State.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PendingKey([u8; 32]);

impl std::fmt::Debug for PendingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingKey(..)")
    }
}

/// Which push call of a login an entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStep {
    /// Starting a push: `password,push`, `push` typed at a challenge, or
    /// `auto-push` after the password.
    Start,
    /// Collecting the result of a push whose number was shown.
    Collect,
}

/// Makes [`PendingKey`]s with a random key drawn at startup.
pub struct Keyer(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyer(<redacted>)")
    }
}

impl Default for Keyer {
    fn default() -> Self {
        Self::new()
    }
}

impl Keyer {
    /// A keyer with a fresh random key.
    pub fn new() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut k[..]);
        Self(k)
    }

    /// A keyer with a fixed key (tests and fuzzing).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// The key of a push login: every part length-prefixed, so no two
    /// different logins share their input.
    pub fn key(
        &self,
        step: PushStep,
        client: &str,
        user: &str,
        nas: Option<&str>,
        typed: &[u8],
        state: Option<&[u8]>,
    ) -> PendingKey {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0[..])
            .expect("HMAC takes a key of any length");
        mac.update(&[match step {
            PushStep::Start => 1,
            PushStep::Collect => 2,
        }]);
        let nas = nas.map(str::as_bytes);
        for part in [
            Some(client.as_bytes()),
            Some(user.as_bytes()),
            nas,
            Some(typed),
            state,
        ] {
            match part {
                None => mac.update(&[0]),
                Some(p) => {
                    mac.update(&[1]);
                    mac.update(&(p.len() as u64).to_be_bytes());
                    mac.update(p);
                }
            }
        }
        PendingKey(mac.finalize().into_bytes().into())
    }
}

/// What to do with a push login.
#[derive(Debug)]
pub enum Join {
    /// None like it is pending: go on, then [`PendingPushes::finish`] (or
    /// [`PendingPushes::abandon`]).
    Lead,
    /// An identical request is working: its reply comes on this receiver
    /// (`None` until then; the sender dropped when it was abandoned).
    Wait(watch::Receiver<Option<Reply>>),
    /// An identical request's push is pending, its number shown: send
    /// this Access-Challenge again.
    Replay(Reply),
    /// The table is full, or too many requests wait on this login: refuse.
    Full,
}

enum Entry {
    /// The first request works; `waiters` wait for its reply.
    Working {
        reply: watch::Sender<Option<Reply>>,
        waiters: usize,
        since: u64,
    },
    /// The push is pending and its number was shown in `reply`, an
    /// Access-Challenge, until `until` (Unix s).
    Challenged {
        reply: Reply,
        challenge_id: String,
        until: u64,
    },
}

/// The pending push logins of this server. See the module documentation.
pub struct PendingPushes {
    entries: HashMap<PendingKey, Entry>,
    capacity: usize,
    pruned_at: u64,
}

impl std::fmt::Debug for PendingPushes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPushes")
            .field("entries", &self.entries.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl PendingPushes {
    /// A table of at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            pruned_at: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks up the login `key` at `now`; a new one is recorded as working.
    pub fn join(&mut self, key: PendingKey, now: u64) -> Join {
        self.prune(now);
        match self.entries.get_mut(&key) {
            Some(Entry::Working { waiters, .. }) if *waiters >= MAX_WAITERS => Join::Full,
            Some(Entry::Working { reply, waiters, .. }) => {
                *waiters += 1;
                Join::Wait(reply.subscribe())
            }
            Some(Entry::Challenged { reply, until, .. }) if now <= *until => {
                Join::Replay(reply.clone())
            }
            Some(Entry::Challenged { .. }) => {
                self.entries.remove(&key);
                self.insert(key, now)
            }
            None => self.insert(key, now),
        }
    }

    fn insert(&mut self, key: PendingKey, now: u64) -> Join {
        if self.entries.len() >= self.capacity {
            return Join::Full;
        }
        let (reply, _) = watch::channel(None);
        self.entries.insert(
            key,
            Entry::Working {
                reply,
                waiters: 0,
                since: now,
            },
        );
        Join::Lead
    }

    /// Records the reply of the request that leads `key`: its waiters get
    /// it. With [`PushMark::Pending`] (an Access-Challenge showing the
    /// push's number) the entry keeps it for later identical requests until
    /// the push ends; otherwise the entry ends, and with
    /// [`PushMark::Ended`] so do the entries that showed that push.
    pub fn finish(&mut self, key: PendingKey, reply: &Reply, mark: Option<&PushMark>, now: u64) {
        if let Some(Entry::Working { reply: tx, .. }) = self.entries.remove(&key) {
            tx.send_replace(Some(reply.clone()));
        }
        match mark {
            Some(PushMark::Pending {
                challenge_id,
                until,
            }) if now <= *until => {
                self.entries.insert(
                    key,
                    Entry::Challenged {
                        reply: reply.clone(),
                        challenge_id: challenge_id.clone(),
                        until: *until,
                    },
                );
            }
            Some(PushMark::Ended { challenge_id }) => self.entries.retain(
                |_, e| !matches!(e, Entry::Challenged { challenge_id: c, .. } if c == challenge_id),
            ),
            _ => {}
        }
    }

    /// Forgets `key` without a reply (its request was dropped): its
    /// waiters see the sender gone.
    pub fn abandon(&mut self, key: PendingKey) {
        if matches!(self.entries.get(&key), Some(Entry::Working { .. })) {
            self.entries.remove(&key);
        }
    }

    /// At most once a second: forgets pushes past their end and requests
    /// working for longer than [`MAX_WORKING_SECS`].
    fn prune(&mut self, now: u64) {
        if now == self.pruned_at {
            return;
        }
        self.pruned_at = now;
        self.entries.retain(|_, e| match e {
            Entry::Challenged { until, .. } => now <= *until,
            Entry::Working { since, .. } => now.saturating_sub(*since) <= MAX_WORKING_SECS,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::code;

    fn key(n: u8) -> PendingKey {
        Keyer::from_bytes([1; 32]).key(PushStep::Start, "gw", "alice", None, &[n], None)
    }

    fn challenge(id: &str, until: u64) -> (Reply, PushMark) {
        let r = Reply::challenge_with(
            "enter 42",
            vec![1, 2, 3],
            std::time::Duration::from_secs(60),
        );
        let m = PushMark::Pending {
            challenge_id: id.into(),
            until,
        };
        (r, m)
    }

    #[test]
    fn keys_differ_by_every_part_and_by_key() {
        let k = Keyer::from_bytes([1; 32]);
        let base = k.key(PushStep::Start, "gw", "alice", Some("nas"), b"pw", None);
        assert_eq!(
            base,
            k.key(PushStep::Start, "gw", "alice", Some("nas"), b"pw", None)
        );
        let others = [
            k.key(PushStep::Collect, "gw", "alice", Some("nas"), b"pw", None),
            k.key(PushStep::Start, "gw2", "alice", Some("nas"), b"pw", None),
            k.key(PushStep::Start, "gw", "bob", Some("nas"), b"pw", None),
            k.key(PushStep::Start, "gw", "alice", None, b"pw", None),
            k.key(PushStep::Start, "gw", "alice", Some("nas2"), b"pw", None),
            k.key(PushStep::Start, "gw", "alice", Some("nas"), b"pw2", None),
            k.key(
                PushStep::Start,
                "gw",
                "alice",
                Some("nas"),
                b"pw",
                Some(b""),
            ),
            // Moving a boundary between parts changes the key.
            k.key(PushStep::Start, "gw", "alicen", Some("as"), b"pw", None),
            Keyer::from_bytes([2; 32]).key(
                PushStep::Start,
                "gw",
                "alice",
                Some("nas"),
                b"pw",
                None,
            ),
        ];
        for (i, o) in others.iter().enumerate() {
            assert_ne!(&base, o, "variant {i}");
        }
        assert!(!format!("{base:?} {k:?}").contains("01"));
    }

    #[test]
    fn identical_logins_wait_for_the_first_and_get_its_reply() {
        let mut t = PendingPushes::new(10);
        assert!(matches!(t.join(key(1), 100), Join::Lead));
        let Join::Wait(rx) = t.join(key(1), 101) else {
            panic!("second copy must wait")
        };
        assert!(rx.borrow().is_none());
        // Another login goes its own way.
        assert!(matches!(t.join(key(2), 101), Join::Lead));
        let reject = Reply::reject(Some("push denied"));
        t.finish(
            key(1),
            &reject,
            Some(&PushMark::Ended {
                challenge_id: "c1".into(),
            }),
            102,
        );
        assert_eq!(rx.borrow().as_ref(), Some(&reject));
        assert_eq!(t.len(), 1, "a final reply ends the entry");
        assert!(
            matches!(t.join(key(1), 103), Join::Lead),
            "a new login afterwards"
        );
    }

    #[test]
    fn a_shown_number_is_replayed_until_the_push_ends() {
        let mut t = PendingPushes::new(10);
        assert!(matches!(t.join(key(1), 100), Join::Lead));
        let Join::Wait(rx) = t.join(key(1), 100) else {
            panic!()
        };
        let (c, mark) = challenge("c1", 160);
        t.finish(key(1), &c, Some(&mark), 100);
        assert_eq!(rx.borrow().as_ref(), Some(&c));
        for now in [101, 160] {
            match t.join(key(1), now) {
                Join::Replay(r) => assert_eq!(r, c),
                other => panic!("{other:?}"),
            }
        }
        // Past the push's end: a new login.
        assert!(matches!(t.join(key(1), 161), Join::Lead));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_collected_result_ends_the_entries_that_showed_its_number() {
        let mut t = PendingPushes::new(10);
        for (k, id) in [(1, "c1"), (2, "c2")] {
            assert!(matches!(t.join(key(k), 100), Join::Lead));
            let (c, mark) = challenge(id, 160);
            t.finish(key(k), &c, Some(&mark), 100);
        }
        // The collecting request of c1.
        assert!(matches!(t.join(key(3), 110), Join::Lead));
        let accept = Reply::accept(vec![]);
        t.finish(
            key(3),
            &accept,
            Some(&PushMark::Ended {
                challenge_id: "c1".into(),
            }),
            111,
        );
        assert!(matches!(t.join(key(1), 112), Join::Lead), "c1 ended");
        assert!(
            matches!(t.join(key(2), 112), Join::Replay(_)),
            "c2 still pending"
        );
        assert_eq!(accept.code, code::ACCESS_ACCEPT);
    }

    #[test]
    fn bounded_in_entries_and_waiters() {
        let mut t = PendingPushes::new(2);
        assert!(matches!(t.join(key(1), 100), Join::Lead));
        assert!(matches!(t.join(key(2), 100), Join::Lead));
        assert!(matches!(t.join(key(3), 100), Join::Full));
        let mut waiting = Vec::new();
        for _ in 0..MAX_WAITERS {
            match t.join(key(1), 100) {
                Join::Wait(rx) => waiting.push(rx),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(t.join(key(1), 100), Join::Full));
        // An abandoned request frees its place; its waiters see it gone.
        t.abandon(key(1));
        assert!(waiting[0].has_changed().is_err(), "sender dropped");
        assert!(matches!(t.join(key(3), 100), Join::Lead));
    }

    #[test]
    fn forgotten_after_their_time() {
        let mut t = PendingPushes::new(10);
        assert!(matches!(t.join(key(1), 100), Join::Lead));
        assert!(matches!(t.join(key(2), 100), Join::Lead));
        let (c, mark) = challenge("c2", 130);
        t.finish(key(2), &c, Some(&mark), 100);
        assert!(matches!(t.join(key(9), 131), Join::Lead));
        assert_eq!(t.len(), 2, "the pushed entry ended at 130");
        // key(1) has worked since 100, key(9) since 131.
        let later = 100 + MAX_WORKING_SECS + 1;
        assert!(
            matches!(t.join(key(1), later), Join::Lead),
            "stuck, forgotten"
        );
        assert!(
            matches!(t.join(key(9), later), Join::Wait(_)),
            "still working"
        );
        // A mark already past its end keeps nothing.
        assert!(matches!(t.join(key(5), 2000), Join::Lead));
        let (c, mark) = challenge("c5", 1999);
        t.finish(key(5), &c, Some(&mark), 2000);
        assert!(matches!(t.join(key(5), 2000), Join::Lead));
    }
}
