//! The hub's counters and their Prometheus text rendering (`GET /metrics`).
//!
//! Plain atomics: every counter is cumulative since start, the latency
//! histogram has fixed buckets. No registry crate is needed for a dozen
//! series.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the sync latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How a sync request ended, for `tally_hub_sync_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Merged and acknowledged.
    Ok,
    /// No client certificate.
    Unauthenticated,
    /// Revoked, or not bound to a store.
    CertRefused,
    /// Forged or impossible (403).
    Forbidden,
    /// Refused as invalid (422).
    Invalid,
    /// Undecodable, wrong content type, unknown version (4xx).
    BadRequest,
    /// Over the size limit (413).
    TooLarge,
    /// Storage failed or the hub is stopping (5xx).
    Unavailable,
    /// Turned away to protect the hub: the store's previous sync is still
    /// in flight (429), or too many bytes are (503). Retry later.
    Busy,
}

impl SyncOutcome {
    const ALL: [SyncOutcome; 9] = [
        SyncOutcome::Ok,
        SyncOutcome::Unauthenticated,
        SyncOutcome::CertRefused,
        SyncOutcome::Forbidden,
        SyncOutcome::Invalid,
        SyncOutcome::BadRequest,
        SyncOutcome::TooLarge,
        SyncOutcome::Unavailable,
        SyncOutcome::Busy,
    ];

    fn label(self) -> &'static str {
        match self {
            SyncOutcome::Ok => "ok",
            SyncOutcome::Unauthenticated => "unauthenticated",
            SyncOutcome::CertRefused => "cert_refused",
            SyncOutcome::Forbidden => "forbidden",
            SyncOutcome::Invalid => "invalid",
            SyncOutcome::BadRequest => "bad_request",
            SyncOutcome::TooLarge => "too_large",
            SyncOutcome::Unavailable => "unavailable",
            SyncOutcome::Busy => "busy",
        }
    }
}

/// A latency histogram with the fixed [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Latency {
    fn observe(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        for (b, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                add(b, 1);
            }
        }
        add(&self.count, 1);
        add(
            &self.sum_us,
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", get(b));
        }
        let count = get(&self.count);
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {}\n{name}_count {count}",
            get(&self.sum_us) as f64 / 1e6
        );
    }
}

/// What became of a store's request for rights
/// (`tally_hub_rights_requests_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RightsOutcome {
    /// Every unit asked was granted.
    Granted,
    /// Some were.
    Partial,
    /// None were: the hub holds no rights there.
    Refused,
    /// A repeated request, answered again.
    Replayed,
}

/// Notice kinds, in `Metrics::notices` order.
const NOTICE_KINDS: [&str; 6] = [
    "hello",
    "heartbeat",
    "sync_now",
    "catalog_changed",
    "rights_wanted",
    "unknown",
];

/// What came of asking a live store to release rights for an order
/// (`tally_hub_release_requests_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The store reported (perhaps releasing nothing).
    Reported,
    /// No store was live there.
    NotLive,
    /// The store did not report in time.
    NoAnswer,
}

/// Why an online order was refused
/// (`tally_hub_orders_refused_total{reason}`), as `tally_sync::Shortage`.
pub const ORDER_REFUSAL_REASONS: [&str; 3] = ["no_stock", "held_elsewhere", "offline"];

/// How a connection ended (`tally_service::serve::Ended::as_str`).
const CONNECTION_ENDS: [&str; 5] = ["closed", "error", "idle", "stalled", "stopped"];

/// What the hub turned away to protect itself, by why.
pub const SHED_REASONS: [&str; 8] = [
    "connections_per_peer",
    "body_timeout",
    "sync_in_progress",
    "store_writes_in_flight",
    "too_many_events",
    "too_many_counters",
    "writer_queue_full",
    "anonymous_budget_full",
];

/// All the hub's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    links_opened: AtomicU64,
    batches_run_again: AtomicU64,
    notices: [AtomicU64; NOTICE_KINDS.len()],
    release: [AtomicU64; 3],
    released_units: AtomicU64,
    release_latency: Latency,
    orders_refused_by: [AtomicU64; ORDER_REFUSAL_REASONS.len()],
    rights: [AtomicU64; 4],
    rights_units: AtomicU64,
    rights_latency: Latency,
    sync: [AtomicU64; 9],
    events_received: AtomicU64,
    events_duplicate: AtomicU64,
    counters_merged: AtomicU64,
    rights_given: AtomicU64,
    exceptions: AtomicU64,
    orders_accepted: AtomicU64,
    orders_refused: AtomicU64,
    orders_replayed: AtomicU64,
    commits: AtomicU64,
    committed_jobs: AtomicU64,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    handshake_failures: AtomicU64,
    connections_ended: [AtomicU64; CONNECTION_ENDS.len()],
    shed: [AtomicU64; SHED_REASONS.len()],
    admin_unauthorized: AtomicU64,
    sync_latency: Latency,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one sync request and, for completed ones, its latency.
    pub fn sync(&self, outcome: SyncOutcome, latency: Duration) {
        let i = SyncOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        add(&self.sync[i], 1);
        self.sync_latency.observe(latency);
    }

    /// Counts one request for rights: what became of it, the units
    /// granted, and its latency (body read to answer, commit included).
    pub fn rights(&self, outcome: RightsOutcome, units: u64, latency: Duration) {
        add(&self.rights[outcome as usize], 1);
        add(&self.rights_units, units);
        self.rights_latency.observe(latency);
    }

    /// What one accepted sync did.
    pub fn merged(&self, new_events: u64, duplicates: u64, counters: u64, rights: u64) {
        add(&self.events_received, new_events);
        add(&self.events_duplicate, duplicates);
        add(&self.counters_merged, counters);
        add(&self.rights_given, rights);
    }

    /// Exceptions recorded.
    pub fn exceptions(&self, n: u64) {
        add(&self.exceptions, n);
    }

    /// An order: accepted, refused for stock, or replayed by id.
    pub fn order(&self, accepted: bool, replayed: bool) {
        match (accepted, replayed) {
            (_, true) => add(&self.orders_replayed, 1),
            (true, false) => add(&self.orders_accepted, 1),
            (false, false) => add(&self.orders_refused, 1),
        }
    }

    /// An order refused for lack of stock, by `reason` (one of
    /// [`ORDER_REFUSAL_REASONS`]).
    pub fn order_refused(&self, reason: &str) {
        if let Some(i) = ORDER_REFUSAL_REASONS.iter().position(|r| *r == reason) {
            add(&self.orders_refused_by[i], 1);
        }
    }

    /// A store's live link opened.
    pub fn link_opened(&self) {
        add(&self.links_opened, 1);
    }

    /// A notice of `kind` was sent on a live link.
    pub fn notice(&self, kind: &str) {
        let i = NOTICE_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(NOTICE_KINDS.len() - 1);
        add(&self.notices[i], 1);
    }

    /// An order asked a store to release rights: what came of it, the
    /// units released, and how long the store took.
    pub fn release(&self, outcome: ReleaseOutcome, units: u64, latency: Duration) {
        add(&self.release[outcome as usize], 1);
        add(&self.released_units, units);
        if outcome == ReleaseOutcome::Reported {
            self.release_latency.observe(latency);
        }
    }

    /// One durable commit covering `jobs` requests (group commit).
    pub fn commit(&self, jobs: u64) {
        add(&self.commits, 1);
        add(&self.committed_jobs, jobs);
    }

    /// A connection opened (`true`) or closed.
    pub fn connection(&self, open: bool) {
        if open {
            add(&self.connections_total, 1);
            add(&self.connections_open, 1);
        } else {
            self.connections_open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A connection ended, `how` as `Ended::as_str` names it.
    pub fn connection_ended(&self, how: &str) {
        if let Some(i) = CONNECTION_ENDS.iter().position(|e| *e == how) {
            add(&self.connections_ended[i], 1);
        }
        self.connection(false);
    }

    /// A connection closed at once: its address has too many open.
    pub fn connection_refused(&self) {
        self.shed("connections_per_peer");
    }

    /// Work turned away for `reason` (one of [`SHED_REASONS`]).
    pub fn shed(&self, reason: &str) {
        if let Some(i) = SHED_REASONS.iter().position(|r| *r == reason) {
            add(&self.shed[i], 1);
        }
    }

    /// A TLS handshake failed.
    pub fn handshake_failed(&self) {
        add(&self.handshake_failures, 1);
    }

    /// A write batch that lost a race with another writer, run again.
    pub fn batch_run_again(&self) {
        add(&self.batches_run_again, 1);
    }

    /// An admin request without a valid token.
    pub fn admin_unauthorized(&self) {
        add(&self.admin_unauthorized, 1);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, stores: usize, stores_online: usize, links: Gauges) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "tally_hub_events_received_total",
            "Events stored for the first time.",
            get(&self.events_received),
        );
        counter(
            "tally_hub_events_duplicate_total",
            "Events received again (already stored, idempotent).",
            get(&self.events_duplicate),
        );
        counter(
            "tally_hub_counters_merged_total",
            "Counters changed by merging store deltas.",
            get(&self.counters_merged),
        );
        counter(
            "tally_hub_rights_given_total",
            "Units of rights the hub gave back to stores.",
            get(&self.rights_given),
        );
        counter(
            "tally_hub_exceptions_total",
            "Exceptions recorded (override sales, EPCs sold twice, unresolved counts).",
            get(&self.exceptions),
        );
        counter(
            "tally_hub_commits_total",
            "Durable (fsynced) write transactions.",
            get(&self.commits),
        );
        counter(
            "tally_hub_write_batches_run_again_total",
            "Write batches run again after losing a race with another writer of the database.",
            get(&self.batches_run_again),
        );
        counter(
            "tally_hub_committed_requests_total",
            "Requests covered by those commits (group commit).",
            get(&self.committed_jobs),
        );
        counter(
            "tally_hub_connections_total",
            "TLS connections accepted.",
            get(&self.connections_total),
        );
        counter(
            "tally_hub_tls_handshake_failures_total",
            "TLS handshakes that failed (bad or foreign client certificates included).",
            get(&self.handshake_failures),
        );
        counter(
            "tally_hub_admin_unauthorized_total",
            "Admin requests without a valid bearer token.",
            get(&self.admin_unauthorized),
        );
        counter(
            "tally_hub_links_opened_total",
            "Live links stores opened (GET /v1/link).",
            get(&self.links_opened),
        );
        counter(
            "tally_hub_link_notices_dropped_total",
            "Notices dropped because a live link's queue was full.",
            links.dropped,
        );
        counter(
            "tally_hub_released_units_total",
            "Units of rights stores released to the hub for online orders.",
            get(&self.released_units),
        );
        let _ = writeln!(
            out,
            "# HELP tally_hub_orders_total Online orders by result.\n# TYPE tally_hub_orders_total counter"
        );
        for (label, c) in [
            ("accepted", &self.orders_accepted),
            ("insufficient_stock", &self.orders_refused),
            ("replayed", &self.orders_replayed),
        ] {
            let _ = writeln!(
                out,
                "tally_hub_orders_total{{result=\"{label}\"}} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tally_hub_sync_requests_total Sync requests by outcome.\n# TYPE tally_hub_sync_requests_total counter"
        );
        for (o, c) in SyncOutcome::ALL.iter().zip(&self.sync) {
            let _ = writeln!(
                out,
                "tally_hub_sync_requests_total{{outcome=\"{}\"}} {}",
                o.label(),
                get(c)
            );
        }
        self.sync_latency.render(
            &mut out,
            "tally_hub_sync_duration_seconds",
            "Sync request latency, body read to response.",
        );
        let _ = writeln!(
            out,
            "# HELP tally_hub_rights_requests_total Stores' requests for the hub's rights, by result.\n# TYPE tally_hub_rights_requests_total counter"
        );
        for (label, c) in ["granted", "partial", "refused", "replayed"]
            .iter()
            .zip(&self.rights)
        {
            let _ = writeln!(
                out,
                "tally_hub_rights_requests_total{{result=\"{label}\"}} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tally_hub_rights_granted_units_total Units of rights granted on request.\n# TYPE tally_hub_rights_granted_units_total counter\ntally_hub_rights_granted_units_total {}",
            get(&self.rights_units)
        );
        self.rights_latency.render(
            &mut out,
            "tally_hub_rights_duration_seconds",
            "Rights request latency, body read to answer (commit included).",
        );
        let mut labelled = |name: &str, help: &str, label: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, n) in rows {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        };
        let rows: Vec<(&str, u64)> = NOTICE_KINDS
            .iter()
            .zip(&self.notices)
            .map(|(k, c)| (*k, get(c)))
            .collect();
        labelled(
            "tally_hub_link_notices_total",
            "Notices sent on live links, by kind.",
            "kind",
            &rows,
        );
        let rows: Vec<(&str, u64)> = ["reported", "not_live", "no_answer"]
            .iter()
            .zip(&self.release)
            .map(|(k, c)| (*k, get(c)))
            .collect();
        labelled(
            "tally_hub_release_requests_total",
            "Online orders' requests to a store to release rights, by result.",
            "result",
            &rows,
        );
        let rows: Vec<(&str, u64)> = ORDER_REFUSAL_REASONS
            .iter()
            .zip(&self.orders_refused_by)
            .map(|(k, c)| (*k, get(c)))
            .collect();
        labelled(
            "tally_hub_orders_refused_total",
            "Online orders refused for lack of stock, by reason.",
            "reason",
            &rows,
        );
        let rows: Vec<(&str, u64)> = CONNECTION_ENDS
            .iter()
            .zip(&self.connections_ended)
            .map(|(k, c)| (*k, get(c)))
            .collect();
        labelled(
            "tally_hub_connections_ended_total",
            "TLS connections ended, by how (idle and stalled: closed by the hub's limits).",
            "how",
            &rows,
        );
        let rows: Vec<(&str, u64)> = SHED_REASONS
            .iter()
            .zip(&self.shed)
            .map(|(k, c)| (*k, get(c)))
            .collect();
        labelled(
            "tally_hub_shed_total",
            "Connections and requests turned away to protect the hub, by reason.",
            "reason",
            &rows,
        );
        self.release_latency.render(
            &mut out,
            "tally_hub_release_duration_seconds",
            "From asking a live store to release rights to its report.",
        );
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "tally_hub_connections_open",
            "TLS connections open now.",
            get(&self.connections_open),
        );
        gauge(
            "tally_hub_stores",
            "Stores that have synced at least once.",
            stores as u64,
        );
        gauge(
            "tally_hub_stores_online",
            "Stores whose last sync is within the online window.",
            stores_online as u64,
        );
        gauge(
            "tally_hub_stores_live",
            "Stores with a live link open now.",
            links.live,
        );
        gauge(
            "tally_hub_units_held",
            "Units this process holds for online orders waiting on a store's release (no till is granted them meanwhile).",
            links.units_held,
        );
        gauge(
            "tally_hub_request_bytes_in_flight",
            "Bytes of request bodies read, decoded or queued for the writer now.",
            links.bytes_in_flight,
        );
        if let Some(bus) = links.bus {
            gauge(
                "tally_hub_bus_connected",
                "1 while the bus to the other hub processes over the database is connected.",
                u64::from(bus.connected),
            );
            gauge(
                "tally_hub_bus_settings_differ",
                "1 while another hub process of this version over the database announces other shared settings (reserve policy, routing, heartbeat, limits).",
                u64::from(bus.settings_differ),
            );
        }
        if let Some(followed) = links.revocations_followed {
            gauge(
                "tally_hub_revocations_followed",
                "1 while the database's revocation list is followed (0: stores are refused, fail closed).",
                u64::from(followed),
            );
        }
        if let Some(bus) = links.bus {
            let _ = writeln!(
                out,
                "# HELP tally_hub_bus_messages_dropped_total Messages to the other hub processes dropped (too long, or sent while disconnected).\n# TYPE tally_hub_bus_messages_dropped_total counter\ntally_hub_bus_messages_dropped_total {}",
                bus.dropped
            );
        }
        out
    }
}

/// Figures kept elsewhere that `render` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Stores live now.
    pub live: u64,
    /// Notices dropped so far.
    pub dropped: u64,
    /// Bytes of request bodies in flight now (read, decoded or queued for
    /// the writer).
    pub bytes_in_flight: u64,
    /// Units held at this process for online orders waiting on a
    /// store's release.
    pub units_held: u64,
    /// The bus to the other hub processes over the database, if any.
    pub bus: Option<crate::link::BusState>,
    /// Whether the revocation list kept in the database is followed now
    /// (`None`: the hub keeps none).
    pub revocations_followed: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.sync(SyncOutcome::Ok, Duration::from_millis(3));
        m.sync(SyncOutcome::Forbidden, Duration::from_millis(30));
        m.merged(5, 1, 2, 0);
        let text = m.render(2, 1, Gauges::default());
        assert!(text.contains("tally_hub_sync_requests_total{outcome=\"ok\"} 1"));
        assert!(text.contains("tally_hub_sync_requests_total{outcome=\"forbidden\"} 1"));
        assert!(text.contains("tally_hub_events_received_total 5"));
        assert!(text.contains("tally_hub_sync_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("tally_hub_sync_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("tally_hub_sync_duration_seconds_count 2"));
        assert!(text.contains("tally_hub_stores_online 1"));
        m.rights(RightsOutcome::Partial, 2, Duration::from_millis(2));
        let text = m.render(2, 1, Gauges::default());
        assert!(text.contains("tally_hub_rights_requests_total{result=\"partial\"} 1"));
        assert!(text.contains("tally_hub_rights_granted_units_total 2"));
        assert!(text.contains("tally_hub_rights_duration_seconds_bucket{le=\"0.0025\"} 1"));
        m.notice("rights_wanted");
        m.release(ReleaseOutcome::Reported, 3, Duration::from_millis(4));
        m.order_refused("offline");
        let text = m.render(
            2,
            1,
            Gauges {
                live: 1,
                dropped: 2,
                bytes_in_flight: 4096,
                units_held: 6,
                bus: Some(crate::link::BusState {
                    dropped: 5,
                    connected: true,
                    settings_differ: true,
                }),
                revocations_followed: Some(false),
            },
        );
        assert!(text.contains("tally_hub_bus_connected 1"));
        assert!(text.contains("tally_hub_bus_settings_differ 1"));
        assert!(text.contains("tally_hub_bus_messages_dropped_total 5"));
        assert!(text.contains("tally_hub_revocations_followed 0"));
        assert!(text.contains("tally_hub_request_bytes_in_flight 4096"));
        assert!(text.contains("tally_hub_link_notices_total{kind=\"rights_wanted\"} 1"));
        assert!(text.contains("tally_hub_release_requests_total{result=\"reported\"} 1"));
        assert!(text.contains("tally_hub_released_units_total 3"));
        assert!(text.contains("tally_hub_orders_refused_total{reason=\"offline\"} 1"));
        assert!(text.contains("tally_hub_stores_live 1"));
        assert!(text.contains("tally_hub_units_held 6"));
        assert!(text.contains("tally_hub_link_notices_dropped_total 2"));
    }
}
