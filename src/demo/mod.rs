//! `tally-demo`: the whole chain on one machine in one command
//! (`cargo run --release --bin tally-demo`; docs/demo.md).
//!
//! A temporary data directory; `tally-hub init` and `enroll`; a real hub
//! and one real agent per store as child processes on loopback with real
//! TLS, each agent syncing through a fault-injecting TCP proxy and reading
//! a simulated barcode scanner and RFID reader on pseudo-terminals with its
//! real drivers; a catalog loaded at the hub; a scripted day (receipts by
//! RFID, sales by scanner, online orders, a pickup order picked and
//! collected, a ship order routed and shipped, an order HQ cancels, a
//! transfer between stores, one store cut off and back, an RFID cycle
//! count at the store whose reader counts); a summary
//! measured from the hub; then the dashboard until Ctrl-C.
//!
//! # Design constraints
//! - **Nothing simulated but the devices and the customers.** The hub,
//!   the agents, TLS, the sync, the drivers and the ptys are the real ones;
//!   the demo only writes what devices write and calls the public APIs.
//! - **Measured, not asserted.** The summary's `double_sold` and the
//!   per-store totals come from the hub's `GET /v1/audit` (computed from
//!   the events it holds), convergence from comparing every store's view
//!   with the hub's; the demo's own bookkeeping is only used to cross-check.
//! - **One seed.** Every random choice (the schedule, code forms, RSSI)
//!   comes from one ChaCha RNG seeded with `--seed` (printed). Timing on a
//!   real machine is not deterministic, so counts may differ slightly
//!   between runs of one seed; the promises must hold on every run.
//! - **No leftovers.** Children are killed on drop (errors, panics) and
//!   stopped gracefully otherwise; the data directory is removed on exit
//!   unless `--keep-data`.

pub mod bins;
pub mod catalog;
pub mod chain;
pub mod clients;
pub mod count;
pub mod devices;
pub mod orders;
pub mod procs;
pub mod proxy;
pub mod report;
pub mod script;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::sync::watch;

use self::catalog::Item;
use self::chain::{Chain, Tuning};

/// `tally-demo` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tally-demo",
    version,
    about = "Tally in one command: a real hub and store agents on loopback, simulated scanners and RFID readers, a scripted day, then the dashboard."
)]
pub struct Options {
    /// Length of the scripted day, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub duration: u64,
    /// Number of stores.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub stores: u64,
    /// Seed of every random choice (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Exit after the summary: 0 if nothing was double-sold and everything
    /// converged, 1 otherwise (for CI).
    #[arg(long)]
    pub exit_after_summary: bool,
    /// Where tally-hub and tally-agent are (default: next to tally-demo).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Never run cargo to build tally-hub and tally-agent.
    #[arg(long, env = "TALLY_DEMO_NO_BUILD")]
    pub no_build: bool,
    /// Keep the data directory (logs, databases) after exit.
    #[arg(long)]
    pub keep_data: bool,
}

/// The live log: one line per event, time since the demo started.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    start: Instant,
}

impl Log {
    /// A log starting now.
    pub fn new() -> Log {
        Log {
            start: Instant::now(),
        }
    }

    /// Prints one line.
    pub fn say(&self, line: impl AsRef<str>) {
        println!(
            "[{:>6.1}s] {}",
            self.start.elapsed().as_secs_f64(),
            line.as_ref()
        );
    }
}

impl Default for Log {
    fn default() -> Self {
        Log::new()
    }
}

/// How the demo ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The summary was printed; whether every promise held.
    Finished {
        /// `double_sold=0`, nothing sold twice by EPC, converged.
        ok: bool,
    },
    /// Ctrl-C (or SIGTERM/SIGHUP) before the summary.
    Interrupted,
}

/// Turns true on SIGINT, SIGTERM or SIGHUP.
fn signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

async fn interrupted(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Runs the demo.
pub async fn run(opts: Options) -> anyhow::Result<Outcome> {
    let stop = signals()?;
    let seed = opts
        .seed
        .unwrap_or_else(|| rand::thread_rng().gen_range(1..1_000_000));
    let stores = usize::try_from(opts.stores).unwrap_or(3);
    let day = Duration::from_secs(opts.duration);
    let bins = bins::locate(opts.bin_dir.as_deref(), !opts.no_build)?;
    let tmp = tempfile::Builder::new()
        .prefix("tally-demo-")
        .tempdir()
        .context("creating the data directory")?;
    let log = Log::new();
    println!(
        "tally-demo: seed {seed} (replay with --seed {seed}), {stores} stores, a scripted day of {} s; data in {}",
        opts.duration,
        tmp.path().display()
    );
    let items = catalog::items()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (steps, _cut) = script::schedule(&mut rng, &items, stores, day);
    let counting = script::counting_store(stores);
    let mut run_rng = ChaCha8Rng::seed_from_u64(rng.gen());

    let chain = tokio::select! {
        c = Chain::start(&bins, tmp.path(), stores, counting, Tuning::default(), |l| log.say(l)) => c?,
        _ = interrupted(stop.clone()) => {
            println!("tally-demo: interrupted while starting; every process stopped.");
            return Ok(Outcome::Interrupted);
        }
    };
    let phase = tokio::select! {
        r = day_and_summary(&chain, &items, steps, &mut run_rng, &log, seed, day) => Some(r),
        _ = interrupted(stop.clone()) => None,
    };
    let result = match phase {
        None => Ok(Outcome::Interrupted),
        Some(Err(e)) => {
            if was_interrupted(&stop).await {
                Ok(Outcome::Interrupted)
            } else {
                Err(e)
            }
        }
        Some(Ok(ok)) if opts.exit_after_summary => Ok(Outcome::Finished { ok }),
        Some(Ok(ok)) => {
            dashboard(&chain);
            match quiet_trading(&chain, &items, &mut run_rng, &log, stop.clone()).await {
                Err(e) if !was_interrupted(&stop).await => Err(e),
                _ => Ok(Outcome::Finished { ok }),
            }
        }
    };
    let n = chain.shutdown().await;
    drop(chain);
    let dir = tmp.path().display().to_string();
    if opts.keep_data {
        let kept = tmp.keep();
        println!(
            "tally-demo: stopped {n} processes; data kept in {}",
            kept.display()
        );
    } else {
        drop(tmp);
        println!("tally-demo: stopped {n} processes; removed {dir}");
    }
    result
}

/// Ctrl-C in a terminal reaches the children too: one of them may stop
/// before the demo sees the signal. An error followed shortly by a signal
/// is an interruption.
async fn was_interrupted(stop: &watch::Receiver<bool>) -> bool {
    tokio::time::timeout(Duration::from_millis(500), interrupted(stop.clone()))
        .await
        .is_ok()
}

/// The catalog, the scripted day, convergence and the summary; whether
/// every promise held.
async fn day_and_summary(
    chain: &Chain,
    items: &[Item],
    steps: Vec<script::Step>,
    rng: &mut ChaCha8Rng,
    log: &Log,
    seed: u64,
    day: Duration,
) -> anyhow::Result<bool> {
    load_catalog(chain, items, log).await?;
    log.say(format!("the day begins ({} s)", day.as_secs()));
    let stats = script::run_day(chain, items, steps, rng, log).await?;
    log.say("the day is over; waiting for every store to converge with the hub…");
    let (summary, audit) = report::finish(
        chain,
        items,
        &stats,
        seed,
        day,
        Duration::from_secs(60),
        |l| log.say(l),
    )
    .await?;
    println!(
        "hub audit (GET /v1/audit: {} events, {} items × {} stores):",
        summary.events,
        items.len(),
        chain.stores.len()
    );
    for line in report::table(&audit) {
        println!("  {line}");
    }
    let (status, ctype) = chain.hub.get_page("/").await?;
    if status != 200 || !ctype.starts_with("text/html") {
        return Err(anyhow!(
            "the dashboard at {}/ answered {status} ({ctype})",
            chain.hub_url
        ));
    }
    log.say(format!(
        "the dashboard answers at {}/ ({status}, {ctype})",
        chain.hub_url
    ));
    println!("{summary}");
    Ok(summary.ok())
}

fn dashboard(chain: &Chain) {
    println!();
    println!("Dashboard:   {}/", chain.hub_url);
    println!("Admin token: {}", chain.token);
    println!(
        "(The hub is its own CA: your browser will warn; trust {} or accept the warning.)",
        chain.ca_pem.display()
    );
    println!(
        "Try: curl --cacert {} -H \"Authorization: Bearer {}\" {}/v1/audit",
        chain.ca_pem.display(),
        chain.token,
        chain.hub_url
    );
    println!("The stores keep trading quietly. Ctrl-C stops every process and removes the data.");
}

/// Loads the catalog at the hub and waits until every store has it (it
/// travels with their next sync).
async fn load_catalog(chain: &Chain, items: &[Item], log: &Log) -> anyhow::Result<()> {
    let body = json!({"items": items.iter().map(|i| json!({
        "gtin": i.gtin.to_string(), "name": i.name, "price_minor": i.price_minor,
    })).collect::<Vec<_>>()});
    let (status, answer) = chain.hub.post("/v1/catalog", &body).await?;
    if status != 200 {
        return Err(anyhow!("POST /v1/catalog answered {status}: {answer}"));
    }
    log.say(format!(
        "catalog of {} items loaded at the hub (POST /v1/catalog); waiting for the stores' next sync…",
        items.len()
    ));
    let end = Instant::now() + Duration::from_secs(60);
    for s in &chain.stores {
        for i in items {
            loop {
                chain.check_alive().await?;
                if s.api.get(&format!("/v1/catalog/{}", i.gtin)).await?.0 == 200 {
                    break;
                }
                if Instant::now() > end {
                    return Err(anyhow!("{} did not receive the catalog in 60 s", s.id));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    log.say(format!(
        "every store has the catalog ({})",
        items.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
    ));
    Ok(())
}

/// After the summary: a scan somewhere every 1.5 s and a delivery of 8
/// tagged units every 15 s (about what the scans sell; a tagged receipt at
/// the counting store), so the dashboard moves; a line every 30 s.
async fn quiet_trading(
    chain: &Chain,
    items: &[Item],
    rng: &mut ChaCha8Rng,
    log: &Log,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut serial = 1_000_000u64;
    let mut tick = 0u64;
    let mut receipts = 1_000u32;
    let sellable: Vec<usize> = (0..items.len())
        .filter(|&i| matches!(items[i].delivery, Some((_, hi)) if hi > 0))
        .collect();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        chain.check_alive().await?;
        tick += 1;
        let store = rng.gen_range(0..chain.stores.len());
        if tick % 10 == 0 {
            let mut tags = Vec::new();
            for _ in 0..8 {
                let i = sellable[rng.gen_range(0..sellable.len())];
                serial += 1;
                tags.push((i, serial));
            }
            if chain.stores[store].counts {
                receipts += 1;
                script::tagged_receipt(chain, items, store, &tags, receipts).await?;
            } else {
                let epcs = tags
                    .iter()
                    .map(|&(i, serial)| catalog::epc(&items[i], serial))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                chain.stores[store].reader.present(&epcs, 2, rng)?;
            }
        } else {
            let i = sellable[rng.gen_range(0..sellable.len())];
            let code = catalog::scan_code(&items[i], rng);
            chain.stores[store].scanner.scan(&code)?;
        }
        if tick % 20 == 0 {
            let audit = chain.hub.get_ok("/v1/audit").await?;
            log.say(format!(
                "still trading: the hub holds {} events; double_sold={}",
                audit["events"], audit["double_sold"]
            ));
        }
        let mut rx = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(1500)) => {}
            _ = rx.wait_for(|v| *v) => return Ok(()),
        }
    }
}
