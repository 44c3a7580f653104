//! The handlers that read: a sale, a return, an item's stock or catalog
//! entry, the agent's status and its metrics. Each reads one redb
//! snapshot on the blocking pool and answers a `tally_agent_api::answers`
//! body.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tally_agent_api::answers::{AgentStatus, ReturnView, SaleView};
use tally_sync::message::CatalogItem;
use tally_sync::timestamp::rfc3339;
use tally_sync::EventId;

use super::commands::gtin;
use super::{AppState, ErrorAnswer};

/// The event id in a `GET /v1/{what}s/{id}` path.
fn path_id(what: &str, id: &str) -> Result<EventId, ErrorAnswer> {
    id.parse()
        .map_err(|e| ErrorAnswer::Invalid(format!("{what} id {id:?}: {e}")))
}

fn not_found(what: &str, id: EventId) -> ErrorAnswer {
    ErrorAnswer::NotFound(format!("no {what} {id} is recorded here"))
}

pub(super) async fn get_sale(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SaleView>, ErrorAnswer> {
    let id = path_id("sale", &id)?;
    let (event, returned) = state
        .db
        .read_blocking(move |db| db.event_and_returned(&id))
        .await?
        .ok_or_else(|| not_found("sale", id))?;
    SaleView::of(&event, &returned)
        .map(Json)
        .ok_or_else(|| not_found("sale", id))
}

pub(super) async fn get_return(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReturnView>, ErrorAnswer> {
    let id = path_id("return", &id)?;
    let event = state
        .db
        .read_blocking(move |db| db.event(&id))
        .await?
        .ok_or_else(|| not_found("return", id))?;
    ReturnView::of(&event)
        .map(Json)
        .ok_or_else(|| not_found("return", id))
}

pub(super) async fn get_stock(
    State(state): State<AppState>,
    Path(g): Path<String>,
) -> Result<Response, ErrorAnswer> {
    let g = gtin(&g)?;
    let stock = state.db.read_blocking(move |db| db.stock(g)).await?;
    Ok(Json(stock).into_response())
}

/// `GET /v1/catalog/{gtin}`: one item's name and price (the cashier
/// terminal's lookup).
pub(super) async fn get_catalog_item(
    State(state): State<AppState>,
    Path(g): Path<String>,
) -> Result<Json<CatalogItem>, ErrorAnswer> {
    let g = gtin(&g)?;
    state
        .db
        .read_blocking(move |db| db.catalog_item(g))
        .await?
        .map(Json)
        .ok_or_else(|| ErrorAnswer::NotFound(format!("item {g} is not in the catalog")))
}

pub(super) async fn get_status(State(state): State<AppState>) -> Json<AgentStatus> {
    // Best effort: a storage failure must not hide the rest of the
    // status (the sync error, the outbox) when it matters most.
    let catalog_version = match state.db.read_blocking(|db| db.catalog_version()).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "Reading the catalog version for the status failed.");
            0
        }
    };
    let who = state.db.who();
    let sync = state.sync.snapshot();
    Json(AgentStatus {
        last_sync_at: sync.last_sync_at_ms.map(rfc3339),
        last_sync_ms: sync.last_sync_at_ms,
        online: sync.online,
        live: sync.live_since_ms.is_some(),
        live_since: sync.live_since_ms.map(rfc3339),
        outbox_events: state.metrics.outbox_depth(),
        replica_id: who.replica.clone(),
        store_id: who.location.clone(),
        sync_error: sync.error,
        hub_clock_offset_ms: sync.hub_clock_offset_ms,
        version: env!("CARGO_PKG_VERSION").to_string(),
        cashier_sign_in: state.cashiers.any(),
        catalog_version,
    })
}

pub(super) async fn get_metrics(State(state): State<AppState>) -> Result<Response, ErrorAnswer> {
    let sessions = state.sessions.open_at(std::time::Instant::now());
    state
        .metrics
        .cashier_sessions
        .set(i64::try_from(sessions).unwrap_or(i64::MAX));
    let text = state
        .metrics
        .encode()
        .map_err(|e| ErrorAnswer::Unavailable(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
