//! The agent's Prometheus metrics (served at `GET /metrics` in the
//! OpenMetrics text format, which Prometheus scrapes natively).
//!
//! One [`Metrics`] per agent, shared by the committer and the API; no
//! global registry, so tests can run several agents in one process.

use std::fmt;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tally_sync::{Refusal, Shortage};

/// Label for events by kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabel {
    /// `sale`, `return`, `receipt`, `count_adjustment`.
    pub kind: &'static str,
}

/// Label for refusals by reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `insufficient_stock`, `already_sold`, `not_sold`, `invalid`.
    pub reason: &'static str,
}

/// Label for what became of a device input (a scan, a tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// See `docs/api.md` (`device_scans_total`, `device_tags_total`).
    pub outcome: &'static str,
}

/// Label naming a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DeviceLabel {
    /// `scanner` or `rfid`.
    pub device: &'static str,
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    /// Sales committed durably.
    pub sales: Counter,
    /// Events committed durably, by kind.
    pub events: Family<KindLabel, Counter>,
    /// Commands refused, by reason.
    pub refusals: Family<ReasonLabel, Counter>,
    /// Sales refused for lack of rights, by why (`no_stock`,
    /// `held_elsewhere`, `offline`): the sales a store lost.
    pub shortages: Family<ReasonLabel, Counter>,
    /// Manager approvals checked, by result (`accepted`, `refused`).
    pub approvals: Family<OutcomeLabel, Counter>,
    /// Retried commands answered from the journal.
    pub duplicates: Counter,
    /// Transactions that failed to commit.
    pub commit_failures: Counter,
    /// Time a job waited in the queue for its batch to start (behind the
    /// commit in progress).
    pub queue_seconds: Histogram,
    /// Time from the start of a batch's transaction to its durable commit
    /// (applying every command, then committing).
    pub batch_seconds: Histogram,
    /// Time of the durable commit alone (page writes + `fdatasync`).
    pub commit_seconds: Histogram,
    /// Time from a command's arrival at the committer to its durable
    /// answer (queue wait + its batch): the agent's share of a sale's
    /// latency, without HTTP.
    pub durable_seconds: Histogram,
    /// Commands per committed transaction.
    pub batch_size: Histogram,
    /// Events waiting in the outbox for the hub's acknowledgement.
    pub outbox_events: Gauge,
    /// Transactions that wrote the held-back counters to their table.
    pub counter_flushes: Counter,
    /// Counters changed since the last flush (held in memory).
    pub unflushed_counters: Gauge,
    /// Codes read by a scanner wired to the agent, by outcome.
    pub device_scans: Family<OutcomeLabel, Counter>,
    /// Tags reported (once per de-duplication window) by an RFID reader
    /// wired to the agent, by outcome.
    pub device_tags: Family<OutcomeLabel, Counter>,
    /// 1 while a device's port is open, else 0.
    pub device_connected: Family<DeviceLabel, Gauge>,
    /// Requests for the hub's rights (rights on demand), by result:
    /// `granted`, `partial`, `refused` (the hub held none), `failed` (no
    /// answer in time).
    pub rights_requests: Family<OutcomeLabel, Counter>,
    /// Round trip of a request for rights, send to answer.
    pub rights_seconds: Histogram,
    /// 1 while the live link to the hub is open, else 0.
    pub link_live: Gauge,
    /// The hub's clock less this box's, seconds, from the hub's last
    /// `Date` (to a second or so).
    pub hub_clock_offset: Gauge,
    /// Notices received on the live link, by kind.
    pub link_notices: Family<KindLabel, Counter>,
    /// Units of rights released to the hub for online orders.
    pub rights_released: Counter,
    /// Cashiers' sessions open (signed in, not idle too long), as of the
    /// last scrape.
    pub cashier_sessions: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("sales", &self.sales.get())
            .field("outbox_events", &self.outbox_events.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `n` histogram bounds from `first` in steps of `factor`, each rounded
/// to 4 significant digits, so `/metrics` says `le="0.00003456"` rather
/// than the product's float noise (`le="0.000034559999999999997"`). The
/// rounding moves a bound by less than 0.05 %, so the steps stay steps.
fn latency_bounds(first: f64, factor: f64, n: usize) -> impl Iterator<Item = f64> {
    std::iter::successors(Some(first), move |b| Some(b * factor))
        .take(n)
        .map(|b| format!("{b:.3e}").parse().unwrap_or(b))
}

impl Metrics {
    /// A fresh set of metrics, registered under `tally_agent_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tally_agent");
        let sales = Counter::default();
        let events = Family::<KindLabel, Counter>::default();
        let refusals = Family::<ReasonLabel, Counter>::default();
        let shortages = Family::<ReasonLabel, Counter>::default();
        let approvals = Family::<OutcomeLabel, Counter>::default();
        let duplicates = Counter::default();
        let commit_failures = Counter::default();
        // 20 µs … ~0.5 s in steps of 1.2×: fsync latencies span that range,
        // and a p99 read off these buckets is within 20 % of the truth.
        let buckets = || latency_bounds(20e-6, 1.2, 56);
        let queue_seconds = Histogram::new(buckets());
        let batch_seconds = Histogram::new(buckets());
        let commit_seconds = Histogram::new(buckets());
        let durable_seconds = Histogram::new(buckets());
        let batch_size = Histogram::new([
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
        ]);
        let outbox_events = Gauge::default();
        let counter_flushes = Counter::default();
        let unflushed_counters = Gauge::default();
        let device_scans = Family::<OutcomeLabel, Counter>::default();
        let device_tags = Family::<OutcomeLabel, Counter>::default();
        let device_connected = Family::<DeviceLabel, Gauge>::default();
        let rights_requests = Family::<OutcomeLabel, Counter>::default();
        // 100 µs … ~20 s in steps of 1.25×: loopback to a slow WAN.
        let rights_seconds = Histogram::new(latency_bounds(100e-6, 1.25, 56));
        let link_live = Gauge::default();
        let hub_clock_offset = Gauge::default();
        let link_notices = Family::<KindLabel, Counter>::default();
        let rights_released = Counter::default();
        let cashier_sessions = Gauge::default();
        registry.register(
            "cashier_sessions",
            "Cashiers' sessions open: signed in and not idle too long",
            cashier_sessions.clone(),
        );
        registry.register(
            "rights_requests",
            "Requests for the hub's rights, by result: granted, partial, refused, failed",
            rights_requests.clone(),
        );
        registry.register(
            "rights_request_seconds",
            "Round trip of a request for the hub's rights",
            rights_seconds.clone(),
        );
        registry.register(
            "link_live",
            "1 while the live link to the hub is open",
            link_live.clone(),
        );
        registry.register(
            "hub_clock_offset_seconds",
            "The hub's clock less this box's, from the hub's last answer (to a second or so); events this box dates more than a day ahead of the hub's clock are refused until HQ admits one",
            hub_clock_offset.clone(),
        );
        registry.register(
            "link_notices",
            "Notices received on the live link, by kind",
            link_notices.clone(),
        );
        registry.register(
            "rights_released_units",
            "Units of rights released to the hub for online orders",
            rights_released.clone(),
        );
        registry.register("sales", "Sales committed durably", sales.clone());
        registry.register(
            "events_committed",
            "Events committed durably, by kind",
            events.clone(),
        );
        registry.register("refusals", "Commands refused, by reason", refusals.clone());
        registry.register(
            "shortages",
            "Sales refused for lack of rights, by why: no_stock, held_elsewhere, offline",
            shortages.clone(),
        );
        registry.register(
            "approvals",
            "Manager approvals (PIN checked), by outcome: accepted, refused",
            approvals.clone(),
        );
        registry.register(
            "duplicates",
            "Retried commands answered from the journal without re-applying",
            duplicates.clone(),
        );
        registry.register(
            "commit_failures",
            "Write transactions that failed to commit",
            commit_failures.clone(),
        );
        registry.register(
            "queue_seconds",
            "Time a job waited for its batch to start",
            queue_seconds.clone(),
        );
        registry.register(
            "batch_seconds",
            "Group commit latency: transaction start to durable commit",
            batch_seconds.clone(),
        );
        registry.register(
            "durable_seconds",
            "Command recorded: arrival at the committer to durable answer",
            durable_seconds.clone(),
        );
        registry.register(
            "commit_seconds",
            "Durable commit alone: page writes and fdatasync",
            commit_seconds.clone(),
        );
        registry.register(
            "batch_size",
            "Commands per committed transaction",
            batch_size.clone(),
        );
        registry.register(
            "outbox_events",
            "Events waiting for the hub's acknowledgement",
            outbox_events.clone(),
        );
        registry.register(
            "counter_flushes",
            "Transactions that wrote the held-back counters to their table",
            counter_flushes.clone(),
        );
        registry.register(
            "unflushed_counters",
            "Counters changed since the last flush, held in memory",
            unflushed_counters.clone(),
        );
        registry.register(
            "device_scans",
            "Codes read by the agent's scanner, by outcome",
            device_scans.clone(),
        );
        registry.register(
            "device_tags",
            "RFID tags reported by the agent's reader, by outcome",
            device_tags.clone(),
        );
        registry.register(
            "device_connected",
            "1 while the device's serial port is open",
            device_connected.clone(),
        );
        Self {
            registry,
            sales,
            events,
            refusals,
            shortages,
            approvals,
            duplicates,
            commit_failures,
            queue_seconds,
            batch_seconds,
            commit_seconds,
            durable_seconds,
            batch_size,
            outbox_events,
            counter_flushes,
            unflushed_counters,
            device_scans,
            device_tags,
            device_connected,
            rights_requests,
            rights_seconds,
            link_live,
            hub_clock_offset,
            link_notices,
            rights_released,
            cashier_sessions,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Outbox depth as last set by the committer (or the sync client).
    pub fn outbox_depth(&self) -> u64 {
        u64::try_from(self.outbox_events.get()).unwrap_or(0)
    }

    /// Counts one scan with `outcome`.
    pub fn scan(&self, outcome: &'static str) {
        self.device_scans
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts a sale refused for lack of rights by why (`hub_reachable`:
    /// whether the last sync reached the hub); returns the why, `None` for
    /// other refusals.
    pub fn shortage(&self, refusal: &Refusal, hub_reachable: bool) -> Option<Shortage> {
        let why = refusal.shortage(hub_reachable)?;
        self.shortages
            .get_or_create(&ReasonLabel { reason: why.name() })
            .inc();
        Some(why)
    }

    /// Counts one manager approval checked.
    pub fn approval(&self, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "refused" };
        self.approvals
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts one tag report with `outcome`.
    pub fn tag(&self, outcome: &'static str) {
        self.tags(outcome, 1);
    }

    /// Counts `n` RFID tags by how they ended.
    pub fn tags(&self, outcome: &'static str, n: u64) {
        self.device_tags
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(n);
    }

    /// Records whether `device`'s port is open.
    pub fn set_connected(&self, device: &'static str, connected: bool) {
        self.device_connected
            .get_or_create(&DeviceLabel { device })
            .set(i64::from(connected));
    }

    /// Sets the number of counters held in memory.
    pub fn set_unflushed(&self, n: usize) {
        self.unflushed_counters
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the outbox depth.
    pub fn set_outbox_depth(&self, n: u64) {
        self.outbox_events.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family() {
        let m = Metrics::new();
        m.sales.inc();
        m.refusals
            .get_or_create(&ReasonLabel {
                reason: "insufficient_stock",
            })
            .inc();
        let short = Refusal::InsufficientStock {
            gtin: tally_sync::Gtin::from_body(1).unwrap(),
            requested: 2,
            available: 1,
            on_hand: 5,
        };
        assert_eq!(m.shortage(&short, false), Some(Shortage::Offline));
        m.commit_seconds.observe(0.002);
        m.set_outbox_depth(3);
        m.scan("sold");
        m.tag("received");
        m.set_connected("rfid", true);
        let text = m.encode().unwrap();
        for needle in [
            "tally_agent_sales_total 1",
            "tally_agent_refusals_total{reason=\"insufficient_stock\"} 1",
            "tally_agent_shortages_total{reason=\"offline\"} 1",
            "tally_agent_commit_seconds_bucket",
            "tally_agent_batch_size",
            "tally_agent_outbox_events 3",
            "tally_agent_device_scans_total{outcome=\"sold\"} 1",
            "tally_agent_device_tags_total{outcome=\"received\"} 1",
            "tally_agent_device_connected{device=\"rfid\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[test]
    fn latency_bounds_print_with_four_significant_digits() {
        let bounds: Vec<f64> = latency_bounds(20e-6, 1.2, 56).collect();
        assert_eq!(bounds.len(), 56);
        assert!(bounds.windows(2).all(|w| w[1] > w[0] * 1.19));
        assert_eq!(bounds[..4], [0.00002, 0.000024, 0.0000288, 0.00003456]);
        let text = Metrics::new().encode().unwrap();
        let labels: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tally_agent_commit_seconds_bucket"))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert_eq!(labels.len(), 57, "56 bounds and +Inf");
        for le in labels {
            let digits = le.trim_start_matches(['0', '.']).replace('.', "");
            assert!(digits.len() <= 4 || le == "+Inf", "le=\"{le}\"");
        }
    }
}
