//! Downloads through the host: the only network a buildpack has.
//!
//! A buildpack has no sockets. It asks the host to download a URL into a file in the app or cache
//! directory; the host checks the URL's host (and every redirect's) against what the operator
//! granted this buildpack (`buildd run --allow-host`, `buildd serve --allow-host`), enforces size
//! and time limits, verifies the expected digest, and keeps a machine-wide download cache, so a
//! repeated build downloads nothing. Declare the hosts you need in [`Buildpack::FETCH_HOSTS`]
//! (crate::Buildpack::FETCH_HOSTS) so operators know what to grant.
//!
//! ```no_run
//! # fn demo(ctx: &buildd_sdk::CompileContext) -> buildd_sdk::Result<()> {
//! use buildd_sdk::fetch::Fetch;
//!
//! let tarball = Fetch::new("https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz")
//!     .digest("sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQEbsc+BnRL8fmr1QhmJrUp+9EqNwYeHwQHvKwRKwUjXqkDA==")
//!     .to(ctx.cache_dir.join("left-pad.tgz"))?;
//! println!("{} bytes, sha256 {}", tarball.size, tarball.sha256);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Result;

/// A download to ask the host for; [`Fetch::to`] or [`Fetch::bytes`] sends it.
#[derive(Debug, Clone)]
#[must_use = "a Fetch does nothing until `to` or `bytes` sends it"]
pub struct Fetch {
    url: String,
    digest: Option<String>,
    max_bytes: Option<u64>,
}

/// What a download wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The file written.
    pub path: PathBuf,
    /// Bytes written.
    pub size: u64,
    /// sha256 of the body, lowercase hex.
    pub sha256: String,
    /// True when the host served it from its download cache rather than the network.
    pub from_cache: bool,
}

/// Where [`Fetch::bytes`] puts its temporary files: the cache directory every compile has.
const SCRATCH_DIR: &str = "/cache/.buildd-fetch";

impl Fetch {
    /// A download of `url` (`http` or `https`).
    pub fn new(url: impl Into<String>) -> Self {
        Fetch {
            url: url.into(),
            digest: None,
            max_bytes: None,
        }
    }

    /// The digest the body must have: an SRI string as in npm's `integrity` (`sha512-<base64>`,
    /// several separated by spaces allowed, the strongest is checked), or `sha256:<hex>` /
    /// `sha512:<hex>`. On a mismatch nothing is written and the fetch fails.
    pub fn digest(mut self, integrity: impl Into<String>) -> Self {
        self.digest = Some(integrity.into());
        self
    }

    /// Refuse a body larger than `bytes` (the host's own cap applies as well).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// The URL this fetch downloads.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Downloads into `dest`, an absolute path inside the app or cache directory. Parent
    /// directories are created; the file is replaced whole or not at all. Only in `compile`.
    pub fn to(self, dest: impl AsRef<Path>) -> Result<Fetched> {
        let dest = dest.as_ref();
        let dest_str = dest
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("fetch destination {dest:?} is not UTF-8"))?;
        let fetched = host::fetch(&host::FetchRequest {
            url: self.url.clone(),
            dest: dest_str.to_string(),
            digest: self.digest.clone(),
            max_bytes: self.max_bytes,
        })
        .map_err(|message| anyhow::anyhow!("{message}"))?;
        Ok(Fetched {
            path: dest.to_path_buf(),
            size: fetched.size,
            sha256: fetched.sha256,
            from_cache: fetched.from_cache,
        })
    }

    /// Downloads into a temporary file in the cache directory and returns its contents.
    pub fn bytes(self) -> Result<Vec<u8>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = Path::new(SCRATCH_DIR).join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
        let fetched = self.to(&tmp)?;
        let bytes = std::fs::read(&fetched.path);
        let _ = std::fs::remove_file(&fetched.path);
        Ok(bytes?)
    }

    /// Like [`Fetch::bytes`], as UTF-8 text.
    pub fn text(self) -> Result<String> {
        let url = self.url.clone();
        String::from_utf8(self.bytes()?).map_err(|_| anyhow::anyhow!("{url}: body is not UTF-8"))
    }
}

use crate::__bindings::buildd::buildpack::host;
