//! The `.profile.d` script that puts node and package executables on PATH at start.

use std::collections::BTreeSet;
use std::path::Path;

use buildd_sdk::Context;

/// The list of paths (relative to the app) that must be executable.
pub const EXECUTABLES: &str = ".heroku/node-executables.txt";

/// The script, relative to the app dir.
pub const SCRIPT: &str = ".profile.d/nodejs.sh";

/// Writes the `.profile.d` script and the list of executables it fixes up.
///
/// A WASI component cannot set permission bits (preview 2 has no call for it), so the files a
/// tarball marks executable land as 0644. Until the host can set them, the script makes them
/// executable when the app starts, once (it does nothing when node already is).
pub fn write(app: &Path, executables: &BTreeSet<String>) -> buildd_sdk::Result<()> {
    let list: Vec<&str> = executables.iter().map(String::as_str).collect();
    let list_path = app.join(EXECUTABLES);
    std::fs::create_dir_all(list_path.parent().expect("a parent"))?;
    std::fs::write(&list_path, format!("{}\n", list.join("\n")))
        .with_context(|| format!("writing {EXECUTABLES}"))?;
    let script = format!(
        r#"# Written by the buildd/nodejs buildpack.
export PATH="$HOME/.heroku/node/bin:$HOME/node_modules/.bin:$PATH"
if [ ! -x "$HOME/.heroku/node/bin/node" ] && [ -f "$HOME/{EXECUTABLES}" ]; then
  (cd "$HOME" && while IFS= read -r f; do [ -n "$f" ] && chmod +x "$f" 2>/dev/null; done < "{EXECUTABLES}")
fi
"#
    );
    let path = app.join(SCRIPT);
    std::fs::create_dir_all(path.parent().expect("a parent"))?;
    std::fs::write(&path, script).with_context(|| format!("writing {SCRIPT}"))
}
