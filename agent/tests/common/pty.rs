//! Pseudo-terminals standing in for serial devices (as in
//! `hardware/tests/common`): the test holds the master, the agent's driver
//! opens the slave by path, so the agent runs the same code as with a real
//! scanner or reader. Plus reading the agent's Prometheus counters, which
//! the device tests wait on with deadlines.

use std::time::{Duration, Instant};

use tally_agent_api::client::AgentClient as ApiClient;

/// The pseudo-terminal pair of `tally-hardware`'s own pty tests.
#[path = "../../../hardware/tests/common/pty.rs"]
mod pair;
// Not every test binary that includes `common` drives a device.
#[allow(unused_imports)]
pub use pair::Pty;

/// The value of one series (`name{labels}` exactly as exposed), 0 if absent.
pub async fn metric(client: &ApiClient, series: &str) -> u64 {
    let (status, text) = client.get_text("/metrics").await.unwrap();
    assert!(status.is_success(), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// Polls `series` until it reaches `want`; panics naming it after `within`.
pub async fn wait_metric(client: &ApiClient, series: &str, want: u64, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let v = metric(client, series).await;
        if v >= want {
            assert_eq!(v, want, "{series} went past {want}");
            return;
        }
        assert!(
            Instant::now() < end,
            "{series} is {v}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
