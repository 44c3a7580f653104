//! Transfers of stock between stores (issue 22), the store's side:
//! `POST /v1/transfers` sends units to another store (they leave this
//! store's rights at once and are in transit), `POST
//! /v1/transfers/{id}/received` receives a transfer sent here (known from
//! the hub's pages), `GET /v1/transfers?status=…` and `GET
//! /v1/transfers/{id}` list them. Both moves are commands of the core
//! (`Command::TransferOut` / `TransferIn`), durable before the answer and
//! synced like sales.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::{Extension, Json};
use tally_agent_api::answers::{TransferList, TransferView};
use tally_agent_api::requests::{TransferReceivedRequest, TransferRequest};
use tally_sync::command::{Command, ReceiptLine};
use tally_sync::fulfilment::valid_order_id;
use tally_sync::transfer::{Transfer, TransferStatus};
use tally_sync::{Epc, EventId, LocationId};

use super::guard::Till;
use super::json::ApiJson;
use super::pages::{self, PageQuery};
use super::{AppState, ErrorAnswer};

fn transfer_id(id: &str) -> Result<(), ErrorAnswer> {
    if valid_order_id(id) {
        Ok(())
    } else {
        Err(ErrorAnswer::Invalid(format!(
            "transfer id {id:?}: 1 to {} printable ASCII characters",
            tally_sync::fulfilment::MAX_ORDER_ID_BYTES
        )))
    }
}

fn show(state: &AppState, t: &Transfer) -> TransferView {
    TransferView::of(t, &state.db.who().location, |g| pages::name(state, g))
}

/// `POST /v1/transfers`: 201 with the transfer in transit, 200 on a
/// retry, 409 `insufficient_stock` beyond this store's rights, 422 for a
/// bad body or an id that names another transfer.
pub(super) async fn send(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response, ErrorAnswer> {
    let staff = super::commands::staff(till, body.cashier, body.till)?;
    let staff = super::sessions::session_staff(&state, &headers, staff)?;
    let to = LocationId::new(&body.to_store)
        .map_err(|e| ErrorAnswer::Invalid(format!("to_store: {e}")))?;
    if body.lines.is_empty() {
        return Err(ErrorAnswer::Invalid("lines must not be empty".into()));
    }
    let mut lines = Vec::with_capacity(body.lines.len());
    for l in body.lines {
        let gtin = super::commands::gtin(&l.gtin)?;
        let qty = u64::try_from(l.qty)
            .ok()
            .filter(|q| *q > 0)
            .ok_or_else(|| ErrorAnswer::Invalid(format!("qty must be > 0 for {gtin}")))?;
        let epc = l
            .epc
            .map(|e| Epc::from_hex(&e).map_err(|err| ErrorAnswer::Invalid(err.to_string())))
            .transpose()?;
        lines.push(ReceiptLine { gtin, qty, epc });
    }
    let id = body.transfer_id;
    transfer_id(&id)?;
    // A retry of a transfer posted without an event id: the transfer id
    // finds the event (and a changed request is refused as one).
    let event_id = match body.event_id {
        Some(e) => Some(e),
        None => sent_event(&state, &id).await?,
    };
    super::commands::submit(
        &state,
        Command::TransferOut {
            id: event_id,
            transfer_id: id,
            to,
            lines,
            staff,
        },
    )
    .await
}

/// The id of the event that sent transfer `id` from here, if it was.
async fn sent_event(state: &AppState, id: &str) -> Result<Option<EventId>, ErrorAnswer> {
    let key = id.to_string();
    let here = state.db.who().location.clone();
    let known = state.db.read_blocking(move |db| db.transfer(&key)).await?;
    Ok(known.filter(|t| t.from == here).and_then(|t| t.sent_event))
}

/// `POST /v1/transfers/{id}/received`: 201 with the units added here, 200
/// on a retry of its `event_id`, 404 `unknown_transfer` for a transfer
/// this store has not heard of (yet), 409 `transfer_received` when it
/// was received already.
pub(super) async fn receive(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<TransferReceivedRequest>,
) -> Result<Response, ErrorAnswer> {
    transfer_id(&id)?;
    let staff = super::commands::staff(till, body.cashier, body.till)?;
    let staff = super::sessions::session_staff(&state, &headers, staff)?;
    super::commands::submit(
        &state,
        Command::TransferIn {
            id: body.event_id,
            transfer_id: id,
            staff,
        },
    )
    .await
}

/// `GET /v1/transfers?status=in_transit|received|all&after=ID&limit=N`.
pub(super) async fn list(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<TransferList>, ErrorAnswer> {
    let statuses = match q.status.as_deref().unwrap_or("in_transit") {
        "all" => vec![TransferStatus::InTransit, TransferStatus::Received],
        other => vec![TransferStatus::from_name(other).ok_or_else(|| {
            ErrorAnswer::Invalid(format!(
                "status {other:?}: one of in_transit, received, all"
            ))
        })?],
    };
    let (limit, after) = (q.limit(), q.after);
    let (transfers, next) = pages::page(
        &state,
        limit,
        move |db| db.transfers(&statuses, &after, limit),
        |t| t.transfer_id.clone(),
        show,
    )
    .await?;
    Ok(Json(TransferList { next, transfers }))
}

/// `GET /v1/transfers/{id}`.
pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TransferView>, ErrorAnswer> {
    transfer_id(&id)?;
    let key = id.clone();
    let t = state
        .db
        .read_blocking(move |db| db.transfer(&key))
        .await?
        .ok_or_else(|| ErrorAnswer::NotFound(format!("no transfer {id} is known here")))?;
    Ok(Json(pages::one(&state, t, show).await?))
}
