//! `tally-agent` binary: parses flags and hands over to the library.

use clap::Parser;

/// Tally store agent.
#[derive(Debug, Parser)]
#[command(name = "tally-agent", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
