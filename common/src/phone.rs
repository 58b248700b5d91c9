//! Text-message and phone-call codes: phone numbers (E.164) and how they
//! are shown, the one-time code and its limits, the gateway request's
//! templates, and the words every front end (PAM prompt, RADIUS
//! Reply-Message, the Security info page) uses for them.
//!
//! The registry generates a code per request ([`generate_code`]), keeps
//! only its HMAC, and hands it to the `[api.sms]` / `[api.voice]` gateway
//! ([`twostep_config::GatewayConfig`]); the user types it where an app's
//! code goes and it is verified by the same `POST /v1/host/verify`.

use crate::api::{AuthContext, MethodKind, Registrations};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// Seconds a sent code stays valid.
pub const CODE_LIFETIME_SECS: i64 = 300;
/// Wrong codes typed while a sent code is open before it stops working.
pub const CODE_MAX_TRIES: i64 = 3;
/// Codes sent to one user within [`SEND_WINDOW_SECS`], at most.
pub const MAX_SENDS_PER_WINDOW: i64 = 5;
/// The window of [`MAX_SENDS_PER_WINDOW`], in seconds (one hour).
pub const SEND_WINDOW_SECS: i64 = 3600;
/// What the user is told when [`MAX_SENDS_PER_WINDOW`] is reached.
pub const TOO_MANY_SENDS: &str = "Too many codes sent; try again later";
/// Digits of the sent code.
pub const SENT_CODE_DIGITS: usize = 6;

/// How a code reaches the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A text message (`[api.sms]`).
    Sms,
    /// A phone call that reads the code out (`[api.voice]`).
    Voice,
}

impl Channel {
    /// The wire and database name: `sms`, `voice`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "voice",
        }
    }

    /// From the wire or database name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sms" => Some(Self::Sms),
            "voice" => Some(Self::Voice),
            _ => None,
        }
    }

    /// What the user types at a prompt to ask for a code this way:
    /// `sms`, `call`.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "call",
        }
    }

    /// The channel a typed answer asks for: `sms` or `text` for a text
    /// message, `call` or `voice` for a call (any case, spaces around
    /// ignored); `None` for anything else (a code, say).
    pub fn from_keyword(answer: &str) -> Option<Self> {
        let a = answer.trim();
        if a.eq_ignore_ascii_case("sms") || a.eq_ignore_ascii_case("text") {
            Some(Self::Sms)
        } else if a.eq_ignore_ascii_case("call") || a.eq_ignore_ascii_case("voice") {
            Some(Self::Voice)
        } else {
            None
        }
    }

    /// How the method is named on the page: `Text message`, `Phone call`.
    pub fn title(self) -> &'static str {
        match self {
            Self::Sms => "Text message",
            Self::Voice => "Phone call",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalises and checks a phone number in E.164 form: `+`, then 8 to 15
/// digits, the first not 0. Spaces, dashes, dots and parentheses as
/// people type them (`+1 (555) 010-0042`) are dropped first.
///
/// # Errors
/// A one-line reason for people.
pub fn parse_e164(typed: &str) -> Result<String, &'static str> {
    // "+44 (0)20 …": the bracketed trunk 0 is dialled only inside the
    // country, never after the country code.
    let kept: String = typed
        .trim()
        .replace("(0)", "")
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
        .collect();
    let Some(digits) = kept.strip_prefix('+') else {
        return Err(
            "enter the number in international form: + then the country code, e.g. +1 555 010 0042",
        );
    };
    if digits.is_empty() {
        return Err("enter the country code and number after the +, e.g. +1 555 010 0042");
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a phone number has only digits after the +");
    }
    if digits.starts_with('0') {
        return Err("a country code never starts with 0");
    }
    if !(8..=15).contains(&digits.len()) {
        return Err("a phone number has 8 to 15 digits after the +");
    }
    Ok(kept)
}

/// Digits of the country calling code at the start of `digits` (ITU-T
/// E.164 zones: 1 and 7 have one digit; the two-digit codes listed; every
/// other code three).
fn country_code_len(digits: &str) -> usize {
    let b = digits.as_bytes();
    match b.first() {
        Some(b'1' | b'7') => 1,
        Some(_) if b.len() >= 2 => {
            let two = &digits[..2];
            let short = [
                "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45",
                "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61",
                "62", "63", "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94",
                "95", "98",
            ];
            if short.contains(&two) {
                2
            } else {
                3
            }
        }
        _ => 1,
    }
}

/// A number (E.164, as [`parse_e164`] gives) shown in full form but
/// masked: the country code, the rest as dots in groups of three, the
/// last two digits kept: `+1 ••• ••• ••42`, `+44 ••• ••• ••• 23`.
pub fn mask(e164: &str) -> String {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    if digits.len() < 4 || !digits.is_ascii() {
        return "••".into();
    }
    let cc = country_code_len(digits).min(digits.len() - 2);
    let national = &digits[cc..];
    let keep = national.len().saturating_sub(2);
    let shown: Vec<char> = national
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep { '•' } else { c })
        .collect();
    let mut groups = Vec::new();
    let mut rest = &shown[..];
    while rest.len() > 4 {
        groups.push(rest[..3].iter().collect::<String>());
        rest = &rest[3..];
    }
    groups.push(rest.iter().collect());
    format!("+{} {}", &digits[..cc], groups.join(" "))
}

/// The short form of a number in prompts: `••42`.
pub fn hint(e164: &str) -> String {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    let n = digits.len();
    if n < 4 || !digits.is_ascii() {
        return "••".into();
    }
    format!("••{}", &digits[n - 2..])
}

/// A new one-time code: [`SENT_CODE_DIGITS`] digits from the OS's random
/// source, wiped from memory when dropped.
pub fn generate_code() -> Zeroizing<String> {
    let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
    Zeroizing::new(format!("{n:06}"))
}

/// The message of a gateway: `template` with `{{code}}` filled in; for a
/// call (`voice`) the digits are spaced (`1 2 3 4 5 6`) so a
/// text-to-speech engine reads them one by one, not as a number.
pub fn render_message(template: &str, code: &str, voice: bool) -> Zeroizing<String> {
    let shown = if voice {
        let spaced: Vec<String> = code.chars().map(String::from).collect();
        Zeroizing::new(spaced.join(" "))
    } else {
        Zeroizing::new(code.to_owned())
    };
    Zeroizing::new(template.replace("{{code}}", &shown))
}

/// Bytes kept as they are by `application/x-www-form-urlencoded` (the
/// WHATWG URL standard's set: ASCII alphanumerics and `*-._`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// `s` escaped for a form-urlencoded body or query (space as `+`).
pub fn form_escape(s: &str) -> String {
    utf8_percent_encode(s, FORM).to_string().replace("%20", "+")
}

/// `s` escaped for the inside of a JSON string (no quotes added).
pub fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1)].to_owned()
}

/// How a template's placeholders are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `application/x-www-form-urlencoded` (a form body, a GET's URL).
    Form,
    /// Inside JSON strings.
    Json,
}

/// `template` (a gateway's `body`, or its `url` for a GET) with
/// `{{phone}}` and `{{message}}` escaped by `escape`, so a message cannot
/// add fields to the request. Wiped when dropped: it holds the code.
pub fn render_request(
    template: &str,
    phone: &str,
    message: &str,
    escape: Escape,
) -> Zeroizing<String> {
    let esc = |s: &str| match escape {
        Escape::Form => form_escape(s),
        Escape::Json => json_escape(s),
    };
    let message = Zeroizing::new(esc(message));
    Zeroizing::new(
        template
            .replace("{{phone}}", &esc(phone))
            .replace("{{message}}", &message),
    )
}

/// A header value with `{{token}}` replaced by `token`.
pub fn render_header(template: &str, token: Option<&str>) -> Zeroizing<String> {
    Zeroizing::new(template.replace("{{token}}", token.unwrap_or("")))
}

/// The channel of a method kind: [`Channel::Sms`] for
/// [`MethodKind::Sms`], [`Channel::Voice`] for [`MethodKind::Voice`],
/// `None` for every other kind.
pub fn channel_of(kind: MethodKind) -> Option<Channel> {
    match kind {
        MethodKind::Sms => Some(Channel::Sms),
        MethodKind::Voice => Some(Channel::Voice),
        _ => None,
    }
}

/// The channels of the user's usable phone methods, text message first,
/// each once: what a prompt offers ([`keyword_offer`]).
pub fn channels(reg: &Registrations) -> Vec<Channel> {
    let mut v: Vec<Channel> = reg.usable().filter_map(|m| channel_of(m.kind)).collect();
    v.sort_by_key(|c| *c == Channel::Voice);
    v.dedup();
    v
}

// ---- the host API ----------------------------------------------------------

/// `POST /v1/host/users/{username}/otp/send` ([`crate::api::paths::HOST_OTP_SEND`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendCode {
    /// Text message or call.
    pub channel: Channel,
    /// Where the login comes from (audited).
    #[serde(default)]
    pub context: AuthContext,
}

/// What became of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendResult {
    /// The gateway took the message (2xx).
    Sent,
    /// The gateway answered with an error or not at all; no code is open.
    CouldNotSend,
    /// [`MAX_SENDS_PER_WINDOW`] codes were sent within the hour.
    RateLimited,
    /// The user has no usable phone method for that channel.
    NotEnrolled,
    /// This registry has no gateway for that channel.
    NotConfigured,
    /// The registry has no such user.
    UnknownUser,
    /// The user is locked out.
    Locked,
    /// The user is disabled.
    Disabled,
}

impl SendResult {
    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::CouldNotSend => "could_not_send",
            Self::RateLimited => "rate_limited",
            Self::NotEnrolled => "not_enrolled",
            Self::NotConfigured => "not_configured",
            Self::UnknownUser => "unknown_user",
            Self::Locked => "locked",
            Self::Disabled => "disabled",
        }
    }
}

/// Answer to [`SendCode`] (200 whenever the request was well formed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeSent {
    /// What became of it.
    pub result: SendResult,
    /// The number in short form ([`hint`], `••42`), when one was chosen.
    #[serde(default)]
    pub sent_to: Option<String>,
    /// Unix seconds until which the code is valid, on `sent`.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// `POST /v1/admin/users/{username}/methods/phone`: a phone method set up
/// by an admin (the help desk, having checked the number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolPhone {
    /// Text message or call.
    pub channel: Channel,
    /// The number, E.164 ([`parse_e164`]).
    pub number: String,
    /// Make it the user's default method.
    #[serde(default)]
    pub default: bool,
}

// ---- the words of the front ends -------------------------------------------

/// What one [`SendResult`] tells the user (PAM prompt, RADIUS
/// Reply-Message, the page), `channel` being what was asked for; `None`
/// for [`SendResult::Sent`] (see [`sent_message`]).
pub fn send_refusal(result: SendResult, channel: Channel) -> Option<&'static str> {
    Some(match (result, channel) {
        (SendResult::Sent, _) => return None,
        (SendResult::CouldNotSend, Channel::Sms) => {
            "Could not send the text message; try again later or use another method"
        }
        (SendResult::CouldNotSend, Channel::Voice) => {
            "Could not place the phone call; try again later or use another method"
        }
        (SendResult::RateLimited, _) => TOO_MANY_SENDS,
        (SendResult::NotEnrolled, Channel::Sms) => "No phone number set up for text messages",
        (SendResult::NotEnrolled, Channel::Voice) => "No phone number set up for calls",
        (SendResult::NotConfigured, Channel::Sms) => "Text messages are not set up here",
        (SendResult::NotConfigured, Channel::Voice) => "Phone calls are not set up here",
        (SendResult::UnknownUser, _) => "second factor not set up",
        (SendResult::Locked, _) => "account locked",
        (SendResult::Disabled, _) => "account disabled",
    })
}

/// What a front end makes of a send the registry did not answer (a
/// timeout, a dropped connection): [`SendResult::CouldNotSend`], never an
/// unreachable registry. The registry answered the login's lookup a moment
/// before, and it waits on the gateway while it sends: a slow gateway must
/// not turn into `fail_mode = "open"` and a login without a second factor.
/// From then on that login is failed closed if the registry stops
/// answering ([`FAIL_MODE_AFTER_A_FAILED_SEND`]).
pub const UNANSWERED_SEND: SendResult = SendResult::CouldNotSend;

/// Why a login whose code send went unanswered does not apply the fail
/// mode to a later unanswered call: the registry was reached, and is
/// slow, not down.
pub const FAIL_MODE_AFTER_A_FAILED_SEND: &str =
    "fail_mode does not apply once the registry was reached and a code send went unanswered";

/// What the user is told once the code went out: `Code sent by text
/// message to ••42`, `Code read out by phone call to ••42`.
pub fn sent_message(channel: Channel, sent_to: &str) -> String {
    match channel {
        Channel::Sms => format!("Code sent by text message to {sent_to}"),
        Channel::Voice => format!("Code read out by phone call to {sent_to}"),
    }
}

/// The PAM prompt once the code went out: [`sent_message`] then `: `.
pub fn sent_prompt(channel: Channel, sent_to: &str) -> String {
    format!("{}: ", sent_message(channel, sent_to))
}

/// `, or type sms`, `, or type call`, `, or type sms or call`: what a
/// prompt adds for the channels a user has (empty for none).
pub fn keyword_offer(channels: &[Channel]) -> String {
    let mut words: Vec<&str> = Vec::new();
    for c in [Channel::Sms, Channel::Voice] {
        if channels.contains(&c) {
            words.push(c.keyword());
        }
    }
    if words.is_empty() {
        String::new()
    } else {
        format!(", or type {}", words.join(" or "))
    }
}

/// `prompt` (a code prompt ending in `: `, e.g. `Verification code, or
/// press Enter for a push: `) with [`keyword_offer`] before its end:
/// `Verification code, or press Enter for a push, or type sms: `.
/// Unchanged without channels.
pub fn with_keyword_offer(prompt: &str, channels: &[Channel]) -> String {
    let offer = keyword_offer(channels);
    if offer.is_empty() {
        return prompt.to_owned();
    }
    let trimmed = prompt.trim_end();
    let (head, tail) = match trimmed.strip_suffix(':') {
        Some(h) => (h, ": "),
        None => (trimmed, ": "),
    };
    format!("{head}{offer}{tail}")
}

/// The prompt of a user whose only methods are phone methods, before any
/// code was sent: `Type sms to get a code by text message: ` and the
/// like; `None` without channels.
pub fn phone_only_prompt(channels: &[Channel]) -> Option<String> {
    let has = |c| channels.contains(&c);
    Some(match (has(Channel::Sms), has(Channel::Voice)) {
        (true, true) => "Type sms for a code by text message, or call for a phone call: ".into(),
        (true, false) => "Type sms to get a code by text message: ".into(),
        (false, true) => "Type call to get a code by phone call: ".into(),
        (false, false) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers() {
        assert_eq!(parse_e164("+15550100042").unwrap(), "+15550100042");
        assert_eq!(parse_e164(" +1 (555) 010-0042 ").unwrap(), "+15550100042");
        assert_eq!(parse_e164("+44 7700.900123").unwrap(), "+447700900123");
        assert_eq!(parse_e164("+12345678").unwrap(), "+12345678", "8 digits");
        assert_eq!(
            parse_e164("+123456789012345").unwrap(),
            "+123456789012345",
            "15 digits"
        );
        assert!(parse_e164("+1234567").unwrap_err().contains("8 to 15"));
        assert!(parse_e164("+1234567890123456")
            .unwrap_err()
            .contains("8 to 15"));
        assert!(parse_e164("5550100042")
            .unwrap_err()
            .contains("international"));
        assert!(parse_e164("+0123456789").unwrap_err().contains("0"));
        assert!(parse_e164("+1555O100042").unwrap_err().contains("digits"));
        assert!(parse_e164("").is_err());
        assert!(parse_e164("+").is_err());
        assert_eq!(
            parse_e164("+44 (0) 7700 900124").as_deref(),
            Ok("+447700900124")
        );
        assert!(parse_e164("++15550100042").is_err());
        assert!(parse_e164("+1555\n0100042").is_err());
    }

    #[test]
    fn masked_numbers() {
        assert_eq!(mask("+15550100042"), "+1 ••• ••• ••42");
        assert_eq!(mask("+447700900123"), "+44 ••• ••• ••23");
        assert_eq!(mask("+4915112345678"), "+49 ••• ••• ••• 78");
        assert_eq!(mask("+35312345678"), "+353 ••• ••• 78");
        assert_eq!(hint("+15550100042"), "••42");
        assert_eq!(hint("+447700900123"), "••23");
        for n in ["+15550100042", "+447700900123", "+35312345678", "+12345678"] {
            let m = mask(n);
            assert!(m.ends_with(&n[n.len() - 2..]), "{m}");
            let shown: usize = m.chars().filter(char::is_ascii_digit).count();
            let cc = country_code_len(&n[1..]);
            assert_eq!(shown, cc + 2, "{m}: only the country code and two digits");
        }
        assert_eq!(hint("x"), "••");
        assert_eq!(mask("+1"), "••");
    }

    #[test]
    fn codes_are_six_random_digits() {
        let a = generate_code();
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        let many: std::collections::HashSet<String> =
            (0..50).map(|_| generate_code().to_string()).collect();
        assert!(many.len() > 40, "random, not fixed");
    }

    #[test]
    fn message_and_request_templates() {
        let m = render_message("Your code is {{code}}", "012345", false);
        assert_eq!(m.as_str(), "Your code is 012345");
        let v = render_message("Code {{code}}. Again: {{code}}.", "012345", true);
        assert_eq!(v.as_str(), "Code 0 1 2 3 4 5. Again: 0 1 2 3 4 5.");
        // Form: a message cannot add a field.
        let f = render_request(
            "To={{phone}}&From=%2B15550000000&Body={{message}}",
            "+15550100042",
            "code 1 & x=2",
            Escape::Form,
        );
        assert_eq!(
            f.as_str(),
            "To=%2B15550100042&From=%2B15550000000&Body=code+1+%26+x%3D2"
        );
        // JSON: a message cannot leave its string.
        let j = render_request(
            r#"{"to":"{{phone}}","text":"{{message}}"}"#,
            "+15550100042",
            "a \"quote\" \\ and\nnewline",
            Escape::Json,
        );
        let parsed: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(parsed["text"], "a \"quote\" \\ and\nnewline");
        assert_eq!(parsed["to"], "+15550100042");
        assert_eq!(
            render_header("Basic {{token}}", Some("abc")).as_str(),
            "Basic abc"
        );
        assert_eq!(form_escape("é ü"), "%C3%A9+%C3%BC");
    }

    #[test]
    fn prompt_words() {
        assert_eq!(
            with_keyword_offer(
                "Verification code, or press Enter for a push: ",
                &[Channel::Sms]
            ),
            "Verification code, or press Enter for a push, or type sms: "
        );
        assert_eq!(
            with_keyword_offer("Verification code: ", &[Channel::Voice, Channel::Sms]),
            "Verification code, or type sms or call: "
        );
        assert_eq!(
            with_keyword_offer("Verification code: ", &[]),
            "Verification code: "
        );
        assert_eq!(
            sent_prompt(Channel::Sms, "••42"),
            "Code sent by text message to ••42: "
        );
        assert_eq!(
            sent_prompt(Channel::Voice, "••42"),
            "Code read out by phone call to ••42: "
        );
        assert_eq!(Channel::from_keyword(" SMS "), Some(Channel::Sms));
        assert_eq!(Channel::from_keyword("call"), Some(Channel::Voice));
        assert_eq!(Channel::from_keyword("123456"), None);
        assert_eq!(
            send_refusal(SendResult::RateLimited, Channel::Sms),
            Some(TOO_MANY_SENDS)
        );
        assert_eq!(send_refusal(SendResult::Sent, Channel::Sms), None);
        assert_eq!(
            phone_only_prompt(&[Channel::Sms]).unwrap(),
            "Type sms to get a code by text message: "
        );
        assert_eq!(phone_only_prompt(&[]), None);
    }
}
