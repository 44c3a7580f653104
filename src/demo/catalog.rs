//! The demo's catalog: items under GS1's example company prefix 0614141,
//! what a scanner sends for each (EAN-13, GS1-128 with a lot, a price or a
//! weight), and their SGTIN-96 RFID tags (EPC TDS §14.5.1, encoded with
//! `tally_hardware::epc`).

use anyhow::{anyhow, Context};
use rand::Rng;
use tally_hardware::epc::Sgtin96;
use tally_sync::{Epc, Gtin};

/// Digits of the company prefix the GTINs below use.
pub const COMPANY_PREFIX_DIGITS: u32 = 7;

/// How an item is scanned at the till.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// EAN-13 (`]E0`) or, one time in three, GS1-128 with a lot (`]C1`).
    Plain,
    /// GS1-128 with an embedded price (AI 3922): a promotion label.
    Promo {
        /// The promotion price, minor units.
        price_minor: i64,
    },
    /// GS1-128 with the net weight in kg (AI 3103): weighed goods, priced
    /// per kg in the catalog.
    Weighed,
}

/// One catalog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// GTIN-14.
    pub gtin: Gtin,
    /// Name.
    pub name: &'static str,
    /// Catalog price (per kg for weighed items), minor units.
    pub price_minor: i64,
    /// How it is scanned.
    pub scan: Scan,
    /// Relative share of scans at the tills.
    pub popularity: u32,
    /// Units per store in the morning delivery (inclusive range); `None`:
    /// only the first store gets it (2 units), `Some((0, 0))`: never
    /// delivered (a display model).
    pub delivery: Option<(u64, u64)>,
}

impl Item {
    /// The short form for logs, e.g. `Oat milk 1 l`.
    pub fn label(&self) -> &'static str {
        self.name
    }
}

fn gtin(body13: u64) -> anyhow::Result<Gtin> {
    Gtin::from_body(body13).ok_or_else(|| anyhow!("bad GTIN body {body13}"))
}

/// The items.
pub fn items() -> anyhow::Result<Vec<Item>> {
    let item = |body, name, price_minor, scan, popularity, delivery| -> anyhow::Result<Item> {
        Ok(Item {
            gtin: gtin(body)?,
            name,
            price_minor,
            scan,
            popularity,
            delivery,
        })
    };
    Ok(vec![
        item(
            61414100001,
            "Espresso beans 1 kg",
            1490,
            Scan::Plain,
            3,
            Some((5, 8)),
        )?,
        item(
            61414100002,
            "Oat milk 1 l",
            229,
            Scan::Plain,
            5,
            Some((6, 10)),
        )?,
        item(
            61414100003,
            "Notebook A5",
            399,
            Scan::Plain,
            3,
            Some((4, 8)),
        )?,
        item(
            61414100004,
            "Wireless earbuds",
            4999,
            Scan::Plain,
            1,
            Some((2, 4)),
        )?,
        item(
            61414100005,
            "T-shirt, M",
            1999,
            Scan::Promo { price_minor: 1499 },
            2,
            Some((4, 7)),
        )?,
        item(
            61414100006,
            "Running socks",
            899,
            Scan::Plain,
            3,
            Some((5, 8)),
        )?,
        // Indicator digit 9: a variable-measure trade item.
        item(
            9_061414100001,
            "Cheddar, per kg",
            1899,
            Scan::Weighed,
            2,
            Some((3, 6)),
        )?,
        item(61414100007, "Limited sneakers", 12900, Scan::Plain, 1, None)?,
        item(
            61414100008,
            "Espresso machine (display model)",
            39900,
            Scan::Plain,
            0,
            Some((0, 0)),
        )?,
    ])
}

/// The items the counting store counts by RFID (`script::counting_store`),
/// as indexes into `items`: wireless earbuds (small and dear: one pair is
/// stolen) and T-shirts (apparel, what retailers tag first: one is sold by
/// its tag and stays on the shelf).
pub fn counted(items: &[Item]) -> Vec<usize> {
    [61414100004, 61414100005]
        .iter()
        .filter_map(|&body| {
            let g = Gtin::from_body(body)?;
            items.iter().position(|i| i.gtin == g)
        })
        .collect()
}

/// What the scanner sends for one unit of `item` (without the CR LF).
pub fn scan_code(item: &Item, rng: &mut impl Rng) -> String {
    let g = item.gtin.to_string();
    match item.scan {
        Scan::Plain if g.starts_with('0') && rng.gen_ratio(2, 3) => format!("]E0{}", &g[1..]),
        Scan::Plain => format!("]C101{g}10L{:04}", rng.gen_range(1..10_000)),
        Scan::Promo { price_minor } => format!("]C101{g}3922{price_minor}"),
        Scan::Weighed => format!("]C101{g}3103{:06}", rng.gen_range(150..=1200)),
    }
}

/// The SGTIN-96 EPC of unit `serial` of `item` (filter 1: point-of-sale item).
pub fn epc(item: &Item, serial: u64) -> anyhow::Result<Epc> {
    let s = Sgtin96::from_gtin(1, item.gtin, COMPANY_PREFIX_DIGITS, serial)
        .with_context(|| format!("SGTIN-96 of {}", item.gtin))?;
    Epc::from_bytes(&s.encode()).map_err(|e| anyhow!("EPC of {}: {e}", item.gtin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tally_hardware::barcode;
    use tally_hardware::epc::{decode, DecodedEpc};
    use tally_hardware::rcn::RcnLayout;

    #[test]
    fn every_scan_code_decodes_to_its_item_and_every_tag_to_its_gtin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let items = items().unwrap();
        for item in &items {
            for _ in 0..20 {
                let code = scan_code(item, &mut rng);
                let b = barcode::decode(&code, &RcnLayout::default_layouts()).unwrap();
                assert_eq!(b.gtin, Some(item.gtin), "{code}");
            }
            let e = epc(item, 77).unwrap();
            let DecodedEpc::Sgtin96(s) = decode(&e).unwrap() else {
                panic!("not an SGTIN-96")
            };
            assert_eq!(s.gtin(), Some(item.gtin));
            assert_eq!(s.serial, 77);
        }
        assert_eq!(
            items
                .iter()
                .map(|i| i.gtin)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            items.len()
        );
    }
}
