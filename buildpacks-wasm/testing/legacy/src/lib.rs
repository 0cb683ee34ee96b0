//! A buildpack built against contract `buildd:buildpack@0.1.0`, as components built before 0.2.0
//! were: the host must keep running it. It writes `legacy.txt` and declares a `web` process.

wit_bindgen::generate!({
    world: "buildpack-world",
    path: "../../../wit/v0.1",
});

use buildd::buildpack::types::{BuildContext, BuildpackInfo, ProcessType, ReleaseInfo};
use exports::buildd::buildpack::buildpack::Guest;

struct Legacy;

impl Guest for Legacy {
    fn info() -> BuildpackInfo {
        BuildpackInfo {
            id: "test/legacy".into(),
            name: "Legacy".into(),
            version: "0.1.0".into(),
            api: "0.1.0".into(),
        }
    }

    fn detect(_ctx: BuildContext) -> Option<String> {
        Some("Legacy".into())
    }

    fn compile(ctx: BuildContext) -> Result<(), String> {
        println!("-----> Compiling with contract 0.1.0");
        std::fs::write(
            format!("{}/legacy.txt", ctx.app_dir),
            "built by a 0.1.0 component\n",
        )
        .map_err(|e| e.to_string())
    }

    fn release(_ctx: BuildContext) -> Result<ReleaseInfo, String> {
        Ok(ReleaseInfo {
            process_types: vec![ProcessType {
                name: "web".into(),
                command: "cat legacy.txt".into(),
            }],
        })
    }
}

export!(Legacy);
