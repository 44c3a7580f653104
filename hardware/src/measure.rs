//! What a decoded barcode says about price or weight, and what a unit
//! then costs: one pure definition shared by the cashier terminal
//! (`tally-pos`) and the agent's self-checkout scanner mode
//! (`tally_agent::devices`).
//!
//! GS1 AIs 392n/393n carry the price, 310n the net weight; an in-store
//! (restricted-circulation) EAN-13 carries either, per its layout
//! ([`crate::rcn`]). The decoders report these as decimal text;
//! money is integer minor units (2 decimals), weight integer grams.

use crate::barcode::Barcode;
use crate::gs1::Interpretation;
use crate::rcn::ValueKind;

/// Decimals of a price in minor units (cents).
pub const PRICE_DECIMALS: u32 = 2;

/// An embedded measure of a variable-measure item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The unit's price in minor units (price-embedded EAN-13, AI 392n/393n).
    Price(i64),
    /// The weight in grams (weight-embedded EAN-13, AI 310n); the catalog
    /// price of such an item is per kilogram.
    Grams(i64),
}

/// An embedded price or weight that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("embedded {what} {value:?} is not usable")]
pub struct MeasureError {
    /// `price` or `weight`.
    pub what: &'static str,
    /// The decoded text.
    pub value: String,
}

/// Parses decimal text as the hardware decoders report it (`"12.34"`,
/// `"0.750"`) into an integer count of `10^-decimals` units, rounding half
/// up beyond `decimals`: `("12.34", 2)` → 1234, `("0.7505", 3)` → 751.
pub fn parse_decimal(text: &str, decimals: u32) -> Option<i64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10_i64.checked_pow(decimals)?;
    let mut value = int.parse::<i64>().ok()?.checked_mul(scale)?;
    let kept = frac.len().min(decimals as usize);
    let mut part: i64 = 0;
    for b in frac[..kept].bytes() {
        part = part * 10 + i64::from(b - b'0');
    }
    for _ in kept..decimals as usize {
        part *= 10;
    }
    value = value.checked_add(part)?;
    if frac
        .as_bytes()
        .get(decimals as usize)
        .is_some_and(|&b| b >= b'5')
    {
        value = value.checked_add(1)?;
    }
    Some(value)
}

/// The price or weight a decoded barcode embeds, if any. An AI 392n/393n
/// price wins over everything; a 310n weight counts only when nothing
/// else was found.
pub fn measure_of(b: &Barcode) -> Result<Option<Measure>, MeasureError> {
    let bad = |what, value: &str| MeasureError {
        what,
        value: value.to_string(),
    };
    let price =
        |value: &str| parse_decimal(value, PRICE_DECIMALS).ok_or_else(|| bad("price", value));
    let grams = |value: &str| {
        parse_decimal(value, 3)
            .filter(|&g| g > 0)
            .ok_or_else(|| bad("weight", value))
    };
    let mut measure = None;
    if let Some(vm) = &b.variable_measure {
        measure = Some(match vm.kind {
            ValueKind::Price => Measure::Price(price(&vm.value)?),
            ValueKind::Weight => Measure::Grams(grams(&vm.value)?),
        });
    }
    for e in &b.elements.elements {
        // The century of dates does not matter here; only amounts and
        // measures are read.
        match (e.ai.get(..3), e.interpret(2000)) {
            (Some("392" | "393"), Some(Interpretation::Amount { value, .. })) => {
                measure = Some(Measure::Price(price(&value)?));
            }
            (Some("310"), Some(Interpretation::Measure { value, .. })) if measure.is_none() => {
                measure = Some(Measure::Grams(grams(&value)?));
            }
            _ => {}
        }
    }
    Ok(measure)
}

/// What one unit costs: the embedded price; for a weighed item the
/// catalog's price per kg × the weight (rounded half up; `None` without a
/// catalog price or on overflow); otherwise the catalog price.
pub fn unit_price(measure: Option<Measure>, catalog_price: Option<i64>) -> Option<i64> {
    match measure {
        Some(Measure::Price(p)) => Some(p),
        Some(Measure::Grams(g)) => catalog_price.and_then(|per_kg| {
            let v = i128::from(per_kg) * i128::from(g);
            i64::try_from((v + 500) / 1000).ok()
        }),
        None => catalog_price,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_half_up() {
        assert_eq!(parse_decimal("12.34", 2), Some(1234));
        assert_eq!(parse_decimal("12", 2), Some(1200));
        assert_eq!(parse_decimal("0.750", 3), Some(750));
        assert_eq!(parse_decimal("0.7504", 3), Some(750));
        assert_eq!(parse_decimal("0.7505", 3), Some(751));
        assert_eq!(parse_decimal("1.004", 2), Some(100));
        assert_eq!(parse_decimal("1.005", 2), Some(101));
        assert_eq!(parse_decimal("1.5", 3), Some(1500));
        assert_eq!(parse_decimal("", 2), None);
        assert_eq!(parse_decimal("1.x", 2), None);
        assert_eq!(parse_decimal("-1", 2), None);
        assert_eq!(parse_decimal("99999999999999999999", 2), None);
    }

    #[test]
    fn unit_prices() {
        assert_eq!(unit_price(Some(Measure::Price(450)), Some(999)), Some(450));
        // 750 g at 12.99/kg = 9.7425 → 9.74
        assert_eq!(unit_price(Some(Measure::Grams(750)), Some(1299)), Some(974));
        assert_eq!(unit_price(Some(Measure::Grams(750)), None), None);
        assert_eq!(unit_price(None, Some(129)), Some(129));
        assert_eq!(
            unit_price(Some(Measure::Grams(i64::MAX)), Some(i64::MAX)),
            None
        );
    }
}
