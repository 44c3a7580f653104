//! Element strings: [`parse`] (transmitted form) and [`parse_human`]
//! (with parentheses) split them into [`Element`]s and check each against
//! the AI table; [`Gs1Error`] says what is wrong.

use std::fmt;

use tally_sync::gtin::gs1_check_digit;
use tally_sync::Gtin;

use super::ai::{is_cset82, lookup, lookup_prefix, AiSpec, Charset, Meaning};
use super::interpret::YyMmDd;

/// ASCII GS (group separator): FNC1 as transmitted by scanners.
pub const GS: char = '\u{1d}';

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

impl fmt::Display for ElementString {
    /// The human-readable form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.elements {
            write!(f, "({}){}", e.ai, e.value)?;
        }
        Ok(())
    }
}
