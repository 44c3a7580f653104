//! The sync client: ships the store's own counter changes and events to
//! the hub over mutual TLS and applies what the hub answers
//! (docs/sync.md is the contract).
//!
//! # Design constraints
//! - **Nothing leaves before it is acknowledged.** A request is built from
//!   one database snapshot; the response is applied by the committer (the
//!   single writer) in one transaction that removes outbox entries only up
//!   to the hub's acknowledgement. An interruption anywhere leaves the
//!   cursors where they were, and the next request re-sends: the hub's
//!   handling is idempotent, so repeating is always safe.
//! - **When to sync.** On an interval, soon (a short debounce) after each
//!   local change while the hub is reachable, and again at once while the
//!   hub says `more`, the outbox still holds events, or applying the
//!   response moved rights. While the hub is unreachable: exponential
//!   backoff with full jitter, honouring `Retry-After`; local changes do
//!   not cut a backoff short.
//! - **Retry decisions are pure** ([`classify`], [`backoff`]) and separate
//!   from the transport, as in Vector's `RetryLogic`.
//! - **Refusals for good are not retried forever.** An event the hub will
//!   never accept is dead-lettered (kept locally, surfaced in the status);
//!   one refused for its date alone (`event_out_of_window`: this box's
//!   clock ran ahead, or restarted long ago) is kept and sent again
//!   slowly, since HQ admits it at the hub and then it goes through;
//!   a revoked certificate or an unsupported protocol stops fast syncing
//!   and is surfaced, while the store keeps selling offline.

use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tally_sync::clock::Clock;
use tally_sync::error_body::ErrorBody;
use tally_sync::EventId;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::commit::{CommitError, Committer, SyncJob};
pub use crate::hub_client::HubClient;
use crate::metrics::Metrics;
use crate::status::SyncStatus;
use crate::store::AgentDb;

/// How and when to sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The hub's base URL, e.g. `https://hub.example.com:8443`.
    pub hub: String,
    /// The identity bundle from `tally-hub enroll` (certificate, key, CA).
    pub identity: PathBuf,
    /// Sync at least this often.
    pub interval: Duration,
    /// Wait this long after a local change, to ship a burst together.
    pub debounce: Duration,
    /// Most events per request (halved on 413).
    pub max_events: usize,
    /// Give up on one request after this long.
    pub request_timeout: Duration,
    /// First retry delay ceiling.
    pub backoff_base: Duration,
    /// Largest retry delay ceiling.
    pub backoff_cap: Duration,
    /// How long a sale short of rights the hub holds waits for them
    /// (`crate::rights`; zero: never ask).
    pub rights_wait: Duration,
    /// Renew the identity's certificate (`POST /v1/renew`) once less than
    /// this percentage of its lifetime is left (`crate::enroll`; 0: never).
    pub renew_percent_left: u8,
    /// What a return the store cannot check itself (another store's sale,
    /// a web order, a tag sold elsewhere) does when the hub cannot be
    /// asked.
    pub foreign_returns_offline: ForeignReturns,
}

/// The offline policy for returns the store cannot check itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignReturns {
    /// Taken with a manager's approval, flagged at the hub (a
    /// `no_receipt_refund`, and `return_exceeds_sale` if it breaks the
    /// bound once the hub counts it).
    #[default]
    Approve,
    /// Refused until the hub can check it.
    Refuse,
}

impl SyncConfig {
    /// Defaults for a hub URL and identity file: every 30 s (the hub
    /// counts a store online for 120 s after a sync), 250 ms debounce,
    /// 1,000 events per request, backoff from 1 s up to 60 s.
    pub fn new(hub: impl Into<String>, identity: impl Into<PathBuf>) -> Self {
        Self {
            hub: hub.into(),
            identity: identity.into(),
            interval: Duration::from_secs(30),
            debounce: Duration::from_millis(250),
            max_events: 1000,
            request_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            rights_wait: Duration::from_secs(1),
            renew_percent_left: crate::enroll::DEFAULT_RENEW_PERCENT_LEFT,
            foreign_returns_offline: ForeignReturns::default(),
        }
    }
}

/// Why the sync client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The identity bundle could not be read.
    #[error("reading identity bundle {path}: {source}")]
    ReadIdentity {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle is not a certificate, key and CA in PEM.
    #[error("identity bundle {path} is not usable: {detail}")]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The hub URL is not an https URL.
    #[error("hub URL {0:?} must start with https://")]
    BadUrl(String),
    /// The HTTP client could not be built.
    #[error("building the HTTPS client: {0}")]
    Client(String),
}

/// What went wrong with one exchange, by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The hub could not be reached or had a passing problem: back off
    /// and retry the same logical request.
    Transient {
        /// What happened.
        detail: String,
        /// The hub's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The request was too large: send fewer events.
    TooLarge,
    /// One event will never be accepted: dead-letter it, sync the rest.
    EventRefused {
        /// The event.
        id: EventId,
        /// The hub's reason.
        reason: String,
    },
    /// Syncing cannot succeed until a person acts (revoked certificate,
    /// unsupported protocol, a refused delta): surface it, retry slowly.
    Stuck {
        /// The hub's error code.
        code: String,
        /// The hub's message.
        detail: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient { detail, .. } => write!(f, "hub unreachable: {detail}"),
            Failure::TooLarge => f.write_str("request too large"),
            Failure::EventRefused { id, reason } => write!(f, "event {id} refused: {reason}"),
            Failure::Stuck { code, detail } => write!(f, "sync refused ({code}): {detail}"),
        }
    }
}

/// Classifies a non-200 answer from its body (the hub's `ErrorBody`, or
/// anything else a proxy may answer; pure; see docs/sync.md's table).
pub fn classify(status: u16, body: &[u8], retry_after: Option<Duration>) -> Failure {
    let body: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = body.as_ref().map(|b| b.error.clone()).unwrap_or_default();
    let detail = body.as_ref().map(|b| b.message.clone()).unwrap_or_default();
    match status {
        413 => Failure::TooLarge,
        // An event dated outside the hub's window is kept, not
        // dead-lettered: the hub holds it for HQ, and once admitted it
        // goes through with the events behind it (a sync that skipped it
        // would be refused anyway: its units are in the delta).
        422 if code == "event_out_of_window" => {
            let id = body
                .and_then(|b| b.event_id)
                .map_or_else(|| "{id}".to_string(), |id| id.to_string());
            Failure::Stuck {
                detail: format!(
                    "{detail}; this box's clock may be wrong. The event stays here and is sent again; the hub holds it until HQ admits it (POST /v1/held/{id}/admit)"
                ),
                code,
            }
        }
        422 => match body.and_then(|b| b.event_id) {
            Some(id) => Failure::EventRefused { id, reason: detail },
            None => Failure::Stuck { code, detail },
        },
        408 | 429 | 500..=599 => Failure::Transient {
            detail: format!("HTTP {status} {code} {detail}").trim().to_string(),
            retry_after,
        },
        _ => Failure::Stuck {
            code: if code.is_empty() {
                format!("http_{status}")
            } else {
                code
            },
            detail,
        },
    }
}

/// The delay before retry number `attempt` (1-based): a uniformly random
/// fraction (`jitter` in 0..=1) of `min(cap, base × 2^(attempt−1))` — AWS's
/// "full jitter" — and never less than the hub's `Retry-After`.
pub fn backoff(
    attempt: u32,
    base: Duration,
    cap: Duration,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    let ceiling = base.saturating_mul(exp).min(cap);
    let delay = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
    delay.max(retry_after.unwrap_or(Duration::ZERO))
}

/// [`backoff`] with `config`'s bounds and a fresh random jitter.
pub fn jittered_backoff(
    attempt: u32,
    config: &SyncConfig,
    retry_after: Option<Duration>,
) -> Duration {
    let jitter = rand::thread_rng().gen_range(0.0..=1.0);
    backoff(
        attempt,
        config.backoff_base,
        config.backoff_cap,
        jitter,
        retry_after,
    )
}

/// What one round (one exchange) achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Events the hub acknowledged.
    pub acked: u64,
    /// Whether the round moved anything forward: events acknowledged, or
    /// a page of the delta the hub had not acknowledged yet.
    pub progressed: bool,
    /// There is more to exchange right away.
    pub again: bool,
}

/// The sync loop's moving parts.
#[derive(Debug, Clone)]
pub struct SyncContext {
    /// The database (snapshots for requests).
    pub db: Arc<AgentDb>,
    /// The single writer (applies responses).
    pub committer: Committer,
    /// What `GET /v1/status` shows.
    pub status: Arc<SyncStatus>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The wall clock (when the last sync succeeded).
    pub clock: Arc<dyn Clock>,
    /// Rung to sync at once (the live link's `sync_now`, `catalog_changed`
    /// and reconnection): cuts a wait or a backoff short.
    pub wake: Arc<tokio::sync::Notify>,
}

/// A committer failure, as a sync failure.
fn local_failure(e: CommitError) -> Failure {
    match e {
        CommitError::Storage(detail) => Failure::Transient {
            detail: format!("local storage: {detail}"),
            retry_after: None,
        },
        CommitError::Closed => Failure::Stuck {
            code: "shutting_down".into(),
            detail: "the agent is stopping".into(),
        },
    }
}

/// Builds a request, exchanges it and applies the answer.
pub async fn sync_once(
    ctx: &SyncContext,
    client: &HubClient,
    max_events: usize,
) -> Result<Round, Failure> {
    // The delta is read from the counters table: write the held-back
    // counters first so it carries every committed change.
    // Every command answered before now (refusals are answered before
    // their batch commits) was run before the flush, queued next, so it
    // is committed once the flush is: the page read after reports it.
    // Noted now, not once the exchange succeeds: a rerun meanwhile would
    // take back demand this page already carries, and the answer's
    // apply would take it again from other customers' demand.
    ctx.status.reading(ctx.clock.now_ms());
    ctx.committer.flush().await.map_err(local_failure)?;
    let db = ctx.db.clone();
    let page = tokio::task::spawn_blocking(move || db.sync_page(max_events))
        .await
        .map_err(|e| Failure::Stuck {
            code: "internal".into(),
            detail: e.to_string(),
        })?
        .map_err(|e| Failure::Stuck {
            code: "storage".into(),
            detail: e.to_string(),
        })?;
    let (request, more_here) = (page.request, page.more);
    let exchanged = client.exchange(&request).await;
    if let Some(offset) = client.clock_offset_ms() {
        note_hub_clock(ctx, offset);
    }
    let response = exchanged?;
    let more = response.more;
    // A page of the catalog is progress too (a first catalog of many
    // pages loads at once, not one page per interval after the third).
    let catalog_page =
        !response.catalog.is_empty() && response.catalog_cursor > request.catalog_cursor;
    // A page of the delta the hub took: progress even with no event.
    let delta_taken =
        !request.delta.is_empty() && response.acked_delta_version >= request.delta_version;
    let sent_events = request.events.len() as u64;
    let applied = ctx
        .committer
        .apply_sync(SyncJob { request, response })
        .await
        .map_err(local_failure)?;
    ctx.status.synced(ctx.clock.now_ms());
    let allocations_left = fetch_allocations(ctx, client).await;
    let depth = ctx.metrics.outbox_depth();
    tracing::info!(
        sent = sent_events,
        acked = applied.acked,
        merged = applied.merged,
        given = applied.given.len(),
        catalog = applied.catalog_changed,
        outbox = depth,
        "Synced with the hub."
    );
    Ok(Round {
        acked: applied.acked,
        // A full page of the delta taken moves on to the next; any
        // other delta (the transfers a response made) is no progress.
        progressed: applied.acked > 0 || (delta_taken && more_here) || catalog_page,
        again: more || more_here || depth > 0 || !applied.given.is_empty() || allocations_left,
    })
}

/// Shows the hub's clock less this box's (`offset`, ms) in the status and
/// the metrics, and warns when it goes beyond
/// [`CLOCK_WARN_MS`](tally_agent_api::answers::CLOCK_WARN_MS) (once, until
/// it is back within).
fn note_hub_clock(ctx: &SyncContext, offset: i64) {
    let before = ctx.status.hub_clock(offset);
    ctx.metrics.hub_clock_offset.set(offset / 1_000);
    let warn = tally_agent_api::answers::CLOCK_WARN_MS.unsigned_abs();
    let off = |o: i64| o.unsigned_abs() > warn;
    match (before.is_some_and(off), off(offset)) {
        (false, true) => {
            tracing::warn!(
                hub_minus_here_s = offset / 1_000,
                "This box's clock is off the hub's: sales are dated by it, and the hub refuses events dated more than a day ahead. Set the clock (NTP)."
            );
        }
        (true, false) => {
            tracing::info!(
                hub_minus_here_s = offset / 1_000,
                "This box's clock agrees with the hub's again."
            );
        }
        _ => {}
    }
}

/// Pages of the store's allocations fetched per sync round.
const ALLOCATION_PAGES_PER_ROUND: usize = 8;

/// Fetches and merges the store's allocations that changed at the hub
/// since its cursor, a few pages a round; answers whether more wait. A
/// failure only delays them to the next round (a hub without orders
/// answers 404: nothing to fetch).
async fn fetch_allocations(ctx: &SyncContext, client: &HubClient) -> bool {
    let db = ctx.db.clone();
    let mut cursor = match tokio::task::spawn_blocking(move || db.allocations_cursor()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Could not read the allocations cursor.");
            return false;
        }
        Err(_) => return false,
    };
    for _ in 0..ALLOCATION_PAGES_PER_ROUND {
        let page = match client.allocations(cursor).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "Order allocations not fetched; next round.");
                return false;
            }
        };
        let (more, next, received) = (page.more, page.cursor, page.allocations.len());
        if next == cursor && received == 0 {
            return false;
        }
        match ctx.committer.allocations(page).await {
            Ok(changed) => {
                for a in &changed {
                    tracing::info!(order_id = %a.order_id, status = a.status.name(), fulfilment = ?a.fulfilment, "Order allocation from the hub.");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Order allocations not stored; next round.");
                return false;
            }
        }
        cursor = next;
        if !more {
            return false;
        }
    }
    true
}

/// Runs the sync loop with `client` until `stop` turns true.
pub async fn run(
    ctx: SyncContext,
    client: Arc<HubClient>,
    config: SyncConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut recorded = ctx.committer.recorded();
    let mut max_events = config.max_events.max(1);
    let mut failures = 0u32;
    let mut due = Instant::now();
    let mut in_backoff = false;
    // Rounds that moved nothing forward while asking to go again: a guard
    // against spinning if the hub keeps answering without progress.
    let mut idle_rounds = 0u32;
    loop {
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep_until(due) => {}
            () = ctx.wake.notified() => {}
            changed = recorded.changed(), if !in_backoff => {
                if changed.is_err() {
                    return; // the committer is gone: the agent is stopping
                }
                // A wake (a release waiting for this sync) cuts it short.
                tokio::select! {
                    () = tokio::time::sleep(config.debounce) => {}
                    () = ctx.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        recorded.mark_unchanged();
        let outcome = tokio::select! {
            r = sync_once(&ctx, &client, max_events) => r,
            _ = stop.changed() => {
                ctx.status.read_abandoned();
                return;
            }
        };
        if outcome.is_err() {
            ctx.status.read_abandoned();
        }
        match outcome {
            Ok(round) => {
                failures = 0;
                in_backoff = false;
                // Halved after a 413: grows back with rounds that pass.
                max_events = max_events.saturating_mul(2).min(config.max_events.max(1));
                idle_rounds = if round.progressed { 0 } else { idle_rounds + 1 };
                due = if round.again && idle_rounds < 3 {
                    Instant::now()
                } else {
                    Instant::now() + config.interval
                };
            }
            Err(Failure::TooLarge) if max_events > 1 => {
                max_events = (max_events / 2).max(1);
                tracing::warn!(
                    max_events,
                    "Hub said the request was too large; sending fewer events."
                );
                due = Instant::now();
            }
            Err(Failure::TooLarge) => {
                // One event and still too large (its counters' delta, or
                // a proxy's body limit): fewer events cannot help, so back
                // off as for an unreachable hub instead of sending it
                // again at once, forever.
                failures = failures.saturating_add(1);
                in_backoff = true;
                let delay = jittered_backoff(failures, &config, None);
                tracing::error!(
                    delay_ms = delay.as_millis() as u64,
                    "Hub said a request of one event was too large; will retry (a body limit in front of the hub?)."
                );
                due = Instant::now() + delay;
            }
            Err(Failure::EventRefused { id, reason }) => {
                tracing::error!(event = %id, %reason, "The hub refused an event for good; dead-lettering it. The hub holds it: once the cause (e.g. this box's clock) is fixed, HQ can admit it (POST /v1/held/{id}/admit).");
                if let Err(e) = ctx.committer.dead_letter(id, reason).await {
                    tracing::error!(error = %e, "Could not dead-letter the event.");
                }
                due = Instant::now();
            }
            Err(Failure::Transient {
                detail,
                retry_after,
            }) => {
                failures = failures.saturating_add(1);
                in_backoff = true;
                ctx.status.unreachable();
                let delay = jittered_backoff(failures, &config, retry_after);
                tracing::warn!(attempt = failures, delay_ms = delay.as_millis() as u64, %detail, "Hub unreachable; will retry.");
                due = Instant::now() + delay;
            }
            Err(stuck @ Failure::Stuck { .. }) => {
                in_backoff = true;
                tracing::error!(error = %stuck, "Sync refused; the store keeps selling offline. Retrying slowly.");
                ctx.status.failed(stuck.to_string());
                due = Instant::now() + config.backoff_cap;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_is_full_jitter_capped_and_honours_retry_after() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(1, base, cap, 1.0, None), Duration::from_secs(1));
        assert_eq!(backoff(3, base, cap, 1.0, None), Duration::from_secs(4));
        assert_eq!(backoff(3, base, cap, 0.5, None), Duration::from_secs(2));
        assert_eq!(backoff(30, base, cap, 1.0, None), cap);
        assert_eq!(backoff(u32::MAX, base, cap, 1.0, None), cap);
        assert_eq!(backoff(2, base, cap, 0.0, None), Duration::ZERO);
        assert_eq!(
            backoff(1, base, cap, 0.1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    fn classify(status: u16, body: &serde_json::Value, retry_after: Option<Duration>) -> Failure {
        super::classify(status, body.to_string().as_bytes(), retry_after)
    }

    #[test]
    fn answers_are_classified_as_docs_sync_md_says() {
        let id = "0199a0e0-0000-7000-8000-000000000001";
        assert_eq!(classify(413, &json!({}), None), Failure::TooLarge);
        assert_eq!(
            classify(
                422,
                &json!({"error": "refused_update", "event_id": id, "message": "bad"}),
                None
            ),
            Failure::EventRefused {
                id: id.parse().unwrap(),
                reason: "bad".into()
            }
        );
        assert!(matches!(
            classify(422, &json!({"error": "refused_update"}), None),
            Failure::Stuck { .. }
        ));
        // Refused for its date alone: kept and sent again, not
        // dead-lettered.
        match classify(
            422,
            &json!({"error": "event_out_of_window", "event_id": id, "message": "dated 5"}),
            None,
        ) {
            Failure::Stuck { code, detail } => {
                assert_eq!(code, "event_out_of_window");
                assert!(detail.starts_with("dated 5;"), "{detail}");
                assert!(detail.contains(&format!("/v1/held/{id}/admit")), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(503, &json!({"error": "unavailable"}), Some(Duration::from_secs(3))),
            Failure::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        match classify(
            403,
            &json!({"error": "certificate_revoked", "message": "re-enroll"}),
            None,
        ) {
            Failure::Stuck { code, .. } => assert_eq!(code, "certificate_revoked"),
            other => panic!("{other:?}"),
        }
        match classify(400, &json!({"error": "unsupported_protocol_version"}), None) {
            Failure::Stuck { code, .. } => assert_eq!(code, "unsupported_protocol_version"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(classify(418, &json!(null), None), Failure::Stuck { code, .. } if code == "http_418")
        );
    }

    #[test]
    fn setup_errors_are_clear() {
        let cfg = SyncConfig::new("http://hub", "/nonexistent");
        assert!(matches!(
            HubClient::new(&cfg, Arc::new(tally_sync::clock::ManualClock::new(0))),
            Err(SetupError::BadUrl(_))
        ));
        let cfg = SyncConfig::new("https://hub", "/nonexistent/bundle.pem");
        let e = HubClient::new(&cfg, Arc::new(tally_sync::clock::ManualClock::new(0))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/bundle.pem"), "{e}");
    }
}
