//! Running one build: resolve its source and buildpacks, run it in the engine with its output
//! going to the live log, then store the slug and release it, or record the failure.

use std::sync::Arc;

use buildd_runtime::{BuildRequest, Checksum, GitSource, Limits, Source, Stream};

use super::ServerState;
use super::db::sql::Dialect;
use super::db::{Build, LogLine, Slug, UsedBuildpack, new_id, new_secret, now};
use super::logs::{LiveLog, LogWriter};

/// Runs a build this node claimed to its end. Never panics on a bad build: every failure is
/// recorded. Only a node still holding the build may record its end: one that lost its claim
/// (thought dead, the build handed to another node) drops its result.
pub async fn run(state: &Arc<ServerState>, build: Build) {
    let writer = LogWriter::start(state.db.clone(), state.log_events.clone(), build.id.clone());
    let log = writer.live.clone();
    if state.db.dialect() == Dialect::Postgres || build.attempts > 1 {
        log.push(
            "STDOUT",
            &format!(
                "-----> Building on node {} (attempt {})",
                state.queue.node(),
                build.attempts
            ),
        );
    }
    let ended_here = match execute(state, &build, &log).await {
        Ok(()) => true,
        Err(reason) => {
            match state
                .db
                .fail_build(build.id.clone(), reason, build.node.clone())
                .await
            {
                Ok(changed) => changed,
                Err(err) => {
                    tracing::error!(build = %build.id, "recording the failure: {err:#}");
                    false
                }
            }
        }
    };
    writer.flush().await;
    if ended_here {
        store_log(state, &build.id).await;
    }
}

/// Records a build that never finished (cancelled) as failed, with the reason in its output.
pub async fn finish_failed(
    state: &Arc<ServerState>,
    build_id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    state
        .db
        .append_log(
            build_id.to_string(),
            vec![LogLine {
                stream: "STDOUT".into(),
                line: format!(" !     {reason}"),
            }],
        )
        .await?;
    if state
        .db
        .fail_build(build_id.to_string(), reason.to_string(), None)
        .await?
    {
        store_log(state, build_id).await;
    }
    Ok(())
}

/// Stores the output for good, which lets readers reach EOF: the status is final by now.
async fn store_log(state: &Arc<ServerState>, build_id: &str) {
    if let Err(err) = state.db.store_log(build_id.to_string()).await {
        tracing::error!(build = %build_id, "storing the output: {err:#}");
    }
    state.log_events.wake(build_id);
}

async fn execute(
    state: &Arc<ServerState>,
    build: &Build,
    log: &Arc<LiveLog>,
) -> Result<(), String> {
    let internal = |e: anyhow::Error| {
        tracing::error!(build = %build.id, "{e:#}");
        "internal error; see the daemon's log".to_string()
    };
    let source = state.resolve_source(&build.source_url).await.map_err(|e| {
        log.push("STDOUT", &format!(" !     {e}"));
        e
    })?;
    let checksum = build
        .source_checksum
        .as_deref()
        .map(str::parse::<Checksum>)
        .transpose()
        .map_err(|e| e.to_string())?;

    // Another node may have uploaded (or deleted) a buildpack this build names.
    state.sync_buildpacks(false).await.map_err(internal)?;
    let requested = match &build.buildpacks {
        Some(list) => list.clone(),
        None => state
            .db
            .installations(build.app_id.clone())
            .await
            .map_err(internal)?,
    };
    let buildpacks = requested
        .iter()
        .map(|name| {
            state
                .buildpack(name)
                .ok_or_else(|| format!("Unknown buildpack {name:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config_vars = state
        .db
        .config_vars(build.app_id.clone())
        .await
        .map_err(internal)?;
    let out = state.blobs.temp().map_err(internal)?;
    // The app's cache as another node may have left it. Without it the build starts cold.
    if let Err(err) = state.build_caches.restore(&build.app_id).await {
        tracing::warn!(build = %build.id, "restoring the build cache: {err:#}");
    }

    let sink_log = log.clone();
    let sink = Arc::new(move |stream: Stream, line: &str| {
        sink_log.push(
            if stream == Stream::Stderr {
                "STDERR"
            } else {
                "STDOUT"
            },
            line,
        );
    });
    let request = BuildRequest {
        source,
        checksum,
        buildpacks,
        installed: state.registry.installed(),
        config_vars,
        cache_dir: Some(state.cache_dir(&build.app_id)),
        work_dir: Some(state.config.data_dir.join("work")),
        out: out.to_path_buf(),
        limits: Limits {
            timeout: state.config.build_timeout,
            cache_size: state.config.cache_limit,
            source: state.config.source_limits.clone(),
            ..Limits::default()
        },
    };
    let outcome = state
        .runtime
        .build(request, sink)
        .await
        .map_err(|e| e.to_string())?;

    let (sha, size) = state
        .blobs
        .adopt(&outcome.slug.path)
        .await
        .map_err(internal)?;
    // The build succeeded: share its cache with the other nodes. Not a reason to fail it.
    if let Err(err) = state.build_caches.save(&build.app_id).await {
        tracing::warn!(build = %build.id, "saving the build cache: {err:#}");
    }
    let ts = now();
    let slug = Slug {
        id: new_id(),
        app_id: build.app_id.clone(),
        blob_secret: new_secret(),
        blob_sha: Some(sha),
        checksum: Some(outcome.slug.checksum.clone()),
        size: Some(size as i64),
        process_types: outcome.slug.process_types.clone(),
        buildpack_description: Some(outcome.description.clone()),
        // A git source's resolved commit is the slug's commit.
        commit: outcome
            .source_commit
            .clone()
            .or_else(|| build.source_version.clone()),
        commit_description: build.source_version_description.clone(),
        stack: buildd_runtime::STACK.to_string(),
        created_at: ts.clone(),
        updated_at: ts,
    };
    let description = match slug.commit.as_ref() {
        Some(v) => format!("Deploy {}", &v[..v.len().min(8)]),
        None => "Deploy".to_string(),
    };
    let used = outcome
        .buildpacks
        .iter()
        .map(|b| UsedBuildpack {
            id: b.id.clone(),
            digest: b.digest.clone(),
        })
        .collect();
    let done = state
        .db
        .succeed_build(build.clone(), slug, description, used)
        .await
        .map_err(internal)?;
    if let Some(release_id) = &done.release_id {
        let version = state
            .db
            .release(build.app_id.clone(), release_id.clone())
            .await
            .ok()
            .flatten()
            .map(|r| r.version)
            .unwrap_or_default();
        log.push("STDOUT", "-----> Launching...");
        log.push("STDOUT", &format!("       Released v{version}"));
    } else {
        log.push(
            "STDOUT",
            "-----> Slug built; not released (\"release\": false)",
        );
    }
    Ok(())
}

/// What a `source_blob.url` names.
pub fn parse_source(url: &str) -> Result<SourceKind, String> {
    if let Some(git) = GitSource::parse(url) {
        if git.url.starts_with("file://") {
            return Ok(SourceKind::Local(url.to_string()));
        }
        return Ok(SourceKind::Git(git));
    }
    if url.starts_with("file://") {
        return Ok(SourceKind::Local(url.to_string()));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(SourceKind::Http(url.to_string()));
    }
    Err(format!(
        "Unsupported source URL {url:?}: use http(s)://, git+https://, git:// or a /sources get_url."
    ))
}

/// The kinds of `source_blob.url`.
pub enum SourceKind {
    /// An http(s) URL to a tarball (possibly our own `get_url`).
    Http(String),
    /// A remote git repository and ref.
    Git(GitSource),
    /// Something on the daemon's machine: `file:///path` (a git repository, a directory or a
    /// tarball) or `git+file:///path#REF`.
    Local(String),
}

/// A `file://` URL as an engine source: a git repository when the path is one.
fn local_source(url: &str) -> Source {
    let url = url.strip_prefix("git+").unwrap_or(url);
    let (base, reference) = match url.split_once('#') {
        Some((b, r)) => (b, (!r.is_empty()).then(|| r.to_string())),
        None => (url, None),
    };
    let path = std::path::PathBuf::from(base.trim_start_matches("file://"));
    let is_repo = path.join(".git").exists()
        || (path.join("HEAD").is_file() && path.join("objects").is_dir());
    if is_repo {
        Source::Git(GitSource {
            url: base.to_string(),
            reference,
        })
    } else if path.is_dir() {
        Source::Dir(path)
    } else {
        Source::Archive(path)
    }
}

impl ServerState {
    /// Checks a `source_blob.url` when the build is created, so a bad one is a 422, not a
    /// failed build.
    pub fn check_source_url(&self, url: &str) -> Result<(), String> {
        match parse_source(url)? {
            SourceKind::Http(u)
                if self.config.require_https
                    && u.starts_with("http://")
                    && !u.contains("/blobs/sources/") =>
            {
                Err("This server requires https:// source URLs.".into())
            }
            SourceKind::Local(_) if !self.config.allow_local_sources => Err(
                "file:// sources are disabled on this server (see --allow-local-sources).".into(),
            ),
            _ => Ok(()),
        }
    }

    /// Turns a `source_blob.url` into an engine source: our own `get_url`s are read from the
    /// blob store directly.
    pub async fn resolve_source(&self, url: &str) -> Result<Source, String> {
        match parse_source(url)? {
            SourceKind::Http(u) => {
                if let Some(secret) = u.split("/blobs/sources/").nth(1) {
                    let secret = secret.split(['?', '#']).next().unwrap_or("").to_string();
                    if let Ok(Some(slot)) = self.db.source_by_secret(secret.clone()).await
                        && slot.get_secret == secret
                    {
                        let sha = slot
                            .blob_sha
                            .ok_or("Nothing was uploaded to that source URL.")?;
                        let path = self.blobs.local(&sha).await.map_err(|e| match e {
                            super::blobs::BlobError::NotFound(_) => {
                                "The uploaded source is gone from the blob store.".to_string()
                            }
                            super::blobs::BlobError::Other(e) => {
                                tracing::error!("fetching source blob {sha}: {e:#}");
                                "internal error fetching the source; see the daemon's log"
                                    .to_string()
                            }
                        })?;
                        return Ok(Source::Archive(path));
                    }
                }
                Ok(Source::Url(u))
            }
            SourceKind::Local(url) if self.config.allow_local_sources => Ok(local_source(&url)),
            SourceKind::Local(_) => Err("file:// sources are disabled on this server.".into()),
            SourceKind::Git(git) => Ok(Source::Git(git)),
        }
    }
}
