//! The twostep core, shared by every front end.
//!
//! - [`totp`]: RFC 6238 verification with a skew window and the replay rule
//!   (run inside the registry, where the secrets are), secret generation and
//!   `otpauth://` URIs.
//! - [`api`]: the registry's wire types, used by server and clients alike so
//!   they cannot drift.
//! - [`client`]: the registry client (reqwest, rustls) for hosts and the CLI.
//! - [`decision`]: how a registry answer becomes a front end's answer.
//! - [`methods`]: what each kind of method is for and where it counts.
//! - [`phone`]: text-message and phone-call codes: E.164 numbers, masking,
//!   the gateway templates, the words of the prompts.
//! - [`push`]: push approvals' wire types and the bytes a device signs.
//! - [`portal`]: the Security info pages' admin wire types and password rule.
//! - [`policy`]: the PAM module's local policy and prompt loop, free of PAM.
//! - [`recovery`]: temporary access codes' shape (issued by the help desk).
//! - [`reset`]: self-service password reset: security questions, answer
//!   normalising, emailed codes, the proofs a reset needs.
//! - [`security_key`]: security keys' names and what the page says when a
//!   browser refuses a WebAuthn ceremony.
//!
//! Nothing here knows about PAM, RADIUS or HTTP servers.

pub mod api;
pub mod client;
pub mod decision;
pub mod methods;
pub mod phone;
pub mod policy;
pub mod portal;
pub mod push;
pub mod qr;
pub mod recovery;
pub mod reset;
pub mod security_key;
pub mod stdout;
pub mod totp;

/// An error and its causes on one line, newlines folded, each cause once
/// ("error sending request: connection refused"): the shape of every
/// twostep log line and error message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}
