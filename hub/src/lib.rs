//! `tally-hub`: the HQ server.
