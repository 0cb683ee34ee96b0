//! Installing the lockfile's packages into `node_modules`, and linking their executables.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use buildd_sdk::{Context, bail};

use crate::lockfile::Install;
use crate::net::Fetcher;
use crate::registry;

/// What installing did.
#[derive(Debug, Default)]
pub struct Installed {
    /// Packages installed.
    pub packages: usize,
    /// Executables linked into a `.bin`.
    pub bins: usize,
    /// Paths (relative to the app) that must be executable: bin targets and files whose tar mode
    /// said so.
    pub executables: BTreeSet<String>,
    /// `name@version` of packages whose install scripts were not run.
    pub scripts_not_run: Vec<String>,
}

/// The URL to fetch a package from.
pub fn tarball_url(install: &Install, registry: &str) -> buildd_sdk::Result<String> {
    match install.resolved.as_deref() {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(registry::rewrite_resolved(url, registry))
        }
        Some(other) => bail!(
            "{}@{} is resolved from {other:?}; only registry tarballs (http/https) are supported",
            install.name,
            install.version
        ),
        None => Ok(registry::tarball_url(
            registry,
            &install.name,
            &install.version,
        )),
    }
}

/// The `.bin` directory for a package at `path` (`node_modules/a/node_modules/b` gives
/// `node_modules/a/node_modules/.bin`), the relative target of its bin `file` from there, and
/// the target's path relative to the app.
pub fn bin_link(path: &str, file: &str) -> buildd_sdk::Result<(String, String, String)> {
    let (parent, name) = path
        .rsplit_once("node_modules/")
        .context("a package path outside node_modules")?;
    let mut clean = Vec::new();
    for part in Path::new(file).components() {
        match part {
            Component::Normal(p) => clean.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => bail!("{name}: bin {file:?} must be a path inside the package"),
        }
    }
    if clean.is_empty() {
        bail!("{name}: empty bin path");
    }
    let clean = clean.join("/");
    Ok((
        format!("{parent}node_modules/.bin"),
        format!("../{name}/{clean}"),
        format!("{path}/{clean}"),
    ))
}

/// Installs every package into `app`, parents first. `node_modules` is replaced whole, as
/// `npm ci` does.
pub fn install_all(
    net: &dyn Fetcher,
    app: &Path,
    installs: &[Install],
    registry: &str,
) -> buildd_sdk::Result<Installed> {
    let mut done = Installed::default();
    let node_modules = app.join("node_modules");
    if node_modules.exists() {
        buildd_sdk::output::info("Removing the node_modules in the source (npm ci does too)");
        std::fs::remove_dir_all(&node_modules).context("removing node_modules")?;
    }
    for install in installs {
        let label = format!("{}@{}", install.name, install.version);
        let url = tarball_url(install, registry)?;
        let tarball = net
            .bytes(&url, install.integrity.as_deref())
            .with_context(|| format!("fetching {label}"))?;
        let dest = app.join(&install.path);
        let unpacked = crate::unpack::unpack_tgz(&tarball[..], &dest)
            .with_context(|| format!("unpacking {label}"))?;
        done.packages += 1;
        for exec in unpacked.executables {
            done.executables
                .insert(format!("{}/{}", install.path, exec.display()));
        }
        for (bin, file) in &install.bins {
            let (bin_dir, target, in_app) = bin_link(&install.path, file)?;
            let bin_dir = app.join(bin_dir);
            if !app.join(&in_app).is_file() {
                buildd_sdk::output::warning(&format!("{label}: bin {bin} -> {file} is missing"));
                continue;
            }
            std::fs::create_dir_all(&bin_dir).context("creating node_modules/.bin")?;
            let link = bin_dir.join(bin);
            let _ = std::fs::remove_file(&link);
            crate::fsutil::symlink(&target, &link)?;
            done.bins += 1;
            done.executables.insert(in_app);
        }
        if install.has_install_script {
            done.scripts_not_run.push(label);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::net::fake::FakeFetcher;
    use crate::unpack::tests::tgz;
    use buildd_sdk::digest::{Algorithm, sri};

    #[test]
    fn bin_links_are_relative_to_their_node_modules() {
        let (dir, target, file) = bin_link("node_modules/a", "./bin/cli.js").unwrap();
        assert_eq!(
            (dir.as_str(), target.as_str()),
            ("node_modules/.bin", "../a/bin/cli.js")
        );
        assert_eq!(file, "node_modules/a/bin/cli.js");
        let (dir, target, _) = bin_link("node_modules/a/node_modules/@s/c", "cli.js").unwrap();
        assert_eq!(dir, "node_modules/a/node_modules/.bin");
        assert_eq!(target, "../@s/c/cli.js");
        assert!(bin_link("node_modules/a", "../../evil").is_err());
        assert!(bin_link("node_modules/a", "/bin/sh").is_err());
    }

    #[test]
    fn tarball_urls_come_from_the_lockfile_or_the_registry() {
        let mut install = Install {
            path: "node_modules/@s/c".into(),
            name: "@s/c".into(),
            version: "1.0.0".into(),
            resolved: None,
            integrity: None,
            bins: BTreeMap::new(),
            has_install_script: false,
        };
        assert_eq!(
            tarball_url(&install, "http://m/").unwrap(),
            "http://m/@s/c/-/c-1.0.0.tgz"
        );
        install.resolved = Some("https://registry.npmjs.org/@s/c/-/c-1.0.0.tgz".into());
        assert_eq!(
            tarball_url(&install, "http://m/").unwrap(),
            "http://m/@s/c/-/c-1.0.0.tgz"
        );
        install.resolved = Some("git+ssh://git@host/x.git".into());
        assert!(tarball_url(&install, "http://m/").is_err());
    }

    #[test]
    fn installs_nested_packages_links_bins_and_checks_integrity() {
        let a = tgz(&[
            ("package/package.json", 0o644, "{\"name\":\"a\"}"),
            ("package/cli.js", 0o644, "#!/usr/bin/env node\n"),
        ]);
        let b = tgz(&[("package/index.js", 0o644, "module.exports = 2")]);
        let net = FakeFetcher::default()
            .serve("http://r/a.tgz", a.clone())
            .serve("http://r/b.tgz", b.clone());
        let install = |path: &str, url: &str, body: &[u8], bins: &[(&str, &str)]| Install {
            path: path.into(),
            name: crate::lockfile::name_of(path).into(),
            version: "1.0.0".into(),
            resolved: Some(url.into()),
            integrity: Some(sri(Algorithm::Sha512, body)),
            bins: bins
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            has_install_script: path.ends_with("/b"),
        };
        let app = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(app.path().join("node_modules/stale")).unwrap();
        let installs = [
            install("node_modules/a", "http://r/a.tgz", &a, &[("a", "cli.js")]),
            install("node_modules/a/node_modules/b", "http://r/b.tgz", &b, &[]),
        ];
        let done = install_all(&net, app.path(), &installs, "http://r/").unwrap();
        assert_eq!((done.packages, done.bins), (2, 1));
        assert!(!app.path().join("node_modules/stale").exists());
        let nested = app.path().join("node_modules/a/node_modules/b/index.js");
        assert_eq!(
            std::fs::read_to_string(nested).unwrap(),
            "module.exports = 2"
        );
        let link = std::fs::read_link(app.path().join("node_modules/.bin/a")).unwrap();
        assert_eq!(link, Path::new("../a/cli.js"));
        assert!(done.executables.contains("node_modules/a/cli.js"));
        assert_eq!(done.scripts_not_run, ["b@1.0.0"]);

        let mut tampered = installs[1].clone();
        tampered.integrity = Some(sri(Algorithm::Sha512, b"something else"));
        let err = install_all(&net, app.path(), &[tampered], "http://r/").unwrap_err();
        assert!(format!("{err:#}").contains("integrity mismatch"), "{err:#}");
    }
}
