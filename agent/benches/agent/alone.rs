//! The committer alone: group commit without HTTP, in this process, so
//! the report can tell the committer's share from the HTTP side's.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_sync::Gtin;

use crate::http::{next_item, run_for};
use crate::process::cpu_time;
use crate::stats::{parse_metrics, summarise, Run};
use crate::{env_parse, gtin, ITEMS};

/// Group commit without HTTP: `clients` tasks submit one-line sales
/// straight to a committer over its own database in `dir`, in this
/// process (one runtime thread, like the agent's one HTTP worker, plus the
/// committer thread). Client latency here is enqueue → durable answer.
pub fn committer_alone(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    clients: usize,
    for_secs: f64,
) -> Run {
    use tally_agent::commit::{Committer, Limits};
    use tally_agent::metrics::Metrics;
    use tally_agent::store::AgentDb;
    use tally_sync::command::{Command as Cmd, LineIn, Outcome, ReceiptLine};

    let store = tally_sync::ReplicaId::new("store-bench").unwrap();
    let db = Arc::new(AgentDb::open(dir, Some(&store)).unwrap());
    let metrics = Arc::new(Metrics::new());
    // The agent's defaults, so the committer runs as the agent runs it
    // (`TALLY_BENCH_HOLD_US` and `TALLY_BENCH_NICE` override them, to
    // compare).
    let defaults = Limits::default();
    let limits = Limits {
        hold: env_parse("TALLY_BENCH_HOLD_US").map_or(defaults.hold, Duration::from_micros),
        nice: env_parse("TALLY_BENCH_NICE").unwrap_or(defaults.nice),
        ..defaults
    };
    let (committer, thread) = Committer::start(
        db,
        metrics.clone(),
        limits,
        Arc::new(tally_store::SystemClock),
    )
    .unwrap();
    let gtins: Arc<Vec<Gtin>> = Arc::new((0..ITEMS).map(|i| gtin(i).parse().unwrap()).collect());
    let run = rt.block_on(async {
        let lines = gtins
            .iter()
            .map(|&gtin| ReceiptLine {
                gtin,
                qty: 1_000_000,
                epc: None,
            })
            .collect();
        let receipt = Cmd::Receipt {
            id: None,
            lines,
            staff: Default::default(),
        };
        committer.command(receipt).await.unwrap();
        let before = parse_metrics(&metrics.encode().unwrap());
        let cpu0 = cpu_time("self");
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (committer, stop, gtins) = (committer.clone(), stop.clone(), gtins.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut i = c as u64;
                    while !stop.load(Ordering::Relaxed) {
                        let gtin = gtins[next_item(&mut i)];
                        let sale = Cmd::Sale {
                            id: None,
                            lines: vec![LineIn {
                                gtin,
                                qty: 1,
                                unit_price_minor: Some(100),
                                epc: None,
                                price_from_label: false,
                            }],
                            tenders: Vec::new(),
                            staff: Default::default(),
                        };
                        let t = Instant::now();
                        let done = committer.command(sale).await.unwrap();
                        assert!(
                            matches!(done, Outcome::Recorded { new: true, .. }),
                            "{done:?}"
                        );
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let (lat, elapsed) = run_for(tasks, &stop, for_secs).await;
        let cpu = cpu_time("self") - cpu0;
        let after = parse_metrics(&metrics.encode().unwrap());
        summarise(clients, lat, elapsed, &before, &after, cpu, Duration::ZERO)
    });
    drop(committer);
    thread.join().unwrap();
    run
}
