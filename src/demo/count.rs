//! The counting store's RFID cycle count (issue 23), a small state
//! machine the scripted day advances between its steps, like the orders'
//! flows, through the agent's public API (`tally_agent_api::client`):
//! staff start a session for the counted items (`POST
//! /v1/counts/sessions`), the store's reader, in count mode, sweeps the
//! shelf ([`super::devices::SimReader::present`], several reads per tag);
//! once the session holds every tag swept (`GET
//! /v1/counts/sessions/{id}`), the demo finishes it (`POST …/finish`: the
//! variance report, told in two sentences) and accepts it (`POST
//! …/accept`: the adjustments, told too).
//!
//! What the shelf holds is the schedule's (`script::Action::CycleCount`):
//! every tag the store received of the counted items but a stolen one;
//! one unit sold earlier by its tag is still there. So the report says
//! one tag missing and one tag recorded as sold, and acceptance counts
//! the stolen unit down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rand::Rng;
use tally_agent_api::client::AgentClient;
use tally_agent_api::counts::{CountAccepted, CountReportView, CountSessionRequest};
use tally_sync::Epc;

use super::catalog::{self, Item};
use super::chain::Chain;
use super::Log;

/// How long the sweep's tags may take to reach the session.
const PATIENCE: Duration = Duration::from_secs(30);
/// Reads per tag as the reader passes the shelf.
const READS: u32 = 3;

/// What the count is, from the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Store index.
    pub store: usize,
    /// Item indexes counted.
    pub items: Vec<usize>,
    /// (item index, serial) of each tag on the shelf, swept by the reader.
    pub shelf: Vec<(usize, u64)>,
    /// Tags the store received of those items, gone from the shelf
    /// (stolen).
    pub stolen: Vec<(usize, u64)>,
}

/// How a count ended, as the demo saw it (the summary asks the agent
/// whether it was accepted, and the hub for the shrink it recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountOutcome {
    /// Store index.
    pub store: usize,
    /// The session.
    pub session_id: String,
    /// Whether the demo accepted it.
    pub accepted: bool,
    /// Units the accepted adjustments counted down (missing) and up
    /// (found).
    pub units_down: u64,
    /// See [`CountOutcome::units_down`].
    pub units_up: u64,
}

/// A count under way: the shelf swept, waiting for its tags.
#[derive(Debug)]
pub struct Count {
    store: usize,
    store_id: String,
    session_id: String,
    client: AgentClient,
    /// Distinct tags swept.
    tags: u64,
    /// Item index of every tag the demo knows of (swept or stolen), by EPC.
    known: BTreeMap<Epc, usize>,
    deadline: Instant,
}

fn epcs(items: &[Item], tags: &[(usize, u64)]) -> anyhow::Result<Vec<(Epc, usize)>> {
    tags.iter()
        .map(|&(i, serial)| Ok((catalog::epc(&items[i], serial)?, i)))
        .collect()
}

fn and_list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Starts the count `plan`: the session for its items, then the sweep of
/// its shelf.
pub async fn start(
    chain: &Chain,
    items: &[Item],
    plan: &Plan,
    rng: &mut impl Rng,
    log: &Log,
) -> anyhow::Result<Count> {
    let Plan {
        store,
        items: counted,
        shelf,
        stolen,
    } = plan;
    let store = *store;
    let s = &chain.stores[store];
    let client = AgentClient::new(&s.api.base, Duration::from_secs(10))
        .map_err(|e| anyhow!("{}: the agent client: {e}", s.id))?;
    let session_id = format!("cycle-count-{}", s.id);
    let names: Vec<String> = counted
        .iter()
        .map(|&i| items[i].label().to_string())
        .collect();
    client
        .start_count(&CountSessionRequest {
            session_id: Some(session_id.clone()),
            gtins: Some(counted.iter().map(|&i| items[i].gtin.to_string()).collect()),
            zone: Some("sales floor".into()),
            cashier: Some("staff".into()),
            till: None,
        })
        .await
        .with_context(|| format!("{}: POST /v1/counts/sessions", s.id))?;
    let swept = epcs(items, shelf)?;
    let tags: Vec<Epc> = swept.iter().map(|(e, _)| e.clone()).collect();
    s.reader.present(&tags, READS, rng)?;
    let gone: Vec<String> = stolen
        .iter()
        .map(|&(i, _)| format!("a unit of {}", items[i].label()))
        .collect();
    log.say(format!(
        "{}: staff start an RFID cycle count of {} (POST /v1/counts/sessions, session {session_id}; its reader is in count mode) and sweep the shelf: {} tags, {READS} reads each{}",
        s.id,
        and_list(&names),
        tags.len(),
        if gone.is_empty() {
            String::new()
        } else {
            format!(
                " (unknown to them, {} was stolen earlier: its tag is not there)",
                and_list(&gone)
            )
        }
    ));
    let mut known: BTreeMap<Epc, usize> = swept.into_iter().collect();
    known.extend(epcs(items, stolen)?);
    Ok(Count {
        store,
        store_id: s.id.clone(),
        session_id,
        client,
        tags: tags.len() as u64,
        known,
        deadline: Instant::now() + PATIENCE,
    })
}

/// Advances the count under way, if any: once its session holds every
/// tag swept, finishes it, tells the report, accepts it and tells the
/// adjustments; records how it ended in `done`.
pub async fn advance(
    items: &[Item],
    count: &mut Option<Count>,
    done: &mut Vec<CountOutcome>,
    log: &Log,
) -> anyhow::Result<()> {
    let Some(c) = count.as_ref() else {
        return Ok(());
    };
    let name = c.store_id.as_str();
    let id = c.session_id.as_str();
    let session = c
        .client
        .count_session(id)
        .await
        .with_context(|| format!("{name}: GET /v1/counts/sessions/{id}"))?;
    if session.tags < c.tags {
        if Instant::now() > c.deadline {
            log.say(format!(
                "{name}: count {id} did not finish: {} of the {} tags swept reached it in {PATIENCE:?}",
                session.tags, c.tags
            ));
            done.push(CountOutcome {
                store: c.store,
                session_id: id.to_string(),
                accepted: false,
                units_down: 0,
                units_up: 0,
            });
            *count = None;
        }
        return Ok(());
    }
    let report = c
        .client
        .finish_count(id)
        .await
        .with_context(|| format!("{name}: POST /v1/counts/sessions/{id}/finish"))?;
    log.say(tell_report(c, items, &report));
    let accepted = c
        .client
        .accept_count(id)
        .await
        .with_context(|| format!("{name}: POST /v1/counts/sessions/{id}/accept"))?;
    let (down, up) = units(&accepted);
    log.say(tell_accepted(name, &accepted));
    done.push(CountOutcome {
        store: c.store,
        session_id: id.to_string(),
        accepted: accepted.status == "accepted",
        units_down: down,
        units_up: up,
    });
    *count = None;
    Ok(())
}

/// Units the adjustments moved down and up.
fn units(a: &CountAccepted) -> (u64, u64) {
    a.adjustments
        .iter()
        .fold((0, 0), |(down, up), adj| match adj.direction.as_str() {
            "down" => (down + adj.units, up),
            "up" => (down, up + adj.units),
            _ => (down, up),
        })
}

fn label(name: &Option<String>, gtin: &impl std::fmt::Display) -> String {
    name.clone().unwrap_or_else(|| gtin.to_string())
}

/// The variance report in two sentences: per item, expected, counted and
/// the difference; per tag, the missing and those recorded as sold.
fn tell_report(c: &Count, items: &[Item], r: &CountReportView) -> String {
    let name = |e: &Epc| c.known.get(e).map_or("unknown item", |&i| items[i].label());
    let lines: Vec<String> = r
        .items
        .iter()
        .map(|l| {
            let difference = if l.difference == 0 {
                "as recorded".to_string()
            } else {
                format!("{:+}", l.difference)
            };
            format!(
                "{} expected {}, counted {} ({difference})",
                label(&l.name, &l.gtin),
                l.expected,
                l.counted,
            )
        })
        .collect();
    let tags = |list: &[Epc], total: u64| -> String {
        if total == 0 {
            return "none".to_string();
        }
        let shown: Vec<String> = list
            .iter()
            .map(|e| format!("{}, {}", e.to_hex(), name(e)))
            .collect();
        format!("{total} ({})", shown.join(", "))
    };
    format!(
        "{}: count {} finished (POST …/finish), {} distinct tags read: {}. Tags missing (received here, not sold, not read): {}; tags read but recorded as sold (not stock until returned at a till): {}",
        c.store_id,
        r.session_id,
        r.tags,
        lines.join("; "),
        tags(&r.epcs.missing, r.epcs.missing_total),
        tags(&r.epcs.sold_but_present, r.epcs.sold_but_present_total),
    )
}

/// The adjustments acceptance recorded.
fn tell_accepted(store: &str, a: &CountAccepted) -> String {
    let moved: Vec<String> = a
        .adjustments
        .iter()
        .map(|adj| {
            let item = a
                .report
                .items
                .iter()
                .find(|l| l.gtin == adj.gtin)
                .map_or_else(|| adj.gtin.to_string(), |l| label(&l.name, &l.gtin));
            let unresolved = if adj.unresolved > 0 {
                format!(
                    ", {} unresolved (rights held elsewhere: raised at the hub)",
                    adj.unresolved
                )
            } else {
                String::new()
            };
            format!(
                "{item} counted {} {} unit{} to {}{unresolved} (count event {})",
                adj.direction,
                adj.units,
                if adj.units == 1 { "" } else { "s" },
                adj.counted,
                adj.event_id
            )
        })
        .collect();
    format!(
        "{store}: count {} {} (POST …/accept): {}; the hub gets it with the next sync",
        a.session_id,
        a.status,
        if moved.is_empty() {
            "nothing to adjust".to_string()
        } else {
            moved.join("; ")
        }
    )
}
