//! Temporary access codes: what a help desk hands a user who lost or
//! replaced their phone, accepted wherever a second factor is asked (the
//! PAM prompt, the RADIUS password field or Access-Challenge, the Security
//! info page's sign-in) until it expires or is used up.
//!
//! A code is [`TAP_CHARS`] characters from [`TAP_ALPHABET`] (no `0`/`O`,
//! `1`/`I`/`L`, `U`/`V` to mix up when read out over the phone), about
//! 57 bits, shown in groups of four (`K7QM-3XHD-W9PR`). The registry keeps
//! only an Argon2id hash. What the user types is normalised first: case
//! ignored, dashes and spaces dropped ([`normalise_tap`]), so the typed
//! form never needs to match the shown one.
//!
//! Backup codes: a set of [`BACKUP_CODES`] single-use codes of
//! [`BACKUP_CODE_DIGITS`] digits (shown once as `1234 5678`) a user keeps
//! on paper as a fallback; typed where a code goes, spaces and dashes
//! ignored ([`normalise_backup_code`]). A new set voids the old one.
//!
//! [`is_second_factor_format`] is the one shape check of the front ends: a
//! 6-digit code, a backup code or a temporary access code; anything else
//! is a wrong try that never reaches the registry.

use crate::totp::is_code_format;
use rand::Rng;

/// The characters of a temporary access code: digits and capitals without
/// the ones easily mixed up (`0 O 1 I L U V`).
pub const TAP_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTWXYZ";

/// Characters of an issued code (at least 12, as the issue of a code
/// promises; 12 from 29 symbols is 58 bits).
pub const TAP_CHARS: usize = 12;

/// The longest normalised answer still taken for a code (dashes and spaces
/// excluded), so a long password typed by mistake is not hashed.
const TAP_MAX_CHARS: usize = 32;

/// Default lifetime of a code, in hours.
pub const TAP_DEFAULT_HOURS: u32 = 8;

/// Longest lifetime of a code, in hours (30 days).
pub const TAP_MAX_HOURS: u32 = 30 * 24;

/// Most uses a code may be issued for.
pub const TAP_MAX_USES: u32 = 100;

/// Codes in a set of backup codes.
pub const BACKUP_CODES: usize = 10;

/// Digits of a backup code.
pub const BACKUP_CODE_DIGITS: usize = 8;

/// A new set of [`BACKUP_CODES`] distinct backup codes (digits only), from
/// the OS's CSPRNG.
pub fn generate_backup_codes() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    let mut out: Vec<String> = Vec::with_capacity(BACKUP_CODES);
    while out.len() < BACKUP_CODES {
        let c = format!("{:08}", rng.gen_range(0..100_000_000u32));
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// A backup code as shown: `12345678` → `1234 5678`.
pub fn display_backup_code(code: &str) -> String {
    match code.split_at_checked(4) {
        Some((a, b)) => format!("{a} {b}"),
        None => code.to_owned(),
    }
}

/// What the user typed as a backup code, normalised: spaces and dashes
/// dropped; `None` unless exactly [`BACKUP_CODE_DIGITS`] ASCII digits.
pub fn normalise_backup_code(typed: &str) -> Option<String> {
    let s: String = typed.chars().filter(|c| *c != ' ' && *c != '-').collect();
    (s.len() == BACKUP_CODE_DIGITS && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// A new random code, normalised (no dashes), from the OS's CSPRNG.
pub fn generate_tap() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..TAP_CHARS)
        .map(|_| char::from(TAP_ALPHABET[rng.gen_range(0..TAP_ALPHABET.len())]))
        .collect()
}

/// `code` in groups of four joined by dashes, as shown to the admin:
/// `K7QM3XHDW9PR` → `K7QM-3XHD-W9PR`.
pub fn display_tap(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// What the user typed as a code, normalised: ASCII letters upper-cased,
/// dashes and spaces dropped. `None` when the result is not a temporary
/// access code's shape (only [`TAP_ALPHABET`], [`TAP_CHARS`]..=32 long).
pub fn normalise_tap(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let shaped = (TAP_CHARS..=TAP_MAX_CHARS).contains(&s.len())
        && s.bytes().all(|b| TAP_ALPHABET.contains(&b));
    shaped.then_some(s)
}

/// Whether `typed` has the shape of a temporary access code.
pub fn is_tap_format(typed: &str) -> bool {
    normalise_tap(typed).is_some()
}

/// What the user typed as an app's code, normalised: spaces dropped
/// (`123 456`, as some apps show it); `None` unless then exactly
/// [`crate::totp::CODE_DIGITS`] ASCII digits.
pub fn normalise_code(typed: &str) -> Option<String> {
    let s: String = typed.chars().filter(|c| *c != ' ').collect();
    is_code_format(&s).then_some(s)
}

/// Whether `typed` can be a second factor at all: a 6-digit code
/// ([`is_code_format`]) or a temporary access code ([`is_tap_format`]).
/// Front ends send nothing else to the registry.
pub fn is_second_factor_format(typed: &str) -> bool {
    normalise_code(typed).is_some()
        || is_tap_format(typed)
        || normalise_backup_code(typed).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_shape() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let c = generate_tap();
            assert_eq!(c.len(), TAP_CHARS);
            assert!(is_tap_format(&c), "{c}");
            assert!(!is_code_format(&c));
            assert!(seen.insert(c));
        }
    }

    #[test]
    fn alphabet_has_no_lookalikes() {
        for b in b"01OILUV" {
            assert!(!TAP_ALPHABET.contains(b), "{}", char::from(*b));
        }
        assert_eq!(TAP_ALPHABET.len(), 29);
    }

    #[test]
    fn typed_forms_normalise() {
        assert_eq!(display_tap("K7QM3XHDW9PR"), "K7QM-3XHD-W9PR");
        let want = Some("K7QM3XHDW9PR".to_owned());
        assert_eq!(normalise_tap("K7QM-3XHD-W9PR"), want);
        assert_eq!(normalise_tap("k7qm 3xhd w9pr"), want);
        assert_eq!(normalise_tap("k7qm3xhdw9pr"), want);
        // Too short, a look-alike, another character, too long.
        assert_eq!(normalise_tap("K7QM-3XHD-W9P"), None);
        assert_eq!(normalise_tap("K7QM-3XHD-W9P0"), None);
        assert_eq!(normalise_tap("K7QM-3XHD-W9P!"), None);
        assert_eq!(normalise_tap(&"A".repeat(33)), None);
        assert_eq!(normalise_tap(""), None);
    }

    #[test]
    fn backup_codes() {
        let set = generate_backup_codes();
        assert_eq!(set.len(), BACKUP_CODES);
        for c in &set {
            assert_eq!(normalise_backup_code(c).as_deref(), Some(c.as_str()));
            assert!(is_second_factor_format(&display_backup_code(c)));
        }
        assert_eq!(display_backup_code("12345678"), "1234 5678");
        assert_eq!(
            normalise_backup_code("1234 5678").as_deref(),
            Some("12345678")
        );
        assert_eq!(
            normalise_backup_code("1234-5678").as_deref(),
            Some("12345678")
        );
        assert_eq!(normalise_backup_code("1234567"), None);
        assert_eq!(normalise_backup_code("123456789"), None);
        assert_eq!(normalise_backup_code("1234567a"), None);
        // A TOTP code is not a backup code, nor the reverse.
        assert_eq!(normalise_backup_code("123456"), None);
        assert!(!is_code_format("12345678"));
    }

    #[test]
    fn second_factor_shapes() {
        assert!(is_second_factor_format("123456"));
        assert!(is_second_factor_format("123 456"));
        assert_eq!(normalise_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalise_code("12 345"), None);
        assert!(is_second_factor_format("K7QM-3XHD-W9PR"));
        assert!(!is_second_factor_format("12345"));
        assert!(!is_second_factor_format("hunter2"));
        // 12 digits would be a TAP shape only if digits 0/1 were allowed.
        assert!(!is_second_factor_format("123456789012"));
    }
}
