//! Element strings: [`parse`] (transmitted form) and [`parse_human`]
//! (with parentheses) split them into [`Element`]s and check each against
//! its entry in GS1's Barcode Syntax Dictionary; [`Gs1Error`] says what is
//! wrong, [`Gs1Warning`]s what is doubtful (associations).

use std::fmt;

use tally_sync::Gtin;

use super::associations;
use super::dictionary::{AiEntry, Cset, Dictionary};
use super::lint::LintFailure;

/// ASCII GS (group separator): FNC1 as transmitted by scanners.
pub const GS: char = '\u{1d}';

/// Why an element string is not valid GS1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    /// Nothing to parse.
    #[error("empty GS1 element string")]
    Empty,
    /// Not an AI of GS1's Barcode Syntax Dictionary.
    #[error("unknown application identifier ({0})")]
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
    /// The data is longer than the AI allows (often a missing GS
    /// separator).
    #[error("AI ({ai}) allows at most {max} characters, found {found}")]
    TooLong {
        /// The AI.
        ai: String,
        /// Its maximum length.
        max: usize,
        /// What was there.
        found: usize,
    },
    /// The data is shorter than the AI needs.
    #[error("AI ({ai}) needs at least {min} characters, found {found}")]
    TooShort {
        /// The AI.
        ai: String,
        /// Its minimum length.
        min: usize,
        /// What was there.
        found: usize,
    },
    /// A numeric component has a non-digit.
    #[error("AI ({ai}) must be numeric: {value:?}")]
    NotNumeric {
        /// The AI.
        ai: String,
        /// Its data.
        value: String,
    },
    /// A character outside the component's character set.
    #[error("AI ({ai}) has a character outside GS1 CSET {cset}: {ch:?}")]
    BadCharacter {
        /// The AI.
        ai: String,
        /// The offending character.
        ch: char,
        /// The set: `82`, `39` or `64`.
        cset: u8,
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
    /// Not a valid date.
    #[error("AI ({ai}) is not a valid date: {value:?}")]
    BadDate {
        /// The AI.
        ai: String,
        /// The date component.
        value: String,
    },
    /// A content check of the dictionary failed.
    #[error("AI ({ai}) {reason} (GS1 check {check})")]
    Invalid {
        /// The AI.
        ai: String,
        /// The dictionary's linter name.
        check: &'static str,
        /// What is wrong, with the component's data.
        reason: String,
    },
    /// The same AI twice with different data.
    #[error("AI ({0}) appears twice with different data")]
    DuplicateAi(String),
    /// The human-readable form is malformed.
    #[error("malformed human-readable element string: {0}")]
    BadHumanReadable(String),
    /// The syntax dictionary could not be read (a bad file swapped in).
    #[error("{0}")]
    Dictionary(String),
}

/// Something doubtful about a valid element string: an association rule of
/// the dictionary broken. The scan is still usable; the rules apply over
/// every carrier on an item, of which one scan may be only a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gs1Warning {
    /// `ai` needs one of these AI combinations alongside it.
    Requires {
        /// The AI.
        ai: String,
        /// The combinations, e.g. `"01+21 or 02"`.
        any_of: String,
    },
    /// `ai` must not appear with `with`.
    Excludes {
        /// The AI.
        ai: String,
        /// The other AI present.
        with: String,
    },
}

impl fmt::Display for Gs1Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gs1Warning::Requires { ai, any_of } => {
                write!(f, "AI ({ai}) should appear with ({any_of})")
            }
            Gs1Warning::Excludes { ai, with } => {
                write!(f, "AI ({ai}) should not appear with ({with})")
            }
        }
    }
}

/// One AI and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The AI, e.g. `"01"` or `"3103"`.
    pub ai: String,
    /// The data, validated against the AI's entry.
    pub value: String,
    /// The dictionary entry it was validated against.
    pub entry: &'static AiEntry,
}

/// A parsed element string: its elements in the order scanned, and the
/// association rules they break.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElementString {
    /// The elements.
    pub elements: Vec<Element>,
    /// Association rules broken (`req=`, `ex=`).
    pub warnings: Vec<Gs1Warning>,
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

    pub(super) fn push(&mut self, e: Element) -> Result<(), Gs1Error> {
        if let Some(prev) = self.elements.iter().find(|p| p.ai == e.ai) {
            if prev.value != e.value {
                return Err(Gs1Error::DuplicateAi(e.ai));
            }
            return Ok(());
        }
        self.elements.push(e);
        Ok(())
    }

    /// Checks the association rules once every element is in.
    pub(super) fn finish(mut self) -> Result<ElementString, Gs1Error> {
        if self.elements.is_empty() {
            return Err(Gs1Error::Empty);
        }
        self.warnings = associations::check(&self.elements);
        Ok(self)
    }
}

pub(super) fn dictionary() -> Result<&'static Dictionary, Gs1Error> {
    Dictionary::embedded().map_err(|e| Gs1Error::Dictionary(e.to_string()))
}

/// Parses the transmitted form: AIs and data, the data of an AI not of
/// pre-defined length ended by GS (0x1D) or the end. A leading GS (FNC1
/// sent as data by some scanners) is skipped, and so is a GS after a
/// pre-defined-length field (encoders may add one).
pub fn parse(data: &str) -> Result<ElementString, Gs1Error> {
    let dict = dictionary()?;
    let mut rest = data.trim_start_matches(GS);
    if rest.is_empty() {
        return Err(Gs1Error::Empty);
    }
    let mut out = ElementString::default();
    while !rest.is_empty() {
        let (ai_len, entry) = dict
            .lookup_prefix(rest)
            .ok_or_else(|| Gs1Error::UnknownAi(dict.unknown_ai(rest)))?;
        let (ai, after) = rest.split_at(ai_len);
        rest = after;
        let field_end = rest.find(GS).unwrap_or(rest.len());
        let value = match entry.fixed_len().filter(|_| entry.predefined) {
            Some(len) => {
                let field = &rest[..field_end];
                match field.char_indices().nth(len) {
                    Some((end, _)) => &field[..end],
                    None if field.chars().count() == len => field,
                    None => {
                        return Err(Gs1Error::Truncated {
                            ai: ai.to_owned(),
                            expected: len,
                            found: field.chars().count(),
                        })
                    }
                }
            }
            None => &rest[..field_end],
        };
        rest = &rest[value.len()..];
        rest = rest.strip_prefix(GS).unwrap_or(rest);
        out.push(validate(ai, entry, value)?)?;
    }
    out.finish()
}

/// Parses the human-readable form `(AI)data(AI)data…`. Data may not contain
/// `(`; use the transmitted form for such values.
pub fn parse_human(text: &str) -> Result<ElementString, Gs1Error> {
    let dict = dictionary()?;
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
        let entry = dict
            .lookup(ai)
            .filter(|_| ai.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| Gs1Error::UnknownAi(ai.chars().take(8).collect()))?;
        let after_ai = &after_open[close + 1..];
        let end = after_ai.find('(').unwrap_or(after_ai.len());
        let value = &after_ai[..end];
        rest = &after_ai[end..];
        out.push(validate(ai, entry, value)?)?;
    }
    out.finish()
}

fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// Checks `value` against `entry`: each component in turn takes its length
/// (a variable one what is left, up to its maximum), holds to its
/// character set and passes its linters; optional components may be left
/// out once the data is exhausted; nothing may be left over.
pub(super) fn validate(
    ai: &str,
    entry: &'static AiEntry,
    value: &str,
) -> Result<Element, Gs1Error> {
    let chars: Vec<char> = value.chars().collect();
    let fixed_mismatch = |found: usize| {
        let err = match entry.fixed_len() {
            Some(expected) if found < expected => Gs1Error::Truncated {
                ai: ai.to_owned(),
                expected,
                found,
            },
            _ if found < entry.min_len() => Gs1Error::TooShort {
                ai: ai.to_owned(),
                min: entry.min_len(),
                found,
            },
            _ => Gs1Error::TooLong {
                ai: ai.to_owned(),
                max: entry.max_len(),
                found,
            },
        };
        Err(err)
    };
    if chars.len() > entry.max_len() || chars.len() < entry.min_len() {
        return fixed_mismatch(chars.len());
    }
    let mut at = 0;
    for component in &entry.components {
        let left = chars.len() - at;
        if left == 0 && component.optional {
            break;
        }
        let take = left.min(component.max);
        if take < component.min {
            return fixed_mismatch(chars.len());
        }
        let part: String = chars[at..at + take].iter().collect();
        at += take;
        if let Some(ch) = part.chars().find(|&c| !component.cset.contains(c)) {
            return Err(match component.cset {
                Cset::Numeric => Gs1Error::NotNumeric {
                    ai: ai.to_owned(),
                    value: short(value),
                },
                Cset::Cset82 => bad_char(ai, ch, 82),
                Cset::Cset39 => bad_char(ai, ch, 39),
                Cset::Cset64 => bad_char(ai, ch, 64),
            });
        }
        for linter in &component.linters {
            linter.check(&part).map_err(|failure| match failure {
                LintFailure::CheckDigit { found, expected } => Gs1Error::BadCheckDigit {
                    ai: ai.to_owned(),
                    found,
                    expected,
                },
                LintFailure::Date => Gs1Error::BadDate {
                    ai: ai.to_owned(),
                    value: part.clone(),
                },
                LintFailure::Invalid(reason) => Gs1Error::Invalid {
                    ai: ai.to_owned(),
                    check: linter.name(),
                    reason: format!("{:?}: {reason}", short(&part)),
                },
            })?;
        }
    }
    if at < chars.len() {
        return fixed_mismatch(chars.len());
    }
    Ok(Element {
        ai: ai.to_owned(),
        value: value.to_owned(),
        entry,
    })
}

fn bad_char(ai: &str, ch: char, cset: u8) -> Gs1Error {
    Gs1Error::BadCharacter {
        ai: ai.to_owned(),
        ch,
        cset,
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
