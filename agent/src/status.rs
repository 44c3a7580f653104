//! The agent's sync status as `GET /v1/status` shows it: whether the hub
//! was reachable at the last attempt and when the last sync succeeded.
//!
//! The sync client (issue 5) owns the updates; until it runs, the agent is
//! reported offline with no sync yet. A std `Mutex`: never held across an
//! `.await`.

use std::sync::Mutex;

/// A copy of the status at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSnapshot {
    /// The last sync attempt reached the hub.
    pub online: bool,
    /// When the last sync succeeded, Unix milliseconds.
    pub last_sync_at_ms: Option<u64>,
}

/// Shared, updatable sync status.
#[derive(Debug, Default)]
pub struct SyncStatus {
    inner: Mutex<SyncSnapshot>,
}

impl SyncStatus {
    /// The current status.
    pub fn snapshot(&self) -> SyncSnapshot {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sync succeeded at `at_ms`.
    pub fn synced(&self, at_ms: u64) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.online = true;
        s.last_sync_at_ms = Some(s.last_sync_at_ms.map_or(at_ms, |t| t.max(at_ms)));
    }

    /// A sync attempt could not reach the hub.
    pub fn unreachable(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).online = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_offline_and_follows_syncs() {
        let s = SyncStatus::default();
        assert_eq!(s.snapshot(), SyncSnapshot::default());
        s.synced(10);
        s.synced(5);
        assert_eq!(
            s.snapshot(),
            SyncSnapshot {
                online: true,
                last_sync_at_ms: Some(10)
            }
        );
        s.unreachable();
        assert!(!s.snapshot().online);
        assert_eq!(s.snapshot().last_sync_at_ms, Some(10));
    }
}
