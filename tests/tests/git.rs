//! Git sources: a repository made by the test, served by `git daemon` on loopback or read
//! through `file://`, built at a branch, a tag or a commit.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, output_of, request};
use common::*;
use serde_json::json;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A repo with a tagged first commit (`v1`), a second commit on `main`, and a `feature` branch.
/// Returns (v1 sha, main sha, feature sha).
fn make_repo(repo: &Path) -> (String, String, String) {
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "-q", "-b", "main"]);
    write_tree(
        repo,
        &[("Procfile", "web: v1\n"), ("bin/run*", "#!/bin/sh\n")],
    );
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "first"]);
    git(repo, &["tag", "v1"]);
    let v1 = git(repo, &["rev-parse", "HEAD"]);
    git(repo, &["checkout", "-q", "-b", "feature"]);
    write_tree(repo, &[("Procfile", "web: feature\n")]);
    git(repo, &["commit", "-q", "-am", "feature"]);
    let feature = git(repo, &["rev-parse", "HEAD"]);
    git(repo, &["checkout", "-q", "main"]);
    write_tree(repo, &[("Procfile", "web: main\n")]);
    git(repo, &["commit", "-q", "-am", "second"]);
    let main = git(repo, &["rev-parse", "HEAD"]);
    (v1, main, feature)
}

struct GitDaemon(Child, u16);

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            // Its own process group: `git daemon` runs `git-daemon` as a child, and both must go.
            .process_group(0)
            .spawn()
            .expect("git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon(child, port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn procfile_of(daemon: &Daemon, slug_url: &str) -> String {
    let blob = request("GET", slug_url, &[], None);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.tgz");
    std::fs::write(&path, blob.body).unwrap();
    let _ = daemon;
    String::from_utf8(slug_entries(&path)["./app/Procfile"].1.clone()).unwrap()
}

#[test]
fn builds_from_git_daemon_at_a_tag_and_a_branch_record_the_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let (v1, main, feature) = make_repo(&tmp.path().join("repo"));
    let gitd = GitDaemon::start(tmp.path());
    let daemon = Daemon::start(&[]);
    daemon.create_app("git-app");
    for (reference, sha, procfile) in [
        ("v1", &v1, "web: v1\n"),
        ("feature", &feature, "web: feature\n"),
        ("", &main, "web: main\n"),
    ] {
        let url = format!("git://127.0.0.1:{}/repo#{reference}", gitd.1);
        let build = daemon.create_build("git-app", json!({ "source_blob": { "url": url } }));
        let done = daemon.wait_build("git-app", build["id"].as_str().unwrap());
        let output = output_of(&done);
        assert_eq!(done["status"], "succeeded", "{url}: {output}");
        assert!(output.contains(&format!("Commit: {sha}")), "{output}");
        let slug = daemon.slug_of("git-app", &done);
        assert_eq!(slug["commit"], sha.as_str(), "{url}");
        assert_eq!(
            procfile_of(&daemon, slug["blob"]["url"].as_str().unwrap()),
            procfile
        );
    }
    let missing = daemon.create_build("git-app", json!({ "source_blob": { "url": format!("git://127.0.0.1:{}/repo#no-such-branch", gitd.1) } }));
    assert_eq!(
        daemon.wait_build("git-app", missing["id"].as_str().unwrap())["status"],
        "failed"
    );
}

#[test]
fn local_repositories_need_the_operator_to_allow_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let (v1, _, _) = make_repo(&repo);
    let url = format!("file://{}#{v1}", repo.display());

    let closed = Daemon::start(&[]);
    closed.create_app("file-app");
    let refused = closed.call(
        "POST",
        "/apps/file-app/builds",
        Some(json!({ "source_blob": { "url": url } })),
    );
    assert_eq!(refused.status, 422);

    let open = Daemon::start(&["--allow-local-sources"]);
    open.create_app("file-app");
    let build = open.create_build("file-app", json!({ "source_blob": { "url": url } }));
    let done = open.wait_build("file-app", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded");
    let slug = open.slug_of("file-app", &done);
    assert_eq!(
        slug["commit"],
        v1.as_str(),
        "a commit sha ref checks out that commit"
    );
    assert_eq!(
        procfile_of(&open, slug["blob"]["url"].as_str().unwrap()),
        "web: v1\n"
    );
    assert_eq!(slug["process_types"]["web"], "v1");
}

#[test]
fn buildd_run_builds_a_git_source() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let (_, main, _) = make_repo(&repo);
    let run = buildd_run(
        tmp.path(),
        &[&format!("git+file://{}#main", repo.display())],
    );
    assert!(run.ok(), "{}", run.all());
    assert!(
        run.stdout.contains(&format!("Commit: {main}")),
        "{}",
        run.all()
    );
    let entries = slug_entries(&tmp.path().join("slug.tgz"));
    assert_eq!(entries["./app/bin/run"].0, 0o755);
    assert!(
        !entries.keys().any(|k| k.contains(".git")),
        "no git metadata in the slug"
    );
}
