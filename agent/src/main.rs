//! `tally-agent` binary: parses flags, installs logging, and hands over to
//! the library (`tally_agent::run` for the daemon, `tally_agent::cli` for
//! the client subcommands).

use anyhow::Context;
use clap::{Parser, Subcommand};
use tally_agent::cli::{self, AgentArg, CatalogCommand, RunArgs, StockArgs};

/// Tally store agent.
#[derive(Debug, Parser)]
#[command(name = "tally-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the agent: durable store, local API.
    Run(RunArgs),
    /// Shows an item's stock (asks the running agent).
    Stock(StockArgs),
    /// Shows the agent's status (asks the running agent).
    Status(AgentArg),
    /// Catalog maintenance.
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole chain of causes.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Stock(args) => print(runtime()?.block_on(cli::stock(&args))?),
        Command::Status(args) => print(runtime()?.block_on(cli::status(&args))?),
        Command::Catalog(CatalogCommand::Import(args)) => {
            print(runtime()?.block_on(cli::catalog_import(&args))?)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print(v: serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `tally-agent run`: binds the API and serves until SIGINT or SIGTERM.
fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find the port (e.g. with --listen 127.0.0.1:0).
        println!("tally-agent listening on http://{addr}");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received."),
                _ = term.recv() => tracing::info!("SIGTERM received."),
            }
        };
        tally_agent::run(config, listener, shutdown)
            .await
            .context("tally-agent stopped with an error")
    })
}
