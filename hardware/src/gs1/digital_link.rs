//! GS1 Digital Link URIs (GS1 Digital Link Standard: URI Syntax 1.2+,
//! §4–§6): `https://any.domain/optional/prefix/01/09506000134352/10/ABC?17=261231`
//! → the element string `(01)09506000134352(10)ABC(17)261231`, checked
//! against the syntax dictionary exactly as a scanned element string.
//!
//! Pure. The path ends with a primary key (an AI the dictionary marks
//! `dlpkey`) and its value, then the key's qualifiers in one of the orders
//! `dlpkey=` allows; anything before the key is the resolver's own path and
//! is kept aside. Query parameters with an all-digit name are AIs that must
//! be Digital Link data attributes (flag `?`); any other parameter
//! (`linkType`, …) is kept aside too. Values are percent-decoded; a GTIN
//! of 8, 12 or 13 digits is padded to 14 (URI Syntax §4.2). Any domain is
//! accepted: `id.gs1.org` is GS1's resolver, brands run their own.

use super::element::{dictionary, validate, ElementString, Gs1Error};

/// Longest URI accepted: beyond any 2D symbol's capacity.
pub const MAX_URI_LEN: usize = 4096;

/// A decoded Digital Link URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitalLink {
    /// The AIs: primary key, qualifiers, then data attributes.
    pub elements: ElementString,
    /// The host (and port), e.g. `id.gs1.org`.
    pub domain: String,
    /// The path before the primary key (without slashes at either end).
    pub path_prefix: String,
    /// Query parameters that are not AIs, percent-decoded.
    pub other_params: Vec<(String, String)>,
}

/// Why a URI is not a GS1 Digital Link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigitalLinkError {
    /// Not an `http://` or `https://` URI.
    #[error("not an http(s) URI")]
    NotHttp,
    /// Longer than [`MAX_URI_LEN`].
    #[error("URI longer than {MAX_URI_LEN} characters")]
    TooLong,
    /// The path does not end with a primary key and its qualifiers.
    #[error("no GS1 primary key in the URI path")]
    NoPrimaryKey,
    /// A qualifier not allowed after the key, or out of order.
    #[error("AI ({qualifier}) is not a qualifier of ({key}) in this order")]
    BadQualifier {
        /// The primary key's AI.
        key: String,
        /// The qualifier's AI.
        qualifier: String,
    },
    /// A query AI that may not be a Digital Link data attribute.
    #[error("AI ({0}) may not be a query parameter of a Digital Link")]
    NotAttribute(String),
    /// A query parameter names an AI the dictionary does not know.
    #[error("unknown application identifier ({0}) in the query")]
    UnknownAi(String),
    /// `%` not followed by two hex digits, or bytes that are not UTF-8.
    #[error("bad percent-encoding in {0:?}")]
    BadPercentEncoding(String),
    /// An element is invalid, or two carry different data.
    #[error("{0}")]
    Gs1(#[from] Gs1Error),
}

/// Whether `text` looks like a URI a scanner read from a Digital Link
/// symbol (`http://` or `https://`, any case).
pub fn is_uri(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Decodes a GS1 Digital Link URI into its AIs.
pub fn parse_digital_link(uri: &str) -> Result<DigitalLink, DigitalLinkError> {
    if uri.len() > MAX_URI_LEN {
        return Err(DigitalLinkError::TooLong);
    }
    if !is_uri(uri) {
        return Err(DigitalLinkError::NotHttp);
    }
    let dict = dictionary()?;
    let after_scheme = &uri[uri.find("://").map_or(0, |i| i + 3)..];
    let without_fragment = after_scheme.split('#').next().unwrap_or_default();
    let (location, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let (domain, path) = location.split_once('/').unwrap_or((location, ""));
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();

    // From the end: (AI, value) pairs back to the first primary key.
    let mut pairs = Vec::new();
    let mut end = segments.len();
    let key_at = loop {
        if end < 2 {
            return Err(DigitalLinkError::NoPrimaryKey);
        }
        let (ai, value) = (segments[end - 2], segments[end - 1]);
        let entry = ai
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| dict.lookup(ai))
            .flatten()
            .ok_or(DigitalLinkError::NoPrimaryKey)?;
        pairs.push((ai, value));
        end -= 2;
        if entry.is_dl_primary_key() {
            break end;
        }
    };
    pairs.reverse();
    let (key, qualifiers) = pairs.split_first().ok_or(DigitalLinkError::NoPrimaryKey)?;
    check_qualifier_order(dict.lookup(key.0), key.0, qualifiers)?;

    let mut elements = ElementString::default();
    for &(ai, raw) in &pairs {
        let value = percent_decode(raw)?;
        let value = if ai == "01" && matches!(value.len(), 8 | 12 | 13) {
            format!("{value:0>14}")
        } else {
            value
        };
        let entry = dict.lookup(ai).ok_or(DigitalLinkError::NoPrimaryKey)?;
        elements.push(validate(ai, entry, &value)?)?;
    }

    let mut other_params = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = param.split_once('=').unwrap_or((param, ""));
        let name = percent_decode(name)?;
        let value = percent_decode(raw)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            other_params.push((name, value));
            continue;
        }
        let entry = dict
            .lookup(&name)
            .ok_or_else(|| DigitalLinkError::UnknownAi(name.clone()))?;
        if !entry.dl_attribute || entry.is_dl_primary_key() {
            return Err(DigitalLinkError::NotAttribute(name));
        }
        elements.push(validate(&name, entry, &value)?)?;
    }
    Ok(DigitalLink {
        elements: elements.finish()?,
        domain: domain.to_owned(),
        path_prefix: segments[..key_at].join("/").trim_matches('/').to_owned(),
        other_params,
    })
}

/// The qualifiers must follow one of the key's `dlpkey=` sequences, in
/// order, each at most once (URI Syntax §4.4).
fn check_qualifier_order(
    entry: Option<&super::AiEntry>,
    key: &str,
    qualifiers: &[(&str, &str)],
) -> Result<(), DigitalLinkError> {
    let sequences = entry
        .and_then(|e| e.dl_key_qualifiers.as_ref())
        .ok_or(DigitalLinkError::NoPrimaryKey)?;
    // Whether the first `n` qualifiers follow one of the sequences, in order.
    let fits = |n: usize| {
        sequences.iter().any(|sequence| {
            let mut allowed = sequence.iter();
            qualifiers[..n]
                .iter()
                .all(|(ai, _)| allowed.by_ref().any(|q| q == ai))
        })
    };
    // Name the first qualifier no sequence accepts at its place.
    match (1..=qualifiers.len()).find(|&n| !fits(n)) {
        None => Ok(()),
        Some(n) => Err(DigitalLinkError::BadQualifier {
            key: key.to_owned(),
            qualifier: qualifiers[n - 1].0.to_owned(),
        }),
    }
}

/// RFC 3986 percent-decoding into UTF-8 (`+` is literal, as in a path).
fn percent_decode(text: &str) -> Result<String, DigitalLinkError> {
    let bad = || DigitalLinkError::BadPercentEncoding(text.chars().take(40).collect());
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}
