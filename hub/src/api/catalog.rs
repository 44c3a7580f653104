//! `POST /v1/catalog`: catalog items (GTIN, name, price) to add or
//! change, validated whole before any is written, then stored by the
//! writer in one durable transaction. Live stores are told at once
//! (`catalog_changed` on their link) and fetch the changes with a sync;
//! the others on their next syncs.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use tally_sync::message::CatalogRequest;
use tracing::info;

use super::admin::admin_json;
use super::{invalid, write_error, AppState};
use crate::storage::CatalogResult;

/// Most items in one catalog request.
pub const MAX_CATALOG_ITEMS: usize = 10_000;

/// The handler: 200 with how many items were received and how many of
/// them changed.
pub(super) async fn catalog(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Response> {
    let parsed: CatalogRequest = admin_json(&st, &headers, body).await?;
    if parsed.items.is_empty() || parsed.items.len() > MAX_CATALOG_ITEMS {
        return Err(invalid(format!("send 1 to {MAX_CATALOG_ITEMS} items")));
    }
    let mut items = Vec::with_capacity(parsed.items.len());
    for i in &parsed.items {
        items.push(i.parse().map_err(invalid)?);
    }
    let received = items.len();
    let CatalogResult { changed } = st.writer.catalog(items).await.map_err(write_error)?;
    let told = if changed > 0 {
        st.links
            .broadcast(&tally_sync::link::Notice::CatalogChanged)
    } else {
        0
    };
    info!(
        received,
        changed,
        live_stores_told = told,
        "Catalog updated."
    );
    Ok(Json(json!({ "received": received, "changed": changed })))
}
