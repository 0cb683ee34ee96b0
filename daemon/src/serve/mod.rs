//! `buildd serve`: the Heroku-compatible builds API over HTTP, with SQLite persistence, a local
//! blob store, a build queue and live output.

pub mod api;
pub mod blobs;
pub mod bodies;
pub mod build_cache;
pub mod db;
pub mod logs;
pub mod metrics;
pub mod queue;
pub mod range;
pub mod registry;
pub mod worker;

/// The API fuzz target's checks (fuzz/src/api.rs), replayed over its seeds and the crashes it
/// found.
#[cfg(test)]
#[path = "../../../fuzz/src/api.rs"]
mod fuzz_api;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use buildd_runtime::{Buildpack, Runtime, RuntimeConfig, SourceLimits};

use crate::cli::ServeArgs;
use crate::embedded::FIRST_PARTY;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// This node's local state: scratch space, caches, and by default the database and blobs.
    pub data_dir: PathBuf,
    /// The URL clients use, when the Host header is not it (behind a proxy).
    pub public_url: Option<String>,
    /// Whether `file://` sources (paths on this machine) are allowed.
    pub allow_local_sources: bool,
    /// Whether plain `http://` source URLs are refused.
    pub require_https: bool,
    /// Largest upload (source or slug), in bytes.
    pub max_upload: u64,
    /// Time limit of one build.
    pub build_timeout: Duration,
    /// How long upload slots live.
    pub source_ttl: Duration,
    /// Silence on an output stream before a keep-alive byte.
    pub keepalive: Duration,
    /// Bounds on fetching sources, and which networks they may come from.
    pub source_limits: SourceLimits,
    /// Limit on each buildpack's cache of an app, in bytes.
    pub cache_limit: u64,
    /// Largest uploaded buildpack component, in bytes.
    pub max_buildpack_size: u64,
    /// How long compiling an uploaded component may take.
    pub compile_timeout: Duration,
    /// How much of the object store this node keeps on its disk, in bytes.
    pub blob_cache_limit: u64,
}

/// Everything handlers and builds share.
pub struct ServerState {
    pub db: db::Db,
    pub blobs: blobs::Blobs,
    /// Apps' build caches (shared through the blob store's bucket, when it has one).
    pub build_caches: build_cache::BuildCaches,
    /// Wakes readers of build output.
    pub log_events: logs::LogEvents,
    pub queue: queue::Queue,
    pub metrics: metrics::Metrics,
    pub runtime: Runtime,
    /// The buildpacks builds can use.
    pub registry: registry::Registry,
    /// Serializes [`ServerState::sync_buildpacks`], so two syncs cannot load one buildpack twice.
    pub buildpack_sync: tokio::sync::Mutex<()>,
    pub config: ServeConfig,
}

impl ServerState {
    /// A buildpack by name, short name (`static`) or id (`buildd/static`).
    pub fn buildpack(&self, name: &str) -> Option<Buildpack> {
        self.registry.get(name).map(|e| e.buildpack)
    }

    /// An app's build cache.
    pub fn cache_dir(&self, app_id: &str) -> PathBuf {
        self.build_caches.dir(app_id)
    }
}

/// The default data directory: `$XDG_DATA_HOME/buildd`, else `~/.local/share/buildd`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(|d| PathBuf::from(d).join("buildd"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/buildd")))
        .unwrap_or_else(|| PathBuf::from("buildd-data"))
}

/// Opens the database the storage flags name (creating the data dir as needed).
pub fn open_db(storage: &crate::cli::StorageArgs) -> Result<db::Db> {
    let data_dir = storage.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    match &storage.database {
        Some(url) => db::Db::open(url),
        None => db::Db::open(&data_dir.join("buildd.sqlite3").to_string_lossy()),
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let data_dir = args
        .storage
        .data_dir
        .clone()
        .unwrap_or_else(default_data_dir);
    let db = open_db(&args.storage)?;
    let blobs = blobs::Blobs::open(args.storage.blob_store.as_deref(), &data_dir)?;
    let build_caches = build_cache::BuildCaches::new(&blobs, &data_dir);
    let work = data_dir.join("work");
    // Scratch dirs of builds that were running when the daemon stopped.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let runtime = Runtime::new(RuntimeConfig {
        component_cache: args
            .component_cache
            .clone()
            .or_else(|| Some(data_dir.join("components"))),
        fetch: args.fetch.config(Some(data_dir.join("downloads"))),
    })?;
    let registry = registry::Registry::default();
    for embedded in FIRST_PARTY {
        let bp = runtime
            .load(embedded.wasm)
            .await
            .with_context(|| format!("loading {}", embedded.name))?;
        registry.add(registry::Entry {
            name: bp.info().id.clone(),
            alias: Some(embedded.name.to_string()),
            buildpack: bp,
            builtin: true,
            created_at: db::now(),
        });
    }
    for path in &args.buildpacks {
        let bp = runtime.load_file(path).await?;
        tracing::info!(id = %bp.info().id, digest = %bp.info().digest, "installed buildpack");
        registry.add(registry::Entry {
            name: bp.info().id.clone(),
            alias: None,
            buildpack: bp,
            builtin: true,
            created_at: db::now(),
        });
    }
    let concurrency = args.concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    // Two live nodes with one name would renew each other's leases, so a dead one's builds
    // would never be taken back: the default cannot collide.
    let node = args
        .node_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", host_name(), &db::new_id()[..6]));
    let lease = Duration::try_from_secs_f64(args.lease_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--lease-timeout must be a positive number of seconds")?;
    let state = Arc::new(ServerState {
        db,
        blobs,
        build_caches,
        log_events: logs::LogEvents::default(),
        queue: queue::Queue::new(queue::QueueConfig {
            node: node.clone(),
            concurrency,
            lease,
            attempts: args.build_attempts.max(1),
            poll: Duration::from_millis(args.claim_interval_ms.max(10)),
        }),
        metrics: metrics::Metrics::default(),
        runtime,
        registry,
        buildpack_sync: tokio::sync::Mutex::new(()),
        config: ServeConfig {
            data_dir,
            public_url: args.public_url.clone(),
            allow_local_sources: args.allow_local_sources,
            require_https: args.require_https,
            max_upload: args.max_upload << 20,
            build_timeout: Duration::from_secs(args.build_timeout),
            source_ttl: Duration::from_secs(args.source_ttl),
            keepalive: Duration::from_millis(args.stream_keepalive_ms.max(1)),
            source_limits: args.source_net.apply(SourceLimits::default()),
            cache_limit: args.cache_limit << 20,
            max_buildpack_size: args.max_buildpack_size << 20,
            compile_timeout: Duration::try_from_secs_f64(args.buildpack_compile_timeout)
                .context("--buildpack-compile-timeout")?,
            blob_cache_limit: args.blob_cache_limit << 20,
        },
    });

    state.sync_buildpacks(true).await?;
    let listener_state = state.clone();
    state.db.listen(
        &[db::claims::QUEUE_CHANNEL, db::claims::LOG_CHANNEL],
        move |channel, payload| {
            if channel == db::claims::QUEUE_CHANNEL {
                listener_state.queue.wake();
            } else {
                listener_state.log_events.wake(payload);
            }
        },
    );
    queue::Queue::start(state.clone()).await?;
    spawn_janitor(state.clone());

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    // Scripts and tests read this line to learn the port (with --listen 127.0.0.1:0).
    println!("buildd listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, concurrency, %node, "serving");

    let grace = Duration::from_secs(args.shutdown_grace);
    let shutdown_state = state.clone();
    let header_timeout = Duration::from_secs(args.header_read_timeout.max(1));
    serve_http(
        listener,
        api::router(state.clone()),
        header_timeout,
        async move {
            shutdown_signal().await;
            drain(&shutdown_state, grace).await;
        },
    )
    .await;
    Ok(())
}

/// Accepts connections until `shutdown` resolves, then waits for open ones to finish, as
/// `axum::serve` does, but with a timer: a client must send a request's headers within
/// `header_timeout`, so connections that trickle headers forever (slowloris) are closed instead
/// of piling up until the daemon runs out of file descriptors.
async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, most likely: back off rather than spin.
                    tracing::warn!("accepting a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!("connection: {err}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The machine's host name, the start of the default node name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "buildd".to_string())
}

impl ServerState {
    /// Brings the uploaded buildpacks in line with the database: at start, the ones uploaded
    /// in earlier runs (compiled then, so this reads precompiled artifacts); on a shared
    /// database also, before a build or a listing, those other nodes added or removed since.
    pub async fn sync_buildpacks(&self, at_start: bool) -> Result<()> {
        if !at_start && self.db.dialect() == db::sql::Dialect::Sqlite {
            // One node: every upload and delete went through this registry.
            return Ok(());
        }
        let _one_at_a_time = self.buildpack_sync.lock().await;
        let rows = self.db.buildpacks().await?;
        let uploaded: Vec<String> = self
            .registry
            .list()
            .into_iter()
            .filter(|e| !e.builtin)
            .map(|e| e.name)
            .collect();
        for name in &uploaded {
            if !rows.iter().any(|r| &r.name == name) {
                self.registry.remove(name);
            }
        }
        for row in rows.into_iter().filter(|r| !uploaded.contains(&r.name)) {
            let wasm = match self.blobs.local(&row.blob_sha).await {
                Ok(path) => match tokio::fs::read(path).await {
                    Ok(wasm) => wasm,
                    Err(err) => {
                        tracing::error!(name = %row.name, "reading uploaded buildpack: {err}");
                        continue;
                    }
                },
                Err(err) => {
                    tracing::error!(name = %row.name, "uploaded buildpack's blob is missing: {err}");
                    continue;
                }
            };
            match self.runtime.load(&wasm).await {
                Ok(bp) => self.registry.add(registry::Entry {
                    name: row.name,
                    alias: None,
                    buildpack: bp,
                    builtin: false,
                    created_at: row.created_at,
                }),
                Err(err) => {
                    tracing::error!(name = %row.name, "cannot load uploaded buildpack: {err:#}")
                }
            }
        }
        Ok(())
    }
}

/// Deletes expired upload slots and the blobs only they used, and trims this node's copies of
/// the object store (blobs, build caches), now and then.
fn spawn_janitor(state: Arc<ServerState>) {
    let every = state
        .config
        .source_ttl
        .min(Duration::from_secs(600))
        .max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            match state.db.expire_sources(db::now()).await {
                Ok(orphans) => {
                    for sha in orphans {
                        if let Err(err) = state.blobs.delete(&sha).await {
                            tracing::warn!("deleting blob {sha}: {err:#}");
                        }
                    }
                }
                Err(err) => tracing::warn!("expiring uploads: {err:#}"),
            }
            let (blobs, limit) = (state.blobs.clone(), state.config.blob_cache_limit);
            let caches = state.build_caches.clone();
            let busy = state.queue.running_apps();
            let trimmed = tokio::task::spawn_blocking(move || {
                Ok::<_, anyhow::Error>((
                    blobs.trim_cache(limit)?,
                    caches.trim_copies(limit, &busy)?,
                ))
            })
            .await;
            match trimmed {
                Ok(Ok((0, 0))) => {}
                Ok(Ok((b, c))) => tracing::info!(
                    "local copies trimmed: {b} bytes of blobs, {c} bytes of build caches"
                ),
                Ok(Err(err)) => tracing::warn!("trimming local copies: {err:#}"),
                Err(err) => tracing::warn!("trimming local copies: {err}"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Stops claiming, lets running builds finish for up to `grace`, then hands the ones still
/// running back to the queue. Builds that never started stay pending for any node.
async fn drain(state: &Arc<ServerState>, grace: Duration) {
    tracing::info!("shutting down: waiting up to {grace:?} for running builds");
    // Pending builds are for the other nodes now (or for this one's next start).
    state.queue.stop_claiming();
    let deadline = Instant::now() + grace;
    while state.queue.running() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state.queue.shutdown(state).await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `buildd tokens ...`.
pub fn tokens(args: crate::cli::TokensArgs) -> Result<()> {
    use crate::cli::TokensCommand;
    let db = open_db(&args.storage)?;
    match args.command {
        TokensCommand::Create { email, description } => {
            let token = db::new_secret();
            db.create_token(&email, &api::token_hash(&token), &description)?;
            // Only the token on stdout, so scripts can capture it.
            println!("{token}");
        }
        TokensCommand::List => {
            for t in db.list_tokens()? {
                let state = t
                    .revoked_at
                    .map(|r| format!("revoked {r}"))
                    .unwrap_or_else(|| "active".into());
                println!(
                    "{}  {}  {}  {}  {}",
                    t.id, t.email, t.created_at, state, t.description
                );
            }
        }
        TokensCommand::Revoke { id } => {
            if !db.revoke_token(&id)? {
                anyhow::bail!("no active token with id {id}");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}
