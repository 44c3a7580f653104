//! The live link's endpoints, for stores (client certificate, identified
//! as for `/v1/sync`):
//! - `GET /v1/link`: one long-lived response, `application/x-ndjson`, of
//!   `tally_sync::link::Notice`s: `hello` first, then what the hub pushes
//!   (`crate::link::Links`), and a `heartbeat` every
//!   [`ApiSettings::heartbeat`](super::ApiSettings) so the store can tell a
//!   dead link from a quiet one. The store is live while it lasts.
//! - `POST /v1/rights/released`: the store's report of rights it gave the
//!   hub for an order (`tally_sync::rights::RightsReleased`); handed to the
//!   waiting order, which merges it in its own transaction, or merged
//!   alone if the order stopped waiting.
//!
//! # Design constraints
//! - A link ends when the store goes away, when a newer link of the same
//!   store replaces it, when the hub stops, or at a heartbeat once the
//!   store's certificate is revoked.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use tally_sync::link::{self, Notice};
use tally_sync::rights::RightsReleased;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::sync::{identify, store_identity};
use super::{error, invalid, store_json, write_error, AppState};
use crate::link::{Delivered, LinkGuard};
use crate::storage::ReleaseResult;
use crate::tls::Peer;

/// How long a link's opening waits for its place in the database's
/// order of links (`crate::link::LiveStore::order`).
const LINK_ORDER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Largest report body (an id, an item, a count and one counter's own
/// entries).
const MAX_REPORT_BODY: usize = 64 * 1024;

/// `GET /v1/link`.
pub(super) async fn link(State(st): State<AppState>, Extension(peer): Extension<Peer>) -> Response {
    let cert = match identify(&st, &peer, "/v1/link") {
        Ok(c) => c.clone(),
        Err((_, response)) => return response,
    };
    let who = match store_identity(&cert) {
        Ok(who) => who,
        Err((_, response)) => return response,
    };
    // Its place among every hub process's links (several processes over
    // one database): a store reconnecting to another process replaces its
    // old link there, whatever the hosts' clocks say. Without it (the
    // database slow or unreachable) the clocks decide, as before: the
    // store is not kept from being live.
    let storage = st.storage.clone();
    let asked = tokio::task::spawn_blocking(move || storage.next_link_order());
    let order = match tokio::time::timeout(LINK_ORDER_WAIT, asked).await {
        Ok(Ok(Ok(order))) => order,
        Ok(Ok(Err(e))) => {
            warn!(store = %who.replica, error = %e, "No link order from the database; the hosts' clocks order this link.");
            None
        }
        Ok(Err(_)) | Err(_) => {
            warn!(store = %who.replica, "No link order from the database in time; the hosts' clocks order this link.");
            None
        }
    };
    let Some((guard, notices)) = st.links.connect_ordered(&who, st.clock.now_ms(), order) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the hub is shutting down",
        );
    };
    info!(store = %who.replica, peer = %peer.addr, "Store live.");
    st.metrics.link_opened();
    let heartbeat = st.settings.heartbeat;
    let hello = Notice::Hello {
        store: who.replica.clone(),
        heartbeat_ms: u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX),
    };
    let stream = Stream {
        st: st.clone(),
        serial: cert.serial.clone(),
        _guard: guard,
        notices,
        ticks: tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat),
        first: Some(hello),
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, Stream::next));
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(link::CONTENT_TYPE),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// One link's response body.
struct Stream {
    st: AppState,
    serial: String,
    /// Keeps the store live while the body streams.
    _guard: LinkGuard,
    notices: mpsc::Receiver<Notice>,
    ticks: tokio::time::Interval,
    first: Option<Notice>,
}

impl Stream {
    /// The next line, or the end of the link.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        let notice = match self.first.take() {
            Some(hello) => hello,
            None => tokio::select! {
                n = self.notices.recv() => n?,
                _ = self.ticks.tick() => {
                    if !matches!(self.st.revocations.is_revoked(&self.serial), Ok(false)) {
                        warn!(serial = %self.serial, "Ending a live link: certificate revoked.");
                        return None;
                    }
                    Notice::Heartbeat
                }
            },
        };
        self.st.metrics.notice(notice.kind());
        Some((Ok(Bytes::from(notice.to_line())), self))
    }
}

/// `POST /v1/rights/released`.
pub(super) async fn released(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (who, _slot, report): (_, _, RightsReleased) = match store_json(
        &st,
        &peer,
        "/v1/rights/released",
        &headers,
        body,
        MAX_REPORT_BODY,
        "rights report",
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let (gtin, units) = (report.gtin, report.released);
    match st.links.deliver(&who, report) {
        Delivered::ToOrder => {
            debug!(store = %who.replica, %gtin, units, "Released rights handed to the waiting order.");
            (StatusCode::OK, Json(json!({ "merged_by": "order" }))).into_response()
        }
        Delivered::Mismatch => invalid("the report names another store or item than the request"),
        Delivered::Unclaimed(report) => match st.writer.release(who.clone(), *report).await {
            Ok(ReleaseResult::Merged(_)) => {
                info!(store = %who.replica, %gtin, units, "Released rights arrived after the order stopped waiting; kept in the reserve.");
                (StatusCode::OK, Json(json!({ "merged_by": "hub" }))).into_response()
            }
            Ok(ReleaseResult::Forged(why)) => {
                warn!(store = %who.replica, %gtin, %why, "Rights report refused: forged entries; nothing written.");
                // As when an order merges it: not asked for this item
                // again for a while, by any order at any process.
                st.links.release_refused(&who.location, gtin);
                error(StatusCode::FORBIDDEN, "forbidden_update", why)
            }
            Err(e) => write_error(e),
        },
    }
}
