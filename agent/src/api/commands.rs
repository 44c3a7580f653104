//! The handlers that record: sales, returns, receipts, counts and catalog
//! items. Each parses its body (`tally_agent_api::requests`) into a
//! [`Command`] (every bad value a 422 that names it), submits it to the
//! committer and answers 201 recorded or 200 retried id with the same
//! [`Recorded`] body, or the refusal.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use tally_agent_api::answers::{CatalogImported, Recorded};
use tally_agent_api::requests::{
    CountRequest, LineBody, OverrideRequest, ReceiptRequest, SaleRequest,
};
use tally_sync::command::{Approval, Command, LineIn, Outcome, ReceiptLine, Staff};
use tally_sync::message::CatalogRequest;
use tally_sync::{Epc, EventId, Gtin};

use super::guard::Till;
use super::json::ApiJson;
use super::{AppState, ErrorAnswer};
use crate::commit::CatalogStored;
use crate::rights::Ran;

/// Most catalog items in one `POST /v1/catalog` request.
pub const MAX_CATALOG_ITEMS: usize = 5_000;

pub(super) fn gtin(s: &str) -> Result<Gtin, ErrorAnswer> {
    Gtin::parse(s).map_err(|e| ErrorAnswer::Invalid(format!("gtin {s:?}: {e}")))
}

fn qty(gtin: Gtin, q: i64) -> Result<u64, ErrorAnswer> {
    u64::try_from(q)
        .ok()
        .filter(|&q| q > 0)
        .ok_or_else(|| ErrorAnswer::Invalid(format!("qty must be > 0 for {gtin}, got {q}")))
}

pub(super) fn lines(body: Vec<LineBody>) -> Result<Vec<LineIn>, ErrorAnswer> {
    if body.is_empty() {
        return Err(ErrorAnswer::Invalid("lines must not be empty".into()));
    }
    body.iter()
        .map(|l| l.line_in().map_err(ErrorAnswer::Invalid))
        .collect()
}

/// Who keys a command: the cashier as posted; the till as posted, or the
/// till whose token the request carried (a different till posted with a
/// till's token is refused). No approval: see [`approved`].
/// A staff id as posted (`what`: `cashier`, `till`), trimmed: not empty,
/// within the hub's bound, no control characters.
pub(super) fn staff_id(what: &str, v: Option<String>) -> Result<Option<String>, ErrorAnswer> {
    match v.map(|v| v.trim().to_string()) {
        Some(v) if v.is_empty() => Err(ErrorAnswer::Invalid(format!("{what} is empty"))),
        Some(v) if v.len() > tally_sync::limits::MAX_STAFF_ID_BYTES => {
            Err(ErrorAnswer::Invalid(format!(
                "{what} is longer than {} bytes",
                tally_sync::limits::MAX_STAFF_ID_BYTES
            )))
        }
        Some(v) if v.chars().any(char::is_control) => Err(ErrorAnswer::Invalid(format!(
            "{what} contains control characters"
        ))),
        other => Ok(other),
    }
}

pub(super) fn staff(
    token_till: Option<Extension<Till>>,
    cashier: Option<String>,
    till: Option<String>,
) -> Result<Staff, ErrorAnswer> {
    let cashier = staff_id("cashier", cashier)?;
    let till = match (token_till, staff_id("till", till)?) {
        (Some(Extension(Till(token))), Some(posted)) if posted != token => {
            return Err(ErrorAnswer::Invalid(format!(
                "till {posted:?} is not the till of this request's token ({token:?})"
            )))
        }
        (Some(Extension(Till(token))), _) => Some(token),
        (None, posted) => posted,
    };
    Ok(Staff {
        cashier,
        till,
        approval: None,
    })
}

pub(super) async fn submit(state: &AppState, cmd: Command) -> Result<Response, ErrorAnswer> {
    // Run to the end on a task of its own: a till that times out (or the
    // API's request timeout) drops this handler, not the command, whose
    // turn then lasts until its lost sale is written too.
    let state = state.clone();
    tokio::spawn(async move { run_to_answer(&state, cmd).await })
        .await
        .map_err(|e| ErrorAnswer::Unavailable(format!("the command's task failed: {e}")))?
}

/// [`submit`]'s work: one command per id at a time, its lost sale written
/// before the next.
async fn run_to_answer(state: &AppState, cmd: Command) -> Result<Response, ErrorAnswer> {
    let _turn = state.rights.turn(cmd.id()).await;
    let sale_units = crate::rights::sale_units(&cmd);
    let ran = state.rights.run(cmd).await?;
    let lost = sale_units.map(|(units, sale)| (units, sale.map(|id| ran.lost(id))));
    let Ran {
        outcome,
        hub_reachable,
        ..
    } = ran;
    match outcome {
        Outcome::Recorded { event, new } => {
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(Recorded::of(&event))).into_response())
        }
        Outcome::Refused { refusal, .. } => {
            if let (Some(why), Some((units, sale))) =
                (state.metrics.shortage(&refusal, hub_reachable), lost)
            {
                crate::rights::count_lost(&state.committer, why, units, sale).await;
            }
            Err(ErrorAnswer::Refused {
                refusal,
                hub_reachable,
            })
        }
    }
}

pub(super) async fn post_sale(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<SaleRequest>,
) -> Result<Response, ErrorAnswer> {
    let lines = lines(body.lines)?;
    let staff = staff(till, body.cashier, body.till)?;
    let staff = super::sessions::signed_staff(&state, &headers, staff)?;
    let cmd = Command::Sale {
        id: body.sale_id,
        lines,
        tenders: body.tenders,
        staff: Staff {
            approval: approved(&state, body.override_, body.sale_id).await?,
            ..staff
        },
    };
    submit(&state, cmd).await
}

/// The manager's approval a request carries (a sale's `override`, a
/// return's `approval`), once the manager's PIN is checked (on the
/// blocking pool: Argon2 is CPU work). An approval without approver or
/// reason goes on to the command core, which answers it 422.
///
/// A retry of a request already recorded under `id` is not checked
/// again: the command core answers what was recorded, or refuses the
/// retry if its approval differs, and applies no approval anew. So a
/// till that kept a sale in doubt across a restart (without the PIN,
/// never stored) learns its outcome.
pub(super) async fn approved(
    state: &AppState,
    posted: Option<OverrideRequest>,
    id: Option<EventId>,
) -> Result<Option<Approval>, ErrorAnswer> {
    let Some(o) = posted else {
        return Ok(None);
    };
    let approval = o.approval();
    if approval.approver.trim().is_empty() || approval.reason.trim().is_empty() {
        return Ok(Some(approval));
    }
    if let Some(id) = id {
        if state
            .db
            .read_blocking(move |db| db.event(&id))
            .await?
            .is_some()
        {
            return Ok(Some(approval));
        }
    }
    let managers = state.managers.clone();
    let checked = tokio::task::spawn_blocking(move || {
        managers.verify(
            o.approver.trim(),
            o.pin.as_deref(),
            std::time::Instant::now(),
        )
    })
    .await
    .map_err(|e| ErrorAnswer::Unavailable(e.to_string()))?;
    match checked {
        Ok(()) => {
            state.metrics.approval(true);
            Ok(Some(approval))
        }
        Err(e) => {
            state.metrics.approval(false);
            tracing::warn!(approver = %approval.approver, why = %e, "Manager approval refused.");
            Err(ErrorAnswer::Approval(e))
        }
    }
}

pub(super) async fn post_receipt(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<ReceiptRequest>,
) -> Result<Response, ErrorAnswer> {
    let staff = staff(till, body.cashier, body.till)?;
    let staff = super::sessions::session_staff(&state, &headers, staff)?;
    if body.lines.is_empty() {
        return Err(ErrorAnswer::Invalid("lines must not be empty".into()));
    }
    let lines = body
        .lines
        .into_iter()
        .map(|l| {
            let g = gtin(&l.gtin)?;
            let units = qty(g, l.qty)?;
            match l.epc {
                None => Ok(ReceiptLine::units(g, units)),
                Some(_) if units != 1 => Err(ErrorAnswer::Invalid(format!(
                    "a tagged line is one unit: qty must be 1 for {g}"
                ))),
                Some(e) => Epc::from_hex(&e)
                    .map(|epc| ReceiptLine::tagged(g, epc))
                    .map_err(|err| ErrorAnswer::Invalid(err.to_string())),
            }
        })
        .collect::<Result<Vec<_>, ErrorAnswer>>()?;
    let cmd = Command::Receipt {
        id: body.receipt_id,
        lines,
        staff,
    };
    submit(&state, cmd).await
}

pub(super) async fn post_count(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<CountRequest>,
) -> Result<Response, ErrorAnswer> {
    let staff = staff(till, body.cashier, body.till)?;
    let staff = super::sessions::session_staff(&state, &headers, staff)?;
    let g = gtin(&body.gtin)?;
    let counted = u64::try_from(body.counted)
        .map_err(|_| ErrorAnswer::Invalid(format!("counted must be >= 0, got {}", body.counted)))?;
    let cmd = Command::Count {
        id: body.count_id,
        gtin: g,
        counted,
        staff,
    };
    submit(&state, cmd).await
}

/// `POST /v1/catalog`: a store's own catalog, before its first sync.
/// Once the hub's catalog has reached the store, prices are HQ's: a till
/// could otherwise set an item's price and sell at it with no override
/// and no exception (409). (A request racing the first catalog sync may
/// still land; the hub's items overwrite it.)
pub(super) async fn post_catalog(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CatalogRequest>,
) -> Result<Response, ErrorAnswer> {
    if state
        .db
        .read_blocking(|db| db.follows_hub_catalog())
        .await?
    {
        return Err(ErrorAnswer::Conflict(
            "the store follows the hub's catalog: change prices at HQ (POST /v1/catalog at the hub)"
                .into(),
        ));
    }
    if body.items.len() > MAX_CATALOG_ITEMS {
        return Err(ErrorAnswer::Invalid(format!(
            "at most {MAX_CATALOG_ITEMS} items per request, got {}",
            body.items.len()
        )));
    }
    let rows = body
        .items
        .iter()
        .enumerate()
        .map(|(k, i)| {
            i.parse()
                .map(|item| (k, item))
                .map_err(|e| ErrorAnswer::Invalid(format!("items[{k}]: {e}")))
        })
        .collect::<Result<Vec<_>, ErrorAnswer>>()?;
    let items = crate::catalog::merge_duplicates(rows).map_err(|d| {
        ErrorAnswer::Invalid(format!(
            "items[{}]: gtin {} is already items[{}] with another name or price",
            d.again, d.gtin, d.first
        ))
    })?;
    let CatalogStored { items, changed } = state.committer.catalog(items).await?;
    Ok(Json(CatalogImported { changed, items }).into_response())
}
