//! What an element's value means: GS1 dates ([`YyMmDd`], with the
//! century rule), measures and amounts with an implied decimal point
//! ([`decimal`]), as an [`Interpretation`] for display.

use super::ai::Meaning;
use super::element::Element;

/// A GS1 date field, YYMMDD, DD = 0 meaning "no day".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YyMmDd {
    /// Two-digit year.
    pub yy: u8,
    /// Month 1..=12.
    pub mm: u8,
    /// Day 1..=31, or 0 when not given.
    pub dd: u8,
}

impl YyMmDd {
    /// Parses six digits; `None` if not a plausible date.
    pub fn parse(s: &str, day_zero: bool) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| (b[i] - b'0') * 10 + (b[i + 1] - b'0');
        let (yy, mm, dd) = (two(0), two(2), two(4));
        // February may have 29 days: the century is not known here.
        let max_day = match mm {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 => 29,
            _ => return None,
        };
        if dd > max_day || (dd == 0 && !day_zero) {
            return None;
        }
        Some(YyMmDd { yy, mm, dd })
    }

    /// The full year per GS1 General Specifications §7.12: relative to
    /// `current_year`, a YY more than 50 years ahead is in the previous
    /// century, one 50 or more years behind is in the next century.
    pub fn year(self, current_year: i32) -> i32 {
        let century = current_year.div_euclid(100) * 100;
        let diff = i32::from(self.yy) - current_year.rem_euclid(100);
        if diff > 50 {
            century - 100 + i32::from(self.yy)
        } else if diff <= -50 {
            century + 100 + i32::from(self.yy)
        } else {
            century + i32::from(self.yy)
        }
    }

    /// ISO 8601: `YYYY-MM-DD`, or `YYYY-MM` when no day is given.
    pub fn to_iso(self, current_year: i32) -> String {
        let year = self.year(current_year);
        if self.dd == 0 {
            format!("{year:04}-{:02}", self.mm)
        } else {
            format!("{year:04}-{:02}-{:02}", self.mm, self.dd)
        }
    }
}

/// The meaning of one element, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpretation {
    /// A date, ISO 8601.
    Date(String),
    /// A measure, e.g. net weight 1.234 kg.
    Measure {
        /// What is measured.
        quantity: &'static str,
        /// Unit.
        unit: &'static str,
        /// Decimal value as text, e.g. `"1.234"`.
        value: String,
    },
    /// An amount of money, decimal text, with an ISO 4217 numeric currency
    /// code when the AI carries one.
    Amount {
        /// Decimal value as text.
        value: String,
        /// ISO 4217 numeric code.
        currency: Option<String>,
    },
}

impl Element {
    /// What the value means, if more than its text. Dates need the current
    /// year to fix the century (§7.12).
    pub fn interpret(&self, current_year: i32) -> Option<Interpretation> {
        let decimals = || usize::from(self.ai.as_bytes()[self.ai.len() - 1] - b'0');
        match self.spec.meaning {
            Meaning::Plain => None,
            Meaning::Date { day_zero } => YyMmDd::parse(&self.value, day_zero)
                .map(|d| Interpretation::Date(d.to_iso(current_year))),
            Meaning::Measure { quantity, unit } => Some(Interpretation::Measure {
                quantity,
                unit,
                value: decimal(&self.value, decimals()),
            }),
            Meaning::Amount => Some(Interpretation::Amount {
                value: decimal(&self.value, decimals()),
                currency: None,
            }),
            Meaning::CurrencyAmount => Some(Interpretation::Amount {
                value: decimal(&self.value[3..], decimals()),
                currency: Some(self.value[..3].to_owned()),
            }),
        }
    }
}

/// Places an implied decimal point `decimals` digits from the right of a
/// digit string, dropping redundant leading zeros: `("001234", 3)` →
/// `"1.234"`.
pub fn decimal(digits: &str, decimals: usize) -> String {
    let padded = if digits.len() <= decimals {
        format!("{}{digits}", "0".repeat(decimals + 1 - digits.len()))
    } else {
        digits.to_owned()
    };
    let (int, frac) = padded.split_at(padded.len() - decimals);
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}
