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
    let (mut runs, mut sales, mut refused, mut messages) = (0u64, 0u64, 0u64, 0u64);
    let (mut overrides, mut epc_returns, mut epc_resales) = (0u64, 0u64, 0u64);
    let (mut retries, mut retry_mismatches, mut refund_bound_refusals, mut epc_refusals) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut stocked_up, mut stocked_down, mut rights_requests, mut rights_granted) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut orders, mut refused_orders) = (0u64, 0u64);
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
        let line = serde_json::to_string(&report)?;
        runs += 1;
        sales += report.sales;
        refused += report.refused_sales;
        messages += report.messages;
        overrides += report.overrides;
        epc_returns += report.epc_returns;
        epc_resales += report.epc_resales;
        retries += report.retries;
        retry_mismatches += report.retry_mismatches;
        refund_bound_refusals += report.refund_bound_refusals;
        epc_refusals += report.epc_refusals;
        stocked_up += report.refused_while_stocked_link_up;
        stocked_down += report.refused_while_stocked_link_down;
        rights_requests += report.rights_requests;
        rights_granted += report.rights_granted;
        orders += report.orders;
        refused_orders += report.refused_orders;
        if !report.ok() {
            println!("{line}");
            eprintln!(
                "VIOLATION with seed {seed}; replay: cargo run --release --example simulate -- --seed {seed} --stores {} --steps {} --items {}",
                args.stores, args.steps, args.items
            );
            std::process::exit(1);
        }
        if !args.quiet {
            println!("{line}");
        }
    }
    if args.quiet || args.seeds > 1 {
        println!(
            "{}",
            serde_json::json!({
                "runs": runs, "all_ok": true, "sales": sales, "refused_sales": refused,
                "overrides": overrides, "epc_returns": epc_returns, "epc_resales": epc_resales,
                "retries": retries, "retry_mismatches": retry_mismatches,
                "refund_bound_refusals": refund_bound_refusals, "epc_refusals": epc_refusals,
                "refused_while_stocked_link_up": stocked_up,
                "refused_while_stocked_link_down": stocked_down,
                "rights_requests": rights_requests, "rights_granted": rights_granted,
                "orders": orders, "refused_orders": refused_orders,
                "messages": messages, "seconds": started.elapsed().as_secs_f64(),
            })
        );
    }
    Ok(())
}
