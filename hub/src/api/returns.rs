//! `POST /v1/returns/check` (client certificate, identified as for
//! `/v1/sync`): a store asks whether a return across stores or channels
//! may be taken (`tally_sync::returns::ReturnCheckRequest`). The writer
//! finds the original chain-wide, bounds the return by it net of every
//! return anywhere, and claims its units in one durable transaction
//! (`crate::storage::returns`). Answers `200` with the
//! `tally_sync::returns::ReturnCheck`, `404 unknown_original` when the hub
//! holds no original for it, `409` with the rules' refusal (e.g.
//! `exceeds_sale` with what is returnable), `422` for a malformed body.

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
    let return_id = req.return_id;
    match st.writer.check_return(req, st.clock.now_ms()).await {
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
