//! Self-service password reset of the Security info page's password: the
//! fixed security questions, how answers are normalised before they are
//! hashed, the emailed code's shape and life, and how many proofs a reset
//! needs.
//!
//! Password-reset methods (a registered email address, security
//! questions) are kept apart from the verification methods: they never
//! count as a second factor for PAM, RADIUS or the page's sign-in. The
//! two-step methods prove the user for a reset too
//! ([`crate::methods`]' table), each as the [`ProofKind`] of its device:
//!
//! | proof kind | ways ([`ProofWay`]) | from |
//! |---|---|---|
//! | [`ProofKind::App`] | a typed code, an approved push (number matching) | authenticator app (code, notification); temporary access and backup codes |
//! | [`ProofKind::Phone`] | a code by text message or call | text message, phone call methods |
//! | [`ProofKind::SecurityKey`] | a WebAuthn assertion | security keys |
//! | [`ProofKind::Email`] | an emailed code | the registered address |
//! | [`ProofKind::Questions`] | the answers | security questions |
//!
//! A reset needs one proof per kind, two kinds at most
//! ([`proofs_needed`]); disabled and pending methods never count.

use crate::api::MethodKind;
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

/// The kinds of proof a password reset takes: categories of evidence, so
/// that one device never counts twice (an authenticator app's code and its
/// push approval are one kind; a text message and a call to the same
/// phone are one kind). [`proofs_needed`] asks for distinct kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProofKind {
    /// A code sent to the registered email address.
    Email,
    /// The answers to the user's security questions.
    Questions,
    /// The authenticator app: a typed code (also a temporary access code
    /// or a backup code, checked by the registry's verification) or an
    /// approved push with number matching.
    App,
    /// A code sent by text message or call to a registered phone.
    Phone,
    /// A WebAuthn assertion by a registered security key.
    SecurityKey,
}

impl ProofKind {
    /// Every kind, in the order the pages offer them.
    pub const ALL: [ProofKind; 5] = [
        ProofKind::App,
        ProofKind::Phone,
        ProofKind::SecurityKey,
        ProofKind::Email,
        ProofKind::Questions,
    ];

    /// Its name in the database and the audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Questions => "questions",
            Self::App => "app",
            Self::Phone => "phone",
            Self::SecurityKey => "security_key",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind of evidence a two-step method of `kind` gives.
    pub fn of_method(kind: MethodKind) -> Self {
        match kind {
            MethodKind::Totp | MethodKind::Push => Self::App,
            MethodKind::Sms | MethodKind::Voice => Self::Phone,
            MethodKind::SecurityKey => Self::SecurityKey,
        }
    }

    /// In words, for "Done: …" on the choose page.
    pub fn words(self) -> &'static str {
        match self {
            Self::Email => "emailed code",
            Self::Questions => "security questions",
            Self::App => "authenticator app",
            Self::Phone => "phone code",
            Self::SecurityKey => "security key",
        }
    }
}

/// One way of giving a proof, as the choose page offers it: several ways
/// may give the same [`ProofKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProofWay {
    /// A typed code from the authenticator app (or a temporary access or
    /// backup code).
    AppCode,
    /// A push approved in the app, with number matching.
    AppPush,
    /// A code sent by text message.
    Text,
    /// A code read out by a phone call.
    Call,
    /// A security key.
    SecurityKey,
    /// An emailed code.
    Email,
    /// The security questions.
    Questions,
}

impl ProofWay {
    /// Every way, in the order the choose page lists them.
    pub const ALL: [ProofWay; 7] = [
        ProofWay::AppPush,
        ProofWay::AppCode,
        ProofWay::Text,
        ProofWay::Call,
        ProofWay::SecurityKey,
        ProofWay::Email,
        ProofWay::Questions,
    ];

    /// The kind of evidence it gives.
    pub fn kind(self) -> ProofKind {
        match self {
            Self::AppCode | Self::AppPush => ProofKind::App,
            Self::Text | Self::Call => ProofKind::Phone,
            Self::SecurityKey => ProofKind::SecurityKey,
            Self::Email => ProofKind::Email,
            Self::Questions => ProofKind::Questions,
        }
    }

    /// Whether this registry can take it at all: `available` says what
    /// is configured. Questions, app codes and pushes need nothing.
    pub fn available(self, available: &Available) -> bool {
        match self {
            Self::Email => available.email,
            Self::Text => available.sms,
            Self::Call => available.voice,
            Self::SecurityKey => available.security_keys,
            Self::AppCode | Self::AppPush | Self::Questions => true,
        }
    }
}

/// What the registry is configured to send or check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Available {
    /// `[api.smtp]` is set.
    pub email: bool,
    /// `[api.sms]` is set.
    pub sms: bool,
    /// `[api.voice]` is set.
    pub voice: bool,
    /// Security keys are configured (a WebAuthn relying party).
    pub security_keys: bool,
}

/// What a user registered that could prove them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registered {
    /// Kinds of their enabled, confirmed two-step methods (a disabled or
    /// pending method is not in the list).
    pub methods: Vec<MethodKind>,
    /// A temporary access code is open, or backup codes are left beside
    /// a method: typed like an app code.
    pub recovery_code: bool,
    /// A proven email address.
    pub email: bool,
    /// At least [`QUESTIONS_NEEDED`] answered security questions.
    pub questions: bool,
}

/// The ways a user who registered `r` can prove themselves here.
pub fn ways_of(r: &Registered, available: &Available) -> BTreeSet<ProofWay> {
    let has = |k: MethodKind| r.methods.contains(&k);
    let mut w = BTreeSet::new();
    if has(MethodKind::Totp) || r.recovery_code {
        w.insert(ProofWay::AppCode);
    }
    if has(MethodKind::Push) {
        w.insert(ProofWay::AppPush);
    }
    if has(MethodKind::Sms) {
        w.insert(ProofWay::Text);
    }
    if has(MethodKind::Voice) {
        w.insert(ProofWay::Call);
    }
    if has(MethodKind::SecurityKey) {
        w.insert(ProofWay::SecurityKey);
    }
    if r.email {
        w.insert(ProofWay::Email);
    }
    if r.questions {
        w.insert(ProofWay::Questions);
    }
    w.retain(|x| x.available(available));
    w
}

/// The kinds the ways `ways` give.
pub fn kinds_of(ways: &BTreeSet<ProofWay>) -> BTreeSet<ProofKind> {
    ways.iter().map(|w| w.kind()).collect()
}

/// The ways offered for a name that cannot be reset (unknown, disabled,
/// no page password), so that its choose page looks like a user's: each
/// way the registry can take is in or out by one bit of `mac` (a keyed
/// MAC of the name, so the same name gets the same ways at every visit
/// and the set cannot be told from a real user's); never empty (the
/// questions, when no bit was set).
pub fn decoy_ways(mac: &[u8], available: &Available) -> BTreeSet<ProofWay> {
    let bit = |i: usize| mac.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
    let mut w: BTreeSet<ProofWay> = ProofWay::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, x)| x.available(available) && bit(*i))
        .map(|(_, x)| x)
        .collect();
    if w.is_empty() {
        w.insert(ProofWay::Questions);
    }
    w
}

/// The ways the choose page offers: those of `ways` whose kind is not
/// proven yet, in the page's order.
pub fn ways_left(ways: &BTreeSet<ProofWay>, passed: &BTreeSet<ProofKind>) -> Vec<ProofWay> {
    ProofWay::ALL
        .into_iter()
        .filter(|w| ways.contains(w) && !passed.contains(&w.kind()))
        .collect()
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
    fn one_device_is_one_kind_and_disabled_methods_never_count() {
        use MethodKind as M;
        let all = Available {
            email: true,
            sms: true,
            voice: true,
            security_keys: true,
        };
        // An app's code and its push are one kind, as are a text message
        // and a call: two ways of one device never complete a reset alone.
        let r = Registered {
            methods: vec![M::Totp, M::Push, M::Sms, M::Voice],
            ..Registered::default()
        };
        let ways = ways_of(&r, &all);
        assert_eq!(
            ways_left(&ways, &BTreeSet::new()),
            vec![
                ProofWay::AppPush,
                ProofWay::AppCode,
                ProofWay::Text,
                ProofWay::Call
            ]
        );
        let kinds = kinds_of(&ways);
        assert_eq!(kinds, set(&[ProofKind::App, ProofKind::Phone]));
        assert_eq!(proofs_needed(&kinds), Some(2));
        assert!(!reset_complete(&kinds, &set(&[ProofKind::App])));
        assert!(reset_complete(
            &kinds,
            &set(&[ProofKind::App, ProofKind::Phone])
        ));
        // Once the app is proven, neither of its ways is offered again.
        assert_eq!(
            ways_left(&ways, &set(&[ProofKind::App])),
            vec![ProofWay::Text, ProofWay::Call]
        );
        // A push device alone: one proof.
        let push = Registered {
            methods: vec![M::Push],
            ..Registered::default()
        };
        assert_eq!(kinds_of(&ways_of(&push, &all)), set(&[ProofKind::App]));
        // A security key and questions: two kinds.
        let key = Registered {
            methods: vec![M::SecurityKey],
            questions: true,
            ..Registered::default()
        };
        assert_eq!(
            kinds_of(&ways_of(&key, &all)),
            set(&[ProofKind::SecurityKey, ProofKind::Questions])
        );
        // What the registry cannot send or check is never offered or
        // required: a phone without a gateway, a key without WebAuthn.
        let none = Available::default();
        let phone_key = Registered {
            methods: vec![M::Sms, M::SecurityKey],
            questions: true,
            ..Registered::default()
        };
        assert_eq!(
            kinds_of(&ways_of(&phone_key, &none)),
            set(&[ProofKind::Questions])
        );
        // Disabled or pending methods are not in `methods`: nothing.
        assert_eq!(
            proofs_needed(&kinds_of(&ways_of(&Registered::default(), &all))),
            None
        );
        // Temporary access / backup codes are typed like app codes.
        let tap = Registered {
            recovery_code: true,
            ..Registered::default()
        };
        assert_eq!(ways_of(&tap, &all), [ProofWay::AppCode].into());
        for m in MethodKind::ALL {
            assert!(ProofWay::ALL
                .iter()
                .any(|w| w.kind() == ProofKind::of_method(m)));
        }
    }

    #[test]
    fn decoys_are_stable_never_empty_and_only_what_is_configured() {
        let all = Available {
            email: true,
            sms: true,
            voice: true,
            security_keys: true,
        };
        let a = decoy_ways(&[0b0101_0110, 0xff], &all);
        assert_eq!(a, decoy_ways(&[0b0101_0110, 0xff], &all));
        assert_eq!(
            a,
            [
                ProofWay::AppCode,
                ProofWay::Text,
                ProofWay::SecurityKey,
                ProofWay::Questions
            ]
            .into()
        );
        assert_eq!(decoy_ways(&[0], &all), [ProofWay::Questions].into());
        let everything = decoy_ways(&[0xff], &all);
        assert_eq!(everything.len(), ProofWay::ALL.len());
        // Nothing the registry is not configured for.
        let few = decoy_ways(&[0xff], &Available::default());
        assert_eq!(
            few,
            [ProofWay::AppPush, ProofWay::AppCode, ProofWay::Questions].into()
        );
        // Over many names every set of ways a user could have turns up.
        let mut seen = BTreeSet::new();
        for b in 0..=255u8 {
            seen.insert(decoy_ways(&[b], &all));
        }
        assert!(seen.len() > 100, "{}", seen.len());
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
