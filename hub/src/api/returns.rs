//! `POST /v1/returns/check` (client certificate, identified as for
//! `/v1/sync`): a store asks whether a return across stores or channels
//! may be taken (`tally_sync::returns::ReturnCheckRequest`). The writer
//! finds the original chain-wide, bounds the return by it net of every
//! return anywhere, and claims its units in one durable transaction
//! (`crate::storage::returns`). Answers `200` with the
//! `tally_sync::returns::ReturnCheck`, `404 unknown_original` when the hub
//! holds no original for it, `409` with the rules' refusal (e.g.
//! `exceeds_sale` with what is returnable), `422` for a malformed body.
//! And `GET /v1/returns` (admin): the returns across stores and channels
//! the hub counted, for HQ.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tally_sync::error_body::ErrorBody;
use tally_sync::returns::ReturnCheckRequest;
use tally_sync::Refusal;
use tracing::info;

use super::{error, store_json, write_error, AppState};
use crate::storage::returns::CheckResult;
use crate::tls::Peer;

/// Largest check body (a return's lines).
const MAX_CHECK_BODY: usize = 256 * 1024;

/// The handler.
pub(super) async fn check(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (who, _slot, req): (_, _, ReturnCheckRequest) = match store_json(
        &st,
        &peer,
        "/v1/returns/check",
        &headers,
        body,
        MAX_CHECK_BODY,
        "return check",
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    if req.lines.is_empty() || req.lines.len() > tally_sync::limits::MAX_LINES {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("a return has 1 to {} lines", tally_sync::limits::MAX_LINES),
        );
    }
    if let Some(id) = &req.order_id {
        if !tally_sync::fulfilment::valid_order_id(id) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!(
                    "order_id must be 1 to {} printable ASCII characters",
                    tally_sync::fulfilment::MAX_ORDER_ID_BYTES
                ),
            );
        }
    }
    let return_id = req.return_id;
    match st
        .writer
        .check_return(req, who.location.clone(), st.clock.now_ms())
        .await
    {
        Ok(CheckResult::Authorized(check)) => {
            info!(store = %who.replica, %return_id, original = %check.original.id, at = %check.original.location, "Return checked chain-wide.");
            Json(*check).into_response()
        }
        Ok(CheckResult::UnknownOriginal(why)) => {
            error(StatusCode::NOT_FOUND, "unknown_original", why)
        }
        Ok(CheckResult::Refused(Refusal::Invalid(why))) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why)
        }
        Ok(CheckResult::Refused(refusal)) => (
            StatusCode::CONFLICT,
            Json(ErrorBody::of_refusal(&refusal, true)),
        )
            .into_response(),
        Err(e) => write_error(e),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/returns?limit=N` (admin token): the latest returns taken at
/// another store than their sale's, or of a web order, newest first
/// (`limit` 1–1,000, default 100).
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: super::admin::QueryResult<ListQuery>,
) -> Result<Json<serde_json::Value>, Response> {
    let q = super::admin::admin_query(&st, &headers, query, "limit is 1 to 1000")?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let found = super::read_storage(&st, move |s| s.cross_returns(limit)).await?;
    Ok(Json(serde_json::json!({
        "returns": found.iter().map(|r| serde_json::json!({
            "return_id": r.return_id,
            "store": r.store,
            "original_id": r.original_id,
            "original_store": r.original_store,
            "original_kind": r.original_kind,
            "units": r.units,
            "refund_minor": r.refund_minor,
            "checked": r.checked,
            "at": tally_sync::timestamp::rfc3339(r.at_ms),
        })).collect::<Vec<_>>(),
    })))
}
