//! The end of the scripted day: wait until the chain has converged, then
//! measure the result **from the hub** (`GET /v1/audit`: units received,
//! sold and ordered per store and item, from every event the hub holds)
//! and print the per-store table and the one summary line.
//!
//! "Converged" means, all at once: every store's outbox is empty; for every
//! item and store the agent's on-hand equals the hub's; the hub's counters
//! agree with its events; the hub holds every sale the self-checkouts
//! made and every unit sold by its tag, every unit the RFID portals
//! received, the tagged receipts brought (and every unit a cancelled
//! order gave back) and every online order the hub accepted; its orders
//! and transfers by status are those the day's flows ended with (the
//! agents' and the demo's own counts); and the shrink it holds is what
//! the accepted cycle counts counted down.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::catalog::Item;
use super::chain::Chain;
use super::script::{self, DayStats};

/// The summary line's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The RNG seed.
    pub seed: u64,
    /// Stores.
    pub stores: usize,
    /// The day's length.
    pub duration_s: u64,
    /// Events the hub holds.
    pub events: u64,
    /// Units received (hub).
    pub received: u64,
    /// Units sold at the tills (hub).
    pub sold: u64,
    /// Units ordered online (hub).
    pub ordered: u64,
    /// Orders with a lifecycle collected, shipped and cancelled, and
    /// transfers received (hub, `GET /v1/stats/orders`).
    pub orders_collected: u64,
    /// See [`Summary::orders_collected`].
    pub orders_shipped: u64,
    /// See [`Summary::orders_collected`].
    pub orders_cancelled: u64,
    /// See [`Summary::orders_collected`].
    pub transfers_received: u64,
    /// RFID cycle count sessions accepted (the counting store's agent,
    /// `GET /v1/counts/sessions/{id}`).
    pub counts_accepted: u64,
    /// Units counted down as missing (hub, `GET /v1/audit`).
    pub shrink: u64,
    /// Scans the stores refused (agents' counters).
    pub refused_scans: u64,
    /// Sales refused for lack of rights, by why (agents'
    /// `tally_agent_shortages_total`): no unsold units on hand, units on
    /// hand whose rights the hub kept although it was reachable (rights on
    /// demand should make this 0), units on hand while offline.
    pub refused_no_stock: u64,
    /// See [`Summary::refused_no_stock`].
    pub refused_held_elsewhere: u64,
    /// See [`Summary::refused_no_stock`].
    pub refused_offline: u64,
    /// Online orders the hub refused.
    pub refused_orders: u64,
    /// Online orders refused by why (the hub's
    /// `tally_hub_orders_refused_total`): the store had no unsold units,
    /// it had some but gave too few although live (asking it should make
    /// this 0), it had some but was not live.
    pub refused_orders_no_stock: u64,
    /// See [`Summary::refused_orders_no_stock`].
    pub refused_orders_held_elsewhere: u64,
    /// See [`Summary::refused_orders_no_stock`].
    pub refused_orders_offline: u64,
    /// Offline periods.
    pub offline_periods: usize,
    /// Their total length.
    pub offline_s: f64,
    /// The longest reconciliation after a link came back (None: one did
    /// not reconcile during the day).
    pub reconcile_s: Option<f64>,
    /// See the module docs.
    pub converged: bool,
    /// Σ units sold or ordered beyond units received, per store and item (hub).
    pub double_sold: u64,
    /// EPCs sold twice (hub).
    pub epcs_sold_twice: u64,
}

impl Summary {
    /// Every promise kept.
    pub fn ok(&self) -> bool {
        self.converged && self.double_sold == 0 && self.epcs_sold_twice == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reconcile = self
            .reconcile_s
            .map_or_else(|| "none".to_string(), |s| format!("{s:.2}"));
        write!(
            f,
            "SUMMARY seed={} stores={} duration_s={} hub_events={} received={} sold={} ordered={} \
             orders_collected={} orders_shipped={} orders_cancelled={} transfers_received={} \
             counts_accepted={} shrink={} refused_scans={} refused_no_stock={} refused_held_elsewhere={} refused_offline={} \
             refused_orders={} refused_orders_no_stock={} refused_orders_held_elsewhere={} \
             refused_orders_offline={} refused_while_available_link_up={} \
             refused_while_available_link_down={} offline_periods={} offline_s={:.1} \
             reconcile_s={} converged={} double_sold={} epcs_sold_twice={}",
            self.seed,
            self.stores,
            self.duration_s,
            self.events,
            self.received,
            self.sold,
            self.ordered,
            self.orders_collected,
            self.orders_shipped,
            self.orders_cancelled,
            self.transfers_received,
            self.counts_accepted,
            self.shrink,
            self.refused_scans,
            self.refused_no_stock,
            self.refused_held_elsewhere,
            self.refused_offline,
            self.refused_orders,
            self.refused_orders_no_stock,
            self.refused_orders_held_elsewhere,
            self.refused_orders_offline,
            self.refused_held_elsewhere + self.refused_orders_held_elsewhere,
            self.refused_offline + self.refused_orders_offline,
            self.offline_periods,
            self.offline_s,
            reconcile,
            self.converged,
            self.double_sold,
            self.epcs_sold_twice
        )
    }
}

/// Per-store totals from the audit's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Units in.
    pub received: u64,
    /// Sold at the tills.
    pub sold: u64,
    /// Ordered online.
    pub ordered: u64,
    /// Counted down (shrink).
    pub shrink: u64,
    /// On hand (hub's counters).
    pub on_hand: u64,
    /// Oversold.
    pub oversold: u64,
}

/// Sums the audit's `items` per store.
pub fn per_store(audit: &Value) -> BTreeMap<String, StoreTotals> {
    let mut out: BTreeMap<String, StoreTotals> = BTreeMap::new();
    for row in audit["items"].as_array().into_iter().flatten() {
        let Some(store) = row["store"].as_str() else {
            continue;
        };
        let n = |k: &str| row[k].as_u64().unwrap_or(0);
        let t = out.entry(store.to_string()).or_default();
        t.received += n("units_in");
        t.sold += n("sold");
        t.ordered += n("ordered");
        t.shrink += n("shrink");
        t.on_hand += n("on_hand");
        t.oversold += n("oversold");
    }
    out
}

/// What is still not converged (empty: converged).
async fn problems(chain: &Chain, items: &[Item], day: &DayStats) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, s) in chain.stores.iter().enumerate() {
        if !script::reconciled(chain, items, i).await? {
            out.push(format!(
                "{}: outbox not empty or stock differs from the hub's",
                s.id
            ));
        }
    }
    let audit = chain.hub.get_ok("/v1/audit").await?;
    if audit["counters_disagreeing"].as_u64() != Some(0) {
        out.push(format!(
            "hub: {} counters disagree with its events",
            audit["counters_disagreeing"]
        ));
    }
    let totals = per_store(&audit);
    let hub_sold: u64 = totals.values().map(|t| t.sold).sum();
    let hub_in: u64 = totals.values().map(|t| t.received).sum();
    let hub_ordered: u64 = totals.values().map(|t| t.ordered).sum();
    let hub_shrink: u64 = totals.values().map(|t| t.shrink).sum();
    let (mut sold, mut received) = (0, 0);
    for s in &chain.stores {
        let m = s.api.metrics().await?;
        sold += m.get("tally_agent_device_scans_total{outcome=\"sold\"}");
        received += m.get("tally_agent_device_tags_total{outcome=\"received\"}");
    }
    if hub_sold != sold + day.tag_sales {
        out.push(format!(
            "the hub holds {hub_sold} units sold, the self-checkouts sold {sold} and the counters {} by tag",
            day.tag_sales
        ));
    }
    let given_back = day.flows.cancelled_units;
    let found: u64 = day.counts.iter().map(|c| c.units_up).sum();
    if hub_in != received + day.receipt_units + given_back + found {
        out.push(format!(
            "the hub holds {hub_in} units in, the RFID portals received {received}, tagged receipts {}, cancelled orders gave {given_back} back and counts found {found}",
            day.receipt_units
        ));
    }
    let missing: u64 = day.counts.iter().map(|c| c.units_down).sum();
    if hub_shrink != missing {
        out.push(format!(
            "the hub holds {hub_shrink} units counted missing, the accepted counts removed {missing}"
        ));
    }
    let ordered = day.ordered_units + day.flows.ordered_units;
    if hub_ordered != ordered {
        out.push(format!(
            "the hub holds {hub_ordered} units ordered, it accepted orders for {ordered}"
        ));
    }
    let stats = chain.hub.get_ok("/v1/stats/orders").await?;
    let f = &day.flows;
    for (what, status, demo) in [
        ("orders", "collected", f.collected),
        ("orders", "shipped", f.shipped),
        ("orders", "cancelled", f.cancelled),
        ("transfers", "received", f.received),
    ] {
        let hub = stats[what][status].as_u64().unwrap_or(0);
        if hub != demo {
            out.push(format!(
                "the hub counts {hub} {what} {status}, the day's flows ended {demo} so"
            ));
        }
    }
    Ok(out)
}

/// Waits up to `within` for convergence; then audits at the hub.
pub async fn finish(
    chain: &Chain,
    items: &[Item],
    day: &DayStats,
    seed: u64,
    duration: Duration,
    within: Duration,
    say: impl Fn(String),
) -> anyhow::Result<(Summary, Value)> {
    let started = Instant::now();
    let end = started + within;
    let (converged, last) = loop {
        chain.check_alive().await?;
        let left = problems(chain, items, day).await?;
        if left.is_empty() {
            break (true, left);
        }
        if Instant::now() > end {
            break (false, left);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if converged {
        say(format!(
            "converged {:.2} s after the day ended: every outbox empty, hub and stores agree on every item",
            started.elapsed().as_secs_f64()
        ));
    } else {
        for p in &last {
            say(format!("NOT CONVERGED: {p}"));
        }
    }
    let audit = chain.hub.get_ok("/v1/audit").await?;
    let totals = per_store(&audit);
    let (mut refused_scans, mut shortages) = (0, [0u64; 3]);
    for s in &chain.stores {
        let m = s.api.metrics().await?;
        refused_scans += m.get("tally_agent_device_scans_total{outcome=\"refused\"}");
        for (n, reason) in shortages
            .iter_mut()
            .zip(["no_stock", "held_elsewhere", "offline"])
        {
            *n += m.get(&format!(
                "tally_agent_shortages_total{{reason=\"{reason}\"}}"
            ));
        }
    }
    let [refused_no_stock, refused_held_elsewhere, refused_offline] = shortages;
    let hub_metrics = chain.hub.metrics().await?;
    let orders_refused = |reason: &str| {
        hub_metrics.get(&format!(
            "tally_hub_orders_refused_total{{reason=\"{reason}\"}}"
        ))
    };
    let mut counts_accepted = 0;
    for c in &day.counts {
        let session = chain.stores[c.store]
            .api
            .get_ok(&format!("/v1/counts/sessions/{}", c.session_id))
            .await?;
        if session["status"] == "accepted" {
            counts_accepted += 1;
        }
    }
    let n = |k: &str| audit[k].as_u64().unwrap_or(u64::MAX);
    let stats = chain.hub.get_ok("/v1/stats/orders").await?;
    let count = |what: &str, status: &str| stats[what][status].as_u64().unwrap_or(0);
    let summary = Summary {
        seed,
        stores: chain.stores.len(),
        duration_s: duration.as_secs(),
        events: n("events"),
        received: totals.values().map(|t| t.received).sum(),
        sold: totals.values().map(|t| t.sold).sum(),
        ordered: totals.values().map(|t| t.ordered).sum(),
        orders_collected: count("orders", "collected"),
        orders_shipped: count("orders", "shipped"),
        orders_cancelled: count("orders", "cancelled"),
        transfers_received: count("transfers", "received"),
        counts_accepted,
        shrink: totals.values().map(|t| t.shrink).sum(),
        refused_scans,
        refused_no_stock,
        refused_held_elsewhere,
        refused_offline,
        refused_orders: day.orders_refused,
        refused_orders_no_stock: orders_refused("no_stock"),
        refused_orders_held_elsewhere: orders_refused("held_elsewhere"),
        refused_orders_offline: orders_refused("offline"),
        offline_periods: day.offline.len(),
        offline_s: day.offline.iter().map(|o| o.cut_for.as_secs_f64()).sum(),
        reconcile_s: day
            .offline
            .iter()
            .map(|o| o.reconciled_in.map(|d| d.as_secs_f64()))
            .try_fold(0.0_f64, |m, x| x.map(|x| m.max(x))),
        converged,
        double_sold: n("double_sold"),
        epcs_sold_twice: n("epcs_sold_twice"),
    };
    Ok((summary, audit))
}

/// The per-store table, as lines.
pub fn table(audit: &Value) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<10} {:>9} {:>6} {:>8} {:>7} {:>8} {:>9}",
        "store", "received", "sold", "ordered", "shrink", "on hand", "oversold"
    )];
    for (store, t) in per_store(audit) {
        lines.push(format!(
            "{:<10} {:>9} {:>6} {:>8} {:>7} {:>8} {:>9}",
            store, t.received, t.sold, t.ordered, t.shrink, t.on_hand, t.oversold
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_line_names_every_promise() {
        let s = Summary {
            seed: 7,
            stores: 3,
            duration_s: 15,
            events: 400,
            received: 180,
            sold: 100,
            ordered: 9,
            orders_collected: 1,
            orders_shipped: 1,
            orders_cancelled: 1,
            transfers_received: 1,
            counts_accepted: 1,
            shrink: 1,
            refused_scans: 4,
            refused_no_stock: 3,
            refused_held_elsewhere: 0,
            refused_offline: 1,
            refused_orders: 1,
            refused_orders_no_stock: 0,
            refused_orders_held_elsewhere: 0,
            refused_orders_offline: 1,
            offline_periods: 1,
            offline_s: 4.5,
            reconcile_s: Some(0.8123),
            converged: true,
            double_sold: 0,
            epcs_sold_twice: 0,
        };
        let line = s.to_string();
        assert!(
            line.starts_with("SUMMARY seed=7 stores=3 duration_s=15 "),
            "{line}"
        );
        for part in [
            "ordered=9 orders_collected=1 orders_shipped=1 orders_cancelled=1 transfers_received=1 counts_accepted=1 shrink=1 refused_scans=4",
            "refused_no_stock=3 refused_held_elsewhere=0 refused_offline=1",
            "refused_orders_offline=1",
            "refused_while_available_link_up=0 refused_while_available_link_down=2",
            "offline_periods=1",
            "reconcile_s=0.81",
            "converged=true",
            "double_sold=0",
            "epcs_sold_twice=0",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        assert!(s.ok());
        assert!(!Summary {
            double_sold: 1,
            ..s.clone()
        }
        .ok());
        assert!(!Summary {
            converged: false,
            ..s
        }
        .ok());
    }

    #[test]
    fn audit_rows_sum_per_store() {
        let audit = json!({"items": [
            {"store": "s1", "units_in": 5, "sold": 2, "ordered": 1, "shrink": 1, "on_hand": 1, "oversold": 0},
            {"store": "s1", "units_in": 3, "sold": 3, "ordered": 0, "on_hand": 0, "oversold": 0},
            {"store": "s2", "units_in": 1, "sold": 0, "ordered": 0, "on_hand": 1, "oversold": 0}]});
        let t = per_store(&audit);
        assert_eq!(
            t["s1"],
            StoreTotals {
                received: 8,
                sold: 5,
                ordered: 1,
                shrink: 1,
                on_hand: 1,
                oversold: 0
            }
        );
        assert_eq!(table(&audit).len(), 3);
    }
}
