//! Unpacking package and node tarballs: gzip tar, the first path component stripped
//! (`package/`, `node-v20.1.0-linux-x64/`), no path leaving the destination.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use buildd_sdk::{Context, bail};

/// What an unpack wrote.
#[derive(Debug, Default)]
pub struct Unpacked {
    /// Regular files written.
    pub files: usize,
    /// Files whose tar mode had an executable bit, relative to the destination.
    pub executables: Vec<PathBuf>,
}

/// The safe relative path of a tar entry after dropping its first component, `None` for the
/// top directory itself. Absolute paths and `..` are errors: a tarball must not write outside.
pub fn entry_path(raw: &[u8]) -> buildd_sdk::Result<Option<PathBuf>> {
    let text = String::from_utf8_lossy(raw);
    if text.starts_with('/') || text.contains('\\') {
        bail!("tar entry {text:?} has an absolute or Windows path");
    }
    let mut out = PathBuf::new();
    let mut stripped = false;
    for part in text.split('/') {
        match part {
            "" | "." => continue,
            ".." => bail!("tar entry {text:?} leaves its directory"),
            _ if !stripped => stripped = true,
            part => out.push(part),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Whether a symlink at `link` (relative to the root) pointing to `target` stays in the root.
pub fn link_stays_inside(link: &Path, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth = link.components().count() as i64 - 1;
    for part in Path::new(target).components() {
        match part {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Unpacks the gzipped tar in `reader` into `dest`, stripping the first path component.
pub fn unpack_tgz(reader: impl Read, dest: &Path) -> buildd_sdk::Result<Unpacked> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut unpacked = Unpacked::default();
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for entry in archive.entries().context("reading the tarball")? {
        let mut entry = entry.context("reading the tarball")?;
        let Some(rel) = entry_path(&entry.path_bytes())? else {
            continue;
        };
        let path = dest.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut data)
                .with_context(|| format!("reading {} from the tarball", rel.display()))?;
            // A symlink left by an earlier entry must be replaced, not written through.
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
            unpacked.files += 1;
            if entry.header().mode().unwrap_or(0o644) & 0o111 != 0 {
                unpacked.executables.push(rel);
            }
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            if !link_stays_inside(&rel, &target) {
                bail!("tar entry {} links outside: {target:?}", rel.display());
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let _ = std::fs::remove_file(&path);
            crate::fsutil::symlink(&target, &path)?;
        }
        // Hard links, devices and FIFOs have no place in a package; npm skips them too.
    }
    Ok(unpacked)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A gzipped tar of (path, mode, content); `content` starting with `->` makes a symlink.
    pub fn tgz(entries: &[(&str, u32, &str)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (path, mode, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(*mode);
            if let Some(target) = content.strip_prefix("->") {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            } else {
                header.set_size(content.len() as u64);
                builder
                    .append_data(&mut header, path, content.as_bytes())
                    .unwrap();
            }
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// A tar whose entry name bypasses the tar crate's checks, as an attacker would write it.
    fn raw_tgz(name: &str) -> Vec<u8> {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        builder.append(&header, &b"x"[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn strips_the_first_component_and_keeps_exec_bits() {
        let dir = tempfile::tempdir().unwrap();
        let data = tgz(&[
            ("package/package.json", 0o644, "{}"),
            ("package/bin/cli.js", 0o755, "#!/usr/bin/env node\n"),
            ("package/lib/deep/x.js", 0o644, "x"),
        ]);
        let out = unpack_tgz(&data[..], dir.path()).unwrap();
        assert_eq!(out.files, 3);
        assert_eq!(out.executables, vec![PathBuf::from("bin/cli.js")]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("lib/deep/x.js")).unwrap(),
            "x"
        );
    }

    #[test]
    fn refuses_paths_that_leave() {
        for name in ["package/../../evil", "/etc/passwd", "package/a/../../../x"] {
            let dir = tempfile::tempdir().unwrap();
            let err = unpack_tgz(&raw_tgz(name)[..], &dir.path().join("d")).unwrap_err();
            assert!(format!("{err:#}").contains("tar entry"), "{name}: {err:#}");
        }
        assert_eq!(entry_path(b"package/").unwrap(), None);
        assert_eq!(
            entry_path(b"./package/./a//b").unwrap(),
            Some(PathBuf::from("a/b"))
        );
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(link_stays_inside(Path::new("bin/npm"), "../lib/npm-cli.js"));
        assert!(!link_stays_inside(Path::new("bin/npm"), "../../x"));
        assert!(!link_stays_inside(Path::new("a"), "/etc/passwd"));
        let dir = tempfile::tempdir().unwrap();
        let data = tgz(&[
            ("node/lib/cli.js", 0o755, "js"),
            ("node/bin/npm", 0o777, "->../lib/cli.js"),
        ]);
        unpack_tgz(&data[..], dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bin/npm")).unwrap(),
            "js"
        );
        let evil = tgz(&[("node/bin/x", 0o777, "->../../../etc/passwd")]);
        assert!(unpack_tgz(&evil[..], dir.path()).is_err());
    }
}
