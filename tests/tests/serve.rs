//! `buildd serve` end to end: the real daemon on a loopback port, driven over HTTP.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use common::daemon::{ACCEPT, Daemon, output_of, request};
use common::*;
use serde_json::{Value, json};

fn procfile_tarball() -> Vec<u8> {
    tarball_of(
        &repo_root().join("examples/procfile-app"),
        "procfile-app-main",
    )
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("SHA256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The seed flow: app, build from a tarball URL, output followed live, slug and release.
#[test]
fn build_from_a_tarball_url_streams_output_and_releases_a_slug() {
    let daemon = Daemon::start(&[]);
    let tarball = procfile_tarball();
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([("/app.tgz".to_string(), tarball.clone())]),
        gate.clone(),
        &["/app.tgz"],
    );
    daemon.create_app("seed-app");

    let build = daemon.create_build(
        "seed-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base), "checksum": sha256(&tarball), "version": "0123456789abcdef" } }),
    );
    assert_eq!(build["status"], "pending");
    assert_eq!(build["source_blob"]["version"], "0123456789abcdef");
    let id = build["id"].as_str().unwrap().to_string();

    // The stream answers 200 at once, while the build waits for its source, and ends only
    // after the final status.
    let stream_url = build["output_stream_url"].as_str().unwrap().to_string();
    let reader = std::thread::spawn(move || {
        let response = ureq::get(&stream_url).call().unwrap();
        assert_eq!(response.status(), 200);
        let mut text = String::new();
        response
            .into_body()
            .into_reader()
            .read_to_string(&mut text)
            .unwrap();
        text
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !reader.is_finished(),
        "the stream must stay open while the build runs"
    );
    assert_eq!(
        daemon
            .call("GET", &format!("/apps/seed-app/builds/{id}"), None)
            .json()["status"],
        "pending"
    );
    gate.open();

    let output = reader.join().unwrap();
    let done = daemon.wait_build("seed-app", &id);
    assert_eq!(done["status"], "succeeded", "{output}");
    assert!(output.contains("-----> Procfile app detected"), "{output}");
    assert!(output.contains("Released v1"), "{output}");

    // The slug downloads with the advertised checksum.
    let slug_id = done["slug"]["id"].as_str().unwrap();
    let slug = daemon
        .call("GET", &format!("/apps/seed-app/slugs/{slug_id}"), None)
        .json();
    assert_eq!(slug["process_types"]["web"], "bin/web");
    assert_eq!(slug["commit"], "0123456789abcdef");
    let blob = request("GET", slug["blob"]["url"].as_str().unwrap(), &[], None);
    assert_eq!(blob.status, 200);
    assert_eq!(sha256(&blob.body), slug["checksum"].as_str().unwrap());
    assert_eq!(slug["size"], blob.body.len());

    // The release is current and points at the slug.
    let releases = daemon.call("GET", "/apps/seed-app/releases", None).json();
    assert_eq!(releases.as_array().unwrap().len(), 1);
    assert_eq!(releases[0]["version"], 1);
    assert_eq!(releases[0]["current"], true);
    assert_eq!(releases[0]["slug"]["id"], slug_id);
    assert_eq!(done["release"]["id"], releases[0]["id"]);

    // After the build the whole log is served, resumable by offset.
    let whole = request(
        "GET",
        build["output_stream_url"].as_str().unwrap(),
        &[],
        None,
    );
    assert_eq!(whole.text(), output);
    let tail = request(
        "GET",
        build["output_stream_url"].as_str().unwrap(),
        &[("Range", "bytes=10-")],
        None,
    );
    assert_eq!(tail.text(), output[10..]);
    let past = request(
        "GET",
        build["output_stream_url"].as_str().unwrap(),
        &[("Range", &format!("bytes={}-", output.len() + 5))],
        None,
    );
    assert_eq!(past.status, 204);
    let sse = request(
        "GET",
        build["output_stream_url"].as_str().unwrap(),
        &[("Accept", "text/event-stream"), ("Last-Event-Id", "10")],
        None,
    );
    assert!(
        sse.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(
        sse.text().contains("data: -----> Procfile app detected"),
        "{}",
        sse.text()
    );

    // `current` and the legacy result.
    let current = daemon
        .call("GET", "/apps/seed-app/builds/current", None)
        .json();
    assert_eq!(current["id"], id);
    let result = daemon
        .call("GET", &format!("/apps/seed-app/builds/{id}/result"), None)
        .json();
    assert_eq!(result["exit_code"], 0);
    assert!(
        result["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["line"] == "-----> Procfile app detected" && l["stream"] == "STDOUT")
    );
}

#[test]
fn upload_through_sources_then_build_from_the_get_url() {
    let daemon = Daemon::start(&[]);
    daemon.create_app("upload-app");
    let source = daemon.call("POST", "/sources", None);
    assert_eq!(source.status, 201);
    let source = source.json();
    let put_url = source["source_blob"]["put_url"].as_str().unwrap();
    let get_url = source["source_blob"]["get_url"].as_str().unwrap();
    assert_ne!(put_url, get_url);
    let tarball = procfile_tarball();
    // No auth, no content type: as S3 presigned URLs are used.
    let put = request("PUT", put_url, &[], Some(&tarball));
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(request("GET", get_url, &[], None).body, tarball);

    let build = daemon.create_build("upload-app", json!({ "source_blob": { "url": get_url } }));
    let done = daemon.wait_build("upload-app", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded");
}

#[test]
fn failed_build_leaves_the_current_release_and_rollback_works() {
    let daemon = Daemon::start(&[]);
    let tarball = procfile_tarball();
    let server = Server::start(BTreeMap::from([("/app.tgz".to_string(), tarball)]));
    let url = format!("{}/app.tgz", server.base);
    daemon.create_app("roll-app");
    for _ in 0..2 {
        let b = daemon.create_build("roll-app", json!({ "source_blob": { "url": url } }));
        assert_eq!(
            daemon.wait_build("roll-app", b["id"].as_str().unwrap())["status"],
            "succeeded"
        );
    }
    let before = daemon.call("GET", "/apps/roll-app", None).json();

    let bad = daemon.create_build(
        "roll-app",
        json!({ "source_blob": { "url": format!("{}/missing.tgz", server.base) } }),
    );
    let bad = daemon.wait_build("roll-app", bad["id"].as_str().unwrap());
    assert_eq!(bad["status"], "failed");
    assert!(bad["slug"].is_null() && bad["release"].is_null());
    let output = output_of(&bad);
    assert!(output.contains("HTTP 404"), "{output}");
    let current = daemon
        .call("GET", "/apps/roll-app/releases/v2", None)
        .json();
    assert_eq!(
        current["current"], true,
        "v2 stays current after a failed build"
    );
    assert_eq!(
        daemon.call("GET", "/apps/roll-app", None).json()["released_at"],
        before["released_at"]
    );

    let v1 = daemon.call("GET", "/apps/roll-app/releases/1", None).json();
    let rollback = daemon.call(
        "POST",
        "/apps/roll-app/releases",
        Some(json!({ "release": v1["id"] })),
    );
    assert_eq!(rollback.status, 201, "{}", rollback.text());
    let rollback = rollback.json();
    assert_eq!(rollback["version"], 3);
    assert_eq!(rollback["description"], "Rollback to v1");
    assert_eq!(rollback["slug"]["id"], v1["slug"]["id"]);
    let list = daemon.call_with(
        "GET",
        "/apps/roll-app/releases",
        None,
        &[("Range", "version ..; max=1, order=desc")],
    );
    assert_eq!(list.status, 206);
    assert_eq!(list.json()[0]["version"], 3);
    assert_eq!(list.json()[0]["current"], true);
}

#[test]
fn one_slug_released_to_two_apps_and_slugs_uploaded_directly() {
    let daemon = Daemon::start(&[]);
    let server = Server::start(BTreeMap::from([(
        "/app.tgz".to_string(),
        procfile_tarball(),
    )]));
    daemon.create_app("slug-maker");
    daemon.create_app("slug-taker");
    let b = daemon.create_build(
        "slug-maker",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) }, "release": false }),
    );
    let done = daemon.wait_build("slug-maker", b["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded");
    assert!(
        done["release"].is_null(),
        "release: false builds a slug only"
    );
    assert_eq!(
        daemon
            .call("GET", "/apps/slug-maker/releases", None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let slug_id = done["slug"]["id"].as_str().unwrap();
    for app in ["slug-maker", "slug-taker"] {
        let r = daemon.call(
            "POST",
            &format!("/apps/{app}/releases"),
            Some(json!({ "slug": slug_id, "description": "shared slug" })),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["slug"]["id"], slug_id);
    }

    // A slug made elsewhere: create, PUT the tarball, release.
    let bytes = std::fs::read({
        let tmp = tempfile::tempdir().unwrap();
        let run = buildd_run(
            tmp.path(),
            &[repo_root().join("examples/procfile-app").to_str().unwrap()],
        );
        assert!(run.ok());
        let path = tmp.path().join("external.tgz");
        std::fs::copy(tmp.path().join("slug.tgz"), &path).unwrap();
        std::mem::forget(tmp);
        path
    })
    .unwrap();
    let slug = daemon.call(
        "POST",
        "/apps/slug-taker/slugs",
        Some(json!({ "process_types": { "web": "bin/web" }, "checksum": sha256(&bytes), "commit": "feedface" })),
    );
    assert_eq!(slug.status, 201, "{}", slug.text());
    let slug = slug.json();
    assert_eq!(slug["blob"]["method"], "put");
    let early = daemon.call(
        "POST",
        "/apps/slug-taker/releases",
        Some(json!({ "slug": slug["id"] })),
    );
    assert_eq!(
        early.status, 422,
        "a slug without its blob cannot be released"
    );
    assert_eq!(
        request(
            "PUT",
            slug["blob"]["url"].as_str().unwrap(),
            &[],
            Some(&bytes)
        )
        .status,
        200
    );
    let r = daemon
        .call(
            "POST",
            "/apps/slug-taker/releases",
            Some(json!({ "slug": slug["id"] })),
        )
        .json();
    assert_eq!(r["version"], 2);
    assert_eq!(r["description"], "Deploy feedface");
}

#[test]
fn config_vars_reach_the_buildpack_and_make_releases() {
    let daemon = Daemon::start(&[]);
    let server = Server::start(BTreeMap::from([(
        "/app.tgz".to_string(),
        procfile_tarball(),
    )]));
    daemon.create_app("config-app");
    let set = daemon.call(
        "PATCH",
        "/apps/config-app/config-vars",
        Some(json!({ "HOSTILE": "cache", "DROP_ME": "x" })),
    );
    assert_eq!(set.status, 200);
    let set = daemon.call(
        "PATCH",
        "/apps/config-app/config-vars",
        Some(json!({ "DROP_ME": null })),
    );
    assert_eq!(set.json(), json!({ "HOSTILE": "cache" }));
    let releases = daemon.call("GET", "/apps/config-app/releases", None).json();
    assert_eq!(
        releases.as_array().unwrap().len(),
        2,
        "each config change is a release"
    );
    assert_eq!(
        releases[0]["description"],
        "Set DROP_ME, HOSTILE config vars"
    );
    assert_eq!(releases[1]["description"], "Remove DROP_ME config vars");
    let v1_config = daemon
        .call("GET", "/apps/config-app/releases/1/config-vars", None)
        .json();
    assert_eq!(v1_config["DROP_ME"], "x");

    let b = daemon.create_build(
        "config-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) }, "buildpacks": [{ "url": "test/hostile" }] }),
    );
    assert_eq!(b["buildpacks"][0]["url"], "test/hostile");
    let done = daemon.wait_build("config-app", b["id"].as_str().unwrap());
    let output = output_of(&done);
    assert_eq!(done["status"], "succeeded", "{output}");
    assert!(
        output.contains("Attacking with cache"),
        "the buildpack read HOSTILE from its env dir: {output}"
    );

    // Buildpack installations choose buildpacks when the build does not.
    let set = daemon.call(
        "PUT",
        "/apps/config-app/buildpack-installations",
        Some(json!({ "updates": [{ "buildpack": "buildd/procfile" }] })),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()[0]["ordinal"], 1);
    assert_eq!(set.json()[0]["buildpack"]["name"], "buildd/procfile");
    let b = daemon.create_build(
        "config-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
    );
    let done = daemon.wait_build("config-app", b["id"].as_str().unwrap());
    let output = output_of(&done);
    assert!(
        output.contains("-----> Using buildpack: buildd/procfile"),
        "{output}"
    );
}

#[test]
fn lists_paginate_with_ranges() {
    let daemon = Daemon::start(&[]);
    for i in 0..5 {
        daemon.create_app(&format!("page-app-{i}"));
    }
    let first = daemon.call_with("GET", "/apps", None, &[("Range", "name ..; max=2")]);
    assert_eq!(first.status, 206);
    assert_eq!(
        first.header("accept-ranges").unwrap(),
        "id, name, created_at, updated_at"
    );
    let names: Vec<String> = first
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["page-app-0", "page-app-1"]);
    let next = first.header("next-range").unwrap().to_string();
    assert_eq!(next, "name ]page-app-1..; max=2, order=asc");
    let second = daemon.call_with("GET", "/apps", None, &[("Range", &next)]);
    assert_eq!(second.json()[0]["name"], "page-app-2");
    let last = daemon.call_with(
        "GET",
        "/apps",
        None,
        &[("Range", "name ]page-app-3..; max=2")],
    );
    assert_eq!(last.status, 200);
    assert_eq!(last.json().as_array().unwrap().len(), 1);
    let desc = daemon.call_with(
        "GET",
        "/apps",
        None,
        &[("Range", "name ..; order=desc,max=1")],
    );
    assert_eq!(desc.json()[0]["name"], "page-app-4");
    // The Heroku CLI's `apps` and `apps:info` ask for these.
    let mine = daemon.call("GET", "/users/~/apps", None);
    assert_eq!(mine.json().as_array().unwrap().len(), 5);
    for empty in ["addons", "collaborators", "dynos"] {
        assert_eq!(
            daemon
                .call("GET", &format!("/apps/page-app-0/{empty}"), None)
                .json(),
            json!([])
        );
    }
    // Range on a non-list endpoint is ignored, as some clients send it everywhere.
    assert_eq!(
        daemon
            .call_with("GET", "/apps/page-app-0", None, &[("Range", "")])
            .status,
        200
    );
    let bad = daemon.call_with("GET", "/apps", None, &[("Range", "colour ..")]);
    assert_eq!(
        (bad.status, bad.json()["id"].as_str().unwrap()),
        (416, "requested_range_not_satisfiable")
    );
}

fn assert_error(answer: &common::daemon::Answer, status: u16, id: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["id"], id, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(answer.header("content-type").unwrap(), "application/json");
    assert!(answer.header("request-id").is_some());
}

#[test]
fn errors_have_heroku_ids_and_statuses() {
    let daemon = Daemon::start(&["--max-upload", "1"]);
    daemon.create_app("error-app");
    // 401
    assert_error(
        &request("GET", &daemon.url("/apps"), &[("Accept", ACCEPT)], None),
        401,
        "unauthorized",
    );
    assert_error(
        &request(
            "GET",
            &daemon.url("/apps"),
            &[("Authorization", "Bearer nope")],
            None,
        ),
        401,
        "unauthorized",
    );
    // Basic auth with the token as the password, with or without an email.
    use base64::Engine;
    for user in ["", "me@example.com"] {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", daemon.token))
        );
        assert_eq!(
            request(
                "GET",
                &daemon.url("/apps"),
                &[("Authorization", &basic)],
                None
            )
            .status,
            200
        );
    }
    // 404
    assert_error(
        &daemon.call("GET", "/apps/no-such-app", None),
        404,
        "not_found",
    );
    assert_error(
        &daemon.call(
            "GET",
            "/apps/error-app/builds/6c0ffee0-0000-4000-8000-000000000000",
            None,
        ),
        404,
        "not_found",
    );
    assert_error(
        &request("GET", &daemon.url("/streams/nope"), &[], None),
        404,
        "not_found",
    );
    assert_error(&daemon.call("GET", "/no/such/path", None), 404, "not_found");
    // 406
    assert_error(
        &daemon.call_with(
            "GET",
            "/apps",
            None,
            &[("Accept", "application/vnd.heroku+json; version=2")],
        ),
        406,
        "not_acceptable",
    );
    for ok in [
        "application/vnd.heroku+json; version=3.sdk",
        "application/vnd.heroku+json; version=3.cancel-build",
        "*/*",
    ] {
        assert_eq!(
            daemon
                .call_with("GET", "/apps", None, &[("Accept", ok)])
                .status,
            200,
            "{ok}"
        );
    }
    // 400: not JSON
    let auth = format!("Bearer {}", daemon.token);
    assert_error(
        &request(
            "POST",
            &daemon.url("/apps"),
            &[("Authorization", &auth)],
            Some(b"{not json"),
        ),
        400,
        "bad_request",
    );
    // 422
    assert_error(
        &daemon.call("POST", "/apps", Some(json!({ "name": "Bad_Name" }))),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call("POST", "/apps", Some(json!({ "name": "error-app" }))),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call("POST", "/apps/error-app/builds", Some(json!({}))),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call(
            "POST",
            "/apps/error-app/builds",
            Some(json!({ "source_blob": { "url": "ftp://x/y.tgz" } })),
        ),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call(
            "POST",
            "/apps/error-app/builds",
            Some(json!({ "source_blob": { "url": "http://x/y.tgz", "checksum": "MD5:1" } })),
        ),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call("POST", "/apps/error-app/builds", Some(json!({ "source_blob": { "url": "http://x/y.tgz" }, "buildpacks": [{ "url": "nope/nope" }] }))),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call(
            "PATCH",
            "/apps/error-app/config-vars",
            Some(json!({ "BAD-KEY": "1" })),
        ),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call("POST", "/apps/error-app/releases", Some(json!({}))),
        422,
        "invalid_params",
    );
    assert_error(
        &daemon.call("POST", "/apps/error-app/slugs", Some(json!({}))),
        422,
        "invalid_params",
    );
    // file:// is off unless the operator allows it.
    assert_error(
        &daemon.call(
            "POST",
            "/apps/error-app/builds",
            Some(json!({ "source_blob": { "url": "file:///etc" } })),
        ),
        422,
        "invalid_params",
    );
    // 409: cancelling a finished build.
    let failed = daemon.create_build(
        "error-app",
        json!({ "source_blob": { "url": "http://127.0.0.1:9/nothing.tgz" } }),
    );
    let id = failed["id"].as_str().unwrap();
    assert_eq!(daemon.wait_build("error-app", id)["status"], "failed");
    assert_error(
        &daemon.call("DELETE", &format!("/apps/error-app/builds/{id}"), None),
        409,
        "conflict",
    );
    // 413: upload over the limit (1 MiB here).
    let source = daemon.call("POST", "/sources", None).json();
    let big = vec![7u8; 2 << 20];
    assert_error(
        &request(
            "PUT",
            source["source_blob"]["put_url"].as_str().unwrap(),
            &[],
            Some(&big),
        ),
        413,
        "request_entity_too_large",
    );
    // 202 for the empty action.
    let purge = daemon.call("DELETE", "/apps/error-app/build-cache", None);
    assert_eq!((purge.status, purge.json()), (202, json!({})));
    // The daemon is still serving.
    assert_eq!(
        request("GET", &daemon.url("/healthz"), &[], None).status,
        200
    );
}

#[test]
fn builds_of_one_app_queue_in_order_and_cancel_stops_one() {
    let daemon = Daemon::start(&["--concurrency", "2"]);
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([
            ("/slow.tgz".to_string(), procfile_tarball()),
            ("/fast.tgz".to_string(), procfile_tarball()),
        ]),
        gate.clone(),
        &["/slow.tgz"],
    );
    daemon.create_app("queue-app");
    let slow = daemon.create_build(
        "queue-app",
        json!({ "source_blob": { "url": format!("{}/slow.tgz", server.base) } }),
    );
    let next = daemon.create_build(
        "queue-app",
        json!({ "source_blob": { "url": format!("{}/fast.tgz", server.base) } }),
    );
    std::thread::sleep(Duration::from_millis(500));
    // The second waits for the first, though a slot is free.
    let next_id = next["id"].as_str().unwrap();
    assert_eq!(
        daemon
            .call("GET", &format!("/apps/queue-app/builds/{next_id}"), None)
            .json()["status"],
        "pending"
    );
    let metrics = request("GET", &daemon.url("/metrics"), &[], None).text();
    assert!(metrics.contains("buildd_queue_depth 1"), "{metrics}");

    let slow_id = slow["id"].as_str().unwrap();
    let cancelled = daemon.call("DELETE", &format!("/apps/queue-app/builds/{slow_id}"), None);
    assert_eq!(cancelled.status, 200, "{}", cancelled.text());
    assert_eq!(cancelled.json()["status"], "failed");
    let output = output_of(&slow);
    assert!(output.contains("Build cancelled"), "{output}");
    assert_eq!(
        daemon.wait_build("queue-app", next_id)["status"],
        "succeeded"
    );
    gate.open();
    let list = daemon.call_with(
        "GET",
        "/apps/queue-app/builds",
        None,
        &[("Range", "created_at ..; max=15, order=desc")],
    );
    assert_eq!(list.status, 200);
    assert_eq!(list.json().as_array().unwrap().len(), 2);
}

#[test]
fn a_daemon_killed_mid_build_recovers_on_restart() {
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([
            ("/hang.tgz".to_string(), procfile_tarball()),
            ("/ok.tgz".to_string(), procfile_tarball()),
        ]),
        gate.clone(),
        &["/hang.tgz"],
    );
    let mut daemon = Daemon::start(&["--concurrency", "1"]);
    daemon.create_app("crash-app");
    let running = daemon.create_build(
        "crash-app",
        json!({ "source_blob": { "url": format!("{}/hang.tgz", server.base) } }),
    );
    let waiting = daemon.create_build(
        "crash-app",
        json!({ "source_blob": { "url": format!("{}/ok.tgz", server.base) } }),
    );
    std::thread::sleep(Duration::from_millis(500));
    daemon.restart(); // SIGKILL, then start on the same data dir and port.
    gate.open();

    // The interrupted build runs again (it had attempts left), then the one behind it.
    let running = daemon.wait_build("crash-app", running["id"].as_str().unwrap());
    assert_eq!(running["status"], "succeeded");
    let output = output_of(&running);
    assert!(
        output.contains("stopped during this build; it will run again (attempt 2 of 2)"),
        "{output}"
    );
    assert!(output.contains("(attempt 2)"), "{output}");
    let waiting = daemon.wait_build("crash-app", waiting["id"].as_str().unwrap());
    assert_eq!(waiting["status"], "succeeded");
    let releases = daemon.call("GET", "/apps/crash-app/releases", None).json();
    assert_eq!(releases.as_array().unwrap().len(), 2);
}

#[test]
fn sigterm_lets_a_running_build_finish() {
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([("/app.tgz".to_string(), procfile_tarball())]),
        gate.clone(),
        &["/app.tgz"],
    );
    let mut daemon = Daemon::start(&["--shutdown-grace", "20"]);
    daemon.create_app("term-app");
    let b = daemon.create_build(
        "term-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
    );
    std::thread::sleep(Duration::from_millis(300));
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            gate.open();
        })
    };
    assert!(daemon.terminate(), "clean exit after draining");
    opener.join().unwrap();
    let mut daemon = Daemon::on(&daemon.data_dir.clone(), &[]);
    let done = daemon.wait_build("term-app", b["id"].as_str().unwrap());
    assert_eq!(
        done["status"], "succeeded",
        "the build finished during the grace period"
    );
    daemon.kill9();
}

/// Every response validates against the `targetSchema` of the matching link in Heroku's schema.
#[test]
fn responses_match_herokus_schema() {
    let schema_path = repo_root().join("../shared/heroku/platform-api-schema.json");
    let Ok(text) = std::fs::read_to_string(&schema_path) else {
        panic!("Heroku's schema is expected at {}", schema_path.display());
    };
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    // Known, documented deviations: Heroku pins git_url and web_url to its own domains.
    for field in ["git_url", "web_url"] {
        schema["definitions"]["app"]["definitions"][field]
            .as_object_mut()
            .unwrap()
            .remove("pattern");
    }
    let validate = |definition: &str, link_title: &str, instance: &Value| {
        let links = schema["definitions"][definition]["links"]
            .as_array()
            .unwrap();
        let link = links
            .iter()
            .find(|l| l["title"] == link_title)
            .unwrap_or_else(|| panic!("{definition} {link_title}"));
        let root = json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "definitions": schema["definitions"],
            "allOf": [link["targetSchema"]],
        });
        let validator = jsonschema::draft4::new(&root).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{definition} {link_title}: {errors:?}\n{instance:#}"
        );
    };

    let daemon = Daemon::start(&[]);
    let server = Server::start(BTreeMap::from([(
        "/app.tgz".to_string(),
        procfile_tarball(),
    )]));
    let app = daemon.create_app("schema-app");
    validate("app", "Create", &app);
    validate(
        "app",
        "Info",
        &daemon.call("GET", "/apps/schema-app", None).json(),
    );
    validate("app", "List", &daemon.call("GET", "/apps", None).json());
    let build = daemon.create_build(
        "schema-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
    );
    validate("build", "Create", &build);
    let done = daemon.wait_build("schema-app", build["id"].as_str().unwrap());
    validate("build", "Info", &done);
    validate(
        "build",
        "List",
        &daemon.call("GET", "/apps/schema-app/builds", None).json(),
    );
    let slug = daemon.slug_of("schema-app", &done);
    validate("slug", "Info", &slug);
    let releases = daemon.call("GET", "/apps/schema-app/releases", None).json();
    validate("release", "List", &releases);
    validate("release", "Info", &releases[0]);
    validate(
        "source",
        "Create",
        &daemon.call("POST", "/sources", None).json(),
    );
    validate(
        "config-var",
        "Info for App",
        &daemon
            .call("GET", "/apps/schema-app/config-vars", None)
            .json(),
    );
    let installs = daemon.call(
        "PUT",
        "/apps/schema-app/buildpack-installations",
        Some(json!({ "updates": [{ "buildpack": "buildd/static" }] })),
    );
    validate("buildpack-installation", "Update", &installs.json());
}

#[test]
fn unused_uploads_expire() {
    // Long enough for the upload to land first on a loaded machine, short enough to wait out.
    let daemon = Daemon::start(&["--source-ttl", "3"]);
    let source = daemon.call("POST", "/sources", None).json();
    let (put_url, get_url) = (
        source["source_blob"]["put_url"]
            .as_str()
            .unwrap()
            .to_string(),
        source["source_blob"]["get_url"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    assert_eq!(
        request("PUT", &put_url, &[], Some(b"some tarball bytes")).status,
        200
    );
    assert_eq!(request("GET", &get_url, &[], None).status, 200);
    let blobs = daemon.data_dir.join("blobs/sha256");
    assert_eq!(list_tree(&blobs).iter().filter(|p| p.len() > 64).count(), 1);
    // Expiry times have one-second resolution: wait past the TTL and the next whole second.
    std::thread::sleep(Duration::from_millis(4100));
    assert_eq!(request("GET", &get_url, &[], None).status, 404);
    assert_eq!(request("PUT", &put_url, &[], Some(b"again")).status, 404);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while list_tree(&blobs).iter().any(|p| p.len() > 64) {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired upload's blob was not deleted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn silent_builds_get_nul_keepalives_on_their_stream() {
    let daemon = Daemon::start(&["--stream-keepalive-ms", "100"]);
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([("/app.tgz".to_string(), procfile_tarball())]),
        gate.clone(),
        &["/app.tgz"],
    );
    daemon.create_app("quiet-app");
    let build = daemon.create_build(
        "quiet-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
    );
    let url = build["output_stream_url"].as_str().unwrap().to_string();
    let reader = std::thread::spawn(move || request("GET", &url, &[], None).body);
    std::thread::sleep(Duration::from_millis(600));
    gate.open();
    let body = reader.join().unwrap();
    let nuls = body.iter().filter(|b| **b == 0).count();
    assert!(
        nuls >= 2,
        "expected NUL keep-alives while the build waited, got {nuls}"
    );
    assert!(String::from_utf8_lossy(&body).contains("Released v1"));
}

#[test]
fn apps_are_isolated_and_a_hostile_build_does_not_stop_honest_ones() {
    let daemon = Daemon::start(&["--build-timeout", "3", "--concurrency", "2"]);
    let server = Server::start(BTreeMap::from([(
        "/app.tgz".to_string(),
        procfile_tarball(),
    )]));
    let url = format!("{}/app.tgz", server.base);
    for app in ["victim-app", "snoop-app", "spin-app", "honest-app"] {
        daemon.create_app(app);
    }
    daemon.call(
        "PATCH",
        "/apps/victim-app/config-vars",
        Some(json!({ "SECRET_TOKEN": "victim-secret-value" })),
    );
    daemon.call(
        "PATCH",
        "/apps/snoop-app/config-vars",
        Some(json!({ "HOSTILE": "envdump" })),
    );
    daemon.call(
        "PATCH",
        "/apps/spin-app/config-vars",
        Some(json!({ "HOSTILE": "loop" })),
    );
    let hostile =
        json!({ "source_blob": { "url": url }, "buildpacks": [{ "url": "test/hostile" }] });

    let victim = daemon.create_build("victim-app", json!({ "source_blob": { "url": url } }));
    assert_eq!(
        daemon.wait_build("victim-app", victim["id"].as_str().unwrap())["status"],
        "succeeded"
    );
    let snoop = daemon.create_build("snoop-app", hostile.clone());
    let snoop = daemon.wait_build("snoop-app", snoop["id"].as_str().unwrap());
    let seen = output_of(&snoop);
    assert!(seen.contains("env HOSTILE=envdump"), "{seen}");
    assert!(
        !seen.contains("victim-secret-value") && !seen.contains("SECRET_TOKEN"),
        "{seen}"
    );
    assert!(
        !seen.contains("buildd.sqlite3") && !seen.contains("blobs"),
        "no host paths visible: {seen}"
    );

    // A build spinning forever holds one slot until its time limit; honest builds go on.
    let spin = daemon.create_build("spin-app", hostile);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let b = daemon.create_build("honest-app", json!({ "source_blob": { "url": url } }));
        assert_eq!(
            daemon.wait_build("honest-app", b["id"].as_str().unwrap())["status"],
            "succeeded"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "honest builds waited for the hostile one"
    );
    let spin = daemon.wait_build("spin-app", spin["id"].as_str().unwrap());
    assert_eq!(spin["status"], "failed");
    let output = output_of(&spin);
    assert!(output.contains("time limit exceeded"), "{output}");
}

/// kill -9 with 50 builds in flight: after the restart every build ends either succeeded (with
/// its slug and release) or failed because of the restart (with neither), and uploads survive.
#[test]
fn fifty_builds_in_flight_survive_a_kill_9() {
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([("/app.tgz".to_string(), procfile_tarball())]),
        gate.clone(),
        &["/app.tgz"],
    );
    // One attempt: an interrupted build fails instead of running again.
    let mut daemon = Daemon::start(&["--concurrency", "2", "--build-attempts", "1"]);
    let source = daemon.call("POST", "/sources", None).json();
    let get_url = source["source_blob"]["get_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        request(
            "PUT",
            source["source_blob"]["put_url"].as_str().unwrap(),
            &[],
            Some(&procfile_tarball())
        )
        .status,
        200
    );

    let mut builds = Vec::new();
    for i in 0..50 {
        let app = format!("flight-{i}");
        daemon.create_app(&app);
        let b = daemon.create_build(
            &app,
            json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
        );
        builds.push((app, b["id"].as_str().unwrap().to_string()));
    }
    std::thread::sleep(Duration::from_millis(300));
    daemon.restart();
    gate.open();

    let (mut succeeded, mut failed) = (0, 0);
    for (app, id) in &builds {
        let b = daemon.wait_build(app, id);
        let releases = daemon
            .call("GET", &format!("/apps/{app}/releases"), None)
            .json();
        match b["status"].as_str().unwrap() {
            "succeeded" => {
                succeeded += 1;
                assert!(b["slug"]["id"].is_string() && b["release"]["id"].is_string());
                assert_eq!(releases.as_array().unwrap().len(), 1);
                let slug = daemon
                    .call(
                        "GET",
                        &format!("/apps/{app}/slugs/{}", b["slug"]["id"].as_str().unwrap()),
                        None,
                    )
                    .json();
                assert_eq!(
                    request("GET", slug["blob"]["url"].as_str().unwrap(), &[], None).status,
                    200
                );
            }
            "failed" => {
                failed += 1;
                assert!(b["slug"].is_null() && b["release"].is_null());
                assert_eq!(releases.as_array().unwrap().len(), 0);
                let output = output_of(&b);
                assert!(
                    output.contains("stopped during this build (attempt 1 of 1); giving up"),
                    "{output}"
                );
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(succeeded + failed, 50);
    assert!(
        failed <= 2,
        "only the builds running at the kill fail (concurrency 2): {failed}"
    );
    assert_eq!(
        request("GET", &get_url, &[], None).body,
        procfile_tarball(),
        "the upload survived"
    );
}

#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let out = std::process::Command::new(buildd_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&not_a_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&not_a_dir.display().to_string()),
        "{stderr}"
    );
}

/// A bounded load test (loopback only, stops by itself): 1000 build creations and 10,000 status
/// polls; no 5xx, no lost build, memory bounded.
#[test]
fn a_thousand_builds_and_ten_thousand_polls() {
    let daemon = Daemon::start(&[]);
    let server = Server::start(BTreeMap::from([(
        "/app.tgz".to_string(),
        procfile_tarball(),
    )]));
    let url = format!("{}/app.tgz", server.base);
    let apps: Vec<String> = (0..20).map(|i| format!("load-app-{i}")).collect();
    for app in &apps {
        daemon.create_app(app);
    }
    let mut builds = Vec::new();
    for i in 0..1000 {
        let app = &apps[i % apps.len()];
        let answer = daemon.call(
            "POST",
            &format!("/apps/{app}/builds"),
            Some(json!({ "source_blob": { "url": url } })),
        );
        assert_eq!(answer.status, 201, "{}", answer.text());
        builds.push((
            app.clone(),
            answer.json()["id"].as_str().unwrap().to_string(),
        ));
    }
    let mut polls = 0;
    let mut done = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while polls < 10_000 || done.len() < builds.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "builds did not finish"
        );
        let (app, id) = &builds[polls % builds.len()];
        let answer = daemon.call("GET", &format!("/apps/{app}/builds/{id}"), None);
        assert!(answer.status < 500, "{}", answer.text());
        assert_eq!(answer.status, 200);
        match answer.json()["status"].as_str().unwrap() {
            "succeeded" => {
                done.insert(id.clone());
            }
            "pending" => {}
            other => panic!("build {id} {other}"),
        }
        polls += 1;
    }
    for app in &apps {
        let list = daemon.call_with(
            "GET",
            &format!("/apps/{app}/builds"),
            None,
            &[("Range", "id ..; max=1000")],
        );
        assert_eq!(list.json().as_array().unwrap().len(), 50, "no build lost");
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(peak_kb < 300 * 1024, "peak RSS {peak_kb} kB");
}
