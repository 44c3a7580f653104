//! `tally-hub` binary: parses flags and hands over to the library.

use clap::Parser;

/// Tally HQ hub.
#[derive(Debug, Parser)]
#[command(name = "tally-hub", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
