//! Shared support for the end-to-end tests. The fault-injecting proxy is
//! the demo's own (`tally::demo::proxy`), so tests exercise the same code.

pub mod chain;
pub mod procs;
