//! The wasmtime engine, the precompiled-component cache, and loading buildpack components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::{v0_1, v0_2};
use crate::fetch::FetchConfig;
use crate::sandbox::{self, Grants, HostState};

/// Contract versions (of the WIT package `buildd:buildpack`) this host runs, newest first.
pub const SUPPORTED_APIS: &[&str] = &["0.2.0", "0.1.0"];

/// How often the epoch advances; the granularity of the build time limit.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings for a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Where precompiled components are kept, so a second process skips compilation.
    /// `None` compiles in memory every time.
    pub component_cache: Option<PathBuf>,
    /// What buildpacks may download through `fetch`, and where downloads are cached.
    pub fetch: FetchConfig,
}

impl RuntimeConfig {
    /// The default cache location: `$BUILDD_CACHE_DIR`, else `$XDG_CACHE_HOME/buildd`, else
    /// `~/.cache/buildd`, with `components/` below it.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let base = std::env::var_os("BUILDD_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("buildd")))
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/buildd")))?;
        Some(base.join("components"))
    }

    /// The default download cache: `downloads/` beside the default component cache.
    pub fn default_download_dir() -> Option<PathBuf> {
        Self::default_cache_dir().map(|c| c.with_file_name("downloads"))
    }
}

/// Runs buildpack components: one engine and linker, shared by every build in the process.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    linker: Arc<Linker<HostState>>,
    config: RuntimeConfig,
    pub(crate) fetch: Arc<FetchConfig>,
}

/// What a buildpack says about itself, plus the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildpackInfo {
    /// Stable identifier, e.g. `buildd/static`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// The buildpack's version.
    pub version: String,
    /// The contract version it was built against.
    pub api: String,
    /// The hosts it says it fetches from (its manifest); granted only by the operator.
    pub fetch_hosts: Vec<String>,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
}

/// A loaded, precompiled buildpack, ready to instantiate.
#[derive(Clone)]
pub struct Buildpack {
    pub(crate) info: BuildpackInfo,
    pub(crate) pre: Pre,
}

/// A component ready to instantiate, by the contract version it exports.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1(v0_1::BuildpackWorldPre<HostState>),
    V0_2(v0_2::BuildpackWorldPre<HostState>),
}

impl std::fmt::Debug for Buildpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buildpack")
            .field("info", &self.info)
            .finish()
    }
}

impl Buildpack {
    /// What the buildpack says about itself.
    pub fn info(&self) -> &BuildpackInfo {
        &self.info
    }
}

impl Runtime {
    /// Creates the engine (with epoch interruption for time limits) and the WASI linker.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&wasm).map_err(|e| anyhow!("creating the wasm engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("linking WASI: {e}"))?;
        v0_2::BuildpackWorld::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| anyhow!("linking the host interface: {e}"))?;
        spawn_epoch_ticker(&engine);
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            fetch: Arc::new(config.fetch.clone()),
            config,
        })
    }

    /// Loads a buildpack from a component's bytes: compiles it (or reuses the precompiled
    /// artifact cached under the sha256 of the bytes and the engine's settings), checks that it
    /// exports the buildd contract, and asks it who it is.
    pub async fn load(&self, wasm: &[u8]) -> Result<Buildpack> {
        let digest = hex::encode(Sha256::digest(wasm));
        let component = {
            let (engine, cache, wasm, digest) = (
                self.engine.clone(),
                self.config.component_cache.clone(),
                wasm.to_vec(),
                digest.clone(),
            );
            tokio::task::spawn_blocking(move || compile(&engine, cache.as_deref(), &wasm, &digest))
                .await??
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("the component cannot run here: {e}"))?;
        // Pick the bindings by the exact export name: wasmtime's lookup would also match an
        // export of another version, and fail only when the function is called.
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exported = |version: &str| {
            exports
                .iter()
                .any(|e| *e == format!("buildd:buildpack/buildpack@{version}"))
        };
        let pre = if exported("0.2.0") {
            v0_2::BuildpackWorldPre::new(instance_pre).map(Pre::V0_2)
        } else if exported("0.1.0") {
            v0_1::BuildpackWorldPre::new(instance_pre).map(Pre::V0_1)
        } else {
            Err(wasmtime::Error::msg(format!(
                "it exports {}",
                if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                }
            )))
        }
        .map_err(|e| {
            anyhow!(
                "not a buildd buildpack: the component does not export \
                 buildd:buildpack/buildpack@{} or an older version this host runs ({}): {e}",
                SUPPORTED_APIS[0],
                SUPPORTED_APIS[1..].join(", ")
            )
        })?;
        let mut info = sandbox::info(&self.engine, &pre, Grants::none()).await?;
        info.digest = format!("sha256:{digest}");
        if !SUPPORTED_APIS.contains(&info.api.as_str()) {
            anyhow::bail!(
                "buildpack {} speaks contract {}, this host runs {}",
                info.id,
                info.api,
                SUPPORTED_APIS.join(", ")
            );
        }
        validate_id(&info.id)?;
        Ok(Buildpack { info, pre })
    }

    /// Loads a buildpack from a `.wasm` file.
    pub async fn load_file(&self, path: &Path) -> Result<Buildpack> {
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.load(&wasm)
            .await
            .with_context(|| format!("loading buildpack {}", path.display()))
    }
}

/// Ids name cache directories on the host: keep them to a safe alphabet.
fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b))
        && !id
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if ok {
        Ok(())
    } else {
        anyhow::bail!(
            "buildpack id {id:?} must be lowercase letters, digits, '.', '_', '-' and '/'"
        )
    }
}

/// Compiles a component, through the on-disk cache when there is one.
fn compile(engine: &Engine, cache: Option<&Path>, wasm: &[u8], digest: &str) -> Result<Component> {
    let Some(cache) = cache else {
        return Component::new(engine, wasm).map_err(|e| anyhow!("compiling the component: {e}"));
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let path = cache.join(format!("{digest}-{:016x}.cwasm", hasher.finish()));
    if path.is_file() {
        // SAFETY: files in this cache are written only by `precompile_component` below, named by
        // the digest of their source and the engine's settings.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(
                "recompiling: unusable cached component {}: {e}",
                path.display()
            ),
        }
    }
    let artifact = engine
        .precompile_component(wasm)
        .map_err(|e| anyhow!("compiling the component: {e}"))?;
    std::fs::create_dir_all(cache)
        .with_context(|| format!("creating component cache {}", cache.display()))?;
    // Write then rename, so a concurrent process never maps a half-written artifact.
    let tmp = tempfile::NamedTempFile::new_in(cache)?;
    std::fs::write(tmp.path(), &artifact)?;
    tmp.persist(&path)
        .map_err(|e| anyhow!("storing {}: {e}", path.display()))?;
    // SAFETY: the artifact was produced by this engine a moment ago.
    unsafe { Component::deserialize(engine, &artifact) }
        .map_err(|e| anyhow!("loading the compiled component: {e}"))
}

/// Advances the engine's epoch on a timer, for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("buildd-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn ids_cannot_name_paths_outside_the_cache() {
        assert!(validate_id("buildd/static").is_ok());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("a//b").is_err());
        assert!(validate_id("Upper").is_err());
        assert!(validate_id("").is_err());
    }
}
