//! Restart after a crash: how long opening a database takes after its
//! process died without closing it, with commits in quick-repair mode
//! (`Db::set_quick_repair`, the hub's) and without (the agent's), for a
//! database of a given size.
//!
//! `cargo bench -p tally-store --bench restart`. `TALLY_BENCH_ROWS` sets
//! the rows written (default 2,000,000 of ~300 bytes, about 1 GiB on
//! disk; a store selling 2,000 times a day holds about that after a few
//! years), `TALLY_BENCH_DIR` the directory (default: a temp dir). For
//! each mode a child process (this binary again) fills a fresh database
//! in commits of 1,000 rows and aborts right after its last commit; the
//! parent then times the open. The page cache is warm (the child just
//! wrote the file): a cold start reads the whole file from the device
//! too, so the full repair's figure is a lower bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use tally_store::redb::TableDefinition;
use tally_store::Db;

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("bench_rows");
const BODY: [u8; 300] = [7; 300];
const PER_COMMIT: u64 = 1_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The child: fills `path` with `rows` rows, every commit in quick
/// repair mode or not, and dies without closing the database.
fn fill(path: &Path, rows: u64, quick: bool) -> ! {
    let mut db = Db::open(path).unwrap();
    db.set_quick_repair(quick);
    let mut next = 0;
    while next < rows {
        let end = (next + PER_COMMIT).min(rows);
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.raw().open_table(ROWS).unwrap();
            for k in next..end {
                t.insert(k, BODY.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        next = end;
    }
    std::process::abort();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-fill") {
        let path = Path::new(&args[i + 1]);
        let rows = args[i + 2].parse().unwrap();
        fill(path, rows, args[i + 3] == "quick");
    }
    let rows = env_u64("TALLY_BENCH_ROWS", 2_000_000);
    let tmp = match std::env::var("TALLY_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    println!("| commits | rows | file | open after the crash | full repair |");
    println!("| --- | --- | --- | --- | --- |");
    for mode in ["without quick repair", "quick repair"] {
        let path = tmp.path().join(format!("{}.redb", mode.replace(' ', "-")));
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--child-fill", path.to_str().unwrap(), &rows.to_string()])
            .arg(if mode == "quick repair" {
                "quick"
            } else {
                "full"
            })
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child must die, not close");
        let size = std::fs::metadata(&path).unwrap().len();
        let t = Instant::now();
        let db = Db::open(&path).unwrap();
        let took = t.elapsed();
        println!(
            "| {mode} | {rows} | {} MiB | {:.1} ms | {} |",
            size >> 20,
            took.as_secs_f64() * 1e3,
            if db.was_fully_repaired() { "yes" } else { "no" }
        );
    }
}
