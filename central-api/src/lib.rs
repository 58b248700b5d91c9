//! twostep's central registry (`twostep-api`): users, their verification
//! methods, hosts and their API keys, code verification and the audit
//! trail, over a REST/JSON API (the route table is in
//! [`twostep_common::api`]) on SQLite or PostgreSQL.
//!
//! - [`server`]: startup (key and token files, database, HTTP or HTTPS);
//! - [`app`]: router and handlers;
//! - [`verify`]: the replay-safe, race-free verification and lockout;
//! - [`db`]: connection and schema migrations for both databases;
//! - [`crypto`]: at-rest encryption of TOTP secrets, tokens and API keys;
//! - [`clock`]: the injectable clock;
//! - [`push`]: push approvals: device activation, challenges, signed
//!   answers, long-polls woken across processes, the webhook.
//!
//! Not here yet: the Security info portal.

pub mod app;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod push;
pub mod server;
pub mod verify;

pub use error::{ApiError, StartupError};
