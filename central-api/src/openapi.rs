//! The OpenAPI 3.0 document served at `/v1/openapi.json`.

/// The document.
pub fn document() -> serde_json::Value {
    serde_json::json!({"openapi": "3.0.3"})
}
