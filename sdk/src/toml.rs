//! Reading TOML files (`Cargo.toml`, `pyproject.toml`, buildpack settings) into serde types.
//!
//! Errors name the file and where in it the problem is.
//!
//! ```no_run
//! #[derive(serde::Deserialize)]
//! struct Project { project: Option<toml::Table> }
//!
//! # fn demo() -> buildd_sdk::Result<()> {
//! let pyproject: Project = buildd_sdk::toml::read("/app/pyproject.toml")?;
//! # Ok(()) }
//! ```

use std::path::Path;

use anyhow::Context as _;
use serde::de::DeserializeOwned;

pub use ::toml as toml_crate;
pub use ::toml::{Table, Value};

/// Reads and parses the TOML file at `path`.
pub fn read<T: DeserializeOwned>(path: impl AsRef<Path>) -> crate::Result<T> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Reads the TOML file at `path`, or `None` when it does not exist.
pub fn read_optional<T: DeserializeOwned>(path: impl AsRef<Path>) -> crate::Result<Option<T>> {
    let path = path.as_ref();
    if !path.exists() {
        return Ok(None);
    }
    read(path).map(Some)
}

/// Parses TOML text; `name` (usually a file name) is what errors call it.
pub fn parse<T: DeserializeOwned>(text: &str, name: &str) -> crate::Result<T> {
    ::toml::from_str(text).map_err(|err| anyhow::anyhow!("{name} is not valid: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Manifest {
        package: Package,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Package {
        name: String,
    }

    #[test]
    fn reads_a_file_into_a_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.toml");
        std::fs::write(&path, "[package]\nname = \"app\"\nversion = \"1.0.0\"\n").unwrap();
        let manifest: Manifest = read(&path).unwrap();
        assert_eq!(manifest.package.name, "app");
        let table: Table = read(&path).unwrap();
        assert_eq!(table["package"]["version"].as_str(), Some("1.0.0"));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.toml");
        std::fs::write(&path, "[package]\nname = 3\n").unwrap();
        let err = format!("{:#}", read::<Manifest>(&path).unwrap_err());
        assert!(err.contains("Cargo.toml is not valid"), "{err}");
        assert!(
            read_optional::<Manifest>(dir.path().join("none.toml"))
                .unwrap()
                .is_none()
        );
    }
}
