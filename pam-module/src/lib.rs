#![deny(clippy::undocumented_unsafe_blocks)]
//! `pam_twostep.so`: the twostep second factor for SSH, console login and
//! sudo.
//!
//! A thin PAM front end over the core in `twostep-common`: the `auth` hook
//! asks the registry for the user's registrations, prompts for a code with
//! echo off (or offers a push to a user with a push device, showing the
//! number to type on the device in the next prompt), and answers with the
//! PAM result the registry's verdict maps to (see [`flow`] and
//! ARCHITECTURE.md "PAM result mapping"). Policy (exemptions, the tries
//! loop, the password+code split) lives in `twostep_common::policy`.
//!
//! - [`args`]: module arguments (`config=`, `debug`, `forward_pass`,
//!   `try_first_pass`, `use_first_pass`).
//! - [`flow`]: the `auth` flow as a step machine that does no I/O: it
//!   says what to do next (look up, prompt, verify, set PAM_AUTHTOK,
//!   start, wait for or cancel a push, done) and is fed the results; the
//!   module's only decisions.
//! - [`auth`]: the driver: reads the configuration and PAM items,
//!   performs the flow's actions through [`auth::PamIo`] and
//!   [`auth::Registry`] (the registry client on a current-thread runtime).
//! - `glue`: the only FFI; the `pam_sm_*` symbols, pam-bindings, libpam
//!   declarations, each `unsafe` with its `// SAFETY:` note.
//!
//! Non-features: no password checking of its own (stack `pam_unix` for
//! that), no global state, no threads left behind.

pub mod args;
pub mod auth;
pub mod flow;
mod glue;
#[cfg(test)]
mod tests;

pub use glue::Twostep;
