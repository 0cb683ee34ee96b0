//! The static buildpack, tested as an author would test theirs: compiled for wasm32-wasip2 and
//! run on fixture apps by the SDK's harness, through the real runtime.

use buildd_sdk::harness::{TestBuild, current_buildpack};

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let page = format!(
        "<html><body>{}</body></html>\n",
        "a static page. ".repeat(50)
    );
    std::fs::write(dir.path().join("index.html"), page).unwrap();
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\n").unwrap();
    dir
}

#[test]
fn precompresses_and_writes_the_manifest() {
    let app = site();
    let result = TestBuild::new(app.path())
        .buildpack(current_buildpack())
        .run();
    result
        .assert_success()
        .assert_output_contains("-----> Precompressing text assets (2 files)")
        .assert_output_contains("1 compressed (0 from cache)");
    assert!(result.file("index.html.gz").is_some());
    assert!(
        result.file("robots.txt.gz").is_none(),
        "too small to be worth it"
    );
    let manifest = String::from_utf8(result.file("asset-manifest.json").unwrap().to_vec()).unwrap();
    assert!(manifest.contains("\"/index.html\""), "{manifest}");
}

#[test]
fn a_warm_cache_is_reused_and_changes_nothing() {
    let app = site();
    let cache = tempfile::tempdir().unwrap();
    let first = TestBuild::new(app.path())
        .buildpack(current_buildpack())
        .cache_dir(cache.path())
        .run();
    let second = TestBuild::new(app.path())
        .buildpack(current_buildpack())
        .cache_dir(cache.path())
        .run();
    second
        .assert_success()
        .assert_output_contains("1 compressed (1 from cache)");
    assert_eq!(first.checksum, second.checksum);
}

#[test]
fn apps_without_a_page_are_not_detected() {
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("main.py"), "print('hi')\n").unwrap();
    let result = TestBuild::new(app.path())
        .buildpack(current_buildpack())
        .run();
    result
        .assert_failure()
        .assert_output_contains("App not compatible with buildpack: buildd/static");
}
