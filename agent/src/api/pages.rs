//! Lists in pages (`?status=…&after=ID&limit=N`, answered with `next`)
//! and their items shown with catalog names: what the order and transfer
//! reads share. The records come from one snapshot on the blocking pool;
//! naming them reads the catalog there too.

use serde::Deserialize;
use tally_store::StoreError;

use super::{AppState, ErrorAnswer};
use crate::store::AgentDb;

/// Most records in one page.
pub const MAX_PAGE: usize = 1_000;

/// The query of a paged list.
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub limit: Option<usize>,
}

impl PageQuery {
    /// The page size asked for (default 100, within 1..=[`MAX_PAGE`]).
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, MAX_PAGE)
    }
}

/// A page of records read by `read` (at most `limit`), shown by `show`,
/// and the id to pass as `after` for the next page when it was full.
pub(super) async fn page<T: Send + 'static, V: Send + 'static>(
    state: &AppState,
    limit: usize,
    read: impl FnOnce(&AgentDb) -> Result<Vec<T>, StoreError> + Send + 'static,
    id: fn(&T) -> String,
    show: fn(&AppState, &T) -> V,
) -> Result<(Vec<V>, Option<String>), ErrorAnswer> {
    let found = state.db.read_blocking(read).await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(id))
        .flatten();
    let st = state.clone();
    let views = tokio::task::spawn_blocking(move || found.iter().map(|t| show(&st, t)).collect())
        .await
        .map_err(|e| ErrorAnswer::Unavailable(e.to_string()))?;
    Ok((views, next))
}

/// One record shown by `show` (the catalog read on the blocking pool).
pub(super) async fn one<T: Send + 'static, V: Send + 'static>(
    state: &AppState,
    record: T,
    show: fn(&AppState, &T) -> V,
) -> Result<V, ErrorAnswer> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || show(&st, &record))
        .await
        .map_err(|e| ErrorAnswer::Unavailable(e.to_string()))
}

/// The catalog name of `gtin`, if the catalog knows it.
pub(super) fn name(state: &AppState, gtin: tally_sync::Gtin) -> Option<String> {
    state.db.catalog_item(gtin).ok().flatten().map(|i| i.name)
}
