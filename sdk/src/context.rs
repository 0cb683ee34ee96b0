//! Typed views of what the host tells each phase.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::wit;

/// The app's config vars, read from the host's env dir (one file per var).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// Reads every regular file in `dir` as a config var; a missing dir gives no vars.
    pub fn read(dir: &Path) -> Self {
        let mut vars = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let Ok(key) = entry.file_name().into_string() else {
                    continue;
                };
                if let Ok(value) = std::fs::read_to_string(entry.path()) {
                    vars.insert(key, value);
                }
            }
        }
        Env(vars)
    }

    /// The value of a config var.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// All config vars, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when a config var is set to `1`, `true` or `yes`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key).map(str::trim), Some("1" | "true" | "yes"))
    }
}

/// What `detect` sees: the app (read-only) and the config vars.
#[derive(Debug, Clone)]
pub struct DetectContext {
    /// The app directory (read-only in this phase).
    pub app_dir: PathBuf,
    /// The app's config vars.
    pub env: Env,
    /// The stack name.
    pub stack: String,
}

/// What `compile` sees: the app (read-write), this buildpack's cache and the config vars.
#[derive(Debug, Clone)]
pub struct CompileContext {
    /// The app directory, to transform in place.
    pub app_dir: PathBuf,
    /// This buildpack's cache directory, kept between builds of the same app.
    pub cache_dir: PathBuf,
    /// The app's config vars.
    pub env: Env,
    /// The stack name.
    pub stack: String,
}

/// What `release` sees: the compiled app (read-only) and the config vars.
#[derive(Debug, Clone)]
pub struct ReleaseContext {
    /// The app directory (read-only in this phase).
    pub app_dir: PathBuf,
    /// The app's config vars.
    pub env: Env,
    /// The stack name.
    pub stack: String,
}

macro_rules! app_path {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// A path inside the app directory.
            pub fn app_path(&self, relative: impl AsRef<Path>) -> PathBuf {
                self.app_dir.join(relative)
            }
        }
    )*};
}
app_path!(DetectContext, CompileContext, ReleaseContext);

impl DetectContext {
    pub(crate) fn from_wit(ctx: wit::BuildContext) -> Self {
        DetectContext {
            env: Env::read(Path::new(&ctx.env_dir)),
            app_dir: ctx.app_dir.into(),
            stack: ctx.stack,
        }
    }
}

impl CompileContext {
    pub(crate) fn from_wit(ctx: wit::BuildContext) -> Self {
        CompileContext {
            env: Env::read(Path::new(&ctx.env_dir)),
            app_dir: ctx.app_dir.into(),
            cache_dir: ctx.cache_dir.unwrap_or_else(|| "/cache".into()).into(),
            stack: ctx.stack,
        }
    }
}

impl ReleaseContext {
    pub(crate) fn from_wit(ctx: wit::BuildContext) -> Self {
        ReleaseContext {
            env: Env::read(Path::new(&ctx.env_dir)),
            app_dir: ctx.app_dir.into(),
            stack: ctx.stack,
        }
    }
}
