//! `POST /v1/sync`: a store's sync, in four named steps, each of which may
//! end the request with its answer: [`identify`] the store by its client
//! certificate, [`decode`] the body, [`submit`] it to the writer (validate,
//! merge and answer in one durable transaction), [`answer`] with the
//! response or the refusal. Every request is counted in the metrics by
//! how it ended ([`SyncOutcome`]) and how long it took.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use tally_sync::codec::{self, CodecError, Encoding};
use tally_sync::error_body::ErrorBody;
use tally_sync::exchange::{Identity, SyncRefusal};
use tally_sync::{LocationId, SyncRequest, SyncResponse};
use tracing::{info, warn};

use super::{
    body_error, error, read_body, store_slot, with_details, write_error, AppState, BodyError, Kind,
    ReadBody,
};
use crate::metrics::SyncOutcome;
use crate::pki::CertIdentity;
use crate::storage::{SyncResult, SyncSummary};
use crate::tls::Peer;

/// Bodies larger than this are decoded on the blocking pool.
const DECODE_INLINE_MAX: usize = 256 * 1024;

/// A finished response and how the request counts in the metrics.
type Answer = (SyncOutcome, Response);

/// The handler: runs the steps, counts the outcome and the latency.
pub(super) async fn sync(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = match steps(&st, &peer, &headers, body).await {
        Ok(answer) | Err(answer) => answer,
    };
    st.metrics.sync(outcome, started.elapsed());
    response
}

/// The four steps; `Err` is a step's refusal, answered as it is.
async fn steps(
    st: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Answer, Answer> {
    let id = identify(st, peer, "/v1/sync")?;
    let who = store_identity(id)?;
    // One sync in flight per store: a second, while the first is read,
    // queued or committed, is answered 429 (so a store cannot hold many
    // bodies or many places in the writer's queue).
    let _slot = store_slot(st, &who.location, Kind::Sync).map_err(|r| (SyncOutcome::Busy, r))?;
    // `_budget` holds the body's bytes in the hub's budget until the
    // writer has answered.
    let (req, enc, _budget) = decode(st, id, headers, body).await?;
    let events = req.events.len();
    if events > st.settings.max_sync_events {
        st.metrics.shed("too_many_events");
        warn!(store = %id.store, events, "Sync refused: too many events in one request.");
        return Err((
            SyncOutcome::TooLarge,
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                format!(
                    "{events} events in one request; send at most {}",
                    st.settings.max_sync_events
                ),
            ),
        ));
    }
    // Checked again by the writer's validation; here so that a delta
    // beyond the bound never takes a place in the writer's queue.
    if let Err(e) = tally_sync::limits::check_delta_size(&req.delta) {
        st.metrics.shed("too_many_counters");
        return Err(refused(id, &SyncRefusal::Content(e)));
    }
    // The other ends of transfers this request sends or receives hear of
    // them at once (their next page has them).
    let peers: Vec<tally_sync::LocationId> = req
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            tally_sync::EventKind::TransferOut { to, .. } => Some(to.clone()),
            tally_sync::EventKind::TransferIn { from, .. } => Some(from.clone()),
            _ => None,
        })
        .collect();
    let result = submit(st, who, req).await?;
    if matches!(result, SyncResult::Synced(..)) {
        for peer in &peers {
            st.links.notify(peer, tally_sync::link::Notice::SyncNow);
        }
    }
    Ok(answer(st, id, events, enc, result))
}

/// Step 1, identity: the store the client certificate is bound to, from
/// the certificate only, unless the certificate was revoked. The one
/// check of every request a store makes with its certificate (`/v1/sync`,
/// `/v1/renew`, `/v1/link`, `/v1/rights`, `/v1/rights/released`);
/// `endpoint` names the route in the refusal and the log.
pub(super) fn identify<'p>(
    st: &AppState,
    peer: &'p Peer,
    endpoint: &str,
) -> Result<&'p CertIdentity, Answer> {
    let id = match &peer.cert {
        None => {
            return Err((
                SyncOutcome::Unauthenticated,
                error(
                    StatusCode::UNAUTHORIZED,
                    "client_certificate_required",
                    format!("{endpoint} needs the store's client certificate (tally-hub enroll)"),
                ),
            ))
        }
        Some(Err(e)) => {
            warn!(peer = %peer.addr, endpoint, error = %e, "Request refused: certificate names no store.");
            return Err((
                SyncOutcome::CertRefused,
                error(StatusCode::FORBIDDEN, "certificate_not_bound_to_store", e),
            ));
        }
        Some(Ok(id)) => id,
    };
    match st.revocations.is_revoked(&id.serial) {
        Ok(false) => Ok(id),
        Ok(true) => {
            warn!(store = %id.store, serial = %id.serial, peer = %peer.addr, endpoint, "Request refused: certificate revoked.");
            Err((
                SyncOutcome::CertRefused,
                error(
                    StatusCode::FORBIDDEN,
                    "certificate_revoked",
                    format!("the certificate for store {} was revoked", id.store),
                ),
            ))
        }
        Err(e) => {
            warn!(endpoint, error = %e, "Revocation list unreadable; refusing stores' requests until it is fixed.");
            Err((
                SyncOutcome::Unavailable,
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "revocation_list_unreadable",
                    "the hub cannot read its revocation list",
                ),
            ))
        }
    }
}

/// Step 2, the body: content type, size, protocol version, shape. The
/// request, and the encoding to answer in.
async fn decode(
    st: &AppState,
    id: &CertIdentity,
    headers: &HeaderMap,
    body: Body,
) -> Result<(SyncRequest, Encoding, ReadBody), Answer> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(enc) = Encoding::from_content_type(ct) else {
        return Err((
            SyncOutcome::BadRequest,
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
                "send application/x-tally-sync (binary) or application/json",
            ),
        ));
    };
    let max = st.settings.max_sync_body;
    let mut read = match read_body(st, headers, body, max, super::budget::Payer::Known).await {
        Ok(b) => b,
        Err(e) => {
            let outcome = match e {
                BodyError::TooLarge => SyncOutcome::TooLarge,
                BodyError::Overloaded => SyncOutcome::Busy,
                BodyError::Timeout | BodyError::Read(_) => SyncOutcome::BadRequest,
            };
            warn!(store = %id.store, "Sync refused: body too large or unreadable.");
            return Err((outcome, body_error(e, max)));
        }
    };
    // The bytes go to the decoder; `read` keeps the budget.
    let bytes = std::mem::take(&mut read.bytes);
    // Large bodies are decoded off the async workers.
    let decoded = if bytes.len() > DECODE_INLINE_MAX {
        tokio::task::spawn_blocking(move || codec::decode::<SyncRequest>(&bytes, enc, max))
            .await
            .map_err(|e| {
                (
                    SyncOutcome::Unavailable,
                    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
                )
            })?
    } else {
        codec::decode::<SyncRequest>(&bytes, enc, max)
    };
    match decoded {
        Ok(req) => Ok((req, enc, read)),
        Err(e) => {
            warn!(store = %id.store, error = %e, "Sync refused: undecodable request.");
            Err(undecodable(&e, max))
        }
    }
}

/// The answer to a body that does not decode.
fn undecodable(e: &CodecError, max: usize) -> Answer {
    match e {
        CodecError::UnsupportedVersion { found, supported } => (
            SyncOutcome::BadRequest,
            with_details(
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    found: Some(found.to_string()),
                    supported: Some(supported.to_string()),
                    ..ErrorBody::new("unsupported_protocol_version", e)
                },
            ),
        ),
        CodecError::TooLarge { .. } => {
            (SyncOutcome::TooLarge, body_error(BodyError::TooLarge, max))
        }
        _ => (
            SyncOutcome::BadRequest,
            error(StatusCode::BAD_REQUEST, "malformed_request", e),
        ),
    }
}

/// Step 3: hands the request, with the identity from the certificate, to
/// the writer, which validates, merges and answers it in one durable
/// transaction.
async fn submit(st: &AppState, who: Identity, req: SyncRequest) -> Result<SyncResult, Answer> {
    st.writer
        .sync(who, req, st.holds_at(), st.clock.now_ms())
        .await
        .map_err(|e| (SyncOutcome::Unavailable, write_error(e)))
}

/// The store's replica and location, from its certificate's identity.
pub(super) fn store_identity(id: &CertIdentity) -> Result<Identity, Answer> {
    let location = LocationId::new(id.store.as_str()).map_err(|e| {
        (
            SyncOutcome::CertRefused,
            error(StatusCode::FORBIDDEN, "certificate_not_bound_to_store", e),
        )
    })?;
    Ok(Identity {
        replica: id.store.clone(),
        location,
    })
}

/// Step 4: the committed response, encoded as the request was (`events`:
/// how many the request carried), or the refusal.
fn answer(
    st: &AppState,
    id: &CertIdentity,
    events: usize,
    enc: Encoding,
    result: SyncResult,
) -> Answer {
    match result {
        SyncResult::Synced(resp, summary) => acknowledged(st, id, events, enc, &resp, &summary),
        SyncResult::Refused(refusal) => refused(id, &refusal),
    }
}

/// A merged sync: metrics, the log line and the encoded response.
fn acknowledged(
    st: &AppState,
    id: &CertIdentity,
    events: usize,
    enc: Encoding,
    resp: &SyncResponse,
    summary: &SyncSummary,
) -> Answer {
    st.metrics.merged(
        summary.new_events,
        summary.duplicate_events,
        summary.merged,
        summary.rights_given,
    );
    st.metrics.exceptions(summary.exceptions);
    info!(
        store = %id.store,
        events,
        new_events = summary.new_events,
        merged = summary.merged,
        rights_given = summary.rights_given,
        exceptions = summary.exceptions,
        more = resp.more,
        "Sync acknowledged."
    );
    match codec::encode(resp, enc) {
        Ok(body) => (
            SyncOutcome::Ok,
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, enc.content_type())],
                body,
            )
                .into_response(),
        ),
        Err(e) => (
            SyncOutcome::Unavailable,
            error(StatusCode::INTERNAL_SERVER_ERROR, "encode_failed", e),
        ),
    }
}

/// A sync refused whole (nothing was written): 403 for a forged or
/// impossible update, else 422 naming the event to dead-letter, if one.
fn refused(id: &CertIdentity, refusal: &SyncRefusal) -> Answer {
    let forbidden = refusal.is_forbidden();
    warn!(store = %id.store, forbidden, error = %refusal, "Sync refused whole; nothing written.");
    if forbidden {
        return (
            SyncOutcome::Forbidden,
            error(StatusCode::FORBIDDEN, "forbidden_update", refusal),
        );
    }
    let mut body = ErrorBody::new("refused_update", refusal);
    match refusal {
        SyncRefusal::Event { id, .. } => {
            // The client can dead-letter this event and sync the rest.
            body.event_id = Some(*id);
        }
        SyncRefusal::OutOfWindow { id, .. } => {
            // The client keeps it and sends it again: held here, HQ
            // admits it. (A client that knows only `refused_update`
            // dead-letters it, as before.)
            body.error = "event_out_of_window".into();
            body.event_id = Some(*id);
        }
        _ => {}
    }
    (
        SyncOutcome::Invalid,
        with_details(StatusCode::UNPROCESSABLE_ENTITY, body),
    )
}
