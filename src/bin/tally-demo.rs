//! `tally-demo`: the whole chain in one command (see `tally::demo` and
//! docs/demo.md). Parses flags, runs the demo, maps the outcome to the
//! exit status: 0 when every promise held, 1 when one did not or on an
//! error, 130 when interrupted before the summary.

use std::process::ExitCode;

use clap::Parser;
use tally::demo::{self, Options, Outcome};

fn main() -> ExitCode {
    let opts = Options::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tally-demo: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(demo::run(opts));
    // Every child has been stopped (or is killed as the runtime drops).
    drop(rt);
    match outcome {
        Ok(Outcome::Finished { ok: true }) => ExitCode::SUCCESS,
        Ok(Outcome::Finished { ok: false }) => {
            eprintln!("tally-demo: a promise was broken (see the summary line)");
            ExitCode::FAILURE
        }
        Ok(Outcome::Interrupted) => {
            eprintln!("tally-demo: interrupted before the summary");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!(
                "tally-demo: error: {}",
                tally_sync::report::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
