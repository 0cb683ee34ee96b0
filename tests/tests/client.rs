//! The client commands of `buildd` against a real daemon.

mod common;

use std::process::{Command, Output};

use common::daemon::Daemon;
use common::*;

fn client(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(buildd_bin())
        .args(args)
        .env("BUILDD_URL", &daemon.base)
        .env("BUILDD_TOKEN", &daemon.token)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn build_a_directory_stream_it_and_manage_the_app() {
    let daemon = Daemon::start(&[]);
    let out = client(&daemon, &["apps", "create", "client-app"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "client-app");
    let out = client(&daemon, &["apps", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "client-app")
    );

    let site = repo_root().join("examples/static-site");
    let out = client(
        &daemon,
        &[
            "build",
            "--app",
            "client-app",
            "--dir",
            site.to_str().unwrap(),
            "--version",
            "v1-sha",
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("Uploaded source"), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("-----> Static site app detected"),
        "build output on stdout: {all}"
    );
    assert!(stdout.contains("Released v1"), "{all}");
    assert!(all.contains("succeeded"), "{all}");

    let out = client(
        &daemon,
        &[
            "config:set",
            "--app",
            "client-app",
            "GREETING=hello",
            "MODE=prod",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("GREETING=hello"));
    let out = client(&daemon, &["config:unset", "--app", "client-app", "MODE"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "GREETING=hello"
    );
    let out = client(&daemon, &["config", "--app", "client-app"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "GREETING=hello"
    );

    let out = client(&daemon, &["releases", "--app", "client-app"]);
    let releases = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = releases.lines().collect();
    assert_eq!(lines.len(), 3, "{releases}");
    assert!(
        lines[0].starts_with("* v3"),
        "newest first, current marked: {releases}"
    );
    assert!(lines[2].contains("Deploy v1-sha"), "{releases}");

    // A failing build exits non-zero, with the reason in its output.
    let out = client(
        &daemon,
        &[
            "build",
            "--app",
            "client-app",
            "--archive",
            "http://127.0.0.1:9/none.tgz",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" !     "),
        "{}",
        text(&out)
    );
    let out = client(&daemon, &["builds", "--app", "client-app"]);
    let builds = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(builds.lines().count(), 2, "{builds}");
    assert!(
        builds.lines().next().unwrap().contains("failed"),
        "{builds}"
    );

    // Errors from the server are shown with Heroku's message and id.
    let out = client(&daemon, &["config", "--app", "no-such-app"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not_found"), "{}", text(&out));
}

#[test]
fn a_bad_token_is_refused_clearly() {
    let daemon = Daemon::start(&[]);
    let out = Command::new(buildd_bin())
        .args(["apps", "list", "--url", &daemon.base, "--token", "wrong"])
        .env_remove("BUILDD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("unauthorized"), "{}", text(&out));
}
