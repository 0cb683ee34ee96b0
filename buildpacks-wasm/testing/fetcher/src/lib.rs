//! Downloads what its config vars say, for the host's `fetch` tests: `FETCH_URL` (several
//! separated by spaces), `FETCH_DEST` (default `/app/fetched`, numbered when several),
//! `FETCH_DIGEST`, `FETCH_MAX` (bytes). Each result is printed as
//! `fetched <size> <sha256> cache=<bool>`; the first failure fails the build with the host's words.
//! `CHMOD` names a file to make executable afterwards through the host.

use buildd_sdk::fetch::Fetch;
use buildd_sdk::{Buildpack, CompileContext, Detect, DetectContext, output};

/// See the crate docs.
#[derive(Default)]
pub struct Fetcher;

impl Buildpack for Fetcher {
    const ID: &'static str = "test/fetcher";
    const NAME: &'static str = "Fetcher";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const FETCH_HOSTS: &'static [&'static str] = &["declared.invalid"];

    fn detect(&self, _ctx: &DetectContext) -> buildd_sdk::Result<Detect> {
        Ok(Detect::pass("Fetcher"))
    }

    fn compile(&self, ctx: &CompileContext) -> buildd_sdk::Result<()> {
        let urls: Vec<&str> = ctx
            .env
            .get("FETCH_URL")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let dest = ctx.env.get("FETCH_DEST").unwrap_or("/app/fetched").trim();
        for (i, url) in urls.iter().enumerate() {
            let mut fetch = Fetch::new(*url);
            if let Some(digest) = ctx.env.get("FETCH_DIGEST") {
                fetch = fetch.digest(digest.trim());
            }
            if let Some(max) = ctx.env.get("FETCH_MAX") {
                fetch = fetch.max_bytes(max.trim().parse()?);
            }
            let dest = if urls.len() == 1 {
                dest.to_string()
            } else {
                format!("{dest}.{i}")
            };
            let got = fetch.to(&dest)?;
            output::info(&format!(
                "fetched {} {} cache={}",
                got.size, got.sha256, got.from_cache
            ));
        }
        if let Some(path) = ctx.env.get("CHMOD") {
            buildd_sdk::fs::set_executable(path.trim(), true)?;
            output::info(&format!("made {} executable", path.trim()));
        }
        Ok(())
    }
}

buildd_sdk::export_buildpack!(Fetcher);
