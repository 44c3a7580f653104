//! `tally-agent` binary: parses flags and hands over to the library.

mod devices_cli;
mod pos;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tally store agent.
#[derive(Debug, Parser)]
#[command(name = "tally-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a scanned barcode or an RFID EPC and print JSON.
    Decode(devices_cli::DecodeArgs),
    /// List serial ports (USB vendor/product where known).
    Devices(devices_cli::DevicesArgs),
    /// Run the scanner and/or RFID drivers and print one event per line.
    Listen(devices_cli::ListenArgs),
    /// Cashier terminal (full screen) on the running agent's API.
    Pos(pos::PosArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    Ok(match cli.command {
        Some(Command::Decode(args)) => devices_cli::run_decode(args),
        Some(Command::Devices(args)) => devices_cli::run_devices(args),
        Some(Command::Listen(args)) => devices_cli::run_listen(args),
        Some(Command::Pos(args)) => pos::run(args),
        None => ExitCode::SUCCESS,
    })
}
