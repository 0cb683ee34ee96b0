//! Compiles buildpack crates of this workspace for `wasm32-wasip2` from a build script.
//!
//! The outer `cargo build` holds the lock on its own target directory, so the inner build uses a
//! target directory of its own (`target/wasm-buildpacks`); cargo's lock there serializes the build
//! scripts of different packages that ask at the same time.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every buildpack is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Environment that cargo sets for a build script and that must not leak into the inner build:
/// it would retarget it, pass host flags to the wasm compiler, or wrap rustc in clippy.
const SCRUB: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
];

/// Builds `packages` (cargo package names) in release mode for [`TARGET`] and copies each
/// `<crate_name>.wasm` into `out_dir`, returning the copied paths in the order given.
///
/// Panics with cargo's output on failure: this runs inside a build script.
pub fn build(workspace_root: &Path, packages: &[&str], out_dir: &Path) -> Vec<PathBuf> {
    for watched in ["buildpacks-wasm", "sdk", "wit", "Cargo.lock", "Cargo.toml"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(watched).display()
        );
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"))
        .join("wasm-buildpacks");
    build_with(workspace_root, packages, out_dir, &target_dir, true)
        .unwrap_or_else(|message| panic!("{message}"))
}

/// Like [`build`], for any crate: runs cargo in `dir`, builds into `target_dir`, and reports
/// failure as an error. `locked` passes `--locked`.
pub fn build_with(
    dir: &Path,
    packages: &[&str],
    out_dir: &Path,
    target_dir: &Path,
    locked: bool,
) -> Result<Vec<PathBuf>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    if locked {
        command.arg("--locked");
    }
    for package in packages {
        command.args(["-p", package]);
    }
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if SCRUB.contains(&key.as_ref())
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("DEP_")
        {
            command.env_remove(key.as_ref());
        }
    }
    let status = command
        .status()
        .map_err(|e| format!("could not run cargo to build buildpacks: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the wasm buildpacks failed ({status}); is the target installed? \
             run `rustup target add {TARGET}`"
        ));
    }

    std::fs::create_dir_all(out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    packages
        .iter()
        .map(|package| {
            let file = format!("{}.wasm", package.replace('-', "_"));
            let built = target_dir.join(TARGET).join("release").join(&file);
            let copy = out_dir.join(&file);
            std::fs::copy(&built, &copy)
                .map_err(|e| format!("copying {}: {e}", built.display()))?;
            Ok(copy)
        })
        .collect()
}
