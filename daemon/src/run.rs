//! `buildd run`: a whole build in this process, output to the terminal.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use buildd_runtime::{
    BuildRequest, Buildpack, Limits, Runtime, RuntimeConfig, Source, SourceLimits, Stream,
};

use crate::cli::RunArgs;
use crate::embedded::FIRST_PARTY;

fn runtime(cache: Option<std::path::PathBuf>) -> Result<Runtime> {
    Runtime::new(RuntimeConfig {
        component_cache: cache.or_else(RuntimeConfig::default_cache_dir),
    })
}

async fn first_party(runtime: &Runtime) -> Result<Vec<Buildpack>> {
    let mut loaded = Vec::new();
    for embedded in FIRST_PARTY {
        loaded.push(
            runtime
                .load(embedded.wasm)
                .await
                .with_context(|| format!("loading first-party buildpack {}", embedded.name))?,
        );
    }
    Ok(loaded)
}

/// Resolves `--buildpack` values: first-party names (short or full id) or `.wasm` files.
async fn chosen(
    runtime: &Runtime,
    installed: &[Buildpack],
    names: &[String],
) -> Result<Vec<Buildpack>> {
    let mut chosen = Vec::new();
    for name in names {
        let first_party = FIRST_PARTY
            .iter()
            .zip(installed)
            .find(|(e, bp)| e.name == name || bp.info().id == *name);
        match first_party {
            Some((_, bp)) => chosen.push(bp.clone()),
            None => chosen.push(runtime.load_file(name.as_ref()).await?),
        }
    }
    Ok(chosen)
}

/// Runs `buildd run`.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let runtime = runtime(args.component_cache.clone())?;
    let installed = first_party(&runtime).await?;
    let buildpacks = chosen(&runtime, &installed, &args.buildpacks).await?;
    let checksum = args
        .checksum
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--checksum")?;
    let request = BuildRequest {
        source: Source::parse(&args.source),
        checksum,
        buildpacks,
        installed,
        config_vars: args.env.into_iter().collect(),
        cache_dir: args.cache_dir,
        work_dir: None,
        out: args.out,
        limits: Limits {
            memory: args.memory_limit << 20,
            timeout: Duration::from_secs(args.timeout),
            log_bytes: args.log_limit << 10,
            slug_size: args.slug_limit << 20,
            source: SourceLimits {
                unpacked_bytes: args.max_unpacked << 20,
                ..SourceLimits::default()
            },
        },
    };
    let sink = Arc::new(|stream: Stream, line: &str| {
        // Build output is the product here: stdout, line by line, as it happens.
        let _ = stream;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    match runtime.build(request, sink).await {
        Ok(outcome) => {
            let slug = &outcome.slug;
            println!();
            println!("Slug:          {}", slug.path.display());
            println!("Size:          {} bytes", slug.size);
            println!("Checksum:      {}", slug.checksum);
            if slug.process_types.is_empty() {
                println!("Process types: (none)");
            } else {
                println!("Process types:");
                for (name, command) in &slug.process_types {
                    println!("  {name}: {command}");
                }
            }
            println!(
                "Built in {:.0} ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: build failed: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs `buildd buildpacks`.
pub async fn list_buildpacks() -> Result<ExitCode> {
    let runtime = runtime(None)?;
    for (embedded, bp) in FIRST_PARTY.iter().zip(first_party(&runtime).await?) {
        let info = bp.info();
        println!(
            "{:<10} {:<18} {:<8} api {}  {}",
            embedded.name, info.id, info.version, info.api, info.digest
        );
    }
    Ok(ExitCode::SUCCESS)
}
