//! `/buildpacks` (ext): a third-party component uploaded over the API, validated, used by a
//! build (which records its digest), kept across restarts, and deleted.

mod common;

use std::collections::BTreeMap;

use common::daemon::{ACCEPT, Daemon, request};
use common::*;
use serde_json::json;

fn upload(daemon: &Daemon, query: &str, bytes: &[u8]) -> common::daemon::Answer {
    let auth = format!("Bearer {}", daemon.token);
    request(
        "POST",
        &daemon.url(&format!("/buildpacks{query}")),
        &[
            ("Authorization", &auth),
            ("Accept", ACCEPT),
            ("Content-Type", "application/wasm"),
        ],
        Some(bytes),
    )
}

#[test]
fn upload_use_persist_and_delete_a_buildpack() {
    let mut daemon = Daemon::start(&[]);
    let wasm = std::fs::read(hostile_wasm()).unwrap();
    let created = upload(&daemon, "?name=acme/attacker", &wasm);
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    assert_eq!(created["name"], "acme/attacker");
    assert_eq!(created["component_id"], "test/hostile");
    assert_eq!(created["api"], "0.2.0");
    let digest = {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&wasm)))
    };
    assert_eq!(created["digest"], digest.as_str());
    assert_eq!(
        upload(&daemon, "?name=acme/attacker", &wasm).status,
        409,
        "names are unique"
    );

    // Not components: refused with a clear error, nothing installed.
    for junk in [&b"not wasm at all"[..], b"\0asm\x01\0\0\0"] {
        let answer = upload(&daemon, "?name=acme/junk", junk);
        assert_eq!(answer.status, 422, "{}", answer.text());
        assert_eq!(answer.json()["id"], "invalid_params");
    }
    let list = daemon.call("GET", "/buildpacks", None).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"buildd/static") && names.contains(&"acme/attacker"),
        "{names:?}"
    );
    assert!(!names.contains(&"acme/junk"));

    // A build picks it by name, and records the digest it ran.
    let server = Server::start(BTreeMap::from([(
        "/app.tgz".to_string(),
        tarball_of(&repo_root().join("examples/procfile-app"), "app"),
    )]));
    daemon.create_app("bp-app");
    daemon.call(
        "PATCH",
        "/apps/bp-app/config-vars",
        Some(json!({ "HOSTILE": "cache" })),
    );
    daemon.call(
        "PUT",
        "/apps/bp-app/buildpack-installations",
        Some(json!({ "updates": [{ "buildpack": "acme/attacker" }] })),
    );
    let build = daemon.create_build(
        "bp-app",
        json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
    );
    let done = daemon.wait_build("bp-app", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["buildpacks"][0]["digest"], digest.as_str());
    assert_eq!(done["buildpacks"][0]["name"], "test/hostile");

    // Still there after a restart; then deleted; built-in ones cannot be.
    daemon.restart();
    assert_eq!(
        daemon.call("GET", "/buildpacks/acme/attacker", None).status,
        200
    );
    assert_eq!(
        daemon
            .call("DELETE", "/buildpacks/acme/attacker", None)
            .status,
        200
    );
    assert_eq!(
        daemon.call("GET", "/buildpacks/acme/attacker", None).status,
        404
    );
    let forbidden = daemon.call("DELETE", "/buildpacks/buildd/static", None);
    assert_eq!(
        (forbidden.status, forbidden.json()["id"].as_str().unwrap()),
        (403, "forbidden")
    );
    daemon.restart();
    assert_eq!(
        daemon.call("GET", "/buildpacks/acme/attacker", None).status,
        404,
        "deletion persists"
    );
}
