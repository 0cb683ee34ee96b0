//! One buildpack phase in a fresh store: the directories it is granted, its limits, its output.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{v0_1, v0_2};
use crate::engine::{Buildpack, BuildpackInfo, Pre};
use crate::fetch::{FetchConfig, FetchStats, Fetcher, Request};
use crate::limits::LimitExceeded;
use crate::limits::NetworkPolicy;
use crate::log::{BuildLog, Stream};
use crate::tripwire::Tripwire;

/// The stack every build runs on.
pub const STACK: &str = "buildd-1";
/// The wall clock a buildpack sees: 1980-01-01T00:00:01Z, the same fixed time slugs carry, so
/// nothing a buildpack writes depends on when it ran.
const FIXED_WALL_CLOCK: Duration = Duration::from_secs(315_532_801);
/// Table elements an instance may grow to (Rust guests use a few hundred).
const TABLE_LIMIT: usize = 100_000;
/// Time allowed to answer `info` when a component is loaded.
const INFO_TIMEOUT: Duration = Duration::from_secs(10);

/// Guest paths of the granted directories.
const APP: &str = "/app";
const CACHE: &str = "/cache";
const ENV: &str = "/env";

/// Per-store data: the WASI context, the memory limiter, and `fetch` when the phase may.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    fetcher: Option<Arc<Fetcher>>,
}

impl v0_2::buildd::buildpack::types::Host for HostState {}

impl v0_2::buildd::buildpack::host::Host for HostState {
    async fn fetch(
        &mut self,
        request: v0_2::buildd::buildpack::host::FetchRequest,
    ) -> wasmtime::Result<Result<v0_2::buildd::buildpack::host::Fetched, String>> {
        Ok(self.fetch_inner(request).await)
    }

    async fn set_executable(
        &mut self,
        path: String,
        executable: bool,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(match &self.fetcher {
            Some(fetcher) => fetcher.set_executable(&path, executable),
            None => Err(format!(
                "set-executable {path}: file modes can only be changed during compile"
            )),
        })
    }
}

impl HostState {
    async fn fetch_inner(
        &mut self,
        request: v0_2::buildd::buildpack::host::FetchRequest,
    ) -> Result<v0_2::buildd::buildpack::host::Fetched, String> {
        let Some(fetcher) = self.fetcher.clone() else {
            return Err(format!(
                "fetch {}: downloads are only allowed during compile",
                request.url
            ));
        };
        let request = Request {
            url: request.url,
            dest: request.dest,
            digest: request.digest,
            max_bytes: request.max_bytes,
        };
        // Blocking I/O off the async workers; if the build times out, this future is dropped and
        // the download stops at its own timeout, which is capped by the same deadline.
        let fetched = tokio::task::spawn_blocking(move || fetcher.fetch(request))
            .await
            .map_err(|e| format!("fetch: the download task failed: {e}"))??;
        Ok(v0_2::buildd::buildpack::host::Fetched {
            size: fetched.size,
            sha256: fetched.sha256,
            from_cache: fetched.from_cache,
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

struct Limiter {
    memory: u64,
    tripwire: Tripwire,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory {
            let limit = LimitExceeded::Memory(self.memory);
            self.tripwire.trip(limit.clone());
            return Err(wasmtime::Error::msg(limit.to_string()));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_LIMIT {
            let limit = LimitExceeded::Table(TABLE_LIMIT);
            self.tripwire.trip(limit.clone());
            return Err(wasmtime::Error::msg(limit.to_string()));
        }
        Ok(true)
    }
}

struct FixedClock;

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

/// Host directories a phase may see.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grants {
    /// The app dir and whether the phase may write it.
    pub app: Option<(PathBuf, FsPerms)>,
    /// The buildpack's cache dir (read-write).
    pub cache: Option<PathBuf>,
    /// The config vars dir (read-only).
    pub env: Option<PathBuf>,
    /// `fetch`, with the operator's settings and the build's counters (compile only).
    /// The operator's network policy applies to downloads as it does to sources.
    pub fetch: Option<(Arc<FetchConfig>, Arc<FetchStats>, NetworkPolicy)>,
}

/// The guest's view of a phase.
struct Context {
    app_dir: String,
    cache_dir: Option<String>,
    env_dir: String,
    stack: String,
}

/// A process type a buildpack reported.
pub(crate) struct ProcessType {
    pub name: String,
    pub command: String,
}

/// What `release` reported.
pub(crate) struct ReleaseInfo {
    pub process_types: Vec<ProcessType>,
}

impl Grants {
    pub(crate) fn none() -> Self {
        Grants::default()
    }

    fn context(&self) -> Context {
        Context {
            app_dir: APP.into(),
            cache_dir: self.cache.as_ref().map(|_| CACHE.into()),
            env_dir: ENV.into(),
            stack: STACK.into(),
        }
    }
}

/// The bounds and output of the build a phase belongs to.
#[derive(Clone)]
pub(crate) struct Guard {
    pub deadline: Instant,
    pub timeout: Duration,
    pub memory: u64,
    pub tripwire: Tripwire,
    pub log: BuildLog,
}

/// Why a phase did not return.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PhaseError {
    /// A limit stopped it.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The guest trapped (a panic, an out-of-bounds access, a stack overflow...).
    #[error("{0}")]
    Crash(String),
    /// The host could not set the phase up.
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

fn store(
    engine: &Engine,
    info: Option<&BuildpackInfo>,
    grants: &Grants,
    guard: &Guard,
) -> Result<Store<HostState>> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(guard.log.pipe(Stream::Stdout))
        .stderr(guard.log.pipe(Stream::Stderr))
        .wall_clock(FixedClock)
        .insecure_random_seed(0)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        // Each guest file operation would otherwise be a trip through tokio's blocking pool: two
        // context switches per read or write, which dominated installs of thousands of small
        // files (the Node.js benchmark). Local file operations are short; the build's deadline
        // still bounds the phase.
        .allow_blocking_current_thread(true);
    if let Some((app, perms)) = &grants.app {
        wasi.preopened_dir(app, APP, *perms)
            .map_err(|e| anyhow!("granting the app dir: {e}"))?;
    }
    if let Some(cache) = &grants.cache {
        wasi.preopened_dir(cache, CACHE, FsPerms::ReadWrite)
            .map_err(|e| anyhow!("granting the cache dir: {e}"))?;
    }
    if let Some(env) = &grants.env {
        wasi.preopened_dir(env, ENV, FsPerms::ReadOnly)
            .map_err(|e| anyhow!("granting the env dir: {e}"))?;
    }
    let fetcher = match (info, &grants.fetch) {
        (Some(info), Some((config, stats, network))) => {
            let mut dirs = Vec::new();
            if let Some((app, FsPerms::ReadWrite)) = &grants.app {
                dirs.push((APP, app.clone()));
            }
            if let Some(cache) = &grants.cache {
                dirs.push((CACHE, cache.clone()));
            }
            Some(Arc::new(Fetcher::new(
                config.clone(),
                &info.id,
                &info.fetch_hosts,
                dirs,
                guard.deadline,
                stats.clone(),
                network.clone(),
            )))
        }
        _ => None,
    };
    let state = HostState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limiter: Limiter {
            memory: guard.memory,
            tripwire: guard.tripwire.clone(),
        },
        fetcher,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // The callback runs at every epoch tick: check the clock, then let other tasks run.
    let (deadline, timeout, tripwire) = (guard.deadline, guard.timeout, guard.tripwire.clone());
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            tripwire.trip(LimitExceeded::Time(timeout));
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    Ok(store)
}

/// Runs a guest call under the build's deadline; a guest blocked in a host call (a sleep) is
/// cancelled by dropping the future, which epochs alone cannot do.
async fn guarded<T>(
    guard: &Guard,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> Result<T, PhaseError> {
    let outcome = tokio::time::timeout_at(guard.deadline.into(), call).await;
    guard.log.flush();
    match outcome {
        Err(_elapsed) => {
            guard.tripwire.trip(LimitExceeded::Time(guard.timeout));
            Err(guard.tripwire.tripped().unwrap().into())
        }
        Ok(Err(trap)) => Err(match guard.tripwire.tripped() {
            Some(limit) => limit.into(),
            None => PhaseError::Crash(crash_message(&trap)),
        }),
        Ok(Ok(value)) => Ok(value),
    }
}

/// What a trap was, in one line: "wasm trap: call stack exhausted", "wasm trap: wasm
/// `unreachable` instruction executed" (a Rust panic, whose message the guest printed on stderr
/// already), or the host error that stopped it. The wasm backtrace goes to the daemon's log.
fn crash_message(err: &wasmtime::Error) -> String {
    tracing::debug!("guest trap: {err:?}");
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => err
            .to_string()
            .lines()
            .next()
            .unwrap_or("unknown trap")
            .to_string(),
    }
}

/// Instantiates a component of either contract version and runs one export on it; `$ctx`
/// converts the phase context into that version's record.
macro_rules! on_instance {
    ($pre:expr, $store:expr, |$bp:ident, $types:ident| $call:expr) => {
        match $pre {
            Pre::V0_1(pre) => {
                #[allow(unused_imports)]
                use v0_1::buildd::buildpack::types as $types;
                let world = pre.instantiate_async(&mut $store).await?;
                let $bp = world.buildd_buildpack_buildpack();
                $call
            }
            Pre::V0_2(pre) => {
                #[allow(unused_imports)]
                use v0_2::buildd::buildpack::types as $types;
                let world = pre.instantiate_async(&mut $store).await?;
                let $bp = world.buildd_buildpack_buildpack();
                $call
            }
        }
    };
}

macro_rules! build_context {
    ($types:ident, $ctx:expr) => {
        $types::BuildContext {
            app_dir: $ctx.app_dir.clone(),
            cache_dir: $ctx.cache_dir.clone(),
            env_dir: $ctx.env_dir.clone(),
            stack: $ctx.stack.clone(),
        }
    };
}

macro_rules! release_info {
    ($result:expr) => {
        $result.map(|info| ReleaseInfo {
            process_types: info
                .process_types
                .into_iter()
                .map(|p| ProcessType {
                    name: p.name,
                    command: p.command,
                })
                .collect(),
        })
    };
}

/// Asks a freshly loaded component who it is; its output is discarded.
pub(crate) async fn info(engine: &Engine, pre: &Pre, grants: Grants) -> Result<BuildpackInfo> {
    let tripwire = Tripwire::default();
    let guard = Guard {
        deadline: Instant::now() + INFO_TIMEOUT,
        timeout: INFO_TIMEOUT,
        memory: 64 << 20,
        log: BuildLog::new(
            std::sync::Arc::new(|_: Stream, _: &str| {}),
            64 << 10,
            tripwire.clone(),
        ),
        tripwire,
    };
    let mut store = store(engine, None, &grants, &guard)?;
    let info = guarded(&guard, async {
        Ok(match pre {
            Pre::V0_1(pre) => {
                let world = pre.instantiate_async(&mut store).await?;
                let info = world
                    .buildd_buildpack_buildpack()
                    .call_info(&mut store)
                    .await?;
                BuildpackInfo {
                    id: info.id,
                    name: info.name,
                    version: info.version,
                    api: info.api,
                    fetch_hosts: Vec::new(),
                    digest: String::new(),
                }
            }
            Pre::V0_2(pre) => {
                let world = pre.instantiate_async(&mut store).await?;
                let info = world
                    .buildd_buildpack_buildpack()
                    .call_info(&mut store)
                    .await?;
                BuildpackInfo {
                    id: info.id,
                    name: info.name,
                    version: info.version,
                    api: info.api,
                    fetch_hosts: info.fetch_hosts,
                    digest: String::new(),
                }
            }
        })
    })
    .await
    .map_err(|e| anyhow!("asking the component for its info: {e}"))?;
    Ok(info)
}

/// `detect`: the app read-only, the config vars.
pub(crate) async fn detect(
    engine: &Engine,
    bp: &Buildpack,
    grants: &Grants,
    guard: &Guard,
) -> Result<Option<String>, PhaseError> {
    let mut store = store(engine, Some(&bp.info), grants, guard)?;
    let ctx = grants.context();
    guarded(guard, async {
        on_instance!(&bp.pre, store, |world, types| {
            world
                .call_detect(&mut store, &build_context!(types, ctx))
                .await
        })
    })
    .await
}

/// `compile`: the app read-write, the cache, the config vars, `fetch`.
pub(crate) async fn compile(
    engine: &Engine,
    bp: &Buildpack,
    grants: &Grants,
    guard: &Guard,
) -> Result<Result<(), String>, PhaseError> {
    let mut store = store(engine, Some(&bp.info), grants, guard)?;
    let ctx = grants.context();
    guarded(guard, async {
        on_instance!(&bp.pre, store, |world, types| {
            world
                .call_compile(&mut store, &build_context!(types, ctx))
                .await
        })
    })
    .await
}

/// `release`: the compiled app read-only, the config vars.
pub(crate) async fn release(
    engine: &Engine,
    bp: &Buildpack,
    grants: &Grants,
    guard: &Guard,
) -> Result<Result<ReleaseInfo, String>, PhaseError> {
    let mut store = store(engine, Some(&bp.info), grants, guard)?;
    let ctx = grants.context();
    guarded(guard, async {
        Ok(on_instance!(&bp.pre, store, |world, types| {
            release_info!(
                world
                    .call_release(&mut store, &build_context!(types, ctx))
                    .await?
            )
        }))
    })
    .await
}
