//! A test harness, in the spirit of libcnb-test: build a fixture app with your compiled
//! buildpack through the real buildd runtime (wasmtime, the same sandbox and limits as
//! production) and assert on the output, the slug and the process types.
//!
//! Enable the `harness` feature in `[dev-dependencies]`, then in `tests/`:
//!
//! ```no_run
//! use buildd_sdk::harness::{TestBuild, current_buildpack};
//!
//! #[test]
//! fn builds_the_fixture() {
//!     let result = TestBuild::new("tests/fixtures/hello")
//!         .buildpack(current_buildpack())
//!         .env("GREETING_NAME", "tests")
//!         .run();
//!     result.assert_success().assert_output_contains("-----> Writing greeting");
//!     assert_eq!(result.file("greeting.txt").unwrap(), b"hello, tests\n");
//!     assert_eq!(result.process_types["web"], "cat greeting.txt");
//! }
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use buildd_runtime::{BuildRequest, Limits, Runtime, RuntimeConfig, Source, Stream};

/// `<target>/`, found from the test executable (`<target>/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .nth(3)
        .expect("a cargo target directory")
        .to_path_buf()
}

/// Compiles the crate under test for `wasm32-wasip2` (once per test process) and returns the
/// component's path. Uses the `CARGO_MANIFEST_DIR` and `CARGO_PKG_NAME` that `cargo test` sets.
pub fn current_buildpack() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR").expect("run under cargo test"),
            );
            let package = std::env::var("CARGO_PKG_NAME").expect("run under cargo test");
            let target = target_dir().join("wasm-buildpacks");
            let out = target.join("harness");
            buildd_wasm_builder::build_with(&dir, &[&package], &out, &target, false)
                .unwrap_or_else(|e| panic!("{e}"))
                .remove(0)
        })
        .clone()
}

/// One build to run.
#[derive(Debug, Clone)]
pub struct TestBuild {
    app: PathBuf,
    buildpacks: Vec<PathBuf>,
    env: BTreeMap<String, String>,
    cache: Option<PathBuf>,
    limits: Limits,
    grants: Vec<buildd_runtime::HostGrant>,
    downloads: Option<PathBuf>,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// Whether the build succeeded.
    pub success: bool,
    /// Every line of build output, newline-terminated.
    pub output: String,
    /// The build's error, when it failed.
    pub error: Option<String>,
    /// Process types (the buildpacks' defaults overridden by the app's Procfile).
    pub process_types: BTreeMap<String, String>,
    /// `SHA256:<hex>` of the slug.
    pub checksum: Option<String>,
    /// The slug's regular files: path below `/app` to content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// What the buildpacks downloaded through `fetch` (network vs download cache).
    pub fetches: buildd_runtime::FetchSummary,
}

impl TestBuild {
    /// A build of the fixture app in `app_dir` (a directory or a tarball).
    pub fn new(app_dir: impl AsRef<Path>) -> Self {
        TestBuild {
            app: app_dir.as_ref().to_path_buf(),
            buildpacks: Vec::new(),
            env: BTreeMap::new(),
            cache: None,
            limits: Limits::default(),
            grants: Vec::new(),
            downloads: None,
        }
    }

    /// Lets the buildpacks `fetch` from `grant`, as `buildd run --allow-host` does: `HOST`,
    /// `HOST:PORT`, `*.DOMAIN`, `manifest`, optionally after `BUILDPACK_ID=`.
    pub fn allow_host(mut self, grant: &str) -> Self {
        self.grants
            .push(grant.parse().unwrap_or_else(|e| panic!("allow_host: {e}")));
        self
    }

    /// Keeps downloads in `dir` (the machine-wide download cache of a real host), so a second
    /// build can show it downloads nothing. Default: a fresh cache per build.
    pub fn download_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.downloads = Some(dir.into());
        self
    }

    /// Adds a buildpack component (`.wasm`) to run, in order.
    pub fn buildpack(mut self, wasm: impl Into<PathBuf>) -> Self {
        self.buildpacks.push(wasm.into());
        self
    }

    /// Sets a config var.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Keeps buildpack caches in `dir` (to test a second build against a warm cache).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = Some(dir.into());
        self
    }

    /// Changes the limits (the defaults are production's).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs the build. Panics only when the harness itself cannot work (a missing file, a
    /// component that does not load); a failing build is a [`TestResult`] to assert on.
    pub fn run(self) -> TestResult {
        let async_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        async_runtime.block_on(self.run_async())
    }

    async fn run_async(self) -> TestResult {
        let scratch_downloads = tempfile::tempdir().expect("a temp dir");
        let runtime = Runtime::new(RuntimeConfig {
            component_cache: Some(target_dir().join("buildd-components")),
            fetch: buildd_runtime::FetchConfig {
                grants: self.grants.clone(),
                cache_dir: Some(
                    self.downloads
                        .clone()
                        .unwrap_or_else(|| scratch_downloads.path().to_path_buf()),
                ),
                ..Default::default()
            },
        })
        .expect("the wasm engine");
        let mut buildpacks = Vec::new();
        for path in &self.buildpacks {
            buildpacks.push(
                runtime
                    .load_file(path)
                    .await
                    .unwrap_or_else(|e| panic!("{e:#}")),
            );
        }
        assert!(
            !buildpacks.is_empty(),
            "TestBuild needs at least one .buildpack(...)"
        );
        let scratch = tempfile::tempdir().expect("a temp dir");
        let out = scratch.path().join("slug.tgz");
        let output = Arc::new(Mutex::new(String::new()));
        let sink_output = output.clone();
        let sink = Arc::new(move |_: Stream, line: &str| {
            let mut text = sink_output.lock().unwrap();
            text.push_str(line);
            text.push('\n');
        });
        let request = BuildRequest {
            source: Source::parse(&self.app.display().to_string()),
            checksum: None,
            buildpacks,
            installed: Vec::new(),
            config_vars: self.env,
            cache_dir: self.cache,
            work_dir: Some(scratch.path().join("work")),
            out: out.clone(),
            limits: self.limits,
        };
        let outcome = runtime.build(request, sink).await;
        let output = output.lock().unwrap().clone();
        match outcome {
            Ok(outcome) => TestResult {
                success: true,
                output,
                error: None,
                process_types: outcome.slug.process_types,
                checksum: Some(outcome.slug.checksum),
                files: slug_files(&out),
                fetches: outcome.fetches,
            },
            Err(err) => TestResult {
                success: false,
                output,
                error: Some(err.to_string()),
                process_types: BTreeMap::new(),
                checksum: None,
                files: BTreeMap::new(),
                fetches: Default::default(),
            },
        }
    }
}

fn slug_files(slug: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(slug).expect("the slug");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("a tar entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches("./app/")
            .to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("a slug entry");
        files.insert(name, data);
    }
    files
}

impl TestResult {
    /// A file of the slug, by its path below `/app`.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Panics, showing the output, unless the build succeeded.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success,
            "the build failed: {:?}\n--- output\n{}",
            self.error, self.output
        );
        self
    }

    /// Panics, showing the output, unless the build failed.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.success,
            "the build succeeded\n--- output\n{}",
            self.output
        );
        self
    }

    /// Panics unless the output contains `needle`.
    #[track_caller]
    pub fn assert_output_contains(&self, needle: &str) -> &Self {
        assert!(
            self.output.contains(needle),
            "{needle:?} not in the output\n--- output\n{}",
            self.output
        );
        self
    }
}
