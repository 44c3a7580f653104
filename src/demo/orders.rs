//! The day's orders with a lifecycle and its transfer (issue 22), each a
//! small state machine the scripted day advances between its steps, all
//! through the public APIs: HQ places the order at the hub (`POST
//! /v1/orders` with a `fulfilment`) or cancels it (`POST
//! /v1/orders/{id}/cancel`); the store finds it on its pick list (the
//! agent's `GET /v1/orders/{id}`) and moves it on (`POST
//! /v1/orders/{id}/picked`, `/collected`, `/shipped`); a store sends
//! stock (`POST /v1/transfers`) and another receives it once the hub told
//! it (`POST /v1/transfers/{id}/received`). Each flow is done when the
//! hub shows the end of it.
//!
//! - **Pickup**: an order to collect at a store; the store picks it, and
//!   the customer collects it a moment later.
//! - **Ship**: an order naming no store; the hub routes it, and each store
//!   it went to picks and ships its part.
//! - **Cancel**: a pickup order HQ cancels once the store has it on its
//!   pick list; its units go back to the hub's reserve there, and the
//!   store's pick list drops it.
//! - **Transfer**: units sent from one store to another, received there.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::{json, Value};

use super::catalog::{self, Item};
use super::chain::Chain;
use super::Log;

/// How long one flow may take before the demo gives up on it (it then
/// shows in the summary as not done).
const PATIENCE: Duration = Duration::from_secs(45);
/// Between picking and handing over.
const AT_THE_COUNTER: Duration = Duration::from_millis(800);

/// Which flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Picked and collected at its store.
    Pickup,
    /// Routed by the hub, picked and shipped.
    Ship,
    /// Cancelled by HQ while on the store's pick list.
    Cancel,
    /// Sent by one store, received by another.
    Transfer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the order on every store's pick list.
    PickList,
    /// Picked at `at`: handed over after [`AT_THE_COUNTER`].
    Picked(Instant),
    /// Done at the stores; waiting for the hub to show `status`.
    HubSees(&'static str),
    /// A transfer sent, waiting for its destination to hear of it.
    Announced,
    /// Finished.
    Done,
}

/// One flow under way.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Which.
    pub kind: Kind,
    /// The order's or transfer's id.
    pub id: String,
    /// The stores it involves (an order's allocations; a transfer's
    /// source then destination), as indexes.
    stores: Vec<usize>,
    /// Units.
    pub units: u64,
    stage: Stage,
    deadline: Instant,
}

impl Flow {
    /// Whether it reached its end (the hub shows it).
    pub fn done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Whether the demo gave up waiting for it.
    pub fn overdue(&self) -> bool {
        !self.done() && Instant::now() > self.deadline
    }
}

/// What the day's flows did, as the demo saw it (the summary's counts
/// are the hub's own; these cross-check them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Orders with a lifecycle the hub accepted, and their units (they
    /// are `ordered` in the hub's audit, cancelled ones too).
    pub orders: u64,
    /// See [`FlowStats::orders`].
    pub ordered_units: u64,
    /// Units cancelled orders gave back (a return recorded by the hub:
    /// units in, in its audit).
    pub cancelled_units: u64,
    /// Flows that reached their end, by kind: collected, shipped,
    /// cancelled, received.
    pub collected: u64,
    /// See [`FlowStats::collected`].
    pub shipped: u64,
    /// See [`FlowStats::collected`].
    pub cancelled: u64,
    /// See [`FlowStats::collected`].
    pub received: u64,
    /// Flows that did not end in time, for the log.
    pub unfinished: Vec<String>,
}

/// The item with the most of `field` at store `s` (its agent's view),
/// among `items` but `skip`, with how many; `None` when it has none of
/// any.
async fn most_at_store(
    chain: &Chain,
    items: &[Item],
    skip: &[usize],
    s: usize,
    field: &str,
) -> anyhow::Result<Option<(usize, u64)>> {
    let mut best: Option<(usize, u64)> = None;
    for (i, item) in items.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        let stock = chain.stores[s]
            .api
            .get_ok(&format!("/v1/stock/{}", item.gtin))
            .await?;
        let n = stock[field].as_u64().unwrap_or(0);
        if n > best.map_or(0, |b| b.1) {
            best = Some((i, n));
        }
    }
    Ok(best)
}

/// The item with the most units on hand chain-wide (the hub's view),
/// among `items` but `skip`.
async fn most_in_chain(
    chain: &Chain,
    items: &[Item],
    skip: &[usize],
) -> anyhow::Result<Option<(usize, u64)>> {
    let mut best: Option<(usize, u64)> = None;
    for (i, item) in items.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        let stock = chain
            .hub
            .get_ok(&format!("/v1/stock/{}", item.gtin))
            .await?;
        let n = stock["on_hand"].as_u64().unwrap_or(0);
        if n > best.map_or(0, |b| b.1) {
            best = Some((i, n));
        }
    }
    Ok(best)
}

/// Starts flow `kind` number `n` (`stores`: the pickup store, or a
/// transfer's source and destination; none for a ship order): places
/// the order or sends the transfer, with the item the stores have most
/// of now (what sold during the day is not known in advance), never one
/// the counting store counts by RFID (`catalog::counted`: their units
/// there move only by tag) when it may come from that store. `None` when
/// there was nothing to order or send, or the hub refused.
pub async fn start(
    chain: &Chain,
    items: &[Item],
    kind: Kind,
    n: u32,
    stores: &[usize],
    stats: &mut FlowStats,
    log: &Log,
) -> anyhow::Result<Option<Flow>> {
    let name = |s: usize| chain.stores[s].id.clone();
    let flow = |id: String, stores: Vec<usize>, units: u64, stage: Stage| Flow {
        kind,
        id,
        stores,
        units,
        stage,
        deadline: Instant::now() + PATIENCE,
    };
    let counted = catalog::counted(items);
    let skip_at = |s: usize| -> &[usize] {
        if chain.stores[s].counts {
            &counted
        } else {
            &[]
        }
    };
    // A ship order may be routed to any store.
    let anywhere = if chain.stores.iter().any(|s| s.counts) {
        counted.as_slice()
    } else {
        &[]
    };
    if kind == Kind::Transfer {
        let [from, to] = stores else {
            return Err(anyhow!("a transfer needs a source and a destination"));
        };
        let Some((item, rights)) =
            most_at_store(chain, items, skip_at(*from), *from, "rights").await?
        else {
            log.say(format!(
                "{} has nothing left to send {}: no transfer",
                name(*from),
                name(*to)
            ));
            return Ok(None);
        };
        let id = format!("tr-{n:02}");
        let qty = rights.min(2);
        let body = json!({"transfer_id": id, "to_store": name(*to),
                          "lines": [{"gtin": items[item].gtin.to_string(), "qty": qty}]});
        let (status, answer) = chain.stores[*from].api.post("/v1/transfers", &body).await?;
        match status {
            201 | 200 => {}
            // A scan sold some of them meanwhile.
            409 => {
                log.say(format!(
                    "transfer {id}: {} cannot send {qty} × {} — REFUSED: {}",
                    name(*from),
                    items[item].label(),
                    answer["message"].as_str().unwrap_or("no stock")
                ));
                return Ok(None);
            }
            _ => {
                return Err(anyhow!(
                    "{}: POST /v1/transfers answered {status}: {answer}",
                    name(*from)
                ))
            }
        }
        log.say(format!(
            "transfer {id}: {} sends {qty} × {} to {} (POST /v1/transfers at its agent); in transit",
            name(*from),
            items[item].label(),
            name(*to)
        ));
        return Ok(Some(flow(id, vec![*from, *to], qty, Stage::Announced)));
    }

    let (id, body, what) = match kind {
        Kind::Ship => {
            let Some((item, _)) = most_in_chain(chain, items, anywhere).await? else {
                return Ok(None);
            };
            let id = format!("ship-{n:02}");
            let body = json!({"order_id": id, "fulfilment": "ship",
                              "lines": [{"gtin": items[item].gtin.to_string(), "qty": 1}]});
            (
                id,
                body,
                format!("1 × {}, to ship, no store named", items[item].label()),
            )
        }
        _ => {
            let s = *stores
                .first()
                .ok_or_else(|| anyhow!("a pickup order names its store"))?;
            let Some((item, _)) = most_at_store(chain, items, skip_at(s), s, "on_hand").await?
            else {
                return Ok(None);
            };
            let id = format!("pickup-{n:02}");
            let body = json!({"order_id": id, "fulfilment": "pickup", "store": name(s),
                              "lines": [{"gtin": items[item].gtin.to_string(), "qty": 1}]});
            (
                id,
                body,
                format!("1 × {}, to collect at {}", items[item].label(), name(s)),
            )
        }
    };
    let (status, answer) = chain.hub.post("/v1/orders", &body).await?;
    match status {
        201 | 200 => {}
        409 => {
            log.say(format!(
                "order {id}: {what} — REFUSED: {}",
                answer["message"].as_str().unwrap_or("no stock")
            ));
            return Ok(None);
        }
        other => return Err(anyhow!("POST /v1/orders answered {other}: {answer}")),
    }
    let mut at = Vec::new();
    let mut units = 0;
    for a in answer["allocations"].as_array().into_iter().flatten() {
        let store = a["store"].as_str().unwrap_or_default();
        if let Some(i) = chain.stores.iter().position(|s| s.id == store) {
            at.push(i);
        }
        units += a["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| l["qty"].as_u64().unwrap_or(0))
            .sum::<u64>();
    }
    stats.orders += 1;
    stats.ordered_units += units;
    let names: Vec<String> = at.iter().map(|&s| name(s)).collect();
    log.say(format!(
        "order {id}: {what} — {} (POST /v1/orders, fulfilment {})",
        if kind == Kind::Ship {
            format!("the hub routed it to {}", names.join(" and "))
        } else {
            "allocated from the store's stock".to_string()
        },
        answer["fulfilment"].as_str().unwrap_or("?")
    ));
    Ok(Some(flow(id, at, units, Stage::PickList)))
}

/// The store's allocation of order `id`, if it has it (`GET
/// /v1/orders/{id}` at its agent).
async fn allocation(chain: &Chain, s: usize, id: &str) -> anyhow::Result<Option<Value>> {
    let (status, body) = chain.stores[s].api.get(&format!("/v1/orders/{id}")).await?;
    Ok((status == 200).then_some(body))
}

/// Moves store `s`'s allocation of `id` on (`to`: picked, collected,
/// shipped) through its agent.
async fn move_on(chain: &Chain, s: usize, id: &str, to: &str) -> anyhow::Result<()> {
    let (status, body) = chain.stores[s]
        .api
        .post(&format!("/v1/orders/{id}/{to}"), &json!({}))
        .await?;
    if status == 201 || status == 200 {
        Ok(())
    } else {
        Err(anyhow!(
            "{}: POST /v1/orders/{id}/{to} answered {status}: {body}",
            chain.stores[s].id
        ))
    }
}

/// Advances `flow` as far as it can go now; counts it in `stats` when it
/// ends.
pub async fn advance(
    chain: &Chain,
    flow: &mut Flow,
    stats: &mut FlowStats,
    log: &Log,
) -> anyhow::Result<()> {
    let name = |s: usize| chain.stores[s].id.clone();
    let id = flow.id.clone();
    match (flow.kind, flow.stage) {
        (_, Stage::Done) => {}
        (Kind::Transfer, Stage::Announced) => {
            let to = flow.stores[1];
            let (status, _) = chain.stores[to]
                .api
                .get(&format!("/v1/transfers/{id}"))
                .await?;
            if status != 200 {
                return Ok(());
            }
            let (status, body) = chain.stores[to]
                .api
                .post(&format!("/v1/transfers/{id}/received"), &json!({}))
                .await?;
            if status != 201 && status != 409 {
                return Err(anyhow!(
                    "{}: POST /v1/transfers/{id}/received answered {status}: {body}",
                    name(to)
                ));
            }
            log.say(format!(
                "{}: transfer {id} arrives from {}; received (POST /v1/transfers/{id}/received), {} units on its shelf",
                name(to),
                name(flow.stores[0]),
                flow.units
            ));
            flow.stage = Stage::HubSees("received");
        }
        (Kind::Transfer, Stage::HubSees(_)) => {
            let (status, t) = chain.hub.get(&format!("/v1/transfers/{id}")).await?;
            if status == 200 && t["status"] == "received" {
                log.say(format!("the hub shows transfer {id} received"));
                stats.received += 1;
                flow.stage = Stage::Done;
            }
        }
        (_, Stage::PickList) => {
            for &s in &flow.stores {
                if allocation(chain, s, &id).await?.is_none() {
                    return Ok(());
                }
            }
            if flow.kind == Kind::Cancel {
                let s = flow.stores.first().copied().unwrap_or(0);
                let (status, body) = chain
                    .hub
                    .post(&format!("/v1/orders/{id}/cancel"), &json!({}))
                    .await?;
                if status != 200 {
                    return Err(anyhow!(
                        "POST /v1/orders/{id}/cancel answered {status}: {body}"
                    ));
                }
                stats.cancelled_units += flow.units;
                log.say(format!(
                    "order {id} is on {}'s pick list; HQ cancels it (POST /v1/orders/{id}/cancel): {} back to the hub's reserve there",
                    name(s),
                    if flow.units == 1 {
                        "its unit goes".to_string()
                    } else {
                        format!("its {} units go", flow.units)
                    }
                ));
                flow.stage = Stage::HubSees("cancelled");
                return Ok(());
            }
            for &s in &flow.stores {
                move_on(chain, s, &id, "picked").await?;
            }
            let names: Vec<String> = flow.stores.iter().map(|&s| name(s)).collect();
            log.say(format!(
                "{}: order {id} on the pick list (GET /v1/orders?status=open at its agent); picked",
                names.join(", ")
            ));
            flow.stage = Stage::Picked(Instant::now());
        }
        (_, Stage::Picked(at)) => {
            if at.elapsed() < AT_THE_COUNTER {
                return Ok(());
            }
            let (to, how) = if flow.kind == Kind::Ship {
                ("shipped", "handed to the carrier")
            } else {
                ("collected", "collected by the customer at the counter")
            };
            for &s in &flow.stores {
                move_on(chain, s, &id, to).await?;
            }
            let names: Vec<String> = flow.stores.iter().map(|&s| name(s)).collect();
            log.say(format!(
                "{}: order {id} {how} (POST /v1/orders/{id}/{to})",
                names.join(", ")
            ));
            flow.stage = Stage::HubSees(to);
        }
        (Kind::Cancel, Stage::HubSees(_)) => {
            // Done once the store heard of it too: its pick list drops it.
            let s = flow.stores.first().copied().unwrap_or(0);
            let here = allocation(chain, s, &id).await?;
            if here.as_ref().is_some_and(|a| a["status"] == "cancelled") {
                log.say(format!(
                    "{}: order {id} cancelled by HQ, off its pick list",
                    name(s)
                ));
                stats.cancelled += 1;
                flow.stage = Stage::Done;
            }
        }
        (_, Stage::HubSees(status)) => {
            let (code, order) = chain.hub.get(&format!("/v1/orders/{id}")).await?;
            if code == 200 && order["status"] == status {
                log.say(format!("the hub shows order {id} {status}"));
                match status {
                    "shipped" => stats.shipped += 1,
                    _ => stats.collected += 1,
                }
                flow.stage = Stage::Done;
            }
        }
        (_, Stage::Announced) => {}
    }
    Ok(())
}

/// Advances every flow once; drops those done or given up (noting the
/// latter).
pub async fn advance_all(
    chain: &Chain,
    flows: &mut Vec<Flow>,
    stats: &mut FlowStats,
    log: &Log,
) -> anyhow::Result<()> {
    for f in flows.iter_mut() {
        advance(chain, f, stats, log).await?;
    }
    flows.retain(|f| {
        if f.overdue() {
            log.say(format!(
                "{:?} {} did not finish within {} s",
                f.kind,
                f.id,
                PATIENCE.as_secs()
            ));
            stats.unfinished.push(f.id.clone());
        }
        !f.done() && !f.overdue()
    });
    Ok(())
}
