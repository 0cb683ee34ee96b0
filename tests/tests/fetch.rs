//! The host's `fetch` capability through the real binary: grants, redirects, digests, limits,
//! destinations, the download cache; and contract 0.1.0 components still running on a 0.2.0 host.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use sha2::{Digest, Sha256, Sha512};

/// What the origin serves at a path.
#[derive(Clone)]
enum Route {
    /// A body with an ETag; a matching If-None-Match gets 304.
    Body(Vec<u8>),
    /// A redirect to this location.
    Redirect(String),
}

/// A loopback origin that counts the bodies it sends (304s and redirects are not bodies).
struct Origin {
    base: String,
    port: u16,
    bodies: Arc<AtomicUsize>,
    routes: Arc<Mutex<BTreeMap<String, Route>>>,
    server: Arc<tiny_http::Server>,
}

impl Origin {
    fn start() -> Origin {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let bodies = Arc::new(AtomicUsize::new(0));
        let routes: Arc<Mutex<BTreeMap<String, Route>>> = Arc::default();
        let (serving, count, table) = (server.clone(), bodies.clone(), routes.clone());
        std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let route = table.lock().unwrap().get(request.url()).cloned();
                let response = match route {
                    Some(Route::Body(body)) => {
                        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..8]));
                        let matches = request
                            .headers()
                            .iter()
                            .any(|h| h.field.equiv("If-None-Match") && h.value == etag.as_str());
                        let header =
                            tiny_http::Header::from_bytes("ETag", etag.as_bytes()).unwrap();
                        if matches {
                            tiny_http::Response::empty(304).with_header(header).boxed()
                        } else {
                            count.fetch_add(1, Ordering::SeqCst);
                            tiny_http::Response::from_data(body)
                                .with_header(header)
                                .boxed()
                        }
                    }
                    Some(Route::Redirect(to)) => tiny_http::Response::empty(302)
                        .with_header(
                            tiny_http::Header::from_bytes("Location", to.as_bytes()).unwrap(),
                        )
                        .boxed(),
                    None => tiny_http::Response::from_string("not found")
                        .with_status_code(404)
                        .boxed(),
                };
                let _ = request.respond(response);
            }
        });
        Origin {
            base: format!("http://127.0.0.1:{port}"),
            port,
            bodies,
            routes,
            server,
        }
    }

    fn route(&self, path: &str, route: Route) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), route);
        format!("{}{path}", self.base)
    }

    fn bodies(&self) -> usize {
        self.bodies.load(Ordering::SeqCst)
    }

    fn grant(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn fetcher() -> &'static str {
    env!("BUILDD_BUILDPACK_FETCHER_WASM")
}

/// `buildd run` of an empty app with the fetcher buildpack, its download cache in `dir/downloads`.
fn fetch_run(dir: &Path, vars: &[(&str, &str)], extra: &[&str]) -> Run {
    let app = dir.join("app");
    write_tree(&app, &[("README", "fetch test\n")]);
    let downloads = dir.join("downloads");
    let mut args: Vec<String> = vec![
        app.display().to_string(),
        "-b".into(),
        fetcher().into(),
        "--download-cache".into(),
        downloads.display().to_string(),
    ];
    for (k, v) in vars {
        args.push("--env".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    buildd_run(dir, &args)
}

fn sri512(body: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(body))
    )
}

#[test]
fn granted_fetch_lands_in_the_slug_and_the_second_build_downloads_nothing() {
    let origin = Origin::start();
    let body = b"#!/bin/sh\necho tool\n".repeat(100);
    let pinned = origin.route("/tool.tgz", Route::Body(body.clone()));
    let index = origin.route("/index.json", Route::Body(b"{\"versions\":[1,2]}".to_vec()));
    let tmp = tempfile::tempdir().unwrap();
    let grant = origin.grant();

    // A digest-pinned download: verified, cached by digest.
    let vars = [
        ("FETCH_URL", pinned.as_str()),
        ("FETCH_DIGEST", &sri512(&body)),
    ];
    let first = fetch_run(tmp.path(), &vars, &["--allow-host", &grant]);
    assert!(first.ok(), "{}", first.all());
    let sha = hex::encode(Sha256::digest(&body));
    assert!(
        first
            .stdout
            .contains(&format!("fetched {} {sha} cache=false", body.len())),
        "{}",
        first.all()
    );
    assert!(
        first
            .stdout
            .contains("-----> Fetched 1 files: 1 downloaded"),
        "{}",
        first.all()
    );
    let slug = slug_entries(&tmp.path().join("slug.tgz"));
    assert_eq!(slug["./app/fetched"].1, body, "the body is in the slug");
    assert_eq!(origin.bodies(), 1);

    // Same digest again: straight from the cache, no request at all.
    let second = fetch_run(tmp.path(), &vars, &["--allow-host", &grant]);
    assert!(second.ok(), "{}", second.all());
    assert!(second.stdout.contains("cache=true"), "{}", second.all());
    assert!(
        second
            .stdout
            .contains("0 downloaded (0B), 1 from the download cache"),
        "{}",
        second.all()
    );
    assert_eq!(origin.bodies(), 1, "no second download");
    assert_eq!(
        sha256_file(&tmp.path().join("slug.tgz")),
        sha256_file(&tmp.path().join("slug.tgz")),
    );

    // No digest: cached by URL and revalidated with the ETag (304, no body).
    let unpinned = [("FETCH_URL", index.as_str())];
    let third = fetch_run(tmp.path(), &unpinned, &["--allow-host", &grant]);
    assert!(
        third.ok() && third.stdout.contains("cache=false"),
        "{}",
        third.all()
    );
    assert_eq!(origin.bodies(), 2);
    let fourth = fetch_run(tmp.path(), &unpinned, &["--allow-host", &grant]);
    assert!(
        fourth.ok() && fourth.stdout.contains("cache=true"),
        "{}",
        fourth.all()
    );
    assert_eq!(origin.bodies(), 2, "revalidated, not downloaded");
}

#[test]
fn the_download_cache_is_trimmed_to_its_limit_least_recently_used_first() {
    let origin = Origin::start();
    let a = origin.route("/a", Route::Body(vec![1u8; 700 << 10]));
    let b = origin.route("/b", Route::Body(vec![2u8; 700 << 10]));
    let tmp = tempfile::tempdir().unwrap();
    let flags = [
        "--allow-host",
        &origin.grant(),
        "--download-cache-limit",
        "1",
    ];
    let blobs = || {
        std::fs::read_dir(tmp.path().join("downloads/blobs"))
            .unwrap()
            .count()
    };
    assert!(fetch_run(tmp.path(), &[("FETCH_URL", &a)], &flags).ok());
    assert_eq!(blobs(), 1);
    // 1.4 MiB would be over the 1 MiB limit: the older body goes.
    assert!(fetch_run(tmp.path(), &[("FETCH_URL", &b)], &flags).ok());
    assert_eq!(blobs(), 1);
    assert_eq!(origin.bodies(), 2);
    let again = fetch_run(tmp.path(), &[("FETCH_URL", &a)], &flags);
    assert!(
        again.ok() && again.stdout.contains("cache=false"),
        "{}",
        again.all()
    );
    assert_eq!(origin.bodies(), 3, "the trimmed body is downloaded again");
}

#[test]
fn hosts_outside_the_grants_are_refused_by_name() {
    let origin = Origin::start();
    let url = origin.route("/x", Route::Body(b"x".to_vec()));
    let tmp = tempfile::tempdir().unwrap();

    // Nothing granted: no network at all.
    let run = fetch_run(tmp.path(), &[("FETCH_URL", &url)], &[]);
    assert!(!run.ok(), "{}", run.all());
    let port = origin.port;
    assert!(
        run.all().contains(&format!(
            "host 127.0.0.1:{port} is not granted to buildpack test/fetcher (granted: none)"
        )),
        "{}",
        run.all()
    );
    assert!(
        run.all().contains("--allow-host test/fetcher=127.0.0.1"),
        "{}",
        run.all()
    );
    assert!(!tmp.path().join("slug.tgz").exists());

    // The manifest grant gives exactly what the buildpack declares, not this host; a grant
    // scoped to another buildpack gives nothing.
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url)],
        &[
            "--allow-host",
            "test/fetcher=manifest",
            "--allow-host",
            &format!("other/bp=127.0.0.1:{port}"),
        ],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(
        run.all().contains("(granted: declared.invalid)"),
        "{}",
        run.all()
    );

    // Another port on a granted name is another host.
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url)],
        &[
            "--allow-host",
            &format!("127.0.0.1:{}", port.wrapping_add(1)),
        ],
    );
    assert!(
        !run.ok() && run.all().contains("is not granted"),
        "{}",
        run.all()
    );
    assert_eq!(origin.bodies(), 0, "nothing was ever sent");

    // Only http and https.
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", "file:///etc/passwd")],
        &["--allow-host", "localhost"],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(
        run.all().contains("scheme \"file\" is not allowed"),
        "{}",
        run.all()
    );
}

#[test]
fn the_operators_network_policy_applies_to_granted_hosts_too() {
    let origin = Origin::start();
    let url = origin.route("/x", Route::Body(b"x".to_vec()));
    let tmp = tempfile::tempdir().unwrap();
    // Granted by name, but it resolves to loopback, which the operator forbids.
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url)],
        &["--allow-host", &origin.grant(), "--deny-private-sources"],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(run.all().contains("loopback"), "{}", run.all());
    assert_eq!(origin.bodies(), 0, "no connection was made");
}

#[test]
fn a_redirect_out_of_the_grants_is_refused() {
    let origin = Origin::start();
    origin.route("/inside", Route::Body(b"fine".to_vec()));
    let port = origin.port;
    // localhost is the same machine but not the granted name.
    let hop = origin.route(
        "/hop",
        Route::Redirect(format!("http://localhost:{port}/inside")),
    );
    let tmp = tempfile::tempdir().unwrap();
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &hop)],
        &["--allow-host", &origin.grant()],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(
        run.all().contains(&format!(
            "redirected to http://localhost:{port}/inside: host localhost:{port} is not granted"
        )),
        "{}",
        run.all()
    );
    assert_eq!(origin.bodies(), 0);

    // A redirect within the grants is followed; a loop is cut off.
    let inside = origin.route("/hop2", Route::Redirect("/inside".into()));
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &inside)],
        &["--allow-host", &origin.grant()],
    );
    assert!(run.ok(), "{}", run.all());
    let looping = origin.route("/loop", Route::Redirect("/loop".into()));
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &looping)],
        &["--allow-host", &origin.grant()],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(run.all().contains("more than 5 redirects"), "{}", run.all());
}

#[test]
fn digest_mismatch_and_oversized_bodies_fail_and_write_nothing() {
    let origin = Origin::start();
    let url = origin.route("/lib.tgz", Route::Body(b"the real bytes".to_vec()));
    let big = origin.route("/big", Route::Body(vec![7u8; (1 << 20) + 10]));
    let tmp = tempfile::tempdir().unwrap();
    let grant = origin.grant();

    let wrong = sri512(b"other bytes");
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url), ("FETCH_DIGEST", &wrong)],
        &["--allow-host", &grant],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(
        run.all().contains(&format!(
            "integrity mismatch: expected {wrong}, got {}",
            sri512(b"the real bytes")
        )),
        "{}",
        run.all()
    );
    // Nothing from a refused download is kept for the next build.
    let blobs = std::fs::read_dir(tmp.path().join("downloads/blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "a body that failed its digest is not cached");

    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url), ("FETCH_MAX", "4")],
        &["--allow-host", &grant],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(run.all().contains("over the 4-byte limit"), "{}", run.all());

    // The operator's cap applies whatever the buildpack asks.
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &big)],
        &["--allow-host", &grant, "--max-download", "1"],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(
        run.all().contains("over the 1048576-byte limit"),
        "{}",
        run.all()
    );
}

#[test]
fn fetch_writes_only_inside_the_app_and_cache_dirs() {
    let origin = Origin::start();
    let url = origin.route("/f", Route::Body(b"payload".to_vec()));
    let tmp = tempfile::tempdir().unwrap();
    let grant = origin.grant();
    for (dest, expect) in [
        (
            "/etc/buildd-fetch-test",
            "is not inside a writable directory (/app, /cache)",
        ),
        ("/app/../buildd-fetch-test", "without '..'"),
        ("/env/X", "is not inside a writable directory"),
        ("/app", "must name a file below /app"),
    ] {
        let run = fetch_run(
            tmp.path(),
            &[("FETCH_URL", &url), ("FETCH_DEST", dest)],
            &["--allow-host", &grant],
        );
        assert!(!run.ok(), "{dest}: {}", run.all());
        assert!(run.all().contains(expect), "{dest}: {}", run.all());
    }
    assert!(!Path::new("/etc/buildd-fetch-test").exists());
    assert!(!tmp.path().join("buildd-fetch-test").exists());

    // Nested destinations get their parents; the cache dir works too.
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url), ("FETCH_DEST", "/app/vendor/deep/f")],
        &["--allow-host", &grant],
    );
    assert!(run.ok(), "{}", run.all());
    let slug = slug_entries(&tmp.path().join("slug.tgz"));
    assert_eq!(slug["./app/vendor/deep/f"].1, b"payload");
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url), ("FETCH_DEST", "/cache/f")],
        &["--allow-host", &grant],
    );
    assert!(run.ok(), "{}", run.all());
}

#[test]
fn set_executable_marks_files_in_the_slug_and_refuses_outside_paths() {
    let origin = Origin::start();
    let url = origin.route("/tool", Route::Body(b"#!/bin/sh\necho hi\n".to_vec()));
    let tmp = tempfile::tempdir().unwrap();
    let grant = origin.grant();
    let run = fetch_run(
        tmp.path(),
        &[("FETCH_URL", &url), ("CHMOD", "/app/fetched")],
        &["--allow-host", &grant],
    );
    assert!(run.ok(), "{}", run.all());
    let slug = slug_entries(&tmp.path().join("slug.tgz"));
    assert_eq!(
        slug["./app/fetched"].0, 0o755,
        "the mode set through the host"
    );
    assert_eq!(slug["./app/README"].0, 0o644);

    for (path, expect) in [
        ("/etc/passwd", "is not inside a writable directory"),
        ("/app/../../etc/passwd", "without '..'"),
        ("/app/missing", "set-executable /app/missing"),
    ] {
        let run = fetch_run(tmp.path(), &[("CHMOD", path)], &[]);
        assert!(!run.ok(), "{path}: {}", run.all());
        assert!(run.all().contains(expect), "{path}: {}", run.all());
    }
}

#[test]
fn a_component_built_against_contract_0_1_still_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    write_tree(&app, &[("README", "old\n")]);
    let run = buildd_run(
        tmp.path(),
        &[
            app.to_str().unwrap(),
            "-b",
            env!("BUILDD_BUILDPACK_LEGACY_WASM"),
        ],
    );
    assert!(run.ok(), "{}", run.all());
    assert!(
        run.stdout.contains("Compiling with contract 0.1.0"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("web: cat legacy.txt"), "{}", run.all());
    let slug = slug_entries(&tmp.path().join("slug.tgz"));
    assert_eq!(slug["./app/legacy.txt"].1, b"built by a 0.1.0 component\n");
}
