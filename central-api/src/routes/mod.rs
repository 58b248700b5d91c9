//! The handlers, one module per resource. Each module has a
//! `routes(Routes) -> Routes` that adds its paths (from
//! [`twostep_common::api::paths`]) to the router; [`crate::app`] lists the
//! modules.

pub mod audit;
pub mod host;
pub mod hosts;
pub mod methods;
pub mod public;
pub mod users;
