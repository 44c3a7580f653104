//! The live link: the agent keeps one long-lived request open to the hub
//! (`GET /v1/link`, on the same mutual-TLS HTTP/2 connection as its syncs)
//! and acts on the notices the hub pushes down it
//! (`tally_sync::link::Notice`):
//! - `sync_now`, `catalog_changed`: wake the sync client at once;
//! - `rights_wanted`: an online order needs units of the store's stock
//!   beyond the hub's reserve: the committer gives up to that many unsold
//!   rights to the hub, durably ([`Committer::release`]), and the store
//!   reports them (`POST /v1/rights/released`). Rights added by events
//!   the hub has not acknowledged (a receipt since the last sync) are
//!   given only after a sync carries those events: before, the hub could
//!   not explain them and would refuse the report;
//! - `hello`, `heartbeat`: the link is alive.
//!
//! # Design constraints
//! - The periodic sync stays the fallback and the source of truth; the
//!   link only makes things happen sooner. A lost report leaves the
//!   released rights in the store's next sync delta.
//! - A link that carries nothing for three heartbeats is dead: reopened.
//!   Reconnects back off exponentially with full jitter
//!   ([`crate::sync::jittered_backoff`]), like the sync client.
//! - While the link is open the hub counts as reachable for rights on
//!   demand ([`SyncStatus::link`]).
//! - Whatever the hub sends, the agent does not panic: lines are framed
//!   and bounded by `tally_sync::link::NoticeReader`.
//! - A `rights_wanted` is run once per request id (`RecentAsks`, over
//!   reconnections): a notice delivered twice would otherwise release
//!   twice, keeping the store's tills from units no order asked for.

use std::sync::Arc;
use std::time::Duration;

use tally_sync::clock::Clock;
use tally_sync::link::{Notice, NoticeReader};
use tally_sync::rights::RightsReleased;
use tally_sync::{BoundedCounter, EventId, Gtin};
use tokio::sync::{watch, Notify};

use crate::commit::{Committer, Released};
use crate::hub_client::HubClient;
use crate::metrics::{KindLabel, Metrics};
use crate::status::SyncStatus;
use crate::sync::{jittered_backoff, Failure, SyncConfig};

/// How long to wait for the first notice (the hub's `hello`).
const FIRST_NOTICE: Duration = Duration::from_secs(30);
/// Heartbeats that may go missing before the link counts as dead.
const MISSED_HEARTBEATS: u32 = 3;
/// How long a report of released rights may take.
const REPORT_WAIT: Duration = Duration::from_secs(5);

/// How long a release waits, at most, for syncs to carry the events
/// behind rights the hub cannot explain yet, when the hub did not say how
/// long its order waits (its default wait is 2 s).
const UNEXPLAINED_WAIT: Duration = Duration::from_millis(1_500);

/// How often a release waiting for a sync wakes it again (a sync that
/// failed waits out a backoff otherwise).
const REWAKE_SYNC: Duration = Duration::from_millis(250);

/// A `rights_wanted` notice, as a release runs it.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    request_id: EventId,
    gtin: Gtin,
    units: u64,
    /// Until when the release may wait for syncs before it reports:
    /// counted from the notice's arrival, so the first release's commit
    /// comes out of it, not out of the time left for the report.
    sync_until: tokio::time::Instant,
}

/// How long a release may wait for syncs when the asking order waits
/// `wait_ms` at the hub: three quarters of it (at most 10 s), leaving the
/// rest for the report; [`UNEXPLAINED_WAIT`] when the hub did not say.
fn sync_budget(wait_ms: Option<u64>) -> Duration {
    match wait_ms {
        Some(ms) => Duration::from_millis(ms.saturating_mul(3) / 4).min(Duration::from_secs(10)),
        None => UNEXPLAINED_WAIT,
    }
}

/// Request ids of the `rights_wanted` notices most recently run, so a
/// notice delivered twice releases once (bounded: the oldest is
/// forgotten first; the hub asks each id once, within seconds).
#[derive(Debug, Default)]
struct RecentAsks {
    ids: std::collections::HashSet<EventId>,
    order: std::collections::VecDeque<EventId>,
}

impl RecentAsks {
    /// Ids remembered.
    const KEEP: usize = 4_096;

    /// Whether `id` is new (and remembers it).
    fn first_time(&mut self, id: EventId) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// The link task's moving parts.
#[derive(Debug, Clone)]
pub struct LinkContext {
    /// The single writer (releases rights).
    pub committer: Committer,
    /// The connection to the hub.
    pub hub: Arc<HubClient>,
    /// Where the link's state shows (`GET /v1/status`, rights on demand).
    pub status: Arc<SyncStatus>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The wall clock (when the link opened).
    pub clock: Arc<dyn Clock>,
    /// Wakes the sync client.
    pub wake_sync: Arc<Notify>,
}

/// Keeps the live link open until `stop` turns true.
pub async fn run(ctx: LinkContext, config: SyncConfig, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut recent = RecentAsks::default();
    loop {
        let ended = tokio::select! {
            e = session(&ctx, &mut recent) => e,
            _ = stop.changed() => return,
        };
        ctx.status.link(None);
        ctx.metrics.link_live.set(0);
        let retry_after = match ended {
            Ended::AfterHello => {
                failures = 0;
                None
            }
            Ended::Failed(Failure::Transient { retry_after, .. }) => retry_after,
            Ended::Failed(_) => Some(config.backoff_cap),
        };
        failures = failures.saturating_add(1);
        let delay = jittered_backoff(failures, &config, retry_after);
        tracing::debug!(
            attempt = failures,
            delay_ms = delay.as_millis() as u64,
            "Live link down; reopening."
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// How one session of the link ended.
enum Ended {
    /// The link was open (the hub said hello), then ended.
    AfterHello,
    /// It could not be opened, or died before the hello.
    Failed(Failure),
}

/// One link: open it, read notices until it ends.
async fn session(ctx: &LinkContext, recent: &mut RecentAsks) -> Ended {
    let mut resp = match ctx.hub.link().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "The live link could not be opened.");
            return Ended::Failed(e);
        }
    };
    let mut reader = NoticeReader::new();
    let mut silence = FIRST_NOTICE;
    let mut hello = false;
    loop {
        let chunk = match tokio::time::timeout(silence, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => {
                tracing::info!("The hub ended the live link.");
                break;
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, "The live link broke.");
                break;
            }
            Err(_) => {
                tracing::warn!(
                    silent_ms = silence.as_millis() as u64,
                    "The live link went silent; reopening."
                );
                break;
            }
        };
        for notice in reader.push(&chunk) {
            let notice = match notice {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "A line from the hub was not a notice.");
                    continue;
                }
            };
            ctx.metrics
                .link_notices
                .get_or_create(&KindLabel {
                    kind: notice.kind(),
                })
                .inc();
            match notice {
                Notice::Hello {
                    store,
                    heartbeat_ms,
                } => {
                    hello = true;
                    silence = Duration::from_millis(heartbeat_ms.max(10))
                        .saturating_mul(MISSED_HEARTBEATS);
                    ctx.status.link(Some(ctx.clock.now_ms()));
                    ctx.metrics.link_live.set(1);
                    tracing::info!(%store, heartbeat_ms, "Live link to the hub open.");
                    // Whatever happened while the link was down, catch up.
                    ctx.wake_sync.notify_one();
                }
                Notice::Heartbeat | Notice::Unknown => {}
                Notice::SyncNow | Notice::CatalogChanged => ctx.wake_sync.notify_one(),
                Notice::RightsWanted {
                    request_id,
                    gtin,
                    units,
                    counter,
                    wait_ms,
                } => {
                    if !recent.first_time(request_id) {
                        tracing::warn!(%request_id, %gtin, "The hub asked for rights under an id already run; not released again.");
                        continue;
                    }
                    // Released on the committer, reported on the same
                    // connection; the link keeps reading meanwhile.
                    let wanted = Wanted {
                        request_id,
                        gtin,
                        units,
                        sync_until: tokio::time::Instant::now() + sync_budget(wait_ms),
                    };
                    tokio::spawn(release(ctx.clone(), wanted, *counter));
                }
            }
        }
    }
    if hello {
        Ended::AfterHello
    } else {
        Ended::Failed(Failure::Transient {
            detail: "the live link ended before the hub's hello".into(),
            retry_after: None,
        })
    }
}

/// Gives the hub up to `units` unsold rights to `gtin` (durably, after
/// merging the hub's entries `seen`) and reports them under `request_id`.
/// Rights the hub cannot explain yet (units received since the last sync)
/// are given after the syncs that carry their events, waiting until
/// `wanted.sync_until` ([`sync_budget`] from the notice's arrival): the
/// order asking for them waits at the hub.
async fn release(ctx: LinkContext, wanted: Wanted, seen: BoundedCounter) {
    let Wanted {
        request_id,
        gtin,
        units,
        sync_until: deadline,
    } = wanted;
    let units = units.min(tally_sync::rights::MAX_UNITS_PER_REQUEST);
    let mut rounds = ctx.status.rounds();
    rounds.mark_unchanged();
    let mut released = match ctx.committer.release(gtin, units, seen).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, %gtin, "Could not release rights to the hub.");
            return;
        }
    };
    while released.unexplained > 0 && released.units < units {
        // A failed sync backs off; waking it again cuts that short.
        ctx.wake_sync.notify_one();
        let next_wake = (tokio::time::Instant::now() + REWAKE_SYNC).min(deadline);
        match tokio::time::timeout_at(next_wake, rounds.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break, // the agent is stopping
            Err(_) if next_wake < deadline => continue,
            Err(_) => break, // out of time
        }
        rounds.mark_unchanged();
        match ctx
            .committer
            .release(gtin, units - released.units, BoundedCounter::default())
            .await
        {
            Ok(more) => {
                released = Released {
                    units: released.units + more.units,
                    ..more
                };
            }
            Err(e) => {
                tracing::error!(error = %e, %gtin, "Could not release rights to the hub.");
                break;
            }
        }
    }
    ctx.metrics.rights_released.inc_by(released.units);
    let report = RightsReleased {
        request_id,
        gtin,
        released: released.units,
        own: released.own,
    };
    match ctx.hub.released(&report, REPORT_WAIT).await {
        Ok(()) => {
            tracing::info!(%gtin, asked = units, released = report.released, "Released rights to the hub for an online order.");
        }
        Err(e) => {
            // The transfer is committed: the next sync carries it.
            tracing::warn!(error = %e, %gtin, released = report.released, "The hub did not take the report of released rights; the next sync carries them.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_runs_once_per_request_id_and_old_ids_are_forgotten() {
        let mut recent = RecentAsks::default();
        let id = |n: u16| EventId::v7(u64::from(n), [n as u8; 10]);
        assert!(recent.first_time(id(1)));
        assert!(!recent.first_time(id(1)), "the same ask again");
        for n in 2..=RecentAsks::KEEP as u16 {
            assert!(recent.first_time(id(n)));
        }
        assert!(!recent.first_time(id(1)), "still remembered at the bound");
        assert!(recent.first_time(id(RecentAsks::KEEP as u16 + 1)));
        assert_eq!(recent.ids.len(), RecentAsks::KEEP);
        assert!(recent.first_time(id(1)), "the oldest forgotten first");
    }

    #[test]
    fn a_release_waits_for_syncs_within_the_orders_wait() {
        assert_eq!(sync_budget(Some(2_000)), Duration::from_millis(1_500));
        assert_eq!(sync_budget(Some(400)), Duration::from_millis(300));
        assert_eq!(sync_budget(Some(0)), Duration::ZERO);
        assert_eq!(sync_budget(Some(u64::MAX)), Duration::from_secs(10));
        assert_eq!(sync_budget(None), UNEXPLAINED_WAIT);
    }
}
