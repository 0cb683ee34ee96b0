//! A buildpack that tries to reach the network through `wasi:http`, which buildd does not link:
//! the host must refuse to load it, naming the missing import, rather than fail mid-build.

use buildd_sdk::{Buildpack, CompileContext, Detect, DetectContext, bail};

/// See the crate docs.
#[derive(Default)]
pub struct Importer;

impl Buildpack for Importer {
    const ID: &'static str = "test/importer";
    const NAME: &'static str = "Importer";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn detect(&self, _ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
        Ok(Detect::pass("Importer"))
    }

    fn compile(&self, _ctx: &CompileContext) -> buildd_sdk::Result<()> {
        let request = wasip2::http::types::OutgoingRequest::new(wasip2::http::types::Fields::new());
        match wasip2::http::outgoing_handler::handle(request, None) {
            Ok(_) => bail!("sent an HTTP request"),
            Err(code) => bail!("HTTP refused: {code:?}"),
        }
    }
}

buildd_sdk::export_buildpack!(Importer);
