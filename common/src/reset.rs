//! Self-service password reset of the Security info page's password: the
//! fixed security questions, how answers are normalised before they are
//! hashed, the emailed code's shape and life, and how many proofs a reset
//! needs.
//!
//! Password-reset methods (a registered email address, security
//! questions) are kept apart from the verification methods: they never
//! count as a second factor for PAM, RADIUS or the page's sign-in.

use std::collections::BTreeSet;

/// The questions a user picks from, by index (the registry stores the
/// index). The list only grows: an index keeps its question.
pub const QUESTIONS: &[&str] = &[
    "What was the name of your first pet?",
    "In what city were you born?",
    "What was the name of your first school?",
    "What was the make of your first car?",
    "What is your oldest cousin's first name?",
    "In what city did your parents meet?",
    "What was your childhood nickname?",
    "What was the first concert you went to?",
    "What street did you live on as a child?",
    "What was the name of your favourite teacher?",
];

/// Security questions a user must answer to register them, and that a
/// reset asks.
pub const QUESTIONS_NEEDED: usize = 3;
/// Shortest normalised answer, in characters.
pub const MIN_ANSWER_CHARS: usize = 2;
/// Longest answer accepted, in bytes (hashing cost is bounded).
pub const MAX_ANSWER_BYTES: usize = 200;
/// Digits of an emailed code.
pub const EMAIL_CODE_DIGITS: usize = 6;
/// Life of an emailed code, in seconds (15 minutes).
pub const EMAIL_CODE_LIFETIME_SECS: i64 = 900;
/// Wrong tries one emailed code takes before it stops working.
pub const EMAIL_CODE_TRIES: i64 = 5;
/// Life of a password reset in progress (from the username to the new
/// password), in seconds (30 minutes).
pub const RESET_LIFETIME_SECS: i64 = 1800;
/// Longest email address accepted, in bytes (RFC 5321 §4.5.3.1.3).
pub const MAX_EMAIL_BYTES: usize = 254;

/// The kinds of proof a password reset takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProofKind {
    /// A code sent to the registered email address.
    Email,
    /// The answers to the user's security questions.
    Questions,
    /// A code from a two-step method (authenticator app, temporary access
    /// code, backup code), checked by the registry's verification.
    App,
}

impl ProofKind {
    /// Every kind, in the order the pages offer them.
    pub const ALL: [ProofKind; 3] = [ProofKind::Email, ProofKind::Questions, ProofKind::App];

    /// Its name in the database and the audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Questions => "questions",
            Self::App => "app",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Proofs a reset needs from a user who registered `kinds`: one per kind,
/// at most two. A user with no kind (or an unknown user) can never reset:
/// `None`.
pub fn proofs_needed(kinds: &BTreeSet<ProofKind>) -> Option<usize> {
    match kinds.len() {
        0 => None,
        n => Some(n.min(2)),
    }
}

/// Whether `passed` (distinct kinds, each proven once) completes a reset
/// for a user who registered `kinds`: enough of them, each one of the
/// user's own kinds.
pub fn reset_complete(kinds: &BTreeSet<ProofKind>, passed: &BTreeSet<ProofKind>) -> bool {
    proofs_needed(kinds).is_some_and(|n| passed.intersection(kinds).count() >= n)
}

/// An answer as it is hashed and compared: trimmed, case-folded (Unicode
/// lowercase after NFKC, so "É" and "é", full-width and plain letters
/// agree), inner runs of whitespace collapsed to one space.
pub fn normalise_answer(typed: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = typed.nfkc().flat_map(char::to_lowercase).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks an answer being registered.
///
/// # Errors
/// One sentence for the person typing it.
pub fn check_answer(typed: &str) -> Result<String, &'static str> {
    if typed.len() > MAX_ANSWER_BYTES {
        return Err("Keep each answer under 200 characters.");
    }
    let n = normalise_answer(typed);
    if n.chars().count() < MIN_ANSWER_CHARS {
        return Err("Answer every question (at least 2 characters).");
    }
    Ok(n)
}

/// A new emailed code: [`EMAIL_CODE_DIGITS`] random digits.
pub fn generate_email_code() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..EMAIL_CODE_DIGITS)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// A typed emailed code without spaces, when it has the code's shape.
pub fn normalise_email_code(typed: &str) -> Option<String> {
    let c: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (c.len() == EMAIL_CODE_DIGITS && c.bytes().all(|b| b.is_ascii_digit())).then_some(c)
}

/// Whether an emailed code stored with `expires_at` and `tries_left` may
/// still be tried at `now` (Unix seconds).
pub fn email_code_usable(now: i64, expires_at: i64, tries_left: i64) -> bool {
    now < expires_at && tries_left > 0
}

/// A typed email address, trimmed, when it looks deliverable: one `@`
/// with a local part and a dotted domain, no spaces or angle brackets, at
/// most [`MAX_EMAIL_BYTES`]. The code sent to it is the real check.
pub fn normalise_email(typed: &str) -> Option<String> {
    let a = typed.trim();
    let (local, domain) = a.split_once('@')?;
    let ok = a.len() <= MAX_EMAIL_BYTES
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && a.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\"\\".contains(c));
    ok.then(|| format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// An address for showing on a page that others may see over a shoulder:
/// `a•••••@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••••@{domain}")
        }
        None => "•••••".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &[ProofKind]) -> BTreeSet<ProofKind> {
        k.iter().copied().collect()
    }

    #[test]
    fn two_proofs_when_two_kinds_are_registered() {
        use ProofKind::*;
        assert_eq!(proofs_needed(&set(&[])), None);
        assert_eq!(proofs_needed(&set(&[App])), Some(1));
        assert_eq!(proofs_needed(&set(&[Email, Questions])), Some(2));
        assert_eq!(proofs_needed(&set(&[Email, Questions, App])), Some(2));
        assert!(reset_complete(&set(&[Email]), &set(&[Email])));
        assert!(!reset_complete(&set(&[Email, Questions]), &set(&[Email])));
        assert!(reset_complete(
            &set(&[Email, Questions]),
            &set(&[Email, Questions])
        ));
        assert!(reset_complete(
            &set(&[Email, App, Questions]),
            &set(&[App, Questions])
        ));
        // A proof of a kind the user does not have counts for nothing, and
        // a user without any kind never completes.
        assert!(!reset_complete(
            &set(&[Email, Questions]),
            &set(&[Email, App])
        ));
        assert!(!reset_complete(&set(&[]), &set(&[Email, Questions, App])));
        for k in ProofKind::ALL {
            assert_eq!(ProofKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn answers_are_trimmed_case_folded_and_collapsed() {
        assert_eq!(normalise_answer("  New   York\tCity \n"), "new york city");
        assert_eq!(normalise_answer("ÉCOLE Jean-Jaurès"), "école jean-jaurès");
        assert_eq!(normalise_answer("Ｒｅｘ"), "rex");
        assert_eq!(normalise_answer("e\u{301}cole"), "école");
        assert_eq!(
            check_answer(" x "),
            Err("Answer every question (at least 2 characters).")
        );
        assert!(check_answer(&"a".repeat(201)).is_err());
        assert_eq!(check_answer(" Rex ").as_deref(), Ok("rex"));
    }

    #[test]
    fn email_codes_and_addresses() {
        for _ in 0..50 {
            let c = generate_email_code();
            assert_eq!(c.len(), 6);
            assert_eq!(normalise_email_code(&c).as_deref(), Some(c.as_str()));
        }
        assert_eq!(normalise_email_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalise_email_code("12345"), None);
        assert_eq!(normalise_email_code("12345a"), None);
        assert!(email_code_usable(100, 101, 1));
        assert!(!email_code_usable(101, 101, 1), "expired at its end");
        assert!(!email_code_usable(100, 200, 0), "tries used up");
        assert_eq!(
            normalise_email(" Alice.Smith@Example.COM ").as_deref(),
            Some("Alice.Smith@example.com")
        );
        for bad in [
            "alice",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@example.com>",
            "a@@example.com",
            "a@.com",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
        assert_eq!(mask_email("alice@example.com"), "a•••••@example.com");
    }

    #[test]
    fn questions_are_distinct() {
        let all: BTreeSet<_> = QUESTIONS.iter().collect();
        assert_eq!(all.len(), QUESTIONS.len());
        assert!(QUESTIONS.len() >= 2 * QUESTIONS_NEEDED);
    }
}
