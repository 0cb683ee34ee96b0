//! `package-lock.json` (lockfile v2 and v3): what to install where, and whether it still
//! matches `package.json`.

use std::collections::BTreeMap;

use buildd_sdk::bail;
use serde::Deserialize;

use crate::package::PackageJson;

/// The platform node runs on in a slug.
const OS: &str = "linux";
const CPU: &str = "x64";
const LIBC: &str = "glibc";

/// The parts of a lockfile the buildpack reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lockfile {
    /// 1 (npm 5-6, unsupported), 2 (npm 7-8) or 3 (npm 9+).
    #[serde(default)]
    pub lockfile_version: u32,
    /// Every package by its install path (`node_modules/a/node_modules/b`); `""` is the app.
    #[serde(default)]
    pub packages: BTreeMap<String, Entry>,
}

/// One package of the lockfile.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Entry {
    /// The package's name when it differs from its path (aliases).
    pub name: Option<String>,
    /// Locked version.
    pub version: Option<String>,
    /// Tarball URL.
    pub resolved: Option<String>,
    /// SRI digest of the tarball.
    pub integrity: Option<String>,
    /// Only needed for development.
    pub dev: bool,
    /// Optional: a failure to install it is not fatal.
    pub optional: bool,
    /// Both a dev dependency and an optional dependency of a production one.
    pub dev_optional: bool,
    /// A link to a workspace folder.
    pub link: bool,
    /// Shipped inside its parent's tarball.
    pub in_bundle: bool,
    /// Has `preinstall`/`install`/`postinstall` scripts.
    pub has_install_script: bool,
    /// Executables: a name to a path inside the package, or one path named after the package.
    pub bin: Option<serde_json::Value>,
    /// Operating systems it supports (`!x` excludes).
    pub os: Vec<String>,
    /// CPUs it supports.
    pub cpu: Vec<String>,
    /// C libraries it supports (`glibc`, `musl`).
    pub libc: Vec<String>,
    /// Declared dependencies (only compared for the root).
    pub dependencies: BTreeMap<String, String>,
    /// Declared dev dependencies (only compared for the root).
    pub dev_dependencies: BTreeMap<String, String>,
    /// Declared optional dependencies (only compared for the root).
    pub optional_dependencies: BTreeMap<String, String>,
}

/// A package to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// Where it goes, relative to the app: `node_modules/a/node_modules/b`.
    pub path: String,
    /// Its name, as `require` sees it: `b`, `@scope/c`.
    pub name: String,
    /// Locked version.
    pub version: String,
    /// Tarball URL, when the lockfile has one.
    pub resolved: Option<String>,
    /// Expected SRI digest of the tarball.
    pub integrity: Option<String>,
    /// Executables: link name to path inside the package.
    pub bins: BTreeMap<String, String>,
    /// Whether it has install scripts (which a wasm buildpack cannot run).
    pub has_install_script: bool,
}

/// What a lockfile asks for, after dev and platform filtering.
#[derive(Debug, Default)]
pub struct Plan {
    /// Packages to install, parents before their nested children.
    pub installs: Vec<Install>,
    /// Dev dependencies left out.
    pub skipped_dev: usize,
    /// Optional packages for another platform, left out (`name@version`).
    pub skipped_platform: Vec<String>,
}

/// Parses a lockfile and refuses versions the buildpack cannot install from.
pub fn parse(text: &[u8]) -> buildd_sdk::Result<Lockfile> {
    let lock: Lockfile = buildd_sdk::json::parse(text, "package-lock.json")?;
    match lock.lockfile_version {
        2 | 3 => Ok(lock),
        1 => bail!(
            "package-lock.json is lockfile version 1 (npm 6 or older), which is not supported; \
             run `npm install` with npm 7 or later and commit the updated package-lock.json"
        ),
        v => bail!("package-lock.json has lockfileVersion {v}; versions 2 and 3 are supported"),
    }
}

/// The name a `node_modules/...` path installs: the part after its last `node_modules/`.
pub fn name_of(path: &str) -> &str {
    path.rsplit_once("node_modules/")
        .map_or(path, |(_, name)| name)
}

fn platform_ok(allowed: &[String], actual: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    if allowed.iter().any(|a| a.strip_prefix('!') == Some(actual)) {
        return false;
    }
    let positives: Vec<&String> = allowed.iter().filter(|a| !a.starts_with('!')).collect();
    positives.is_empty() || positives.iter().any(|a| a.as_str() == actual)
}

fn bins(name: &str, bin: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    match bin {
        Some(serde_json::Value::String(path)) => BTreeMap::from([(base.to_string(), path.clone())]),
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| {
                // A bin name is a file name in .bin; npm drops any scope from it.
                let k = k.rsplit('/').next().unwrap_or(k);
                Some((k.to_string(), v.as_str()?.to_string()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// What to install. `include_dev` keeps dev dependencies.
pub fn plan(lock: &Lockfile, include_dev: bool) -> buildd_sdk::Result<Plan> {
    let mut plan = Plan::default();
    let mut skipped_prefixes: Vec<String> = Vec::new();
    for (path, entry) in &lock.packages {
        if path.is_empty() {
            continue;
        }
        if entry.link {
            bail!(
                "{path} links to a workspace folder ({}); npm workspaces (`link: true`) are not \
                 supported yet",
                entry.resolved.as_deref().unwrap_or("?")
            );
        }
        // Workspace sources themselves (`packages/a`) are part of the app, not installs.
        if !path.starts_with("node_modules/") || entry.in_bundle {
            continue;
        }
        if skipped_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_str()))
        {
            continue;
        }
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| name_of(path).to_string());
        let version = entry.version.clone().unwrap_or_default();
        if entry.dev && !include_dev {
            plan.skipped_dev += 1;
            skipped_prefixes.push(format!("{path}/"));
            continue;
        }
        let fits = platform_ok(&entry.os, OS)
            && platform_ok(&entry.cpu, CPU)
            && platform_ok(&entry.libc, LIBC);
        if !fits {
            if entry.optional || entry.dev_optional {
                plan.skipped_platform.push(format!("{name}@{version}"));
                skipped_prefixes.push(format!("{path}/"));
                continue;
            }
            bail!(
                "{name}@{version} does not support {OS}/{CPU} (os: {:?}, cpu: {:?})",
                entry.os,
                entry.cpu
            );
        }
        plan.installs.push(Install {
            path: path.clone(),
            bins: bins(name_of(path), entry.bin.as_ref()),
            name: name_of(path).to_string(),
            version,
            resolved: entry.resolved.clone(),
            integrity: entry.integrity.clone(),
            has_install_script: entry.has_install_script,
        });
    }
    Ok(plan)
}

/// Fails, naming the first difference, when `package.json`'s dependencies are not what the
/// lockfile was made from: `npm ci` would refuse it too.
pub fn check_up_to_date(package: &PackageJson, lock: &Lockfile) -> buildd_sdk::Result<()> {
    let root = lock.packages.get("").cloned().unwrap_or_default();
    let fields = [
        ("dependencies", &package.dependencies, &root.dependencies),
        (
            "devDependencies",
            &package.dev_dependencies,
            &root.dev_dependencies,
        ),
        (
            "optionalDependencies",
            &package.optional_dependencies,
            &root.optional_dependencies,
        ),
    ];
    for (field, wanted, locked) in fields {
        let names: std::collections::BTreeSet<&String> =
            wanted.keys().chain(locked.keys()).collect();
        for name in names {
            match (wanted.get(name), locked.get(name)) {
                (Some(w), Some(l)) if w == l => {}
                (Some(w), Some(l)) => bail!(
                    "package-lock.json is out of date: package.json {field} has {name:?}: {w:?}, \
                     the lockfile has {l:?}; run `npm install` and commit package-lock.json"
                ),
                (Some(w), None) => bail!(
                    "package-lock.json is out of date: package.json {field} has {name:?}: {w:?}, \
                     missing from the lockfile; run `npm install` and commit package-lock.json"
                ),
                (None, Some(_)) => bail!(
                    "package-lock.json is out of date: it locks {field} {name:?}, which \
                     package.json no longer has; run `npm install` and commit package-lock.json"
                ),
                (None, None) => unreachable!(),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"{
      "name": "app", "lockfileVersion": 3, "requires": true,
      "packages": {
        "": { "name": "app", "dependencies": { "a": "^1.0.0", "@s/c": "^2.0.0" },
              "devDependencies": { "d": "^1.0.0" } },
        "node_modules/a": { "version": "1.2.0", "resolved": "http://r/a/-/a-1.2.0.tgz",
              "integrity": "sha512-AAA", "bin": { "a-cli": "bin/cli.js" }, "dependencies": { "b": "^2" } },
        "node_modules/a/node_modules/b": { "version": "2.0.0", "resolved": "http://r/b/-/b-2.0.0.tgz" },
        "node_modules/b": { "version": "1.0.0", "resolved": "http://r/b/-/b-1.0.0.tgz", "hasInstallScript": true },
        "node_modules/@s/c": { "version": "2.1.0", "resolved": "http://r/@s/c/-/c-2.1.0.tgz", "bin": "cli.js" },
        "node_modules/d": { "version": "1.0.0", "resolved": "http://r/d/-/d-1.0.0.tgz", "dev": true },
        "node_modules/d/node_modules/e": { "version": "1.0.0", "dev": true },
        "node_modules/fsevents": { "version": "2.3.3", "optional": true, "os": ["darwin"] },
        "node_modules/linux-only": { "version": "1.0.0", "optional": true, "os": ["linux"], "cpu": ["x64", "arm64"] },
        "node_modules/not-win": { "version": "1.0.0", "optional": true, "os": ["!win32"] },
        "node_modules/musl": { "version": "1.0.0", "optional": true, "libc": ["musl"] }
      }
    }"#;

    fn paths(plan: &Plan) -> Vec<&str> {
        plan.installs.iter().map(|i| i.path.as_str()).collect()
    }

    #[test]
    fn walks_nested_scoped_dev_and_optional_packages() {
        let lock = parse(LOCK.as_bytes()).unwrap();
        let plan = plan(&lock, false).unwrap();
        assert_eq!(
            paths(&plan),
            [
                "node_modules/@s/c",
                "node_modules/a",
                "node_modules/a/node_modules/b",
                "node_modules/b",
                "node_modules/linux-only",
                "node_modules/not-win",
            ]
        );
        assert_eq!(plan.skipped_dev, 1, "d's nested e goes with it");
        assert_eq!(plan.skipped_platform, ["fsevents@2.3.3", "musl@1.0.0"]);
        let c = &plan.installs[0];
        assert_eq!(c.name, "@s/c");
        assert_eq!(
            c.bins,
            BTreeMap::from([("c".to_string(), "cli.js".to_string())])
        );
        let nested = &plan.installs[2];
        assert_eq!(
            (nested.name.as_str(), nested.version.as_str()),
            ("b", "2.0.0")
        );
        assert!(plan.installs[3].has_install_script);
        assert_eq!(plan.installs[1].bins["a-cli"], "bin/cli.js");

        let with_dev = super::plan(&lock, true).unwrap();
        assert!(paths(&with_dev).contains(&"node_modules/d"));
        assert!(paths(&with_dev).contains(&"node_modules/d/node_modules/e"));
        assert_eq!(with_dev.skipped_dev, 0);
    }

    #[test]
    fn links_and_old_lockfiles_are_refused() {
        let linked = r#"{"lockfileVersion": 3, "packages": {
            "node_modules/w": { "resolved": "packages/w", "link": true },
            "packages/w": { "version": "1.0.0" } }}"#;
        let err = plan(&parse(linked.as_bytes()).unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported yet"), "{err}");
        let v1 = parse(br#"{"lockfileVersion": 1, "dependencies": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            v1.contains("lockfile version 1") && v1.contains("npm install"),
            "{v1}"
        );
        let bad = r#"{"lockfileVersion": 3, "packages": {
            "node_modules/x": { "version": "1.0.0", "os": ["darwin"] } }}"#;
        let err = plan(&parse(bad.as_bytes()).unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x@1.0.0 does not support linux/x64"), "{err}");
    }

    #[test]
    fn out_of_date_lockfiles_name_the_first_difference() {
        let lock = parse(LOCK.as_bytes()).unwrap();
        let mut package: PackageJson = serde_json::from_str(
            r#"{"dependencies": {"a": "^1.0.0", "@s/c": "^2.0.0"}, "devDependencies": {"d": "^1.0.0"}}"#,
        )
        .unwrap();
        check_up_to_date(&package, &lock).unwrap();
        package.dependencies.insert("a".into(), "^1.1.0".into());
        let err = check_up_to_date(&package, &lock).unwrap_err().to_string();
        assert!(
            err.contains(r#"dependencies has "a": "^1.1.0", the lockfile has "^1.0.0""#),
            "{err}"
        );
        package.dependencies.insert("a".into(), "^1.0.0".into());
        package.dependencies.insert("new".into(), "1".into());
        let err = check_up_to_date(&package, &lock).unwrap_err().to_string();
        assert!(
            err.contains(r#""new": "1", missing from the lockfile"#),
            "{err}"
        );
        package.dependencies.remove("new");
        package.dev_dependencies.clear();
        let err = check_up_to_date(&package, &lock).unwrap_err().to_string();
        assert!(err.contains(r#"devDependencies "d""#), "{err}");
    }
}
