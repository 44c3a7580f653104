//! Pseudo-terminals standing in for serial devices (as in
//! `hardware/tests/common`): the test holds the master, the agent's driver
//! opens the slave by path, so the agent runs the same code as with a real
//! scanner or reader. Plus reading the agent's Prometheus counters, which
//! the device tests wait on with deadlines.

use std::time::{Duration, Instant};

use tally_agent_api::client::AgentClient as ApiClient;
use tally_hardware::epc::Sgtin96;
use tally_hardware::rfid::frame::{encode_into, FrameType};
use tally_hardware::rfid::m100::{notice_payload, pc_for_len, CMD_SINGLE_INVENTORY};
use tally_hardware::rfid::TagRead;
use tally_sync::{Epc, Gtin};

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

/// An SGTIN-96 tag of `gtin` (company prefix of 7 digits), serial `serial`.
#[allow(dead_code)]
pub fn tag(gtin: &str, serial: u64) -> Epc {
    let s = Sgtin96::from_gtin(1, Gtin::parse(gtin).unwrap(), 7, serial).unwrap();
    Epc::from_bytes(&s.encode()).unwrap()
}

/// An M100 inventory notice of `epc`, as the module sends it.
#[allow(dead_code)]
pub fn notice(epc: &Epc, rssi: i8) -> Vec<u8> {
    let read = TagRead {
        pc: pc_for_len(epc.as_bytes().len()),
        epc: epc.clone(),
        rssi,
        antenna: None,
    };
    let mut out = Vec::new();
    encode_into(
        FrameType::Notice,
        CMD_SINGLE_INVENTORY,
        &notice_payload(&read),
        &mut out,
    )
    .unwrap();
    out
}
