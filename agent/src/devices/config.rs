//! The devices' settings: `[devices]` in the config file and the `run`
//! flags of the same names, resolved into [`DevicesConfig`] (flags win; a
//! device needs a mode, so a scanner never starts selling by accident).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tally_hardware::driver::rfid as rfid_driver;
use tally_hardware::driver::scanner as scanner_driver;
use tally_hardware::rcn::RcnLayout;
use tally_hardware::rfid::address::{AddressError, ReaderAddress};

/// What a scanner wired to the agent does with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScannerMode {
    /// Each code is a sale of one unit (self-checkout, express lane).
    Sell,
}

/// What an RFID reader wired to the agent does with a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RfidMode {
    /// Each newly seen SGTIN tag (96 or 198 bits) is a receipt of one unit (dock portal).
    Receive,
    /// Tags feed the RFID count session counting now (handheld or fixed
    /// reader during a cycle count: `POST /v1/counts/sessions`).
    Count,
}

/// A scanner the agent reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerSettings {
    /// The serial device (prefer a stable `/dev/serial/by-id/…` path).
    pub path: PathBuf,
    /// What a scan does.
    pub mode: ScannerMode,
    /// Baud rate.
    pub baud: u32,
    /// In-store weighed-goods layouts.
    pub rcn_layouts: Vec<RcnLayout>,
}

/// An RFID reader the agent reads: an M100/QM100 module on a serial port
/// or an LLRP reader on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfidSettings {
    /// The serial device, or `llrp://HOST[:PORT]`.
    pub address: ReaderAddress,
    /// What a tag does.
    pub mode: RfidMode,
    /// Baud rate (serial readers).
    pub baud: u32,
    /// De-duplication window: a tag is reported once per window.
    pub window: Duration,
}

/// The devices the agent reads, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicesConfig {
    /// The scanner, if any.
    pub scanner: Option<ScannerSettings>,
    /// The RFID reader, if any.
    pub rfid: Option<RfidSettings>,
}

impl DevicesConfig {
    /// Whether any device is configured.
    pub fn is_empty(&self) -> bool {
        self.scanner.is_none() && self.rfid.is_none()
    }
}

/// `[devices]` in the config file; the same fields are the `run` flags
/// (`--scanner`, `--scanner-mode`, …), which take precedence.
///
/// ```toml
/// [devices]
/// scanner = "/dev/serial/by-id/usb-Honeywell_1900-if00"
/// scanner_mode = "sell"
/// scanner_baud = 9600
/// rcn_layouts = ["02,20-29:FFIIIIIPPPPPC:2"]
/// rfid = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0" # or "llrp://10.0.0.5"
/// rfid_mode = "receive"
/// rfid_baud = 115200
/// rfid_window_ms = 2000
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesFileConfig {
    /// Scanner device path.
    pub scanner: Option<PathBuf>,
    /// Scanner mode (required with a scanner).
    pub scanner_mode: Option<ScannerMode>,
    /// Scanner baud rate (default 9600).
    pub scanner_baud: Option<u32>,
    /// Weighed-goods layouts (default `02,20-29:FFIIIIIPPPPPC:2`).
    pub rcn_layouts: Option<Vec<String>>,
    /// RFID reader: a serial device path (M100/QM100) or
    /// `llrp://HOST[:PORT]` (an LLRP network reader, port 5084 by default).
    pub rfid: Option<PathBuf>,
    /// RFID mode (required with a reader).
    pub rfid_mode: Option<RfidMode>,
    /// RFID baud rate (default 115200; serial readers).
    pub rfid_baud: Option<u32>,
    /// De-duplication window in ms (default 2000).
    pub rfid_window_ms: Option<u64>,
}

/// Why the device settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceConfigError {
    /// A device without a mode: a scanner must never start selling by
    /// accident.
    #[error("{device} {path} needs a mode: {hint}")]
    NoMode {
        /// `scanner` or `rfid`.
        device: &'static str,
        /// The path given.
        path: String,
        /// What to add.
        hint: &'static str,
    },
    /// A mode or setting without its device.
    #[error("{0} is set but no device path is (--scanner / --rfid)")]
    NoDevice(&'static str),
    /// A value that must be positive is zero.
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
    /// A weighed-goods layout does not parse.
    #[error(transparent)]
    Layout(#[from] tally_hardware::rcn::LayoutError),
    /// The RFID reader's address does not parse.
    #[error("rfid: {0}")]
    RfidAddress(#[from] AddressError),
}

impl DevicesFileConfig {
    /// Resolves `flags` over `file` (each flag given wins).
    pub fn resolve(flags: Self, file: Self) -> Result<DevicesConfig, DeviceConfigError> {
        let scanner = paired(
            flags.scanner.or(file.scanner),
            flags.scanner_mode.or(file.scanner_mode),
            &SCANNER,
        )?
        .map(|(path, mode)| {
            let baud = flags.scanner_baud.or(file.scanner_baud);
            Ok::<_, DeviceConfigError>(ScannerSettings {
                path,
                mode,
                baud: positive(baud.unwrap_or(scanner_driver::DEFAULT_BAUD), "scanner_baud")?,
                rcn_layouts: layouts(flags.rcn_layouts.or(file.rcn_layouts))?,
            })
        })
        .transpose()?;
        let rfid = paired(
            flags.rfid.or(file.rfid),
            flags.rfid_mode.or(file.rfid_mode),
            &RFID,
        )?
        .map(|(path, mode)| {
            let baud = flags.rfid_baud.or(file.rfid_baud);
            let window_ms = flags.rfid_window_ms.or(file.rfid_window_ms);
            Ok::<_, DeviceConfigError>(RfidSettings {
                address: ReaderAddress::from_path(&path)?,
                mode,
                baud: positive(baud.unwrap_or(rfid_driver::DEFAULT_BAUD), "rfid_baud")?,
                window: Duration::from_millis(positive(
                    window_ms.unwrap_or(2000),
                    "rfid_window_ms",
                )?),
            })
        })
        .transpose()?;
        Ok(DevicesConfig { scanner, rfid })
    }
}

/// How a kind of device is named in its settings' errors.
struct DeviceNames {
    /// `scanner` or `rfid`.
    device: &'static str,
    /// Its mode's setting.
    mode_key: &'static str,
    /// The mode to add, as a flag and as a file setting.
    hint: &'static str,
}

const SCANNER: DeviceNames = DeviceNames {
    device: "scanner",
    mode_key: "scanner_mode",
    hint: "--scanner-mode sell (scanner_mode = \"sell\")",
};

const RFID: DeviceNames = DeviceNames {
    device: "rfid",
    mode_key: "rfid_mode",
    hint: "--rfid-mode receive (rfid_mode = \"receive\")",
};

/// A device's path and mode: both or neither.
fn paired<M>(
    path: Option<PathBuf>,
    mode: Option<M>,
    names: &DeviceNames,
) -> Result<Option<(PathBuf, M)>, DeviceConfigError> {
    match (path, mode) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(DeviceConfigError::NoDevice(names.mode_key)),
        (Some(path), None) => Err(DeviceConfigError::NoMode {
            device: names.device,
            path: path.display().to_string(),
            hint: names.hint,
        }),
        (Some(path), Some(mode)) => Ok(Some((path, mode))),
    }
}

/// `value`, unless it is zero.
fn positive<T: Default + PartialEq>(value: T, key: &'static str) -> Result<T, DeviceConfigError> {
    if value == T::default() {
        Err(DeviceConfigError::Zero(key))
    } else {
        Ok(value)
    }
}

/// The weighed-goods layouts given, or the defaults when none are.
fn layouts(given: Option<Vec<String>>) -> Result<Vec<RcnLayout>, DeviceConfigError> {
    match given {
        None => Ok(RcnLayout::default_layouts()),
        Some(l) if l.is_empty() => Ok(RcnLayout::default_layouts()),
        Some(l) => Ok(l
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<RcnLayout>, _>>()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_resolve_with_flags_over_file_and_demand_a_mode() {
        let file = DevicesFileConfig {
            scanner: Some("/dev/a".into()),
            scanner_mode: Some(ScannerMode::Sell),
            rfid: Some("/dev/r".into()),
            rfid_mode: Some(RfidMode::Receive),
            rfid_window_ms: Some(500),
            ..Default::default()
        };
        let flags = DevicesFileConfig {
            scanner: Some("/dev/b".into()),
            scanner_baud: Some(115_200),
            ..Default::default()
        };
        let c = DevicesFileConfig::resolve(flags, file).unwrap();
        let s = c.scanner.unwrap();
        assert_eq!(s.path, PathBuf::from("/dev/b"));
        assert_eq!(s.baud, 115_200);
        assert_eq!(s.rcn_layouts, RcnLayout::default_layouts());
        let r = c.rfid.unwrap();
        assert_eq!(r.window, Duration::from_millis(500));
        assert_eq!(r.baud, rfid_driver::DEFAULT_BAUD);
        assert_eq!(r.address, ReaderAddress::Serial("/dev/r".into()));
        let llrp = DevicesFileConfig {
            rfid: Some("llrp://10.0.0.5".into()),
            rfid_mode: Some(RfidMode::Receive),
            ..Default::default()
        };
        let r = DevicesFileConfig::resolve(llrp, Default::default())
            .unwrap()
            .rfid
            .unwrap();
        assert_eq!(
            r.address,
            ReaderAddress::Llrp {
                host: "10.0.0.5".into(),
                port: 5084
            }
        );

        let none = DevicesFileConfig::resolve(Default::default(), Default::default()).unwrap();
        assert!(none.is_empty());
        for (bad, want) in [
            (
                DevicesFileConfig {
                    scanner: Some("/dev/a".into()),
                    ..Default::default()
                },
                "needs a mode",
            ),
            (
                DevicesFileConfig {
                    rfid_mode: Some(RfidMode::Receive),
                    ..Default::default()
                },
                "no device path",
            ),
            (
                DevicesFileConfig {
                    rfid: Some("/dev/r".into()),
                    rfid_mode: Some(RfidMode::Receive),
                    rfid_window_ms: Some(0),
                    ..Default::default()
                },
                "greater than 0",
            ),
            (
                DevicesFileConfig {
                    scanner: Some("/dev/a".into()),
                    scanner_mode: Some(ScannerMode::Sell),
                    rcn_layouts: Some(vec!["nope".into()]),
                    ..Default::default()
                },
                "RCN layout",
            ),
            (
                DevicesFileConfig {
                    rfid: Some("llrp://10.0.0.5:99999".into()),
                    rfid_mode: Some(RfidMode::Receive),
                    ..Default::default()
                },
                "rfid: invalid port \"99999\"",
            ),
        ] {
            let e = DevicesFileConfig::resolve(bad, Default::default()).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
