//! The host side of `fetch`: downloads on a buildpack's behalf, within the operator's grants,
//! through a machine-wide content-addressed download cache.
//!
//! Cache layout (every file written to a temp name and renamed, so concurrent builds on the same
//! machine only ever see whole files):
//! - `blobs/<sha256 hex>`: bodies;
//! - `digests/<algo>-<hex>`: the sha256 of the body that has this digest (a verified download);
//! - `urls/<sha256 of the URL>`: the sha256 of the body last served for a URL fetched without a
//!   digest, with the server's `ETag`/`Last-Modified`, to revalidate instead of downloading.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use url::Url;

use crate::allow::{Allowlist, HostGrant};
use crate::limits::NetworkPolicy;
use crate::source::PolicyResolver;
use buildd_digest::{Algorithm, Hash, Hasher, Integrity};

/// Redirects followed per download, each checked against the grants.
const MAX_REDIRECTS: usize = 5;
/// Time to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The operator's settings for `fetch`.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Hosts granted to buildpacks (`--allow-host`). Empty: no buildpack may fetch anything.
    pub grants: Vec<HostGrant>,
    /// The machine-wide download cache; `None` downloads every time.
    pub cache_dir: Option<PathBuf>,
    /// Largest body one download may have.
    pub max_bytes: u64,
    /// Longest one download may take (the build's own time limit applies as well).
    pub timeout: Duration,
    /// Size the download cache is trimmed to after each build that downloaded something, least
    /// recently used bodies first.
    pub cache_limit: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            grants: Vec::new(),
            cache_dir: None,
            max_bytes: 1 << 30,
            timeout: Duration::from_secs(300),
            cache_limit: 10 << 30,
        }
    }
}

/// What the fetches of one build did, for its output and its record.
#[derive(Debug, Default)]
pub struct FetchStats {
    downloads: AtomicU64,
    bytes: AtomicU64,
    cached: AtomicU64,
}

impl FetchStats {
    /// Bodies downloaded from the network.
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }
    /// Bytes downloaded from the network.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Fetches answered from the download cache (including revalidated ones).
    pub fn cached(&self) -> u64 {
        self.cached.load(Ordering::Relaxed)
    }
}

/// A download request, as the guest made it.
pub(crate) struct Request {
    pub url: String,
    pub dest: String,
    pub digest: Option<String>,
    pub max_bytes: Option<u64>,
}

/// What a download wrote.
pub(crate) struct Fetched {
    pub size: u64,
    pub sha256: String,
    pub from_cache: bool,
}

/// Fetches for one buildpack in one phase.
pub(crate) struct Fetcher {
    pub config: Arc<FetchConfig>,
    pub buildpack: String,
    pub allow: Allowlist,
    /// Guest path prefix -> host dir, for the writable grants.
    pub dirs: Vec<(&'static str, PathBuf)>,
    pub deadline: Instant,
    pub stats: Arc<FetchStats>,
    /// Which addresses downloads may connect to (`--deny-private-sources`).
    pub network: NetworkPolicy,
}

impl Fetcher {
    /// The fetcher for buildpack `id` (manifest `manifest`) under `config`.
    pub(crate) fn new(
        config: Arc<FetchConfig>,
        id: &str,
        manifest: &[String],
        dirs: Vec<(&'static str, PathBuf)>,
        deadline: Instant,
        stats: Arc<FetchStats>,
        network: NetworkPolicy,
    ) -> Self {
        Fetcher {
            allow: Allowlist::for_buildpack(&config.grants, id, manifest),
            config,
            buildpack: id.to_string(),
            dirs,
            deadline,
            stats,
            network,
        }
    }

    /// Runs one download; the error is the message the guest (and the build output) sees.
    pub(crate) fn fetch(&self, req: Request) -> Result<Fetched, String> {
        let fail = |m: String| format!("fetch {}: {m}", req.url);
        let url = Url::parse(&req.url).map_err(|e| fail(format!("not a URL: {e}")))?;
        self.check(&url).map_err(fail)?;
        let (root, rel) = self.destination(&req.dest).map_err(fail)?;
        let limit = req
            .max_bytes
            .map_or(self.config.max_bytes, |m| m.min(self.config.max_bytes));
        let expected = req
            .digest
            .as_deref()
            .map(Integrity::parse)
            .transpose()
            .map_err(|e| fail(format!("{e:#}")))?;
        let cache = match &self.config.cache_dir {
            Some(dir) => Some(DownloadCache::open(dir).map_err(fail)?),
            None => None,
        };

        if let (Some(cache), Some(expected)) = (&cache, &expected)
            && let Some(sha256) = cache.by_digest(expected)
        {
            let size = cache.install(&sha256, &root, &rel, limit).map_err(fail)?;
            self.stats.cached.fetch_add(1, Ordering::Relaxed);
            return Ok(Fetched {
                size,
                sha256,
                from_cache: true,
            });
        }
        // Without a digest the URL names the body: revalidate what we have.
        let known = match (&cache, &expected) {
            (Some(cache), None) => cache.by_url(url.as_str()),
            _ => None,
        };
        let scratch = match &cache {
            Some(cache) => tempfile::NamedTempFile::new_in(cache.dir.join("tmp")),
            None => tempfile::NamedTempFile::new(),
        }
        .map_err(|e| fail(format!("creating a temporary file: {e}")))?;
        let got = self
            .download(
                &url,
                known.as_ref(),
                limit,
                expected.as_ref(),
                scratch.as_file(),
            )
            .map_err(fail)?;
        let (sha256, from_cache, validators) = match got {
            Download::NotModified => {
                let known = known.expect("304 only after a conditional request");
                (known.sha256, true, None)
            }
            Download::Body {
                sha256,
                seen,
                size,
                validators,
            } => {
                if let (Some(expected), Some(seen)) = (&expected, &seen)
                    && !expected.matches(&seen.digest)
                {
                    return Err(fail(format!(
                        "integrity mismatch: expected {expected}, got {}",
                        seen.to_sri()
                    )));
                }
                self.stats.downloads.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes.fetch_add(size, Ordering::Relaxed);
                (sha256, false, Some(validators))
            }
        };
        let size = match &cache {
            Some(cache) => {
                if !from_cache {
                    cache.store(scratch, &sha256).map_err(fail)?;
                    if let Some(expected) = &expected {
                        cache.remember_digest(expected, &sha256).map_err(fail)?;
                    }
                    if let (None, Some(validators)) = (&expected, validators) {
                        cache
                            .remember_url(url.as_str(), &sha256, &validators)
                            .map_err(fail)?;
                    }
                } else {
                    self.stats.cached.fetch_add(1, Ordering::Relaxed);
                }
                cache.install(&sha256, &root, &rel, limit).map_err(fail)?
            }
            None => install_file(scratch.path(), &root, &rel).map_err(fail)?,
        };
        Ok(Fetched {
            size,
            sha256,
            from_cache,
        })
    }

    /// Sets or clears the executable bits of a regular file in a writable grant.
    pub(crate) fn set_executable(&self, path: &str, executable: bool) -> Result<(), String> {
        use cap_std::fs::PermissionsExt as _;
        let fail = |m: String| format!("set-executable {path}: {m}");
        let (root, rel) = self.destination(path).map_err(fail)?;
        let dir =
            Dir::open_ambient_dir(&root, ambient_authority()).map_err(|e| fail(e.to_string()))?;
        let meta = dir
            .symlink_metadata(&rel)
            .map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        let mode = if executable { 0o755 } else { 0o644 };
        dir.set_permissions(&rel, cap_std::fs::Permissions::from_mode(mode))
            .map_err(|e| fail(e.to_string()))
    }

    /// Refuses schemes other than http(s) and hosts outside the grants.
    fn check(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme {:?} is not allowed (http and https are)",
                url.scheme()
            ));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(addr)) => format!("[{addr}]"),
            Some(host) => host.to_string(),
            None => return Err("the URL has no host".into()),
        };
        let port = url.port_or_known_default().unwrap_or(0);
        if self.allow.allows(&host, port) {
            Ok(())
        } else {
            Err(format!(
                "host {host}:{port} is not granted to buildpack {} (granted: {}); an operator grants \
                 it with --allow-host {}={host}",
                self.buildpack,
                self.allow.describe(),
                self.buildpack,
            ))
        }
    }

    /// Maps a guest path to a writable grant and a relative path of normal components.
    fn destination(&self, dest: &str) -> Result<(PathBuf, PathBuf), String> {
        let path = Path::new(dest);
        for (prefix, host) in &self.dirs {
            if let Ok(rel) = path.strip_prefix(prefix) {
                let normal = rel.components().all(|c| matches!(c, Component::Normal(_)));
                if !normal || rel.as_os_str().is_empty() {
                    return Err(format!(
                        "destination {dest:?} must name a file below {prefix} without '..'"
                    ));
                }
                return Ok((host.clone(), rel.to_path_buf()));
            }
        }
        let allowed: Vec<_> = self.dirs.iter().map(|(p, _)| *p).collect();
        Err(format!(
            "destination {dest:?} is not inside a writable directory ({})",
            allowed.join(", ")
        ))
    }

    /// GETs `url`, following redirects that stay within the grants, streaming the body into
    /// `out` while hashing it.
    fn download(
        &self,
        url: &Url,
        known: Option<&Known>,
        limit: u64,
        expected: Option<&Integrity>,
        mut out: &std::fs::File,
    ) -> Result<Download, String> {
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .tls_config(crate::tls::config())
            .max_redirects(0)
            .http_status_as_error(false);
        if self.network.deny_private {
            // Through a proxy, the policy could check only the proxy's address.
            config = config.proxy(None);
        }
        // The same resolver as sources: the address checked is the address connected to.
        let agent = ureq::Agent::with_parts(
            config.build(),
            ureq::unversioned::transport::DefaultConnector::default(),
            PolicyResolver(self.network.clone()),
        );
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let left = self
                .deadline
                .saturating_duration_since(Instant::now())
                .min(self.config.timeout);
            if left.is_zero() {
                return Err("out of time before the download started".into());
            }
            let mut request = agent
                .get(current.as_str())
                .config()
                .timeout_global(Some(left))
                .build();
            if let Some(known) = known.filter(|_| current == *url) {
                if let Some(etag) = &known.etag {
                    request = request.header("If-None-Match", etag);
                }
                if let Some(modified) = &known.last_modified {
                    request = request.header("If-Modified-Since", modified);
                }
            }
            let response = request.call().map_err(|e| match e {
                ureq::Error::Timeout(_) => format!("timed out after {}s", left.as_secs()),
                e => e.to_string(),
            })?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            match status {
                301 | 302 | 303 | 307 | 308 => {
                    let location = header("location").ok_or("redirect without a Location")?;
                    let next = current
                        .join(&location)
                        .map_err(|e| format!("redirect to {location:?}: {e}"))?;
                    self.check(&next)
                        .map_err(|e| format!("redirected to {next}: {e}"))?;
                    current = next;
                    continue;
                }
                304 if known.is_some() => return Ok(Download::NotModified),
                200 => {}
                _ => return Err(format!("HTTP {status} from {current}")),
            }
            if let Some(length) = header("content-length").and_then(|l| l.parse::<u64>().ok())
                && length > limit
            {
                return Err(format!(
                    "body of {length} bytes is over the {limit}-byte limit"
                ));
            }
            let validators = Validators {
                etag: header("etag"),
                last_modified: header("last-modified"),
            };
            let mut body = response.into_body().into_reader();
            let mut hasher = BodyHasher::new(expected);
            let mut size = 0u64;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = body.read(&mut buf).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        format!("timed out after {}s", left.as_secs())
                    } else {
                        format!("reading the body: {e}")
                    }
                })?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > limit {
                    return Err(format!("body is over the {limit}-byte limit"));
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| format!("writing the body: {e}"))?;
            }
            let (sha256, seen) = hasher.finish(expected);
            return Ok(Download::Body {
                sha256,
                seen,
                size,
                validators,
            });
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }
}

/// Hashes a body with sha256 (it names the body in the cache) and, when a digest is expected in
/// another algorithm, with that one too.
struct BodyHasher {
    sha256: Hasher,
    other: Option<Hasher>,
}

impl BodyHasher {
    fn new(expected: Option<&Integrity>) -> Self {
        BodyHasher {
            sha256: Algorithm::Sha256.hasher(),
            other: expected
                .map(Integrity::algorithm)
                .filter(|a| *a != Algorithm::Sha256)
                .map(Algorithm::hasher),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(other) = &mut self.other {
            other.update(bytes);
        }
    }

    /// The sha256 (hex) and, for `expected`, the hash actually seen in its algorithm.
    fn finish(self, expected: Option<&Integrity>) -> (String, Option<Hash>) {
        let sha256 = self.sha256.finish();
        let seen = expected.map(|e| Hash {
            algorithm: e.algorithm(),
            digest: match self.other {
                Some(other) => other.finish(),
                None => sha256.clone(),
            },
        });
        (hex::encode(sha256), seen)
    }
}

/// The download cache's name for a digest: the first hash of the strongest algorithm, as
/// `sha512-<hex>`.
fn digest_key(digest: &Integrity) -> String {
    let algorithm = digest.algorithm();
    let hash = digest
        .hashes()
        .iter()
        .find(|h| h.algorithm == algorithm)
        .expect("the strongest algorithm has a hash");
    format!("{}-{}", algorithm, hex::encode(&hash.digest))
}

enum Download {
    NotModified,
    Body {
        sha256: String,
        seen: Option<Hash>,
        size: u64,
        validators: Validators,
    },
}

struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// What the cache knows about a URL fetched without a digest.
struct Known {
    sha256: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// The machine-wide download cache.
struct DownloadCache {
    dir: PathBuf,
}

impl DownloadCache {
    fn open(dir: &Path) -> Result<Self, String> {
        for sub in ["blobs", "digests", "urls", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("creating the download cache {}: {e}", dir.display()))?;
        }
        Ok(DownloadCache {
            dir: dir.to_path_buf(),
        })
    }

    fn blob(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join(sha256)
    }

    /// Marks a body as just used, for the least-recently-used trim.
    fn touch(&self, sha256: &str) {
        if let Ok(file) = std::fs::File::options().write(true).open(self.blob(sha256)) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    fn by_digest(&self, digest: &Integrity) -> Option<String> {
        let sha256 =
            std::fs::read_to_string(self.dir.join("digests").join(digest_key(digest))).ok()?;
        let sha256 = sha256.trim().to_string();
        self.blob(&sha256).is_file().then_some(sha256)
    }

    fn by_url(&self, url: &str) -> Option<Known> {
        let text = std::fs::read_to_string(self.url_path(url)).ok()?;
        let mut lines = text.lines();
        let (stored_url, sha256) = (lines.next()?, lines.next()?.to_string());
        let field = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        let (etag, last_modified) = (field(lines.next()), field(lines.next()));
        (stored_url == url
            && self.blob(&sha256).is_file()
            && (etag.is_some() || last_modified.is_some()))
        .then_some(Known {
            sha256,
            etag,
            last_modified,
        })
    }

    fn url_path(&self, url: &str) -> PathBuf {
        self.dir
            .join("urls")
            .join(hex::encode(Sha256::digest(url.as_bytes())))
    }

    fn store(&self, body: tempfile::NamedTempFile, sha256: &str) -> Result<(), String> {
        body.persist(self.blob(sha256))
            .map(drop)
            .map_err(|e| format!("storing the body in the download cache: {e}"))
    }

    fn remember_digest(&self, digest: &Integrity, sha256: &str) -> Result<(), String> {
        self.write_small(&self.dir.join("digests").join(digest_key(digest)), sha256)
    }

    fn remember_url(&self, url: &str, sha256: &str, v: &Validators) -> Result<(), String> {
        if v.etag.is_none() && v.last_modified.is_none() {
            return Ok(());
        }
        let text = format!(
            "{url}\n{sha256}\n{}\n{}\n",
            v.etag.as_deref().unwrap_or(""),
            v.last_modified.as_deref().unwrap_or("")
        );
        self.write_small(&self.url_path(url), &text)
    }

    fn write_small(&self, path: &Path, text: &str) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("writing the download cache: {e}");
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir.join("tmp")).map_err(fail)?;
        tmp.write_all(text.as_bytes()).map_err(fail)?;
        tmp.persist(path).map(drop).map_err(|e| fail(e.error))
    }

    /// Copies a cached body to the destination (a copy, never a link: the buildpack may change
    /// its file and must not change the cache).
    fn install(&self, sha256: &str, root: &Path, rel: &Path, limit: u64) -> Result<u64, String> {
        let blob = self.blob(sha256);
        self.touch(sha256);
        let len = std::fs::metadata(&blob)
            .map_err(|e| format!("reading the download cache: {e}"))?
            .len();
        if len > limit {
            return Err(format!(
                "body of {len} bytes is over the {limit}-byte limit"
            ));
        }
        install_file(&blob, root, rel)
    }
}

/// Trims the download cache in `dir` to `limit` bytes of bodies, least recently used first.
/// Pointers (`digests/`, `urls/`) to a removed body are misses next time, not errors. Returns the
/// bytes removed.
pub(crate) fn trim_cache(dir: &Path, limit: u64) -> std::io::Result<u64> {
    let mut blobs = Vec::new();
    let mut total = 0u64;
    let entries = match std::fs::read_dir(dir.join("blobs")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            total += meta.len();
            blobs.push((meta.modified()?, entry.path(), meta.len()));
        }
    }
    blobs.sort();
    let mut removed = 0;
    for (_, path, len) in blobs {
        if total - removed <= limit {
            break;
        }
        std::fs::remove_file(&path)?;
        removed += len;
    }
    Ok(removed)
}

/// Writes `from` to `root/rel` through a capability on `root` (so a symlink the buildpack planted
/// cannot redirect the write outside), via a temp name and a rename.
fn install_file(from: &Path, root: &Path, rel: &Path) -> Result<u64, String> {
    let fail = |e: std::io::Error| format!("writing {}: {e}", rel.display());
    let dir = Dir::open_ambient_dir(root, ambient_authority()).map_err(fail)?;
    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        dir.create_dir_all(parent).map_err(fail)?;
    }
    let name = rel.file_name().expect("normal components end in a name");
    let tmp = rel.with_file_name(format!(".{}.buildd-fetch", name.to_string_lossy()));
    let mut source = std::fs::File::open(from).map_err(fail)?;
    let mut target = dir.create(&tmp).map_err(fail)?;
    let copied = std::io::copy(&mut source, &mut target);
    let copied = copied.and_then(|n| target.flush().map(|_| n));
    match copied {
        Ok(n) => {
            dir.rename(&tmp, &dir, rel).map_err(fail)?;
            Ok(n)
        }
        Err(e) => {
            let _ = dir.remove_file(&tmp);
            Err(fail(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::trim_cache;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_cache_is_trimmed_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let now = SystemTime::now();
        for (name, age) in [("old", 300), ("middle", 200), ("new", 100)] {
            std::fs::write(blobs.join(name), vec![0u8; 1000]).unwrap();
            let file = std::fs::File::options()
                .write(true)
                .open(blobs.join(name))
                .unwrap();
            file.set_modified(now - Duration::from_secs(age)).unwrap();
        }
        assert_eq!(trim_cache(dir.path(), 3000).unwrap(), 0, "within the limit");
        assert_eq!(trim_cache(dir.path(), 2000).unwrap(), 1000);
        assert!(!blobs.join("old").exists());
        assert!(blobs.join("middle").exists() && blobs.join("new").exists());
        assert_eq!(trim_cache(dir.path(), 0).unwrap(), 2000);
        assert_eq!(
            trim_cache(tempfile::tempdir().unwrap().path(), 0).unwrap(),
            0
        );
    }
}
