//! `tally-agent`: the store daemon.
