//! `buildd serve` on an S3-compatible blob store (moto): uploads, slugs and build caches land in
//! the bucket, and a node that lost its local copies reads them back from there.

mod common;

use common::daemon::{Daemon, request};
use common::s3::S3Server;
use common::*;
use serde_json::json;

/// The bucket's keys under `prefix`, from S3's ListObjectsV2.
fn keys(s3: &S3Server, prefix: &str) -> Vec<String> {
    let answer = request(
        "GET",
        &format!("{}/{}?list-type=2&prefix={prefix}", s3.endpoint, s3.bucket),
        &[],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer
        .text()
        .split("<Key>")
        .skip(1)
        .map(|k| k.split("</Key>").next().unwrap().to_string())
        .collect()
}

#[test]
fn blobs_and_build_caches_live_in_the_bucket() {
    let Some(s3) = S3Server::start() else { return };
    let spec = s3.spec("node");
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::with_env(
        &tmp.path().join("data"),
        &["--blob-store", &spec],
        &s3.env(),
    );
    let app = daemon.create_app("s3-app");
    let app_id = app["id"].as_str().unwrap();

    let source = daemon.call("POST", "/sources", None).json();
    let put_url = source["source_blob"]["put_url"].as_str().unwrap();
    let get_url = source["source_blob"]["get_url"].as_str().unwrap();
    let tarball = tarball_of(&repo_root().join("examples/static-site"), "site");
    assert_eq!(request("PUT", put_url, &[], Some(&tarball)).status, 200);
    let build = daemon.create_build("s3-app", json!({ "source_blob": { "url": get_url } }));
    let done = daemon.wait_build("s3-app", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");

    let stored = keys(&s3, "node/");
    let blobs = stored
        .iter()
        .filter(|k| k.starts_with("node/sha256/"))
        .count();
    assert!(blobs >= 2, "source and slug in the bucket: {stored:?}");
    let cache_key = format!("node/caches/{app_id}.tar.gz");
    assert!(stored.contains(&cache_key), "{stored:?}");
    assert!(!daemon.data_dir.join("blobs").exists());

    // This node loses its copies: the blob URLs still answer, from the bucket.
    let slug = daemon.slug_of("s3-app", &done);
    let slug_url = slug["blob"]["url"].as_str().unwrap();
    let before = request("GET", slug_url, &[], None);
    assert_eq!(before.status, 200);
    std::fs::remove_dir_all(daemon.data_dir.join("blob-cache/sha256")).unwrap();
    let after = request("GET", slug_url, &[], None);
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before.body);
    assert_eq!(request("GET", get_url, &[], None).body, tarball);

    // A second build restores the cache (unchanged: nothing new uploaded), then a purge
    // deletes it from the bucket.
    let again = daemon.create_build("s3-app", json!({ "source_blob": { "url": get_url } }));
    let again = daemon.wait_build("s3-app", again["id"].as_str().unwrap());
    assert_eq!(again["status"], "succeeded", "{again}");
    let purge = daemon.call("DELETE", "/apps/s3-app/build-cache", None);
    assert_eq!(purge.status, 202);
    assert!(!keys(&s3, "node/").contains(&cache_key));
}
