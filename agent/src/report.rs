//! How the binaries print an error: one line with the whole chain of
//! causes, each said once.
//!
//! Many error types here show their source in their own message
//! (`reading config file x.toml: No such file …`) *and* return it from
//! `source()`, so that a log line with `%error` is complete. Printing the
//! chain (`{:#}`) would then say every cause twice; [`one_line`] appends a
//! cause only when the text so far does not already end with it.

use std::error::Error;

/// `err` and its causes as one line, `outer: cause: root cause`, without
/// repeating a cause that an outer message already ends with.
pub fn one_line(err: &anyhow::Error) -> String {
    chain_line(err.chain())
}

fn chain_line<'a>(mut chain: impl Iterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut line = chain.next().map(ToString::to_string).unwrap_or_default();
    for cause in chain {
        let cause = cause.to_string();
        if !line.ends_with(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {file}: {source}")]
    struct Shows {
        file: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("opening the store")]
    struct Hides {
        #[source]
        source: Shows,
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        let e = anyhow::Error::new(Shows {
            file: "a.toml",
            source: io(),
        });
        assert_eq!(one_line(&e), "reading a.toml: no such file");
    }

    #[test]
    fn causes_a_message_does_not_show_are_appended() {
        let e = anyhow::Error::new(Hides {
            source: Shows {
                file: "a.toml",
                source: io(),
            },
        })
        .context("starting");
        assert_eq!(
            one_line(&e),
            "starting: opening the store: reading a.toml: no such file"
        );
    }

    #[test]
    fn a_plain_message_is_itself() {
        assert_eq!(one_line(&anyhow::anyhow!("boom")), "boom");
    }
}
