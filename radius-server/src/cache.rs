//! Duplicate detection and the reply cache (RFC 5080 §2.2.2).
//!
//! A request is identified by source address and port, Identifier and
//! Request Authenticator. While the first copy is being worked on,
//! retransmissions are absorbed (no second verification, no second push or
//! consumed code); once answered, a retransmission gets the cached reply
//! again, byte for byte. Entries live [`ReplyCache::max_age`] after their
//! answer and the cache holds at most [`ReplyCache::capacity`] entries
//! (oldest answered first out). Sans-I/O: the caller passes the clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What identifies one request (RFC 5080 §2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// Source address and UDP port of the NAS.
    pub source: SocketAddr,
    /// RADIUS Identifier.
    pub identifier: u8,
    /// Request Authenticator.
    pub authenticator: [u8; 16],
}

#[derive(Debug)]
enum Entry {
    InProgress { since: Instant },
    Answered { reply: Vec<u8>, at: Instant },
}

/// What to do with an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// First copy: work on it, then call [`ReplyCache::finish`] or [`ReplyCache::abandon`].
    New,
    /// A retransmission of a request still being worked on: drop it.
    InProgress,
    /// A retransmission of an answered request: send these bytes again.
    Replay(Vec<u8>),
}

/// The reply cache. See the module documentation.
#[derive(Debug)]
pub struct ReplyCache {
    entries: HashMap<RequestKey, Entry>,
    order: VecDeque<(RequestKey, Instant)>,
    capacity: usize,
    max_age: Duration,
}

impl ReplyCache {
    /// A cache of at most `capacity` entries (at least 1) keeping answers for `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            max_age,
        }
    }

    /// Largest number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long an answer is kept.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks `key` up at `now`; a new key is recorded as in progress.
    pub fn begin(&mut self, key: RequestKey, now: Instant) -> Lookup {
        self.expire(now);
        match self.entries.get(&key) {
            Some(Entry::InProgress { .. }) => return Lookup::InProgress,
            Some(Entry::Answered { reply, .. }) => return Lookup::Replay(reply.clone()),
            None => {}
        }
        while self.entries.len() >= self.capacity && self.evict_oldest_answered() {}
        self.entries.insert(key, Entry::InProgress { since: now });
        self.order.push_back((key, now));
        Lookup::New
    }

    /// Records the reply to `key`, sent at `now`.
    pub fn finish(&mut self, key: RequestKey, reply: Vec<u8>, now: Instant) {
        self.entries.insert(key, Entry::Answered { reply, at: now });
        self.order.push_back((key, now));
    }

    /// Forgets `key` (no reply was sent, e.g. the request was shed): a
    /// retransmission will be worked on afresh.
    pub fn abandon(&mut self, key: &RequestKey) {
        if matches!(self.entries.get(key), Some(Entry::InProgress { .. })) {
            self.entries.remove(key);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(key, t)) = self.order.front() {
            if now.saturating_duration_since(t) <= self.max_age {
                break;
            }
            self.order.pop_front();
            if let Some(Entry::Answered { at, .. }) = self.entries.get(&key) {
                if *at == t {
                    self.entries.remove(&key);
                }
            }
        }
    }

    /// Removes the oldest answered entry; false when there is none.
    fn evict_oldest_answered(&mut self) -> bool {
        let mut skipped = Vec::new();
        let mut removed = false;
        while let Some((key, t)) = self.order.pop_front() {
            match self.entries.get(&key) {
                Some(Entry::Answered { at, .. }) if *at == t => {
                    self.entries.remove(&key);
                    removed = true;
                    break;
                }
                Some(Entry::InProgress { since }) if *since == t => skipped.push((key, t)),
                _ => {}
            }
        }
        for s in skipped.into_iter().rev() {
            self.order.push_front(s);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16, id: u8, a: u8) -> RequestKey {
        RequestKey {
            source: SocketAddr::from(([127, 0, 0, 1], port)),
            identifier: id,
            authenticator: [a; 16],
        }
    }

    #[test]
    fn absorbs_then_replays_unchanged() {
        let t0 = Instant::now();
        let mut c = ReplyCache::new(10, Duration::from_secs(30));
        let k = key(1000, 1, 1);
        assert_eq!(c.begin(k, t0), Lookup::New);
        assert_eq!(c.begin(k, t0 + Duration::from_secs(1)), Lookup::InProgress);
        c.finish(k, vec![1, 2, 3], t0 + Duration::from_secs(2));
        assert_eq!(
            c.begin(k, t0 + Duration::from_secs(3)),
            Lookup::Replay(vec![1, 2, 3])
        );
        // Any part of the key differs: a new request.
        assert_eq!(c.begin(key(1001, 1, 1), t0), Lookup::New);
        assert_eq!(c.begin(key(1000, 2, 1), t0), Lookup::New);
        assert_eq!(c.begin(key(1000, 1, 2), t0), Lookup::New);
    }

    #[test]
    fn answers_expire() {
        let t0 = Instant::now();
        let mut c = ReplyCache::new(10, Duration::from_secs(30));
        let k = key(1000, 1, 1);
        c.begin(k, t0);
        c.finish(k, vec![9], t0 + Duration::from_secs(60));
        // In progress for a long time still counts from the answer.
        assert_eq!(
            c.begin(k, t0 + Duration::from_secs(89)),
            Lookup::Replay(vec![9])
        );
        assert_eq!(c.begin(k, t0 + Duration::from_secs(91)), Lookup::New);
    }

    #[test]
    fn in_progress_never_expires_by_age() {
        let t0 = Instant::now();
        let mut c = ReplyCache::new(10, Duration::from_secs(30));
        let k = key(1000, 1, 1);
        c.begin(k, t0);
        assert_eq!(
            c.begin(k, t0 + Duration::from_secs(100)),
            Lookup::InProgress
        );
    }

    #[test]
    fn bounded_size_evicts_oldest_answer() {
        let t0 = Instant::now();
        let mut c = ReplyCache::new(3, Duration::from_secs(30));
        let busy = key(1, 0, 0);
        c.begin(busy, t0);
        for i in 1..=5u8 {
            let k = key(2, i, i);
            assert_eq!(c.begin(k, t0), Lookup::New);
            c.finish(k, vec![i], t0);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.begin(busy, t0), Lookup::InProgress);
        assert_eq!(c.begin(key(2, 5, 5), t0), Lookup::Replay(vec![5]));
        assert_eq!(c.begin(key(2, 1, 1), t0), Lookup::New);
    }

    #[test]
    fn abandon_allows_a_fresh_try() {
        let t0 = Instant::now();
        let mut c = ReplyCache::new(3, Duration::from_secs(30));
        let k = key(1, 1, 1);
        c.begin(k, t0);
        c.abandon(&k);
        assert_eq!(c.begin(k, t0), Lookup::New);
    }
}
