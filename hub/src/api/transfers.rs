//! `GET /v1/transfers?status=in_transit|received&after=ID&limit=N` and
//! `GET /v1/transfers/{id}` (admin token): transfers between stores as
//! the stores' syncs reported them, with whether each in transit is
//! overdue (known to the hub for longer than `--transfer-overdue-secs`).
//! `status=received&order=recent` lists the latest receipts first.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use tally_sync::timestamp::rfc3339;
use tally_sync::transfer::TransferStatus;

use super::{error, read_storage, AppState};
use crate::storage::transfers::HubTransfer;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    after: String,
    #[serde(default)]
    limit: Option<usize>,
    /// `id` (the default: by id, paged) or `recent` (received only: the
    /// latest receipts first, one page).
    #[serde(default)]
    order: Option<String>,
}

/// A transfer as HQ sees it at hub time `now_ms`.
fn view(t: &HubTransfer, now_ms: u64, overdue_ms: u64) -> serde_json::Value {
    let x = &t.transfer;
    let overdue = t.overdue
        || (x.status == TransferStatus::InTransit
            && now_ms.saturating_sub(t.seen_at_ms) > overdue_ms);
    serde_json::json!({
        "transfer_id": x.transfer_id,
        "from_store": x.from,
        "to_store": x.to,
        "status": x.status,
        "overdue": overdue,
        "sent_at": rfc3339(x.sent_at_ms),
        "received_at": t.received_at_ms.map(rfc3339),
        "units": x.units().values().fold(0u64, |a, n| a.saturating_add(*n)),
        "lines": x.lines,
    })
}

/// The list.
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: super::admin::QueryResult<ListQuery>,
) -> Result<Json<serde_json::Value>, Response> {
    const USAGE: &str = "status is in_transit or received; after a transfer id; limit 1 to 1000; order id, or recent with status=received";
    let q = super::admin::admin_query(&st, &headers, query, USAGE)?;
    let bad = || error(StatusCode::BAD_REQUEST, "invalid_query", USAGE);
    let status =
        TransferStatus::from_name(q.status.as_deref().unwrap_or("in_transit")).ok_or_else(bad)?;
    let recent = match q.order.as_deref() {
        None | Some("id") => false,
        Some("recent") if status == TransferStatus::Received && q.after.is_empty() => true,
        Some(_) => return Err(bad()),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let after = q.after;
    let found = read_storage(&st, move |s| {
        if recent {
            s.transfers_received_recently(limit)
        } else {
            s.transfers(status, &after, limit)
        }
    })
    .await?;
    let (now, overdue) = (st.clock.now_ms(), st.settings.transfer_overdue_ms);
    let next = (!recent && found.len() == limit)
        .then(|| found.last().map(|t| t.transfer.transfer_id.clone()))
        .flatten();
    Ok(Json(serde_json::json!({
        "transfers": found.iter().map(|t| view(t, now, overdue)).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// One transfer; 404 for an id no store reported.
pub(super) async fn transfer(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Response> {
    super::admin::authorized(&st, &headers)?;
    let found = read_storage(&st, move |s| s.transfer(&id)).await?;
    match found {
        Some(t) => Ok(Json(view(
            &t,
            st.clock.now_ms(),
            st.settings.transfer_overdue_ms,
        ))),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no store reported a transfer with this id",
        )),
    }
}
