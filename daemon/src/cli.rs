//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Build apps with WebAssembly buildpacks.
#[derive(Debug, Parser)]
#[command(name = "buildd", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an app locally, without a daemon, and write its slug.
    Run(Box<RunArgs>),
    /// List the first-party buildpacks this binary carries.
    Buildpacks,
}

/// `buildd run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The app: a directory, a .tar.gz/.tgz/.tar file, or an http(s) URL to a tarball.
    pub source: String,

    /// A buildpack to run, in order: a .wasm component file, or the name of a first-party one
    /// (`static`, `procfile`). Default: detect among the first-party buildpacks.
    #[arg(long = "buildpack", short = 'b', value_name = "FILE|NAME")]
    pub buildpacks: Vec<String>,

    /// A config var for the build, KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// Keep buildpack caches here between runs (default: a fresh cache per run).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Where to write the slug.
    #[arg(long, short = 'o', value_name = "FILE", default_value = "slug.tgz")]
    pub out: PathBuf,

    /// Expected digest of the source archive: SHA256:<hex>.
    #[arg(long, value_name = "SHA256:HEX")]
    pub checksum: Option<String>,

    /// Time limit for the whole build, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub timeout: u64,

    /// Memory limit per buildpack instance, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub memory_limit: u64,

    /// Limit on the compressed slug, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 500)]
    pub slug_limit: u64,

    /// Limit on build output, in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 16 * 1024)]
    pub log_limit: u64,

    /// Limit on the unpacked source, in MiB (caps gzip bombs).
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub max_unpacked: u64,

    /// Where precompiled components are kept (default: $BUILDD_CACHE_DIR/components, else
    /// ~/.cache/buildd/components).
    #[arg(long, value_name = "DIR", env = "BUILDD_COMPONENT_CACHE")]
    pub component_cache: Option<PathBuf>,
}

fn parse_env(arg: &str) -> Result<(String, String), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}
