//! File operations WASI lacks, done by the host.

use std::path::Path;

use crate::__bindings::buildd::buildpack::host;
use crate::Result;

/// Makes a regular file in the app or cache directory executable (`true`: 0755) or not
/// (`false`: 0644). WASI has no call for file modes and files a buildpack writes are 0644; the
/// slug keeps what this sets. Only during `compile`; symlinks are refused.
pub fn set_executable(path: impl AsRef<Path>, executable: bool) -> Result<()> {
    let path = path.as_ref();
    let text = path
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("path {path:?} is not UTF-8"))?;
    host::set_executable(text, executable).map_err(|message| anyhow::anyhow!("{message}"))
}
