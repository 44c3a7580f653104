//! Shared support for the end-to-end tests.

pub mod procs;
pub mod proxy;
