//! How Tally's binaries show an error: one line with the whole chain of
//! causes, each said once.
//!
//! Many error types here show their source in their own message
//! (`reading config file x.toml: No such file …`) *and* return it from
//! `source()`, so that a log line with `%error` is complete. Printing the
//! chain (anyhow's `{:#}`, or its "Caused by" list) would then say every
//! cause twice; [`one_line`] appends a cause only when the text so far does
//! not already end with it. A pure function, shared by `tally-agent`,
//! `tally-hub` and `tally-demo`.

use std::error::Error;

/// `err` and its causes as one line, `outer: cause: root cause`, without
/// repeating a cause that an outer message already ends with. An
/// `anyhow::Error` is passed as `err.as_ref()`.
pub fn one_line(err: &(dyn Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// Shows its source in its message and returns it (like many of ours).
    #[derive(Debug)]
    struct Shows(std::io::Error);

    impl fmt::Display for Shows {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "reading a.toml: {}", self.0)
        }
    }

    impl Error for Shows {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Only returns its source.
    #[derive(Debug)]
    struct Hides(&'static str, Box<dyn Error + 'static>);

    impl fmt::Display for Hides {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Hides {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        assert_eq!(one_line(&Shows(io())), "reading a.toml: no such file");
    }

    #[test]
    fn causes_a_message_does_not_show_are_appended() {
        let e = Hides(
            "starting",
            Box::new(Hides("opening the store", Box::new(Shows(io())))),
        );
        assert_eq!(
            one_line(&e),
            "starting: opening the store: reading a.toml: no such file"
        );
    }

    #[test]
    fn a_plain_message_is_itself() {
        assert_eq!(one_line(&io()), "no such file");
    }
}
