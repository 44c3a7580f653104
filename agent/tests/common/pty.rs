//! Pseudo-terminals standing in for serial devices (as in
//! `hardware/tests/common`): the test holds the master, the agent's driver
//! opens the slave by path, so the agent runs the same code as with a real
//! scanner or reader. Plus reading the agent's Prometheus counters, which
//! the device tests wait on with deadlines.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tally_agent::client::ApiClient;

/// One pseudo-terminal pair.
pub struct Pty {
    pub master: File,
    /// Kept open so the master never sees "no slave" while the driver
    /// (re)opens the port.
    _slave: OwnedFd,
    pub path: PathBuf,
}

impl Pty {
    /// A pair in raw mode, so bytes written before the driver configured
    /// the port are neither translated nor echoed.
    pub fn open() -> Pty {
        let pair = nix::pty::openpty(None, None).expect("openpty");
        let mut t = tcgetattr(&pair.slave).unwrap();
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t).unwrap();
        let path = nix::unistd::ttyname(pair.slave.as_fd()).unwrap();
        Pty {
            master: File::from(pair.master),
            _slave: pair.slave,
            path,
        }
    }

    /// Writes bytes as the device would.
    pub fn write(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    /// What the driver wrote, until `want` bytes arrived or `within` passed.
    pub fn read_within(&mut self, want: usize, within: Duration) -> Vec<u8> {
        let end = Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while out.len() < want {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u16::try_from(left.as_millis().min(1000)).unwrap();
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(ms)).unwrap() == 0 {
                continue;
            }
            let n = self.master.read(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
}

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
