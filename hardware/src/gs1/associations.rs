//! The dictionary's association rules over a whole element string: `req=`
//! (an AI needs certain others alongside) and `ex=` (an AI must not appear
//! with others). Broken rules are warnings, not errors: GS1 applies them
//! over every carrier on an item, and a scan may be one carrier of several.

use super::element::{Element, Gs1Warning};

/// The rules `elements` break, each once, in the elements' order.
pub(super) fn check(elements: &[Element]) -> Vec<Gs1Warning> {
    let present =
        |pattern: &super::dictionary::AiPattern| elements.iter().any(|e| pattern.matches(&e.ai));
    let mut warnings = Vec::new();
    for e in elements {
        for requirement in &e.entry.requires {
            if !requirement.iter().any(|all| all.iter().all(present)) {
                let any_of = requirement
                    .iter()
                    .map(|all| {
                        all.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("+")
                    })
                    .collect::<Vec<_>>()
                    .join(" or ");
                warnings.push(Gs1Warning::Requires {
                    ai: e.ai.clone(),
                    any_of,
                });
            }
        }
        for other in elements.iter().filter(|o| o.ai != e.ai) {
            let excluded = e.entry.excludes.iter().any(|p| p.matches(&other.ai));
            let reported = warnings.iter().any(|w| {
                matches!(w, Gs1Warning::Excludes { ai, with } if *ai == other.ai && *with == e.ai)
            });
            if excluded && !reported {
                warnings.push(Gs1Warning::Excludes {
                    ai: e.ai.clone(),
                    with: other.ai.clone(),
                });
            }
        }
    }
    warnings
}
