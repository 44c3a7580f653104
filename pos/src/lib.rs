//! `tally-pos`: the cashier terminal (`tally-agent pos`), a full-screen
//! ratatui program that talks only to the running agent's local API. The
//! `tally-agent` binary parses [`PosArgs`] and calls [`run`]. Keys,
//! screens and flows are in `docs/pos.md`.
//!
//! Map:
//! - [`state`]: the pure state machine (`PosState` + `Action` → effects).
//! - [`render`]: draws a state with ratatui.
//! - [`api`]: the `AgentApi` trait the event loop calls, implemented for
//!   `tally_agent_api::AgentClient` (the wire types and the client).
//! - [`app`]: the event loop (terminal, scanner driver, status poll).
//! - [`journal`]: the till's journal, the sale in doubt across a restart.
//! - [`scan`], [`money`]: pure helpers (codes → items, minor units ↔ text).

pub mod api;
pub mod app;
pub mod journal;
pub mod money;
pub mod render;
pub mod scan;
pub mod state;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tally_agent_api::AgentClient;
use tally_hardware::driver::scanner::ScannerConfig;
use tally_hardware::rcn::RcnLayout;

/// `tally-agent pos`.
#[derive(Debug, Args)]
pub struct PosArgs {
    /// Base URL of the running agent's local API.
    #[arg(long, default_value = "http://127.0.0.1:7420", env = "TALLY_AGENT_URL")]
    agent: String,
    /// This till's token, when the agent has `[[api.tills]]`.
    #[arg(long, env = "TALLY_TILL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The agent's API CA certificate, for an `https://` agent (printed
    /// by `tally-agent api-ca` on the agent's machine).
    #[arg(long, env = "TALLY_AGENT_CA")]
    agent_ca: Option<PathBuf>,
    /// The cashier signing in (recorded on every sale and return); the
    /// login name when not given.
    #[arg(long, env = "TALLY_CASHIER")]
    cashier: Option<String>,
    /// This till's id, recorded on every sale and return. With a till
    /// token the agent knows the till from it; without one, the machine's
    /// host name when not given.
    #[arg(long, env = "TALLY_TILL")]
    till: Option<String>,
    /// The store's barcode scanner (serial port, e.g. /dev/serial/by-id/…).
    #[arg(long)]
    scanner: Option<PathBuf>,
    /// Scanner baud rate.
    #[arg(long, default_value_t = tally_hardware::driver::scanner::DEFAULT_BAUD)]
    scanner_baud: u32,
    /// Restricted-circulation EAN-13 layout for weighed goods
    /// (PREFIXES:PATTERN[:DECIMALS]); repeatable. Default
    /// '02,20-29:FFIIIIIPPPPPC:2'.
    #[arg(long = "rcn-layout")]
    rcn_layouts: Vec<RcnLayout>,
    /// Seconds before a call to the agent is given up (a sale then shows as
    /// not confirmed, to retry with the same id).
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
    /// The till's journal: the sale or return awaiting the agent's answer,
    /// kept across a crash or restart (default
    /// `$XDG_STATE_HOME/tally/pos-TILL.redb`, else under
    /// `~/.local/state`).
    #[arg(long, env = "TALLY_POS_JOURNAL")]
    journal: Option<PathBuf>,
    /// Write logs to this file (nothing is logged while the screen is drawn
    /// otherwise).
    #[arg(long)]
    log: Option<PathBuf>,
}

/// Runs the terminal until the cashier quits; on an error, prints it on
/// one line (after the terminal is restored) and exits 1.
pub fn run(args: PosArgs) -> ExitCode {
    match run_terminal(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", tally_sync::report::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The machine's host name, when the kernel says it.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

fn run_terminal(args: PosArgs) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("tally-agent pos is a full-screen program: run it in a terminal");
    }
    if let Some(path) = &args.log {
        tally_service::log_to_file(path)
            .with_context(|| format!("opening the log file {}", path.display()))?;
    }
    let ca = args
        .agent_ca
        .as_deref()
        .map(|path| {
            std::fs::read(path)
                .with_context(|| format!("reading the agent's CA certificate {}", path.display()))
        })
        .transpose()?;
    let api = AgentClient::trusting(
        &args.agent,
        Duration::from_secs(args.timeout_secs.max(1)),
        ca.as_deref(),
    )?
    .with_token(args.token.clone());
    let layouts = if args.rcn_layouts.is_empty() {
        RcnLayout::default_layouts()
    } else {
        args.rcn_layouts
    };
    let scanner = args.scanner.map(|path| {
        let mut cfg = ScannerConfig::new(path);
        cfg.port.baud = args.scanner_baud;
        cfg.rcn_layouts = layouts.clone();
        cfg
    });
    let cashier = args
        .cashier
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "cashier".into());
    let till = match (args.till, &args.token) {
        (Some(till), _) => Some(till),
        (None, Some(_)) => None,
        (None, None) => host_name(),
    };
    // One journal per till: named by the till's id, else the host's (two
    // terminals on one host give --till or --journal; the second on one
    // journal is refused).
    let journal_path = match args.journal {
        Some(p) => p,
        None => journal::default_path(till.clone().or_else(host_name).as_deref())
            .context("no state directory ($XDG_STATE_HOME or $HOME): give --journal")?,
    };
    let journal = journal::Journal::open(&journal_path)?;
    let state = state::PosState::new(api.base(), layouts).with_staff(cashier, till);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let result = runtime.block_on(app::run(
        Arc::new(api),
        &mut terminal,
        state,
        app::LoopConfig {
            scanner,
            journal: Some(journal),
        },
    ));
    ratatui::try_restore().context("restoring the terminal")?;
    Ok(result?)
}
