//! The self-checkout: a scanner wired to the agent sells one unit per
//! code. What a decoded scan sells is decided purely ([`scan_item`],
//! [`unit_price`]); the scanner's task turns each scan into a one-line
//! sale through the committer and counts how it ended
//! (`tally_agent_device_scans_total{outcome}`).

use tally_hardware::barcode::Barcode;
use tally_hardware::driver::scanner::ScannerEvent;
use tally_hardware::driver::DriverHandle;
use tally_sync::command::{Command, LineIn, Outcome};
use tally_sync::{EventId, Gtin};
use tokio::sync::{mpsc, watch};

use super::wiring::{drive, status, submit};
use super::DeviceContext;
use tally_hardware::measure::{self, measure_of, Measure, MeasureError};

/// What a scan sells: one unit of `gtin`, maybe with an embedded measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanItem {
    /// The item (the catalogue GTIN for in-store weighed goods).
    pub gtin: Gtin,
    /// Embedded price or weight.
    pub measure: Option<Measure>,
}

/// Why a decoded scan sells nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanSkip {
    /// The code names no item (a coupon, a loyalty card, an SSCC).
    #[error("the code ({0}) carries no GTIN")]
    NoGtin(String),
    /// An embedded price or weight that cannot be used.
    #[error("embedded {what} {value:?} is not usable")]
    Measure {
        /// `price` or `weight`.
        what: &'static str,
        /// The decoded text.
        value: String,
    },
    /// A weighed item whose price per kilogram the catalog does not know.
    #[error("item {0} is sold by weight but has no catalog price per kg")]
    NoPricePerKg(Gtin),
}

/// What one decoded scan sells (pure). GS1 AIs 392n/393n give the price,
/// 310n the net weight; an in-store (RCN) code gives either.
pub fn scan_item(b: &Barcode) -> Result<ScanItem, ScanSkip> {
    let Some(gtin) = b.gtin else {
        return Err(ScanSkip::NoGtin(b.symbology_name()));
    };
    let measure =
        measure_of(b).map_err(|MeasureError { what, value }| ScanSkip::Measure { what, value })?;
    Ok(ScanItem { gtin, measure })
}

/// The unit price a scanned item sells at: the embedded price, the
/// weight × the catalog price per kg (rounded half up), or `None` for
/// "the catalog price" (the core refuses an item the catalog lacks).
pub fn unit_price(item: &ScanItem, catalog_price: Option<i64>) -> Result<Option<i64>, ScanSkip> {
    match item.measure {
        None => Ok(None),
        Some(Measure::Price(p)) => Ok(Some(p)),
        Some(Measure::Grams(g)) => {
            if catalog_price.is_none() {
                return Err(ScanSkip::NoPricePerKg(item.gtin));
            }
            measure::unit_price(item.measure, catalog_price)
                .map(Some)
                .ok_or_else(|| ScanSkip::Measure {
                    what: "weight",
                    value: g.to_string(),
                })
        }
    }
}

/// Sells one unit per scan until the driver has stopped.
pub(super) async fn task(
    ctx: DeviceContext,
    handle: DriverHandle,
    rx: mpsc::Receiver<ScannerEvent>,
    stop: watch::Receiver<bool>,
) {
    drive(handle, rx, stop, |ev| on_scan(&ctx, ev)).await;
    tracing::info!("Scanner task stopped.");
}

async fn on_scan(ctx: &DeviceContext, ev: ScannerEvent) {
    let store = ctx.db.who().replica.clone();
    let (raw, barcode) = match ev {
        ScannerEvent::Status(s) => return status(&ctx.metrics, "scanner", &s),
        ScannerEvent::ScanError { raw, error } => {
            ctx.metrics.scan("undecodable");
            tracing::warn!(%store, %raw, %error, "Scan does not decode; nothing sold.");
            return;
        }
        ScannerEvent::Scan { raw, barcode } => (raw, barcode),
    };
    let item = match scan_item(&barcode) {
        Ok(i) => i,
        Err(skip) => {
            ctx.metrics.scan("not_an_item");
            tracing::warn!(%store, %raw, reason = %skip, "Scan names no item to sell.");
            return;
        }
    };
    let catalog = if matches!(item.measure, Some(Measure::Grams(_))) {
        let gtin = item.gtin;
        match ctx.db.read_blocking(move |db| db.catalog_item(gtin)).await {
            Ok(c) => c.map(|c| c.price_minor),
            Err(error) => {
                ctx.metrics.scan("failed");
                tracing::error!(%store, %raw, %error, "Reading the catalog failed; nothing sold.");
                return;
            }
        }
    } else {
        None
    };
    let price = match unit_price(&item, catalog) {
        Ok(p) => p,
        Err(skip) => {
            ctx.metrics.scan("refused");
            tracing::warn!(%store, %raw, reason = %skip, "Scan refused; nothing sold.");
            return;
        }
    };
    let cmd = Command::Sale {
        id: Some(EventId::v7(ctx.clock.now_ms(), rand::random())),
        lines: vec![LineIn {
            gtin: item.gtin,
            qty: 1,
            unit_price_minor: price,
            epc: None,
            price_from_label: price.is_some(),
        }],
        tenders: Vec::new(),
        // Sold by the store's own scanner, not at a till.
        staff: tally_sync::Staff {
            till: Some("device:scanner".into()),
            ..Default::default()
        },
    };
    let ran = match submit(&ctx.committer, cmd.clone()).await {
        Ok(outcome) => ctx.rights.resolve(cmd, outcome).await,
        Err(e) => Err(e),
    };
    match ran.map(|r| (r.outcome, r.hub_reachable)) {
        Ok((Outcome::Recorded { event, .. }, _)) => {
            ctx.metrics.scan("sold");
            tracing::info!(%store, %raw, gtin = %item.gtin, sale = %event.id, total_minor = event.total_minor(), "Scan sold one unit.");
        }
        Ok((Outcome::Refused { refusal, .. }, hub_reachable)) => {
            ctx.metrics.scan("refused");
            let why = ctx.metrics.shortage(&refusal, hub_reachable);
            if let Some(why) = why {
                // Each scan is a sale of its own, never retried: at once.
                crate::rights::count_lost(&ctx.committer, why, 1, None).await;
            }
            let why = why.map_or("", |s| s.name());
            tracing::warn!(%store, %raw, gtin = %item.gtin, reason = %refusal, shortage = why, "Scan refused; nothing sold.");
        }
        Err(error) => {
            ctx.metrics.scan("failed");
            tracing::error!(%store, %raw, %error, "Scan not recorded.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_hardware::barcode;
    use tally_hardware::rcn::RcnLayout;

    fn decode(raw: &str) -> Barcode {
        barcode::decode(raw, &RcnLayout::default_layouts()).unwrap()
    }

    fn gtin(s: &str) -> Gtin {
        Gtin::parse(s).unwrap()
    }

    #[test]
    fn scans_give_the_item_and_any_embedded_measure() {
        for (raw, item, measure) in [
            ("]E04006381333931", "04006381333931", None),
            ("4006381333931", "04006381333931", None),
            ("]C1010400638133393110LOT7", "04006381333931", None),
            (
                "]C10104006381333931\u{1d}3922450",
                "04006381333931",
                Some(Measure::Price(450)),
            ),
            (
                "(01)90614141000015(3103)000750",
                "90614141000015",
                Some(Measure::Grams(750)),
            ),
            // In-store price-embedded EAN-13 (GS1 GenSpecs §2.1.12): the
            // catalogue GTIN with the price zeroed, price 12.34.
            (
                "2112345012346",
                "02112345000008",
                Some(Measure::Price(1234)),
            ),
        ] {
            let s = scan_item(&decode(raw)).unwrap();
            assert_eq!(s.gtin, gtin(item), "{raw}");
            assert_eq!(s.measure, measure, "{raw}");
        }
        assert!(matches!(
            scan_item(&decode("LOYALTY-123")),
            Err(ScanSkip::NoGtin(_))
        ));
    }

    #[test]
    fn unit_prices_follow_the_measure() {
        let g = gtin("90614141000015");
        let item = |measure| ScanItem { gtin: g, measure };
        assert_eq!(unit_price(&item(None), Some(999)), Ok(None));
        assert_eq!(
            unit_price(&item(Some(Measure::Price(450))), None),
            Ok(Some(450))
        );
        // 0.750 kg at 12.99/kg = 9.7425 → 9.74.
        assert_eq!(
            unit_price(&item(Some(Measure::Grams(750))), Some(1299)),
            Ok(Some(974))
        );
        // 0.010 kg at 0.50/kg = 0.005 → rounds half up to 0.01.
        assert_eq!(
            unit_price(&item(Some(Measure::Grams(10))), Some(50)),
            Ok(Some(1))
        );
        assert_eq!(
            unit_price(&item(Some(Measure::Grams(750))), None),
            Err(ScanSkip::NoPricePerKg(g))
        );
    }
}
