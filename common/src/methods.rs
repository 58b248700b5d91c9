//! What each kind of method is for, and where it counts.
//!
//! The one table every front end applies: the registry filters a host's
//! registrations by it ([`Place::for_host`]), the Security info page and
//! `twostep user show` print it for a user ([`uses_of`]), and the page warns
//! with it before a delete leaves a place without a method
//! ([`places_lost`]).
//!
//! | method | two-step verification | password reset | where it counts |
//! |---|---|---|---|
//! | authenticator app, code ([`MethodKind::Totp`]) | yes | yes | page, PAM, RADIUS |
//! | authenticator app, notification ([`MethodKind::Push`]) | yes | yes | page, PAM, RADIUS |
//! | text message ([`MethodKind::Sms`]) | yes | yes | page, PAM, RADIUS |
//! | phone call ([`MethodKind::Voice`]) | yes | yes | page, PAM, RADIUS |
//! | security key, WebAuthn ([`MethodKind::SecurityKey`]) | yes | yes | page only |
//! | email address ([`ResetKind::Email`]) | no | yes | password reset only |
//! | security questions ([`ResetKind::SecurityQuestions`]) | no | yes | password reset only |
//!
//! A security key counts only on the page because WebAuthn needs a
//! browser: neither an SSH keyboard-interactive prompt nor a RADIUS
//! Access-Challenge can carry its challenge and signature. A user whose
//! methods include none that counts in a place is *not enrolled* there, and
//! the front end's `unenrolled` policy applies
//! ([`crate::decision::from_registrations`]).

use crate::api::{Method, MethodKind};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a second factor is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// The Security info page and its own sign-in.
    Page,
    /// A PAM host: SSH, console, sudo.
    Pam,
    /// A RADIUS server in front of VPNs.
    Radius,
}

impl Place {
    /// Every place, in the order tables show them.
    pub const ALL: [Place; 3] = [Place::Page, Place::Pam, Place::Radius];

    /// The place a host of `kind` asks for.
    pub fn for_host(kind: crate::api::HostKind) -> Self {
        match kind {
            crate::api::HostKind::Ssh => Self::Pam,
            crate::api::HostKind::Radius => Self::Radius,
        }
    }

    /// Short name for people, as in "second factor not set up for SSH".
    pub fn name(self) -> &'static str {
        match self {
            Self::Page => "the Security info page",
            Self::Pam => "SSH",
            Self::Radius => "VPN",
        }
    }

    /// Column heading in tables: "Page", "SSH", "VPN".
    pub fn heading(self) -> &'static str {
        match self {
            Self::Page => "Page",
            Self::Pam => "SSH",
            Self::Radius => "VPN",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl MethodKind {
    /// Every kind, in the order a login prefers them when the user has no
    /// default that counts there.
    pub const ALL: [MethodKind; 5] = [
        MethodKind::Totp,
        MethodKind::Push,
        MethodKind::Sms,
        MethodKind::Voice,
        MethodKind::SecurityKey,
    ];

    /// The name stored in the registry's `methods.kind` column and used on
    /// the wire (`"totp"`, `"push"`, `"sms"`, `"voice"`, `"security_key"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Push => "push",
            Self::Sms => "sms",
            Self::Voice => "voice",
            Self::SecurityKey => "security_key",
        }
    }

    /// The kind named `s` ([`Self::as_str`]); `None` for any other text,
    /// so a row of a kind this build does not know is never taken for
    /// another kind.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What people call it: "Authenticator app (code)", "Text message"...
    pub fn name(self) -> &'static str {
        match self {
            Self::Totp => "Authenticator app (code)",
            Self::Push => "Authenticator app (notification)",
            Self::Sms => "Text message",
            Self::Voice => "Phone call",
            Self::SecurityKey => "Security key",
        }
    }

    /// The places where it passes a second factor (module table).
    pub fn places(self) -> &'static [Place] {
        match self {
            Self::Totp | Self::Push | Self::Sms | Self::Voice => &Place::ALL,
            Self::SecurityKey => &[Place::Page],
        }
    }

    /// Whether it passes a second factor in `place`.
    pub fn counts_in(self, place: Place) -> bool {
        self.places().contains(&place)
    }

    /// Whether it proves who the user is for a password reset. Every
    /// kind does (module table), as the kind of evidence of its device
    /// ([`crate::reset::ProofKind::of_method`]: code and notification are
    /// the app, text message and call the phone).
    pub fn resets_password(self) -> bool {
        true
    }
}

/// Methods used only to reset a password; kept apart from the `methods`
/// table so no login path can see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetKind {
    /// An email address that gets a code.
    Email,
    /// Answers to security questions.
    SecurityQuestions,
}

impl ResetKind {
    /// What people call it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "Email address",
            Self::SecurityQuestions => "Security questions",
        }
    }
}

/// One row of a user's table of uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseRow {
    /// The kind's name ([`MethodKind::name`], [`ResetKind::name`]).
    pub kind: &'static str,
    /// The user's label ("Alice's phone", a masked number); empty for
    /// reset methods.
    pub label: String,
    /// Whether it is the user's default method.
    pub is_default: bool,
    /// Whether it passes two-step verification anywhere now (false for a
    /// disabled method and for reset-only ones).
    pub two_step: bool,
    /// Whether it proves the user for a password reset.
    pub password_reset: bool,
    /// Where it passes a second factor now; empty when disabled or
    /// reset-only.
    pub places: Vec<Place>,
    /// Disabled by an admin (a lost device).
    pub disabled: bool,
}

impl UseRow {
    /// "Page, SSH, VPN", "Page only", or "Password reset only" / "Nowhere
    /// (disabled)".
    pub fn places_text(&self) -> String {
        if self.disabled {
            return "Nowhere (disabled)".to_owned();
        }
        if !self.two_step {
            return "Password reset only".to_owned();
        }
        let names: Vec<&str> = self.places.iter().map(|p| p.heading()).collect();
        if names.len() == 1 {
            format!("{} only", names[0])
        } else {
            names.join(", ")
        }
    }
}

/// The table of uses for a user with `methods` (any order; shown oldest
/// first as given) and the reset-only methods `reset` they have.
pub fn uses_of(methods: &[Method], reset: &[ResetKind]) -> Vec<UseRow> {
    let mut rows: Vec<UseRow> = methods
        .iter()
        .map(|m| UseRow {
            kind: m.kind.name(),
            label: m.label.clone(),
            is_default: m.is_default,
            two_step: !m.disabled,
            password_reset: !m.disabled && m.kind.resets_password(),
            places: if m.disabled {
                Vec::new()
            } else {
                m.kind.places().to_vec()
            },
            disabled: m.disabled,
        })
        .collect();
    rows.extend(reset.iter().map(|r| UseRow {
        kind: r.name(),
        label: String::new(),
        is_default: false,
        two_step: false,
        password_reset: true,
        places: Vec::new(),
        disabled: false,
    }));
    rows
}

/// The places where a user with `methods` can pass a second factor now
/// (a usable method that counts there).
pub fn enrolled_places(methods: &[Method]) -> Vec<Place> {
    Place::ALL
        .into_iter()
        .filter(|p| methods.iter().any(|m| !m.disabled && m.kind.counts_in(*p)))
        .collect()
}

/// The places that deleting method `id` leaves the user without a
/// second factor: the delete page warns with them and asks to confirm.
pub fn places_lost(methods: &[Method], id: i64) -> Vec<Place> {
    let before = enrolled_places(methods);
    let rest: Vec<Method> = methods.iter().filter(|m| m.id != id).cloned().collect();
    let after = enrolled_places(&rest);
    before.into_iter().filter(|p| !after.contains(p)).collect()
}

/// The method a login in `place` offers first among `methods`: the
/// user's default when it is usable and counts there, else the first
/// usable one that counts there in [`MethodKind::ALL`] order (oldest first
/// within a kind).
pub fn first_offer(methods: &[Method], place: Place) -> Option<&Method> {
    let here = |m: &&Method| !m.disabled && m.kind.counts_in(place);
    methods
        .iter()
        .filter(here)
        .find(|m| m.is_default)
        .or_else(|| {
            MethodKind::ALL
                .into_iter()
                .find_map(|k| methods.iter().filter(here).find(|m| m.kind == k))
        })
}

/// Joins place names for people: "SSH", "SSH and VPN", "the page, SSH and VPN".
pub fn join_places(places: &[Place]) -> String {
    let names: Vec<&str> = places.iter().map(|p| p.name()).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: i64, kind: MethodKind, default: bool) -> Method {
        Method {
            id,
            kind,
            label: format!("m{id}"),
            is_default: default,
            created_at: id,
            last_used_at: None,
            disabled: false,
        }
    }

    #[test]
    fn the_table() {
        for k in [
            MethodKind::Totp,
            MethodKind::Push,
            MethodKind::Sms,
            MethodKind::Voice,
        ] {
            for p in Place::ALL {
                assert!(k.counts_in(p), "{k:?} in {p:?}");
            }
        }
        assert!(MethodKind::SecurityKey.counts_in(Place::Page));
        assert!(!MethodKind::SecurityKey.counts_in(Place::Pam));
        assert!(!MethodKind::SecurityKey.counts_in(Place::Radius));
        assert!(MethodKind::ALL.iter().all(|k| k.resets_password()));
    }

    #[test]
    fn names_round_trip_and_unknown_kinds_are_none() {
        for k in MethodKind::ALL {
            assert_eq!(MethodKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(MethodKind::parse("TOTP"), None);
        assert_eq!(MethodKind::parse("hotp"), None);
        assert_eq!(MethodKind::parse(""), None);
    }

    #[test]
    fn a_key_only_user_is_enrolled_on_the_page_only() {
        let key = [m(1, MethodKind::SecurityKey, true)];
        assert_eq!(enrolled_places(&key), vec![Place::Page]);
        assert_eq!(first_offer(&key, Place::Pam), None);
        assert_eq!(first_offer(&key, Place::Page).map(|m| m.id), Some(1));
    }

    #[test]
    fn a_disabled_method_counts_nowhere() {
        let mut app = m(1, MethodKind::Totp, true);
        app.disabled = true;
        assert!(enrolled_places(std::slice::from_ref(&app)).is_empty());
        let rows = uses_of(&[app], &[]);
        assert_eq!(rows[0].places_text(), "Nowhere (disabled)");
        assert!(!rows[0].two_step);
    }

    #[test]
    fn deleting_the_last_host_method_loses_ssh_and_vpn_not_the_page() {
        let ms = [
            m(1, MethodKind::Totp, false),
            m(2, MethodKind::SecurityKey, true),
        ];
        assert_eq!(places_lost(&ms, 1), vec![Place::Pam, Place::Radius]);
        assert_eq!(places_lost(&ms, 2), Vec::<Place>::new());
        let one = [m(1, MethodKind::Sms, true)];
        assert_eq!(places_lost(&one, 1), Place::ALL.to_vec());
        assert_eq!(join_places(&places_lost(&ms, 1)), "SSH and VPN");
        assert_eq!(
            join_places(&Place::ALL),
            "the Security info page, SSH and VPN"
        );
    }

    #[test]
    fn first_offer_is_the_default_where_it_counts() {
        let ms = [
            m(1, MethodKind::Push, false),
            m(2, MethodKind::Totp, false),
            m(3, MethodKind::SecurityKey, true),
            m(4, MethodKind::Sms, false),
        ];
        // The key is the default on the page; in PAM it does not count and
        // the order of kinds decides.
        assert_eq!(first_offer(&ms, Place::Page).map(|m| m.id), Some(3));
        assert_eq!(first_offer(&ms, Place::Pam).map(|m| m.id), Some(2));
        let mut ms2 = ms.clone();
        ms2[3].is_default = true;
        ms2[2].is_default = false;
        assert_eq!(first_offer(&ms2, Place::Radius).map(|m| m.id), Some(4));
    }

    #[test]
    fn the_uses_table_has_reset_only_rows() {
        let rows = uses_of(
            &[
                m(1, MethodKind::Totp, true),
                m(2, MethodKind::SecurityKey, false),
            ],
            &[ResetKind::Email, ResetKind::SecurityQuestions],
        );
        let text: Vec<(String, bool, bool)> = rows
            .iter()
            .map(|r| (r.places_text(), r.two_step, r.password_reset))
            .collect();
        assert_eq!(
            text,
            vec![
                ("Page, SSH, VPN".to_owned(), true, true),
                ("Page only".to_owned(), true, true),
                ("Password reset only".to_owned(), false, true),
                ("Password reset only".to_owned(), false, true),
            ]
        );
        assert_eq!(rows[2].kind, "Email address");
    }
}
