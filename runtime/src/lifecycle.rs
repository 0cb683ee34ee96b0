//! One build, start to finish: fetch the source, detect, compile and release with each
//! buildpack in turn, then pack the slug.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cap_std::fs::Dir;
use wasmtime_wasi::FsPerms;

use crate::appfiles;
use crate::engine::{Buildpack, BuildpackInfo, Runtime};
use crate::fetch::FetchStats;
use crate::limits::{LimitExceeded, Limits, human};
use crate::log::{BuildLog, LogSink};
use crate::sandbox::{self, Grants, Guard, PhaseError, STACK};
use crate::slug::{self, PackError, Slug};
use crate::source::{self, Checksum, Source, SourceError};
use crate::tripwire::Tripwire;

/// Everything one build needs.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// Where the app comes from.
    pub source: Source,
    /// Expected digest of the source archive, checked before any buildpack sees it.
    pub checksum: Option<Checksum>,
    /// Buildpacks to run, in order. Each must detect the app. Empty: detect over `installed`.
    pub buildpacks: Vec<Buildpack>,
    /// Candidates for detection when `buildpacks` is empty; the first that detects runs.
    pub installed: Vec<Buildpack>,
    /// The app's config vars, shown to buildpacks as files in their env dir.
    pub config_vars: BTreeMap<String, String>,
    /// The app's cache: each buildpack gets its own directory below it, kept between builds.
    /// `None` gives every build an empty, throwaway cache.
    pub cache_dir: Option<PathBuf>,
    /// Where the build's scratch directory is made (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    /// Where to write the slug.
    pub out: PathBuf,
    /// Bounds on the build.
    pub limits: Limits,
}

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The slug.
    pub slug: Slug,
    /// The buildpacks that ran, in order.
    pub buildpacks: Vec<BuildpackInfo>,
    /// What the last buildpack's `detect` called the app, e.g. `Static site`.
    pub description: String,
    /// `SHA256:<hex>` of the source archive, when the source was one.
    pub source_checksum: Option<String>,
    /// The commit a git source resolved to.
    pub source_commit: Option<String>,
    /// What buildpacks downloaded through `fetch`.
    pub fetches: FetchSummary,
}

/// What a build's buildpacks downloaded through `fetch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchSummary {
    /// Bodies downloaded from the network.
    pub downloads: u64,
    /// Bytes downloaded from the network.
    pub bytes: u64,
    /// Fetches answered by the download cache.
    pub cached: u64,
}

/// Why a build failed. The message is meant for the person who started the build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The source could not be fetched or was refused.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A limit stopped the build.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// No buildpack applies, or a requested one does not.
    #[error("{0}")]
    Detect(String),
    /// A buildpack reported an error.
    #[error("buildpack {id} failed: {message}")]
    Buildpack {
        /// The buildpack's id.
        id: String,
        /// Its message.
        message: String,
    },
    /// A buildpack trapped (panicked, overflowed its stack, ...).
    #[error("buildpack {id} crashed: {message}")]
    Crash {
        /// The buildpack's id.
        id: String,
        /// The trap.
        message: String,
    },
    /// The app (as the buildpacks left it) cannot be packed, or its Procfile is invalid.
    #[error(transparent)]
    Slug(#[from] PackError),
    /// The request itself is invalid (a bad config var name, ...).
    #[error("{0}")]
    Invalid(String),
    /// Something went wrong on the host.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl Runtime {
    /// Runs only `detect` of one buildpack on an app directory (read-only), as a build would:
    /// a fresh instance, no env vars. `Ok(Some(name))` when it applies.
    pub async fn detect(
        &self,
        bp: &Buildpack,
        app_dir: &Path,
    ) -> Result<Option<String>, BuildError> {
        let limits = Limits::default();
        let tripwire = Tripwire::default();
        let guard = Guard {
            deadline: Instant::now() + limits.timeout,
            timeout: limits.timeout,
            memory: limits.memory,
            log: BuildLog::new(
                Arc::new(|_: crate::log::Stream, _: &str| {}),
                limits.log_bytes,
                tripwire.clone(),
            ),
            tripwire,
        };
        let grants = Grants {
            app: Some((app_dir.to_path_buf(), FsPerms::ReadOnly)),
            cache: None,
            env: None,
            fetch: None,
        };
        phase(bp, sandbox::detect(&self.engine, bp, &grants, &guard).await)
    }

    /// Runs a whole build, sending its output to `sink` line by line as it happens.
    ///
    /// On failure the error is also written to the output, Heroku style (` !     ...`).
    pub async fn build(
        &self,
        request: BuildRequest,
        sink: Arc<dyn LogSink>,
    ) -> Result<BuildOutcome, BuildError> {
        let tripwire = Tripwire::default();
        let log = BuildLog::new(sink, request.limits.log_bytes, tripwire.clone());
        let mut detected = None;
        let result = self.run(&request, &log, &tripwire, &mut detected).await;
        if let Err(err) = &result {
            for line in err.to_string().lines() {
                log.host(&format!(" !     {line}"));
            }
            if crate::out_of_storage(err) {
                log.host(
                    " !     The build host ran out of disk space (or reached its file size limit) \
                     while writing; this is not a fault of the app. Try again later.",
                );
            }
            match detected {
                Some(name) => log.host(&format!(
                    " !     Push rejected, failed to compile {name} app."
                )),
                None => log.host(" !     Push failed"),
            }
        }
        result
    }

    async fn run(
        &self,
        request: &BuildRequest,
        log: &BuildLog,
        tripwire: &Tripwire,
        detected: &mut Option<String>,
    ) -> Result<BuildOutcome, BuildError> {
        let limits = &request.limits;
        let deadline = Instant::now() + limits.timeout;
        let guard = Guard {
            deadline,
            timeout: limits.timeout,
            memory: limits.memory,
            tripwire: tripwire.clone(),
            log: log.clone(),
        };
        let work = match &request.work_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(anyhow::Error::from)?;
                tempfile::Builder::new().prefix("build-").tempdir_in(dir)
            }
            None => tempfile::Builder::new().prefix("buildd-").tempdir(),
        }
        .map_err(anyhow::Error::from)?;

        log.host(&format!("-----> Building on the {STACK} stack"));
        let fetched = {
            let (source, checksum, path, source_limits) = (
                request.source.clone(),
                request.checksum,
                work.path().to_path_buf(),
                limits.source.clone(),
            );
            let task = tokio::task::spawn_blocking(move || {
                source::fetch(&source, checksum.as_ref(), &path, &source_limits, deadline)
            });
            with_deadline(deadline, limits, task).await??
        };
        if let Some(commit) = &fetched.commit {
            log.host(&format!("       Commit: {commit}"));
        }
        log.host(&format!(
            "       Source: {} files, {}",
            fetched.stats.files,
            human_short(fetched.stats.bytes)
        ));
        let app_dir = fetched.app_dir;
        let app = Dir::open_ambient_dir(&app_dir, cap_std::ambient_authority())
            .map_err(anyhow::Error::from)?;
        let ignored = appfiles::apply_slugignore(&app).map_err(BuildError::Invalid)?;
        if ignored > 0 {
            log.host(&format!(
                "-----> Removed {ignored} paths listed in .slugignore"
            ));
        }
        let env_dir = work.path().join("env");
        write_env(&env_dir, &request.config_vars)?;

        // Detect.
        let detect_grants = Grants {
            app: Some((app_dir.clone(), FsPerms::ReadOnly)),
            cache: None,
            env: Some(env_dir.clone()),
            fetch: None,
        };
        let mut chosen: Vec<(Buildpack, String)> = Vec::new();
        if request.buildpacks.is_empty() {
            for bp in &request.installed {
                if let Some(name) = phase(
                    bp,
                    sandbox::detect(&self.engine, bp, &detect_grants, &guard).await,
                )? {
                    chosen.push((bp.clone(), name));
                    break;
                }
            }
            if chosen.is_empty() {
                return Err(BuildError::Detect(
                    "No default language could be detected for this app.".into(),
                ));
            }
        } else {
            for bp in &request.buildpacks {
                log.host(&format!("-----> Using buildpack: {}", bp.info.id));
                match phase(
                    bp,
                    sandbox::detect(&self.engine, bp, &detect_grants, &guard).await,
                )? {
                    Some(name) => chosen.push((bp.clone(), name)),
                    None => {
                        return Err(BuildError::Detect(format!(
                            "App not compatible with buildpack: {}",
                            bp.info.id
                        )));
                    }
                }
            }
        }

        // Compile, each buildpack on the previous one's output.
        let fetch_stats = Arc::new(FetchStats::default());
        for (bp, name) in &chosen {
            *detected = Some(name.clone());
            log.host(&format!("-----> {name} app detected"));
            let cache = cache_dir(request.cache_dir.as_deref(), work.path(), &bp.info.id)?;
            let grants = Grants {
                app: Some((app_dir.clone(), FsPerms::ReadWrite)),
                cache: Some(cache.clone()),
                env: Some(env_dir.clone()),
                fetch: Some((
                    self.fetch.clone(),
                    fetch_stats.clone(),
                    limits.source.network.clone(),
                )),
            };
            // The quota is enforced while the buildpack writes, not after: a buildpack that
            // fills its cache without end would otherwise fill the host's disk first.
            let compiled = tokio::select! {
                outcome = sandbox::compile(&self.engine, bp, &grants, &guard) => Some(outcome),
                () = cache_overflow(cache.clone(), limits.cache_size) => None,
            };
            let over = match compiled {
                None => true,
                Some(_) => {
                    let (cache, limit) = (cache.clone(), limits.cache_size);
                    tokio::task::spawn_blocking(move || dir_size(&cache, limit) > limit)
                        .await
                        .unwrap_or(true)
                }
            };
            if over {
                // An over-quota cache would fail every later build the same way: empty it.
                empty_dir(&cache);
                return Err(LimitExceeded::Cache(limits.cache_size).into());
            }
            phase(bp, compiled.expect("no overflow"))?.map_err(|message| {
                BuildError::Buildpack {
                    id: bp.info.id.clone(),
                    message,
                }
            })?;
        }

        if fetch_stats.downloads() > 0
            && let Some(dir) = &self.fetch.cache_dir
        {
            let (dir, limit) = (dir.clone(), self.fetch.cache_limit);
            match tokio::task::spawn_blocking(move || crate::fetch::trim_cache(&dir, limit)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::info!("download cache trimmed by {removed} bytes"),
                Ok(Err(e)) => tracing::warn!("trimming the download cache: {e}"),
                Err(e) => tracing::warn!("trimming the download cache: {e}"),
            }
        }
        if fetch_stats.downloads() + fetch_stats.cached() > 0 {
            log.host(&format!(
                "-----> Fetched {} files: {} downloaded ({}), {} from the download cache",
                fetch_stats.downloads() + fetch_stats.cached(),
                fetch_stats.downloads(),
                human_short(fetch_stats.bytes()),
                fetch_stats.cached()
            ));
        }

        // Release: later buildpacks' defaults win; the Procfile wins over all.
        log.host("-----> Discovering process types");
        let release_grants = Grants {
            app: Some((app_dir.clone(), FsPerms::ReadOnly)),
            cache: None,
            env: Some(env_dir.clone()),
            fetch: None,
        };
        let mut process_types = BTreeMap::new();
        for (bp, _) in &chosen {
            let release = phase(
                bp,
                sandbox::release(&self.engine, bp, &release_grants, &guard).await,
            )?
            .map_err(|message| BuildError::Buildpack {
                id: bp.info.id.clone(),
                message,
            })?;
            let defaults: BTreeMap<_, _> = release
                .process_types
                .into_iter()
                .map(|p| (p.name, p.command))
                .collect();
            if !defaults.is_empty() {
                log.host(&format!(
                    "       Default types for buildpack -> {}",
                    defaults.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            process_types.extend(defaults);
        }
        match appfiles::procfile(&app).map_err(BuildError::Invalid)? {
            Some(types) => {
                log.host(&format!(
                    "       Procfile declares types -> {}",
                    types.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
                process_types.extend(types);
            }
            None if process_types.is_empty() => {
                log.host("       Procfile declares types -> (none)");
            }
            None => {}
        }

        // Pack.
        log.host("-----> Compressing...");
        let (size, checksum) = {
            let (app_dir, out, limit) = (app_dir.clone(), request.out.clone(), limits.slug_size);
            let task =
                tokio::task::spawn_blocking(move || slug::pack(&app_dir, &out, limit, deadline));
            with_deadline(deadline, limits, task).await??
        };
        log.host(&format!("       Done: {}", human_short(size)));

        Ok(BuildOutcome {
            slug: Slug {
                path: request.out.clone(),
                size,
                checksum,
                process_types,
            },
            description: chosen
                .last()
                .map(|(_, name)| name.clone())
                .unwrap_or_default(),
            buildpacks: chosen.into_iter().map(|(bp, _)| bp.info).collect(),
            source_checksum: fetched.checksum.map(|c| c.to_string()),
            source_commit: fetched.commit,
            fetches: FetchSummary {
                downloads: fetch_stats.downloads(),
                bytes: fetch_stats.bytes(),
                cached: fetch_stats.cached(),
            },
        })
    }
}

/// Waits for a blocking task, but no longer than the build may run.
async fn with_deadline<T>(
    deadline: Instant,
    limits: &Limits,
    task: tokio::task::JoinHandle<T>,
) -> Result<T, BuildError> {
    match tokio::time::timeout_at(deadline.into(), task).await {
        Err(_) => Err(LimitExceeded::Time(limits.timeout).into()),
        Ok(joined) => joined.map_err(|e| BuildError::Internal(anyhow::anyhow!("build task: {e}"))),
    }
}

/// Maps how a phase ended to a build error, naming the buildpack.
fn phase<T>(bp: &Buildpack, outcome: Result<T, PhaseError>) -> Result<T, BuildError> {
    outcome.map_err(|e| match e {
        PhaseError::Limit(limit) => BuildError::Limit(limit),
        PhaseError::Crash(message) => BuildError::Crash {
            id: bp.info.id.clone(),
            message,
        },
        PhaseError::Setup(err) => BuildError::Internal(err),
    })
}

/// Writes config vars as one file per var, as Heroku's `ENV_DIR`.
fn write_env(dir: &Path, vars: &BTreeMap<String, String>) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir).map_err(anyhow::Error::from)?;
    for (key, value) in vars {
        let valid = !key.is_empty()
            && key.len() <= 256
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(BuildError::Invalid(format!(
                "config var name {key:?} must match ^\\w+$"
            )));
        }
        std::fs::write(dir.join(key), value).map_err(anyhow::Error::from)?;
    }
    Ok(())
}

/// The cache directory of one buildpack: below the app's cache, or a throwaway one.
fn cache_dir(app_cache: Option<&Path>, work: &Path, id: &str) -> Result<PathBuf, BuildError> {
    // Ids are validated at load time to `[a-z0-9._/-]` with no empty, `.` or `..` parts.
    let dir = match app_cache {
        Some(root) => root.join(id.replace('/', "__")),
        None => work.join("cache").join(id.replace('/', "__")),
    };
    std::fs::create_dir_all(&dir).map_err(anyhow::Error::from)?;
    Ok(dir)
}

/// Resolves once the directory holds more than `limit` bytes (checked every 50 ms, so a
/// buildpack overshoots by at most what it writes in that time).
async fn cache_overflow(dir: PathBuf, limit: u64) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let dir = dir.clone();
        let size = tokio::task::spawn_blocking(move || dir_size(&dir, limit))
            .await
            .unwrap_or(0);
        if size > limit {
            return;
        }
    }
}

/// Bytes in the regular files below `dir`, not following links; stops counting past `limit`
/// so a huge tree costs no more than it must.
fn dir_size(dir: &Path, limit: u64) -> u64 {
    let mut total = 0u64;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            // Blocks, not the length: a sparse file costs only what it occupies. Every entry
            // costs at least 512 bytes, so millions of empty files count too.
            total += (std::os::unix::fs::MetadataExt::blocks(&meta) * 512).max(512);
            if total > limit {
                return total;
            }
            if meta.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    total
}

/// Removes everything inside `dir`, keeping `dir`.
fn empty_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
        }
    }
}

/// Heroku prints slug sizes as `1.2M`.
fn human_short(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.0}K", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

#[allow(dead_code)]
fn _assert_send(
    rt: &Runtime,
    r: BuildRequest,
    s: Arc<dyn LogSink>,
) -> impl std::future::Future + Send + '_ {
    let _ = human;
    rt.build(r, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_size_counts_blocks_used_and_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        // A sparse gigabyte occupies (almost) nothing.
        std::fs::File::create(dir.path().join("sparse"))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        assert!(dir_size(dir.path(), u64::MAX) < 64 << 10);
        // Empty files cost nothing on disk but an inode each: they count.
        std::fs::create_dir(dir.path().join("many")).unwrap();
        for i in 0..1000 {
            std::fs::File::create(dir.path().join("many").join(i.to_string())).unwrap();
        }
        assert!(dir_size(dir.path(), u64::MAX) >= 1000 * 512);
        // Counting stops past the limit.
        let stopped = dir_size(dir.path(), 10_000);
        assert!(
            stopped > 10_000 && stopped < 10_000 + (64 << 10),
            "{stopped}"
        );
        empty_dir(dir.path());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
