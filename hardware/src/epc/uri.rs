//! Parsing EPC URIs: pure-identity URIs (`urn:epc:id:…`, TDS §6.3), tag
//! URIs (`urn:epc:tag:…`, TDS §12.2 / §12.3) and raw hex URIs
//! (`urn:epc:raw:Bits.xHex`, TDS §12.4). Producing them is on the values
//! ([`PureIdentity::uri`], [`DecodedEpc::tag_uri`]).
//!
//! Grammar (TDS §5, §6.3): company prefix and the second numeric field
//! are zero-padded digit strings whose lengths select the partition; the
//! last field of SGTIN, SGLN, GRAI and GIAI is a `GS3A3Component` (CSET 82
//! with `%HH` escapes, see [`Cset82::from_uri`]) and may itself contain
//! dots, so fields split from the left. In tag URIs of the 96-bit schemes
//! that field must be a decimal numeral without leading zeros (TDS
//! §12.3.1). Tag URIs with control information (`[att=…]`, `[umi=…]`) are
//! refused: this module does not model attribute bits.

use tally_sync::Epc;

use super::identity::PureIdentity;
use super::partition::{self, Table};
use super::text::Cset82;
use super::{
    decode, DecodedEpc, EpcError, Giai202, Giai96, Grai96, Sgln195, Sgln96, Sgtin198, Sgtin96,
    Sscc96,
};

/// A parsed EPC URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedUri {
    /// A tag URI or a raw URI: encodes as it is.
    Tag(DecodedEpc),
    /// A pure-identity URI: needs a filter and a coding
    /// ([`PureIdentity::to_tag`]) to encode.
    Pure(PureIdentity),
}

/// Parses any EPC URI.
pub fn parse_uri(s: &str) -> Result<ParsedUri, EpcError> {
    if s.starts_with("urn:epc:id:") {
        parse_pure_uri(s).map(ParsedUri::Pure)
    } else {
        parse_tag_uri(s).map(ParsedUri::Tag)
    }
}

/// Parses a pure-identity URI of the sgtin, sscc, sgln, grai or giai
/// scheme.
pub fn parse_pure_uri(s: &str) -> Result<PureIdentity, EpcError> {
    let rest = s
        .strip_prefix("urn:epc:id:")
        .ok_or(EpcError::Uri("a pure-identity URI starts with urn:epc:id:"))?;
    let (scheme, body) = rest
        .split_once(':')
        .ok_or(EpcError::Uri("no ':' after the scheme"))?;
    let id = match scheme {
        "sgtin" => {
            let [c, i, s] = fields::<3>(body)?;
            let (partition, company_prefix, item_reference) =
                numeric_pair(c, i, &partition::SGTIN)?;
            PureIdentity::Sgtin {
                partition,
                company_prefix,
                item_reference,
                serial: Cset82::from_uri(s)?,
            }
        }
        "sscc" => {
            let [c, r] = fields::<2>(body)?;
            let (partition, company_prefix, serial_reference) =
                numeric_pair(c, r, &partition::SSCC)?;
            PureIdentity::Sscc {
                partition,
                company_prefix,
                serial_reference,
            }
        }
        "sgln" => {
            let [c, l, e] = fields::<3>(body)?;
            let (partition, company_prefix, location_reference) =
                numeric_pair(c, l, &partition::SGLN)?;
            PureIdentity::Sgln {
                partition,
                company_prefix,
                location_reference,
                extension: Cset82::from_uri(e)?,
            }
        }
        "grai" => {
            let [c, a, s] = fields::<3>(body)?;
            let (partition, company_prefix, asset_type) = numeric_pair(c, a, &partition::GRAI)?;
            PureIdentity::Grai {
                partition,
                company_prefix,
                asset_type,
                serial: Cset82::from_uri(s)?,
            }
        }
        "giai" => {
            let [c, a] = fields::<2>(body)?;
            let (partition, company_prefix) = company_prefix(c)?;
            PureIdentity::Giai {
                partition,
                company_prefix,
                asset_reference: Cset82::from_uri(a)?,
            }
        }
        other => return Err(unsupported(other)),
    };
    id.check_lengths()?;
    Ok(id)
}

/// Parses a tag URI (`urn:epc:tag:…`) of a scheme this module decodes, or
/// a raw hex URI (`urn:epc:raw:Bits.xHex`, decoded like the bytes).
pub fn parse_tag_uri(s: &str) -> Result<DecodedEpc, EpcError> {
    if let Some(raw) = s.strip_prefix("urn:epc:raw:") {
        return decode(&parse_raw(raw)?);
    }
    let rest = s.strip_prefix("urn:epc:tag:").ok_or(EpcError::Uri(
        "not an EPC URI (urn:epc:id:…, urn:epc:tag:… or urn:epc:raw:…)",
    ))?;
    let (scheme, body) = rest
        .split_once(':')
        .ok_or(EpcError::Uri("no ':' after the scheme"))?;
    if body.starts_with('[') {
        return Err(EpcError::Uri(
            "control information ([att=…], [umi=…]) is not supported",
        ));
    }
    let (f, body) = body
        .split_once('.')
        .ok_or(EpcError::Uri("no filter before the first '.'"))?;
    let filter = match f.as_bytes() {
        [d @ b'0'..=b'7'] => d - b'0',
        _ => return Err(EpcError::Uri("the filter must be one digit 0 to 7")),
    };
    Ok(match scheme {
        "sgtin-96" => {
            let [c, i, s] = fields::<3>(body)?;
            let (p, cp, ir) = numeric_pair(c, i, &partition::SGTIN)?;
            DecodedEpc::Sgtin96(Sgtin96::new(filter, p, cp, ir, numeral(s)?)?)
        }
        "sgtin-198" => {
            let [c, i, s] = fields::<3>(body)?;
            let (p, cp, ir) = numeric_pair(c, i, &partition::SGTIN)?;
            DecodedEpc::Sgtin198(Sgtin198::new(filter, p, cp, ir, Cset82::from_uri(s)?)?)
        }
        "sscc-96" => {
            let [c, r] = fields::<2>(body)?;
            let (p, cp, sr) = numeric_pair(c, r, &partition::SSCC)?;
            DecodedEpc::Sscc96(Sscc96::new(filter, p, cp, sr)?)
        }
        "sgln-96" => {
            let [c, l, e] = fields::<3>(body)?;
            let (p, cp, lr) = numeric_pair(c, l, &partition::SGLN)?;
            DecodedEpc::Sgln96(Sgln96::new(filter, p, cp, lr, numeral(e)?)?)
        }
        "sgln-195" => {
            let [c, l, e] = fields::<3>(body)?;
            let (p, cp, lr) = numeric_pair(c, l, &partition::SGLN)?;
            DecodedEpc::Sgln195(Sgln195::new(filter, p, cp, lr, Cset82::from_uri(e)?)?)
        }
        "grai-96" => {
            let [c, a, s] = fields::<3>(body)?;
            let (p, cp, at) = numeric_pair(c, a, &partition::GRAI)?;
            DecodedEpc::Grai96(Grai96::new(filter, p, cp, at, numeral(s)?)?)
        }
        "giai-96" => {
            let [c, a] = fields::<2>(body)?;
            let (p, cp) = company_prefix(c)?;
            DecodedEpc::Giai96(Giai96::new(filter, p, cp, numeral(a)?)?)
        }
        "giai-202" => {
            let [c, a] = fields::<2>(body)?;
            let (p, cp) = company_prefix(c)?;
            DecodedEpc::Giai202(Giai202::new(filter, p, cp, Cset82::from_uri(a)?)?)
        }
        other => return Err(unsupported(other)),
    })
}

fn unsupported(scheme: &str) -> EpcError {
    EpcError::UnsupportedScheme(scheme.chars().take(32).collect())
}

/// `Bits.xHex`: the bit count must match the hex digits (whole bytes).
fn parse_raw(s: &str) -> Result<Epc, EpcError> {
    let (bits, hex) = s
        .split_once(".x")
        .ok_or(EpcError::Uri("a raw URI is urn:epc:raw:Bits.xHex"))?;
    let bits: usize = bits
        .parse()
        .map_err(|_| EpcError::Uri("the raw bit count is not a number"))?;
    if bits != hex.len() * 4 {
        return Err(EpcError::Uri(
            "the raw bit count does not match the hex digits",
        ));
    }
    Epc::from_hex(hex).map_err(|_| EpcError::Uri("the raw EPC is not 2 to 62 bytes of hex"))
}

/// Splits `body` into exactly `N` dot-separated fields, the last one
/// taking any further dots.
fn fields<const N: usize>(body: &str) -> Result<[&str; N], EpcError> {
    let mut out = [""; N];
    let mut parts = body.splitn(N, '.');
    for slot in &mut out {
        *slot = parts
            .next()
            .ok_or(EpcError::Uri("too few '.'-separated fields"))?;
    }
    Ok(out)
}

/// A zero-padded digit string (possibly empty, then 0).
fn padded(s: &str) -> Result<u64, EpcError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EpcError::Uri("a numeric field has a non-digit"));
    }
    if s.is_empty() {
        return Ok(0);
    }
    s.parse()
        .map_err(|_| EpcError::Uri("a numeric field is too long"))
}

/// The company prefix (6 to 12 digits) and the partition its length
/// selects.
fn company_prefix(c: &str) -> Result<(u8, u64), EpcError> {
    let p = partition::for_cp_digits(c.len())
        .ok_or(EpcError::Uri("the company prefix must have 6 to 12 digits"))?;
    Ok((p, padded(c)?))
}

/// Company prefix and second field whose digit counts match a row of
/// `table` (TDS §14.3.3 validity test).
fn numeric_pair(c: &str, d: &str, table: &Table) -> Result<(u8, u64, u64), EpcError> {
    let (p, cp) = company_prefix(c)?;
    let row = table[usize::from(p)];
    if d.len() != row.other_digits as usize {
        return Err(EpcError::Uri(
            "the company prefix and the next field do not have the scheme's total digits",
        ));
    }
    Ok((p, cp, padded(d)?))
}

/// A decimal numeral without leading zeros (TDS §5 `NumericComponent`).
fn numeral(s: &str) -> Result<u64, EpcError> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(EpcError::Uri(
            "a 96-bit scheme needs digits without leading zeros here (use the long scheme)",
        ));
    }
    s.parse()
        .map_err(|_| EpcError::Uri("the number is too large for the scheme"))
}
