//! TOTP (RFC 6238) verification with a skew window and the replay rule.
//!
//! The arithmetic (HMAC-SHA1 and dynamic truncation, RFC 4226 §5.3) is
//! totp-rs's; what is ours is the window, the replay rule and the constant-
//! time comparison. This runs inside the registry, where the secrets are.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Totp};

/// Length of a newly generated secret, in bytes (160 bits, RFC 4226 §4 R6).
pub const SECRET_BYTES: usize = 20;

/// RFC 6238 parameters. Only SHA-1 is used: it is what every authenticator
/// app supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    /// Code length in digits (RFC 4226 §5.3). Default 6.
    pub digits: u32,
    /// Time step X, in seconds (RFC 6238 §4.1). Default 30.
    pub step_seconds: u64,
    /// T0, the Unix time to start counting steps from, in seconds. Default 0.
    pub t0: u64,
    /// Time steps accepted either side of the current one (RFC 6238 §5.2). Default 1.
    pub skew_steps: u8,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            digits: 6,
            step_seconds: 30,
            t0: 0,
            skew_steps: 1,
        }
    }
}

impl TotpParams {
    /// The time step counter T for `unix_time` (RFC 6238 §4.2).
    pub fn time_step(&self, unix_time: u64) -> u64 {
        unix_time.saturating_sub(self.t0) / self.step_seconds.max(1)
    }
}

/// Outcome of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code matches time step `step`, which is newer than the last accepted one.
    Match {
        /// The matched time step T; record it as the method's last accepted step.
        step: u64,
    },
    /// The code matches a time step that is not newer than the last accepted one.
    Replay,
    /// The code matches no step in the window (or is malformed).
    NoMatch,
}

/// Digits in the codes the registry issues and every front end asks for
/// (RFC 4226 §5.3 with `Digit = 6`).
pub const CODE_DIGITS: u32 = 6;

/// Whether `code` has the shape of a code: exactly `digits` ASCII digits.
pub fn is_well_formed(code: &str, digits: u32) -> bool {
    code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` has the shape of a code as the registry issues them: exactly
/// [`CODE_DIGITS`] ASCII digits. Front ends refuse anything else as a wrong
/// try without asking the registry; the registry refuses it with a 400.
pub fn is_code_format(s: &str) -> bool {
    is_well_formed(s, CODE_DIGITS)
}

/// The code for time step `step`.
pub fn code_for_step(secret: &[u8], step: u64, params: &TotpParams) -> String {
    // totp-rs works from a Unix time; the first second of the step gives it.
    let time = params.t0 + step * params.step_seconds;
    totp(secret, params).generate(time).to_string()
}

/// The code shown at `unix_time` (seconds).
pub fn code_at(secret: &[u8], unix_time: u64, params: &TotpParams) -> String {
    code_for_step(secret, params.time_step(unix_time), params)
}

fn totp(secret: &[u8], params: &TotpParams) -> Totp {
    // build_noncompliant: the 128-bit minimum of RFC 4226 §4 R6 is enforced
    // at enrolment (we generate 160 bits). Digits are clamped to 6..=9 and
    // the step to at least 1 s, the ranges in which totp-rs cannot panic.
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(params.digits.clamp(6, 9) as u8)
        .with_step_duration(params.step_seconds.max(1))
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

/// Checks `code` against the window `[T - skew, T + skew]` around
/// `unix_time`, refusing steps not newer than `last_step` (the last accepted
/// step of this method, if any).
///
/// Every step of the window is computed and compared in constant time, so
/// the time taken does not depend on where (or whether) the code matched.
/// The caller must record the returned step atomically with its own check
/// of `last_step` (the registry does it in one `UPDATE ... WHERE`).
pub fn check(
    secret: &[u8],
    code: &str,
    unix_time: u64,
    last_step: Option<u64>,
    params: &TotpParams,
) -> TotpCheck {
    if !is_well_formed(code, params.digits) {
        return TotpCheck::NoMatch;
    }
    let now = params.time_step(unix_time);
    let skew = u64::from(params.skew_steps);
    let mut newest_fresh: Option<u64> = None;
    let mut replayed = false;
    for step in now.saturating_sub(skew)..=now.saturating_add(skew) {
        let expected = code_for_step(secret, step, params);
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if equal {
            if last_step.is_some_and(|last| step <= last) {
                replayed = true;
            } else {
                newest_fresh = Some(newest_fresh.map_or(step, |s: u64| s.max(step)));
            }
        }
    }
    match (newest_fresh, replayed) {
        (Some(step), _) => TotpCheck::Match { step },
        (None, true) => TotpCheck::Replay,
        (None, false) => TotpCheck::NoMatch,
    }
}

/// A new random secret of [`SECRET_BYTES`] bytes from the OS generator.
pub fn generate_secret() -> [u8; SECRET_BYTES] {
    use rand::RngCore;
    let mut secret = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret in RFC 4648 base32, without padding, as authenticator apps take it.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The Key URI for authenticator apps:
/// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`.
///
/// Issuer and account are percent-encoded (space as `%20`, `@` as `%40`,
/// `:` as `%3A`), which is what Google Authenticator, Microsoft
/// Authenticator, FreeOTP and Aegis all decode. (totp-rs's own `get_url`
/// leaves out the parameters some apps need and refuses `:` in names.)
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8], params: &TotpParams) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    // Everything but RFC 3986 unreserved characters is encoded.
    const SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let issuer_enc = utf8_percent_encode(issuer, SET).to_string();
    let account_enc = utf8_percent_encode(account, SET).to_string();
    format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={}&period={}",
        secret_base32(secret),
        params.digits,
        params.step_seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed is the ASCII "12345678901234567890".
    const RFC_SEED: &[u8] = b"12345678901234567890";

    fn eight_digits() -> TotpParams {
        TotpParams {
            digits: 8,
            ..TotpParams::default()
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let vectors: [(u64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let p = eight_digits();
        for (time, expected) in vectors {
            assert_eq!(code_at(RFC_SEED, time, &p), expected, "T = {time}");
            assert_eq!(
                check(RFC_SEED, expected, time, None, &p),
                TotpCheck::Match {
                    step: p.time_step(time)
                },
                "T = {time}"
            );
        }
    }

    #[test]
    fn rfc6238_time_step_values() {
        // Appendix B's T column (hex).
        let p = TotpParams::default();
        assert_eq!(p.time_step(59), 0x1);
        assert_eq!(p.time_step(1_111_111_109), 0x23523EC);
        assert_eq!(p.time_step(1_234_567_890), 0x273EF07);
        assert_eq!(p.time_step(20_000_000_000), 0x27BC86AA);
    }

    #[test]
    fn skew_window_edges() {
        let p = TotpParams::default();
        let t = 1_700_000_025; // 15 s into a step (1_700_000_010 starts one)
        let now = p.time_step(t);
        for (delta, ok) in [
            (-31i64, true),
            (31, true),
            (-61, false),
            (61, false),
            (0, true),
        ] {
            let shown = code_at(RFC_SEED, (t as i64 + delta) as u64, &p);
            let got = check(RFC_SEED, &shown, t, None, &p);
            assert_eq!(
                matches!(got, TotpCheck::Match { .. }),
                ok,
                "delta {delta}: {got:?}"
            );
        }
        let prev = code_for_step(RFC_SEED, now - 1, &p);
        assert_eq!(
            check(RFC_SEED, &prev, t, None, &p),
            TotpCheck::Match { step: now - 1 }
        );
    }

    #[test]
    fn replay_rule() {
        let p = TotpParams::default();
        let t = 1_700_000_000;
        let now = p.time_step(t);
        let code = code_at(RFC_SEED, t, &p);
        assert_eq!(check(RFC_SEED, &code, t, Some(now), &p), TotpCheck::Replay);
        assert_eq!(
            check(RFC_SEED, &code, t, Some(now + 1), &p),
            TotpCheck::Replay
        );
        assert_eq!(
            check(RFC_SEED, &code, t, Some(now - 1), &p),
            TotpCheck::Match { step: now }
        );
        // An older code after a newer one was accepted is refused too.
        let older = code_for_step(RFC_SEED, now - 1, &p);
        assert_eq!(check(RFC_SEED, &older, t, Some(now), &p), TotpCheck::Replay);
    }

    #[test]
    fn malformed_codes_never_match() {
        let p = TotpParams::default();
        let t = 1_700_000_000;
        let code = code_at(RFC_SEED, t, &p);
        for bad in ["", "12345", "1234567", "12a456", " 123456", "１２３４５６"] {
            assert_eq!(
                check(RFC_SEED, bad, t, None, &p),
                TotpCheck::NoMatch,
                "{bad:?}"
            );
        }
        assert_eq!(
            check(RFC_SEED, &format!("{code} "), t, None, &p),
            TotpCheck::NoMatch
        );
        assert!(is_well_formed("000000", 6));
        assert!(!is_well_formed("00000", 6));
    }

    #[test]
    fn otpauth_uri_encodes_labels() {
        let p = TotpParams::default();
        let uri = otpauth_uri("Example Corp", "alice smith@example.com", RFC_SEED, &p);
        assert_eq!(
            uri,
            "otpauth://totp/Example%20Corp:alice%20smith%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Corp&algorithm=SHA1&digits=6&period=30"
        );
        let uri = otpauth_uri("a:b", "c", RFC_SEED, &p);
        assert!(uri.starts_with("otpauth://totp/a%3Ab:c?"), "{uri}");
    }

    #[test]
    fn generated_secrets_are_160_bits_and_differ() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert_eq!(secret_base32(&a).len(), 32);
    }
}
