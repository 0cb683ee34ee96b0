//! File system operations std does not offer on wasm32-wasip2.

use std::path::Path;

use buildd_sdk::Context;

/// Creates a relative symlink at `link` (an absolute guest path) pointing to `target`.
#[cfg(target_arch = "wasm32")]
pub fn symlink(target: &str, link: &Path) -> buildd_sdk::Result<()> {
    // std has no stable symlink call for WASI; the preopened directory's descriptor has one.
    for (dir, root) in wasip2::filesystem::preopens::get_directories() {
        if let Ok(rel) = link.strip_prefix(&root) {
            let rel = rel.to_str().context("a non-UTF-8 symlink path")?;
            return dir.symlink_at(target, rel).map_err(|code| {
                buildd_sdk::anyhow!("symlink {} -> {target}: {code:?}", link.display())
            });
        }
    }
    buildd_sdk::bail!("{} is not in a granted directory", link.display())
}

/// Creates a relative symlink at `link` pointing to `target`.
#[cfg(not(target_arch = "wasm32"))]
pub fn symlink(target: &str, link: &Path) -> buildd_sdk::Result<()> {
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("symlink {} -> {target}", link.display()))
}

/// Copies the tree at `from` into `to` (files, directories and symlinks, as they are).
pub fn copy_tree(from: &Path, to: &Path) -> buildd_sdk::Result<u64> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut copied = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&src)?;
            let _ = std::fs::remove_file(&dst);
            symlink(target.to_str().context("a non-UTF-8 symlink target")?, &dst)?;
        } else if kind.is_dir() {
            copied += copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}
