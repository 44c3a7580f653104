//! The local HTTP API (axum): JSON in, JSON out, money in integer minor
//! units. The contract is documented in `docs/api.md`; this module only
//! translates between HTTP and the command core / committer.
//!
//! # Design constraints
//! - Handlers parse and validate the body into a [`Command`], submit it to
//!   the committer and map the outcome to a status: 201 recorded, 200
//!   retried id, 409 refused by the rules, 422 invalid, 503 storage
//!   failure or shutdown. A handler never writes to the database itself.
//! - Every JSON rejection (malformed JSON, wrong types, unknown fields,
//!   missing content type) is a 422 `{"error":"invalid","detail":…}`;
//!   bodies over the configured limit are a 413.
//! - Reads (stock, a sale, status) take redb snapshots on the blocking
//!   pool, never on the async workers.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tally_sync::message::CatalogItem;
use tally_sync::timestamp::rfc3339;
use tally_sync::{Epc, Event, EventId, EventKind, Gtin, Refusal, Tender};

use crate::commit::{CatalogStored, CommitError, Committer};
use crate::metrics::Metrics;
use crate::status::SyncStatus;
use crate::store::AgentDb;
use tally_sync::command::{Approval, Command, LineIn, Outcome, ReceiptLine};

/// Most catalog items in one `POST /v1/catalog` request.
pub const MAX_CATALOG_ITEMS: usize = 5_000;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database (reads only; writes go through the committer).
    pub db: Arc<AgentDb>,
    /// The single writer.
    pub committer: Committer,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Sync status, set by the sync client.
    pub sync: Arc<SyncStatus>,
}

/// The API's router with its body limit.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/sales", post(post_sale))
        .route("/v1/sales/{id}", get(get_sale))
        .route("/v1/returns", post(post_return))
        .route("/v1/returns/{id}", get(get_return))
        .route("/v1/receipts", post(post_receipt))
        .route("/v1/counts", post(post_count))
        .route("/v1/stock/{gtin}", get(get_stock))
        .route("/v1/status", get(get_status))
        .route("/v1/catalog", post(post_catalog))
        .route("/v1/catalog/{gtin}", get(get_catalog_item))
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 422: the request is malformed.
    Invalid(String),
    /// 409 or 422: the rules refused the command.
    Refused(Refusal),
    /// 404.
    NotFound,
    /// 413.
    TooLarge(String),
    /// 503: storage failed or the agent is stopping; retry with the same id.
    Unavailable(String),
}

impl From<CommitError> for ApiError {
    fn from(e: CommitError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Invalid(detail) | ApiError::Refused(Refusal::Invalid(detail)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "invalid", "detail": detail}),
            ),
            ApiError::Refused(Refusal::InsufficientStock {
                gtin,
                requested,
                available,
            }) => (
                StatusCode::CONFLICT,
                json!({"error": "insufficient_stock", "gtin": gtin,
                       "requested": requested, "available": available}),
            ),
            ApiError::Refused(Refusal::AlreadySold { epc }) => (
                StatusCode::CONFLICT,
                json!({"error": "already_sold", "epc": epc}),
            ),
            ApiError::Refused(Refusal::NotSold { epc }) => (
                StatusCode::CONFLICT,
                json!({"error": "not_sold", "epc": epc}),
            ),
            ApiError::Refused(Refusal::ExceedsSale {
                sale,
                gtin,
                requested,
                returnable,
            }) => (
                StatusCode::CONFLICT,
                json!({"error": "exceeds_sale", "original_sale_id": sale, "gtin": gtin,
                       "requested": requested, "returnable": returnable}),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({"error": "not_found"})),
            ApiError::TooLarge(detail) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "too_large", "detail": detail}),
            ),
            ApiError::Unavailable(detail) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "unavailable", "detail": detail}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// `axum::Json` with the API's rejections (422 invalid, 413 too large).
///
/// Parsed with `serde_json` directly; only a body that fails goes through
/// `axum::Json` again, for its rejection (which names the failing field:
/// it tracks the path of every field it parses, which costs three times
/// the parse itself on every sale).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Whether a `Content-Type` is JSON the way `axum::Json` accepts it
/// (`application/json` or `application/*+json`, parameters allowed).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    ty.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub
                .rsplit_once('+')
                .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json")))
}

/// A body axum refused (JSON or bytes): 413 for a body over the limit,
/// 422 for anything else.
fn body_rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(text)
    } else {
        ApiError::Invalid(text)
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    body_rejection(r.status(), r.body_text())
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            // axum words the rejection (missing or wrong content type).
            return match Json::<T>::from_request(req, state).await {
                Ok(Json(v)) => Ok(ApiJson(v)),
                Err(r) => Err(json_rejection(r)),
            };
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r.status(), r.body_text()))?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(ApiJson(v)),
            Err(_) => match Json::<T>::from_bytes(&bytes) {
                Ok(Json(v)) => Ok(ApiJson(v)),
                Err(r) => Err(json_rejection(r)),
            },
        }
    }
}

// ---- request bodies -------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineBody {
    gtin: String,
    qty: i64,
    #[serde(default)]
    unit_price_minor: Option<i64>,
    #[serde(default)]
    epc: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenderBody {
    method: String,
    amount_minor: i64,
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalBody {
    approver: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaleBody {
    #[serde(default)]
    sale_id: Option<uuid::Uuid>,
    lines: Vec<LineBody>,
    #[serde(default)]
    tenders: Vec<TenderBody>,
    #[serde(default, rename = "override")]
    override_: Option<ApprovalBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnBody {
    #[serde(default)]
    return_id: Option<uuid::Uuid>,
    lines: Vec<LineBody>,
    #[serde(default)]
    original_sale_id: Option<uuid::Uuid>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptLineBody {
    gtin: String,
    qty: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptBody {
    #[serde(default)]
    receipt_id: Option<uuid::Uuid>,
    lines: Vec<ReceiptLineBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountBody {
    #[serde(default)]
    count_id: Option<uuid::Uuid>,
    gtin: String,
    counted: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogItemBody {
    gtin: String,
    name: String,
    price_minor: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogBody {
    items: Vec<CatalogItemBody>,
}

// ---- parsing --------------------------------------------------------------

fn gtin(s: &str) -> Result<Gtin, ApiError> {
    Gtin::parse(s).map_err(|e| ApiError::Invalid(format!("gtin {s:?}: {e}")))
}

fn qty(gtin: Gtin, q: i64) -> Result<u64, ApiError> {
    u64::try_from(q)
        .ok()
        .filter(|&q| q > 0)
        .ok_or_else(|| ApiError::Invalid(format!("qty must be > 0 for {gtin}, got {q}")))
}

fn lines(body: Vec<LineBody>) -> Result<Vec<LineIn>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::Invalid("lines must not be empty".into()));
    }
    body.into_iter()
        .map(|l| {
            let g = gtin(&l.gtin)?;
            let epc = l
                .epc
                .map(|e| Epc::from_hex(&e).map_err(|err| ApiError::Invalid(err.to_string())))
                .transpose()?;
            Ok(LineIn {
                gtin: g,
                qty: qty(g, l.qty)?,
                unit_price_minor: l.unit_price_minor,
                epc,
            })
        })
        .collect()
}

// ---- responses ------------------------------------------------------------

/// The body answering a recorded event (the same for the first post and
/// every retry: it is computed from the stored event). Fields are in
/// alphabetical order, as a `serde_json::Value` would print them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum RecordedBody {
    /// A sale.
    Sale {
        /// Sold beyond rights with a manager's approval.
        overridden: bool,
        /// The sale's id.
        sale_id: EventId,
        /// Always `"committed"`.
        status: &'static str,
        /// The sale's total.
        total_minor: i64,
    },
    /// A return.
    Return {
        /// The return's id.
        return_id: EventId,
        /// Always `"committed"`.
        status: &'static str,
        /// The refunded total.
        total_minor: i64,
    },
    /// A receipt of goods.
    Receipt {
        /// The receipt's id.
        receipt_id: EventId,
        /// Always `"committed"`.
        status: &'static str,
        /// Units received.
        units: u64,
    },
    /// A cycle count.
    Count {
        /// Units the adjustment moved.
        adjusted: u64,
        /// The count's id.
        count_id: EventId,
        /// What was counted.
        counted: u64,
        /// Which way on-hand moved.
        direction: tally_sync::Direction,
        /// The item.
        gtin: Option<Gtin>,
        /// Always `"committed"`.
        status: &'static str,
        /// Units the count could not take away (others' rights).
        unresolved: u64,
    },
    /// An online order (the hub's; never posted here, shown for completeness).
    Order {
        /// The order's id.
        order_id: EventId,
        /// The hub's reference.
        reference: Option<String>,
        /// Always `"committed"`.
        status: &'static str,
    },
}

/// The body answering a recorded event.
pub fn recorded_body(event: &Event) -> RecordedBody {
    let (id, status) = (event.id, "committed");
    match &event.kind {
        EventKind::Sale { .. } => RecordedBody::Sale {
            overridden: event.is_override(),
            sale_id: id,
            status,
            total_minor: event.total_minor(),
        },
        EventKind::Return { .. } => RecordedBody::Return {
            return_id: id,
            status,
            total_minor: event.total_minor(),
        },
        EventKind::Receipt => RecordedBody::Receipt {
            receipt_id: id,
            status,
            units: event
                .lines
                .iter()
                .fold(0u64, |a, l| a.saturating_add(l.qty)),
        },
        EventKind::CountAdjustment {
            counted,
            direction,
            unresolved,
        } => RecordedBody::Count {
            adjusted: event.lines.first().map_or(0, |l| l.qty),
            count_id: id,
            counted: *counted,
            direction: *direction,
            gtin: event.lines.first().map(|l| l.gtin),
            status,
            unresolved: *unresolved,
        },
        EventKind::Order { reference } => RecordedBody::Order {
            order_id: id,
            reference: reference.clone(),
            status,
        },
    }
}

/// The full view of a sale for `GET /v1/sales/{id}`.
pub fn sale_body(event: &Event) -> Option<Value> {
    let EventKind::Sale { tenders, override_ } = &event.kind else {
        return None;
    };
    Some(json!({
        "sale_id": event.id.to_string(),
        "status": "committed",
        "store_id": event.location,
        "at_ms": event.at_ms,
        "lines": event.lines,
        "tenders": tenders,
        "override": override_,
        "total_minor": event.total_minor(),
        "overridden": event.is_override(),
    }))
}

/// The full view of a return for `GET /v1/returns/{id}` (a refund's
/// receipt reprinted).
pub fn return_body(event: &Event) -> Option<Value> {
    let EventKind::Return { original_sale } = &event.kind else {
        return None;
    };
    Some(json!({
        "return_id": event.id.to_string(),
        "status": "committed",
        "store_id": event.location,
        "at_ms": event.at_ms,
        "original_sale_id": original_sale.map(|s| s.to_string()),
        "lines": event.lines,
        "total_minor": event.total_minor(),
    }))
}

async fn submit(state: &AppState, cmd: Command) -> Result<Response, ApiError> {
    match state.committer.command(cmd).await? {
        Outcome::Recorded { event, new } => {
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(recorded_body(&event))).into_response())
        }
        Outcome::Refused { refusal, .. } => Err(ApiError::Refused(refusal)),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, tally_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

// ---- handlers -------------------------------------------------------------

async fn post_sale(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SaleBody>,
) -> Result<Response, ApiError> {
    let cmd = Command::Sale {
        id: body.sale_id.map(EventId),
        lines: lines(body.lines)?,
        tenders: body
            .tenders
            .into_iter()
            .map(|t| Tender {
                method: t.method,
                amount_minor: t.amount_minor,
                reference: t.reference,
            })
            .collect(),
        approval: body.override_.map(|a| Approval {
            approver: a.approver,
            reason: a.reason,
        }),
    };
    submit(&state, cmd).await
}

/// The event id in a `GET /v1/{what}s/{id}` path.
fn path_id(what: &str, id: &str) -> Result<EventId, ApiError> {
    id.parse()
        .map_err(|e| ApiError::Invalid(format!("{what} id {id:?}: {e}")))
}

async fn get_sale(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id("sale", &id)?;
    let db = state.db.clone();
    let (event, returned) = blocking(move || db.event_and_returned(&id))
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut body = sale_body(&event).ok_or(ApiError::NotFound)?;
    body["returned"] = returned
        .into_iter()
        .map(|(gtin, units)| json!({"gtin": gtin, "units": units}))
        .collect();
    Ok(Json(body).into_response())
}

async fn get_return(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id("return", &id)?;
    let db = state.db.clone();
    let event = blocking(move || db.event(&id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(return_body(&event).ok_or(ApiError::NotFound)?).into_response())
}

async fn post_return(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<Response, ApiError> {
    let cmd = Command::Return {
        id: body.return_id.map(EventId),
        lines: lines(body.lines)?,
        original_sale: body.original_sale_id.map(EventId),
    };
    submit(&state, cmd).await
}

async fn post_receipt(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReceiptBody>,
) -> Result<Response, ApiError> {
    if body.lines.is_empty() {
        return Err(ApiError::Invalid("lines must not be empty".into()));
    }
    let lines = body
        .lines
        .into_iter()
        .map(|l| {
            let g = gtin(&l.gtin)?;
            Ok(ReceiptLine::units(g, qty(g, l.qty)?))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let cmd = Command::Receipt {
        id: body.receipt_id.map(EventId),
        lines,
    };
    submit(&state, cmd).await
}

async fn post_count(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CountBody>,
) -> Result<Response, ApiError> {
    let g = gtin(&body.gtin)?;
    let counted = u64::try_from(body.counted)
        .map_err(|_| ApiError::Invalid(format!("counted must be >= 0, got {}", body.counted)))?;
    let cmd = Command::Count {
        id: body.count_id.map(EventId),
        gtin: g,
        counted,
    };
    submit(&state, cmd).await
}

async fn get_stock(
    State(state): State<AppState>,
    Path(g): Path<String>,
) -> Result<Response, ApiError> {
    let g = gtin(&g)?;
    let db = state.db.clone();
    let stock = blocking(move || db.stock(g)).await?;
    Ok(Json(stock).into_response())
}

/// `GET /v1/catalog/{gtin}`: one item's name and price (the cashier
/// terminal's lookup).
async fn get_catalog_item(
    State(state): State<AppState>,
    Path(g): Path<String>,
) -> Result<Response, ApiError> {
    let g = gtin(&g)?;
    let db = state.db.clone();
    let item = blocking(move || db.catalog_item(g))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(
        Json(json!({"gtin": item.gtin, "name": item.name, "price_minor": item.price_minor}))
            .into_response(),
    )
}

async fn get_status(State(state): State<AppState>) -> Response {
    let who = state.db.who();
    let sync = state.sync.snapshot();
    Json(json!({
        "store_id": who.location,
        "replica_id": who.replica,
        "online": sync.online,
        "last_sync_at": sync.last_sync_at_ms.map(rfc3339),
        "last_sync_ms": sync.last_sync_at_ms,
        "sync_error": sync.error,
        "outbox_events": state.metrics.outbox_depth(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn post_catalog(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CatalogBody>,
) -> Result<Response, ApiError> {
    if body.items.len() > MAX_CATALOG_ITEMS {
        return Err(ApiError::Invalid(format!(
            "at most {MAX_CATALOG_ITEMS} items per request, got {}",
            body.items.len()
        )));
    }
    let rows = body
        .items
        .into_iter()
        .enumerate()
        .map(|(k, i)| {
            gtin(&i.gtin)
                .and_then(|g| {
                    CatalogItem::new(g, &i.name, i.price_minor)
                        .map_err(|e| ApiError::Invalid(e.to_string()))
                })
                .map(|item| (k, item))
                .map_err(|e| match e {
                    ApiError::Invalid(d) => ApiError::Invalid(format!("items[{k}]: {d}")),
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let items = crate::catalog::merge_duplicates(rows).map_err(|d| {
        ApiError::Invalid(format!(
            "items[{}]: gtin {} is already items[{}] with another name or price",
            d.again, d.gtin, d.first
        ))
    })?;
    let CatalogStored { items, changed } = state.committer.catalog(items).await?;
    Ok(Json(json!({"items": items, "changed": changed})).into_response())
}

async fn get_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_those_axum_accepts() {
        let with = |ct: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&h)
        };
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
        ] {
            assert!(with(ok), "{ok}");
        }
        for no in [
            "text/plain",
            "application/jsonx",
            "json",
            "application/xml",
            "",
        ] {
            assert!(!with(no), "{no}");
        }
        assert!(!is_json(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn a_sale_body_prints_as_before() {
        let body = RecordedBody::Sale {
            overridden: false,
            sale_id: EventId(uuid::Uuid::nil()),
            status: "committed",
            total_minor: 129,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"overridden":false,"sale_id":"00000000-0000-0000-0000-000000000000","status":"committed","total_minor":129}"#
        );
    }
}
