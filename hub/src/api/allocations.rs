//! `GET /v1/allocations?after=CURSOR` (client certificate, identified as
//! for `/v1/sync`): the page of the store's order allocations that
//! changed at the hub after its cursor (`tally_sync::message::AllocationsPage`,
//! JSON). The store asks after every sync round, and at once when the
//! hub's `sync_now` notice says something changed (a new allocation, a
//! cancellation). Read from a snapshot: one range read, whatever the
//! store's history.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::sync::{identify, store_identity};
use super::{error, read_storage, AppState};
use crate::tls::Peer;

/// Most allocations in one page.
pub const PAGE: usize = 500;

#[derive(Debug, Deserialize)]
pub(super) struct AfterQuery {
    #[serde(default)]
    after: u64,
}

/// The handler.
pub(super) async fn allocations(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    query: Result<Query<AfterQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let who = match identify(&st, &peer, "/v1/allocations").and_then(store_identity) {
        Ok(who) => who,
        Err((_, response)) => return response,
    };
    let Ok(Query(AfterQuery { after })) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "after is a change cursor (an unsigned integer)",
        );
    };
    let store = who.location.clone();
    match read_storage(&st, move |s| s.allocations(&store, after, PAGE)).await {
        Ok(page) => Json(page).into_response(),
        Err(response) => response,
    }
}
