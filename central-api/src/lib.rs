//! twostep's central registry (`twostep-api`): users, their verification
//! methods, hosts and their API keys, code verification and the audit
//! trail, over a REST/JSON API (the route table is in
//! [`twostep_common::api`]) on SQLite or PostgreSQL.
//!
//! - [`server`]: startup (key and token files, database, HTTP or HTTPS);
//! - [`app`]: the router, assembled from [`routes`], one module per
//!   resource (users, methods, hosts, audit, host-facing, public);
//! - [`state`]: what every request needs ([`AppState`]);
//! - [`auth`]: the admin token and host API key extractors;
//! - [`audit`]: audit records and `AdminChange`, the one transaction of
//!   every admin change;
//! - `rows`: users and methods as stored, and the user's status rule;
//! - `validate`: checks of names and labels;
//! - [`verify`]: the replay-safe, race-free verification and lockout;
//! - [`db`]: connection and schema migrations for both databases;
//! - [`crypto`]: at-rest encryption of TOTP secrets, tokens and API keys;
//! - [`clock`]: the injectable clock;
//! - [`metrics`]: the Prometheus metrics on `[api.metrics] listen`;
//! - [`mail`]: email over SMTP (`[api.smtp]`): password-reset codes;
//! - [`portal`]: the Security info pages under `/my/`;
//! - [`push`]: push approvals: device activation, challenges, signed
//!   answers, long-polls woken across processes, the webhook.

pub mod app;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod error;
pub mod extract;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod phone;
pub mod phone_dupes;
pub mod portal;
pub mod push;
pub mod recovery;
pub mod routes;
mod rows;
pub mod server;
pub mod sqlite_reads;
pub mod state;
mod validate;
pub mod verify;
pub mod write_conn;
pub mod writer;

pub use error::{ApiError, StartupError};
pub use state::AppState;
