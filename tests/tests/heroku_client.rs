//! A real third-party Heroku client (the `heroku-client` npm package) drives the API unchanged.
//! `.ci/run` installs it with `npm ci --prefix tests/node`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::daemon::Daemon;
use common::*;

#[test]
fn heroku_client_npm_package_builds_and_releases() {
    let node_dir = repo_root().join("tests/node");
    assert!(
        node_dir.join("node_modules/heroku-client").is_dir(),
        "heroku-client is not installed: run `npm ci --prefix tests/node` (CI does)"
    );
    let daemon = Daemon::start(&[]);
    let tarball = tarball_of(&repo_root().join("examples/procfile-app"), "app");
    let server = Server::start(BTreeMap::from([("/app.tgz".to_string(), tarball)]));
    let output = Command::new("node")
        .arg(node_dir.join("heroku_client.mjs"))
        .env("BUILDD_URL", &daemon.base)
        .env("BUILDD_TOKEN", &daemon.token)
        .env("SOURCE_URL", format!("{}/app.tgz", server.base))
        .env("APP", "npm-client-app")
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("8 passed, 0 failed"), "{stdout}");
}
