//! `tally-hub run --config FILE`: the hub's settings in a TOML file, so a
//! service unit holds no secrets on its command line (where `ps` shows
//! them) and every hub process of a chain can share one file.
//!
//! Each key is one of `run`'s flags by its long name (`database`,
//! `max_batch` or `max-batch`), each value what the flag takes:
//!
//! ```toml
//! data_dir = "/var/lib/tally-hub"
//! database = "postgres://tally:SECRET@db.internal/tally?sslmode=verify-full&sslrootcert=/etc/tally/db-ca.pem"
//! listen = "0.0.0.0:8443"
//! route_priority = ["s-north", "s-south"]
//! log_json = true
//! ```
//!
//! The file's settings become flags put before the command line's, so
//! the same parser checks both; a flag given on the command line wins
//! (its key in the file is left out), and so does `TALLY_HUB_DATABASE`
//! over the file's `database`. An unknown key, or a value of the wrong
//! shape, is an error that names it. Pure: [`flags_from_toml`] reads no
//! file.

/// One of `run`'s flags, as the file may set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Its long name (`max-batch`).
    pub long: String,
    /// Whether it takes a value (`false`: a switch such as `log-json`).
    pub takes_value: bool,
}

/// Why a configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    /// Not TOML.
    #[error("not a TOML file: {0}")]
    Parse(String),
    /// A key that names no setting of `tally-hub run`.
    #[error("unknown setting `{key}` (known: {known})")]
    Unknown {
        /// The key.
        key: String,
        /// The settings there are.
        known: String,
    },
    /// A value of the wrong shape for its setting.
    #[error("setting `{key}`: {detail}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// The flags `text` (TOML) sets for `run`, to put before the command
/// line's: for each key, `--long` and its value. `flags` are the flags
/// `run` takes; a key for which `given` answers true (set on the command
/// line, or by its environment variable) is left out.
pub fn flags_from_toml(
    text: &str,
    flags: &[Flag],
    given: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, ConfigFileError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigFileError::Parse(e.message().to_string()))?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(flag) = flags.iter().find(|f| f.long == long && f.long != "config") else {
            let known: Vec<String> = flags
                .iter()
                .filter(|f| f.long != "config")
                .map(|f| f.long.replace('-', "_"))
                .collect();
            return Err(ConfigFileError::Unknown {
                key: key.clone(),
                known: known.join(", "),
            });
        };
        if given(&long) {
            continue;
        }
        let bad = |detail: &str| ConfigFileError::BadValue {
            key: key.clone(),
            detail: detail.to_string(),
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(on) if !flag.takes_value => {
                if *on {
                    out.push(format!("--{long}"));
                }
                continue;
            }
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) if !s.contains(',') => parts.push(s.clone()),
                        toml::Value::Integer(n) => parts.push(n.to_string()),
                        _ => return Err(bad("a list holds strings (without commas) or integers")),
                    }
                }
                parts.join(",")
            }
            toml::Value::Table(_) | toml::Value::Datetime(_) => {
                return Err(bad("expected a string, a number, true/false or a list"))
            }
        };
        if !flag.takes_value {
            return Err(bad("a switch: true or false"));
        }
        // One word, so a value that starts with '-' stays a value.
        out.push(format!("--{long}={text}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Vec<Flag> {
        [
            ("data-dir", true),
            ("database", true),
            ("max-batch", true),
            ("route-priority", true),
            ("log-json", false),
            ("config", true),
        ]
        .into_iter()
        .map(|(long, takes_value)| Flag {
            long: long.into(),
            takes_value,
        })
        .collect()
    }

    #[test]
    fn each_key_becomes_its_flag_and_value() {
        let text = r#"
            data_dir = "/var/lib/tally-hub"
            max-batch = 128
            route_priority = ["s1", "s2"]
            log_json = true
        "#;
        let got = flags_from_toml(text, &flags(), &|_| false).unwrap();
        assert_eq!(
            got,
            [
                "--data-dir=/var/lib/tally-hub",
                "--log-json",
                "--max-batch=128",
                "--route-priority=s1,s2"
            ]
        );
        let off = flags_from_toml("log_json = false", &flags(), &|_| false).unwrap();
        assert!(off.is_empty());
    }

    #[test]
    fn what_the_command_line_or_environment_gives_wins() {
        let text = "data_dir = \"/a\"\ndatabase = \"postgres://h/db\"";
        let got = flags_from_toml(text, &flags(), &|f| f == "database").unwrap();
        assert_eq!(got, ["--data-dir=/a"]);
    }

    #[test]
    fn unknown_keys_and_wrong_shapes_are_refused_by_name() {
        let err = flags_from_toml("listen_on = \"x\"", &flags(), &|_| false).unwrap_err();
        assert!(
            matches!(&err, ConfigFileError::Unknown { key, known } if key == "listen_on" && known.contains("data_dir") && !known.contains("config")),
            "{err}"
        );
        for (text, key) in [
            ("config = \"/other.toml\"", "config"),
            ("log_json = \"yes\"", "log_json"),
            ("data_dir = { a = 1 }", "data_dir"),
            ("route_priority = [\"a,b\"]", "route_priority"),
            ("route_priority = [[1]]", "route_priority"),
        ] {
            let err = flags_from_toml(text, &flags(), &|_| false).unwrap_err();
            let named = match &err {
                ConfigFileError::Unknown { key, .. } | ConfigFileError::BadValue { key, .. } => {
                    key.clone()
                }
                ConfigFileError::Parse(_) => String::new(),
            };
            assert_eq!(named, key, "{text}: {err}");
        }
        assert!(matches!(
            flags_from_toml("data_dir = ", &flags(), &|_| false),
            Err(ConfigFileError::Parse(_))
        ));
    }
}
