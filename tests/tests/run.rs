//! `buildd run` end to end: the real binary builds real apps with the embedded wasm buildpacks.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use common::*;

#[test]
fn procfile_app_builds_into_a_slug_with_its_process_types() {
    let tmp = tempfile::tempdir().unwrap();
    let app = repo_root().join("examples/procfile-app");
    let run = buildd_run(tmp.path(), &[app.to_str().unwrap(), "--out", "slug.tgz"]);
    assert!(run.ok(), "{}", run.all());
    assert!(
        run.stdout.contains("-----> Procfile app detected"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout
            .contains("Procfile declares types -> web, worker"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("  web: bin/web"), "{}", run.all());

    let slug = tmp.path().join("slug.tgz");
    assert_eq!(
        run.checksum(),
        sha256_file(&slug),
        "the printed checksum is the file's"
    );
    let entries = slug_entries(&slug);
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert!(names.contains(&"./app/"), "{names:?}");
    assert_eq!(entries["./app/bin/web"].0, 0o755);
    assert_eq!(entries["./app/Procfile"].0, 0o644);
    assert!(names.iter().all(|n| n.starts_with("./app/")), "{names:?}");
}

#[test]
fn static_app_is_precompressed_with_a_manifest_and_slugignore_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("site");
    let page = format!(
        "<html><body>{}</body></html>\n",
        "hello static world ".repeat(40)
    );
    write_tree(
        &app,
        &[
            ("index.html", page.as_str()),
            ("tiny.txt", "small\n"),
            ("drafts/secret.html", "not for production"),
            ("logo.psd", "binary-ish"),
            (".slugignore", "*.psd\n/drafts\n"),
        ],
    );
    let run = buildd_run(tmp.path(), &[app.to_str().unwrap()]);
    assert!(run.ok(), "{}", run.all());
    assert!(
        run.stdout.contains("-----> Static site app detected"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("Removed 2 paths listed in .slugignore"),
        "{}",
        run.all()
    );

    let entries = slug_entries(&tmp.path().join("slug.tgz"));
    let gz = &entries["./app/index.html.gz"].1;
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
        .unwrap();
    assert_eq!(unzipped, page, "the .gz sibling holds the page");
    assert!(
        !entries.contains_key("./app/tiny.txt.gz"),
        "tiny files are not compressed"
    );
    assert!(!entries.contains_key("./app/drafts/"));
    assert!(!entries.contains_key("./app/logo.psd"));

    let manifest: serde_json::Value =
        serde_json::from_slice(&entries["./app/asset-manifest.json"].1).unwrap();
    let html = &manifest["files"]["/index.html"];
    assert_eq!(html["size"], page.len());
    use sha2::Digest;
    assert_eq!(
        html["sha256"],
        hex::encode(sha2::Sha256::digest(page.as_bytes()))
    );
}

/// Same source, different mtimes, modes and umask: the same slug, byte for byte.
#[test]
fn same_input_gives_a_byte_identical_slug() {
    let tmp = tempfile::tempdir().unwrap();
    let page = format!(
        "<html><body>{}</body></html>",
        "same bytes every time. ".repeat(30)
    );
    let files: &[(&str, &str)] = &[
        ("index.html", page.as_str()),
        ("css/a.css", "body { margin: 0 }\n"),
        ("Procfile", "web: serve\n"),
        ("bin/serve*", "#!/bin/sh\n"),
    ];
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    write_tree(&one, files);
    write_tree(&two, files);
    // The second copy: older mtimes, group/other bits cleared, a different exec mode.
    let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
    for (path, _) in files {
        let path = two.join(path.trim_end_matches('*'));
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o700;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(two.join("css"), std::fs::Permissions::from_mode(0o700)).unwrap();

    let cache = tmp.path().join("cache");
    let a = buildd_run(tmp.path(), &[one.to_str().unwrap(), "-o", "a.tgz"]);
    let b = buildd_run(tmp.path(), &[two.to_str().unwrap(), "-o", "b.tgz"]);
    // A warm buildpack cache must not change the result either.
    let c = buildd_run(
        tmp.path(),
        &[
            two.to_str().unwrap(),
            "-o",
            "c.tgz",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    let d = buildd_run(
        tmp.path(),
        &[
            two.to_str().unwrap(),
            "-o",
            "d.tgz",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    for run in [&a, &b, &c, &d] {
        assert!(run.ok(), "{}", run.all());
    }
    assert!(
        d.stdout.contains("(1 from cache)"),
        "second build reuses the cache: {}",
        d.all()
    );
    assert_eq!(a.checksum(), b.checksum());
    assert_eq!(a.checksum(), c.checksum());
    assert_eq!(a.checksum(), d.checksum());
    assert_eq!(
        std::fs::read(tmp.path().join("a.tgz")).unwrap(),
        std::fs::read(tmp.path().join("d.tgz")).unwrap()
    );
}

#[test]
fn tarball_over_http_is_streamed_checksummed_and_its_top_dir_stripped() {
    let tmp = tempfile::tempdir().unwrap();
    let app = repo_root().join("examples/procfile-app");
    let tarball = tarball_of(&app, "procfile-app-main");
    let sum = {
        use sha2::Digest;
        format!("SHA256:{}", hex::encode(sha2::Sha256::digest(&tarball)))
    };
    let server = Server::start(BTreeMap::from([("/app.tgz".to_string(), tarball)]));
    let url = format!("{}/app.tgz", server.base);

    let run = buildd_run(tmp.path(), &[&url, "--checksum", &sum]);
    assert!(run.ok(), "{}", run.all());
    let entries = slug_entries(&tmp.path().join("slug.tgz"));
    assert!(
        entries.contains_key("./app/Procfile"),
        "top-level dir stripped: {:?}",
        entries.keys()
    );

    let wrong = format!("SHA256:{}", "0".repeat(64));
    let run = buildd_run(tmp.path(), &[&url, "--checksum", &wrong, "-o", "bad.tgz"]);
    assert!(!run.ok());
    assert!(
        run.stdout.contains("source checksum mismatch"),
        "{}",
        run.all()
    );
    assert!(!tmp.path().join("bad.tgz").exists());

    let run = buildd_run(
        tmp.path(),
        &[&format!("{}/missing.tgz", server.base), "-o", "x.tgz"],
    );
    assert!(!run.ok());
    assert!(run.stdout.contains("HTTP 404"), "{}", run.all());
}

#[test]
fn local_tarball_and_config_vars_reach_the_buildpack() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_tree(&src, &[("Procfile", "web: run\n")]);
    std::fs::write(tmp.path().join("app.tgz"), tarball_of(&src, "app")).unwrap();
    // The hostile buildpack's "cache" mode only writes its cache; what matters is that the
    // config var picked the mode, which it can only read from its env dir.
    let run = buildd_run(
        tmp.path(),
        &[
            "app.tgz",
            "--buildpack",
            hostile_wasm(),
            "--env",
            "HOSTILE=cache",
        ],
    );
    assert!(run.ok(), "{}", run.all());
    assert!(run.stdout.contains("Attacking with cache"), "{}", run.all());
    assert!(
        run.stdout.contains("-----> Using buildpack: test/hostile"),
        "{}",
        run.all()
    );
}

#[test]
fn explicit_buildpack_that_does_not_detect_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let app = repo_root().join("examples/procfile-app");
    let run = buildd_run(
        tmp.path(),
        &[app.to_str().unwrap(), "--buildpack", "static"],
    );
    assert!(!run.ok());
    assert!(
        run.stdout
            .contains("App not compatible with buildpack: buildd/static"),
        "{}",
        run.all()
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = buildd_run(tmp.path(), &[empty.to_str().unwrap()]);
    assert!(!run.ok());
    assert!(
        run.stdout.contains("No default language could be detected"),
        "{}",
        run.all()
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bogus.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let app = repo_root().join("examples/procfile-app");
    let run = buildd_run(
        tmp.path(),
        &[app.to_str().unwrap(), "--buildpack", "bogus.wasm"],
    );
    assert!(!run.ok());
    assert!(run.stderr.contains("bogus.wasm"), "{}", run.all());
}

#[test]
fn buildpacks_run_in_order_each_on_the_previous_output() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    let page = format!("<html>{}</html>", "multi buildpack ".repeat(40));
    write_tree(
        &app,
        &[
            ("index.html", page.as_str()),
            ("Procfile", "web: serve-static\n"),
        ],
    );
    let run = buildd_run(
        tmp.path(),
        &[app.to_str().unwrap(), "-b", "static", "-b", "procfile"],
    );
    assert!(run.ok(), "{}", run.all());
    let static_at = run.stdout.find("-----> Static site app detected").unwrap();
    let procfile_at = run.stdout.find("-----> Procfile app detected").unwrap();
    assert!(static_at < procfile_at, "{}", run.all());
    let entries = slug_entries(&tmp.path().join("slug.tgz"));
    assert!(
        entries.contains_key("./app/index.html.gz"),
        "static's output is in the slug"
    );
    assert!(run.stdout.contains("  web: serve-static"), "{}", run.all());
}

#[test]
fn compiled_components_are_cached_on_disk_and_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("components");
    let app = repo_root().join("examples/procfile-app");
    let build = || {
        let output = std::process::Command::new(buildd_bin())
            .args(["run", app.to_str().unwrap(), "-o"])
            .arg(tmp.path().join("slug.tgz"))
            .env("BUILDD_COMPONENT_CACHE", &cache)
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    };
    build();
    let artifacts: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let listed = std::process::Command::new(buildd_bin())
        .arg("buildpacks")
        .env("BUILDD_COMPONENT_CACHE", &cache)
        .output()
        .unwrap();
    let first_party = String::from_utf8_lossy(&listed.stdout).lines().count();
    assert_eq!(first_party, 3, "nodejs, static, procfile");
    assert_eq!(
        artifacts.len(),
        first_party,
        "one artifact per first-party component: {artifacts:?}"
    );
    assert!(artifacts.iter().all(|p| p.extension().unwrap() == "cwasm"));
    let before: Vec<_> = artifacts
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    build();
    let after: Vec<_> = artifacts
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    assert_eq!(
        before, after,
        "the second process reuses the artifacts instead of recompiling"
    );
}

#[test]
fn plain_uncompressed_tar_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_dir_all("app", repo_root().join("examples/procfile-app"))
        .unwrap();
    std::fs::write(tmp.path().join("app.tar"), builder.into_inner().unwrap()).unwrap();
    let run = buildd_run(tmp.path(), &["app.tar"]);
    assert!(run.ok(), "{}", run.all());
    assert!(
        run.stdout.contains("Procfile app detected"),
        "{}",
        run.all()
    );
}

/// `--start` runs the slug's web process with `.profile.d` sourced and PORT set.
#[test]
fn start_serves_the_built_app() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    write_tree(
        &app,
        &[
            (
                "Procfile",
                "web: sh -c 'echo \"$GREETING from $APP_MODE\" > greeting.txt; exec python3 -m http.server $PORT --bind 127.0.0.1'\n",
            ),
            (".profile.d/greet.sh", "export GREETING='Hello World!'\n"),
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(buildd_bin())
        .args([
            "run",
            app.to_str().unwrap(),
            "--start",
            "--port",
            &port.to_string(),
            "--env",
            "APP_MODE=test",
        ])
        .current_dir(tmp.path())
        .env("BUILDD_COMPONENT_CACHE", component_cache())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /greeting.txt HTTP/1.0\r\n\r\n").ok()?;
                let mut text = String::new();
                s.read_to_string(&mut text).ok()?;
                Some(text)
            });
        if let Some(text) = answer.filter(|t| t.contains("200")) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the web process did not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    assert!(body.contains("Hello World! from test"), "{body}");
}
