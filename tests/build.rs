//! Builds the test-only (hostile) buildpacks for wasm32-wasip2; tests find them via `env!`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("buildpacks");
    let built = buildd_wasm_builder::build(
        manifest.parent().unwrap(),
        &[
            "buildd-buildpack-hostile",
            "buildd-buildpack-importer",
            "buildd-buildpack-fetcher",
            "buildd-buildpack-legacy",
            "buildd-buildpack-tables",
            "buildd-buildpack-static",
            "buildd-buildpack-procfile",
        ],
        &out,
    );
    for path in built {
        let name = path.file_stem().unwrap().to_str().unwrap().to_uppercase();
        println!("cargo:rustc-env={name}_WASM={}", path.display());
    }
}
