//! `POST /v1/rights`: a store asks for the rights the hub holds at its
//! location (rights on demand, `tally_sync::rights`), sending its own
//! entries of that counter, which the hub checks and merges like a sync's
//! delta (403 `forbidden_update` for a forged one). The store is
//! identified by its client certificate as for `/v1/sync`; the writer
//! grants from the hub's rights in one durable transaction, idempotent by
//! request id, and the answer (a `RightsGrant`, JSON) comes after the
//! commit.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tally_sync::rights::RightsRequest;
use tracing::{debug, info, warn};

use super::{error, invalid, store_json, write_error, AppState};
use crate::metrics::RightsOutcome;
use crate::storage::GrantResult;
use crate::tls::Peer;

/// Largest request body (a request is three fields).
const MAX_BODY: usize = 4 * 1024;

/// The handler.
pub(super) async fn rights(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (who, _slot, req): (_, _, RightsRequest) = match store_json(
        &st,
        &peer,
        "/v1/rights",
        &headers,
        body,
        MAX_BODY,
        "rights request",
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    if let Err(why) = req.check() {
        return invalid(why);
    }
    let (store, gtin, units) = (who.replica.clone(), req.gtin, req.units);
    let (outcome, grant) = match st.writer.grant(who, req, st.holds_at()).await {
        Ok(GrantResult::Granted(g)) => {
            let outcome = match g.granted {
                0 => RightsOutcome::Refused,
                n if n < g.asked => RightsOutcome::Partial,
                _ => RightsOutcome::Granted,
            };
            (outcome, g)
        }
        Ok(GrantResult::Replayed(g)) => (RightsOutcome::Replayed, g),
        Ok(GrantResult::Forged(why)) => {
            warn!(%store, %gtin, %why, "Rights request refused: forged entries; nothing written.");
            return error(StatusCode::FORBIDDEN, "forbidden_update", why);
        }
        Ok(GrantResult::IdConflict) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "request_id_conflict",
                "this request_id was already used for another request",
            )
        }
        Err(e) => return write_error(e),
    };
    let granted = if outcome == RightsOutcome::Replayed {
        0
    } else {
        grant.granted
    };
    st.metrics.rights(outcome, granted, started.elapsed());
    if grant.granted < units {
        info!(%store, %gtin, units, granted = grant.granted, "Rights requested, hub reserve short.");
    } else {
        debug!(%store, %gtin, units, "Rights granted on request.");
    }
    (StatusCode::OK, Json(grant)).into_response()
}
