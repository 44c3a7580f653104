//! GS1 element strings: Application Identifiers (AIs) and their data, as
//! carried by GS1-128, GS1 DataMatrix, GS1 QR, GS1 DotCode and GS1
//! DataBar, and GS1 Digital Link URIs, as carried by plain QR Codes, Data
//! Matrix and DotCode.
//!
//! Pure. Every AI and its rules come from GS1's own Barcode Syntax
//! Dictionary ([`Dictionary`], the file in `../shared/gs1/` embedded at
//! build time): [`parse`] reads the transmitted form (FNC1 in first
//! position implied by the symbology identifier, later FNC1 separators as
//! ASCII GS, 0x1D), [`parse_human`] the human-readable form
//! `(01)04006381333931(17)251231`, [`parse_digital_link`] a URI
//! `https://id.gs1.org/01/…/10/…?17=…`. Each element is held to its
//! dictionary line: components with their character sets (N, CSET 82,
//! CSET 39, CSET 64) and lengths, and their linters ([`Linter`]: check
//! digits, dates and times, ISO codes, …). An unknown AI, a bad check
//! digit, a truncated fixed-length AI or an over-long field is each a
//! distinct [`Gs1Error`] naming the AI; the dictionary's association rules
//! (`req=`, `ex=`) are [`Gs1Warning`]s on the result.
//!
//! Splitting follows GenSpecs §7.8.5: the data of an AI of pre-defined
//! length (flag `*`) is exactly its length; any other AI's runs to the
//! next GS or to the end (so a fixed-length AI such as (8005) needs a
//! separator too). A GS after a pre-defined-length field is accepted
//! (encoders may add one).
//!
//! Code map: `dictionary.rs` parses the dictionary, `lint.rs` holds its
//! linters (`coupon.rs` the two North American coupon structures),
//! `element.rs` the element-string parsers and their checks,
//! `associations.rs` the `req=`/`ex=` rules, `digital_link.rs` the URI
//! decoder, `interpret.rs` what a value means (dates, measures, amounts).

mod associations;
mod coupon;
mod dictionary;
mod digital_link;
mod element;
mod interpret;
mod lint;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dictionary;
#[cfg(test)]
mod tests_digital_link;

pub use dictionary::{
    is_cset82, AiEntry, AiPattern, Component, Cset, Dictionary, DictionaryError, Requirement,
};
pub use digital_link::{is_uri, parse_digital_link, DigitalLink, DigitalLinkError, MAX_URI_LEN};
pub use element::{parse, parse_human, Element, ElementString, Gs1Error, Gs1Warning, GS};
pub use interpret::{decimal, Interpretation, YyMmDd};
pub use lint::{check_pair_of, LintFailure, Linter};
