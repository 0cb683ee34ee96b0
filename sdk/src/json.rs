//! Reading JSON files (`package.json`, lockfiles, manifests) into serde types.
//!
//! Errors name the file and, for bad JSON, the line and column, so a build failure points the
//! user at what to fix.
//!
//! ```no_run
//! #[derive(serde::Deserialize)]
//! struct Package { name: Option<String> }
//!
//! # fn demo() -> buildd_sdk::Result<()> {
//! let package: Package = buildd_sdk::json::read("/app/package.json")?;
//! let any: buildd_sdk::json::Value = buildd_sdk::json::read("/app/composer.json")?;
//! # Ok(()) }
//! ```

use std::path::Path;

use anyhow::Context as _;
use serde::de::DeserializeOwned;

pub use serde_json;
pub use serde_json::{Map, Value};

/// Reads and parses the JSON file at `path`.
pub fn read<T: DeserializeOwned>(path: impl AsRef<Path>) -> crate::Result<T> {
    let path = path.as_ref();
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Reads the JSON file at `path`, or `None` when it does not exist.
pub fn read_optional<T: DeserializeOwned>(path: impl AsRef<Path>) -> crate::Result<Option<T>> {
    let path = path.as_ref();
    if !path.exists() {
        return Ok(None);
    }
    read(path).map(Some)
}

/// Parses JSON text; `name` (usually a file name) is what errors call it.
pub fn parse<T: DeserializeOwned>(text: &[u8], name: &str) -> crate::Result<T> {
    // A UTF-8 byte order mark is common in files written on Windows and is not JSON.
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    serde_json::from_slice(text).map_err(|err| anyhow::anyhow!("{name} is not valid: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Package {
        name: String,
    }

    #[test]
    fn reads_a_file_into_a_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("package.json");
        std::fs::write(&path, "\u{feff}{\"name\": \"app\", \"extra\": 1}").unwrap();
        let package: Package = read(&path).unwrap();
        assert_eq!(package.name, "app");
        let value: Value = read(&path).unwrap();
        assert_eq!(value["extra"], 1);
    }

    #[test]
    fn errors_name_the_file_and_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("package.json");
        std::fs::write(&path, "{\n  \"name\": 3\n}").unwrap();
        let err = format!("{:#}", read::<Package>(&path).unwrap_err());
        assert!(err.contains("package.json is not valid"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let missing = format!(
            "{:#}",
            read::<Package>(dir.path().join("nope.json")).unwrap_err()
        );
        assert!(
            missing.contains("reading ") && missing.contains("nope.json"),
            "{missing}"
        );
        assert!(
            read_optional::<Package>(dir.path().join("nope.json"))
                .unwrap()
                .is_none()
        );
    }
}
