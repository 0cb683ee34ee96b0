//! Scale-out: `buildd serve` nodes sharing one PostgreSQL and one S3-compatible object store
//! (moto's server), all real processes on loopback. Skipped loudly without those services,
//! except under CI, which installs and starts them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, output_of, request};
use common::postgres::Postgres;
use common::s3::S3Server;
use common::{Gate, Server, buildd_bin, repo_root, tarball_of};
use serde_json::json;

/// One database and one bucket, and the nodes on them.
struct Cluster {
    pg: Postgres,
    _s3: S3Server,
    env: Vec<(String, String)>,
    tmp: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Option<Cluster> {
        let pg = Postgres::create()?;
        let s3 = S3Server::start()?;
        let mut env = vec![
            ("BUILDD_DATABASE".to_string(), pg.url.clone()),
            (
                "BUILDD_BLOB_STORE".to_string(),
                format!("s3://{}/buildd", s3.bucket),
            ),
        ];
        env.extend(s3.env());
        Some(Cluster {
            pg,
            _s3: s3,
            env,
            tmp: tempfile::tempdir().unwrap(),
        })
    }

    /// A node with its own data dir (its scratch space and caches), on the shared storage.
    fn node(&self, name: &str, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--node-name",
            name,
            // Short, so a killed node's build is taken back within seconds; long enough that a
            // live node on a loaded machine still renews in time (every third of it).
            "--lease-timeout",
            "3",
            "--claim-interval-ms",
            "200",
        ];
        args.extend_from_slice(extra);
        Daemon::with_env(&self.data_dir(name), &args, &self.env)
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

fn procfile_tarball() -> Vec<u8> {
    tarball_of(
        &repo_root().join("examples/procfile-app"),
        "procfile-app-main",
    )
}

/// The same URL on another node (URLs handed out name the node that answered).
fn via(node: &Daemon, url: &str) -> String {
    let path = url.splitn(4, '/').nth(3).unwrap_or("");
    format!("{}/{path}", node.base)
}

/// A finished build's output, through `node` (the build's URLs may name a stopped node).
fn output_via(node: &Daemon, build: &serde_json::Value) -> String {
    let url = via(node, build["output_stream_url"].as_str().unwrap());
    request("GET", &url, &[], None).text()
}

/// The nodes a build's output says it ran on, in order.
fn nodes_in(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("-----> Building on node "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

/// Waits until a running build's output (so far) names the node running it.
fn node_running(daemon: &Daemon, app: &str, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = daemon
            .call("GET", &format!("/apps/{app}/builds/{id}/result"), None)
            .json();
        let text: String = result["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("{}\n", l["line"].as_str().unwrap()))
            .collect();
        if let Some(node) = nodes_in(&text).pop() {
            return node;
        }
        assert!(Instant::now() < deadline, "build {id} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three nodes: builds spread over them, one node is killed mid-build and its build runs
/// again elsewhere, its output is followed live through another node the whole time, and every
/// build ends with its slug and release, readable from any node.
#[test]
fn three_nodes_share_builds_and_recover_a_killed_node() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([
            ("/slow.tgz".to_string(), procfile_tarball()),
            ("/app.tgz".to_string(), procfile_tarball()),
        ]),
        gate.clone(),
        &["/slow.tgz"],
    );
    let mut nodes: Vec<Daemon> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| cluster.node(n, &["--concurrency", "1"]))
        .collect();

    // Each node runs one build at a time and these three wait on their source, so each node
    // must take one, whichever node the API call went to.
    let mut slow = Vec::new();
    for i in 0..3 {
        let app = format!("slow-{i}");
        let via_node = &nodes[(i + 1) % 3];
        via_node.create_app(&app);
        let build = via_node.create_build(
            &app,
            json!({ "source_blob": { "url": format!("{}/slow.tgz", server.base) } }),
        );
        slow.push((app, build));
    }
    let holders: Vec<String> = slow
        .iter()
        .map(|(app, b)| node_running(&nodes[0], app, b["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        holders.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["n1".to_string(), "n2".to_string(), "n3".to_string()]),
        "one build on each node"
    );

    // Follow the first build's output through a node that is not running it.
    let victim = holders[0].clone();
    let victim_index: usize = victim[1..].parse::<usize>().unwrap() - 1;
    let reader_node = &nodes[(victim_index + 1) % 3];
    let stream_url = via(
        reader_node,
        slow[0].1["output_stream_url"].as_str().unwrap(),
    );
    let reader = std::thread::spawn(move || request("GET", &stream_url, &[], None).text());
    std::thread::sleep(Duration::from_millis(300));

    // Kill the victim mid-build (SIGKILL: no goodbye, its lease just runs out).
    nodes[victim_index].kill9();
    gate.open();
    let alive: Vec<&Daemon> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim_index)
        .map(|(_, d)| d)
        .collect();

    // More builds while one node is gone: nothing is lost.
    let mut quick = Vec::new();
    for i in 0..6 {
        let app = format!("quick-{i}");
        let node = alive[i % 2];
        node.create_app(&app);
        let build = node.create_build(
            &app,
            json!({ "source_blob": { "url": format!("{}/app.tgz", server.base) } }),
        );
        quick.push((app, build));
    }

    for (app, build) in slow.iter().chain(quick.iter()) {
        let done = alive[0].wait_build(app, build["id"].as_str().unwrap());
        assert_eq!(
            done["status"],
            "succeeded",
            "{}",
            output_via(alive[0], &done)
        );
        if app.starts_with("quick-") {
            // Claimed once: no two nodes ever ran the same build.
            assert_eq!(nodes_in(&output_via(alive[0], &done)).len(), 1);
        }
        let releases = alive[1]
            .call("GET", &format!("/apps/{app}/releases"), None)
            .json();
        assert_eq!(releases.as_array().unwrap().len(), 1, "{app}: one release");
        // The slug lives in the shared store: every node serves it.
        let slug = alive[1].slug_of(app, &done);
        for node in &alive {
            let blob = request(
                "GET",
                &via(node, slug["blob"]["url"].as_str().unwrap()),
                &[],
                None,
            );
            assert_eq!(blob.status, 200, "{app}'s slug through {}", node.base);
            assert_eq!(
                format!("SHA256:{}", common::sha256_bytes(&blob.body)),
                slug["checksum"].as_str().unwrap()
            );
        }
    }

    // The reader followed the whole story live, through a node that ran none of it.
    // (Without the NUL keep-alives a slow machine may have put into the silences.)
    let followed = reader.join().unwrap().replace('\0', "");
    let ran_on = nodes_in(&followed);
    assert_eq!(ran_on.len(), 2, "{followed}");
    assert_eq!(ran_on[0], victim, "{followed}");
    assert_ne!(ran_on[1], victim, "{followed}");
    assert!(
        followed.contains(&format!(
            "Node {victim} stopped during this build; it will run again (attempt 2 of 2)."
        )),
        "{followed}"
    );
    assert!(followed.contains("Released v1"), "{followed}");
    assert_eq!(
        followed,
        output_via(alive[1], &slow[0].1),
        "the live stream and the stored output agree"
    );

    // The queue is empty, nothing is held, and chunks were folded into stored output.
    assert_eq!(
        cluster
            .pg
            .query("SELECT COUNT(*) FROM builds WHERE status = 'pending'"),
        "0"
    );
    assert_eq!(
        cluster.pg.query("SELECT COUNT(*) FROM build_log_chunks"),
        "0"
    );
    let metrics = request("GET", &alive[0].url("/metrics"), &[], None).text();
    assert!(metrics.contains("buildd_queue_depth 0"), "{metrics}");
    drop(server);
}

/// An app's build cache is in the object store: its next build on another node (with an empty
/// data dir) finds it.
#[test]
fn the_build_cache_follows_the_app_to_another_node() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let site = tarball_of(&repo_root().join("examples/static-site"), "site");
    let server = Server::start(BTreeMap::from([("/site.tgz".to_string(), site)]));
    let body = json!({ "source_blob": { "url": format!("{}/site.tgz", server.base) } });

    let mut first_node = cluster.node("a", &[]);
    first_node.create_app("cached");
    let first = first_node.create_build("cached", body.clone());
    let first = first_node.wait_build("cached", first["id"].as_str().unwrap());
    assert_eq!(first["status"], "succeeded", "{}", output_of(&first));
    let first_output = output_of(&first);
    assert!(first_output.contains("(0 from cache)"), "{first_output}");
    assert!(first_node.terminate(), "node a stops cleanly");

    let second_node = cluster.node("b", &[]);
    let second = second_node.create_build("cached", body);
    let second = second_node.wait_build("cached", second["id"].as_str().unwrap());
    assert_eq!(second["status"], "succeeded");
    let output = output_of(&second);
    assert_eq!(nodes_in(&output), ["b"], "{output}");
    assert!(
        !output.contains("(0 from cache)") && output.contains(" from cache)"),
        "the second node reused the first node's cache: {output}"
    );
    assert_eq!(
        second_node.slug_of("cached", &second)["checksum"],
        second_node.slug_of("cached", &first)["checksum"],
        "same inputs, same slug"
    );
    // Purging the cache through the API empties it for every node.
    let purged = second_node.call("DELETE", "/apps/cached/build-cache", None);
    assert_eq!(purged.status, 202);
    let third = second_node.create_build(
        "cached",
        json!({ "source_blob": { "url": format!("{}/site.tgz", server.base) } }),
    );
    let third = second_node.wait_build("cached", third["id"].as_str().unwrap());
    assert!(output_of(&third).contains("(0 from cache)"));
}

/// `buildd tokens` works on the shared database with the same flag as `serve`.
#[test]
fn tokens_use_the_shared_database() {
    let Some(pg) = Postgres::create() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(buildd_bin())
            .args(args)
            .args(["--database", &pg.url, "--data-dir"])
            .arg(tmp.path())
            .env_remove("BUILDD_DATABASE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let token = run(&["tokens", "create", "--email", "ops@example.com"]);
    assert_eq!(token.trim().len(), 64);
    let list = run(&["tokens", "list"]);
    assert!(list.contains("ops@example.com"), "{list}");
    assert_eq!(
        pg.query("SELECT COUNT(*) FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.email = 'ops@example.com'"),
        "1"
    );
    // Nothing was written to the local SQLite file.
    assert!(!tmp.path().join("buildd.sqlite3").exists());
}

/// A buildpack uploaded through one node is usable through every node, and a delete through
/// any node removes it everywhere.
#[test]
fn uploaded_buildpacks_reach_every_node() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let a = cluster.node("up-a", &[]);
    let b = cluster.node("up-b", &[]);
    let wasm = std::fs::read(common::hostile_wasm()).unwrap();
    let auth = format!("Bearer {}", a.token);
    let created = request(
        "POST",
        &a.url("/buildpacks?name=acme/shared"),
        &[
            ("Authorization", &auth),
            ("Accept", common::daemon::ACCEPT),
            ("Content-Type", "application/wasm"),
        ],
        Some(&wasm),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let seen = b.call("GET", "/buildpacks/acme/shared", None);
    assert_eq!(seen.status, 200, "{}", seen.text());
    assert_eq!(seen.json()["digest"], created.json()["digest"]);
    assert_eq!(
        b.call("DELETE", "/buildpacks/acme/shared", None).status,
        200
    );
    assert_eq!(a.call("GET", "/buildpacks/acme/shared", None).status, 404);
}

/// A node told to stop (SIGTERM) claims nothing more and, after its grace period, hands its
/// running build back at once (not after the lease, set long here): another node runs it.
#[test]
fn a_stopping_node_hands_its_build_to_another() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let gate = Gate::default();
    let server = Server::gated(
        BTreeMap::from([("/slow.tgz".to_string(), procfile_tarball())]),
        gate.clone(),
        &["/slow.tgz"],
    );
    let long_lease = ["--lease-timeout", "300", "--shutdown-grace", "1"];
    let mut first = Daemon::with_env(
        &cluster.data_dir("s1"),
        &[
            &["--node-name", "s1", "--concurrency", "1"][..],
            &long_lease[..],
        ]
        .concat(),
        &cluster.env,
    );
    first.create_app("handover");
    let build = first.create_build(
        "handover",
        json!({ "source_blob": { "url": format!("{}/slow.tgz", server.base) } }),
    );
    let id = build["id"].as_str().unwrap();
    assert_eq!(node_running(&first, "handover", id), "s1");
    let second = Daemon::with_env(
        &cluster.data_dir("s2"),
        &[&["--node-name", "s2"][..], &long_lease[..]].concat(),
        &cluster.env,
    );
    let stopping = std::thread::spawn(move || first.terminate());
    // s1 hands the build back after its grace second; s2 takes it (and waits on the source).
    let deadline = Instant::now() + Duration::from_secs(60);
    while node_running(&second, "handover", id) != "s2" {
        assert!(Instant::now() < deadline, "s2 never took the build");
        std::thread::sleep(Duration::from_millis(50));
    }
    gate.open();
    assert!(stopping.join().unwrap(), "s1 exits cleanly");
    let done = second.wait_build("handover", id);
    let output = output_via(&second, &done);
    assert_eq!(done["status"], "succeeded", "{output}");
    assert_eq!(nodes_in(&output), ["s1", "s2"], "{output}");
    assert!(
        output.contains("Node s1 stopped during this build; it will run again (attempt 2 of 2)."),
        "{output}"
    );
}

/// `/healthz` says whether the node can reach the database, so a load balancer can take a node
/// out of rotation; the node lives through the outage and is healthy again when it ends.
#[test]
fn health_follows_the_database() {
    let Some(pg) = Postgres::create() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let env = [("BUILDD_DATABASE".to_string(), pg.url.clone())];
    let node = Daemon::with_env(&tmp.path().join("h"), &[], &env);
    let health = || request("GET", &node.url("/healthz"), &[], None);
    assert_eq!(health().status, 200);

    pg.set_available(false);
    let down = health();
    assert_eq!(down.status, 503, "{}", down.text());
    assert_eq!(down.json()["id"], "unavailable");

    pg.set_available(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while health().status != 200 {
        assert!(Instant::now() < deadline, "the node never recovered");
        std::thread::sleep(Duration::from_millis(200));
    }
    node.create_app("after-the-outage");
}
