//! `POST /v1/returns`: goods brought back. A return this store can check
//! itself (naming one of its own sales, offline) is bounded by it here; a
//! return naming another store's sale, a web order or a tag sold anywhere
//! in the chain is checked with the hub while it can be reached
//! (`tally_sync::returns`: the hub bounds it chain-wide and holds its
//! units) and then recorded bounded and priced by the original the hub
//! found, with no manager's approval. The hub reachable, every return
//! naming a sale is checked there, so returns at several stores against
//! one sale never add up beyond it. Unreachable, the store's policy
//! decides (`[sync] foreign_returns_offline`: a manager's approval, or a
//! refusal).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tally_agent_api::requests::ReturnRequest;
use tally_sync::command::{Command, LineIn, Staff};
use tally_sync::error_body::ErrorBody;
use tally_sync::returns::{ReturnCheck, ReturnCheckRequest, ReturnLineCheck};
use tally_sync::{EventId, EventKind};

use super::commands::{approved, lines, staff, submit};
use super::guard::Till;
use super::json::ApiJson;
use super::{AppState, ErrorAnswer};
use crate::hub_client::ReturnCheckError;
use crate::sync::ForeignReturns;

/// The handler.
pub(super) async fn post_return(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<ReturnRequest>,
) -> Result<Response, ErrorAnswer> {
    let lines = lines(body.lines)?;
    let staff = staff(till, body.cashier, body.till)?;
    let staff = super::sessions::signed_staff(&state, &headers, staff)?;
    let order_id = body.order_id.as_deref();
    if let Some(order_id) = order_id {
        if !tally_sync::fulfilment::valid_order_id(order_id) {
            return Err(ErrorAnswer::Invalid(format!(
                "order_id {order_id:?}: 1 to {} printable ASCII characters",
                tally_sync::fulfilment::MAX_ORDER_ID_BYTES
            )));
        }
    }
    // A retry of a return recorded here is answered from what was
    // recorded, not checked with the hub again: the hub would count the
    // return against itself (its units, its tags no longer sold) and
    // refuse it, or hold a claim nobody redeems. The original it named
    // (found by web order or tag at the first check) is the one compared.
    let recorded = match body.return_id {
        Some(id) => state.db.read_blocking(move |db| db.event(&id)).await?,
        None => None,
    };
    let mut id = body.return_id;
    let mut original_sale = body.original_sale_id;
    let mut checked = None;
    let approval = if let Some(event) = recorded {
        if let (None, EventKind::Return { original_sale: o }) = (original_sale, &event.kind) {
            original_sale = *o;
        }
        // Checked when it was recorded: the command core compares it and
        // applies none anew (see `approved`).
        body.approval.map(|o| o.approval())
    } else {
        let approval = approved(&state, body.approval, None).await?;
        let names_something = body.original_sale_id.is_some()
            || order_id.is_some()
            || lines.iter().any(|l| l.epc.is_some());
        if names_something {
            let ask = Ask {
                id,
                lines: &lines,
                original_sale: body.original_sale_id,
                order_id,
            };
            match check_with_hub(&state, ask).await? {
                Checked::ByHub(check, return_id) => {
                    // The original the hub found (by web order or tag) is
                    // the one the return names: a retry, checked again,
                    // names it too.
                    original_sale = Some(check.original.id);
                    checked = Some(check);
                    id = Some(return_id);
                }
                Checked::Here => {}
                Checked::Refused(answer) => return Ok(answer),
            }
        }
        approval
    };
    let cmd = Command::Return {
        id,
        lines,
        original_sale,
        staff: Staff { approval, ..staff },
        checked,
    };
    submit(&state, cmd).await
}

/// A return to check.
struct Ask<'a> {
    id: Option<EventId>,
    lines: &'a [LineIn],
    original_sale: Option<EventId>,
    order_id: Option<&'a str>,
}

/// What asking the hub came to.
enum Checked {
    /// Checked by the hub under this return id: record it bounded by the
    /// original the hub found.
    ByHub(Box<ReturnCheck>, EventId),
    /// Left to this store's rules (and the offline policy, which let it).
    Here,
    /// Answer this: nothing recorded.
    Refused(Response),
}

/// Whether this store can bound the return itself: it names one of this
/// store's own sales, and no web order.
async fn checkable_here(state: &AppState, ask: &Ask<'_>) -> bool {
    let (Some(sale), None) = (ask.original_sale, ask.order_id) else {
        return false;
    };
    matches!(
        state.db.read_blocking(move |db| db.event(&sale)).await,
        Ok(Some(e)) if matches!(e.kind, EventKind::Sale { .. })
    )
}

/// Asks the hub to check the return when it can be reached; else applies
/// the offline policy to a return this store cannot check itself.
async fn check_with_hub(state: &AppState, ask: Ask<'_>) -> Result<Checked, ErrorAnswer> {
    let Some((hub, wait)) = state.rights.hub_if_reachable() else {
        return Ok(offline(state, &ask, "the hub cannot be reached").await);
    };
    // The hub holds the units under the return's id: fixed now, so a
    // retry is the same return there and here.
    let return_id = ask.id.unwrap_or_else(|| state.rights.fresh_id());
    let req = ReturnCheckRequest {
        return_id,
        original_sale: ask.original_sale,
        order_id: ask.order_id.map(str::to_string),
        lines: ask.lines.iter().map(line_check).collect(),
    };
    match hub.check_return(&req, wait).await {
        Ok(check) => {
            tracing::info!(return_id = %return_id, original = %check.original.id, at = %check.original.location, "Return checked with the hub.");
            Ok(Checked::ByHub(Box::new(check), return_id))
        }
        // Not at the hub (yet): this store's own rules, as offline.
        Err(ReturnCheckError::Unknown(why)) => Ok(offline(state, &ask, &why).await),
        Err(ReturnCheckError::Refused(body)) => Ok(Checked::Refused(refused(*body))),
        Err(ReturnCheckError::Unreachable(why)) => {
            tracing::warn!(%why, "Return not checked: the hub did not answer.");
            Ok(offline(state, &ask, "the hub did not answer").await)
        }
    }
}

fn line_check(l: &LineIn) -> ReturnLineCheck {
    ReturnLineCheck {
        gtin: l.gtin,
        qty: l.qty,
        epc: l.epc.clone(),
    }
}

/// The hub's refusal, answered as the agent answers its own (409 with the
/// rule's code and details; 422 for invalid).
fn refused(body: ErrorBody) -> Response {
    let status = if body.error == "invalid" {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::CONFLICT
    };
    (status, Json(body)).into_response()
}

/// A return the hub did not check: one this store can bound goes on; one
/// it cannot follows the offline policy (approve: the rules then ask a
/// manager's approval; refuse: 409 `hub_unreachable`).
async fn offline(state: &AppState, ask: &Ask<'_>, why: &str) -> Checked {
    if checkable_here(state, ask).await {
        return Checked::Here;
    }
    match state.foreign_returns_offline {
        ForeignReturns::Approve => Checked::Here,
        ForeignReturns::Refuse => Checked::Refused(
            (
                StatusCode::CONFLICT,
                Json(ErrorBody::new(
                    "hub_unreachable",
                    format!(
                        "this return names a sale, web order or tag this store cannot check, and {why}: \
                         the store's policy refuses such returns until the hub can check them"
                    ),
                )),
            )
                .into_response(),
        ),
    }
}
