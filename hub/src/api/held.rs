//! Events syncs refused, held for HQ (`storage::held`): `GET /v1/held`
//! lists them with why; `POST /v1/held/{id}/admit` admits one after
//! review (checked as a synced event except for its date), after which
//! its store's syncs go through again; one dated past the usual window
//! lets the store's events dated alike through for a week. Admin token
//! required.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use tally_sync::timestamp::rfc3339;
use tally_sync::EventId;
use tracing::{info, warn};

use super::admin::authorized;
use super::{error, read_storage, write_error, AppState};
use crate::storage::held::AdmitResult;

/// A store's date allowance as the API shows it (here and in
/// `GET /v1/stores`).
pub(super) fn allowance_json(a: &tally_sync::limits::DateAllowance) -> Value {
    json!({
        "ahead_ms": a.ahead_ms,
        "behind_ms": a.behind_ms,
        "until": rfc3339(a.until_ms),
    })
}

/// `GET /v1/held`: every held event (at most
/// [`MAX_HELD_PER_STORE`](crate::storage::held::MAX_HELD_PER_STORE) per
/// store), in id order.
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Response> {
    authorized(&st, &headers)?;
    let held = read_storage(&st, |s| s.held_events(10_000)).await?;
    let list: Vec<Value> = held
        .into_iter()
        .map(|h| {
            json!({
                "event_id": h.event.id,
                "store": h.store,
                "reason": h.reason,
                "held_at": rfc3339(h.held_at_ms),
                "event_at": rfc3339(h.event.at_ms),
                // Held for its date: how far the store's events came from
                // the hub's clock, which admitting it lets through for a
                // week (capped; see `POST …/admit`).
                "clock_offset_ms": h.clock_offset_ms(),
                "event": h.event,
            })
        })
        .collect();
    Ok(Json(json!({ "held": list })))
}

/// `POST /v1/held/{id}/admit`: 200 admitted, 404 not held, 409 still
/// refused (for a reason other than its date; it stays held).
pub(super) async fn admit(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    authorized(&st, &headers)?;
    let id: EventId = id
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_event_id", e))?;
    match st
        .writer
        .admit_held(id, st.clock.now_ms())
        .await
        .map_err(write_error)?
    {
        AdmitResult::Admitted {
            store,
            dates_allowed,
        } => {
            info!(event = %id, %store, ?dates_allowed, "Held event admitted by HQ.");
            // The store's sync waits on this event (it keeps sending it):
            // it hears at once, wherever its live link is.
            if let Ok(location) = tally_sync::LocationId::new(&store) {
                st.links
                    .notify(&location, tally_sync::link::Notice::SyncNow);
            }
            let allowed = dates_allowed.as_ref().map(allowance_json);
            Ok(Json(
                json!({ "admitted": id, "store": store, "dates_allowed": allowed }),
            ))
        }
        AdmitResult::NotHeld => Err(error(
            StatusCode::NOT_FOUND,
            "not_held",
            format!("no event {id} is held"),
        )),
        AdmitResult::Refused(why) => {
            warn!(event = %id, %why, "Held event still refused.");
            Err(error(StatusCode::CONFLICT, "still_refused", why))
        }
    }
}
