//! Proving that a symlink in the app dir cannot lead out of it.
//!
//! A lexical check of the target is not enough: `up -> sub/..` is harmless alone, but
//! `out -> up/..` then resolves to the app dir's parent. So resolve the target the way the kernel
//! would, following every symlink inside the app, and fail as soon as `..` would climb above it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::Dir;

/// As many links as Linux follows in one lookup.
const MAX_FOLLOWS: usize = 40;

/// Why a symlink was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Escape {
    /// The target is absolute.
    #[error("symlink target {0:?} is absolute")]
    Absolute(PathBuf),
    /// Resolving the target climbs above the app dir.
    #[error("symlink target {0:?} points outside the app dir")]
    Outside(PathBuf),
    /// Too many links on the way (a loop).
    #[error("symlink target {0:?} leads through too many symlinks (a loop?)")]
    Loop(PathBuf),
}

/// Checks that the symlink at `link` (relative to `root`, with real directories as parents)
/// resolves to a path inside `root`. A dangling target inside `root` is fine.
pub fn check(root: &Dir, link: &Path) -> Result<(), Escape> {
    let first = root
        .read_link(link)
        .map_err(|_| Escape::Outside(link.to_path_buf()))?;
    let mut resolved: Vec<OsString> = link
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            _ => None,
        })
        .collect();
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_front(&mut pending, &first)?;
    let mut follows = 1;
    while let Some(part) = pending.pop_front() {
        if part == "." || part.is_empty() {
            continue;
        }
        if part == ".." {
            if resolved.pop().is_none() {
                return Err(Escape::Outside(first));
            }
            continue;
        }
        resolved.push(part);
        let here: PathBuf = resolved.iter().collect();
        if root
            .symlink_metadata(&here)
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            follows += 1;
            if follows > MAX_FOLLOWS {
                return Err(Escape::Loop(first));
            }
            let target = root
                .read_link(&here)
                .map_err(|_| Escape::Outside(first.clone()))?;
            resolved.pop();
            push_front(&mut pending, &target).map_err(|_| Escape::Absolute(first.clone()))?;
        }
    }
    Ok(())
}

fn push_front(pending: &mut VecDeque<OsString>, target: &Path) -> Result<(), Escape> {
    let mut parts = Vec::new();
    for component in target.components() {
        match component {
            Component::Normal(name) => parts.push(name.to_owned()),
            Component::ParentDir => parts.push("..".into()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(Escape::Absolute(target.to_path_buf()));
            }
        }
    }
    for part in parts.into_iter().rev() {
        pending.push_front(part);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn tree() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("app/sub/deep")).unwrap();
        let dir = Dir::open_ambient_dir(tmp.path().join("app"), ambient_authority()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn links_inside_pass() {
        let (_tmp, dir) = tree();
        dir.symlink("deep", "sub/d").unwrap();
        dir.symlink("../sub", "sub/deep/up").unwrap();
        dir.symlink("missing/file", "dangling").unwrap();
        for link in ["sub/d", "sub/deep/up", "dangling"] {
            assert_eq!(check(&dir, Path::new(link)), Ok(()), "{link}");
        }
    }

    #[test]
    fn escapes_fail_even_through_other_links() {
        let (_tmp, dir) = tree();
        dir.symlink("../../etc/passwd", "sub/out").unwrap();
        assert!(matches!(
            check(&dir, Path::new("sub/out")),
            Err(Escape::Outside(_))
        ));
        // `up` alone stays inside; `out2` climbs from where `up` really points.
        dir.symlink("sub/..", "up").unwrap();
        dir.symlink("up/..", "out2").unwrap();
        assert_eq!(check(&dir, Path::new("up")), Ok(()));
        assert!(matches!(
            check(&dir, Path::new("out2")),
            Err(Escape::Outside(_))
        ));
        dir.symlink("loop2", "loop1").unwrap();
        dir.symlink("loop1", "loop2").unwrap();
        assert!(matches!(
            check(&dir, Path::new("loop1")),
            Err(Escape::Loop(_))
        ));
    }
}
