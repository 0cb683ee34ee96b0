//! The buildpacks a server can run: the first-party ones it carries, those the operator passed
//! with `--buildpack`, and those uploaded through `POST /buildpacks`.

use std::sync::RwLock;

use buildd_runtime::Buildpack;

/// One installed buildpack.
#[derive(Clone)]
pub struct Entry {
    /// The name builds and buildpack installations use (the component's id unless the uploader
    /// chose another).
    pub name: String,
    /// A short alias (`static` for `buildd/static`).
    pub alias: Option<String>,
    /// The loaded component.
    pub buildpack: Buildpack,
    /// Carried by the binary or given on the command line: cannot be deleted over the API.
    pub builtin: bool,
    /// When it was installed.
    pub created_at: String,
}

impl Entry {
    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.alias.as_deref() == Some(name) || self.buildpack.info().id == name
    }

    /// A stable UUID for the buildpack: derived from its digest, so the same bytes keep it.
    pub fn uuid(&self) -> String {
        let hex = self.buildpack.info().digest.trim_start_matches("sha256:");
        let h = &hex[..32.min(hex.len())];
        if h.len() < 32 {
            return uuid::Uuid::nil().to_string();
        }
        format!(
            "{}-{}-4{}-8{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
}

/// See the module docs.
#[derive(Default)]
pub struct Registry {
    entries: RwLock<Vec<Entry>>,
}

impl Registry {
    /// Adds a buildpack; detection tries buildpacks in the order they were added.
    pub fn add(&self, entry: Entry) {
        self.entries.write().unwrap().push(entry);
    }

    /// A buildpack by name, alias or component id.
    pub fn get(&self, name: &str) -> Option<Entry> {
        self.entries
            .read()
            .unwrap()
            .iter()
            .find(|e| e.answers_to(name))
            .cloned()
    }

    /// Every buildpack, in detection order.
    pub fn list(&self) -> Vec<Entry> {
        self.entries.read().unwrap().clone()
    }

    /// The components, in detection order.
    pub fn installed(&self) -> Vec<Buildpack> {
        self.entries
            .read()
            .unwrap()
            .iter()
            .map(|e| e.buildpack.clone())
            .collect()
    }

    /// Removes an uploaded buildpack by its exact name.
    pub fn remove(&self, name: &str) -> Option<Entry> {
        let mut entries = self.entries.write().unwrap();
        let at = entries.iter().position(|e| e.name == name && !e.builtin)?;
        Some(entries.remove(at))
    }
}
