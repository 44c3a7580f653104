//! The local HTTP API (axum): JSON in, JSON out, money in integer minor
//! units. The bodies are `tally_agent_api`'s types, shared with the CLI and
//! the cashier terminal; the contract is documented in `docs/api.md`. This
//! module only translates between HTTP and the command core / committer.
//!
//! # Design constraints
//! - Handlers parse and validate the body into a `Command`, submit it to
//!   the committer and map the outcome to a status: 201 recorded, 200
//!   retried id, 409 refused by the rules, 422 invalid, 503 storage
//!   failure or shutdown. A handler never writes to the database itself.
//! - Every error is a `tally_sync::error_body::ErrorBody`
//!   (`{"error": code, "message": text, …details}`), the hub's shape too.
//!   Every JSON rejection (malformed JSON, wrong types, unknown fields,
//!   missing content type) is a 422 `invalid`; bodies over the configured
//!   limit are a 413 `too_large`.
//! - Reads (stock, a sale, status) take redb snapshots on the blocking
//!   pool, never on the async workers.
//!
//! Map: this file holds the state, the router and the error answers;
//! [`guard`] who may use the API (host, origin, till tokens); `json.rs`
//! the body extractor, `commands.rs` the handlers that record,
//! `reads.rs` the handlers that read, `orders.rs` the store's part of the
//! chain's orders (pick list and moves), `transfers.rs` transfers of
//! stock to and from other stores, `sessions.rs` cashiers' sign-in and
//! the signed-in cashier a sale or return records.

mod commands;
mod counts;
pub mod guard;
mod json;
mod orders;
mod pages;
mod reads;
mod returns;
mod sessions;
mod transfers;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tally_sync::error_body::ErrorBody;
use tally_sync::Refusal;

pub use commands::MAX_CATALOG_ITEMS;
pub use json::ApiJson;

use crate::commit::{CommitError, Committer};
use crate::config::ApiConfig;
use crate::managers::{ApprovalError, Managers};
use crate::metrics::Metrics;
use crate::status::SyncStatus;
use crate::store::AgentDb;
use guard::Guard;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database (reads only; writes go through the committer).
    pub db: Arc<AgentDb>,
    /// The single writer.
    pub committer: Committer,
    /// Commands run with rights on demand (sales, through the committer).
    pub rights: crate::rights::Rights,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Sync status, set by the sync client.
    pub sync: Arc<SyncStatus>,
    /// Managers who may approve overrides.
    pub managers: Arc<Managers>,
    /// Cashiers who sign in (none: requests name their cashier).
    pub cashiers: Arc<Managers>,
    /// The cashiers' open sessions.
    pub sessions: Arc<crate::cashiers::Sessions>,
    /// What returns this store cannot check do while the hub cannot.
    pub foreign_returns_offline: crate::sync::ForeignReturns,
}

/// The API's router with its body limit, request timeout and admission
/// rules (`guard`: host, origin, till tokens).
pub fn router(state: AppState, config: &ApiConfig, guard: Arc<Guard>) -> Router {
    let timeout = Duration::from_millis(config.request_timeout_ms.max(10));
    Router::new()
        .route("/v1/cashiers/sign-in", post(sessions::sign_in))
        .route("/v1/cashiers/sign-out", post(sessions::sign_out))
        .route("/v1/sales", post(commands::post_sale))
        .route("/v1/sales/{id}", get(reads::get_sale))
        .route("/v1/returns", post(returns::post_return))
        .route("/v1/returns/{id}", get(reads::get_return))
        .route("/v1/receipts", post(commands::post_receipt))
        .route("/v1/counts", post(commands::post_count))
        .route("/v1/counts/sessions", post(counts::start))
        .route("/v1/counts/sessions/{id}", get(counts::get))
        .route("/v1/counts/sessions/{id}/report", get(counts::report))
        .route("/v1/counts/sessions/{id}/finish", post(counts::finish))
        .route("/v1/counts/sessions/{id}/accept", post(counts::accept))
        .route("/v1/orders", get(orders::list))
        .route("/v1/orders/{id}", get(orders::get))
        .route("/v1/orders/{id}/{to}", post(orders::fulfil))
        .route("/v1/transfers", post(transfers::send).get(transfers::list))
        .route("/v1/transfers/{id}", get(transfers::get))
        .route("/v1/transfers/{id}/received", post(transfers::receive))
        .route("/v1/stock/{gtin}", get(reads::get_stock))
        .route("/v1/status", get(reads::get_status))
        .route("/v1/catalog", post(commands::post_catalog))
        .route("/v1/catalog/{gtin}", get(reads::get_catalog_item))
        .route("/metrics", get(reads::get_metrics))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn(move |req, next: Next| async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ErrorAnswer::Timeout.into_response(),
            }
        }))
        .layer(middleware::from_fn_with_state(guard, guard::enforce))
        .with_state(state)
}

/// An error answer, by what the caller can do about it.
#[derive(Debug)]
pub enum ErrorAnswer {
    /// 422: the request is malformed.
    Invalid(String),
    /// 409 (422 for [`Refusal::Invalid`]): the rules refused the command;
    /// `hub_reachable` says whether a shortage of rights held elsewhere
    /// is answered `offline`.
    Refused {
        /// Why.
        refusal: Refusal,
        /// Whether the last sync reached the hub.
        hub_reachable: bool,
    },
    /// 404, with what was not found.
    NotFound(String),
    /// 409 `conflict`: the request does not fit the state of what it names.
    Conflict(String),
    /// 413.
    TooLarge(String),
    /// 503: storage failed or the agent is stopping; retry with the same id.
    Unavailable(String),
    /// 408: the request (its body, or its command) took longer than the
    /// request timeout; retry with the same id.
    Timeout,
    /// 403 (429 while the manager is locked out): a manager's approval was
    /// not accepted; nothing was recorded.
    Approval(ApprovalError),
    /// 401 `sign_in_required`: cashiers sign in at this store and the
    /// request has no open session; nothing was recorded.
    SignInRequired(String),
    /// 403 `sign_in_refused` (429 `sign_in_locked`): a cashier's PIN was
    /// not accepted.
    SignIn(ApprovalError),
}

impl From<CommitError> for ErrorAnswer {
    fn from(e: CommitError) -> Self {
        ErrorAnswer::Unavailable(e.to_string())
    }
}

impl IntoResponse for ErrorAnswer {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ErrorAnswer::Invalid(message)
            | ErrorAnswer::Refused {
                refusal: Refusal::Invalid(message),
                ..
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody::new("invalid", message),
            ),
            ErrorAnswer::Refused {
                refusal: refusal @ (Refusal::UnknownOrder(_) | Refusal::UnknownTransfer(_)),
                ..
            } => (StatusCode::NOT_FOUND, ErrorBody::of_refusal(&refusal, true)),
            ErrorAnswer::Refused {
                refusal,
                hub_reachable,
            } => (
                StatusCode::CONFLICT,
                ErrorBody::of_refusal(&refusal, hub_reachable),
            ),
            ErrorAnswer::NotFound(message) => {
                (StatusCode::NOT_FOUND, ErrorBody::new("not_found", message))
            }
            ErrorAnswer::Conflict(message) => {
                (StatusCode::CONFLICT, ErrorBody::new("conflict", message))
            }
            ErrorAnswer::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new("too_large", message),
            ),
            ErrorAnswer::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::new("unavailable", message),
            ),
            ErrorAnswer::Approval(ApprovalError::Locked(secs)) => {
                return locked_out(
                    "approval_locked",
                    ApprovalError::Locked(secs).to_string(),
                    secs,
                )
            }
            ErrorAnswer::Approval(e @ ApprovalError::NotCounted)
            | ErrorAnswer::SignIn(e @ ApprovalError::NotCounted) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::new("unavailable", e.to_string()),
            ),
            ErrorAnswer::Approval(e) => (
                StatusCode::FORBIDDEN,
                ErrorBody::new("approval_refused", e.to_string()),
            ),
            ErrorAnswer::SignInRequired(message) => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::new("sign_in_required", message),
            ),
            ErrorAnswer::SignIn(ApprovalError::Locked(secs)) => {
                return locked_out(
                    "sign_in_locked",
                    format!("too many wrong PINs for this cashier; try again in {secs} s"),
                    secs,
                )
            }
            ErrorAnswer::SignIn(e) => (
                StatusCode::FORBIDDEN,
                ErrorBody::new(
                    "sign_in_refused",
                    match e {
                        ApprovalError::MissingPin => "the cashier's PIN is required",
                        _ => "cashier or PIN not accepted",
                    },
                ),
            ),
            ErrorAnswer::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorBody::new(
                    "timeout",
                    "the request took longer than the request timeout; retry with the same id",
                ),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// 429 `code` for a PIN locked out `secs` more seconds (`Retry-After`).
fn locked_out(code: &str, message: String, secs: u64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(ErrorBody::new(code, message)),
    )
        .into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

impl From<tally_store::StoreError> for ErrorAnswer {
    fn from(e: tally_store::StoreError) -> Self {
        ErrorAnswer::Unavailable(e.to_string())
    }
}

async fn no_route(uri: axum::http::Uri) -> ErrorAnswer {
    ErrorAnswer::NotFound(format!("no route {}", uri.path()))
}
