//! [`ApiJson`]: `axum::Json` with the API's rejections (422 invalid, 413
//! too large), parsed with `serde_json` directly; only a body that fails
//! goes through `axum::Json` again, for its rejection (which names the
//! failing field: it tracks the path of every field it parses, which costs
//! three times the parse itself on every sale).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;

use super::ErrorAnswer;

/// A JSON request body of type `T` (see the module docs).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Whether a `Content-Type` is JSON the way `axum::Json` accepts it
/// (`application/json` or `application/*+json`, parameters allowed).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    ty.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub
                .rsplit_once('+')
                .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json")))
}

/// A body axum refused (JSON or bytes): 413 for a body over the limit,
/// 422 for anything else.
fn body_rejection(status: StatusCode, text: String) -> ErrorAnswer {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorAnswer::TooLarge(text)
    } else {
        ErrorAnswer::Invalid(text)
    }
}

fn json_rejection(r: JsonRejection) -> ErrorAnswer {
    body_rejection(r.status(), r.body_text())
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ErrorAnswer;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            // axum words the rejection (missing or wrong content type).
            return match Json::<T>::from_request(req, state).await {
                Ok(Json(v)) => Ok(ApiJson(v)),
                Err(r) => Err(json_rejection(r)),
            };
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r.status(), r.body_text()))?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(ApiJson(v)),
            Err(_) => match Json::<T>::from_bytes(&bytes) {
                Ok(Json(v)) => Ok(ApiJson(v)),
                Err(r) => Err(json_rejection(r)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_those_axum_accepts() {
        let with = |ct: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&h)
        };
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
        ] {
            assert!(with(ok), "{ok}");
        }
        for no in [
            "text/plain",
            "application/jsonx",
            "json",
            "application/xml",
            "",
        ] {
            assert!(!with(no), "{no}");
        }
        assert!(!is_json(&axum::http::HeaderMap::new()));
    }
}
