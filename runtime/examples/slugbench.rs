//! The packer and unpacker alone, for benchmarks against GNU tar and gzip (see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p buildd-runtime --example slugbench -- pack DIR OUT.tgz
//! cargo run --release -p buildd-runtime --example slugbench -- unpack IN.tgz WORKDIR
//! ```

use std::path::Path;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["pack", dir, out] => {
            let (size, sum) = buildd_runtime::pack_slug(Path::new(dir), Path::new(out), u64::MAX)?;
            eprintln!("packed {size} bytes {sum} in {:?}", started.elapsed());
        }
        ["unpack", archive, work] => {
            let source = buildd_runtime::Source::Archive(archive.into());
            let limits = buildd_runtime::SourceLimits::default();
            let (_, stats) = buildd_runtime::fetch_source(&source, None, Path::new(work), &limits)?;
            eprintln!(
                "unpacked {} files, {} bytes in {:?}",
                stats.files,
                stats.bytes,
                started.elapsed()
            );
        }
        _ => anyhow::bail!("usage: slugbench pack DIR OUT.tgz | unpack IN.tgz WORKDIR"),
    }
    Ok(())
}
