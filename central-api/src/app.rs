//! The registry's HTTP API: the router over [`AppState`], assembled from
//! one module per resource in [`crate::routes`] (and [`crate::push`] for
//! push approvals). A new resource is a new file there and one line in
//! `RESOURCES`. The paths are those of
//! [`twostep_common::api::paths`].

use crate::error::ApiError;
use crate::routes;
use crate::state::Shared;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{on, MethodFilter};
use axum::Router;
use twostep_common::api::{paths, ApiErrorCode};

pub use crate::state::AppState;

/// Every path the router serves, with its methods; the OpenAPI document
/// must describe each, and the router must serve exactly these (both
/// checked by tests).
pub const ROUTES: &[(&str, &[&str])] = &[
    (paths::HEALTH, &["get"]),
    (paths::OPENAPI, &["get"]),
    (paths::USERS, &["get", "post"]),
    (paths::USER, &["get", "patch", "delete"]),
    (paths::USER_UNLOCK, &["post"]),
    (paths::USER_PASSWORD, &["put"]),
    (paths::USER_INVITE, &["post"]),
    (paths::USER_TOTP, &["post"]),
    (paths::USER_METHOD, &["delete"]),
    (paths::USER_METHODS, &["delete"]),
    (paths::USER_TAP, &["post", "delete"]),
    (paths::USER_BACKUP_CODES, &["post"]),
    (paths::HOSTS, &["get", "post"]),
    (paths::HOST, &["delete"]),
    (paths::AUDIT, &["get"]),
    (paths::HOST_REGISTRATIONS, &["get"]),
    (paths::HOST_VERIFY, &["post"]),
    (paths::HOST_OTP_SEND, &["post"]),
    (paths::USER_PHONE, &["post"]),
    (paths::USER_PUSH, &["post"]),
    (paths::METHOD_DISABLE, &["post"]),
    (paths::METHOD_ENABLE, &["post"]),
    (paths::DEVICE_ACTIVATE, &["post"]),
    (paths::DEVICE_POLL, &["post"]),
    (paths::DEVICE_ANSWER, &["post"]),
    (paths::HOST_PUSH, &["post"]),
    (paths::HOST_PUSH_CHALLENGE, &["get", "delete"]),
];

/// Each resource's routes, added in this order.
const RESOURCES: &[fn(Routes) -> Routes] = &[
    routes::public::routes,
    routes::users::routes,
    routes::methods::routes,
    crate::recovery::routes,
    routes::hosts::routes,
    routes::audit::routes,
    routes::host::routes,
    crate::phone::routes,
    crate::portal::admin::routes,
    crate::push::routes,
];

/// The router over `state`: every resource's routes, JSON 404 and 405
/// answers for the rest, and the body limit.
pub fn router(state: Shared) -> Router {
    let limit = state.max_body_bytes;
    build()
        .router
        .nest_service(
            twostep_common::portal::PORTAL_PATH,
            crate::portal::router(state.clone()),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::count_database_errors,
        ))
        .with_state(state)
}

/// The `(path, method)` pairs the router serves, methods in lower case as
/// in OpenAPI, in the order they were added.
pub fn served() -> Vec<(&'static str, &'static str)> {
    build()
        .served
        .into_iter()
        .map(|(path, verb)| (path, verb.as_str()))
        .collect()
}

fn build() -> Routes {
    RESOURCES.iter().fold(
        Routes {
            router: Router::new(),
            served: Vec::new(),
        },
        |r, add| add(r),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(ApiErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ApiErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Patch => MethodFilter::PATCH,
            Self::Delete => MethodFilter::DELETE,
        }
    }

    /// The name in lower case, as OpenAPI spells it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// The router being assembled, with the `(path, method)` pairs it serves:
/// each route is recorded as it is added, so [`served`] is what the router
/// does.
pub(crate) struct Routes {
    router: Router<Shared>,
    served: Vec<(&'static str, Verb)>,
}

impl Routes {
    fn on<H, T>(mut self, verb: Verb, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        self.router = self.router.route(path, on(verb.filter(), handler));
        self.served.push((path, verb));
        self
    }

    /// `GET path` (and `HEAD`) answered by `handler`.
    pub(crate) fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        self.on(Verb::Get, path, handler)
    }

    /// `POST path` answered by `handler`.
    pub(crate) fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        self.on(Verb::Post, path, handler)
    }

    /// `PUT path` answered by `handler`.
    pub(crate) fn put<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        self.on(Verb::Put, path, handler)
    }

    /// `PATCH path` answered by `handler`.
    pub(crate) fn patch<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        self.on(Verb::Patch, path, handler)
    }

    /// `DELETE path` answered by `handler`.
    pub(crate) fn delete<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        self.on(Verb::Delete, path, handler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `ROUTES` is exactly what the router serves, each pair once.
    #[test]
    fn routes_table_is_what_the_router_serves() {
        let served = served();
        let set: BTreeSet<_> = served.iter().copied().collect();
        assert_eq!(set.len(), served.len(), "a route is added twice");
        let table: BTreeSet<_> = ROUTES
            .iter()
            .flat_map(|(path, methods)| methods.iter().map(move |m| (*path, *m)))
            .collect();
        assert_eq!(set, table);
    }
}
