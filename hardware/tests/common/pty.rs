//! One real pseudo-terminal pair standing in for a serial device: the
//! test holds the master (the device side), the driver opens the slave by
//! path. Shared by `tally-hardware`'s pty tests and, through `#[path]`,
//! the agent's device tests, so both drive the same fixture.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// One pseudo-terminal: the test holds the master (the "device" side); the
/// driver opens the slave by path.
pub struct Pty {
    pub master: File,
    /// Kept open so the master never sees "no slave" while the driver
    /// reconnects; closed together with the master on unplug.
    _slave: OwnedFd,
    pub slave_path: PathBuf,
}

impl Pty {
    pub fn open() -> Pty {
        let pair = nix::pty::openpty(None, None).expect("openpty");
        // Raw mode from the start, so bytes written before the driver has
        // configured the port are not translated or echoed.
        let mut t = tcgetattr(&pair.slave).unwrap();
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t).unwrap();
        let slave_path = nix::unistd::ttyname(pair.slave.as_fd()).unwrap();
        Pty {
            master: File::from(pair.master),
            _slave: pair.slave,
            slave_path,
        }
    }

    /// Writes bytes as the device would.
    pub fn write(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    /// Reads what the driver wrote until `want` bytes arrived or the
    /// deadline passed.
    pub fn read_exact_within(&mut self, want: usize, deadline: Duration) -> Vec<u8> {
        let end = Instant::now() + deadline;
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
