//! A buildpack with a huge function table (see build.rs): the host must refuse it when it is
//! loaded, naming the table limit, before it runs in any build.

use buildd_sdk::{Buildpack, CompileContext, Detect, DetectContext};

/// See the crate docs.
#[derive(Default)]
pub struct Tables;

impl Buildpack for Tables {
    const ID: &'static str = "test/tables";
    const NAME: &'static str = "Tables";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn detect(&self, _ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
        Ok(Detect::pass("Tables"))
    }

    fn compile(&self, _ctx: &CompileContext) -> buildd_sdk::Result<()> {
        Ok(())
    }
}

buildd_sdk::export_buildpack!(Tables);
