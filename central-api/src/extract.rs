//! Request extractors whose rejections are JSON [`ErrorBody`](twostep_common::api::ErrorBody)
//! answers, and the credentials of a request.

use crate::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use twostep_common::api::ApiErrorCode;

/// A JSON body; malformed JSON is 400 `malformed_json`, a body over the
/// limit 413 `body_too_large`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rej) => Err(json_rejection(&rej)),
        }
    }
}

fn json_rejection(rej: &JsonRejection) -> ApiError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            ApiErrorCode::BodyTooLarge,
            "the request body is larger than the registry accepts (max_body_bytes)",
        );
    }
    let message = match rej {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a JSON body with Content-Type: application/json".to_owned()
        }
        other => other.body_text(),
    };
    ApiError::new(ApiErrorCode::MalformedJson, message)
}

/// Path parameters; undecodable segments are 400 `invalid_path`.
pub struct PathArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|rej| ApiError::new(ApiErrorCode::InvalidPath, rej.body_text()))
    }
}

/// Query parameters; malformed ones are 400 `invalid_query`.
pub struct QueryArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|rej| ApiError::new(ApiErrorCode::InvalidQuery, rej.body_text()))
    }
}

/// The TCP peer's address, when the server recorded it.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

impl Peer {
    /// The address as text.
    pub fn text(&self) -> Option<String> {
        self.0.map(|a| a.ip().to_string())
    }
}

/// The bearer credential of `Authorization: Bearer X`.
///
/// # Errors
/// 401 `unauthorized` when the header is missing or not a bearer credential.
pub fn bearer(headers: &HeaderMap) -> Result<&[u8], ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer credential"))?
        .as_bytes();
    let scheme = value.get(..7).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return Err(ApiError::unauthorized(
            "the Authorization header is not a Bearer credential",
        ));
    }
    let token = value.get(7..).unwrap_or_default().trim_ascii();
    if token.is_empty() {
        return Err(ApiError::unauthorized("empty Bearer credential"));
    }
    Ok(token)
}
