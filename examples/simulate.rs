//! Runs the deterministic simulation (`tally_sync::sim`) from the command
//! line and prints one JSON line per seed.
//!
//! ```text
//! cargo run --release --example simulate -- --seed 42 --stores 5 --steps 10000
//! cargo run --release --example simulate -- --seed 0 --seeds 1000 --stores 5 --steps 10000
//! ```
//! Exits non-zero on the first seed that breaks a promise, after printing
//! the command that replays it.

use clap::Parser;
use tally_sync::sim::{run, SimConfig};

/// Simulate one hub and N stores over a faulty network.
#[derive(Debug, Parser)]
struct Args {
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many consecutive seeds to run, starting at --seed.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Number of stores.
    #[arg(long, default_value_t = 5)]
    stores: usize,
    /// Steps per run.
    #[arg(long, default_value_t = 10_000)]
    steps: usize,
    /// Distinct items.
    #[arg(long, default_value_t = 8)]
    items: usize,
    /// The hub's offline horizon for its online reserve, in simulated ms
    /// (default: the simulation's, 5 s).
    #[arg(long)]
    reserve_horizon_ms: Option<u64>,
    /// The online-demand half-life, in simulated ms (default: the
    /// simulation's, 30 s).
    #[arg(long)]
    demand_half_life_ms: Option<u64>,
    /// Print only failing seeds and a final summary line.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Every count of the reports, summed over the seeds (the seed, store
    // and step numbers and the heal rounds are not counts), and how many
    // runs upheld each verdict.
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    let mut runs = 0u64;
    let started = std::time::Instant::now();
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let mut cfg = SimConfig::new(seed, args.stores, args.steps);
        cfg.items = args.items;
        if let Some(ms) = args.reserve_horizon_ms {
            cfg.policy.horizon_ms = ms;
        }
        if let Some(ms) = args.demand_half_life_ms {
            cfg.policy.half_life_ms = ms;
        }
        let report = run(&cfg);
        let value = serde_json::to_value(&report)?;
        runs += 1;
        for (k, v) in value.as_object().into_iter().flatten() {
            // A verdict (`converged`, `conservation_ok`) counts the runs
            // that upheld it.
            let n = v.as_u64().or(v.as_bool().map(u64::from));
            if let (Some(n), false) = (
                n,
                ["seed", "stores", "steps", "heal_rounds"].contains(&k.as_str()),
            ) {
                *totals.entry(k.clone()).or_default() += n;
            }
        }
        if !report.ok() {
            println!("{value}");
            eprintln!(
                "VIOLATION with seed {seed}; replay: cargo run --release --example simulate -- --seed {seed} --stores {} --steps {} --items {}",
                args.stores, args.steps, args.items
            );
            std::process::exit(1);
        }
        if !args.quiet {
            println!("{value}");
        }
    }
    if args.quiet || args.seeds > 1 {
        let mut summary = serde_json::json!({ "runs": runs, "all_ok": true });
        for (k, n) in totals {
            summary[k] = n.into();
        }
        summary["seconds"] = started.elapsed().as_secs_f64().into();
        println!("{summary}");
    }
    Ok(())
}
