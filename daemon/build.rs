//! Builds the first-party buildpacks for wasm32-wasip2 so the `buildd` binary carries them.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("buildpacks");
    buildd_wasm_builder::build(
        manifest.parent().unwrap(),
        &[
            "buildd-buildpack-nodejs",
            "buildd-buildpack-procfile",
            "buildd-buildpack-static",
        ],
        &out,
    );
}
