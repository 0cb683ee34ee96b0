//! The `.profile.d` script that puts node and package executables on PATH at start.

use std::path::Path;

use buildd_sdk::Context;

/// The script, relative to the app dir.
pub const SCRIPT: &str = ".profile.d/nodejs.sh";

/// Writes the `.profile.d` script.
pub fn write(app: &Path) -> buildd_sdk::Result<()> {
    let script = r#"# Written by the buildd/nodejs buildpack.
export PATH="$HOME/.heroku/node/bin:$HOME/node_modules/.bin:$PATH"
"#;
    let path = app.join(SCRIPT);
    std::fs::create_dir_all(path.parent().expect("a parent"))?;
    std::fs::write(&path, script).with_context(|| format!("writing {SCRIPT}"))
}
