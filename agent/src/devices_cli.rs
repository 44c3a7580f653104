//! The device subcommands of `tally-agent`: `decode barcode`, `decode epc`,
//! `devices` and `listen`. Clap argument structs and their run functions;
//! `main.rs` only dispatches here. Output contracts (docs/hardware.md):
//! decoders print one JSON object and exit 0, or a one-line reason on
//! stderr and exit 1; `listen` prints one event per line until interrupted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use tally_hardware::barcode::{self, Barcode};
use tally_hardware::dedup::TagReport;
use tally_hardware::driver::rfid::{self as rfid_driver, RfidConfig, RfidEvent};
use tally_hardware::driver::scanner::{self as scanner_driver, ScannerConfig, ScannerEvent};
use tally_hardware::driver::DriverHandle;
use tally_hardware::epc::{self, DecodedEpc};
use tally_hardware::framer::Suffix;
use tally_hardware::gs1::{Interpretation, GS};
use tally_hardware::ports;
use tally_hardware::rcn::{RcnLayout, ValueKind};
use tally_hardware::rfid::address::ReaderAddress;
use tally_sync::clock::Clock;
use tally_sync::Epc;
use tokio::sync::mpsc;

const RCN_HELP: &str = "Restricted-circulation EAN-13 layout PREFIXES:PATTERN[:DECIMALS], e.g. \
    '20-29:FFIIIIIPPPPPC:2' (F prefix, I item, P price or W weight digits, V verifier, C check). \
    Repeatable; the first matching layout wins. Default: '02,20-29:FFIIIIIPPPPPC:2'";

/// `tally-agent decode …`
#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[command(subcommand)]
    what: DecodeWhat,
}

#[derive(Debug, Subcommand)]
enum DecodeWhat {
    /// Decode one scanned code and print {"symbology", "gtin", "ais", …} as JSON.
    ///
    /// RAW is what the scanner sent, with or without an AIM identifier
    /// (]E0, ]E4, ]C1, ]d2, ]Q3, ]e0), or the human-readable GS1 form
    /// "(01)04006381333931(17)251231(10)LOT". Write the GS separator (FNC1)
    /// as a real 0x1D byte, as "\x1d" or as "<GS>", e.g.
    /// ']C1010400638133393110LOT<GS>21SERIAL'.
    Barcode {
        /// The scanned code.
        raw: String,
        #[arg(long = "rcn-layout", help = RCN_HELP)]
        rcn_layouts: Vec<RcnLayout>,
    },
    /// Decode an EPC (hex) per the GS1 EPC Tag Data Standard and print JSON.
    ///
    /// SGTIN-96, SSCC-96 and GRAI-96 are decoded; other schemes are
    /// reported as "raw".
    Epc {
        /// The EPC in hex, e.g. 3074257BF7194E4000001A85.
        hex: String,
    },
}

/// `tally-agent devices`
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// `tally-agent listen`
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Barcode scanner serial port.
    #[arg(long, value_name = "PATH")]
    scanner: Option<PathBuf>,
    /// UHF RFID reader: a serial port (M100/QM100 module protocol) or an
    /// LLRP network reader, llrp://HOST or llrp://HOST:PORT (port 5084 by
    /// default).
    #[arg(long, value_name = "PATH|llrp://HOST[:PORT]")]
    rfid: Option<ReaderAddress>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Scanner baud rate.
    #[arg(long, default_value_t = scanner_driver::DEFAULT_BAUD)]
    scanner_baud: u32,
    /// Scanner suffix: cr, lf, crlf or any.
    #[arg(long, default_value = "any")]
    scanner_suffix: Suffix,
    /// Scanner prefix to require and strip.
    #[arg(long)]
    scanner_prefix: Option<String>,
    /// RFID reader baud rate (serial readers).
    #[arg(long, default_value_t = rfid_driver::DEFAULT_BAUD)]
    rfid_baud: u32,
    /// RFID de-duplication window in milliseconds.
    #[arg(long, default_value_t = 2000)]
    window_ms: u64,
    #[arg(long = "rcn-layout", help = RCN_HELP)]
    rcn_layouts: Vec<RcnLayout>,
}

/// Runs `decode`.
pub fn run_decode(args: DecodeArgs, clock: &dyn Clock) -> ExitCode {
    let result = match args.what {
        DecodeWhat::Barcode { raw, rcn_layouts } => {
            let layouts = layouts_or_default(rcn_layouts);
            barcode::decode(&unescape_gs(&raw), &layouts)
                .map(|b| Value::Object(barcode_json(&b, current_year(clock))))
                .map_err(|e| e.to_string())
        }
        DecodeWhat::Epc { hex } => decode_epc_json(hex.trim()),
    };
    match result {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("error: {}", reason.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn layouts_or_default(layouts: Vec<RcnLayout>) -> Vec<RcnLayout> {
    if layouts.is_empty() {
        RcnLayout::default_layouts()
    } else {
        layouts
    }
}

/// Replaces the documented GS escapes (`\x1d`, `\x1D`, `<GS>`) by 0x1D.
pub fn unescape_gs(raw: &str) -> String {
    let gs = GS.to_string();
    raw.replace("\\x1d", &gs)
        .replace("\\x1D", &gs)
        .replace("<GS>", &gs)
}

/// The JSON object for a decoded barcode: `symbology`, `gtin`, `ais`, plus
/// `aim`, `data`, `ai_details` (titles, dates, measures, amounts) and
/// `variable_measure`.
pub fn barcode_json(b: &Barcode, current_year: i32) -> Map<String, Value> {
    let mut ais = Map::new();
    let mut details = Map::new();
    for e in &b.elements.elements {
        ais.insert(e.ai.clone(), Value::String(e.value.clone()));
        let mut d = Map::new();
        d.insert("title".into(), e.spec.title.into());
        match e.interpret(current_year) {
            Some(Interpretation::Date(date)) => {
                d.insert("date".into(), date.into());
            }
            Some(Interpretation::Measure {
                quantity,
                unit,
                value,
            }) => {
                d.insert("quantity".into(), quantity.into());
                d.insert("unit".into(), unit.into());
                d.insert("value".into(), value.into());
            }
            Some(Interpretation::Amount { value, currency }) => {
                d.insert("amount".into(), value.into());
                if let Some(c) = currency {
                    d.insert("currency".into(), c.into());
                }
            }
            None => {}
        }
        details.insert(e.ai.clone(), Value::Object(d));
    }
    let mut out = Map::new();
    out.insert("symbology".into(), b.symbology_name().into());
    out.insert("gtin".into(), b.gtin.map(|g| g.to_string()).into());
    out.insert("ais".into(), Value::Object(ais));
    out.insert("aim".into(), b.symbology.identifier().into());
    out.insert("data".into(), b.data.clone().into());
    out.insert("ai_details".into(), Value::Object(details));
    let vm = b.variable_measure.as_ref().map(|vm| {
        let mut m = Map::new();
        m.insert("prefix".into(), vm.prefix.clone().into());
        m.insert("item_code".into(), vm.item_code.clone().into());
        m.insert(
            "item_gtin".into(),
            vm.item_gtin.map(|g| g.to_string()).into(),
        );
        let key = match vm.kind {
            ValueKind::Price => "price",
            ValueKind::Weight => "weight_kg",
        };
        m.insert(key.into(), vm.value.clone().into());
        Value::Object(m)
    });
    out.insert("variable_measure".into(), vm.into());
    out
}

fn decode_epc_json(hex: &str) -> Result<Value, String> {
    let epc = Epc::from_hex(hex).map_err(|e| e.to_string())?;
    let decoded = epc::decode(&epc).map_err(|e| e.to_string())?;
    Ok(Value::Object(epc_json(&epc, &decoded)))
}

/// The JSON object for a decoded EPC (fields that apply to its scheme).
pub fn epc_json(epc: &Epc, decoded: &DecodedEpc) -> Map<String, Value> {
    let mut v = json!({
        "scheme": decoded.scheme(),
        "epc": epc.to_hex(),
        "tag_uri": decoded.tag_uri(),
    });
    let extra = match decoded {
        DecodedEpc::Sgtin96(s) => json!({
            "filter": s.filter,
            "partition": s.partition,
            "company_prefix": s.cp(),
            "item_reference": s.ir(),
            "serial": s.serial.to_string(),
            "gtin": s.gtin().map(|g| g.to_string()),
            "epc_uri": s.epc_uri(),
        }),
        DecodedEpc::Sscc96(s) => json!({
            "filter": s.filter,
            "partition": s.partition,
            "company_prefix": s.cp(),
            "serial_reference": s.sr(),
            "sscc": s.sscc(),
            "epc_uri": s.epc_uri(),
        }),
        DecodedEpc::Grai96(g) => json!({
            "filter": g.filter,
            "partition": g.partition,
            "company_prefix": g.cp(),
            "asset_type": g.at(),
            "serial": g.serial.to_string(),
            "grai": g.grai(),
            "epc_uri": g.epc_uri(),
        }),
        DecodedEpc::Raw(e) => json!({ "bits": e.as_bytes().len() * 8 }),
    };
    if let (Value::Object(base), Value::Object(more)) = (&mut v, extra) {
        base.extend(more);
    }
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Runs `devices`.
pub fn run_devices(args: DevicesArgs) -> ExitCode {
    let list = match ports::list() {
        Ok(list) => list,
        Err(e) => {
            eprintln!("error: cannot list serial ports: {e}");
            return ExitCode::from(1);
        }
    };
    let hex = |v: Option<u16>| v.map(|v| format!("{v:04x}"));
    if args.json {
        let arr: Vec<Value> = list
            .iter()
            .map(|p| {
                json!({
                    "path": p.path,
                    "type": p.kind,
                    "vid": hex(p.vid),
                    "pid": hex(p.pid),
                    "manufacturer": p.manufacturer,
                    "product": p.product,
                    "serial_number": p.serial_number,
                })
            })
            .collect();
        println!("{}", Value::Array(arr));
    } else if list.is_empty() {
        println!("no serial ports found");
    } else {
        for p in &list {
            let usb = match (hex(p.vid), hex(p.pid)) {
                (Some(v), Some(pid)) => format!("{v}:{pid}"),
                _ => "-".into(),
            };
            let name = [p.manufacturer.as_deref(), p.product.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            println!("{:<28} {:<10} {:<10} {}", p.path, p.kind, usb, name);
        }
    }
    ExitCode::SUCCESS
}

/// Runs `listen` until Ctrl-C.
pub fn run_listen(args: ListenArgs, clock: &dyn Clock) -> ExitCode {
    if args.scanner.is_none() && args.rfid.is_none() {
        eprintln!("error: give --scanner PATH and/or --rfid PATH|llrp://HOST[:PORT]");
        return ExitCode::from(1);
    }
    // Logs (connect, unplug, errors) go to stderr; events to stdout.
    crate::log_to_stderr();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(listen(args, current_year(clock))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("error: {reason}");
            ExitCode::from(1)
        }
    }
}

async fn listen(args: ListenArgs, year: i32) -> Result<(), String> {
    let mut handles: Vec<DriverHandle> = Vec::new();
    let (scan_tx, mut scan_rx) = mpsc::channel::<ScannerEvent>(64);
    let (tag_tx, mut tag_rx) = mpsc::channel::<RfidEvent>(1024);
    if let Some(path) = &args.scanner {
        let mut config = ScannerConfig::new(path);
        config.port.baud = args.scanner_baud;
        config.framer.suffix = args.scanner_suffix;
        config.framer.prefix = args.scanner_prefix.as_ref().map(|p| p.as_bytes().to_vec());
        config.rcn_layouts = layouts_or_default(args.rcn_layouts.clone());
        handles.push(scanner_driver::spawn(config, scan_tx).map_err(|e| e.to_string())?);
    } else {
        drop(scan_tx);
    }
    if let Some(address) = &args.rfid {
        let mut config = RfidConfig::for_address(address);
        config.port.baud = args.rfid_baud;
        config.window = Duration::from_millis(args.window_ms);
        handles.push(
            rfid_driver::spawn(config, address.protocol(), tag_tx).map_err(|e| e.to_string())?,
        );
    } else {
        drop(tag_tx);
    }
    let (mut scans_open, mut tags_open) = (args.scanner.is_some(), args.rfid.is_some());
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // Runs until both channels close: after Ctrl-C the drivers are asked to
    // stop, flush what they hold and drop their senders.
    while scans_open || tags_open {
        tokio::select! {
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                handles.iter().for_each(DriverHandle::request_stop);
            }
            ev = scan_rx.recv(), if scans_open => match ev {
                Some(ev) => print_scan(&ev, args.json, year),
                None => scans_open = false,
            },
            ev = tag_rx.recv(), if tags_open => match ev {
                Some(ev) => print_tag(&ev, args.json),
                None => tags_open = false,
            },
        }
    }
    for h in handles {
        h.stop();
    }
    Ok(())
}

fn print_scan(ev: &ScannerEvent, json_out: bool, year: i32) {
    match ev {
        ScannerEvent::Scan { raw, barcode } => {
            if json_out {
                let mut m = Map::new();
                m.insert("event".into(), "scan".into());
                m.insert("raw".into(), raw.clone().into());
                m.extend(barcode_json(barcode, year));
                println!("{}", Value::Object(m));
            } else {
                let gtin = barcode
                    .gtin
                    .map_or_else(|| "-".to_owned(), |g| g.to_string());
                println!(
                    "scan  {:<16} gtin {gtin}  {}  {}",
                    barcode.symbology_name(),
                    barcode.elements,
                    raw.escape_debug()
                );
            }
        }
        ScannerEvent::ScanError { raw, error } => {
            if json_out {
                println!(
                    "{}",
                    json!({"event": "scan_error", "raw": raw, "error": error.to_string()})
                );
            } else {
                println!("scan error  {}  {error}", raw.escape_debug());
            }
        }
        // Connection changes are logged (stderr) by the driver.
        ScannerEvent::Status(_) => {}
    }
}

fn print_tag(ev: &RfidEvent, json_out: bool) {
    match ev {
        RfidEvent::Tag(report) => {
            let line = tag_json(report);
            if json_out {
                println!("{}", Value::Object(line));
            } else {
                let gtin = line.get("gtin").and_then(Value::as_str).unwrap_or("-");
                let serial = line.get("serial").and_then(Value::as_str).unwrap_or("-");
                println!(
                    "tag   {}  rssi {} dBm  x{}  gtin {gtin} serial {serial}",
                    report.epc, report.best_rssi, report.count
                );
            }
        }
        // Reader errors and connection changes are logged (stderr).
        RfidEvent::ReaderError { .. } | RfidEvent::Status(_) => {}
    }
}

/// `{"event":"tag","epc","rssi","count","scheme","gtin"?,"serial"?}`.
pub fn tag_json(report: &TagReport) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("event".into(), "tag".into());
    m.insert("epc".into(), report.epc.to_hex().into());
    m.insert("rssi".into(), report.best_rssi.into());
    m.insert("count".into(), report.count.into());
    match epc::decode(&report.epc) {
        Ok(DecodedEpc::Sgtin96(s)) => {
            m.insert("scheme".into(), "sgtin-96".into());
            if let Some(g) = s.gtin() {
                m.insert("gtin".into(), g.to_string().into());
            }
            m.insert("serial".into(), s.serial.to_string().into());
        }
        Ok(d) => {
            m.insert("scheme".into(), d.scheme().into());
        }
        Err(e) => {
            m.insert("scheme".into(), "invalid".into());
            m.insert("decode_error".into(), e.to_string().into());
        }
    }
    m
}

/// The current UTC year by `clock`, for the century of GS1 dates (GS1
/// GenSpecs §7.12).
fn current_year(clock: &dyn Clock) -> i32 {
    year_of_unix_days((clock.now_ms() / 86_400_000) as i64)
}

/// The civil year of a day count since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
fn year_of_unix_days(days: i64) -> i32 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month_is_jan_or_feb = mp >= 10;
    (yoe + era * 400 + i64::from(month_is_jan_or_feb)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_year() {
        assert_eq!(year_of_unix_days(0), 1970);
        assert_eq!(year_of_unix_days(-1), 1969);
        // 2024-12-31 is day 20088; 2025-01-01 is 20089; 2000-02-29 is 11016.
        assert_eq!(year_of_unix_days(20_088), 2024);
        assert_eq!(year_of_unix_days(20_089), 2025);
        assert_eq!(year_of_unix_days(11_016), 2000);
    }

    #[test]
    fn gs_escapes() {
        assert_eq!(unescape_gs("10A<GS>21B"), "10A\u{1d}21B");
        assert_eq!(unescape_gs("10A\\x1d21B\\x1D"), "10A\u{1d}21B\u{1d}");
    }

    #[test]
    fn tag_json_has_gtin_and_serial_for_sgtin() {
        let report = TagReport {
            epc: Epc::from_hex("3074257BF7194E4000001A85").unwrap(),
            count: 3,
            best_rssi: -48,
            first_seen: std::time::Instant::now(),
            last_seen: std::time::Instant::now(),
        };
        let v = Value::Object(tag_json(&report));
        assert_eq!(
            v,
            json!({"event": "tag", "epc": "3074257BF7194E4000001A85", "rssi": -48, "count": 3,
                   "scheme": "sgtin-96", "gtin": "80614141123458", "serial": "6789"})
        );
    }

    #[test]
    fn rcn_layout_help_default_matches_code() {
        let default = RcnLayout::default_layouts();
        assert_eq!(default.len(), 1);
        assert!(RCN_HELP.contains(&format!("Default: '{}'", default[0])));
    }
}
