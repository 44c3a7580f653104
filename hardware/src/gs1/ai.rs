//! The AI table: every Application Identifier Tally understands with its
//! format (length, character set, check digit) and meaning, and the
//! lookups the parsers split element strings with.

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
pub(super) fn lookup_prefix(data: &str) -> Option<(usize, &'static AiSpec)> {
    (2..=4).find_map(|len| {
        let ai = data.get(..len)?;
        if !ai.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        lookup(ai).map(|s| (len, s))
    })
}

/// Whether `c` is in GS1 AI encodable character set 82 (§7.11).
pub fn is_cset82(c: char) -> bool {
    matches!(c,
        '!' | '"' | '%'..='?' | 'A'..='Z' | '_' | 'a'..='z')
}
