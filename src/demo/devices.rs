//! Simulated devices on real pseudo-terminals: the demo holds each pty's
//! master and plays the device; the store's agent opens the slave, through
//! a symlink in the store's directory (as `/dev/serial/by-id/…` would be),
//! with its real drivers (`tally-agent run --scanner … --rfid …`).
//!
//! - [`SimScanner`] writes what a serial barcode scanner writes: the code
//!   with its AIM symbology identifier, then CR LF.
//! - [`SimReader`] plays an M100/QM100 UHF reader module: a thread reads
//!   the commands the agent's driver sends (start multiple inventory 0x27,
//!   stop 0x28) with `tally_hardware::rfid::frame`; while inventory runs
//!   the module answers "no tag" (error 0x15) every half second when the
//!   field is empty, and [`SimReader::present`] writes inventory notices
//!   (`0xBB 0x02 0x22 … 0x7E`, built with `tally_hardware::rfid::m100`)
//!   for tags passing the portal, several reads each, as a real portal
//!   does.
//!
//! Writes are non-blocking with a deadline, so a store whose agent died
//! makes the demo fail with a message instead of hanging on a full pty.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use rand::seq::SliceRandom;
use rand::Rng;
use tally_hardware::rfid::frame::{encode_into, FrameReader, FrameType};
use tally_hardware::rfid::m100::{self, notice_payload, pc_for_len};
use tally_hardware::rfid::TagRead;
use tally_sync::Epc;

/// How long a write to a device may wait for the agent to read.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// A pty pair in raw mode, master non-blocking, slave linked at `link`.
#[derive(Debug)]
struct Pty {
    master: Mutex<File>,
    /// Kept open so the master never reads EOF/EIO while the agent's
    /// driver (re)opens the slave.
    _slave: OwnedFd,
    link: PathBuf,
}

impl Pty {
    fn open(link: &Path) -> anyhow::Result<Pty> {
        let pair = nix::pty::openpty(None, None).context("openpty")?;
        let mut t = tcgetattr(&pair.slave).context("tcgetattr")?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t).context("tcsetattr")?;
        let raw = pair.master.as_raw_fd();
        let flags = fcntl(raw, FcntlArg::F_GETFL).context("fcntl")?;
        fcntl(
            raw,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .context("fcntl O_NONBLOCK")?;
        let slave = nix::unistd::ttyname(pair.slave.as_fd()).context("ttyname")?;
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&slave, link)
            .with_context(|| format!("linking {} to {}", link.display(), slave.display()))?;
        Ok(Pty {
            master: Mutex::new(File::from(pair.master)),
            _slave: pair.slave,
            link: link.to_path_buf(),
        })
    }

    /// Writes all of `bytes`, waiting for room up to [`WRITE_DEADLINE`].
    fn write_all(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let master = self
            .master
            .lock()
            .map_err(|_| anyhow!("device lock poisoned"))?;
        let end = Instant::now() + WRITE_DEADLINE;
        let mut rest = bytes;
        while !rest.is_empty() {
            match (&*master).write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(anyhow!(
                            "{}: the agent stopped reading the device",
                            self.link.display()
                        ));
                    }
                    let ms = u16::try_from(left.as_millis().min(100)).unwrap_or(100);
                    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(ms));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context(format!("writing {}", self.link.display())),
            }
        }
        Ok(())
    }
}

/// A serial barcode scanner.
#[derive(Debug)]
pub struct SimScanner {
    pty: Pty,
}

impl SimScanner {
    /// A scanner whose port is the symlink `link`.
    pub fn open(link: &Path) -> anyhow::Result<SimScanner> {
        Ok(SimScanner {
            pty: Pty::open(link)?,
        })
    }

    /// The path the agent opens.
    pub fn path(&self) -> &Path {
        &self.pty.link
    }

    /// Sends one code (AIM identifier included) with the CR LF suffix.
    pub fn scan(&self, code: &str) -> anyhow::Result<()> {
        let mut line = code.as_bytes().to_vec();
        line.extend_from_slice(b"\r\n");
        self.pty.write_all(&line)
    }
}

#[derive(Debug, Default)]
struct ReaderState {
    inventory: AtomicBool,
    starts: AtomicU64,
    stop: AtomicBool,
}

/// An M100-protocol UHF RFID reader module.
#[derive(Debug)]
pub struct SimReader {
    pty: Arc<Pty>,
    state: Arc<ReaderState>,
    thread: Option<JoinHandle<()>>,
}

fn frame(frame_type: FrameType, command: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // Payloads here are a few bytes: encoding cannot fail.
    let _ = encode_into(frame_type, command, payload, &mut out);
    out
}

impl SimReader {
    /// A reader whose port is the symlink `link`; its command thread runs
    /// until the reader is dropped.
    pub fn open(link: &Path) -> anyhow::Result<SimReader> {
        let pty = Arc::new(Pty::open(link)?);
        let state = Arc::new(ReaderState::default());
        let (p, s) = (pty.clone(), state.clone());
        let thread = std::thread::Builder::new()
            .name("sim-reader".into())
            .spawn(move || module(&p, &s))
            .context("starting the simulated reader")?;
        Ok(SimReader {
            pty,
            state,
            thread: Some(thread),
        })
    }

    /// The path the agent opens.
    pub fn path(&self) -> &Path {
        &self.pty.link
    }

    /// Whether the agent's driver has started inventory.
    pub fn inventory_running(&self) -> bool {
        self.state.inventory.load(Ordering::SeqCst)
    }

    /// Start-inventory commands received so far.
    pub fn starts(&self) -> u64 {
        self.state.starts.load(Ordering::SeqCst)
    }

    /// Tags passing the reader's field: each read `reads` times (shuffled,
    /// RSSI −35…−70 dBm), as inventory notices. Refused while the agent has
    /// not started inventory (a real module would stay silent).
    pub fn present(&self, tags: &[Epc], reads: u32, rng: &mut impl Rng) -> anyhow::Result<()> {
        if !self.inventory_running() {
            return Err(anyhow!(
                "{}: the agent has not started inventory",
                self.pty.link.display()
            ));
        }
        let mut order: Vec<&Epc> = Vec::new();
        for _ in 0..reads.max(1) {
            order.extend(tags.iter());
        }
        order.shuffle(rng);
        let mut bytes = Vec::with_capacity(order.len() * 24);
        for epc in order {
            let read = TagRead {
                pc: pc_for_len(epc.as_bytes().len()),
                epc: epc.clone(),
                rssi: rng.gen_range(-70..=-35),
                antenna: None,
            };
            bytes.extend(frame(
                FrameType::Notice,
                m100::CMD_SINGLE_INVENTORY,
                &notice_payload(&read),
            ));
        }
        self.pty.write_all(&bytes)
    }
}

impl Drop for SimReader {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The module's side: answers the driver's commands.
fn module(pty: &Pty, state: &ReaderState) {
    let mut reader = FrameReader::new();
    let mut buf = [0u8; 512];
    let mut last_no_tag = Instant::now();
    while !state.stop.load(Ordering::SeqCst) {
        let ready = {
            let Ok(master) = pty.master.lock() else {
                return;
            };
            let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            matches!(poll(&mut fds, PollTimeout::from(0u16)), Ok(n) if n > 0)
        };
        if ready {
            let n = {
                let Ok(master) = pty.master.lock() else {
                    return;
                };
                (&*master).read(&mut buf)
            };
            if let Ok(n) = n {
                reader.push(&buf[..n]);
            }
            let mut answers = Vec::new();
            while let Some(f) = reader.next_frame() {
                let Ok(f) = f else { continue };
                if f.frame_type != FrameType::Command {
                    continue;
                }
                match f.command {
                    m100::CMD_MULTIPLE_INVENTORY => {
                        state.inventory.store(true, Ordering::SeqCst);
                        state.starts.fetch_add(1, Ordering::SeqCst);
                    }
                    m100::CMD_STOP => {
                        state.inventory.store(false, Ordering::SeqCst);
                        // The module acknowledges stop with status 0.
                        answers.push(frame(FrameType::Response, m100::CMD_STOP, &[0x00]));
                    }
                    _ => {}
                }
            }
            for a in answers {
                let _ = pty.write_all(&a);
            }
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        // An empty field: the module says "no tag" after each round, which
        // also tells the driver the module is alive.
        if state.inventory.load(Ordering::SeqCst)
            && last_no_tag.elapsed() >= Duration::from_millis(500)
        {
            last_no_tag = Instant::now();
            let _ = pty.write_all(&frame(
                FrameType::Response,
                m100::CMD_ERROR,
                &[m100::ERR_NO_TAG],
            ));
        }
    }
}
