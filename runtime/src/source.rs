//! Where a build's source comes from, and fetching it: streamed, metered, checksummed, unpacked.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

use std::net::IpAddr;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::limits::{NetworkPolicy, SourceLimits, human};
use crate::unpack::{self, AppStats};

/// A build's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local directory, copied before the build.
    Dir(PathBuf),
    /// A local `.tar.gz`, `.tgz` or `.tar` file.
    Archive(PathBuf),
    /// An `http://` or `https://` URL to a tarball, streamed.
    Url(String),
    /// A git repository at a ref, fetched shallowly.
    Git(crate::git::GitSource),
}

impl Source {
    /// Reads a command-line argument: a URL, an existing directory, or else an archive path.
    pub fn parse(arg: &str) -> Source {
        if let Some(git) = crate::git::GitSource::parse(arg) {
            Source::Git(git)
        } else if arg.starts_with("http://") || arg.starts_with("https://") {
            Source::Url(arg.to_string())
        } else if Path::new(arg).is_dir() {
            Source::Dir(arg.into())
        } else {
            Source::Archive(arg.into())
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Dir(p) | Source::Archive(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
            Source::Git(g) => match &g.reference {
                Some(r) => write!(f, "{}#{r}", g.url),
                None => f.write_str(&g.url),
            },
        }
    }
}

/// An expected source digest, written `SHA256:<64 hex digits>` as in Heroku's `source_blob`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(pub [u8; 32]);

impl FromStr for Checksum {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, SourceError> {
        let bad = || SourceError::BadChecksum(s.to_string());
        let (algo, hex_digest) = s.split_once(':').ok_or_else(bad)?;
        if !algo.eq_ignore_ascii_case("sha256") {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| bad())?;
        Ok(Checksum(digest))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", hex::encode(self.0))
    }
}

/// Why a source could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An archive entry broke a rule; names the entry and the rule.
    #[error("source rejected: entry {entry:?}: {rule}")]
    Rejected {
        /// The entry's path as written in the archive.
        entry: String,
        /// The rule it broke.
        rule: String,
    },
    /// A size limit was reached.
    #[error("source too large: {0}")]
    TooLarge(String),
    /// The bytes did not match the expected checksum.
    #[error("source checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// What the request said.
        expected: Checksum,
        /// What was downloaded.
        actual: Checksum,
    },
    /// The checksum was not `SHA256:<hex>`.
    #[error("invalid checksum {0:?}: expected SHA256:<64 hex digits>")]
    BadChecksum(String),
    /// The download failed.
    #[error("downloading {url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Not a (valid) tarball.
    #[error("source is not a valid tarball: {0}")]
    Corrupt(String),
    /// The time limit ran out while fetching.
    #[error("time limit exceeded while fetching the source")]
    Timeout,
    /// Reading or writing failed.
    #[error("source: {0}")]
    Io(#[source] io::Error),
}

/// Carried inside an `io::Error` by the metering reader, so the limit survives the tar and gzip
/// layers in between.
#[derive(Debug)]
struct Stop(SourceError);
impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for Stop {}

impl SourceError {
    /// Maps an error from the reading stack back to what caused it: a limit or a failed read
    /// travels as [`Stop`]; anything else was raised by the gzip or tar parsers.
    pub(crate) fn from_io(err: io::Error) -> SourceError {
        if err.get_ref().is_some_and(|e| e.is::<Stop>()) {
            let inner = err.into_inner().unwrap().downcast::<Stop>().unwrap();
            return inner.0;
        }
        SourceError::Corrupt(err.to_string())
    }
}

/// Counts bytes through a reader, stops past a limit or a deadline, and hashes when asked.
struct Metered<R> {
    inner: R,
    count: u64,
    limit: u64,
    what: &'static str,
    deadline: Instant,
    hasher: Option<Sha256>,
    /// Whether errors of `inner` are transport errors (the raw stream) rather than parse errors
    /// (the decoder).
    raw: bool,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(io::Error::other(Stop(SourceError::Timeout)));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if self.raw && !e.get_ref().is_some_and(|i| i.is::<Stop>()) => {
                return Err(io::Error::other(Stop(SourceError::Io(e))));
            }
            Err(e) => return Err(e),
        };
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(Stop(SourceError::TooLarge(format!(
                "more than {} {}",
                human(self.limit),
                self.what
            )))));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The unpacked source, ready for the buildpacks.
#[derive(Debug)]
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub(crate) struct Fetched {
    /// The app dir: the unpacked tree, or its single top-level directory.
    pub app_dir: PathBuf,
    /// `SHA256:<hex>` of the archive bytes (`None` for a directory source).
    pub checksum: Option<Checksum>,
    /// What was written.
    pub stats: AppStats,
    /// The commit a git source resolved to.
    pub commit: Option<String>,
}

/// Fetches and unpacks `source` into `work/source`, verifying `expected` before returning.
pub(crate) fn fetch(
    source: &Source,
    expected: Option<&Checksum>,
    work: &Path,
    limits: &SourceLimits,
    deadline: Instant,
) -> Result<Fetched, SourceError> {
    let root = work.join("source");
    std::fs::create_dir_all(&root).map_err(SourceError::Io)?;
    let dest = Dir::open_ambient_dir(&root, ambient_authority()).map_err(SourceError::Io)?;
    let mut commit = None;
    let (stats, checksum) = match source {
        Source::Git(git) => {
            check_git_host(&git.url, &limits.network)?;
            if expected.is_some() {
                return Err(SourceError::BadChecksum(
                    "a checksum applies to archives, not git sources".into(),
                ));
            }
            let (stats, sha) = crate::git::fetch(git, work, &dest, limits)?;
            commit = Some(sha);
            (stats, None)
        }
        Source::Dir(path) => {
            if expected.is_some() {
                return Err(SourceError::BadChecksum(
                    "a checksum applies to archives, not directories".into(),
                ));
            }
            let src = Dir::open_ambient_dir(path, ambient_authority()).map_err(|e| {
                SourceError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })?;
            (unpack::copy_dir(&src, &dest, limits)?, None)
        }
        Source::Archive(path) => {
            let file = std::fs::File::open(path).map_err(|e| {
                SourceError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })?;
            let (stats, sum) = unpack_stream(file, &dest, limits, deadline)?;
            (stats, Some(sum))
        }
        Source::Url(url) => {
            let body = download(url, limits)?;
            let (stats, sum) = unpack_stream(body, &dest, limits, deadline)?;
            (stats, Some(sum))
        }
    };
    if let (Some(expected), Some(actual)) = (expected, checksum)
        && *expected != actual
    {
        return Err(SourceError::ChecksumMismatch {
            expected: *expected,
            actual,
        });
    }
    let app_dir = match (source, single_top_dir(&dest)) {
        (Source::Archive(_) | Source::Url(_), Some(name)) => root.join(name),
        _ => root,
    };
    Ok(Fetched {
        app_dir,
        checksum,
        stats,
        commit,
    })
}

/// Tarballs from code hosts wrap the tree in one `repo-ref/` directory: the app is inside it.
fn single_top_dir(dir: &Dir) -> Option<std::ffi::OsString> {
    let mut entries = dir.entries().ok()?;
    let only = entries.next()?.ok()?;
    if entries.next().is_some() || !only.file_type().ok()?.is_dir() {
        return None;
    }
    Some(only.file_name())
}

/// Redirects followed for one download; a loop ends here with a clear error.
const MAX_REDIRECTS: u32 = 5;

/// Resolves names as usual, then refuses the whole lookup if any address is one the policy
/// forbids. ureq connects only to addresses its resolver returned, so the address checked is the
/// address used, on the first request and on every redirect: a name that resolves to a public
/// address when asked once and to a private one the next time (DNS rebinding) gains nothing.
#[derive(Debug)]
pub(crate) struct PolicyResolver(pub(crate) NetworkPolicy);

/// A refused address, carried through ureq as `Error::Other`.
#[derive(Debug)]
struct Refused(String);
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or("");
        check_addresses(&self.0, host, addrs.iter().map(|a| a.ip()))
            .map_err(|e| ureq::Error::Other(Box::new(Refused(e))))?;
        Ok(addrs)
    }
}

/// Refuses `host` if any of its addresses is one `policy` forbids, naming the address's class.
fn check_addresses(
    policy: &NetworkPolicy,
    host: &str,
    addrs: impl IntoIterator<Item = IpAddr>,
) -> Result<(), String> {
    for ip in addrs {
        if let Some(class) = policy.refuses(ip) {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let named = if host == ip.to_string() {
                format!("{ip}")
            } else {
                format!("{host} (resolves to {ip})")
            };
            return Err(format!(
                "refusing to fetch from {named}: a {class} address, and this server forbids \
                 private networks (--deny-private-sources)"
            ));
        }
    }
    Ok(())
}

/// For git sources, whose client resolves names itself: the host is checked once, before the
/// fetch. Unlike tarball URLs this cannot see the address git then connects to.
fn check_git_host(url: &str, policy: &NetworkPolicy) -> Result<(), SourceError> {
    use std::net::ToSocketAddrs;
    if !policy.deny_private || url.starts_with("file://") {
        return Ok(());
    }
    let fail = |message: String| SourceError::Download {
        url: url.to_string(),
        message,
    };
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default_port = if url.starts_with("git://") { 9418 } else { 443 };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse().unwrap_or(default_port))
        }
        _ => (host_port, default_port),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("resolving {bare}: {e}")))?
        .map(|a| a.ip())
        .collect();
    check_addresses(policy, bare, addrs).map_err(fail)
}

/// Explains a failed request in the words of the limit or rule that ended it.
fn describe(err: &ureq::Error, limits: &SourceLimits) -> String {
    use ureq::Timeout;
    match err {
        ureq::Error::Timeout(Timeout::PerRead) => format!(
            "the server sent nothing for {}s (stall timeout)",
            limits.stall_timeout.as_secs_f64()
        ),
        ureq::Error::Timeout(Timeout::RecvResponse) => {
            "the server sent no response within 60s".into()
        }
        ureq::Error::Timeout(Timeout::Connect) => "could not connect within 30s".into(),
        ureq::Error::TooManyRedirects => {
            format!("too many redirects (more than {MAX_REDIRECTS}; a redirect loop?)")
        }
        ureq::Error::Other(inner) if inner.is::<Refused>() => inner.to_string(),
        ureq::Error::Io(io) => match io.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
            Some(inner) => describe(inner, limits),
            None => io.to_string(),
        },
        other => other.to_string(),
    }
}

fn download(url: &str, limits: &SourceLimits) -> Result<impl Read + use<>, SourceError> {
    let fail = |message: String| SourceError::Download {
        url: url.to_string(),
        message,
    };
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .tls_config(crate::tls::config())
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(limits.stall_timeout))
        .max_redirects(MAX_REDIRECTS)
        .http_status_as_error(false);
    if limits.network.deny_private {
        // Through a proxy the proxy resolves the name, and the policy could check only the
        // proxy's address.
        config = config.proxy(None);
    }
    let agent = ureq::Agent::with_parts(
        config.build(),
        DefaultConnector::default(),
        PolicyResolver(limits.network.clone()),
    );
    let response = agent
        .get(url)
        .call()
        .map_err(|e| fail(describe(&e, limits)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}")));
    }
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = length.filter(|l| *l > limits.download_bytes) {
        return Err(SourceError::TooLarge(format!(
            "the server announces {} bytes, the limit is {}",
            length,
            human(limits.download_bytes)
        )));
    }
    let (url, limits) = (url.to_string(), limits.clone());
    let body = response.into_body().into_reader();
    Ok(Paced {
        inner: body,
        url,
        window_start: Instant::now(),
        window_bytes: 0,
        limits,
    })
}

/// Reads a download, failing it when the server is slower than [`SourceLimits::min_rate`] over
/// a [`SourceLimits::stall_timeout`] window (a slow drip never trips the per-read timeout), and
/// naming the URL and the reason when a read fails.
struct Paced<R> {
    inner: R,
    url: String,
    window_start: Instant,
    window_bytes: u64,
    limits: SourceLimits,
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let fail = |message: String| {
            io::Error::other(Stop(SourceError::Download {
                url: self.url.clone(),
                message,
            }))
        };
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                let message = match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
                    Some(inner) => describe(inner, &self.limits),
                    None if e.kind() == io::ErrorKind::TimedOut => format!(
                        "the server sent nothing for {}s (stall timeout)",
                        self.limits.stall_timeout.as_secs_f64()
                    ),
                    None => e.to_string(),
                };
                return Err(fail(message));
            }
        };
        self.window_bytes += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.limits.stall_timeout {
            let needed = (self.limits.min_rate as f64 * elapsed.as_secs_f64()) as u64;
            if self.window_bytes < needed {
                return Err(fail(format!(
                    "too slow: {} bytes in the last {:.0}s, below the minimum of {}/s",
                    self.window_bytes,
                    elapsed.as_secs_f64(),
                    human(self.limits.min_rate)
                )));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

/// Streams an archive (gzipped or plain tar) into `dest`, hashing the raw bytes on the way.
fn unpack_stream(
    raw: impl Read,
    dest: &Dir,
    limits: &SourceLimits,
    deadline: Instant,
) -> Result<(AppStats, Checksum), SourceError> {
    let mut metered = BufReader::with_capacity(
        256 * 1024,
        Metered {
            inner: raw,
            count: 0,
            limit: limits.download_bytes,
            what: "of archive",
            deadline,
            hasher: Some(Sha256::new()),
            raw: true,
        },
    );
    let head = metered.fill_buf().map_err(SourceError::from_io)?;
    if head.is_empty() {
        return Err(SourceError::Corrupt("the archive is empty".into()));
    }
    let gzipped = head.starts_with(&[0x1f, 0x8b]);
    let stats = {
        // Concatenated gzip members are valid gzip (as `gzip -d` reads them); anything else after
        // the last member is refused by the decoder.
        let decoded: Box<dyn Read + '_> = if gzipped {
            Box::new(flate2::bufread::MultiGzDecoder::new(&mut metered))
        } else {
            Box::new(&mut metered)
        };
        let mut unpacked = Metered {
            inner: decoded,
            count: 0,
            limit: limits.unpacked_bytes,
            what: "unpacked",
            deadline,
            hasher: None,
            raw: false,
        };
        let stats = unpack::unpack(&mut unpacked, dest, limits)?;
        // Read to the end so the checksum covers every byte.
        io::copy(&mut unpacked, &mut io::sink()).map_err(SourceError::from_io)?;
        stats
    };
    io::copy(&mut metered, &mut io::sink()).map_err(SourceError::from_io)?;
    let hasher = metered.into_inner().hasher.unwrap();
    Ok((stats, Checksum(hasher.finalize().into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_parse_and_print_like_heroku() {
        let hex = "ab".repeat(32);
        let sum: Checksum = format!("SHA256:{hex}").parse().unwrap();
        assert_eq!(sum.to_string(), format!("SHA256:{hex}"));
        assert!(format!("sha256:{hex}").parse::<Checksum>().is_ok());
        assert!("MD5:abcd".parse::<Checksum>().is_err());
        assert!("SHA256:zz".parse::<Checksum>().is_err());
    }

    #[test]
    fn git_hosts_are_checked_against_the_policy_before_the_fetch() {
        let deny = NetworkPolicy {
            deny_private: true,
            allow: vec![],
        };
        let refused = |url: &str| check_git_host(url, &deny).unwrap_err().to_string();
        assert!(
            refused("https://127.0.0.1:9/repo.git")
                .contains("refusing to fetch from 127.0.0.1: a loopback address")
        );
        assert!(refused("git://localhost/repo").contains("localhost (resolves to"));
        assert!(refused("https://user:pw@[::1]:8443/r.git").contains("::1"));
        assert!(refused("http://169.254.169.254/r.git").contains("link-local (cloud metadata)"));
        assert!(check_git_host("file:///tmp/repo", &deny).is_ok());
        assert!(check_git_host("https://127.0.0.1/r.git", &NetworkPolicy::default()).is_ok());
    }

    #[test]
    fn sources_are_told_apart() {
        assert_eq!(
            Source::parse("https://x/y.tgz"),
            Source::Url("https://x/y.tgz".into())
        );
        assert_eq!(Source::parse("."), Source::Dir(".".into()));
        assert_eq!(
            Source::parse("no-such.tgz"),
            Source::Archive("no-such.tgz".into())
        );
    }
}
