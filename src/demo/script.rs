//! The scripted day. [`schedule`] is pure: from the seeded RNG, the
//! catalog, the number of stores and the day's length it makes the list of
//! timed steps (deliveries read by the RFID portals, scans at the
//! self-checkouts, online orders at the hub, orders with a lifecycle and a
//! transfer between stores, the cut and the return of one store, progress
//! lines). [`run_day`] plays them against the real chain (advancing the
//! orders' and the transfer's flows, [`super::orders`], between steps)
//! and reports what the demo saw, including each store's reconciliation
//! time after its link came back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;

use super::catalog::{self, Item};
use super::chain::Chain;
use super::count::{self, Count, CountOutcome};
use super::orders::{self, Flow, FlowStats, Kind};
use super::proxy::Mode;
use super::Log;

/// One thing that happens during the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Tagged units pass a store's receiving portal (`reads` reads each).
    Deliver {
        /// Store index.
        store: usize,
        /// (item index, serial) of each tag.
        tags: Vec<(usize, u64)>,
        /// Reads per tag.
        reads: u32,
        /// What it is, for the log.
        what: &'static str,
    },
    /// Tags already received pass the portal again.
    Reread {
        /// Store index.
        store: usize,
        /// (item index, serial) of each tag.
        tags: Vec<(usize, u64)>,
    },
    /// A customer scans one unit at a store's self-checkout.
    Scan {
        /// Store index.
        store: usize,
        /// Item index.
        item: usize,
    },
    /// A scan that must be refused: an item the store never received.
    Probe {
        /// Store index.
        store: usize,
        /// Item index.
        item: usize,
    },
    /// An online order at the hub, from a store's stock.
    Order {
        /// Store index.
        store: usize,
        /// Item index.
        item: usize,
        /// Units.
        qty: u64,
    },
    /// HQ places a pickup order at a store, which picks it; the customer
    /// collects it.
    Pickup {
        /// Store index.
        store: usize,
    },
    /// HQ places a ship order naming no store: the hub routes it, and the
    /// stores it went to pick and ship it.
    Ship,
    /// HQ places a pickup order at a store and cancels it once it is on
    /// the store's pick list.
    Cancel {
        /// Store index.
        store: usize,
    },
    /// A store sends stock to another, which receives it.
    Transfer {
        /// Source store index.
        from: usize,
        /// Destination store index.
        to: usize,
    },
    /// The store's link to the hub is cut.
    Cut {
        /// Store index.
        store: usize,
    },
    /// The store's link comes back.
    Restore {
        /// Store index.
        store: usize,
    },
    /// A customer buys one tagged unit at a store's counter, the till
    /// reading its tag (`POST /v1/sales` with its EPC); the unit stays
    /// behind on the shelf.
    SellTag {
        /// Store index.
        store: usize,
        /// (item index, serial) of the tag.
        tag: (usize, u64),
    },
    /// Staff count some items by RFID at the counting store: a session
    /// for them, the reader sweeping the shelf, the variance report, its
    /// acceptance ([`count`]).
    CycleCount(count::Plan),
    /// A progress line.
    Progress,
}

/// An action at a time from the start of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Milliseconds from the start of the day.
    pub at_ms: u64,
    /// What happens.
    pub action: Action,
}

/// An item by popularity, leaving out `skip`.
fn weighted(items: &[Item], skip: &[usize], rng: &mut impl Rng) -> usize {
    let weight = |i: usize| {
        if skip.contains(&i) {
            0
        } else {
            items[i].popularity
        }
    };
    let total: u32 = (0..items.len()).map(weight).sum();
    let mut x = rng.gen_range(0..total.max(1));
    for i in 0..items.len() {
        if x < weight(i) {
            return i;
        }
        x -= weight(i);
    }
    0
}

/// The store whose RFID reader counts (`--rfid-mode count`) instead of
/// receiving at a portal: the last one, with two stores or more (a lone
/// store keeps its portal). Its deliveries come as tagged receipts.
pub fn counting_store(stores: usize) -> Option<usize> {
    (stores > 1).then(|| stores - 1)
}

/// The day's steps, sorted by time (pure: the same inputs give the same
/// steps). Store 0.3 × day in, one store (chosen by the RNG) is cut off
/// until 0.6 × day; it keeps selling. The [`counting_store`] sells one
/// tagged unit by its tag at 0.22 × day and counts its
/// [`catalog::counted`] items at 0.65 × day (after any cut is over);
/// until then nothing else moves their units there: its self-checkout
/// never sells them and online orders never name them there (the flows
/// leave them alone too: `orders::start`).
pub fn schedule(
    rng: &mut impl Rng,
    items: &[Item],
    stores: usize,
    day: Duration,
) -> (Vec<Step>, usize) {
    let d = day.as_millis() as u64;
    let at = |f: f64| (d as f64 * f) as u64;
    let mut steps = Vec::new();
    let counting = counting_store(stores);
    let counted = catalog::counted(items);
    let skip_at = |store: usize| -> &[usize] {
        if Some(store) == counting {
            &counted
        } else {
            &[]
        }
    };
    let mut serials: BTreeMap<usize, u64> = BTreeMap::new();
    let mut next_serial = |item: usize| {
        let s = serials.entry(item).or_insert(1000);
        *s += 1;
        *s
    };

    // Morning delivery at every store, read at the portal 2–4 times per tag.
    let mut morning: Vec<Vec<(usize, u64)>> = Vec::new();
    for store in 0..stores {
        let mut tags = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let units = match item.delivery {
                Some((lo, hi)) => rng.gen_range(lo..=hi),
                None if store == 0 => 2,
                None => 0,
            };
            for _ in 0..units {
                tags.push((i, next_serial(i)));
            }
        }
        steps.push(Step {
            at_ms: 0,
            action: Action::Deliver {
                store,
                tags: tags.clone(),
                reads: rng.gen_range(2..=4),
                what: "morning delivery",
            },
        });
        morning.push(tags);
    }
    // The first pallet passes the portal again.
    if let Some(tags) = morning.first() {
        let mut again = tags.clone();
        again.shuffle(rng);
        again.truncate((again.len() / 2).max(1));
        steps.push(Step {
            at_ms: at(0.12).max(1200),
            action: Action::Reread {
                store: 0,
                tags: again,
            },
        });
    }
    // Self-checkout scans at every store, from 0.1 × day (rights first
    // reach the stores' counters) to 0.95 × day.
    let (start, end) = (at(0.1).max(1000), at(0.95));
    for store in 0..stores {
        let n = rng.gen_range(30..=42);
        for _ in 0..n {
            steps.push(Step {
                at_ms: rng.gen_range(start..=end.max(start)),
                action: Action::Scan {
                    store,
                    item: weighted(items, skip_at(store), rng),
                },
            });
        }
    }
    // Midday restock by RFID.
    for store in 0..stores {
        let mut tags = Vec::new();
        let mut picks: Vec<usize> = (0..items.len())
            .filter(|&i| matches!(items[i].delivery, Some((_, hi)) if hi > 0))
            .collect();
        picks.shuffle(rng);
        for &i in picks.iter().take(3) {
            for _ in 0..rng.gen_range(2..=4) {
                tags.push((i, next_serial(i)));
            }
        }
        steps.push(Step {
            at_ms: at(0.5) + rng.gen_range(0..400),
            action: Action::Deliver {
                store,
                tags,
                reads: rng.gen_range(2..=3),
                what: "midday restock",
            },
        });
    }
    // Online orders at the hub.
    let orders = 3 * stores + (d / 20_000) as usize;
    let sellable: Vec<usize> = (0..items.len())
        .filter(|&i| matches!(items[i].delivery, Some((_, hi)) if hi > 0))
        .collect();
    let sellable_at = |store: usize| -> Vec<usize> {
        sellable
            .iter()
            .copied()
            .filter(|i| !skip_at(store).contains(i))
            .collect()
    };
    for _ in 0..orders {
        let at_ms = rng.gen_range(at(0.15)..=at(0.9));
        let store = rng.gen_range(0..stores);
        steps.push(Step {
            at_ms,
            action: Action::Order {
                store,
                item: *sellable_at(store).choose(rng).unwrap_or(&0),
                qty: if rng.gen_ratio(1, 4) { 2 } else { 1 },
            },
        });
    }
    // One store is cut off and comes back; an online order is taken from
    // its stock while it is away, and a customer at another store (or at
    // it, with one store) brings the display model.
    let cut = rng.gen_range(0..stores);
    steps.push(Step {
        at_ms: at(0.3),
        action: Action::Cut { store: cut },
    });
    steps.push(Step {
        at_ms: at(0.45),
        action: Action::Order {
            store: cut,
            item: *sellable_at(cut).choose(rng).unwrap_or(&0),
            qty: 1,
        },
    });
    if let Some(display) = items.iter().position(|i| i.delivery == Some((0, 0))) {
        steps.push(Step {
            at_ms: at(0.4),
            action: Action::Probe {
                store: (cut + 1) % stores,
                item: display,
            },
        });
    }
    steps.push(Step {
        at_ms: at(0.6),
        action: Action::Restore { store: cut },
    });
    // Orders with a lifecycle, at stores that are not cut off then (the
    // cut store too when it is the only one), and a transfer between two
    // stores once the cut one is back.
    let other = (cut + 1) % stores;
    steps.push(Step {
        at_ms: at(0.2),
        action: Action::Pickup { store: other },
    });
    steps.push(Step {
        at_ms: at(0.25),
        action: Action::Cancel {
            store: (cut + stores - 1) % stores,
        },
    });
    if stores > 1 {
        steps.push(Step {
            at_ms: at(0.7),
            action: Action::Transfer {
                from: other,
                to: if stores > 2 { (cut + 2) % stores } else { cut },
            },
        });
    }
    steps.push(Step {
        at_ms: at(0.75),
        action: Action::Ship,
    });
    // The counting store: a unit of its second counted item sold by its
    // tag (it stays on the shelf), one of its first stolen; then the
    // count of both, of every tag it received of them but the stolen.
    if let (Some(store), [gone, sold, ..]) = (counting, counted.as_slice()) {
        let received: Vec<(usize, u64)> = steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Deliver {
                    store: at, tags, ..
                } if *at == store => Some(tags),
                _ => None,
            })
            .flatten()
            .copied()
            .filter(|(i, _)| counted.contains(i))
            .collect();
        let pick = |item: usize, rng: &mut dyn rand::RngCore| {
            let of: Vec<_> = received.iter().filter(|t| t.0 == item).collect();
            of.choose(rng).map(|t| **t)
        };
        if let Some(tag) = pick(*sold, rng) {
            steps.push(Step {
                at_ms: at(0.22),
                action: Action::SellTag { store, tag },
            });
        }
        let stolen: Vec<(usize, u64)> = pick(*gone, rng).into_iter().collect();
        steps.push(Step {
            at_ms: at(0.65),
            action: Action::CycleCount(count::Plan {
                store,
                items: counted.clone(),
                shelf: received
                    .iter()
                    .copied()
                    .filter(|t| !stolen.contains(t))
                    .collect(),
                stolen,
            }),
        });
    }
    let every = (d / 6).clamp(2000, 15_000);
    let mut t = every;
    while t < d {
        steps.push(Step {
            at_ms: t,
            action: Action::Progress,
        });
        t += every;
    }
    // The day ends on a progress line, at its full length.
    steps.push(Step {
        at_ms: d,
        action: Action::Progress,
    });
    steps.sort_by_key(|s| s.at_ms);
    (steps, cut)
}

/// One offline period, as the demo measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Offline {
    /// Store index.
    pub store: usize,
    /// How long the link was cut.
    pub cut_for: Duration,
    /// Events waiting in its outbox when the link came back.
    pub queued: u64,
    /// From the link's return until its outbox was empty and the hub
    /// agreed with its stock (None: not within the day).
    pub reconciled_in: Option<Duration>,
}

/// What the demo saw during the day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayStats {
    /// Codes scanned at the self-checkouts.
    pub scans: u64,
    /// Online orders accepted, and their units.
    pub orders_ok: u64,
    /// Units of the accepted orders.
    pub ordered_units: u64,
    /// Online orders refused (the hub's reserve at that store was short).
    pub orders_refused: u64,
    /// Offline periods.
    pub offline: Vec<Offline>,
    /// The orders with a lifecycle and the transfer.
    pub flows: FlowStats,
    /// Units the counting store received by tagged receipts (`POST
    /// /v1/receipts`, as from an advance ship notice) instead of a portal.
    pub receipt_units: u64,
    /// Units sold by their tag at a counter (`POST /v1/sales`).
    pub tag_sales: u64,
    /// The RFID cycle counts, as they ended.
    pub counts: Vec<CountOutcome>,
}

enum Pending {
    Reconcile {
        store: usize,
        since: Instant,
        cut_for: Duration,
        queued: u64,
    },
    Probe {
        store: usize,
        item: usize,
        refused_before: u64,
        deadline: Instant,
    },
}

const SOLD: &str = "tally_agent_device_scans_total{outcome=\"sold\"}";
const REFUSED: &str = "tally_agent_device_scans_total{outcome=\"refused\"}";
const RECEIVED: &str = "tally_agent_device_tags_total{outcome=\"received\"}";
const AGAIN: &str = "tally_agent_device_tags_total{outcome=\"already_received\"}";

/// Whether store `s` is reconciled: its outbox is empty and, for every
/// item, its on-hand equals what the hub holds for it.
pub async fn reconciled(chain: &Chain, items: &[Item], s: usize) -> anyhow::Result<bool> {
    let store = &chain.stores[s];
    let status = store.api.get_ok("/v1/status").await?;
    if status["outbox_events"].as_u64() != Some(0) {
        return Ok(false);
    }
    for item in items {
        let mine = store
            .api
            .get_ok(&format!("/v1/stock/{}", item.gtin))
            .await?["on_hand"]
            .as_u64()
            .unwrap_or(0);
        let hub = chain
            .hub
            .get_ok(&format!("/v1/stock/{}", item.gtin))
            .await?;
        let theirs = hub["stores"][&store.id]["on_hand"].as_u64().unwrap_or(0);
        if mine != theirs {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Plays `steps`; `rng` drives what is left to chance at run time (which
/// code form a scan uses, RSSI of reads).
pub async fn run_day(
    chain: &Chain,
    items: &[Item],
    steps: Vec<Step>,
    rng: &mut impl Rng,
    log: &Log,
) -> anyhow::Result<DayStats> {
    let start = Instant::now();
    let mut stats = DayStats::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut cut_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut order_no = 0u32;
    let mut flows: Vec<Flow> = Vec::new();
    let mut flow_no = 0u32;
    let mut counting: Option<Count> = None;
    let mut receipt_no = 0u32;
    for step in steps {
        let due = start + Duration::from_millis(step.at_ms);
        // Until the step is due: watch the children and what is pending.
        loop {
            chain.check_alive().await?;
            check_pending(chain, items, &mut pending, &mut stats, log).await?;
            orders::advance_all(chain, &mut flows, &mut stats.flows, log).await?;
            count::advance(items, &mut counting, &mut stats.counts, log).await?;
            let now = Instant::now();
            if now >= due {
                break;
            }
            tokio::time::sleep((due - now).min(Duration::from_millis(50))).await;
        }
        let name = |s: usize| chain.stores[s].id.as_str();
        match step.action {
            Action::Deliver {
                store,
                tags,
                reads,
                what,
            } => {
                let epcs = tags
                    .iter()
                    .map(|&(i, serial)| catalog::epc(&items[i], serial))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                if chain.stores[store].counts {
                    receipt_no += 1;
                    let units = tagged_receipt(chain, items, store, &tags, receipt_no).await?;
                    stats.receipt_units += units;
                    log.say(format!(
                        "{} {what}: {units} tagged units received from the advance ship notice (POST /v1/receipts, a line per tag with its EPC, e.g. {}): its reader counts, it has no portal",
                        name(store),
                        epcs.first().map(|e| e.to_hex()).unwrap_or_default()
                    ));
                    continue;
                }
                chain.stores[store].reader.present(&epcs, reads, rng)?;
                log.say(format!(
                    "{} {what}: {} tagged units pass the RFID portal ({} reads each; SGTIN-96 EPCs, e.g. {})",
                    name(store),
                    epcs.len(),
                    reads,
                    epcs.first().map(|e| e.to_hex()).unwrap_or_default()
                ));
            }
            Action::Reread { store, tags } => {
                let epcs = tags
                    .iter()
                    .map(|&(i, serial)| catalog::epc(&items[i], serial))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                chain.stores[store].reader.present(&epcs, 2, rng)?;
                log.say(format!(
                    "{}: {} of the morning's tags pass the portal again (they must not be received twice)",
                    name(store),
                    epcs.len()
                ));
            }
            Action::Scan { store, item } => {
                let code = catalog::scan_code(&items[item], rng);
                chain.stores[store].scanner.scan(&code)?;
                stats.scans += 1;
            }
            Action::Probe { store, item } => {
                let refused_before = chain.stores[store].api.metrics().await?.get(REFUSED);
                let code = catalog::scan_code(&items[item], rng);
                chain.stores[store].scanner.scan(&code)?;
                stats.scans += 1;
                log.say(format!(
                    "{}: a customer scans the {} ({code}); the store never received one",
                    name(store),
                    items[item].label()
                ));
                pending.push(Pending::Probe {
                    store,
                    item,
                    refused_before,
                    deadline: Instant::now() + Duration::from_secs(10),
                });
            }
            Action::Order { store, item, qty } => {
                order_no += 1;
                let id = format!("web-{order_no:04}");
                let body = json!({"order_id": id, "store": name(store),
                                  "lines": [{"gtin": items[item].gtin.to_string(), "qty": qty}]});
                let (status, answer) = chain.hub.post("/v1/orders", &body).await?;
                let offline = if cut_at.contains_key(&store) {
                    " (store offline)"
                } else {
                    ""
                };
                match status {
                    201 | 200 => {
                        stats.orders_ok += 1;
                        stats.ordered_units += qty;
                        log.say(format!(
                            "online order {id}: {qty} × {} from {}{offline} — accepted from the hub's reserve there",
                            items[item].label(),
                            name(store)
                        ));
                    }
                    409 => {
                        stats.orders_refused += 1;
                        let why = if offline.is_empty() {
                            ""
                        } else {
                            "; the rest are the store's rights, which only it may sell"
                        };
                        log.say(format!(
                            "online order {id}: {qty} × {} from {}{offline} — REFUSED, the hub holds {} there{why}",
                            items[item].label(),
                            name(store),
                            answer["available"]
                        ));
                    }
                    other => {
                        return Err(anyhow!("POST /v1/orders answered {other}: {answer}"));
                    }
                }
            }
            Action::Pickup { store } | Action::Cancel { store } => {
                flow_no += 1;
                let kind = if matches!(step.action, Action::Pickup { .. }) {
                    Kind::Pickup
                } else {
                    Kind::Cancel
                };
                flows.extend(
                    orders::start(chain, items, kind, flow_no, &[store], &mut stats.flows, log)
                        .await?,
                );
            }
            Action::Ship => {
                flow_no += 1;
                flows.extend(
                    orders::start(
                        chain,
                        items,
                        Kind::Ship,
                        flow_no,
                        &[],
                        &mut stats.flows,
                        log,
                    )
                    .await?,
                );
            }
            Action::Transfer { from, to } => {
                flow_no += 1;
                flows.extend(
                    orders::start(
                        chain,
                        items,
                        Kind::Transfer,
                        flow_no,
                        &[from, to],
                        &mut stats.flows,
                        log,
                    )
                    .await?,
                );
            }
            Action::Cut { store } => {
                chain.stores[store].proxy.set(Mode::Blackhole);
                cut_at.insert(store, Instant::now());
                log.say(format!(
                    "{} is OFFLINE: its link to the hub is cut (the proxy black-holes it); it keeps selling on its own rights",
                    name(store)
                ));
            }
            Action::Restore { store } => {
                let queued = chain.stores[store].api.get_ok("/v1/status").await?["outbox_events"]
                    .as_u64()
                    .unwrap_or(0);
                chain.stores[store].proxy.set(Mode::Pass);
                let cut_for = cut_at
                    .remove(&store)
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                log.say(format!(
                    "{} is back ONLINE after {:.1} s, {queued} events queued; reconciling…",
                    name(store),
                    cut_for.as_secs_f64()
                ));
                pending.push(Pending::Reconcile {
                    store,
                    since: Instant::now(),
                    cut_for,
                    queued,
                });
            }
            Action::SellTag {
                store,
                tag: (item, serial),
            } => {
                let epc = catalog::epc(&items[item], serial)?;
                let body = json!({"lines": [{"gtin": items[item].gtin.to_string(), "qty": 1,
                                             "epc": epc.to_hex()}],
                                  "cashier": "c-1", "till": "counter"});
                let (status, answer) = chain.stores[store].api.post("/v1/sales", &body).await?;
                match status {
                    201 | 200 => {
                        stats.tag_sales += 1;
                        log.say(format!(
                            "{}: a customer buys a {} at the counter, the till reading its tag (POST /v1/sales with EPC {}); they leave it in the fitting room, and staff put it back on the shelf without a return",
                            name(store),
                            items[item].label(),
                            epc.to_hex()
                        ));
                    }
                    409 => log.say(format!(
                        "{}: a customer wants a {} at the counter (EPC {}) — REFUSED: {}",
                        name(store),
                        items[item].label(),
                        epc.to_hex(),
                        answer["message"].as_str().unwrap_or("no stock")
                    )),
                    other => {
                        return Err(anyhow!(
                            "{}: POST /v1/sales answered {other}: {answer}",
                            name(store)
                        ))
                    }
                }
            }
            Action::CycleCount(plan) => {
                if counting.is_some() {
                    return Err(anyhow!("a count is under way already"));
                }
                counting = Some(count::start(chain, items, &plan, rng, log).await?);
            }
            Action::Progress => progress(chain, &stats, &cut_at, log).await?,
        }
    }
    // Whatever is still pending at the end of the day.
    let end = Instant::now() + Duration::from_secs(30);
    while !(pending.is_empty() && flows.is_empty() && counting.is_none()) && Instant::now() < end {
        chain.check_alive().await?;
        check_pending(chain, items, &mut pending, &mut stats, log).await?;
        orders::advance_all(chain, &mut flows, &mut stats.flows, log).await?;
        count::advance(items, &mut counting, &mut stats.counts, log).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if counting.is_some() {
        log.say("the cycle count did not finish during the day");
    }
    for f in flows {
        log.say(format!(
            "{:?} {} did not finish during the day",
            f.kind, f.id
        ));
        stats.flows.unfinished.push(f.id);
    }
    for p in pending {
        if let Pending::Reconcile {
            store,
            cut_for,
            queued,
            ..
        } = p
        {
            stats.offline.push(Offline {
                store,
                cut_for,
                queued,
                reconciled_in: None,
            });
        }
    }
    Ok(stats)
}

/// Receives `tags` at `store` by one tagged receipt (a line per tag, as
/// from an advance ship notice; `POST /v1/receipts`), the store's `n`th
/// of the day. The units received.
pub async fn tagged_receipt(
    chain: &Chain,
    items: &[Item],
    store: usize,
    tags: &[(usize, u64)],
    n: u32,
) -> anyhow::Result<u64> {
    let lines = tags
        .iter()
        .map(|&(i, serial)| {
            Ok(json!({"gtin": items[i].gtin.to_string(), "qty": 1,
                      "epc": catalog::epc(&items[i], serial)?.to_hex()}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let s = &chain.stores[store];
    let (status, answer) = s
        .api
        .post("/v1/receipts", &json!({ "lines": lines }))
        .await?;
    if status != 201 && status != 200 {
        return Err(anyhow!(
            "{}: POST /v1/receipts (delivery {n}) answered {status}: {answer}",
            s.id
        ));
    }
    Ok(answer["units"].as_u64().unwrap_or(tags.len() as u64))
}

async fn check_pending(
    chain: &Chain,
    items: &[Item],
    pending: &mut Vec<Pending>,
    stats: &mut DayStats,
    log: &Log,
) -> anyhow::Result<()> {
    let mut keep = Vec::new();
    for p in pending.drain(..) {
        match p {
            Pending::Reconcile {
                store,
                since,
                cut_for,
                queued,
            } => {
                if reconciled(chain, items, store).await? {
                    let took = since.elapsed();
                    log.say(format!(
                        "{} reconciled in {:.2} s: outbox empty, the hub agrees with its stock of all {} items",
                        chain.stores[store].id,
                        took.as_secs_f64(),
                        items.len()
                    ));
                    stats.offline.push(Offline {
                        store,
                        cut_for,
                        queued,
                        reconciled_in: Some(took),
                    });
                } else {
                    keep.push(Pending::Reconcile {
                        store,
                        since,
                        cut_for,
                        queued,
                    });
                }
            }
            Pending::Probe {
                store,
                item,
                refused_before,
                deadline,
            } => {
                let now_refused = chain.stores[store].api.metrics().await?.get(REFUSED);
                if now_refused > refused_before {
                    log.say(format!(
                        "{}: the {} scan was REFUSED (no stock, no rights); nothing recorded",
                        chain.stores[store].id,
                        items[item].label()
                    ));
                } else if Instant::now() > deadline {
                    return Err(anyhow!(
                        "{}: the scan of the {} was not refused within 10 s",
                        chain.stores[store].id,
                        items[item].label()
                    ));
                } else {
                    keep.push(Pending::Probe {
                        store,
                        item,
                        refused_before,
                        deadline,
                    });
                }
            }
        }
    }
    *pending = keep;
    Ok(())
}

async fn progress(
    chain: &Chain,
    stats: &DayStats,
    cut_at: &BTreeMap<usize, Instant>,
    log: &Log,
) -> anyhow::Result<()> {
    let (mut sold, mut refused, mut received, mut again) = (0, 0, 0, 0);
    let mut outbox = Vec::new();
    for s in &chain.stores {
        let m = s.api.metrics().await?;
        sold += m.get(SOLD);
        refused += m.get(REFUSED);
        received += m.get(RECEIVED);
        again += m.get(AGAIN);
        outbox.push(m.get("tally_agent_outbox_events").to_string());
    }
    let stores = chain
        .hub
        .get_ok("/v1/stores")
        .await
        .context("GET /v1/stores")?;
    let hub_offline: Vec<String> = stores["stores"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|s| s["online"] == false)
                .filter_map(|s| s["store"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let cut: Vec<&str> = cut_at
        .keys()
        .map(|&s| chain.stores[s].id.as_str())
        .collect();
    let offline = if cut.is_empty() {
        "none".to_string()
    } else {
        format!(
            "{} (hub sees offline: {})",
            cut.join(", "),
            if hub_offline.is_empty() {
                "none yet".to_string()
            } else {
                hub_offline.join(", ")
            }
        )
    };
    let f = &stats.flows;
    log.say(format!(
        "progress: sold {sold}, refused {refused} scans; {received} units received by RFID ({again} re-reads ignored), {} by tagged receipts; orders {} ok, {} refused; collected {}, shipped {}, cancelled {}, transfers received {} | outbox {} | offline: {offline}",
        stats.receipt_units,
        stats.orders_ok,
        stats.orders_refused,
        f.collected,
        f.shipped,
        f.cancelled,
        f.received,
        outbox.join("/"),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_schedule_is_a_function_of_the_seed() {
        let items = catalog::items().unwrap();
        let day = Duration::from_secs(15);
        let make = |seed| {
            schedule(
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                &items,
                3,
                day,
            )
        };
        let (a, cut) = make(7);
        assert_eq!((a.clone(), cut), make(7));
        assert_ne!(a, make(8).0);
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(a.iter().all(|s| s.at_ms <= 15_000));
        let count = |f: &dyn Fn(&Action) -> bool| a.iter().filter(|s| f(&s.action)).count();
        assert_eq!(count(&|x| matches!(x, Action::Cut { .. })), 1);
        assert_eq!(count(&|x| matches!(x, Action::Restore { .. })), 1);
        assert_eq!(count(&|x| matches!(x, Action::Probe { .. })), 1);
        assert_eq!(count(&|x| matches!(x, Action::Pickup { .. })), 1);
        assert_eq!(count(&|x| matches!(x, Action::Cancel { .. })), 1);
        assert_eq!(count(&|x| matches!(x, Action::Ship)), 1);
        assert_eq!(count(&|x| matches!(x, Action::Transfer { .. })), 1);
        // The transfer goes between two stores, neither cut off by then.
        let (from, to) = a
            .iter()
            .find_map(|s| match s.action {
                Action::Transfer { from, to } => Some((from, to)),
                _ => None,
            })
            .unwrap();
        assert_ne!(from, to);
        assert_ne!(from, cut);
        assert!(count(&|x| matches!(x, Action::Scan { .. })) >= 90);
        // Every tag is delivered once: EPCs are unique.
        let mut tags = std::collections::BTreeSet::new();
        for s in &a {
            if let Action::Deliver { tags: t, .. } = &s.action {
                for tag in t {
                    assert!(tags.insert(*tag), "{tag:?} delivered twice");
                }
            }
        }
        // The display model is never delivered.
        let display = items
            .iter()
            .position(|i| i.delivery == Some((0, 0)))
            .unwrap();
        assert!(tags.iter().all(|&(i, _)| i != display));
    }

    #[test]
    fn the_last_store_counts_what_only_moves_by_tag_there() {
        let items = catalog::items().unwrap();
        let counted = catalog::counted(&items);
        assert_eq!(counted.len(), 2);
        for seed in 1..20 {
            let (a, cut) = schedule(
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                &items,
                3,
                Duration::from_secs(60),
            );
            assert_eq!(counting_store(3), Some(2));
            let plans: Vec<(u64, &count::Plan)> = a
                .iter()
                .filter_map(|s| match &s.action {
                    Action::CycleCount(p) => Some((s.at_ms, p)),
                    _ => None,
                })
                .collect();
            let [(at, plan)] = plans.as_slice() else {
                panic!("one count: {plans:?}")
            };
            assert_eq!(plan.store, 2);
            assert_eq!(plan.items, counted);
            // After the cut store is back (it may be this one).
            assert!(*at > 36_000, "{at} (cut: {cut})");
            // Nothing else moves the counted items there: no scan, no order.
            for s in &a {
                match s.action {
                    Action::Scan { store: 2, item } | Action::Order { store: 2, item, .. } => {
                        assert!(!counted.contains(&item), "{s:?}")
                    }
                    _ => {}
                }
            }
            // The shelf and the stolen unit are what the store received of
            // them, one stolen; one unit sold by tag before the count is on
            // the shelf.
            let received: Vec<(usize, u64)> = a
                .iter()
                .filter_map(|s| match &s.action {
                    Action::Deliver { store: 2, tags, .. } => Some(tags.clone()),
                    _ => None,
                })
                .flatten()
                .filter(|(i, _)| counted.contains(i))
                .collect();
            assert_eq!(plan.stolen.len(), 1);
            assert_eq!(plan.stolen[0].0, counted[0]);
            let mut all = plan.shelf.clone();
            all.extend(&plan.stolen);
            all.sort_unstable();
            let mut want = received.clone();
            want.sort_unstable();
            assert_eq!(all, want);
            let sold: Vec<(u64, (usize, u64))> = a
                .iter()
                .filter_map(|s| match s.action {
                    Action::SellTag { store: 2, tag } => Some((s.at_ms, tag)),
                    _ => None,
                })
                .collect();
            let [(sold_at, tag)] = sold.as_slice() else {
                panic!("one sale by tag: {sold:?}")
            };
            assert!(sold_at < at);
            assert_eq!(tag.0, counted[1]);
            assert!(plan.shelf.contains(tag));
        }
    }

    #[test]
    fn one_store_works_too() {
        let items = catalog::items().unwrap();
        let (steps, cut) = schedule(
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
            &items,
            1,
            Duration::from_secs(5),
        );
        assert_eq!(cut, 0);
        assert!(steps
            .iter()
            .any(|s| matches!(s.action, Action::Probe { store: 0, .. })));
        // No transfer with one store; its orders are still placed.
        assert!(!steps
            .iter()
            .any(|s| matches!(s.action, Action::Transfer { .. })));
        assert!(steps
            .iter()
            .any(|s| matches!(s.action, Action::Pickup { store: 0 })));
        // A lone store keeps its portal: no count.
        assert_eq!(counting_store(1), None);
        assert!(!steps
            .iter()
            .any(|s| matches!(s.action, Action::CycleCount(_) | Action::SellTag { .. })));
    }
}
