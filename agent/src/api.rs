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
use tally_sync::{Epc, Event, EventId, EventKind, Gtin, Refusal, Tender};

use crate::commit::{CommitError, Committer, Done, Job};
use crate::core::{Approval, Command, LineIn, Outcome, ReceiptLine};
use crate::metrics::Metrics;
use crate::status::SyncStatus;
use crate::store::AgentDb;

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
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(r.body_text()))
            }
            Err(r @ JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::Invalid(r.body_text()))
            }
            Err(r) => Err(ApiError::Invalid(r.body_text())),
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
/// every retry: it is computed from the stored event).
pub fn recorded_body(event: &Event) -> Value {
    let id = event.id.to_string();
    match &event.kind {
        EventKind::Sale { .. } => json!({
            "sale_id": id, "status": "committed",
            "total_minor": event.total_minor(), "overridden": event.is_override(),
        }),
        EventKind::Return { .. } => json!({
            "return_id": id, "status": "committed", "total_minor": event.total_minor(),
        }),
        EventKind::Receipt => json!({
            "receipt_id": id, "status": "committed",
            "units": event.lines.iter().fold(0u64, |a, l| a.saturating_add(l.qty)),
        }),
        EventKind::CountAdjustment {
            counted,
            direction,
            unresolved,
        } => json!({
            "count_id": id, "status": "committed",
            "gtin": event.lines.first().map(|l| l.gtin),
            "counted": counted, "direction": direction,
            "adjusted": event.lines.first().map_or(0, |l| l.qty),
            "unresolved": unresolved,
        }),
        EventKind::Order { reference } => json!({
            "order_id": id, "status": "committed", "reference": reference,
        }),
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

async fn submit(state: &AppState, cmd: Command) -> Result<Response, ApiError> {
    match state.committer.submit(Job::Command(cmd)).await? {
        Done::Command(Outcome::Recorded { event, new }) => {
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(recorded_body(&event))).into_response())
        }
        Done::Command(Outcome::Refused { refusal, .. }) => Err(ApiError::Refused(refusal)),
        Done::Catalog { .. } | Done::Synced(_) | Done::DeadLettered(_) | Done::Flushed(_) => {
            Err(ApiError::Unavailable(
                "the committer answered a command with another job's result".into(),
            ))
        }
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

async fn get_sale(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: EventId = id
        .parse()
        .map_err(|e| ApiError::Invalid(format!("sale id {id:?}: {e}")))?;
    let db = state.db.clone();
    let event = blocking(move || db.event(&id)).await?;
    let body = event
        .as_ref()
        .and_then(sale_body)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(body).into_response())
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
        "last_sync_at": sync.last_sync_at_ms,
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
    let items = body
        .items
        .into_iter()
        .map(|i| {
            if i.price_minor < 0 {
                return Err(ApiError::Invalid(format!(
                    "price_minor must be >= 0 for {}",
                    i.gtin
                )));
            }
            Ok(CatalogItem {
                gtin: gtin(&i.gtin)?,
                name: i.name,
                price_minor: i.price_minor,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    match state.committer.submit(Job::Catalog(items)).await? {
        Done::Catalog { items, changed } => {
            Ok(Json(json!({"items": items, "changed": changed})).into_response())
        }
        Done::Command(_) | Done::Synced(_) | Done::DeadLettered(_) | Done::Flushed(_) => {
            Err(ApiError::Unavailable(
                "the committer answered a catalog import with another job's result".into(),
            ))
        }
    }
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
