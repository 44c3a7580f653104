//! GS1 element strings: Application Identifiers (AIs) and their data, as
//! carried by GS1-128, GS1 DataMatrix, GS1 QR and GS1 DataBar.
//!
//! Pure. [`parse`] reads the transmitted form (FNC1 in first position implied
//! by the symbology identifier, later FNC1 separators as ASCII GS, 0x1D);
//! [`parse_human`] reads the human-readable form with parentheses,
//! `(01)04006381333931(17)251231`. Both check every element against the
//! [`AI_TABLE`]: length (fixed or variable, GS1 General Specifications §3.2
//! and the GS1 Barcode Syntax Dictionary), character set (numeric or
//! CSET 82, §7.11), check digits of keys (§7.9.1) and dates (§7.12). A bad
//! check digit, a truncated fixed-length AI, an over-long variable field and
//! an unknown AI are each a distinct [`Gs1Error`].
//!
//! Splitting follows §7.8.5: the data of a fixed-length AI is exactly its
//! length; a variable-length field runs to the next GS or to the end. A GS
//! after a fixed-length field is accepted (encoders may add one) though only
//! AIs not of "pre-defined length" need it.

use std::fmt;

use tally_sync::gtin::gs1_check_digit;
use tally_sync::Gtin;

/// ASCII GS (group separator): FNC1 as transmitted by scanners.
pub const GS: char = '\u{1d}';

/// The character set of an AI's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Digits only.
    Numeric,
    /// GS1 AI encodable character set 82 (GS1 General Specifications §7.11,
    /// Figure 7.11-1).
    Cset82,
}

/// What an AI's value means, beyond its raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Just text or a number.
    Plain,
    /// A date YYMMDD; `day_zero` when DD may be 00 (no day given).
    Date {
        /// Whether DD = 00 is allowed.
        day_zero: bool,
    },
    /// A measure with an implied decimal point given by the AI's last digit.
    Measure {
        /// What is measured, e.g. `"net_weight"`.
        quantity: &'static str,
        /// The unit, e.g. `"kg"`.
        unit: &'static str,
    },
    /// An amount with an implied decimal point given by the AI's last digit.
    Amount,
    /// An ISO 4217 numeric currency code (3 digits) then an amount with an
    /// implied decimal point given by the AI's last digit.
    CurrencyAmount,
}

/// One entry of the AI table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiSpec {
    /// The AI, or its first three digits when `n_max` is set.
    pub prefix: &'static str,
    /// For AIs like 310n: the largest allowed last digit `n`.
    pub n_max: Option<u8>,
    /// The title from the GS1 Barcode Syntax Dictionary.
    pub title: &'static str,
    /// Character set of the data.
    pub charset: Charset,
    /// Shortest data length.
    pub min: usize,
    /// Longest data length (equal to `min` for fixed-length AIs).
    pub max: usize,
    /// Pre-defined length (§7.8.5, Figure 7.8.5-2): no FNC1 needed after it.
    pub predefined: bool,
    /// The last digit is a GS1 mod-10 check digit (§7.9.1).
    pub check_digit: bool,
    /// How to interpret the value.
    pub meaning: Meaning,
}

impl AiSpec {
    /// Whether the data has a fixed length.
    pub fn is_fixed(&self) -> bool {
        self.min == self.max
    }

    /// The length of the AI itself.
    pub fn ai_len(&self) -> usize {
        self.prefix.len() + usize::from(self.n_max.is_some())
    }

    fn matches(&self, ai: &str) -> bool {
        match self.n_max {
            None => ai == self.prefix,
            Some(max) => {
                ai.len() == self.prefix.len() + 1
                    && ai.starts_with(self.prefix)
                    && ai.as_bytes()[self.prefix.len()].wrapping_sub(b'0') <= max
            }
        }
    }
}

// One argument per column of the table below keeps each row on one line.
#[allow(clippy::too_many_arguments)]
const fn spec(
    prefix: &'static str,
    n_max: Option<u8>,
    title: &'static str,
    charset: Charset,
    min: usize,
    max: usize,
    predefined: bool,
    check_digit: bool,
    meaning: Meaning,
) -> AiSpec {
    AiSpec {
        prefix,
        n_max,
        title,
        charset,
        min,
        max,
        predefined,
        check_digit,
        meaning,
    }
}

use Charset::{Cset82 as X, Numeric as N};

const PLAIN: Meaning = Meaning::Plain;
const DATE: Meaning = Meaning::Date { day_zero: true };

const fn measure(quantity: &'static str, unit: &'static str) -> Meaning {
    Meaning::Measure { quantity, unit }
}

/// The AIs Tally understands, with formats from the GS1 General
/// Specifications §3.2 (Figure 3.2-1) as restated in the GS1 Barcode Syntax
/// Dictionary. Columns: AI, n range, title, charset, min, max, pre-defined
/// length, check digit, meaning.
pub static AI_TABLE: &[AiSpec] = &[
    spec("00", None, "SSCC", N, 18, 18, true, true, PLAIN),
    spec("01", None, "GTIN", N, 14, 14, true, true, PLAIN),
    spec("02", None, "CONTENT", N, 14, 14, true, true, PLAIN),
    spec("10", None, "BATCH/LOT", X, 1, 20, false, false, PLAIN),
    spec("11", None, "PROD DATE", N, 6, 6, true, false, DATE),
    spec("12", None, "DUE DATE", N, 6, 6, true, false, DATE),
    spec("13", None, "PACK DATE", N, 6, 6, true, false, DATE),
    spec(
        "15",
        None,
        "BEST BEFORE or BEST BY",
        N,
        6,
        6,
        true,
        false,
        DATE,
    ),
    spec("16", None, "SELL BY", N, 6, 6, true, false, DATE),
    spec("17", None, "USE BY OR EXPIRY", N, 6, 6, true, false, DATE),
    spec("20", None, "VARIANT", N, 2, 2, true, false, PLAIN),
    spec("21", None, "SERIAL", X, 1, 20, false, false, PLAIN),
    spec("22", None, "CPV", X, 1, 20, false, false, PLAIN),
    spec("240", None, "ADDITIONAL ID", X, 1, 30, false, false, PLAIN),
    spec("241", None, "CUST. PART No.", X, 1, 30, false, false, PLAIN),
    spec(
        "250",
        None,
        "SECONDARY SERIAL",
        X,
        1,
        30,
        false,
        false,
        PLAIN,
    ),
    spec("251", None, "REF. TO SOURCE", X, 1, 30, false, false, PLAIN),
    spec("30", None, "VAR. COUNT", N, 1, 8, false, false, PLAIN),
    spec(
        "310",
        Some(5),
        "NET WEIGHT (kg)",
        N,
        6,
        6,
        true,
        false,
        measure("net_weight", "kg"),
    ),
    spec(
        "311",
        Some(5),
        "LENGTH (m)",
        N,
        6,
        6,
        true,
        false,
        measure("length", "m"),
    ),
    spec(
        "312",
        Some(5),
        "WIDTH (m)",
        N,
        6,
        6,
        true,
        false,
        measure("width", "m"),
    ),
    spec(
        "313",
        Some(5),
        "HEIGHT (m)",
        N,
        6,
        6,
        true,
        false,
        measure("height", "m"),
    ),
    spec(
        "314",
        Some(5),
        "AREA (m²)",
        N,
        6,
        6,
        true,
        false,
        measure("area", "m2"),
    ),
    spec(
        "315",
        Some(5),
        "NET VOLUME (l)",
        N,
        6,
        6,
        true,
        false,
        measure("net_volume", "l"),
    ),
    spec(
        "316",
        Some(5),
        "NET VOLUME (m³)",
        N,
        6,
        6,
        true,
        false,
        measure("net_volume", "m3"),
    ),
    spec(
        "320",
        Some(5),
        "NET WEIGHT (lb)",
        N,
        6,
        6,
        true,
        false,
        measure("net_weight", "lb"),
    ),
    spec(
        "330",
        Some(5),
        "GROSS WEIGHT (kg)",
        N,
        6,
        6,
        true,
        false,
        measure("gross_weight", "kg"),
    ),
    spec("37", None, "COUNT", N, 1, 8, false, false, PLAIN),
    spec(
        "390",
        Some(9),
        "AMOUNT",
        N,
        1,
        15,
        false,
        false,
        Meaning::Amount,
    ),
    spec(
        "391",
        Some(9),
        "AMOUNT",
        N,
        4,
        18,
        false,
        false,
        Meaning::CurrencyAmount,
    ),
    spec(
        "392",
        Some(9),
        "PRICE",
        N,
        1,
        15,
        false,
        false,
        Meaning::Amount,
    ),
    spec(
        "393",
        Some(9),
        "PRICE",
        N,
        4,
        18,
        false,
        false,
        Meaning::CurrencyAmount,
    ),
    spec("400", None, "ORDER NUMBER", X, 1, 30, false, false, PLAIN),
    spec("410", None, "SHIP TO LOC", N, 13, 13, true, true, PLAIN),
    spec("411", None, "BILL TO", N, 13, 13, true, true, PLAIN),
    spec("412", None, "PURCHASE FROM", N, 13, 13, true, true, PLAIN),
    spec("413", None, "SHIP FOR LOC", N, 13, 13, true, true, PLAIN),
    spec("414", None, "LOC No.", N, 13, 13, true, true, PLAIN),
    spec("8005", None, "PRICE PER UNIT", N, 6, 6, false, false, PLAIN),
    spec("8020", None, "REF No.", X, 1, 25, false, false, PLAIN),
];

/// Looks up an AI given exactly (e.g. `"3103"`).
pub fn lookup(ai: &str) -> Option<&'static AiSpec> {
    AI_TABLE.iter().find(|s| s.matches(ai))
}

/// Finds the AI at the start of `data`: the table is prefix-free, so at most
/// one of the 2-, 3- and 4-digit prefixes is an AI. Returns its length.
fn lookup_prefix(data: &str) -> Option<(usize, &'static AiSpec)> {
    (2..=4).find_map(|len| {
        let ai = data.get(..len)?;
        if !ai.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        lookup(ai).map(|s| (len, s))
    })
}

/// Why an element string is not valid GS1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    /// Nothing to parse.
    #[error("empty GS1 element string")]
    Empty,
    /// The digits at this position are not an AI Tally knows.
    #[error("unknown application identifier at {0:?}")]
    UnknownAi(String),
    /// A fixed-length AI's data ended early.
    #[error("AI ({ai}) needs {expected} characters, found {found}")]
    Truncated {
        /// The AI.
        ai: String,
        /// Its fixed length.
        expected: usize,
        /// What was there.
        found: usize,
    },
    /// A variable-length field is longer than its maximum (often a missing
    /// GS separator).
    #[error("AI ({ai}) allows at most {max} characters, found {found}")]
    TooLong {
        /// The AI.
        ai: String,
        /// Its maximum length.
        max: usize,
        /// What was there.
        found: usize,
    },
    /// A variable-length field is shorter than its minimum.
    #[error("AI ({ai}) needs at least {min} characters, found {found}")]
    TooShort {
        /// The AI.
        ai: String,
        /// Its minimum length.
        min: usize,
        /// What was there.
        found: usize,
    },
    /// A numeric AI has a non-digit.
    #[error("AI ({ai}) must be numeric: {value:?}")]
    NotNumeric {
        /// The AI.
        ai: String,
        /// Its data.
        value: String,
    },
    /// A character outside GS1 CSET 82.
    #[error("AI ({ai}) has a character outside GS1 CSET 82: {ch:?}")]
    BadCharacter {
        /// The AI.
        ai: String,
        /// The offending character.
        ch: char,
    },
    /// The key's check digit is wrong.
    #[error("AI ({ai}) check digit is {found}, expected {expected}")]
    BadCheckDigit {
        /// The AI.
        ai: String,
        /// The digit carried.
        found: u8,
        /// The digit computed.
        expected: u8,
    },
    /// Not a valid YYMMDD date.
    #[error("AI ({ai}) is not a valid YYMMDD date: {value:?}")]
    BadDate {
        /// The AI.
        ai: String,
        /// Its data.
        value: String,
    },
    /// The same AI twice with different data.
    #[error("AI ({0}) appears twice with different data")]
    DuplicateAi(String),
    /// The human-readable form is malformed.
    #[error("malformed human-readable element string: {0}")]
    BadHumanReadable(String),
}

/// One AI and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The AI, e.g. `"01"` or `"3103"`.
    pub ai: String,
    /// The data, validated against the AI's spec.
    pub value: String,
    /// The spec it was validated against.
    pub spec: &'static AiSpec,
}

/// A parsed element string: its elements in the order scanned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElementString {
    /// The elements.
    pub elements: Vec<Element>,
}

impl ElementString {
    /// The data of `ai`, if present.
    pub fn get(&self, ai: &str) -> Option<&str> {
        self.elements
            .iter()
            .find(|e| e.ai == ai)
            .map(|e| e.value.as_str())
    }

    /// The GTIN of AI (01), already check-digit verified.
    pub fn gtin(&self) -> Option<Gtin> {
        self.get("01").and_then(|v| Gtin::parse(v).ok())
    }

    fn push(&mut self, e: Element) -> Result<(), Gs1Error> {
        if let Some(prev) = self.elements.iter().find(|p| p.ai == e.ai) {
            if prev.value != e.value {
                return Err(Gs1Error::DuplicateAi(e.ai));
            }
            return Ok(());
        }
        self.elements.push(e);
        Ok(())
    }
}

/// Parses the transmitted form: AIs and data, variable-length fields ended
/// by GS (0x1D). A leading GS (FNC1 sent as data by some scanners) is
/// skipped.
pub fn parse(data: &str) -> Result<ElementString, Gs1Error> {
    let mut rest = data.trim_start_matches(GS);
    if rest.is_empty() {
        return Err(Gs1Error::Empty);
    }
    let mut out = ElementString::default();
    while !rest.is_empty() {
        let (ai_len, spec) = lookup_prefix(rest)
            .ok_or_else(|| Gs1Error::UnknownAi(rest.chars().take(4).collect()))?;
        let (ai, after) = rest.split_at(ai_len);
        rest = after;
        let field_end = rest.find(GS).unwrap_or(rest.len());
        let value = if spec.is_fixed() {
            let field = &rest[..field_end];
            let Some(value) = field
                .get(..spec.max)
                .filter(|v| v.chars().count() == spec.max)
            else {
                return Err(Gs1Error::Truncated {
                    ai: ai.to_owned(),
                    expected: spec.max,
                    found: field.chars().count().min(spec.max),
                });
            };
            value
        } else {
            &rest[..field_end]
        };
        rest = &rest[value.len()..];
        rest = rest.strip_prefix(GS).unwrap_or(rest);
        out.push(validate(ai, spec, value)?)?;
    }
    Ok(out)
}

/// Parses the human-readable form `(AI)data(AI)data…`. Data may not contain
/// `(`; use the transmitted form for such values.
pub fn parse_human(text: &str) -> Result<ElementString, Gs1Error> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Gs1Error::Empty);
    }
    let mut out = ElementString::default();
    let mut rest = text;
    while !rest.is_empty() {
        let after_open = rest.strip_prefix('(').ok_or_else(|| {
            Gs1Error::BadHumanReadable(format!("expected '(' at {:?}", short(rest)))
        })?;
        let close = after_open
            .find(')')
            .ok_or_else(|| Gs1Error::BadHumanReadable("missing ')'".into()))?;
        let ai = &after_open[..close];
        let spec = lookup(ai)
            .filter(|_| ai.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| Gs1Error::UnknownAi(ai.chars().take(8).collect()))?;
        let after_ai = &after_open[close + 1..];
        let end = after_ai.find('(').unwrap_or(after_ai.len());
        let value = &after_ai[..end];
        rest = &after_ai[end..];
        if spec.is_fixed() && value.chars().count() < spec.max {
            return Err(Gs1Error::Truncated {
                ai: ai.to_owned(),
                expected: spec.max,
                found: value.chars().count(),
            });
        }
        out.push(validate(ai, spec, value)?)?;
    }
    Ok(out)
}

fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// Whether `c` is in GS1 AI encodable character set 82 (§7.11).
pub fn is_cset82(c: char) -> bool {
    matches!(c,
        '!' | '"' | '%'..='?' | 'A'..='Z' | '_' | 'a'..='z')
}

fn validate(ai: &str, spec: &'static AiSpec, value: &str) -> Result<Element, Gs1Error> {
    let len = value.chars().count();
    if len > spec.max {
        return Err(Gs1Error::TooLong {
            ai: ai.to_owned(),
            max: spec.max,
            found: len,
        });
    }
    if len < spec.min {
        return Err(Gs1Error::TooShort {
            ai: ai.to_owned(),
            min: spec.min,
            found: len,
        });
    }
    match spec.charset {
        Charset::Numeric => {
            if !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Gs1Error::NotNumeric {
                    ai: ai.to_owned(),
                    value: short(value),
                });
            }
        }
        Charset::Cset82 => {
            if let Some(ch) = value.chars().find(|&c| !is_cset82(c)) {
                return Err(Gs1Error::BadCharacter {
                    ai: ai.to_owned(),
                    ch,
                });
            }
        }
    }
    if spec.check_digit {
        let digits: Vec<u8> = value.bytes().map(|b| b - b'0').collect();
        let (body, check) = digits.split_at(digits.len() - 1);
        let expected = gs1_check_digit(body);
        if check[0] != expected {
            return Err(Gs1Error::BadCheckDigit {
                ai: ai.to_owned(),
                found: check[0],
                expected,
            });
        }
    }
    if let Meaning::Date { day_zero } = spec.meaning {
        if YyMmDd::parse(value, day_zero).is_none() {
            return Err(Gs1Error::BadDate {
                ai: ai.to_owned(),
                value: value.to_owned(),
            });
        }
    }
    Ok(Element {
        ai: ai.to_owned(),
        value: value.to_owned(),
        spec,
    })
}

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

impl fmt::Display for ElementString {
    /// The human-readable form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.elements {
            write!(f, "({}){}", e.ai, e.value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
