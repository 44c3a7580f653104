//! The agent's sync status as `GET /v1/status` shows it: whether the hub
//! was reachable at the last attempt, when the last sync succeeded, and
//! whether the live link is open.
//!
//! The sync client ([`crate::sync`]) owns the updates; without a hub
//! configured the agent is reported offline with no sync yet. A std `Mutex`: never held across an
//! `.await`.

use std::sync::Mutex;

/// A copy of the status at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSnapshot {
    /// The last sync attempt reached the hub.
    pub online: bool,
    /// When the last sync succeeded, Unix milliseconds.
    pub last_sync_at_ms: Option<u64>,
    /// When the last sync that succeeded began to read the store it
    /// reported (Unix ms; every command answered before then is in what
    /// it read).
    pub last_sync_read_at_ms: Option<u64>,
    /// The same, for a sync under way (read, its answer not yet applied):
    /// its answer will clear the demand it carries.
    pub sync_read_in_flight_ms: Option<u64>,
    /// Why syncing is stuck (revoked certificate, unsupported protocol…),
    /// until the next successful sync.
    pub error: Option<String>,
    /// Since when the live link to the hub is open (Unix ms), if it is.
    pub live_since_ms: Option<u64>,
    /// The hub's clock less this box's (ms, to a second or so), from the
    /// hub's last answer.
    pub hub_clock_offset_ms: Option<i64>,
}

impl SyncSnapshot {
    /// Whether the hub can be asked now: the live link is open, or the
    /// last sync attempt reached it.
    pub fn hub_reachable(&self) -> bool {
        self.online || self.live_since_ms.is_some()
    }
}

/// Shared, updatable sync status.
#[derive(Debug, Default)]
pub struct SyncStatus {
    inner: Mutex<SyncSnapshot>,
    /// Syncs that succeeded since the agent started, for a task that waits
    /// for the next one ([`Self::rounds`]).
    rounds: tokio::sync::watch::Sender<u64>,
}

impl SyncStatus {
    /// The current status.
    pub fn snapshot(&self) -> SyncSnapshot {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A sync begins, at `at_ms`, to read the store it reports.
    pub fn reading(&self, at_ms: u64) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync_read_in_flight_ms = Some(at_ms);
    }

    /// The sync under way failed (or stopped): what it read is not
    /// reported.
    pub fn read_abandoned(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync_read_in_flight_ms = None;
    }

    /// A sync succeeded at `at_ms` (what it read is reported).
    pub fn synced(&self, at_ms: u64) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.online = true;
        s.error = None;
        if let Some(read) = s.sync_read_in_flight_ms.take() {
            s.last_sync_read_at_ms = Some(s.last_sync_read_at_ms.map_or(read, |t| t.max(read)));
        }
        s.last_sync_at_ms = Some(s.last_sync_at_ms.map_or(at_ms, |t| t.max(at_ms)));
        drop(s);
        self.rounds.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Follows the count of successful syncs: `changed()` wakes on the
    /// next one.
    pub fn rounds(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    /// The hub answered, but syncing cannot succeed until someone acts.
    pub fn failed(&self, error: String) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.online = false;
        s.error = Some(error);
    }

    /// The hub's clock less this box's, as its last answer showed it;
    /// returns the offset before.
    pub fn hub_clock(&self, offset_ms: i64) -> Option<i64> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.hub_clock_offset_ms.replace(offset_ms)
    }

    /// A sync attempt could not reach the hub: whatever the hub said
    /// before no longer describes where syncing stands.
    pub fn unreachable(&self) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.online = false;
        s.error = None;
    }

    /// The live link opened at `at_ms` (`Some`) or closed (`None`).
    pub fn link(&self, at_ms: Option<u64>) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .live_since_ms = at_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_offline_and_follows_syncs() {
        let s = SyncStatus::default();
        assert_eq!(s.snapshot(), SyncSnapshot::default());
        let rounds = s.rounds();
        s.reading(7);
        assert_eq!(s.snapshot().sync_read_in_flight_ms, Some(7));
        s.read_abandoned();
        assert_eq!(s.snapshot().sync_read_in_flight_ms, None);
        s.reading(8);
        assert_eq!(s.snapshot().last_sync_read_at_ms, None, "read, not synced");
        s.synced(10);
        assert!(rounds.has_changed().unwrap(), "a waiter hears of the sync");
        s.reading(4);
        s.synced(5);
        assert_eq!(
            s.snapshot(),
            SyncSnapshot {
                online: true,
                last_sync_at_ms: Some(10),
                last_sync_read_at_ms: Some(8),
                sync_read_in_flight_ms: None,
                error: None,
                live_since_ms: None,
                hub_clock_offset_ms: None,
            }
        );
        assert_eq!(s.hub_clock(-5), None);
        assert_eq!(s.hub_clock(7), Some(-5));
        assert_eq!(s.snapshot().hub_clock_offset_ms, Some(7));
        s.unreachable();
        assert!(!s.snapshot().online);
        assert_eq!(s.snapshot().last_sync_at_ms, Some(10));
        s.failed("certificate_revoked".into());
        assert_eq!(s.snapshot().error.as_deref(), Some("certificate_revoked"));
        // Out of reach since: the hub's last word no longer stands.
        s.unreachable();
        assert_eq!(s.snapshot().error, None);
        s.failed("certificate_revoked".into());
        s.synced(11);
        assert_eq!(s.snapshot().error, None);
        s.unreachable();
        s.link(Some(12));
        assert!(s.snapshot().hub_reachable(), "the live link is open");
        s.link(None);
        assert!(!s.snapshot().hub_reachable());
    }
}
