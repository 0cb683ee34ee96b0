//! The parts of the app's `package.json` the buildpack reads.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `package.json`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PackageJson {
    /// The package's name.
    pub name: Option<String>,
    /// `engines.node` and friends.
    pub engines: BTreeMap<String, serde_json::Value>,
    /// `scripts.start` and friends.
    pub scripts: BTreeMap<String, serde_json::Value>,
    /// Production dependencies.
    pub dependencies: BTreeMap<String, String>,
    /// Development dependencies.
    pub dev_dependencies: BTreeMap<String, String>,
    /// Optional dependencies.
    pub optional_dependencies: BTreeMap<String, String>,
}

impl PackageJson {
    /// `engines.node`, when it is set to a non-empty string.
    pub fn node_range(&self) -> Option<&str> {
        self.engines
            .get("node")
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// A script, when it is a non-empty string.
    pub fn script(&self, name: &str) -> Option<&str> {
        self.scripts
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.trim().is_empty())
    }
}
