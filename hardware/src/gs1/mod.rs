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
//!
//! Code map: `ai.rs` holds the AI table and its lookups, `element.rs` the
//! parsers and their checks, `interpret.rs` what a value means (dates,
//! measures, amounts).

mod ai;
mod element;
mod interpret;
#[cfg(test)]
mod tests;

pub use ai::{is_cset82, lookup, AiSpec, Charset, Meaning, AI_TABLE};
pub use element::{parse, parse_human, Element, ElementString, Gs1Error, GS};
pub use interpret::{decimal, Interpretation, YyMmDd};
