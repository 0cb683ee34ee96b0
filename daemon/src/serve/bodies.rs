//! The JSON request bodies of the API and how they are decoded, free of axum so the fuzz targets
//! (fuzz/) compile this very file.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Why a body was refused: not JSON at all (400) or JSON of the wrong shape (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON.
    #[error("Request body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not what the endpoint takes.
    #[error("Invalid request body: {0}")]
    Invalid(String),
}

/// Decodes a request body. An empty (or all-whitespace) body is `{}`, as Heroku's clients send
/// none for requests whose fields are all optional.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        bytes
    };
    // Parsing to a Value first tells "not JSON" (400) from "wrong shape" (422).
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| BodyError::NotJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| BodyError::Invalid(e.to_string()))
}

/// `POST /apps`.
#[derive(Debug, Deserialize)]
pub struct CreateApp {
    pub name: Option<String>,
    pub stack: Option<String>,
    /// Accepted for Heroku's clients; buildd has one region.
    #[allow(dead_code)]
    pub region: Option<String>,
}

/// `PATCH /apps/{app}`.
#[derive(Debug, Deserialize)]
pub struct UpdateApp {
    pub name: Option<String>,
    pub maintenance: Option<bool>,
    /// Accepted for Heroku's clients; buildd has one stack.
    #[allow(dead_code)]
    pub build_stack: Option<String>,
}

/// `source_blob` of `POST /apps/{app}/builds`.
#[derive(Debug, Deserialize)]
pub struct SourceBlob {
    pub url: Option<String>,
    pub checksum: Option<String>,
    pub version: Option<String>,
    pub version_description: Option<String>,
}

/// One of `buildpacks` of `POST /apps/{app}/builds`.
#[derive(Debug, Deserialize)]
pub struct BuildpackRef {
    pub url: Option<String>,
    pub name: Option<String>,
}

/// `POST /apps/{app}/builds`.
#[derive(Debug, Deserialize)]
pub struct CreateBuild {
    pub source_blob: Option<SourceBlob>,
    pub buildpacks: Option<Vec<BuildpackRef>>,
    pub release: Option<bool>,
}

/// `PATCH /apps/{app}/config-vars`: a value of `null` removes the var.
pub type ConfigPatch = BTreeMap<String, Option<serde_json::Value>>;

/// Validates a config patch: names match `^\w+$`; values are strings, or numbers and booleans
/// (as text), or null to remove.
pub fn config_patch(body: ConfigPatch) -> Result<BTreeMap<String, Option<String>>, String> {
    let mut patch = BTreeMap::new();
    for (key, value) in body {
        let valid = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "Invalid config var name {key:?}: names match ^\\w+$."
            ));
        }
        let value = match value {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                Some(other.to_string())
            }
            Some(_) => return Err(format!("Config var {key} must be a string or null.")),
        };
        patch.insert(key, value);
    }
    Ok(patch)
}

/// One of `updates` of `PUT /apps/{app}/buildpack-installations`.
#[derive(Debug, Deserialize)]
pub struct Update {
    pub buildpack: String,
}

/// `PUT /apps/{app}/buildpack-installations`.
#[derive(Debug, Deserialize)]
pub struct SetInstallations {
    pub updates: Vec<Update>,
}

/// `POST /apps/{app}/releases`.
#[derive(Debug, Deserialize)]
pub struct CreateRelease {
    pub slug: Option<String>,
    pub release: Option<String>,
    pub description: Option<String>,
}

/// `POST /apps/{app}/slugs`.
#[derive(Debug, Deserialize)]
pub struct CreateSlug {
    pub process_types: Option<BTreeMap<String, String>>,
    pub buildpack_provided_description: Option<String>,
    pub checksum: Option<String>,
    pub commit: Option<String>,
    pub commit_description: Option<String>,
    pub stack: Option<String>,
}
