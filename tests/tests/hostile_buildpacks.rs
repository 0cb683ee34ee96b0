//! Buildpacks that attack the host: each fails its build with the limit or the denied path
//! named, writes no slug, and leaves nothing behind on the host.

mod common;

use common::daemon::{ACCEPT, Daemon, output_of, request};
use common::*;
use serde_json::json;

/// Runs the hostile buildpack in `mode` with extra flags; returns the run and its temp dir.
fn attack(mode: &str, flags: &[&str]) -> (Run, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    write_tree(&app, &[("README", "victim app\n")]);
    let env = format!("HOSTILE={mode}");
    let mut args = vec![
        app.to_str().unwrap().to_string(),
        "--buildpack".into(),
        hostile_wasm().into(),
        "--env".into(),
        env,
        "-o".into(),
        "slug.tgz".into(),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = buildd_run(tmp.path(), &args);
    (run, tmp)
}

fn assert_failed_cleanly(run: &Run, tmp: &tempfile::TempDir, needle: &str) {
    assert!(!run.ok(), "the build must fail: {}", run.all());
    assert!(
        run.stdout.contains(needle),
        "expected {needle:?} in the output: {}",
        run.all()
    );
    assert!(run.stderr.contains("build failed"), "{}", run.all());
    assert!(
        !tmp.path().join("slug.tgz").exists(),
        "no slug from a failed build"
    );
    // The build's scratch dir (under TMPDIR) is gone, and nothing was leaked anywhere.
    let left: Vec<String> = list_tree(&tmp.path().join("tmp"));
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
    assert!(
        !list_tree(tmp.path()).iter().any(|p| p.ends_with("LEAKED")),
        "host file leaked"
    );
}

#[test]
fn infinite_loop_hits_the_time_limit() {
    let (run, tmp) = attack("loop", &["--timeout", "2"]);
    assert_failed_cleanly(&run, &tmp, "time limit exceeded");
}

#[test]
fn sleeping_in_a_host_call_hits_the_time_limit() {
    let (run, tmp) = attack("sleep", &["--timeout", "2"]);
    assert_failed_cleanly(&run, &tmp, "time limit exceeded");
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let (run, tmp) = attack("alloc", &["--memory-limit", "64"]);
    assert_failed_cleanly(&run, &tmp, "memory limit exceeded");
    assert!(run.stdout.contains("64 MiB"), "{}", run.all());
}

#[test]
fn output_flood_hits_the_output_limit() {
    let (run, tmp) = attack("flood", &["--log-limit", "64"]);
    assert_failed_cleanly(&run, &tmp, "output limit exceeded");
    let lines = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("flooding"))
        .count();
    assert!(
        lines < 2000,
        "output was cut off near 64 KiB, got {lines} lines"
    );
}

#[test]
fn oversized_slug_hits_the_slug_limit() {
    let (run, tmp) = attack("bigslug", &["--slug-limit", "1"]);
    assert_failed_cleanly(&run, &tmp, "slug size limit exceeded");
}

#[test]
fn deep_recursion_crashes_only_the_buildpack() {
    let (run, tmp) = attack("recurse", &[]);
    assert_failed_cleanly(&run, &tmp, "buildpack test/hostile crashed");
}

#[test]
fn host_files_are_out_of_reach() {
    let (run, tmp) = attack("passwd", &[]);
    assert_failed_cleanly(&run, &tmp, "denied: /etc/passwd");
}

#[test]
fn dotdot_paths_do_not_leave_the_preopens() {
    let (run, tmp) = attack("dotdot", &[]);
    assert_failed_cleanly(&run, &tmp, "denied: ../../../../../../../../etc/passwd");
}

#[test]
fn symlink_out_of_the_app_is_not_followed_by_the_packer() {
    let (run, tmp) = attack("symlink", &[]);
    assert_failed_cleanly(&run, &tmp, "refusing \"leak\"");
    assert!(
        run.stdout.contains("points outside the app dir"),
        "{}",
        run.all()
    );
}

#[test]
fn absolute_symlinks_cannot_be_created() {
    let (run, tmp) = attack("abssymlink", &[]);
    assert_failed_cleanly(&run, &tmp, "symlink abs -> /etc/passwd");
}

#[test]
fn a_component_importing_what_the_host_lacks_is_refused_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    write_tree(&app, &[("README", "x\n")]);
    let run = buildd_run(
        tmp.path(),
        &[
            app.to_str().unwrap(),
            "--buildpack",
            env!("BUILDD_BUILDPACK_IMPORTER_WASM"),
        ],
    );
    assert!(!run.ok());
    assert!(
        run.stderr.contains("cannot run here") && run.stderr.contains("wasi:http"),
        "{}",
        run.all()
    );
    assert!(!tmp.path().join("slug.tgz").exists());
}

#[test]
fn filling_the_cache_without_end_hits_the_cache_limit_and_empties_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cache_arg = cache.display().to_string();
    let (run, tmp2) = attack(
        "cachefill",
        &[
            "--cache-limit",
            "4",
            "--cache-dir",
            &cache_arg,
            "--timeout",
            "60",
        ],
    );
    assert_failed_cleanly(
        &run,
        &tmp2,
        "cache limit exceeded: the buildpack's cache grew past 4 MiB; it has been emptied",
    );
    let left = list_tree(&cache.join("test__hostile"));
    assert!(left.is_empty(), "the over-quota cache was kept: {left:?}");
}

#[test]
fn a_cache_within_the_limit_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cache_arg = cache.display().to_string();
    let (run, _tmp) = attack("cache", &["--cache-limit", "1", "--cache-dir", &cache_arg]);
    assert!(run.ok(), "{}", run.all());
    assert!(cache.join("test__hostile/count").exists());
}

#[test]
fn a_component_with_a_huge_table_is_refused_at_load_naming_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    write_tree(&app, &[("README", "x\n")]);
    let run = buildd_run(
        tmp.path(),
        &[
            app.to_str().unwrap(),
            "--buildpack",
            env!("BUILDD_BUILDPACK_TABLES_WASM"),
        ],
    );
    assert!(!run.ok(), "{}", run.all());
    assert!(
        run.stderr
            .contains("table limit exceeded: the buildpack tried to grow a table past 100000"),
        "{}",
        run.all()
    );
    assert!(!tmp.path().join("slug.tgz").exists());
}

fn upload_buildpack(daemon: &Daemon, bytes: &[u8]) -> common::daemon::Answer {
    let auth = format!("Bearer {}", daemon.token);
    request(
        "POST",
        &daemon.url("/buildpacks?name=acme/upload"),
        &[
            ("Authorization", &auth),
            ("Accept", ACCEPT),
            ("Content-Type", "application/wasm"),
        ],
        Some(bytes),
    )
}

/// The procfile example app, served over loopback.
fn app_server() -> Server {
    let tarball = tarball_of(&repo_root().join("examples/procfile-app"), "app");
    Server::start([("/app.tgz".to_string(), tarball)].into())
}

#[test]
fn over_the_api_cache_floods_huge_tables_and_huge_components_fail_by_name_while_honest_builds_succeed()
 {
    let daemon = Daemon::start(&[
        "--cache-limit",
        "2",
        "--max-buildpack-size",
        "1",
        "--concurrency",
        "2",
    ]);
    let server = app_server();
    let source = json!({ "url": format!("{}/app.tgz", server.base) });
    daemon.create_app("hoarder");
    daemon.create_app("honest");
    let set = daemon.call(
        "PATCH",
        "/apps/hoarder/config-vars",
        Some(json!({ "HOSTILE": "cachefill" })),
    );
    assert_eq!(set.status, 200);
    let hoard = daemon.create_build(
        "hoarder",
        json!({ "source_blob": source, "buildpacks": [{ "url": "test/hostile" }] }),
    );
    let honest = daemon.create_build(
        "honest",
        json!({ "source_blob": source, "buildpacks": [{ "url": "procfile" }] }),
    );

    // Meanwhile: a component over the size limit, and one whose table is over the table limit.
    let huge = upload_buildpack(&daemon, &vec![0u8; (1 << 20) + 1]);
    assert_eq!(huge.status, 413, "{}", huge.text());
    assert!(
        huge.text()
            .contains("Buildpack is larger than the limit of 1 MiB (--max-buildpack-size)"),
        "{}",
        huge.text()
    );
    let tables = upload_buildpack(
        &daemon,
        &std::fs::read(env!("BUILDD_BUILDPACK_TABLES_WASM")).unwrap(),
    );
    assert_eq!(tables.status, 422, "{}", tables.text());
    assert!(
        tables.text().contains("table limit exceeded"),
        "{}",
        tables.text()
    );

    let done = daemon.wait_build("hoarder", hoard["id"].as_str().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    let output = output_of(&hoard);
    assert!(
        output.contains("cache limit exceeded: the buildpack's cache grew past 2 MiB"),
        "{output}"
    );
    let done = daemon.wait_build("honest", honest["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{}", output_of(&honest));
    let cache = daemon.data_dir.join("cache");
    let hoarded: u64 = list_tree(&cache)
        .iter()
        .filter_map(|p| std::fs::metadata(cache.join(p)).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert_eq!(hoarded, 0, "the over-quota cache was kept");
}

#[test]
fn compiling_an_uploaded_component_is_bounded_in_time() {
    let daemon = Daemon::start(&["--buildpack-compile-timeout", "0.001"]);
    // A custom section makes the bytes (and so the precompiled cache key) new: a real compile.
    let mut wasm = std::fs::read(hostile_wasm()).unwrap();
    let nonce = format!("{:016x}", std::process::id() as u64 ^ 0x5eed);
    wasm.extend_from_slice(&[0x00, 2 + nonce.len() as u8, 1, b'n']);
    wasm.extend_from_slice(nonce.as_bytes());
    let answer = upload_buildpack(&daemon, &wasm);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(
        answer
            .text()
            .contains("compiling it took longer than the limit of 0.001s"),
        "{}",
        answer.text()
    );
    assert_eq!(
        daemon.call("GET", "/buildpacks/acme/upload", None).status,
        404
    );
    assert_eq!(
        request("GET", &daemon.url("/healthz"), &[], None).status,
        200
    );
}
