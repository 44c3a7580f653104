//! The root `tally` package: end-to-end tests (`tests/`), the simulation
//! runner (`examples/simulate.rs`) and the one-command demo
//! ([`demo`], run by `src/bin/tally-demo.rs`).

pub mod demo;
