//! GS1's Barcode Syntax Dictionary, parsed: every Application Identifier
//! with its components (character set, length, linters), its FNC1 rule,
//! its associations (`req=`, `ex=`) and its Digital Link role (`?`,
//! `dlpkey`).
//!
//! The text is GS1's own file (`../shared/gs1/gs1-syntax-dictionary.txt`,
//! Apache 2.0), embedded at build time (`build.rs`) and parsed once on
//! first use ([`Dictionary::embedded`]); nothing of it is restated here.
//! [`Dictionary::parse`] reads any release in the same format, so a new
//! release is a file swap. The format is the one the file's header
//! documents: `AIs [Flags] Specification [Attributes...] [# Title]`.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::lint::Linter;

/// The dictionary as shipped beside the project, embedded at build time.
static EMBEDDED_TEXT: &str = include_str!(env!("TALLY_GS1_DICTIONARY_PATH"));

static EMBEDDED: LazyLock<Result<Dictionary, DictionaryError>> =
    LazyLock::new(|| Dictionary::parse(EMBEDDED_TEXT));

/// Why a dictionary text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GS1 syntax dictionary, line {line}: {reason}")]
pub struct DictionaryError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// A component's character set (the dictionary's `N`, `X`, `Y`, `Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cset {
    /// `N`: digits.
    Numeric,
    /// `X`: GS1 AI encodable character set 82 (GenSpecs §7.11).
    Cset82,
    /// `Y`: GS1 AI encodable character set 39 (GenSpecs §7.11).
    Cset39,
    /// `Z`: base64url (RFC 4648 §5), the GS1 CSET 64.
    Cset64,
}

impl Cset {
    /// Whether `c` belongs to the set.
    pub fn contains(self, c: char) -> bool {
        match self {
            Cset::Numeric => c.is_ascii_digit(),
            Cset::Cset82 => is_cset82(c),
            Cset::Cset39 => matches!(c, '#' | '-' | '/' | '0'..='9' | 'A'..='Z'),
            Cset::Cset64 => c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='),
        }
    }

    /// The dictionary's letter.
    pub fn letter(self) -> char {
        match self {
            Cset::Numeric => 'N',
            Cset::Cset82 => 'X',
            Cset::Cset39 => 'Y',
            Cset::Cset64 => 'Z',
        }
    }
}

/// Whether `c` is in GS1 AI encodable character set 82 (GenSpecs §7.11).
pub fn is_cset82(c: char) -> bool {
    matches!(c,
        '!' | '"' | '%'..='?' | 'A'..='Z' | '_' | 'a'..='z')
}

/// One component of an AI's data: `N6,yymmd0`, `X..20`, `[N3],iso3166`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Character set.
    pub cset: Cset,
    /// Shortest length.
    pub min: usize,
    /// Longest length (equal to `min` when fixed).
    pub max: usize,
    /// May be left out once the data is exhausted.
    pub optional: bool,
    /// Content checks, in order.
    pub linters: Vec<Linter>,
}

/// An AI or an AI pattern of an association: digits, `n` for any digit
/// (`394n`, `31nn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiPattern(pub String);

impl AiPattern {
    /// Whether `ai` matches.
    pub fn matches(&self, ai: &str) -> bool {
        self.0.len() == ai.len()
            && self
                .0
                .bytes()
                .zip(ai.bytes())
                .all(|(p, a)| p == a || (p == b'n' && a.is_ascii_digit()))
    }
}

impl std::fmt::Display for AiPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `req=` attribute: satisfied when every AI of any one alternative is
/// present (`req=01+21,02` means (01) with (21), or (02)).
pub type Requirement = Vec<Vec<AiPattern>>;

/// One dictionary entry: a single AI or a range (`3100-3105`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiEntry {
    /// The first AI of the range.
    pub first: String,
    /// The last AI of the range (equal to `first` for a single AI).
    pub last: String,
    /// The title, e.g. `"NET WEIGHT (kg)"`.
    pub title: String,
    /// Flag `*`: pre-defined length, no FNC1 separator needed after it.
    pub predefined: bool,
    /// Flag `?`: allowed as a GS1 Digital Link data attribute.
    pub dl_attribute: bool,
    /// The data's components, applied in order.
    pub components: Vec<Component>,
    /// `req=` attributes, each of which must hold.
    pub requires: Vec<Requirement>,
    /// `ex=` attributes: AIs that must not appear with this one.
    pub excludes: Vec<AiPattern>,
    /// `dlpkey`: a GS1 Digital Link primary key, with its alternative
    /// sequences of key qualifiers (one empty sequence when it takes none).
    pub dl_key_qualifiers: Option<Vec<Vec<String>>>,
}

impl AiEntry {
    /// Shortest data length (mandatory components).
    pub fn min_len(&self) -> usize {
        self.components
            .iter()
            .filter(|c| !c.optional)
            .map(|c| c.min)
            .sum()
    }

    /// Longest data length.
    pub fn max_len(&self) -> usize {
        self.components.iter().map(|c| c.max).sum()
    }

    /// The data length when it is fixed.
    pub fn fixed_len(&self) -> Option<usize> {
        (self.min_len() == self.max_len()).then(|| self.max_len())
    }

    /// Whether this is a GS1 Digital Link primary key.
    pub fn is_dl_primary_key(&self) -> bool {
        self.dl_key_qualifiers.is_some()
    }

    /// Whether every component is numeric.
    pub fn is_numeric(&self) -> bool {
        self.components.iter().all(|c| c.cset == Cset::Numeric)
    }
}

/// The parsed dictionary with an index from every AI to its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dictionary {
    entries: Vec<AiEntry>,
    by_ai: HashMap<String, usize>,
}

impl Dictionary {
    /// The dictionary shipped beside the project (parsed on first use).
    /// Its parse is checked by the crate's tests; should a swapped-in
    /// release not parse, every lookup fails with the reason.
    pub fn embedded() -> Result<&'static Dictionary, &'static DictionaryError> {
        EMBEDDED.as_ref()
    }

    /// Parses a dictionary text.
    pub fn parse(text: &str) -> Result<Dictionary, DictionaryError> {
        let mut entries = Vec::new();
        let mut by_ai = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |reason: String| DictionaryError { line, reason };
            let (body, title) = match raw.split_once('#') {
                Some((body, title)) => (body, title.trim()),
                None => (raw, ""),
            };
            if body.trim().is_empty() {
                continue;
            }
            let entry = parse_entry(body, title).map_err(err)?;
            let position = entries.len();
            for ai in expand(&entry.first, &entry.last).map_err(err)? {
                if by_ai.insert(ai.clone(), position).is_some() {
                    return Err(err(format!("AI {ai} defined twice")));
                }
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(DictionaryError {
                line: 0,
                reason: "no entries".into(),
            });
        }
        Ok(Dictionary { entries, by_ai })
    }

    /// Every entry, in the file's order.
    pub fn entries(&self) -> &[AiEntry] {
        &self.entries
    }

    /// How many AIs the dictionary defines (ranges counted out).
    pub fn ai_count(&self) -> usize {
        self.by_ai.len()
    }

    /// The entry of exactly `ai` (e.g. `"3103"`).
    pub fn lookup(&self, ai: &str) -> Option<&AiEntry> {
        self.by_ai.get(ai).map(|&i| &self.entries[i])
    }

    /// The AI at the start of `data` and its entry: AIs are prefix-free
    /// (checked by the tests), so at most one of the 2-, 3- and 4-digit
    /// prefixes is one.
    pub fn lookup_prefix(&self, data: &str) -> Option<(usize, &AiEntry)> {
        (2..=4).find_map(|len| {
            let ai = data.get(..len)?;
            if !ai.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            self.lookup(ai).map(|e| (len, e))
        })
    }

    /// The AI an unknown one at the start of `data` most likely is, for an
    /// error message: as many digits as known AIs starting with the same
    /// two digits have, else the leading digits (at most 4).
    pub fn unknown_ai(&self, data: &str) -> String {
        let digits: String = data
            .chars()
            .take_while(char::is_ascii_digit)
            .take(4)
            .collect();
        let len = digits.get(..2).and_then(|two| {
            self.by_ai
                .keys()
                .filter(|ai| ai.starts_with(two))
                .map(String::len)
                .min()
        });
        match len {
            Some(len) if len <= digits.len() => digits[..len].to_owned(),
            _ if digits.is_empty() => data.chars().take(4).collect(),
            _ => digits,
        }
    }
}

/// `first-last` as every AI between, keeping the width.
fn expand(first: &str, last: &str) -> Result<Vec<String>, String> {
    let bad = || format!("bad AI range {first}-{last}");
    if first.len() != last.len() || !(2..=4).contains(&first.len()) {
        return Err(bad());
    }
    let a: u32 = first.parse().map_err(|_| bad())?;
    let b: u32 = last.parse().map_err(|_| bad())?;
    if a > b || b - a > 100 {
        return Err(bad());
    }
    Ok((a..=b)
        .map(|n| format!("{n:0width$}", width = first.len()))
        .collect())
}

fn parse_entry(body: &str, title: &str) -> Result<AiEntry, String> {
    let mut words = body.split_whitespace().peekable();
    let ais = words.next().ok_or("no AI")?;
    let (first, last) = ais.split_once('-').unwrap_or((ais, ais));
    if !first.bytes().all(|b| b.is_ascii_digit()) || !last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad AI {ais:?}"));
    }
    let mut entry = AiEntry {
        first: first.to_owned(),
        last: last.to_owned(),
        title: title.to_owned(),
        predefined: false,
        dl_attribute: false,
        components: Vec::new(),
        requires: Vec::new(),
        excludes: Vec::new(),
        dl_key_qualifiers: None,
    };
    // Flags: a word of flag characters only (never a letter, digit or '[').
    if let Some(flags) =
        words.next_if(|w| w.chars().all(|c| !c.is_ascii_alphanumeric() && c != '['))
    {
        entry.predefined = flags.contains('*');
        entry.dl_attribute = flags.contains('?');
    }
    for word in words {
        if word.contains('=') || word == "dlpkey" {
            parse_attribute(&mut entry, word)?;
        } else {
            if !entry.requires.is_empty()
                || !entry.excludes.is_empty()
                || entry.dl_key_qualifiers.is_some()
            {
                return Err(format!("component {word:?} after attributes"));
            }
            entry.components.push(parse_component(word)?);
        }
    }
    if entry.components.is_empty() {
        return Err(format!("AI {ais} has no specification"));
    }
    let mut seen_optional = false;
    for (i, c) in entry.components.iter().enumerate() {
        if seen_optional && !c.optional {
            return Err(format!(
                "AI {ais}: mandatory component after an optional one"
            ));
        }
        seen_optional |= c.optional;
        if c.min != c.max && i + 1 != entry.components.len() {
            return Err(format!(
                "AI {ais}: only the last component may vary in length"
            ));
        }
    }
    if entry.predefined && entry.fixed_len().is_none() {
        return Err(format!("AI {ais}: pre-defined length but variable"));
    }
    Ok(entry)
}

/// `N6`, `X..20`, `[N3]`, each with `,linter` suffixes.
fn parse_component(word: &str) -> Result<Component, String> {
    let mut parts = word.split(',');
    let spec = parts.next().unwrap_or_default();
    let (optional, spec) = match spec.strip_prefix('[') {
        Some(inner) => (
            true,
            inner
                .strip_suffix(']')
                .ok_or_else(|| format!("unclosed optional component {word:?}"))?,
        ),
        None => (false, spec),
    };
    let mut chars = spec.chars();
    let cset = match chars.next() {
        Some('N') => Cset::Numeric,
        Some('X') => Cset::Cset82,
        Some('Y') => Cset::Cset39,
        Some('Z') => Cset::Cset64,
        _ => return Err(format!("unknown character set in {word:?}")),
    };
    let len = chars.as_str();
    let bad_len = || format!("bad length in {word:?}");
    let (min, max) = match len.strip_prefix("..") {
        Some(max) => (1, max.parse().map_err(|_| bad_len())?),
        None => {
            let n = len.parse().map_err(|_| bad_len())?;
            (n, n)
        }
    };
    if max == 0 || max > 99 {
        return Err(bad_len());
    }
    let linters = parts.map(Linter::from_name).collect();
    Ok(Component {
        cset,
        min,
        max,
        optional,
        linters,
    })
}

fn parse_attribute(entry: &mut AiEntry, word: &str) -> Result<(), String> {
    let (key, value) = word.split_once('=').unwrap_or((word, ""));
    let patterns = |list: &str| -> Result<Vec<AiPattern>, String> {
        list.split('+')
            .map(|p| {
                if (2..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit() || b == b'n')
                {
                    Ok(AiPattern(p.to_owned()))
                } else {
                    Err(format!("bad AI pattern {p:?} in {word:?}"))
                }
            })
            .collect()
    };
    match key {
        "req" => {
            let alternatives = value.split(',').map(patterns).collect::<Result<_, _>>()?;
            entry.requires.push(alternatives);
        }
        "ex" => {
            for p in value.split(',') {
                entry.excludes.extend(patterns(p)?);
            }
        }
        "dlpkey" => {
            let alternatives = if value.is_empty() {
                vec![Vec::new()]
            } else {
                value
                    .split('|')
                    .map(|seq| seq.split(',').map(str::to_owned).collect())
                    .collect()
            };
            entry.dl_key_qualifiers = Some(alternatives);
        }
        // Keys a later release may add: ignored, as the format allows.
        _ => {}
    }
    Ok(())
}
