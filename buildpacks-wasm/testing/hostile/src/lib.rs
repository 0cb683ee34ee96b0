//! A buildpack that attacks its host, for tests only. The config var `HOSTILE` picks the attack;
//! each must fail its build with the limit or the denied path named, and touch nothing on the host.
//! `cachefill` fills the cache without end. Three modes are benign: `cache` (writes its cache), `tick` (timed output, for benchmarks)
//! and `envdump` (prints what config it can see, for isolation tests).

use std::time::Duration;

use buildd_sdk::{Buildpack, CompileContext, Detect, DetectContext, bail, output};

/// See the crate docs.
#[derive(Default)]
pub struct HostileBuildpack;

/// A path that escapes every preopen if the host let `..` through.
const ESCAPE: &str = "../../../../../../../../etc/passwd";

fn try_read(path: &str) -> buildd_sdk::Result<()> {
    match std::fs::read(path) {
        Ok(bytes) => {
            // Leave the loot where the test looks for it: reaching here is the bug.
            std::fs::write("/app/LEAKED", &bytes)?;
            Ok(())
        }
        Err(err) => bail!("denied: {path}: {err}"),
    }
}

/// Creates `/app/<name>` as a symlink to `target` through the raw WASI API (std has no stable call).
fn symlink_in_app(target: &str, name: &str) -> buildd_sdk::Result<()> {
    for (dir, path) in wasip2::filesystem::preopens::get_directories() {
        if path == "/app" {
            dir.symlink_at(target, name)
                .map_err(|code| buildd_sdk::anyhow!("symlink {name} -> {target}: {code:?}"))?;
            return Ok(());
        }
    }
    bail!("no /app preopen")
}

fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        pad[0]
    } else {
        recurse(depth + 1) + pad[1]
    }
}

impl Buildpack for HostileBuildpack {
    const ID: &'static str = "test/hostile";
    const NAME: &'static str = "Hostile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn detect(&self, _ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
        Ok(Detect::pass("Hostile"))
    }

    fn compile(&self, ctx: &CompileContext) -> buildd_sdk::Result<()> {
        let mode = ctx.env.get("HOSTILE").unwrap_or("none").trim().to_string();
        output::header(&format!("Attacking with {mode}"));
        match mode.as_str() {
            "loop" => loop {
                std::hint::black_box(());
            },
            "sleep" => {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(())
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => {
                std::hint::black_box(recurse(0));
                Ok(())
            }
            "flood" => loop {
                println!("flooding the build output with a line that never ends the build");
            },
            "passwd" => try_read("/etc/passwd"),
            "dotdot" => {
                try_read(&format!("/app/{ESCAPE}")).or_else(|_| try_read(ESCAPE))?;
                Ok(())
            }
            "symlink" => {
                symlink_in_app(ESCAPE, "leak")?;
                // The guest cannot follow it; the host must not either, when it packs the slug.
                if let Ok(bytes) = std::fs::read("/app/leak") {
                    std::fs::write("/app/LEAKED", bytes)?;
                }
                Ok(())
            }
            "abssymlink" => {
                symlink_in_app("/etc/passwd", "abs")?;
                bail!("an absolute symlink was created in /app")
            }
            // Prints every config var it can see: another app's must never be among them.
            "envdump" => {
                for (key, value) in ctx.env.iter() {
                    println!("env {key}={value}");
                }
                for path in ["/env/..", "/env/../..", "/"] {
                    if let Ok(entries) = std::fs::read_dir(path) {
                        for e in entries.flatten() {
                            println!("saw {}", e.path().display());
                        }
                    }
                }
                Ok(())
            }
            "bigslug" => {
                // Incompressible bytes, so the gzipped slug is as big as the file.
                let mut state = 0x9E37_79B9_7F4A_7C15u64;
                let bytes: Vec<u8> = (0..(8 << 20))
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                std::fs::write("/app/big.bin", bytes)?;
                Ok(())
            }
            // Not an attack: ten lines 100 ms apart, to measure how fast output reaches readers.
            "tick" => {
                for i in 0..10 {
                    println!("tick {i}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(())
            }
            // Writes its cache until something stops it: the cache quota must, while it writes.
            "cachefill" => {
                let chunk = vec![7u8; 1 << 20];
                let mut i = 0u64;
                loop {
                    std::fs::write(ctx.cache_dir.join(format!("fill-{i}")), &chunk)?;
                    i += 1;
                }
            }
            "cache" => {
                std::fs::write(ctx.cache_dir.join("count"), b"1")?;
                Ok(())
            }
            other => bail!("unknown HOSTILE mode {other:?}"),
        }
    }
}

buildd_sdk::export_buildpack!(HostileBuildpack);
