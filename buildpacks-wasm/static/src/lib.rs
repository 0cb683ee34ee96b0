//! The `static` buildpack: a static site (an `index.html` or a `static.json` at the app root).
//!
//! It precompresses text assets to `.gz` siblings (gzip level 9, reusing earlier results from the
//! cache by content hash) and writes `asset-manifest.json`: every asset's size and sha256, so a
//! server or CDN can set strong ETags and immutable cache headers.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use buildd_sdk::{Buildpack, CompileContext, Context, Detect, DetectContext, output};
use sha2::{Digest, Sha256};

/// Extensions worth precompressing: text formats that gzip shrinks.
const TEXT_EXTENSIONS: &[&str] = &[
    "html", "htm", "css", "js", "mjs", "json", "svg", "txt", "xml", "map", "csv", "md", "wasm",
];
/// Below this size a `.gz` sibling saves less than a request header costs.
const MIN_COMPRESS_SIZE: u64 = 256;
/// The manifest the buildpack writes at the app root.
const MANIFEST: &str = "asset-manifest.json";

/// See the crate docs.
#[derive(Default)]
pub struct StaticBuildpack;

/// Every regular file below `dir`, sorted, as paths relative to `root`. Symlinks are not followed.
fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> buildd_sdk::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else if kind.is_file() {
            files.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

fn is_text(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEXT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn gzip(data: &[u8]) -> buildd_sdk::Result<Vec<u8>> {
    // GzBuilder writes no mtime and no file name: the output depends on the bytes alone.
    let mut encoder = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

impl Buildpack for StaticBuildpack {
    const ID: &'static str = "buildd/static";
    const NAME: &'static str = "Static site";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn detect(&self, ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
        let found = ["index.html", "static.json"]
            .iter()
            .any(|name| ctx.app_path(name).is_file());
        Ok(if found {
            Detect::pass("Static site")
        } else {
            Detect::fail()
        })
    }

    fn compile(&self, ctx: &CompileContext) -> buildd_sdk::Result<()> {
        let mut files = Vec::new();
        walk(&ctx.app_dir, &ctx.app_dir, &mut files)?;
        files.retain(|f| f.extension().is_none_or(|e| e != "gz") && f != Path::new(MANIFEST));
        output::header(&format!(
            "Precompressing text assets ({} files)",
            files.len()
        ));

        let cache = ctx.cache_dir.join("gz");
        fs::create_dir_all(&cache).context("creating the gzip cache")?;
        let (mut compressed, mut reused, mut saved) = (0u64, 0u64, 0i64);
        let mut manifest = BTreeMap::new();
        for rel in &files {
            let path = ctx.app_dir.join(rel);
            let data = fs::read(&path).with_context(|| format!("reading {}", rel.display()))?;
            let digest = hex::encode(Sha256::digest(&data));
            let mut entry = serde_json::json!({ "size": data.len(), "sha256": digest });
            if is_text(rel) && data.len() as u64 >= MIN_COMPRESS_SIZE {
                let cached = cache.join(format!("{digest}.gz"));
                let gz = match fs::read(&cached) {
                    Ok(gz) => {
                        reused += 1;
                        gz
                    }
                    Err(_) => {
                        let gz = gzip(&data)?;
                        fs::write(&cached, &gz).context("writing the gzip cache")?;
                        gz
                    }
                };
                let mut gz_name = rel.as_os_str().to_owned();
                gz_name.push(".gz");
                fs::write(ctx.app_dir.join(&gz_name), &gz)
                    .with_context(|| format!("writing {}.gz", rel.display()))?;
                compressed += 1;
                saved += data.len() as i64 - gz.len() as i64;
                entry["gzip"] = serde_json::json!({ "size": gz.len() });
            }
            manifest.insert(format!("/{}", rel.display()), entry);
        }
        output::info(&format!(
            "{compressed} compressed ({reused} from cache), {} saved",
            output::human_size(saved.max(0) as u64)
        ));

        let manifest = serde_json::json!({ "version": 1, "files": manifest });
        let mut text = serde_json::to_string_pretty(&manifest)?;
        text.push('\n');
        fs::write(ctx.app_path(MANIFEST), text).context("writing the asset manifest")?;
        output::info(&format!("Wrote {MANIFEST}"));
        Ok(())
    }
}

buildd_sdk::export_buildpack!(StaticBuildpack);
