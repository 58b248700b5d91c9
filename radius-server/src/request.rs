//! What an authenticated Access-Request asks, per client mode.

use std::net::{Ipv4Addr, Ipv6Addr};
use twostep_common::api::AuthContext;
use twostep_config::RadiusMode;
use zeroize::Zeroizing;

use crate::settings::Client;
use crate::wire::{self, attr, RawPacket};

/// The parts of an Access-Request the server acts on.
pub struct AuthRequest {
    /// User-Name (UTF-8).
    pub user: String,
    /// What the User-Password carries in this client's mode.
    pub step: Step,
    /// Context for the registry's audit.
    pub context: AuthContext,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("user", &self.user)
            .field("step", &self.step.name())
            .field("context", &self.context)
            .finish()
    }
}

/// What to do, by mode and by the presence of State. Secrets are wiped on drop.
pub enum Step {
    /// `otp-only`, or the answer to a challenge: the password is the code.
    Code {
        /// The code as typed.
        code: Zeroizing<String>,
        /// The State of a challenge answer, if any.
        state: Option<Vec<u8>>,
    },
    /// `append`: password for the primary, then the code.
    PasswordAndCode {
        /// Primary password.
        password: Zeroizing<Vec<u8>>,
        /// The code as typed.
        code: Zeroizing<String>,
    },
    /// `append` with [`PUSH_KEYWORD`] instead of a code: password for the
    /// primary, then a push.
    PasswordAndPush {
        /// Primary password.
        password: Zeroizing<Vec<u8>>,
    },
    /// `append` with `sms` or `call` instead of a code: password for the
    /// primary, then a code sent by text message or call and asked for in
    /// an Access-Challenge.
    PasswordAndPhone {
        /// Primary password.
        password: Zeroizing<Vec<u8>>,
        /// How the code goes out.
        channel: twostep_common::phone::Channel,
    },
    /// `challenge` or `auto-push`, first round: the primary password.
    Password {
        /// Primary password.
        password: Zeroizing<Vec<u8>>,
    },
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Self::Code { state: None, .. } => "code",
            Self::Code { state: Some(_), .. } => "challenge answer",
            Self::PasswordAndCode { .. } => "password and code",
            Self::PasswordAndPush { .. } => "password and push",
            Self::PasswordAndPhone { .. } => "password and a sent code",
            Self::Password { .. } => "password",
        }
    }
}

/// What a user types instead of a code to ask for a push approval
/// (`password,push` in `append` mode, at the prompt in `challenge` mode);
/// any case, surrounding spaces ignored.
pub const PUSH_KEYWORD: &str = "push";

/// Whether `typed` asks for a push ([`PUSH_KEYWORD`]).
pub fn is_push_keyword(typed: &str) -> bool {
    typed.trim().eq_ignore_ascii_case(PUSH_KEYWORD)
}

/// Why a request is refused before any registry or primary call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// For the log.
    pub log: String,
    /// Reply-Message for the user, if any.
    pub message: Option<&'static str>,
}

fn refuse(log: impl Into<String>, message: Option<&'static str>) -> Refusal {
    Refusal {
        log: log.into(),
        message,
    }
}

/// Reads an authenticated Access-Request of `client`: User-Name,
/// User-Password decoded with the client's secret (RFC 2865 §5.2), split
/// by mode (`append`: `password,code` or `password,push`, or any text with
/// the State of a challenge), State, and the audit context (service `radius:CLIENT`, host from
/// NAS-Identifier or NAS-IP-Address, remote address from Calling-Station-Id).
///
/// # Errors
/// A [`Refusal`] (answered with Access-Reject) for a missing User-Name,
/// CHAP/EAP, a missing or undecodable User-Password, or an `append`
/// password without the delimiter.
pub fn parse(client: &Client, packet: &RawPacket) -> Result<AuthRequest, Refusal> {
    // RFC 2865 §5.1: User-Name appears at most once (0-1 in §5.44's table).
    if packet.count(attr::USER_NAME) > 1 {
        return Err(refuse("more than one User-Name", None));
    }
    let user = match packet.first(attr::USER_NAME) {
        None => return Err(refuse("no User-Name", None)),
        Some(u) => std::str::from_utf8(u)
            .map_err(|_| refuse("User-Name is not UTF-8", None))?
            .to_owned(),
    };
    if user.is_empty() {
        return Err(refuse("empty User-Name", None));
    }
    // The registry's one username rule: a name it could never hold (a NUL
    // or other control character, whitespace at an end, …) is refused
    // here, not forwarded.
    twostep_common::api::validate_username(&user)
        .map_err(|why| refuse(format!("User-Name refused: {why}"), None))?;
    if packet.first(attr::EAP_MESSAGE).is_some() {
        return Err(refuse(
            "EAP is not supported (use PAP)",
            Some("use PAP authentication"),
        ));
    }
    if packet.first(attr::CHAP_PASSWORD).is_some() {
        return Err(refuse(
            "CHAP is not supported (use PAP)",
            Some("use PAP authentication"),
        ));
    }
    if packet.count(attr::USER_PASSWORD) != 1 {
        return Err(refuse("no single User-Password", None));
    }
    let hidden = packet.first(attr::USER_PASSWORD).unwrap_or_default();
    let password =
        wire::decode_user_password(hidden, client.secret.expose(), &packet.authenticator)
            .map_err(|e| refuse(e.to_string(), None))?;
    let state = packet.first(attr::STATE).map(<[u8]>::to_vec);
    let code_of = |bytes: &[u8]| -> Zeroizing<String> {
        Zeroizing::new(String::from_utf8_lossy(bytes).trim().to_owned())
    };
    let step = match client.mode {
        RadiusMode::OtpOnly => Step::Code {
            code: code_of(&password),
            state: None,
        },
        RadiusMode::Append if state.is_some() => Step::Code {
            code: code_of(&password),
            state,
        },
        RadiusMode::Append => {
            let delim = client.delimiter.as_bytes();
            let at = password
                .windows(delim.len())
                .rposition(|w| w == delim)
                .ok_or_else(|| {
                    refuse(
                        "password carries no delimiter and code",
                        Some("enter password, delimiter and code"),
                    )
                })?;
            let primary = Zeroizing::new(password[..at].to_vec());
            let code = code_of(&password[at + delim.len()..]);
            if is_push_keyword(&code) {
                Step::PasswordAndPush { password: primary }
            } else if let Some(channel) = twostep_common::phone::Channel::from_keyword(&code) {
                Step::PasswordAndPhone {
                    password: primary,
                    channel,
                }
            } else {
                Step::PasswordAndCode {
                    password: primary,
                    code,
                }
            }
        }
        RadiusMode::Challenge | RadiusMode::AutoPush => match state {
            Some(state) => Step::Code {
                code: code_of(&password),
                state: Some(state),
            },
            None => Step::Password { password },
        },
    };
    Ok(AuthRequest {
        user,
        step,
        context: context(client, packet),
    })
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).chars().take(128).collect()
}

/// The audit context of a request.
pub fn context(client: &Client, packet: &RawPacket) -> AuthContext {
    let host = packet
        .first(attr::NAS_IDENTIFIER)
        .map(text)
        .or_else(|| {
            packet
                .first(attr::NAS_IP_ADDRESS)
                .and_then(|v| <[u8; 4]>::try_from(v).ok())
                .map(|a| Ipv4Addr::from(a).to_string())
        })
        .or_else(|| {
            packet
                .first(attr::NAS_IPV6_ADDRESS)
                .and_then(|v| <[u8; 16]>::try_from(v).ok())
                .map(|a| Ipv6Addr::from(a).to_string())
        });
    AuthContext {
        service: Some(format!("radius:{}", client.name)),
        host,
        remote_addr: packet.first(attr::CALLING_STATION_ID).map(text),
        tty: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RawAttr;
    use twostep_config::Secret;

    fn client(mode: RadiusMode, delimiter: &str) -> Client {
        Client {
            name: "gw".into(),
            network: "127.0.0.1/32".parse().unwrap(),
            secret: Secret::new(b"s3cret".to_vec()),
            mode,
            delimiter: delimiter.into(),
            require_message_authenticator: true,
            primary: None,
            push_number_matching: true,
        }
    }

    fn packet(password: &[u8], extra: &[RawAttr]) -> RawPacket {
        let mut attrs = vec![RawAttr {
            typ: attr::USER_NAME,
            value: b"alice".to_vec(),
        }];
        attrs.extend_from_slice(extra);
        let (bytes, _) = wire::build_access_request(1, &attrs, password, b"s3cret").unwrap();
        wire::parse(&bytes).unwrap()
    }

    #[test]
    fn a_second_user_name_or_one_the_registry_cannot_hold_is_refused() {
        let c = client(RadiusMode::OtpOnly, ",");
        let two = packet(
            b"123456",
            &[RawAttr {
                typ: attr::USER_NAME,
                value: b"bob".to_vec(),
            }],
        );
        assert_eq!(parse(&c, &two).unwrap_err().log, "more than one User-Name");
        for name in [b"ali\0ce".as_slice(), b"alice ", b"bob\r\n", b"-x"] {
            let attrs = [RawAttr {
                typ: attr::USER_NAME,
                value: name.to_vec(),
            }];
            let (bytes, _) = wire::build_access_request(1, &attrs, b"123456", b"s3cret").unwrap();
            let e = parse(&c, &wire::parse(&bytes).unwrap()).unwrap_err();
            assert!(
                e.log.starts_with("User-Name refused: "),
                "{name:?}: {}",
                e.log
            );
            assert_eq!(e.message, None);
        }
    }

    #[test]
    fn otp_only_takes_the_password_as_code() {
        let r = parse(&client(RadiusMode::OtpOnly, ","), &packet(b" 123456 ", &[])).unwrap();
        assert_eq!(r.user, "alice");
        match r.step {
            Step::Code { code, state: None } => assert_eq!(code.as_str(), "123456"),
            _ => panic!("wrong step"),
        }
        assert_eq!(r.context.service.as_deref(), Some("radius:gw"));
    }

    #[test]
    fn append_splits_on_the_last_delimiter() {
        let c = client(RadiusMode::Append, "::");
        let r = parse(&c, &packet(b"pa::ss::123456", &[])).unwrap();
        match r.step {
            Step::PasswordAndCode { password, code } => {
                assert_eq!(password.as_slice(), b"pa::ss");
                assert_eq!(code.as_str(), "123456");
            }
            _ => panic!("wrong step"),
        }
        let e = parse(&c, &packet(b"no-delimiter", &[])).unwrap_err();
        assert!(e.message.is_some());
    }

    #[test]
    fn append_push_keyword_and_challenge_answers() {
        let c = client(RadiusMode::Append, ",");
        for typed in [b"pa,ss,push".as_slice(), b"pa,ss, PUSH ", b"pa,ss,Push"] {
            match parse(&c, &packet(typed, &[])).unwrap().step {
                Step::PasswordAndPush { password } => assert_eq!(password.as_slice(), b"pa,ss"),
                _ => panic!("wrong step for {typed:?}"),
            }
        }
        assert!(matches!(
            parse(&c, &packet(b"pw,pushy", &[])).unwrap().step,
            Step::PasswordAndCode { .. }
        ));
        // With State: the answer to an Access-Challenge, any text.
        let st = RawAttr {
            typ: attr::STATE,
            value: vec![9; 50],
        };
        match parse(&c, &packet(b"", &[st])).unwrap().step {
            Step::Code {
                code,
                state: Some(s),
            } => {
                assert_eq!(code.as_str(), "");
                assert_eq!(s, vec![9; 50]);
            }
            _ => panic!("wrong step"),
        }
    }

    #[test]
    fn auto_push_steps_as_challenge() {
        let c = client(RadiusMode::AutoPush, ",");
        assert!(matches!(
            parse(&c, &packet(b"pw,push", &[])).unwrap().step,
            Step::Password { .. }
        ));
    }

    #[test]
    fn challenge_steps_by_state() {
        let c = client(RadiusMode::Challenge, ",");
        assert!(matches!(
            parse(&c, &packet(b"pw", &[])).unwrap().step,
            Step::Password { .. }
        ));
        let st = RawAttr {
            typ: attr::STATE,
            value: vec![9; 50],
        };
        match parse(&c, &packet(b"654321", &[st])).unwrap().step {
            Step::Code {
                code,
                state: Some(s),
            } => {
                assert_eq!(code.as_str(), "654321");
                assert_eq!(s, vec![9; 50]);
            }
            _ => panic!("wrong step"),
        }
    }

    #[test]
    fn context_from_nas_attributes() {
        let c = client(RadiusMode::OtpOnly, ",");
        let p = packet(
            b"1",
            &[
                RawAttr {
                    typ: attr::NAS_IP_ADDRESS,
                    value: vec![192, 0, 2, 1],
                },
                RawAttr {
                    typ: attr::CALLING_STATION_ID,
                    value: b"203.0.113.9".to_vec(),
                },
            ],
        );
        let ctx = context(&c, &p);
        assert_eq!(ctx.host.as_deref(), Some("192.0.2.1"));
        assert_eq!(ctx.remote_addr.as_deref(), Some("203.0.113.9"));
    }
}
