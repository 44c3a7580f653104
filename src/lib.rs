//! The root `tally` package: end-to-end tests (`tests/`), the simulation
//! runner (`examples/simulate.rs`) and the one-command demo.
