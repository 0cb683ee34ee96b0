//! `buildd new buildpack NAME`: a buildpack crate to start from, with a test and a fixture.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// Where the SDK is, for the generated path dependency: the copy this binary was built from.
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// Writes the template into `dir` (default `./NAME`).
pub fn buildpack(
    name: &str,
    id: Option<&str>,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> Result<ExitCode> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_lowercase();
    if !valid {
        bail!("{name:?} is not a crate name: use lowercase letters, digits, '-' and '_'");
    }
    let id = id
        .map(str::to_string)
        .unwrap_or_else(|| format!("local/{name}"));
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = match sdk {
        Some(path) => path.to_path_buf(),
        None => Path::new(SDK_DIR).canonicalize().context(
            "the SDK this binary was built from is not on this machine: pass --sdk PATH",
        )?,
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{id}}", &id)
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    let files = [
        (
            "Cargo.toml",
            fill(include_str!("templates/Cargo.toml.tmpl")),
        ),
        ("src/lib.rs", fill(include_str!("templates/lib.rs.tmpl"))),
        (
            "tests/build.rs",
            fill(include_str!("templates/test.rs.tmpl")),
        ),
        (
            "tests/fixtures/hello/hello.txt",
            "this app wants a greeting\n".to_string(),
        ),
        (".gitignore", "/target\n".to_string()),
    ];
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("Created buildpack {id} in {}", dir.display());
    println!();
    println!("  cd {}", dir.display());
    println!(
        "  cargo test                                      # build a fixture through the real runtime"
    );
    println!("  cargo build --target wasm32-wasip2 --release     # the component");
    println!(
        "  buildd run APP --buildpack target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    Ok(ExitCode::SUCCESS)
}
