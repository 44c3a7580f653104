//! Money for the cashier terminal: integer minor units (cents) in, text
//! out, and the amounts a cashier types parsed back into minor units.
//! Pure. Every currency is taken to have two decimals, as the agent's
//! `*_minor` fields are for the stores Tally serves today.

/// Decimals of the display currency.
pub const DECIMALS: u32 = 2;

const SCALE: i64 = 10_i64.pow(DECIMALS);

/// `1234` → `"12.34"`, `-5` → `"-0.05"`.
pub fn format_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let scale = SCALE.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = DECIMALS as usize
    )
}

/// Why a typed amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Nothing typed.
    #[error("type an amount, e.g. 20 or 12.50")]
    Empty,
    /// Not digits with at most one decimal separator.
    #[error("{0:?} is not an amount (digits, optionally . or , and 2 decimals)")]
    NotAnAmount(String),
    /// More decimals than the currency has.
    #[error("{0:?} has more than 2 decimals")]
    TooPrecise(String),
    /// Too large to count.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses what a cashier typed: `20` → 2000, `20.5` → 2050, `12,34` →
/// 1234, `.5` → 50. No sign, no thousands separators.
pub fn parse_amount(text: &str) -> Result<i64, AmountError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(AmountError::Empty);
    }
    let not = || AmountError::NotAnAmount(t.to_string());
    let (int, frac) = match t.find(['.', ',']) {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(not());
    }
    if frac.len() > DECIMALS as usize {
        return Err(AmountError::TooPrecise(t.to_string()));
    }
    let too_large = || AmountError::TooLarge(t.to_string());
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_large())?
    };
    let mut frac_minor: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| not())?
    };
    for _ in frac.len()..DECIMALS as usize {
        frac_minor *= 10;
    }
    int.checked_mul(SCALE)
        .and_then(|m| m.checked_add(frac_minor))
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_minor_units() {
        for (minor, text) in [
            (0, "0.00"),
            (5, "0.05"),
            (129, "1.29"),
            (1234, "12.34"),
            (100_000, "1000.00"),
            (-5, "-0.05"),
            (-1234, "-12.34"),
            (i64::MIN, "-92233720368547758.08"),
        ] {
            assert_eq!(format_minor(minor), text, "{minor}");
        }
    }

    #[test]
    fn parses_typed_amounts() {
        for (text, minor) in [
            ("20", 2000),
            ("20.5", 2050),
            ("20.50", 2050),
            ("12,34", 1234),
            (" 7 ", 700),
            (".5", 50),
            ("5.", 500),
            ("0.05", 5),
            ("0", 0),
        ] {
            assert_eq!(parse_amount(text), Ok(minor), "{text}");
        }
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        assert_eq!(parse_amount("  "), Err(AmountError::Empty));
        for bad in ["-1", "1.2.3", "abc", "1,000.00", ".", "1e3", "+2"] {
            assert!(
                matches!(parse_amount(bad), Err(AmountError::NotAnAmount(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_amount("1.234"),
            Err(AmountError::TooPrecise("1.234".into()))
        );
        assert!(matches!(
            parse_amount("999999999999999999999"),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(
            parse_amount("92233720368547758.08"),
            Err(AmountError::TooLarge(_))
        ));
    }
}
