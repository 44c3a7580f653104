//! Catalog CSV files (`gtin,name,price_minor`), read by
//! `tally-agent catalog import` for stores running before their first
//! sync, and the rule for an item listed twice in one import (CSV or
//! `POST /v1/catalog`). Pure: bytes in, items or a line-numbered error out.

use std::collections::HashMap;
use std::io::Read;

use tally_sync::message::CatalogItem;
use tally_sync::Gtin;

/// Why a CSV file was refused (nothing is imported then).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The CSV itself is malformed.
    #[error("line {line}: {detail}")]
    Row {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// Reading failed.
    #[error("reading CSV: {0}")]
    Read(String),
}

/// Parses `gtin,name,price_minor` rows. A first row whose first field is
/// `gtin` is taken as a header. Names may be quoted (RFC 4180); a UTF-8
/// byte-order mark (spreadsheets' "CSV UTF-8") and CRLF line ends are
/// fine. An item listed twice is imported once if both rows agree and
/// refused (naming both lines) if they do not: which price was meant is
/// not ours to guess.
pub fn parse_csv(reader: impl Read) -> Result<Vec<CatalogItem>, CsvError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(reader);
    let mut rows: Vec<(u64, CatalogItem)> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| match e.position() {
            Some(p) => CsvError::Row {
                line: p.line(),
                detail: e.to_string(),
            },
            None => CsvError::Read(e.to_string()),
        })?;
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        let bad = |detail: String| CsvError::Row { line, detail };
        if i == 0 && rec.get(0).is_some_and(|f| f.eq_ignore_ascii_case("gtin")) {
            continue;
        }
        if rec.len() != 3 {
            // Spreadsheets in many locales save "CSV" with semicolons.
            let hint = match rec.len() {
                1 if rec[0].contains(';') => " (the file is separated by ';': save it with commas)",
                1 if rec[0].contains('\t') => {
                    " (the file is separated by tabs: save it with commas)"
                }
                _ => "",
            };
            return Err(bad(format!(
                "expected 3 fields (gtin,name,price_minor), found {}{hint}",
                rec.len()
            )));
        }
        let gtin = Gtin::parse(&rec[0]).map_err(|e| bad(format!("gtin {:?}: {e}", &rec[0])))?;
        let price_minor: i64 = rec[2]
            .parse()
            .ok()
            .filter(|p: &i64| *p >= 0)
            .ok_or_else(|| bad(format!("price_minor {:?} is not an integer >= 0", &rec[2])))?;
        let item = CatalogItem::new(gtin, &rec[1], price_minor).map_err(|e| bad(e.to_string()))?;
        rows.push((line, item));
    }
    merge_duplicates(rows).map_err(|d| CsvError::Row {
        line: d.again,
        detail: format!(
            "gtin {} is already on line {} with another name or price",
            d.gtin, d.first
        ),
    })
}

/// The same GTIN listed twice with another name or price (`first` and
/// `again` are the caller's labels: CSV line numbers, request indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict<L> {
    /// The item both rows name.
    pub gtin: Gtin,
    /// Where it was listed first.
    pub first: L,
    /// Where it was listed again, differently.
    pub again: L,
}

/// One import's rule for repeated items, for CSV files and
/// `POST /v1/catalog` bodies alike: an item listed twice is kept once
/// (in first-seen order) if both rows agree, and the whole import is
/// refused if they do not, naming both rows: which price was meant is not
/// ours to guess, and "the last one wins" would quietly depend on order.
pub fn merge_duplicates<L: Copy>(
    rows: impl IntoIterator<Item = (L, CatalogItem)>,
) -> Result<Vec<CatalogItem>, Conflict<L>> {
    let mut out: Vec<CatalogItem> = Vec::new();
    // Each GTIN's first label and its place in `out`.
    let mut seen: HashMap<Gtin, (L, usize)> = HashMap::new();
    for (label, item) in rows {
        match seen.get(&item.gtin) {
            Some(&(_, k)) if out.get(k) == Some(&item) => {}
            Some(&(first, _)) => {
                return Err(Conflict {
                    gtin: item.gtin,
                    first,
                    again: label,
                })
            }
            None => {
                seen.insert(item.gtin, (label, out.len()));
                out.push(item);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_header() {
        let items = parse_csv(
            "gtin,name,price_minor\n4006381333931,\"Pen, blue\",129\n96385074,Gum,50\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "Pen, blue");
        assert_eq!(items[0].gtin.to_string(), "04006381333931");
        assert_eq!(items[1].price_minor, 50);
        assert_eq!(parse_csv("96385074,Gum,50\n".as_bytes()).unwrap().len(), 1);
        assert!(parse_csv("".as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn spreadsheet_exports_parse() {
        // Excel's "CSV UTF-8": a byte-order mark, CRLF, a blank line.
        let text =
            "\u{feff}gtin,name,price_minor\r\n96385074,Gum,50\r\n\r\n4006381333931,Pen,129\r\n";
        let items = parse_csv(text.as_bytes()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "Gum");
        assert_eq!(items[1].price_minor, 129);
        // Without a header the mark must not spoil the first GTIN.
        let items = parse_csv("\u{feff}96385074,Gum,50\n".as_bytes()).unwrap();
        assert_eq!(items[0].gtin.to_string(), "00000096385074");
    }

    #[test]
    fn a_semicolon_or_tab_separated_file_is_named_as_such() {
        for (text, says) in [
            ("gtin;name;price_minor\n", "separated by ';'"),
            ("96385074\tGum\t50\n", "separated by tabs"),
        ] {
            match parse_csv(text.as_bytes()) {
                Err(e) => assert!(e.to_string().contains(says), "{e}"),
                Ok(items) => panic!("{items:?}"),
            }
        }
    }

    #[test]
    fn an_item_listed_twice_alike_is_imported_once() {
        let text = "96385074,Gum,50\n4006381333931,Pen,129\n000096385074,Gum,50\n";
        let items = parse_csv(text.as_bytes()).unwrap();
        assert_eq!(items.len(), 2);
        match parse_csv("96385074,Gum,50\n96385074,Gum,55\n".as_bytes()) {
            Err(e) => assert_eq!(
                e.to_string(),
                "line 2: gtin 00000096385074 is already on line 1 with another name or price"
            ),
            Ok(items) => panic!("{items:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("gtin,name,price_minor\n4006381333932,Pen,1\n", 2),
            ("96385074,Gum,50\n96385074,Gum,-1\n", 2),
            ("96385074,Gum,5.5\n", 1),
            ("96385074,Gum\n", 1),
            (
                "96385074,Gum,50\n4006381333931,Pen,129\n96385074,Gum,55\n",
                3,
            ),
            ("96385074,Gum,50\n\"96385074\",Gum (mint),50\n", 2),
            // A name a terminal cannot print as one line, or none at all.
            ("96385074,Gum,50\n4006381333931,\"Pen\nblue\",129\n", 2),
            ("96385074,\"\",50\n", 1),
        ] {
            match parse_csv(text.as_bytes()) {
                Err(CsvError::Row { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
