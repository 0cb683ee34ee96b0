//! Write a [buildd](https://example.invalid/buildd) buildpack in Rust.
//!
//! A buildpack is a WebAssembly component (`wasm32-wasip2`) that the buildd host runs in a sandbox:
//! it sees the app directory, its own cache directory and the app's config vars, and nothing else.
//! This crate hides the component plumbing: implement [`Buildpack`], call [`export_buildpack!`] once,
//! and build with `cargo build --target wasm32-wasip2 --release`.
//!
//! ```no_run
//! use buildd_sdk::{Buildpack, CompileContext, Detect, DetectContext, Release, ReleaseContext, output};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Buildpack for Hello {
//!     const ID: &'static str = "example/hello";
//!     const NAME: &'static str = "Hello";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!
//!     fn detect(&self, ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
//!         Ok(if ctx.app_path("hello.txt").is_file() { Detect::pass("Hello") } else { Detect::fail() })
//!     }
//!
//!     fn compile(&self, ctx: &CompileContext) -> buildd_sdk::Result<()> {
//!         output::header("Writing greeting");
//!         let who = ctx.env.get("GREETING_NAME").unwrap_or("world");
//!         std::fs::write(ctx.app_path("greeting.txt"), format!("hello, {who}\n"))?;
//!         Ok(())
//!     }
//!
//!     fn release(&self, _ctx: &ReleaseContext) -> buildd_sdk::Result<Release> {
//!         Ok(Release::new().process("web", "cat greeting.txt"))
//!     }
//! }
//!
//! buildd_sdk::export_buildpack!(Hello);
//! ```
//!
//! Your crate needs `crate-type = ["cdylib"]` in `[lib]`.
#![deny(missing_docs)]

mod context;
/// Checking downloads and files against expected digests (npm `integrity`, `algo:hex`); the
/// host reads digests with the same crate.
pub use buildd_digest as digest;
pub mod fetch;
pub mod fs;
#[cfg(all(feature = "harness", not(target_arch = "wasm32")))]
pub mod harness;
pub mod json;
pub mod output;
pub mod procfile;
pub mod semver;
pub mod toml;

pub use ::anyhow::{self, Context, anyhow, bail};
pub use context::{CompileContext, DetectContext, Env, ReleaseContext};

use std::collections::BTreeMap;
use std::marker::PhantomData;

/// The contract version (the WIT package `buildd:buildpack`) this SDK builds against.
pub const API_VERSION: &str = "0.2.0";

/// The error type buildpack phases return; its message (with its causes) fails the build.
pub type Error = anyhow::Error;

/// Result of a buildpack phase.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A buildpack: detect whether it applies, compile the app, report process types.
///
/// The host creates the value with [`Default`] for each phase, in a fresh sandbox: keep no state
/// between phases except in the app and cache directories.
pub trait Buildpack: Default {
    /// Stable identifier, lowercase, e.g. `acme/ruby`.
    const ID: &'static str;
    /// Human name shown in build output.
    const NAME: &'static str;
    /// The buildpack's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// Hosts this buildpack downloads from with [`fetch`] (`host` or `host:port`), shown to
    /// operators, who grant them (`--allow-host ID=manifest` grants exactly these). Default: none.
    const FETCH_HOSTS: &'static [&'static str] = &[];

    /// Does this buildpack apply to the app?
    fn detect(&self, ctx: &DetectContext) -> Result<Detect>;

    /// Transform the app directory in place.
    fn compile(&self, ctx: &CompileContext) -> Result<()>;

    /// Default process types. The default reports none.
    fn release(&self, ctx: &ReleaseContext) -> Result<Release> {
        let _ = ctx;
        Ok(Release::new())
    }
}

/// The answer of [`Buildpack::detect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detect {
    /// The buildpack applies; the name is shown as `-----> NAME app detected`.
    Pass(String),
    /// The buildpack does not apply.
    Fail,
}

impl Detect {
    /// The buildpack applies to this app.
    pub fn pass(name: impl Into<String>) -> Self {
        Detect::Pass(name.into())
    }

    /// The buildpack does not apply to this app.
    pub fn fail() -> Self {
        Detect::Fail
    }
}

/// The answer of [`Buildpack::release`]: default process types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// Process type name to command line.
    pub process_types: BTreeMap<String, String>,
}

impl Release {
    /// A release with no process types.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a process type.
    pub fn process(mut self, name: impl Into<String>, command: impl Into<String>) -> Self {
        self.process_types.insert(name.into(), command.into());
        self
    }
}

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "buildpack-world",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "buildd_sdk::__bindings",
        export_macro_name: "__export_buildpack_world",
    });
}

use __bindings::buildd::buildpack::types as wit;
use __bindings::exports::buildd::buildpack::buildpack::Guest;

/// Bridges a [`Buildpack`] to the component's exports; used by [`export_buildpack!`].
#[doc(hidden)]
pub struct Adapter<B>(PhantomData<B>);

/// Formats an error with its causes, the way the host shows it.
fn failure(phase: &str, err: Error) -> String {
    format!("{phase} failed: {err:#}")
}

impl<B: Buildpack> Guest for Adapter<B> {
    fn info() -> wit::BuildpackInfo {
        wit::BuildpackInfo {
            id: B::ID.to_string(),
            name: B::NAME.to_string(),
            version: B::VERSION.to_string(),
            api: API_VERSION.to_string(),
            fetch_hosts: B::FETCH_HOSTS.iter().map(|h| h.to_string()).collect(),
        }
    }

    fn detect(ctx: wit::BuildContext) -> Option<String> {
        let ctx = DetectContext::from_wit(ctx);
        match B::default().detect(&ctx) {
            Ok(Detect::Pass(name)) => Some(name),
            Ok(Detect::Fail) => None,
            Err(err) => {
                output::error(&failure("detect", err));
                None
            }
        }
    }

    fn compile(ctx: wit::BuildContext) -> Result<(), String> {
        let ctx = CompileContext::from_wit(ctx);
        B::default().compile(&ctx).map_err(|err| {
            if let Some(failure) = err.downcast_ref::<output::Failure>()
                && let Some(hint) = &failure.hint
            {
                output::error_with_hint(&format!("{err:#}"), hint);
            }
            format!("{err:#}")
        })
    }

    fn release(ctx: wit::BuildContext) -> Result<wit::ReleaseInfo, String> {
        let ctx = ReleaseContext::from_wit(ctx);
        let release = B::default()
            .release(&ctx)
            .map_err(|err| format!("{err:#}"))?;
        Ok(wit::ReleaseInfo {
            process_types: release
                .process_types
                .into_iter()
                .map(|(name, command)| wit::ProcessType { name, command })
                .collect(),
        })
    }
}

/// Exports a [`Buildpack`] type as this component's implementation of the buildd contract.
///
/// Call it once, at the crate root, with a type that implements [`Buildpack`].
#[macro_export]
macro_rules! export_buildpack {
    ($ty:ty) => {
        #[doc(hidden)]
        type __BuilddBuildpackAdapter = $crate::Adapter<$ty>;
        $crate::__bindings::__export_buildpack_world!(
            __BuilddBuildpackAdapter with_types_in $crate::__bindings
        );
    };
}
