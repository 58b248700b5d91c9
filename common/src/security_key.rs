//! Security keys (WebAuthn / FIDO2) as the Security info page uses them:
//! the name a user gives a key, and what the page says when the browser
//! or the key refused a ceremony. The ceremonies themselves (challenges,
//! signatures, counters) are checked in the registry with `webauthn-rs`.

/// Longest name of a key, in characters.
pub const LABEL_MAX_CHARS: usize = 40;

/// A name for a key: trimmed, 1 to [`LABEL_MAX_CHARS`] characters, no
/// control characters.
///
/// # Errors
/// What to tell the user.
pub fn check_label(label: &str) -> Result<String, &'static str> {
    let label = label.trim();
    if label.is_empty() {
        return Err("Give your security key a name, such as \u{201c}YubiKey 5\u{201d}, so you can tell your keys apart.");
    }
    if label.chars().count() > LABEL_MAX_CHARS {
        return Err("That name is too long: use at most 40 characters.");
    }
    if label.chars().any(char::is_control) {
        return Err("Use letters, digits, spaces and punctuation only in the name.");
    }
    Ok(label.to_owned())
}

/// What a ceremony was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    /// Adding a key on Security info.
    Register,
    /// Signing in (or verifying again) with a key.
    Authenticate,
}

/// A browser's refusal of `navigator.credentials.create/get`, by the name
/// of its `DOMException`, as a word for the audit trail and a sentence for
/// the page. `uv_required`: the registry asks keys to verify the user
/// (`user_verification = "required"`).
pub fn browser_refusal(
    name: &str,
    ceremony: Ceremony,
    uv_required: bool,
) -> (&'static str, &'static str) {
    match (name, ceremony) {
        ("InvalidStateError", Ceremony::Register) => (
            "already_registered",
            "This security key is already registered to your account. Use another key, or delete the old entry first.",
        ),
        ("NotAllowedError", _) if uv_required => (
            "not_allowed",
            "The key wasn't used: the request was cancelled or timed out, or the key can't verify you with a PIN or fingerprint, which your organisation requires. Set up a PIN on the key, or use another key, and try again.",
        ),
        ("NotAllowedError", Ceremony::Register) => (
            "not_allowed",
            "The key wasn't used: the request was cancelled or timed out. Try again and touch your key when it blinks.",
        ),
        ("NotAllowedError", Ceremony::Authenticate) => (
            "not_allowed",
            "The key wasn't used: the request was cancelled or timed out, or this key isn't one registered to your account. Try again, or choose another way to sign in.",
        ),
        ("ConstraintError", _) => (
            "constraint",
            "This security key can't verify you with a PIN or fingerprint, which your organisation requires. Use a key with a PIN or fingerprint set up.",
        ),
        ("NotSupportedError", _) => (
            "not_supported",
            "This browser can't use security keys. Use an up-to-date browser, or choose another method.",
        ),
        ("SecurityError", _) => (
            "security_error",
            "The browser refused security keys for this address. Open the page at the address your administrator gave you; if that is the one, tell your administrator (the registry's WebAuthn origin doesn't match).",
        ),
        ("AbortError", _) => (
            "aborted",
            "The request to your key was stopped. Try again.",
        ),
        _ => (
            "browser_error",
            "Your browser couldn't use the security key. Try again, or use another browser.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_trimmed_bounded_and_printable() {
        assert_eq!(check_label("  YubiKey 5 ").unwrap(), "YubiKey 5");
        assert_eq!(check_label(&"é".repeat(40)).unwrap(), "é".repeat(40));
        assert!(check_label("").unwrap_err().contains("YubiKey"));
        assert!(check_label("   ").is_err());
        assert!(check_label(&"x".repeat(41)).unwrap_err().contains("40"));
        assert!(check_label("a\u{7}b").is_err());
    }

    #[test]
    fn refusals_say_what_happened() {
        let (word, text) = browser_refusal("InvalidStateError", Ceremony::Register, false);
        assert_eq!(word, "already_registered");
        assert!(text.contains("already registered"));
        let (_, text) = browser_refusal("NotAllowedError", Ceremony::Register, true);
        assert!(text.contains("PIN"), "{text}");
        let (_, text) = browser_refusal("NotAllowedError", Ceremony::Register, false);
        assert!(!text.contains("PIN"), "{text}");
        let (_, text) = browser_refusal("NotAllowedError", Ceremony::Authenticate, false);
        assert!(text.contains("registered to your account"), "{text}");
        assert_eq!(
            browser_refusal("<script>", Ceremony::Authenticate, false).0,
            "browser_error"
        );
    }
}
