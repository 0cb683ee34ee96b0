//! Helpers for the end-to-end tests: find and run the real `buildd` binary, make fixture apps and
//! tarballs, serve files over loopback HTTP, read slugs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `buildd` binary cargo built next to this test (built on demand when run alone).
pub fn buildd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test> -> target/<profile>/buildd
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let bin = profile_dir.join("buildd");
        // `cargo test` over the workspace builds the binary; `cargo test -p buildd-tests` alone
        // does not, so rebuild it when a source is newer. (Always running `cargo build -p buildd`
        // would rebuild it with a different feature set than `cargo test` unified, every time.)
        if needs_rebuild(&bin) {
            let mut build = Command::new(env!("CARGO"));
            build.args(["build", "--quiet", "-p", "buildd", "--bin", "buildd"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.current_dir(repo_root()).status().unwrap();
            assert!(status.success(), "building buildd");
        }
        profile_dir.join("buildd")
    })
    .clone()
}

/// Whether any source of the binary is newer than it (or it is missing).
fn needs_rebuild(bin: &Path) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return true;
    };
    fn newer(dir: &Path, than: std::time::SystemTime) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                newer(&path, than)
            } else {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m > than)
            }
        })
    }
    [
        "daemon",
        "runtime",
        "sdk",
        "wit",
        "buildpacks-wasm/nodejs",
        "buildpacks-wasm/procfile",
        "buildpacks-wasm/static",
    ]
    .iter()
    .any(|d| newer(&repo_root().join(d), built))
}

/// One precompiled-component cache for the whole test run: each component compiles once.
pub fn component_cache() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("test-component-cache")
}

/// A test buildpack's `.wasm`, built by `tests/build.rs`.
pub fn hostile_wasm() -> &'static str {
    env!("BUILDD_BUILDPACK_HOSTILE_WASM")
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What a finished `buildd run` printed.
pub struct Run {
    pub output: Output,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }

    /// The slug checksum printed in the summary.
    pub fn checksum(&self) -> String {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Checksum:"))
            .unwrap_or_else(|| panic!("no checksum in output:\n{}", self.stdout))
            .trim()
            .to_string()
    }

    /// Everything printed, for assertion messages.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `buildd run` in `cwd` with the given arguments; temp files go under `cwd/tmp`.
pub fn buildd_run(cwd: &Path, args: &[&str]) -> Run {
    let tmp = cwd.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let output = Command::new(buildd_bin())
        .arg("run")
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", &tmp)
        .env("BUILDD_COMPONENT_CACHE", component_cache())
        .output()
        .unwrap();
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        output,
    }
}

/// Writes files (path -> content) under `root`; a path ending in `*` is made executable.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let (path, exec) = match path.strip_suffix('*') {
            Some(p) => (p, true),
            None => (*path, false),
        };
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        if exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// Entries of a slug: path -> (mode, content or symlink target).
pub fn slug_entries(path: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let mode = entry.header().mode().unwrap();
        let mut data = Vec::new();
        if entry.header().entry_type().is_symlink() {
            data = entry.link_name_bytes().unwrap().into_owned();
        } else {
            entry.read_to_end(&mut data).unwrap();
        }
        entries.insert(name, (mode, data));
    }
    entries
}

/// sha256 of a file, as `SHA256:<hex>`.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    format!(
        "SHA256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    )
}

/// The hex sha256 of some bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A gzipped tarball of `dir`, with every path below `prefix/`.
pub fn tarball_of(dir: &Path, prefix: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.append_dir_all(prefix, dir).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A raw tar header with any name and link name, bypassing the tar crate's path checks, as an
/// attacker would write it.
pub fn raw_header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h.set_cksum();
    h
}

/// Builds a hostile tar.gz from raw entries (header, data).
pub fn hostile_tarball(entries: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (header, data) in entries {
        builder.append(header, &data[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Serves `files` (URL path -> body) on a loopback port until the returned guard is dropped.
pub struct Server {
    pub base: String,
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Holds requests for gated paths until opened: a source server a test can keep a build
/// waiting on.
#[derive(Clone, Default)]
pub struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
    fn wait(&self) {
        let mut open = self.0.0.lock().unwrap();
        while !*open {
            open = self.0.1.wait(open).unwrap();
        }
    }
}

impl Server {
    pub fn start(files: BTreeMap<String, Vec<u8>>) -> Server {
        Server::gated(files, Gate::default(), &[])
    }

    /// Like `start`, but requests for `gated` paths wait until `gate` opens.
    pub fn gated(files: BTreeMap<String, Vec<u8>>, gate: Gate, gated: &[&str]) -> Server {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let serving = server.clone();
        let files = std::sync::Arc::new(files);
        let gated: std::sync::Arc<Vec<String>> =
            std::sync::Arc::new(gated.iter().map(|s| s.to_string()).collect());
        let thread = std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let (files, gate, gated) = (files.clone(), gate.clone(), gated.clone());
                std::thread::spawn(move || {
                    if gated.iter().any(|g| g == request.url()) {
                        gate.wait();
                    }
                    let response = match files.get(request.url()) {
                        Some(body) => tiny_http::Response::from_data(body.clone()).boxed(),
                        None => tiny_http::Response::from_string("not found")
                            .with_status_code(404)
                            .boxed(),
                    };
                    let _ = request.respond(response);
                });
            }
        });
        Server {
            base,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every path below `root`, relative, sorted (symlinks not followed).
pub fn list_tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}
pub mod daemon;
pub mod npm;
pub mod postgres;
pub mod s3;

/// For a test whose service (a database, an object store) is missing: under CI (`CI` set) that
/// is a failure; elsewhere the test says loudly that it did not run, and returns early.
pub fn unavailable<T>(what: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required under CI (.ci/run installs and starts it)");
    }
    eprintln!("\n*** SKIPPED: {what} is not available; this test did not run ***\n");
    None
}
