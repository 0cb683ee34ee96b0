//! The `procfile` buildpack: any app with a `Procfile`. It checks the Procfile and reports its
//! process types; it changes no files.

use buildd_sdk::{
    Buildpack, CompileContext, Context, Detect, DetectContext, Release, ReleaseContext, output,
    procfile,
};

/// See the crate docs.
#[derive(Default)]
pub struct ProcfileBuildpack;

fn read_procfile(
    app_dir: &std::path::Path,
) -> buildd_sdk::Result<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(app_dir.join("Procfile")).context("reading Procfile")?;
    procfile::parse(&text)
}

impl Buildpack for ProcfileBuildpack {
    const ID: &'static str = "buildd/procfile";
    const NAME: &'static str = "Procfile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn detect(&self, ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
        Ok(if ctx.app_path("Procfile").is_file() {
            Detect::pass("Procfile")
        } else {
            Detect::fail()
        })
    }

    fn compile(&self, ctx: &CompileContext) -> buildd_sdk::Result<()> {
        let types = read_procfile(&ctx.app_dir)?;
        if types.is_empty() {
            buildd_sdk::bail!("Procfile declares no process types");
        }
        output::header("Checking Procfile");
        for (name, command) in &types {
            output::info(&format!("{name}: {command}"));
        }
        Ok(())
    }

    fn release(&self, ctx: &ReleaseContext) -> buildd_sdk::Result<Release> {
        Ok(Release {
            process_types: read_procfile(&ctx.app_dir)?,
        })
    }
}

buildd_sdk::export_buildpack!(ProcfileBuildpack);
