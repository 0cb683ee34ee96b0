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

fn runtime(args: &RunArgs) -> Result<Runtime> {
    Runtime::new(RuntimeConfig {
        component_cache: args
            .component_cache
            .clone()
            .or_else(RuntimeConfig::default_cache_dir),
        fetch: args.fetch.config(RuntimeConfig::default_download_dir()),
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
    let runtime = runtime(&args)?;
    let installed = first_party(&runtime).await?;
    let buildpacks = chosen(&runtime, &installed, &args.buildpacks).await?;
    let checksum = args
        .checksum
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--checksum")?;
    let (start, port, config_vars) = (args.start, args.port, args.env.clone());
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
            cache_size: args.cache_limit << 20,
            source: args.source_net.apply(SourceLimits {
                unpacked_bytes: args.max_unpacked << 20,
                ..SourceLimits::default()
            }),
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
            if start {
                return start_web(&outcome.slug, &config_vars, port);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: build failed: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `--start`: unpacks the slug (with the same safe unpacker as sources) and runs its `web`
/// process the way a dyno would: in the app dir, `.profile.d/*.sh` sourced, `PORT` and the
/// config vars in the environment.
fn start_web(slug: &buildd_runtime::Slug, env: &[(String, String)], port: u16) -> Result<ExitCode> {
    let Some(command) = slug.process_types.get("web") else {
        anyhow::bail!("--start: the slug has no web process type (add one to the Procfile)");
    };
    let scratch = tempfile::Builder::new().prefix("buildd-start-").tempdir()?;
    let (root, _) = buildd_runtime::fetch_source(
        &Source::Archive(slug.path.clone()),
        None,
        scratch.path(),
        &SourceLimits::default(),
    )?;
    // The slug's single top-level directory is `app`, which the unpacker strips.
    let app = root;
    println!("-----> Starting web process on port {port}: {command}");
    let script =
        format!("for f in .profile.d/*.sh; do [ -r \"$f\" ] && . \"$f\"; done; exec {command}");
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(&app)
        .env("PORT", port.to_string())
        .env("HOME", &app)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .context("starting the web process")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs `buildd buildpacks`.
pub async fn list_buildpacks() -> Result<ExitCode> {
    let runtime = Runtime::new(RuntimeConfig {
        component_cache: RuntimeConfig::default_cache_dir(),
        ..Default::default()
    })?;
    for (embedded, bp) in FIRST_PARTY.iter().zip(first_party(&runtime).await?) {
        let info = bp.info();
        let hosts = if info.fetch_hosts.is_empty() {
            String::new()
        } else {
            format!("  fetches from {}", info.fetch_hosts.join(", "))
        };
        println!(
            "{:<10} {:<18} {:<8} api {}  {}{hosts}",
            embedded.name, info.id, info.version, info.api, info.digest
        );
    }
    Ok(ExitCode::SUCCESS)
}
