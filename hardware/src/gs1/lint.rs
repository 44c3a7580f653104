//! The content checks ("linters") the GS1 Barcode Syntax Dictionary names
//! on its components: check digits and check-character pairs, dates and
//! times, GS1 Company Prefix position, ISO country and currency codes,
//! IBANs, coordinates, percent-encoding, the small code lists of the GS1
//! General Specifications and the two North American coupon structures
//! (AIs 8110 and 8112, in `coupon.rs`). Each takes one component's text
//! (already checked for its character set and length) and says what is
//! wrong.
//!
//! Behaviour follows GS1's reference linters (the Barcode Syntax Tests of
//! the GS1 Syntax Engine, Apache 2.0); the code lists GS1 does not
//! maintain come from crates that track their standards: `isocountry`
//! (ISO 3166-1), `iso_currency` (ISO 4217), `iban_validate` (ISO 13616).
//! A linter name this code does not know (from a newer dictionary) is kept
//! as [`Linter::Unknown`] and not applied; `packagetype` (UN/ECE
//! Recommendation 21 codes) has no code list here and is
//! [`Linter::is_checked`] `false`: its component is still held to its
//! character set and length.

use tally_sync::gtin::gs1_check_digit;

use super::coupon;
use super::interpret::YyMmDd;

/// A named content check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linter {
    /// GS1 mod-10 check digit, last digit (GenSpecs §7.9.1).
    Csum,
    /// GS1 check-character pair of alphanumeric keys (GenSpecs §7.9.5).
    CsumAlpha,
    /// Starts with a GS1 Company Prefix (at least 4 digits).
    GcpPos1,
    /// As [`Linter::GcpPos1`] from the second character.
    GcpPos2,
    /// YYMMDD, DD may be 00.
    YyMmD0,
    /// YYMMDD.
    YyMmDd,
    /// YYYYMMDD, DD may be 00.
    YyyyMmD0,
    /// YYYYMMDD.
    YyyyMmDd,
    /// HH (00–23).
    Hh,
    /// MI (00–59).
    Mi,
    /// SS (00–59).
    Ss,
    /// HHMI.
    HhMi,
    /// ISO 3166-1 numeric country code.
    Iso3166,
    /// ISO 3166-1 numeric country code or 999.
    Iso3166Or999,
    /// ISO 3166-1 alpha-2 country code.
    Iso3166Alpha2,
    /// ISO 4217 numeric currency code.
    Iso4217,
    /// ISO/IEC 5218 sex code: 0, 1, 2 or 9.
    Iso5218,
    /// International Bank Account Number (ISO 13616).
    Iban,
    /// Latitude, N10, 0–1800000000 (degrees + 90, 7 decimals).
    Latitude,
    /// Longitude, N10, 0–3600000000 (degrees + 180, 7 decimals).
    Longitude,
    /// Percent-encoding well formed: `%` then two hex digits.
    PercentEncoded,
    /// `0` or `1`.
    YesNo,
    /// Exactly `0`.
    Zero,
    /// Not all zeros.
    NonZero,
    /// No leading zero (a lone `0` excepted).
    NoZeroPrefix,
    /// At least one non-digit.
    HasNonDigit,
    /// Hyphens only.
    Hyphen,
    /// Winding direction: 0, 1 or 9.
    Winding,
    /// Piece of total: PP…TT…, equal widths, 0 < piece ≤ total.
    PieceOfTotal,
    /// Position in sequence `P/T`, 0 < position ≤ total.
    PositionInSequence,
    /// AIDC media type: 01–10, 80–99.
    MediaType,
    /// Importer index (EU 2018/574): one of `-0-9A-Z_a-z`.
    ImporterIndex,
    /// North American Coupon Code, AI (8110): its fields, their
    /// variable-length indicators and codes, in order.
    CouponCode,
    /// North American positive offer file coupon, AI (8112): format code,
    /// funder ID, offer code, serial number.
    CouponPosOffer,
    /// A linter known by name whose code list is not available here.
    Unchecked(&'static str),
    /// A linter name this code does not know.
    Unknown(String),
}

/// The dictionary's linter names.
const NAMES: &[(&str, Linter)] = &[
    ("csum", Linter::Csum),
    ("csumalpha", Linter::CsumAlpha),
    ("gcppos1", Linter::GcpPos1),
    ("gcppos2", Linter::GcpPos2),
    ("yymmd0", Linter::YyMmD0),
    ("yymmdd", Linter::YyMmDd),
    ("yyyymmd0", Linter::YyyyMmD0),
    ("yyyymmdd", Linter::YyyyMmDd),
    ("hh", Linter::Hh),
    ("mi", Linter::Mi),
    ("ss", Linter::Ss),
    ("hhmi", Linter::HhMi),
    ("iso3166", Linter::Iso3166),
    ("iso3166999", Linter::Iso3166Or999),
    ("iso3166alpha2", Linter::Iso3166Alpha2),
    ("iso4217", Linter::Iso4217),
    ("iso5218", Linter::Iso5218),
    ("iban", Linter::Iban),
    ("latitude", Linter::Latitude),
    ("longitude", Linter::Longitude),
    ("pcenc", Linter::PercentEncoded),
    ("yesno", Linter::YesNo),
    ("zero", Linter::Zero),
    ("nonzero", Linter::NonZero),
    ("nozeroprefix", Linter::NoZeroPrefix),
    ("hasnondigit", Linter::HasNonDigit),
    ("hyphen", Linter::Hyphen),
    ("winding", Linter::Winding),
    ("pieceoftotal", Linter::PieceOfTotal),
    ("posinseqslash", Linter::PositionInSequence),
    ("mediatype", Linter::MediaType),
    ("importeridx", Linter::ImporterIndex),
    ("packagetype", Linter::Unchecked("packagetype")),
    ("couponcode", Linter::CouponCode),
    ("couponposoffer", Linter::CouponPosOffer),
];

/// What a linter found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LintFailure {
    /// A check digit does not match.
    CheckDigit {
        /// Carried.
        found: u8,
        /// Computed.
        expected: u8,
    },
    /// Not a valid date.
    Date,
    /// Anything else, said in words.
    Invalid(String),
}

impl Linter {
    /// The linter of a dictionary name.
    pub fn from_name(name: &str) -> Linter {
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| Linter::Unknown(name.to_owned()), |(_, l)| l.clone())
    }

    /// The dictionary's name of this linter.
    pub fn name(&self) -> &str {
        match self {
            Linter::Unknown(name) => name,
            known => NAMES
                .iter()
                .find(|(_, l)| l == known)
                .map_or("?", |(n, _)| n),
        }
    }

    /// Whether this linter is applied (false for [`Linter::Unchecked`] and
    /// [`Linter::Unknown`]).
    pub fn is_checked(&self) -> bool {
        !matches!(self, Linter::Unchecked(_) | Linter::Unknown(_))
    }

    /// Checks one component's text.
    pub fn check(&self, data: &str) -> Result<(), LintFailure> {
        let invalid = |what: &str| Err(LintFailure::Invalid(what.to_owned()));
        let digits = || data.bytes().all(|b| b.is_ascii_digit());
        match self {
            Linter::Csum => check_digit(data),
            Linter::CsumAlpha => check_pair(data),
            Linter::GcpPos1 => company_prefix(data),
            Linter::GcpPos2 => match data.get(1..) {
                Some(rest) => company_prefix(rest),
                None => invalid("too short to hold a GS1 Company Prefix"),
            },
            Linter::YyMmD0 | Linter::YyMmDd => {
                let day_zero = *self == Linter::YyMmD0;
                match YyMmDd::parse(data, day_zero) {
                    Some(_) => Ok(()),
                    None => Err(LintFailure::Date),
                }
            }
            Linter::YyyyMmD0 | Linter::YyyyMmDd => {
                let day_zero = *self == Linter::YyyyMmD0;
                match (data.len(), data.get(2..)) {
                    (8, Some(yymmdd)) if digits() && YyMmDd::parse(yymmdd, day_zero).is_some() => {
                        // Leap years by the full year: 1900 is not one.
                        let year: u32 = data[..4].parse().unwrap_or(0);
                        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
                        if &data[4..] == "0229" && !leap {
                            Err(LintFailure::Date)
                        } else {
                            Ok(())
                        }
                    }
                    _ => Err(LintFailure::Date),
                }
            }
            Linter::Hh => in_range(data, 2, 0, 23, "hour"),
            Linter::Mi => in_range(data, 2, 0, 59, "minute"),
            Linter::Ss => in_range(data, 2, 0, 59, "second"),
            Linter::HhMi => match (data.get(..2), data.get(2..)) {
                (Some(hh), Some(mi)) if data.len() == 4 => {
                    in_range(hh, 2, 0, 23, "hour")?;
                    in_range(mi, 2, 0, 59, "minute")
                }
                _ => invalid("not a time HHMI"),
            },
            Linter::Iso3166 | Linter::Iso3166Or999 => {
                if *self == Linter::Iso3166Or999 && data == "999" {
                    return Ok(());
                }
                match data.parse::<u32>() {
                    Ok(n) if data.len() == 3 && isocountry::CountryCode::for_id(n).is_ok() => {
                        Ok(())
                    }
                    _ => invalid("not an ISO 3166-1 numeric country code"),
                }
            }
            Linter::Iso3166Alpha2 => {
                if data.len() == 2 && isocountry::CountryCode::for_alpha2(data).is_ok() {
                    Ok(())
                } else {
                    invalid("not an ISO 3166-1 alpha-2 country code")
                }
            }
            Linter::Iso4217 => match data.parse::<u16>() {
                Ok(n) if data.len() == 3 && iso_currency::Currency::from_numeric(n).is_some() => {
                    Ok(())
                }
                _ => invalid("not an ISO 4217 numeric currency code"),
            },
            Linter::Iso5218 => one_of(data, &["0", "1", "2", "9"], "not an ISO/IEC 5218 code"),
            Linter::Iban => match data.parse::<iban::Iban>() {
                Ok(_) => Ok(()),
                Err(_) => invalid("not a valid IBAN"),
            },
            Linter::Latitude => in_range(data, 10, 0, 1_800_000_000, "latitude"),
            Linter::Longitude => in_range(data, 10, 0, 3_600_000_000, "longitude"),
            Linter::PercentEncoded => percent_encoded(data),
            Linter::YesNo => one_of(data, &["0", "1"], "not 0 (no) or 1 (yes)"),
            Linter::Zero => one_of(data, &["0"], "must be 0"),
            Linter::NonZero => {
                if data.bytes().all(|b| b == b'0') {
                    invalid("must not be zero")
                } else {
                    Ok(())
                }
            }
            Linter::NoZeroPrefix => {
                if data.len() > 1 && data.starts_with('0') {
                    invalid("must not start with 0")
                } else {
                    Ok(())
                }
            }
            Linter::HasNonDigit => {
                if digits() {
                    invalid("must contain a non-digit")
                } else {
                    Ok(())
                }
            }
            Linter::Hyphen => {
                if data.bytes().all(|b| b == b'-') {
                    Ok(())
                } else {
                    invalid("must be '-'")
                }
            }
            Linter::Winding => one_of(data, &["0", "1", "9"], "winding must be 0, 1 or 9"),
            Linter::PieceOfTotal => piece_of_total(data),
            Linter::PositionInSequence => position_in_sequence(data),
            Linter::MediaType => match data.parse::<u8>() {
                Ok(n) if data.len() == 2 && ((1..=10).contains(&n) || n >= 80) => Ok(()),
                _ => invalid("not an AIDC media type (01-10, 80-99)"),
            },
            Linter::ImporterIndex => {
                let mut chars = data.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_alphanumeric() || c == '-' || c == '_' => Ok(()),
                    _ => invalid("not an importer index (one of -, 0-9, A-Z, _, a-z)"),
                }
            }
            Linter::CouponCode => coupon::coupon_code(data),
            Linter::CouponPosOffer => coupon::positive_offer(data),
            Linter::Unchecked(_) | Linter::Unknown(_) => Ok(()),
        }
    }
}

fn check_digit(data: &str) -> Result<(), LintFailure> {
    let digits: Vec<u8> = data.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    match digits.split_last() {
        Some((&found, body)) if digits.iter().all(|&d| d <= 9) => {
            let expected = gs1_check_digit(body);
            if found == expected {
                Ok(())
            } else {
                Err(LintFailure::CheckDigit { found, expected })
            }
        }
        _ => Err(LintFailure::Invalid("no check digit".into())),
    }
}

/// CSET 82 in the order of its values for the check-character pair.
const CSET82_ORDER: &str =
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
/// CSET 32, the check characters' alphabet, in value order.
const CSET32_ORDER: &str = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The GS1 check-character pair (GenSpecs §7.9.5): the data characters'
/// CSET 82 values weighted by the primes 2, 3, 5, … from the right, summed
/// modulo 1021, split into two 5-bit CSET 32 characters.
pub fn check_pair_of(body: &str) -> Option<[char; 2]> {
    let mut sum: u64 = 0;
    let mut primes = Primes::default();
    for c in body.chars().rev() {
        let value = CSET82_ORDER.find(c)? as u64;
        sum += value * primes.next_prime();
    }
    let sum = (sum % 1021) as usize;
    let alphabet = CSET32_ORDER.as_bytes();
    Some([alphabet[sum >> 5] as char, alphabet[sum & 31] as char])
}

fn check_pair(data: &str) -> Result<(), LintFailure> {
    let n = data.chars().count();
    if n < 2 {
        return Err(LintFailure::Invalid(
            "too short for a check-character pair".into(),
        ));
    }
    let split = data.char_indices().nth(n - 2).map_or(0, |(i, _)| i);
    let (body, pair) = data.split_at(split);
    match check_pair_of(body) {
        Some(expected) if pair.chars().eq(expected) => Ok(()),
        Some(expected) => Err(LintFailure::Invalid(format!(
            "check characters are {pair}, expected {}{}",
            expected[0], expected[1]
        ))),
        None => Err(LintFailure::Invalid("character outside CSET 82".into())),
    }
}

/// Successive primes from 2.
#[derive(Default)]
struct Primes {
    last: u64,
}

impl Primes {
    fn next_prime(&mut self) -> u64 {
        let mut n = (self.last + 1).max(2);
        while (2..n).take_while(|d| d * d <= n).any(|d| n % d == 0) {
            n += 1;
        }
        self.last = n;
        n
    }
}

/// At least the shortest GS1 Company Prefix (4 digits) leads the data.
fn company_prefix(data: &str) -> Result<(), LintFailure> {
    const MIN_GCP: usize = 4;
    match data.get(..MIN_GCP) {
        Some(gcp) if gcp.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        Some(_) => Err(LintFailure::Invalid(
            "does not start with a GS1 Company Prefix".into(),
        )),
        None => Err(LintFailure::Invalid(
            "too short to hold a GS1 Company Prefix".into(),
        )),
    }
}

fn in_range(data: &str, len: usize, lo: u64, hi: u64, what: &str) -> Result<(), LintFailure> {
    match data.parse::<u64>() {
        Ok(n)
            if data.len() == len
                && data.bytes().all(|b| b.is_ascii_digit())
                && (lo..=hi).contains(&n) =>
        {
            Ok(())
        }
        _ => Err(LintFailure::Invalid(format!("not a valid {what}"))),
    }
}

fn one_of(data: &str, allowed: &[&str], what: &str) -> Result<(), LintFailure> {
    if allowed.contains(&data) {
        Ok(())
    } else {
        Err(LintFailure::Invalid(what.to_owned()))
    }
}

fn percent_encoded(data: &str) -> Result<(), LintFailure> {
    let bytes = data.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(LintFailure::Invalid("bad percent-encoding".into()));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn piece_of_total(data: &str) -> Result<(), LintFailure> {
    let invalid = |what: &str| Err(LintFailure::Invalid(what.to_owned()));
    if data.is_empty() || data.len() % 2 != 0 || !data.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("piece and total must be digits of equal width");
    }
    let (piece, total) = data.split_at(data.len() / 2);
    if piece.bytes().all(|b| b == b'0') {
        return invalid("piece number is zero");
    }
    if total.bytes().all(|b| b == b'0') {
        return invalid("total is zero");
    }
    // Equal widths: text order is numeric order.
    if piece > total {
        return invalid("piece number exceeds the total");
    }
    Ok(())
}

fn position_in_sequence(data: &str) -> Result<(), LintFailure> {
    let invalid = || {
        Err(LintFailure::Invalid(
            "not a position in sequence P/T".into(),
        ))
    };
    let Some((pos, total)) = data.split_once('/') else {
        return invalid();
    };
    let number = |s: &str| {
        (!s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(pos), number(total)) {
        (Some(p), Some(t)) if p <= t => Ok(()),
        _ => invalid(),
    }
}
