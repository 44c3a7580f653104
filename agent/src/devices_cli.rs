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
use tally_hardware::epc::{self, Coding, DecodedEpc, ParsedUri};
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
    /// Decode an EPC (hex or URI) per the GS1 EPC Tag Data Standard and print JSON.
    ///
    /// INPUT is the EPC in hex (e.g. 3074257BF7194E4000001A85), a tag URI
    /// (urn:epc:tag:sgtin-96:3.0614141.812345.6789), a raw URI
    /// (urn:epc:raw:96.x…) or a pure-identity URI
    /// (urn:epc:id:sgtin:0614141.812345.6789; then --filter and --coding
    /// choose the binary encoding). SGTIN-96/198, SSCC-96, SGLN-96/195,
    /// GRAI-96 and GIAI-96/202 are decoded; other schemes are reported as
    /// "raw".
    Epc {
        /// The EPC: hex, or an urn:epc:id:, urn:epc:tag: or urn:epc:raw: URI.
        input: String,
        /// Filter value 0-7 for a pure-identity URI (default 0, "all others").
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=7))]
        filter: Option<u8>,
        /// Binary coding for a pure-identity URI: shortest (96 bits when the
        /// serial allows, else the long scheme), 96 or long.
        #[arg(long, value_enum)]
        coding: Option<CodingArg>,
    },
}

/// `--coding` of `decode epc`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CodingArg {
    /// 96 bits when the serial allows, else the long scheme.
    Shortest,
    /// The 96-bit scheme, or an error.
    #[value(name = "96")]
    Bits96,
    /// SGTIN-198, SGLN-195 or GIAI-202.
    Long,
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
        DecodeWhat::Epc {
            input,
            filter,
            coding,
        } => decode_epc_json(input.trim(), filter, coding),
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
        d.insert("title".into(), e.entry.title.clone().into());
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
            Some(Interpretation::Percent(value)) => {
                d.insert("percent".into(), value.into());
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
    let warnings: Vec<Value> = b
        .elements
        .warnings
        .iter()
        .map(|w| w.to_string().into())
        .collect();
    out.insert("warnings".into(), warnings.into());
    if let Some(link) = &b.digital_link {
        let params: Map<String, Value> = link
            .other_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        out.insert(
            "digital_link".into(),
            json!({
                "domain": link.domain,
                "path_prefix": link.path_prefix,
                "element_string": link.elements.to_string(),
                "other_params": params,
            }),
        );
    }
    out
}

fn decode_epc_json(
    input: &str,
    filter: Option<u8>,
    coding: Option<CodingArg>,
) -> Result<Value, String> {
    let for_pure_only =
        || "--filter and --coding apply to a pure-identity URI (urn:epc:id:…) only".to_string();
    let (epc, decoded) = if input.starts_with("urn:") {
        let decoded = match epc::parse_uri(input).map_err(|e| e.to_string())? {
            ParsedUri::Pure(id) => {
                let coding = match coding.unwrap_or(CodingArg::Shortest) {
                    CodingArg::Shortest => Coding::Shortest,
                    CodingArg::Bits96 => Coding::Bits96,
                    CodingArg::Long => Coding::Long,
                };
                id.to_tag(filter.unwrap_or(0), coding)
                    .map_err(|e| e.to_string())?
            }
            ParsedUri::Tag(_) if filter.is_some() || coding.is_some() => {
                return Err(for_pure_only())
            }
            ParsedUri::Tag(d) => d,
        };
        (decoded.to_epc().map_err(|e| e.to_string())?, decoded)
    } else {
        if filter.is_some() || coding.is_some() {
            return Err(for_pure_only());
        }
        let epc = Epc::from_hex(input).map_err(|e| e.to_string())?;
        let decoded = epc::decode(&epc).map_err(|e| e.to_string())?;
        (epc, decoded)
    };
    Ok(Value::Object(epc_json(&epc, &decoded)))
}

/// The JSON object for a decoded EPC: `scheme`, `epc` (hex), `bits`,
/// `tag_uri`; for GS1 schemes also `filter`, `filter_name`, `partition`,
/// `epc_uri`, `element_string`, the URI's fields (`company_prefix`,
/// `item_reference`, `serial`, …) and the GS1 key (`gtin`, `sscc`, `gln`,
/// `grai` or `giai`).
pub fn epc_json(epc: &Epc, decoded: &DecodedEpc) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("scheme".into(), decoded.scheme().into());
    m.insert("epc".into(), epc.to_hex().into());
    m.insert("bits".into(), (epc.as_bytes().len() * 8).into());
    m.insert("tag_uri".into(), decoded.tag_uri().into());
    if let Some(id) = decoded.identity() {
        m.insert("filter".into(), decoded.filter().into());
        m.insert("filter_name".into(), decoded.filter_name().into());
        m.insert("partition".into(), id.partition().into());
        m.insert("epc_uri".into(), id.uri().into());
        m.insert("element_string".into(), id.element_string().into());
        for (name, value) in id.fields() {
            m.insert(name.into(), value.into());
        }
        if let Some((name, value)) = id.key() {
            m.insert(name.into(), value.into());
        }
    }
    m
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

/// `{"event":"tag","epc","rssi","count","scheme","gtin"?,"serial"?}`: `gtin`
/// and `serial` for SGTIN-96 and SGTIN-198 tags.
pub fn tag_json(report: &TagReport) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("event".into(), "tag".into());
    m.insert("epc".into(), report.epc.to_hex().into());
    m.insert("rssi".into(), report.best_rssi.into());
    m.insert("count".into(), report.count.into());
    match epc::decode(&report.epc) {
        Ok(d) => {
            m.insert("scheme".into(), d.scheme().into());
            if let Some(g) = d.gtin() {
                m.insert("gtin".into(), g.to_string().into());
            }
            if let Some(serial) = d.sgtin_serial() {
                m.insert("serial".into(), serial.into());
            }
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
