//! The buildd build engine.
//!
//! A build turns a source (a directory, a tarball, or a URL to one) into a slug: a gzipped tar of
//! `./app/...` that is byte-identical for the same inputs. Buildpacks are WebAssembly components
//! (`wasm32-wasip2`) exporting the `buildd:buildpack` contract; each phase runs in a fresh
//! wasmtime store that sees only the directories granted to it, with bounded memory, time and
//! output. This crate knows nothing of HTTP: the daemon and the CLI drive it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use buildd_runtime::{BuildRequest, Limits, Runtime, RuntimeConfig, Source, Stream};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let static_site = runtime.load(&std::fs::read("static.wasm")?).await?;
//! let outcome = runtime
//!     .build(
//!         BuildRequest {
//!             source: Source::parse("examples/static-site"),
//!             checksum: None,
//!             buildpacks: vec![],
//!             installed: vec![static_site],
//!             config_vars: Default::default(),
//!             cache_dir: None,
//!             work_dir: None,
//!             out: "slug.tgz".into(),
//!             limits: Limits::default(),
//!         },
//!         Arc::new(|_: Stream, line: &str| println!("{line}")),
//!     )
//!     .await?;
//! println!("{} {}", outcome.slug.size, outcome.slug.checksum);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[cfg(feature = "engine")]
mod allow;
#[cfg(feature = "engine")]
mod appfiles;
#[allow(missing_docs)]
#[cfg(feature = "engine")]
mod bindings;
pub mod confine;
#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod fetch;
mod git;
#[cfg(feature = "engine")]
mod gzip;
#[cfg(feature = "engine")]
mod lifecycle;
mod limits;
#[cfg(feature = "engine")]
mod log;
#[cfg(feature = "engine")]
mod sandbox;
#[cfg(feature = "engine")]
mod slug;
mod source;
mod tls;
#[cfg(feature = "engine")]
mod tripwire;
mod unpack;

#[cfg(feature = "engine")]
pub use allow::{GrantedHost, HostGrant};
#[cfg(feature = "engine")]
pub use engine::{Buildpack, BuildpackInfo, Runtime, RuntimeConfig, SUPPORTED_APIS};
#[cfg(feature = "engine")]
pub use fetch::{FetchConfig, FetchStats};
pub use git::GitSource;
#[cfg(feature = "engine")]
pub use lifecycle::{BuildError, BuildOutcome, BuildRequest, FetchSummary};
pub use limits::{LimitExceeded, Limits, NetworkPolicy, SourceLimits, address_class, human};
#[cfg(feature = "engine")]
pub use log::{LogSink, Stream};
#[cfg(feature = "engine")]
pub use sandbox::STACK;
#[cfg(feature = "engine")]
pub use slug::{PackError, SLUG_MTIME, Slug};
pub use source::{Checksum, Source, SourceError};
pub use unpack::AppStats;

/// Whether an error was caused by running out of disk space or into the file size limit
/// (ENOSPC, EFBIG, EDQUOT), anywhere in its chain of causes.
pub fn out_of_storage(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
            if matches!(io.kind(), StorageFull | FileTooLarge | QuotaExceeded)
                || matches!(io.raw_os_error(), Some(27 | 28 | 122))
            {
                return true;
            }
        }
        next = err.source();
    }
    false
}

/// Packs a directory into a deterministic slug at `out`, refusing it past `size_limit` bytes.
/// Returns the compressed size and `SHA256:<hex>`. This is the packer builds use, without the
/// build around it (for `buildd` tools and benchmarks).
#[cfg(feature = "engine")]
pub fn pack_slug(
    app: &std::path::Path,
    out: &std::path::Path,
    size_limit: u64,
) -> Result<(u64, String), PackError> {
    let no_deadline = std::time::Instant::now() + std::time::Duration::from_secs(365 * 86_400);
    slug::pack(app, out, size_limit, no_deadline)
}

/// Fetches and safely unpacks a source into `work/source` (see [`Source`]), verifying
/// `checksum` when given. Returns the app dir (the single top-level directory of a tarball, when
/// it has one) and what was written. This is the unpacker builds use, without the build around it.
pub fn fetch_source(
    source: &Source,
    checksum: Option<&Checksum>,
    work: &std::path::Path,
    limits: &SourceLimits,
) -> Result<(std::path::PathBuf, AppStats), SourceError> {
    let no_deadline = std::time::Instant::now() + std::time::Duration::from_secs(365 * 86_400);
    let fetched = source::fetch(source, checksum, work, limits, no_deadline)?;
    Ok((fetched.app_dir, fetched.stats))
}
