//! Shared support for the end-to-end tests. The fault-injecting proxy is
//! the demo's own (`tally::demo::proxy`), so tests exercise the same code.

pub mod chain;
/// A throwaway PostgreSQL per test process: the hub's own test helper.
#[path = "../../hub/tests/support/pg.rs"]
pub mod pg;
pub mod procs;
