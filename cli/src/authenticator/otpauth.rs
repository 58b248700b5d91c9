//! `otpauth://totp/` URIs (the Key Uri Format every authenticator app
//! reads) and the codes of TOTP accounts (RFC 6238, computed by
//! [`twostep_common::totp`]).

use super::store::{SecretText, TotpAccount};
use crate::output::text;
use percent_encoding::percent_decode_str;
use std::fmt::Write as _;
use twostep_common::totp::{code_at, TotpParams};

/// Shortest secret accepted, in bytes (80 bits: what most issuers send;
/// RFC 4226 §4 asks 128 and twostep's registry issues 160).
pub const MIN_SECRET_BYTES: usize = 10;

/// Code lengths accepted, in digits (RFC 4226 §5.3: 6 to 8 in practice).
pub const DIGITS: std::ops::RangeInclusive<u32> = 6..=8;

/// Time steps accepted, in seconds.
pub const PERIOD_SECS: std::ops::RangeInclusive<u64> = 1..=3600;

/// The parts of an `otpauth://totp/ISSUER:ACCOUNT?secret=...` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpAuth {
    /// `issuer=`, else the label's prefix before `:`.
    pub issuer: Option<String>,
    /// The label's account name.
    pub account: String,
    /// The secret, base32 (RFC 4648) without padding, upper case.
    pub secret: SecretText,
    /// Code length.
    pub digits: u32,
    /// Time step X, in seconds.
    pub period: u64,
}

impl OtpAuth {
    /// The default local name: `ISSUER:ACCOUNT`, or `ACCOUNT`.
    pub fn default_name(&self) -> String {
        match &self.issuer {
            Some(i) => format!("{i}:{}", self.account),
            None => self.account.clone(),
        }
    }

    /// The account to store under `name`, added at `now` (Unix seconds).
    pub fn into_account(self, name: String, now: i64) -> TotpAccount {
        TotpAccount {
            name,
            issuer: self.issuer,
            account: self.account,
            secret: self.secret,
            digits: self.digits,
            period: self.period,
            added_at: now,
        }
    }
}

/// Parses an `otpauth://totp/` URI: label `ISSUER:ACCOUNT` (or `ACCOUNT`),
/// `secret` (required, base32), `issuer`, `algorithm` (`SHA1` only),
/// `digits` (6 to 8, default 6), `period` (seconds, default 30).
///
/// # Errors
/// A one-line reason naming what is wrong: not an otpauth URI, an HOTP
/// URI, a missing or bad secret, an algorithm other than SHA1, digits or
/// period out of range.
pub fn parse(uri: &str) -> Result<OtpAuth, String> {
    let u = url::Url::parse(uri.trim()).map_err(|e| format!("not a URI ({e})"))?;
    if u.scheme() != "otpauth" {
        return Err(format!(
            "not an otpauth:// or twostep-activate:// URI (scheme {:?})",
            u.scheme()
        ));
    }
    match u.host_str().map(str::to_ascii_lowercase).as_deref() {
        Some("totp") => {}
        Some("hotp") => {
            return Err(
                "HOTP (counter-based, otpauth://hotp/) accounts are not supported: only otpauth://totp/"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "unknown OTP type {:?}: only otpauth://totp/",
                other.unwrap_or("")
            ))
        }
    }
    let label = percent_decode_str(u.path().trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| "the label is not UTF-8".to_owned())?;
    let (label_issuer, account) = match label.split_once(':') {
        Some((i, a)) => (Some(i.trim().to_owned()), a.trim().to_owned()),
        None => (None, label.trim().to_owned()),
    };
    if account.is_empty() {
        return Err(
            "the URI's label has no account name (otpauth://totp/ISSUER:ACCOUNT?...)".into(),
        );
    }
    let mut secret = None;
    let mut issuer = None;
    let mut digits = 6;
    let mut period = 30;
    for (key, value) in u.query_pairs() {
        match key.as_ref() {
            "secret" => secret = Some(SecretText::new(value.into_owned())),
            "issuer" => issuer = Some(value.trim().to_owned()),
            "algorithm" if value.eq_ignore_ascii_case("SHA1") => {}
            "algorithm" => {
                return Err(format!(
                    "algorithm {:?} is not supported: only SHA1 (HMAC-SHA-1, RFC 6238), which every authenticator app computes",
                    text(&value)
                ))
            }
            "digits" => {
                digits = value
                    .parse()
                    .ok()
                    .filter(|d| DIGITS.contains(d))
                    .ok_or_else(|| format!("digits={:?}: must be 6, 7 or 8", text(&value)))?;
            }
            "period" => {
                period = value
                    .parse()
                    .ok()
                    .filter(|p| PERIOD_SECS.contains(p))
                    .ok_or_else(|| {
                        format!(
                            "period={:?}: must be {} to {} seconds",
                            text(&value),
                            PERIOD_SECS.start(),
                            PERIOD_SECS.end()
                        )
                    })?;
            }
            _ => {}
        }
    }
    let secret = secret.ok_or("the URI has no secret= parameter")?;
    let secret = canonical_secret(secret.expose())?;
    Ok(OtpAuth {
        issuer: issuer
            .filter(|i| !i.is_empty())
            .or(label_issuer.filter(|i| !i.is_empty())),
        account,
        secret,
        digits,
        period,
    })
}

/// The secret in upper case without spaces or padding, after checking it
/// decodes as base32 to at least [`MIN_SECRET_BYTES`].
fn canonical_secret(raw: &str) -> Result<SecretText, String> {
    let canonical = SecretText::new(
        raw.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '='))
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    let bytes = zeroize::Zeroizing::new(
        data_encoding::BASE32_NOPAD
            .decode(canonical.expose().as_bytes())
            .map_err(|_| "the secret is not base32 (RFC 4648: letters A-Z and digits 2-7)")?,
    );
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the secret is {} bits; at least {} are needed",
            bytes.len() * 8,
            MIN_SECRET_BYTES * 8
        ));
    }
    Ok(canonical)
}

/// The code of `account` at `unix_time` and the seconds until it changes.
///
/// # Errors
/// A stored secret that is not base32 (a hand-edited file).
pub fn code(account: &TotpAccount, unix_time: u64) -> Result<(String, u64), String> {
    let secret = zeroize::Zeroizing::new(
        data_encoding::BASE32_NOPAD
            .decode(account.secret.expose().as_bytes())
            .map_err(|_| {
                format!(
                    "account {:?}: the stored secret is not base32",
                    account.name
                )
            })?,
    );
    let params = TotpParams {
        digits: account.digits,
        step_seconds: account.period.max(1),
        t0: 0,
        skew_steps: 0,
    };
    let left = params.step_seconds - unix_time % params.step_seconds;
    Ok((code_at(&secret, unix_time, &params), left))
}

/// `codes`: one line per account, `NAME  CODE  Ns left`, names aligned.
///
/// # Errors
/// As [`code`].
pub fn codes_text(accounts: &[&TotpAccount], unix_time: u64) -> Result<String, String> {
    let width = accounts
        .iter()
        .map(|a| text(&a.name).chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for a in accounts {
        let (code, left) = code(a, unix_time)?;
        let _ = writeln!(out, "{:<width$}  {code}  {left:>2}s left", text(&a.name));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890", base32.
    const RFC_SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn parsed(uri: &str) -> OtpAuth {
        parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn err(uri: &str) -> String {
        parse(uri).expect_err(uri)
    }

    #[test]
    fn parses_the_registrys_uri() {
        let p = parsed(&format!(
            "otpauth://totp/Example%20Corp:alice%20smith%40example.com?secret={RFC_SEED_B32}&issuer=Example%20Corp&algorithm=SHA1&digits=6&period=30"
        ));
        assert_eq!(p.issuer.as_deref(), Some("Example Corp"));
        assert_eq!(p.account, "alice smith@example.com");
        assert_eq!(p.secret.expose(), RFC_SEED_B32);
        assert_eq!((p.digits, p.period), (6, 30));
        assert_eq!(p.default_name(), "Example Corp:alice smith@example.com");
    }

    #[test]
    fn defaults_and_lenient_secret_forms() {
        // No issuer, no algorithm/digits/period; lower case, padding and
        // spaces as people type secrets.
        let p = parsed(
            "otpauth://totp/bob?secret=gezd%20gnbv%20gy3t%20qojq%20gezd%20gnbv%20gy3t%20qojq%3D%3D",
        );
        assert_eq!(p.issuer, None);
        assert_eq!(p.account, "bob");
        assert_eq!(p.secret.expose(), RFC_SEED_B32);
        assert_eq!((p.digits, p.period), (6, 30));
        // The issuer comes from the label when there is no parameter.
        let p = parsed(&format!(
            "otpauth://totp/ACME:carol?secret={RFC_SEED_B32}&digits=8&period=60"
        ));
        assert_eq!(p.issuer.as_deref(), Some("ACME"));
        assert_eq!((p.digits, p.period), (8, 60));
    }

    #[test]
    fn refuses_what_it_cannot_compute() {
        let s = RFC_SEED_B32;
        for (uri, words) in [
            ("not a uri".to_owned(), "not a URI"),
            (
                format!("https://example.com/?secret={s}"),
                "not an otpauth://",
            ),
            (format!("otpauth://hotp/x:y?secret={s}&counter=1"), "HOTP"),
            (format!("otpauth://motp/x:y?secret={s}"), "unknown OTP type"),
            ("otpauth://totp/x:y?issuer=x".to_owned(), "no secret"),
            ("otpauth://totp/x:y?secret=1111".to_owned(), "not base32"),
            ("otpauth://totp/x:y?secret=GEZDGNBV".to_owned(), "40 bits"),
            (format!("otpauth://totp/x:?secret={s}"), "no account name"),
            (
                format!("otpauth://totp/x:y?secret={s}&algorithm=SHA256"),
                "algorithm \"SHA256\" is not supported",
            ),
            (
                format!("otpauth://totp/x:y?secret={s}&algorithm=SHA512"),
                "only SHA1",
            ),
            (
                format!("otpauth://totp/x:y?secret={s}&digits=5"),
                "digits=\"5\": must be 6, 7 or 8",
            ),
            (
                format!("otpauth://totp/x:y?secret={s}&digits=10"),
                "must be 6, 7 or 8",
            ),
            (
                format!("otpauth://totp/x:y?secret={s}&period=0"),
                "period=\"0\"",
            ),
            (
                format!("otpauth://totp/x:y?secret={s}&period=abc"),
                "must be 1 to 3600 seconds",
            ),
        ] {
            let e = err(&uri);
            assert!(e.contains(words), "{uri}: {e:?} lacks {words:?}");
        }
        // Algorithm names are matched without case; the secret never
        // appears in an error.
        assert!(parse(&format!("otpauth://totp/x:y?secret={s}&algorithm=sha1")).is_ok());
        assert!(!err(&format!("otpauth://totp/x:y?secret={s}&digits=5")).contains(s));
    }

    fn rfc_account(digits: u32) -> TotpAccount {
        parsed(&format!(
            "otpauth://totp/RFC:6238?secret={RFC_SEED_B32}&digits={digits}"
        ))
        .into_account("rfc6238".into(), 0)
    }

    /// RFC 6238 Appendix B, SHA-1 (the full table is checked in
    /// `twostep_common::totp`); 6 digits are the same truncation modulo
    /// 10^6, and the seconds left count down to the next time step.
    #[test]
    fn codes_match_rfc6238_appendix_b() {
        assert_eq!(code(&rfc_account(8), 59).unwrap(), ("94287082".into(), 1));
        assert_eq!(
            code(&rfc_account(8), 1_111_111_111).unwrap(),
            ("14050471".into(), 29)
        );
        assert_eq!(code(&rfc_account(6), 59).unwrap(), ("287082".into(), 1));
        assert_eq!(
            code(&rfc_account(7), 1_234_567_890).unwrap(),
            ("9005924".into(), 30)
        );
    }

    #[test]
    fn codes_output_lines() {
        let eight = rfc_account(8);
        let mut other = rfc_account(6);
        other.name = "twostep:alice".into();
        let out = codes_text(&[&eight, &other], 59).unwrap();
        assert_eq!(
            out,
            "rfc6238        94287082   1s left\ntwostep:alice  287082   1s left\n"
        );
        // A label that would drive the terminal is escaped.
        other.name = "evil\u{1b}[2J".into();
        assert!(!codes_text(&[&other], 0).unwrap().contains('\u{1b}'));
    }
}
