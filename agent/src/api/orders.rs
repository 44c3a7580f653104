//! This store's part of the chain's orders (issue 22): the pick list
//! (`GET /v1/orders?status=open`), one allocation (`GET /v1/orders/{id}`)
//! and its moves (`POST /v1/orders/{id}/picked`, `/collected`,
//! `/shipped`), recorded through the command core like a sale
//! (`Command::Fulfil`: an event synced to the hub, durable before the
//! answer, working offline).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tally_agent_api::answers::{FulfilmentRecorded, OrderList, OrderView, COMMITTED};
use tally_agent_api::requests::FulfilRequest;
use tally_sync::command::{Command, Outcome};
use tally_sync::fulfilment::{valid_order_id, OrderAllocation, Status};
use tally_sync::EventKind;

use super::guard::Till;
use super::json::ApiJson;
use super::pages::{self, PageQuery};
use super::{AppState, ErrorAnswer};

/// The statuses a `status=` filter names: `open` (allocated or picked,
/// the pick list, and the default), `all`, or one status.
fn statuses(filter: Option<&str>) -> Result<Vec<Status>, ErrorAnswer> {
    use Status::*;
    Ok(match filter.unwrap_or("open") {
        "open" => vec![Allocated, Picked],
        "all" => vec![Allocated, Picked, Collected, Shipped, Cancelled],
        "allocated" => vec![Allocated],
        "picked" => vec![Picked],
        "collected" => vec![Collected],
        "shipped" => vec![Shipped],
        "cancelled" => vec![Cancelled],
        other => {
            return Err(ErrorAnswer::Invalid(format!(
            "status {other:?}: one of open, all, allocated, picked, collected, shipped, cancelled"
        )))
        }
    })
}

fn order_id(id: &str) -> Result<(), ErrorAnswer> {
    if valid_order_id(id) {
        Ok(())
    } else {
        Err(ErrorAnswer::Invalid(format!(
            "order id {id:?}: 1 to {} printable ASCII characters",
            tally_sync::fulfilment::MAX_ORDER_ID_BYTES
        )))
    }
}

/// The view of `a`, items named from the catalog.
fn show(state: &AppState, a: &OrderAllocation) -> OrderView {
    OrderView::of(a, |g| pages::name(state, g))
}

/// `GET /v1/orders?status=open&after=ID&limit=N`.
pub(super) async fn list(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<OrderList>, ErrorAnswer> {
    let statuses = statuses(q.status.as_deref())?;
    let (limit, after) = (q.limit(), q.after);
    let (orders, next) = pages::page(
        &state,
        limit,
        move |db| db.allocations(&statuses, &after, limit),
        |a| a.order_id.clone(),
        show,
    )
    .await?;
    Ok(Json(OrderList { next, orders }))
}

async fn allocation(state: &AppState, id: &str) -> Result<OrderAllocation, ErrorAnswer> {
    order_id(id)?;
    let key = id.to_string();
    state
        .db
        .read_blocking(move |db| db.allocation(&key))
        .await?
        .ok_or_else(|| ErrorAnswer::NotFound(format!("no order {id} is allocated to this store")))
}

/// `GET /v1/orders/{id}`.
pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ErrorAnswer> {
    let a = allocation(&state, &id).await?;
    Ok(Json(pages::one(&state, a, show).await?))
}

/// `POST /v1/orders/{id}/{picked|collected|shipped}`: 201 with the move
/// recorded, 200 on a retry of its `fulfilment_id` or when the allocation
/// is there already (then `fulfilment_id` is null: nothing new recorded),
/// 404 `not_found` for an order not allocated here (yet), 409
/// `order_status` for a move its status does not allow.
pub(super) async fn fulfil(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    Path((id, to)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<FulfilRequest>,
) -> Result<Response, ErrorAnswer> {
    let to = match to.as_str() {
        "picked" => Status::Picked,
        "collected" => Status::Collected,
        "shipped" => Status::Shipped,
        other => {
            return Err(ErrorAnswer::NotFound(format!(
                "no move {other:?}: picked, collected or shipped"
            )))
        }
    };
    let staff = super::commands::staff(till, body.cashier, body.till)?;
    let staff = super::sessions::session_staff(&state, &headers, staff)?;
    let current = allocation(&state, &id).await?;
    if current.status == to && body.fulfilment_id.is_none() {
        return Ok((
            StatusCode::OK,
            Json(FulfilmentRecorded {
                fulfilment_id: None,
                order_id: id,
                order_status: to,
                status: COMMITTED.into(),
            }),
        )
            .into_response());
    }
    let cmd = Command::Fulfil {
        id: body.fulfilment_id,
        order_id: id,
        to,
        staff,
    };
    match state.committer.command(cmd).await? {
        Outcome::Recorded { event, new } => {
            let EventKind::Fulfilment { order_id, status } = event.kind else {
                return Err(ErrorAnswer::Invalid(format!(
                    "id {} is already used by a {}",
                    event.id,
                    event.kind.name()
                )));
            };
            let code = if new {
                tracing::info!(order_id = %order_id, status = status.name(), "Order allocation moved.");
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((
                code,
                Json(FulfilmentRecorded {
                    fulfilment_id: Some(event.id),
                    order_id,
                    order_status: status,
                    status: COMMITTED.into(),
                }),
            )
                .into_response())
        }
        Outcome::Refused { refusal, .. } => Err(ErrorAnswer::Refused {
            refusal,
            hub_reachable: true,
        }),
    }
}
