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
    /// Serve the Heroku-compatible builds API.
    Serve(Box<ServeArgs>),
    /// Manage API tokens of a data dir (`create` prints only the token).
    Tokens(TokensArgs),
    /// Start something new from a template: `buildd new buildpack NAME`.
    New(NewArgs),
    /// Build an app on a buildd server and stream its output; exits 0 only if it succeeded.
    Build(Box<BuildArgs>),
    /// Create or list apps on a buildd server.
    Apps(AppsArgs),
    /// List an app's builds.
    Builds(AppArg),
    /// List an app's releases.
    Releases(AppArg),
    /// Show an app's config vars.
    Config(AppArg),
    /// Set config vars: `buildd config:set --app APP KEY=VALUE...`.
    #[command(name = "config:set")]
    ConfigSet(ConfigSetArgs),
    /// Remove config vars: `buildd config:unset --app APP KEY...`.
    #[command(name = "config:unset")]
    ConfigUnset(ConfigUnsetArgs),
}

/// `buildd new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub what: NewCommand,
}

/// What `buildd new` makes.
#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// A buildpack crate: the trait implemented, a harness test, a fixture app.
    Buildpack {
        /// The crate's name, e.g. `acme-ruby`.
        name: String,
        /// The buildpack's id (default `local/NAME`).
        #[arg(long)]
        id: Option<String>,
        /// Where to create it (default `./NAME`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The buildd-sdk crate to depend on (default: the one this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Which server a client command talks to.
#[derive(Debug, Args, Clone)]
pub struct Remote {
    /// The server's URL.
    #[arg(
        long = "url",
        env = "BUILDD_URL",
        default_value = "http://127.0.0.1:5000",
        global = true
    )]
    pub url: String,
    /// An API token (from `buildd tokens create`).
    #[arg(
        long = "token",
        env = "BUILDD_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
}

/// `buildd build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The app to build.
    #[arg(long, short = 'a')]
    pub app: String,
    /// A URL to a source tarball.
    #[arg(long, group = "source")]
    pub archive: Option<String>,
    /// A local directory: packed, uploaded through /sources, then built.
    #[arg(long, group = "source")]
    pub dir: Option<PathBuf>,
    /// A git URL (`git+https://HOST/REPO.git#REF`, `git://...`).
    #[arg(long, group = "source")]
    pub git: Option<String>,
    /// Expected checksum of the archive, SHA256:<hex>.
    #[arg(long)]
    pub checksum: Option<String>,
    /// The source's version, e.g. a commit sha.
    #[arg(long)]
    pub version: Option<String>,
    /// Buildpacks to run, in order (default: the app's, or detection).
    #[arg(long = "buildpack", short = 'b')]
    pub buildpacks: Vec<String>,
    /// Build a slug without releasing it.
    #[arg(long)]
    pub no_release: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// `buildd apps`.
#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    pub command: AppsCommand,
    #[command(flatten)]
    pub remote: Remote,
}

/// App subcommands.
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Create an app (a name is generated when none is given).
    Create {
        /// The app's name.
        name: Option<String>,
    },
    /// List apps.
    List,
}

/// Commands about one app.
#[derive(Debug, Args)]
pub struct AppArg {
    /// The app.
    #[arg(long, short = 'a')]
    pub app: String,
    #[command(flatten)]
    pub remote: Remote,
}

/// `buildd config:set`.
#[derive(Debug, Args)]
pub struct ConfigSetArgs {
    /// The app.
    #[arg(long, short = 'a')]
    pub app: String,
    /// KEY=VALUE pairs.
    #[arg(required = true, value_parser = parse_env)]
    pub vars: Vec<(String, String)>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `buildd config:unset`.
#[derive(Debug, Args)]
pub struct ConfigUnsetArgs {
    /// The app.
    #[arg(long, short = 'a')]
    pub app: String,
    /// Keys to remove.
    #[arg(required = true)]
    pub keys: Vec<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// Where a server keeps its state; every command that touches it takes the same flags.
#[derive(Debug, Args, Clone)]
pub struct StorageArgs {
    /// Where the local state lives: the SQLite database and blobs by default, and always the
    /// caches and scratch space (default: $XDG_DATA_HOME/buildd, else ~/.local/share/buildd).
    #[arg(long, value_name = "DIR", env = "BUILDD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// The database: `sqlite:///path/file` (default: buildd.sqlite3 in the data dir) or
    /// `postgres://user:password@host:port/db`, shared by every node.
    #[arg(long, value_name = "URL", env = "BUILDD_DATABASE", global = true)]
    pub database: Option<String>,

    /// Where sources, slugs, uploaded buildpacks and build caches are stored:
    /// `file:///path` (default: blobs/ in the data dir) or `s3://bucket/prefix` (AWS_REGION,
    /// AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the environment).
    #[arg(long, value_name = "URL", env = "BUILDD_BLOB_STORE", global = true)]
    pub blob_store: Option<String>,
}

/// `buildd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:5000", env = "BUILDD_LISTEN")]
    pub listen: String,

    /// Where things live: database, blobs, caches.
    #[command(flatten)]
    pub storage: StorageArgs,

    /// This node's name in a shared database, unique among the nodes: builds it claims carry
    /// it, and after a restart under the same name it takes back at once the builds it held
    /// (default: the host name and a random suffix, so nodes sharing a host never share a name;
    /// their builds are then taken back when their leases run out).
    #[arg(long, value_name = "NAME", env = "BUILDD_NODE_NAME")]
    pub node_name: Option<String>,

    /// How long a node may go silent before its builds are taken from it (it renews its claim
    /// every third of this).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30.0,
        env = "BUILDD_LEASE_TIMEOUT"
    )]
    pub lease_timeout: f64,

    /// How many times a build is started in all: a build whose node died is run again on
    /// another node until this many attempts, then failed.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub build_attempts: i64,

    /// With `--blob-store s3://...`: how much of the object store this node keeps on its disk,
    /// in MiB, for each of its two local copies: blobs (sources, slugs, buildpacks) and app build
    /// caches. Least recently used go first; anything used in the last 10 minutes stays.
    #[arg(long, value_name = "MIB", default_value_t = 10240)]
    pub blob_cache_limit: u64,

    /// How often an idle node looks for pending builds when no notification woke it.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub claim_interval_ms: u64,

    /// Builds running at once (default: the number of cores). Others wait, pending, in order.
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// The URL clients reach this server at, for the URLs it hands out (default: from the
    /// request's Host header).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// Allow `file://` source URLs (paths on this machine).
    #[arg(long)]
    pub allow_local_sources: bool,

    /// Refuse plain `http://` source URLs.
    #[arg(long)]
    pub require_https: bool,

    /// Which networks source downloads may reach, and how slow they may be.
    #[command(flatten)]
    pub source_net: SourceNetArgs,

    /// Limit on each buildpack's cache directory, in MiB. A buildpack that writes more fails its
    /// build, and its cache is emptied.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub cache_limit: u64,

    /// Largest upload (source tarball or slug), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub max_upload: u64,

    /// Largest buildpack component accepted by `POST /buildpacks`, in MiB. Compiling a
    /// component costs time roughly in proportion to its size.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub max_buildpack_size: u64,

    /// How long compiling an uploaded component may take before the upload is refused, in
    /// seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub buildpack_compile_timeout: f64,

    /// Time limit of one build, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub build_timeout: u64,

    /// On SIGTERM/SIGINT, how long running builds may take to finish before they are failed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_grace: u64,

    /// Where precompiled components are kept (default: <data-dir>/components).
    #[arg(long, value_name = "DIR")]
    pub component_cache: Option<PathBuf>,

    /// How long a `/sources` upload slot stays usable, in seconds; expired uploads are deleted.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub source_ttl: u64,

    /// A client must send a request's headers within this many seconds, or its connection is
    /// closed (so slow clients cannot hold connections open forever).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub header_read_timeout: u64,

    /// Silence on an output stream longer than this gets a NUL keep-alive byte, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000, hide = true)]
    pub stream_keepalive_ms: u64,

    /// Install another buildpack component (.wasm) beside the first-party ones, by its id
    /// (repeatable). It joins detection after the first-party ones.
    #[arg(long = "buildpack", value_name = "FILE")]
    pub buildpacks: Vec<PathBuf>,

    /// What buildpacks may download.
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// Which networks source downloads (and `fetch`) may reach, and how slow they may be.
#[derive(Debug, Clone, Args)]
pub struct SourceNetArgs {
    /// Refuse source URLs (and every redirect hop) whose host resolves to a loopback, private
    /// (RFC 1918, ULA), shared, link-local (cloud metadata) or unspecified address. The address
    /// checked is the one connected to, so DNS rebinding does not get around it.
    #[arg(long)]
    pub deny_private_sources: bool,

    /// An address allowed despite --deny-private-sources, e.g. an internal mirror (repeatable).
    #[arg(
        long = "allow-source-ip",
        value_name = "IP",
        requires = "deny_private_sources"
    )]
    pub allow_source_ips: Vec<std::net::IpAddr>,

    /// Give up on a source download that receives nothing for this long, or less than
    /// --source-min-rate on average over this long, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub source_stall_timeout: u64,

    /// The slowest a source download may be, in bytes per second (see --source-stall-timeout).
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub source_min_rate: u64,
}

impl SourceNetArgs {
    /// `limits` with these settings.
    pub fn apply(&self, limits: buildd_runtime::SourceLimits) -> buildd_runtime::SourceLimits {
        buildd_runtime::SourceLimits {
            stall_timeout: std::time::Duration::from_secs(self.source_stall_timeout.max(1)),
            min_rate: self.source_min_rate,
            network: buildd_runtime::NetworkPolicy {
                deny_private: self.deny_private_sources,
                allow: self.allow_source_ips.clone(),
            },
            ..limits
        }
    }
}

/// What buildpacks may download through `fetch`: nothing unless granted here.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// Let buildpacks download from HOST (`name`, `name:port` or `*.domain`); `ID=HOST` grants
    /// it to one buildpack only; `manifest` (or `ID=manifest`) grants the hosts the buildpack
    /// declares. Repeatable; BUILDD_ALLOW_HOST takes a comma-separated list.
    #[arg(
        long = "allow-host",
        value_name = "[ID=]HOST",
        env = "BUILDD_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<buildd_runtime::HostGrant>,

    /// The download cache shared by every build on this machine (default: `downloads/` in the
    /// cache or data dir).
    #[arg(long, value_name = "DIR", env = "BUILDD_DOWNLOAD_CACHE")]
    pub download_cache: Option<PathBuf>,

    /// Largest single download, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub max_download: u64,

    /// Size the download cache is trimmed to after a build that downloaded something, least
    /// recently used first, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 10 * 1024)]
    pub download_cache_limit: u64,
}

impl FetchArgs {
    /// The runtime's fetch settings, with `default_cache` when no cache dir was given.
    pub fn config(&self, default_cache: Option<PathBuf>) -> buildd_runtime::FetchConfig {
        buildd_runtime::FetchConfig {
            grants: self.allow_hosts.clone(),
            cache_dir: self.download_cache.clone().or(default_cache),
            max_bytes: self.max_download << 20,
            cache_limit: self.download_cache_limit << 20,
            ..Default::default()
        }
    }
}

/// `buildd tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    /// The server's storage (the same flags as `buildd serve`).
    #[command(flatten)]
    pub storage: StorageArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it (only a hash is stored).
    Create {
        /// The user the token acts as.
        #[arg(long, default_value = "admin@buildd.local")]
        email: String,
        /// A note to tell tokens apart.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id, from `list`.
        id: String,
    },
}

/// `buildd run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The app: a directory, a .tar.gz/.tgz/.tar file, or an http(s) URL to a tarball.
    pub source: String,

    /// A buildpack to run, in order: a .wasm component file, or the name of a first-party one
    /// (`nodejs`, `static`, `procfile`). Default: detect among the first-party buildpacks.
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

    /// After the build, unpack the slug and run its `web` process (with `.profile.d` sourced and
    /// PORT set) until interrupted, as a quick check that the app starts.
    #[arg(long)]
    pub start: bool,

    /// The PORT for `--start`.
    #[arg(long, default_value_t = 5000, requires = "start")]
    pub port: u16,

    /// Limit on the unpacked source, in MiB (caps gzip bombs).
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub max_unpacked: u64,

    /// Which networks source downloads may reach, and how slow they may be.
    #[command(flatten)]
    pub source_net: SourceNetArgs,

    /// Limit on each buildpack's cache directory, in MiB. A buildpack that writes more fails its
    /// build, and its cache is emptied.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub cache_limit: u64,

    /// Where precompiled components are kept (default: $BUILDD_CACHE_DIR/components, else
    /// ~/.cache/buildd/components).
    #[arg(long, value_name = "DIR", env = "BUILDD_COMPONENT_CACHE")]
    pub component_cache: Option<PathBuf>,

    /// What buildpacks may download.
    #[command(flatten)]
    pub fetch: FetchArgs,
}

fn parse_env(arg: &str) -> Result<(String, String), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}
