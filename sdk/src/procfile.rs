//! Reading `Procfile`s: `name: command` per line, `#` comments and blank lines ignored.

use std::collections::BTreeMap;

/// Parses a Procfile. Errors name the first line that is not `name: command`.
pub fn parse(text: &str) -> crate::Result<BTreeMap<String, String>> {
    let mut types = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(name, command)| {
            let (name, command) = (name.trim(), command.trim());
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            (valid_name && !command.is_empty()).then(|| (name.to_string(), command.to_string()))
        });
        match parsed {
            Some((name, command)) => {
                types.insert(name, command);
            }
            None => crate::bail!(
                "Procfile line {} is not `name: command`: {line:?}",
                number + 1
            ),
        }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_types_and_skips_comments() {
        let types =
            parse("# comment\nweb: bin/server --port $PORT\n\nworker:  rake jobs:work\n").unwrap();
        assert_eq!(types["web"], "bin/server --port $PORT");
        assert_eq!(types["worker"], "rake jobs:work");
        assert_eq!(types.len(), 2);
    }

    #[test]
    fn names_the_bad_line() {
        let err = parse("web: ok\nthis is wrong\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
