//! A third-party buildpack, made the way the author's guide says: `buildd new buildpack`, built
//! for wasm32-wasip2 outside this workspace, uploaded, installed on an app and used by a build.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::daemon::{ACCEPT, Daemon, output_of, request};
use common::*;
use serde_json::json;

#[test]
fn a_buildpack_from_the_template_builds_installs_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let crate_dir = tmp.path().join("acme-hello");
    let out = Command::new(buildd_bin())
        .args([
            "new",
            "buildpack",
            "acme-hello",
            "--id",
            "acme/hello",
            "--dir",
        ])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Its own workspace and lock file; a shared target dir keeps reruns quick.
    let target = component_cache().parent().unwrap().join("author-test");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(build.success(), "the template builds as a component");
    let wasm = std::fs::read(target.join("wasm32-wasip2/release/acme_hello.wasm")).unwrap();

    let daemon = Daemon::start(&[]);
    let auth = format!("Bearer {}", daemon.token);
    let uploaded = request(
        "POST",
        &daemon.url("/buildpacks"),
        &[("Authorization", &auth), ("Accept", ACCEPT)],
        Some(&wasm),
    );
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    assert_eq!(uploaded.json()["name"], "acme/hello");

    daemon.create_app("hello-app");
    daemon.call(
        "PUT",
        "/apps/hello-app/buildpack-installations",
        Some(json!({ "updates": [{ "buildpack": "acme/hello" }] })),
    );
    daemon.call(
        "PATCH",
        "/apps/hello-app/config-vars",
        Some(json!({ "GREETING_NAME": "authors" })),
    );
    let fixture = tarball_of(&crate_dir.join("tests/fixtures/hello"), "app");
    let server = Server::start(BTreeMap::from([("/app.tgz".to_string(), fixture)]));
    let b = daemon.create_build(
        "hello-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
    );
    let done = daemon.wait_build("hello-app", b["id"].as_str().unwrap());
    let output = output_of(&done);
    assert_eq!(done["status"], "succeeded", "{output}");
    assert!(
        output.contains("-----> Writing greeting") && output.contains("greeted authors"),
        "{output}"
    );
    let slug = daemon.slug_of("hello-app", &done);
    assert_eq!(slug["process_types"]["web"], "cat greeting.txt");
}
