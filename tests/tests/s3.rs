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

#[test]
#[ignore = "main's PostgreSQL queue cannot record a finished build yet (`?2 IS NULL OR node = ?2`: \
            could not determine data type of parameter); run with --ignored once it can"]
fn two_nodes_share_slugs_and_build_caches() {
    let Some(s3) = S3Server::start() else { return };
    let Some(pg) = common::postgres::Postgres::create() else {
        return;
    };
    let mut env = s3.env();
    env.push(("BUILDD_DATABASE".into(), pg.url.clone()));
    env.push(("BUILDD_BLOB_STORE".into(), s3.spec("shared")));
    let tmp = tempfile::tempdir().unwrap();
    let a = Daemon::with_env(&tmp.path().join("a"), &[], &env);
    let b = Daemon::with_env(&tmp.path().join("b"), &[], &env);

    let app = a.create_app("two-nodes");
    let app_id = app["id"].as_str().unwrap();
    // The source goes up through node A; either node may run the builds.
    let source = a.call("POST", "/sources", None).json();
    let put_url = source["source_blob"]["put_url"].as_str().unwrap();
    let get_url = source["source_blob"]["get_url"].as_str().unwrap();
    let tarball = tarball_of(&repo_root().join("examples/static-site"), "site");
    assert_eq!(request("PUT", put_url, &[], Some(&tarball)).status, 200);
    for _ in 0..2 {
        let build = b.create_build("two-nodes", json!({ "source_blob": { "url": get_url } }));
        let done = b.wait_build("two-nodes", build["id"].as_str().unwrap());
        assert_eq!(done["status"], "succeeded", "{done}");
        // The slug reads the same through both nodes.
        let slug = a.slug_of("two-nodes", &done);
        let url = slug["blob"]["url"].as_str().unwrap().to_string();
        let via_a = request("GET", &url.replace(&b.base, &a.base), &[], None);
        let via_b = request("GET", &url.replace(&a.base, &b.base), &[], None);
        assert_eq!((via_a.status, via_b.status), (200, 200));
        assert_eq!(via_a.body, via_b.body);
        assert_eq!(
            format!("SHA256:{}", sha256_hex(&via_a.body)),
            slug["checksum"].as_str().unwrap()
        );
    }
    assert!(keys(&s3, "shared/").contains(&format!("shared/caches/{app_id}.tar.gz")));
    // The purge through one node removes the shared cache.
    assert_eq!(
        b.call("DELETE", "/apps/two-nodes/build-cache", None).status,
        202
    );
    assert!(!keys(&s3, "shared/").iter().any(|k| k.contains("/caches/")));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
