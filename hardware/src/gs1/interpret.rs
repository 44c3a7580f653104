//! What an element's value means: GS1 dates ([`YyMmDd`], with the
//! century rule), measures and amounts with an implied decimal point
//! ([`decimal`]), as an [`Interpretation`] for display.

use super::element::Element;
use super::lint::Linter;

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
        // February 29 when YY is a multiple of 4: in the century the §7.12
        // rule picks (2000 is a leap year), as GS1's reference linter has it.
        let max_day = match mm {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if yy % 4 == 0 => 29,
            2 => 28,
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
        /// What is measured, from the AI's title: `"net_weight"`.
        quantity: String,
        /// Unit, from the AI's title: `"kg"`, `"m2"`.
        unit: String,
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
    /// A percentage (AI 394n), decimal text.
    Percent(String),
}

impl Element {
    /// What the value means, if more than its text. Dates need the current
    /// year to fix the century (§7.12).
    ///
    /// Dates are recognised by their dictionary linters (`yymmd0`,
    /// `yymmdd`, `yyyymmdd`); measures and amounts by the GenSpecs AI
    /// series (§3.6.x: 31nn–36nn trade and logistic measures, 390n–395n
    /// amounts and prices), whose last digit is the implied decimal point
    /// and whose quantity and unit are the dictionary's title.
    pub fn interpret(&self, current_year: i32) -> Option<Interpretation> {
        let decimals = || usize::from(self.ai.as_bytes()[self.ai.len() - 1] - b'0');
        if let [only] = self.entry.components.as_slice() {
            for linter in &only.linters {
                match linter {
                    Linter::YyMmD0 | Linter::YyMmDd => {
                        return YyMmDd::parse(&self.value, *linter == Linter::YyMmD0)
                            .map(|d| Interpretation::Date(d.to_iso(current_year)));
                    }
                    Linter::YyyyMmDd | Linter::YyyyMmD0 if self.value.len() == 8 => {
                        let (y, m, d) = (&self.value[..4], &self.value[4..6], &self.value[6..]);
                        return Some(Interpretation::Date(if d == "00" {
                            format!("{y}-{m}")
                        } else {
                            format!("{y}-{m}-{d}")
                        }));
                    }
                    _ => {}
                }
            }
        }
        if self.ai.len() != 4 {
            return None;
        }
        match &self.ai[..3] {
            series if ("310".."370").contains(&series) => {
                let (quantity, unit) = measure_of_title(&self.entry.title);
                Some(Interpretation::Measure {
                    quantity,
                    unit,
                    value: decimal(&self.value, decimals()),
                })
            }
            "390" | "392" | "395" => Some(Interpretation::Amount {
                value: decimal(&self.value, decimals()),
                currency: None,
            }),
            "391" | "393" => Some(Interpretation::Amount {
                value: decimal(self.value.get(3..)?, decimals()),
                currency: Some(self.value.get(..3)?.to_owned()),
            }),
            "394" => Some(Interpretation::Percent(decimal(&self.value, decimals()))),
            _ => None,
        }
    }
}

/// `"NET WEIGHT (kg)"` → (`"net_weight"`, `"kg"`); `"AREA (m²)"` →
/// (`"area"`, `"m2"`); `"VOLUME (gal (US)), log"` → (`"volume"`,
/// `"gal (US)"`); a title without a unit is all quantity.
fn measure_of_title(title: &str) -> (String, String) {
    let plain = |s: &str| s.replace('²', "2").replace('³', "3");
    let (quantity, unit) = match (title.find('('), title.rfind(')')) {
        (Some(open), Some(close)) if open < close => (&title[..open], &title[open + 1..close]),
        _ => (title, ""),
    };
    let quantity = plain(quantity.trim())
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_");
    (quantity, plain(unit.trim()))
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
