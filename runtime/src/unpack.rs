//! Writing an untrusted tree (a tarball, or a directory being copied) into a fresh app dir.
//!
//! Every write goes through a `cap_std::fs::Dir`, so the kernel refuses lookups that leave it.
//! Symlinks are created last, after every file and directory, so no write ever passes through
//! one; then each is resolved and refused if it leads out of the app dir.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, Permissions, PermissionsExt as _};

use crate::confine;
use crate::limits::SourceLimits;
use crate::source::SourceError;

fn rejected(entry: &[u8], rule: impl Into<String>) -> SourceError {
    SourceError::Rejected {
        entry: String::from_utf8_lossy(entry).into_owned(),
        rule: rule.into(),
    }
}

/// Turns an archive path into a relative path of plain components, or refuses it.
/// `Ok(None)` is the archive's root (`.` or `./`).
pub(crate) fn sanitize(raw: &[u8], limits: &SourceLimits) -> Result<Option<PathBuf>, SourceError> {
    if raw.is_empty() {
        return Err(rejected(raw, "empty path"));
    }
    if raw.len() > limits.path_len {
        return Err(rejected(
            &raw[..64],
            format!("path longer than {} bytes", limits.path_len),
        ));
    }
    if raw.contains(&0) {
        return Err(rejected(raw, "NUL byte in path"));
    }
    if raw.contains(&b'\\') {
        return Err(rejected(raw, "backslash in path"));
    }
    if raw[0] == b'/' {
        return Err(rejected(raw, "absolute path"));
    }
    let mut path = PathBuf::new();
    let mut depth = 0;
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err(rejected(raw, "parent directory (..) in path")),
            name => {
                depth += 1;
                if depth > limits.depth {
                    return Err(rejected(
                        raw,
                        format!("deeper than {} directories", limits.depth),
                    ));
                }
                path.push(std::ffi::OsStr::from_bytes(name));
            }
        }
    }
    Ok((depth > 0).then_some(path))
}

/// Normalized permissions: executables 0755, everything else 0644. Setuid, setgid and sticky
/// bits never survive.
fn file_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 { 0o755 } else { 0o644 }
}

/// Writes entries into the app dir and keeps the counts the limits apply to.
pub(crate) struct AppWriter<'a> {
    dest: &'a Dir,
    limits: &'a SourceLimits,
    symlinks: Vec<(PathBuf, PathBuf)>,
    entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Regular files written.
    pub files: u64,
}

impl<'a> AppWriter<'a> {
    pub(crate) fn new(dest: &'a Dir, limits: &'a SourceLimits) -> Self {
        AppWriter {
            dest,
            limits,
            symlinks: Vec::new(),
            entries: 0,
            bytes: 0,
            files: 0,
        }
    }

    fn count(&mut self, raw: &[u8]) -> Result<(), SourceError> {
        self.entries += 1;
        if self.entries > self.limits.entries {
            return Err(rejected(
                raw,
                format!("more than {} entries", self.limits.entries),
            ));
        }
        Ok(())
    }

    fn parent(&self, raw: &[u8], path: &Path) -> Result<(), SourceError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dest
                .create_dir_all(parent)
                .map_err(|e| rejected(raw, format!("cannot create its parent directory: {e}")))?;
        }
        Ok(())
    }

    /// A directory.
    pub(crate) fn dir(&mut self, raw: &[u8], path: &Path) -> Result<(), SourceError> {
        self.count(raw)?;
        if self.dest.symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
            return Err(rejected(
                raw,
                "a directory replaces an earlier entry of another type",
            ));
        }
        self.dest
            .create_dir_all(path)
            .map_err(|e| rejected(raw, format!("cannot create directory: {e}")))?;
        self.dest
            .set_permissions(
                path,
                Permissions::from_std(std::fs::Permissions::from_mode(0o755)),
            )
            .map_err(|e| rejected(raw, format!("cannot set permissions: {e}")))
    }

    /// A regular file, whose content is read from `data`.
    pub(crate) fn file(
        &mut self,
        raw: &[u8],
        path: &Path,
        mode: u32,
        data: &mut dyn Read,
    ) -> Result<(), SourceError> {
        self.count(raw)?;
        self.parent(raw, path)?;
        match self.dest.symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(rejected(raw, "a file replaces an earlier directory"));
            }
            // A later entry replaces an earlier one, as tar does; unlink first so the write
            // cannot reach another name of a hardlinked inode.
            Ok(_) => self.dest.remove_file(path).map_err(SourceError::Io)?,
            Err(_) => {}
        }
        let mut file = self
            .dest
            .create(path)
            .map_err(|e| rejected(raw, format!("cannot create file: {e}")))?;
        // Read errors come from the archive (limits, corruption); write errors from the disk.
        let mut written = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = data.read(&mut buf).map_err(SourceError::from_io)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(SourceError::Io)?;
            written += n as u64;
        }
        file.set_permissions(Permissions::from_std(std::fs::Permissions::from_mode(
            file_mode(mode),
        )))
        .map_err(SourceError::Io)?;
        self.bytes += written;
        self.files += 1;
        if self.bytes > self.limits.unpacked_bytes {
            return Err(SourceError::TooLarge(format!(
                "more than {} of files",
                crate::limits::human(self.limits.unpacked_bytes)
            )));
        }
        Ok(())
    }

    /// A symlink; created by [`AppWriter::finish`], after everything else.
    pub(crate) fn symlink(
        &mut self,
        raw: &[u8],
        path: &Path,
        target: &[u8],
    ) -> Result<(), SourceError> {
        self.count(raw)?;
        if target.is_empty() || target.contains(&0) || target.contains(&b'\\') {
            return Err(rejected(raw, "invalid symlink target"));
        }
        if target[0] == b'/' {
            return Err(rejected(raw, "symlink to an absolute path"));
        }
        self.symlinks.push((
            path.to_path_buf(),
            std::ffi::OsStr::from_bytes(target).into(),
        ));
        Ok(())
    }

    /// A hardlink to an earlier file of the same tree.
    pub(crate) fn hardlink(
        &mut self,
        raw: &[u8],
        path: &Path,
        target: &[u8],
    ) -> Result<(), SourceError> {
        self.count(raw)?;
        let target = sanitize(target, self.limits)?
            .ok_or_else(|| rejected(raw, "hardlink to the archive root"))?;
        match self.dest.symlink_metadata(&target) {
            Ok(m) if m.is_file() => {}
            _ => {
                return Err(rejected(
                    raw,
                    "hardlink target is not an earlier regular file",
                ));
            }
        }
        self.parent(raw, path)?;
        if self.dest.symlink_metadata(path).is_ok() {
            return Err(rejected(raw, "hardlink replaces an earlier entry"));
        }
        self.dest
            .hard_link(&target, self.dest, path)
            .map_err(|e| rejected(raw, format!("cannot create hardlink: {e}")))
    }

    /// Creates the symlinks, then checks that each resolves inside the app dir.
    pub(crate) fn finish(self) -> Result<(), SourceError> {
        for (path, target) in &self.symlinks {
            let raw = path.as_os_str().as_bytes();
            self.parent(raw, path)?;
            if self.dest.symlink_metadata(path).is_ok() {
                return Err(rejected(raw, "a symlink replaces an earlier entry"));
            }
            self.dest
                .symlink(target, path)
                .map_err(|e| rejected(raw, format!("symlink refused: {e}")))?;
        }
        for (path, _) in &self.symlinks {
            confine::check(self.dest, path)
                .map_err(|e| rejected(path.as_os_str().as_bytes(), e.to_string()))?;
        }
        Ok(())
    }
}

/// Unpacks a (decompressed) tar stream into `dest`. Stops at the end-of-archive marker and
/// refuses anything but zero padding after it.
pub(crate) fn unpack(
    reader: impl Read,
    dest: &Dir,
    limits: &SourceLimits,
) -> Result<AppStats, SourceError> {
    let mut archive = tar::Archive::new(reader);
    let mut writer = AppWriter::new(dest, limits);
    for entry in archive.entries().map_err(SourceError::from_io)? {
        let mut entry = entry.map_err(SourceError::from_io)?;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let Some(path) = sanitize(&raw, limits)? else {
            if kind.is_dir() {
                continue;
            }
            return Err(rejected(&raw, "entry names the archive root"));
        };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mode = entry.header().mode().unwrap_or(0o644);
                writer.file(&raw, &path, mode, &mut entry)?;
            }
            tar::EntryType::Directory => writer.dir(&raw, &path)?,
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                writer.symlink(&raw, &path, &target)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                writer.hardlink(&raw, &path, &target)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(rejected(&raw, "device files are not allowed"));
            }
            tar::EntryType::Fifo => return Err(rejected(&raw, "FIFOs are not allowed")),
            tar::EntryType::GNUSparse => {
                return Err(rejected(&raw, "sparse files are not supported"));
            }
            other => {
                return Err(rejected(&raw, format!("unsupported entry type {other:?}")));
            }
        }
    }
    let (bytes, files) = (writer.bytes, writer.files);
    writer.finish()?;
    // GNU tar pads the archive with zero blocks; anything else after the end is smuggled data.
    let mut rest = archive.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        let n = rest.read(&mut buf).map_err(SourceError::from_io)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(SourceError::Corrupt(
                "data after the end of the tar archive".into(),
            ));
        }
    }
    Ok(AppStats { bytes, files })
}

/// What was written into the app dir.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppStats {
    /// Bytes of file content.
    pub bytes: u64,
    /// Regular files.
    pub files: u64,
}

/// Copies a local directory into `dest` under the same rules as a tarball. A top-level `.git`
/// is skipped, as `git push` would not send it.
pub(crate) fn copy_dir(
    src: &Dir,
    dest: &Dir,
    limits: &SourceLimits,
) -> Result<AppStats, SourceError> {
    let mut writer = AppWriter::new(dest, limits);
    copy_into(src, Path::new(""), &mut writer)?;
    let stats = AppStats {
        bytes: writer.bytes,
        files: writer.files,
    };
    writer.finish()?;
    Ok(stats)
}

fn copy_into(src: &Dir, rel: &Path, writer: &mut AppWriter<'_>) -> Result<(), SourceError> {
    let mut entries: Vec<_> = src
        .entries()
        .map_err(SourceError::Io)?
        .collect::<Result<_, _>>()
        .map_err(SourceError::Io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if rel.as_os_str().is_empty() && name == ".git" {
            continue;
        }
        let path = rel.join(&name);
        let raw = path.as_os_str().as_bytes().to_vec();
        if raw.len() > writer.limits.path_len {
            return Err(rejected(&raw[..64], "path too long"));
        }
        let kind = entry.file_type().map_err(SourceError::Io)?;
        if kind.is_dir() {
            writer.dir(&raw, &path)?;
            let sub = entry.open_dir().map_err(SourceError::Io)?;
            copy_into(&sub, &path, writer)?;
        } else if kind.is_symlink() {
            let target = src.read_link(&name).map_err(SourceError::Io)?;
            writer.symlink(&raw, &path, target.as_os_str().as_bytes())?;
        } else if kind.is_file() {
            let mut file = entry.open().map_err(SourceError::Io)?;
            let meta = file.metadata().map_err(SourceError::Io)?;
            if !meta.is_file() {
                return Err(rejected(&raw, "changed type while being copied"));
            }
            let mode = meta.permissions().mode();
            let mut limited = (&mut file).take(meta.len());
            writer.file(&raw, &path, mode, &mut limited)?;
        } else {
            return Err(rejected(&raw, "not a regular file, directory or symlink"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut h, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn unpack_with(data: &[u8], limits: &SourceLimits) -> Result<AppStats, SourceError> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        unpack(data, &dir, limits)
    }

    #[test]
    fn entry_count_is_limited() {
        let data = tar_of(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        let limits = SourceLimits {
            entries: 2,
            ..SourceLimits::default()
        };
        let err = unpack_with(&data, &limits).unwrap_err().to_string();
        assert!(
            err.contains("\"c\"") && err.contains("more than 2 entries"),
            "{err}"
        );
        assert!(unpack_with(&data, &SourceLimits::default()).is_ok());
    }

    #[test]
    fn depth_and_path_length_are_limited() {
        let deep = "d/".repeat(10) + "f";
        let data = tar_of(&[(deep.as_str(), b"x")]);
        let limits = SourceLimits {
            depth: 5,
            ..SourceLimits::default()
        };
        let err = unpack_with(&data, &limits).unwrap_err().to_string();
        assert!(err.contains("deeper than 5 directories"), "{err}");

        let long = "x".repeat(300);
        let data = tar_of(&[(long.as_str(), b"x")]);
        let limits = SourceLimits {
            path_len: 200,
            ..SourceLimits::default()
        };
        let err = unpack_with(&data, &limits).unwrap_err().to_string();
        assert!(err.contains("path longer than 200 bytes"), "{err}");
    }

    #[test]
    fn data_after_the_archive_end_is_refused() {
        let mut data = tar_of(&[("a", b"1")]);
        data.extend_from_slice(b"smuggled payload");
        let err = unpack_with(&data, &SourceLimits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("after the end of the tar archive"), "{err}");
    }

    #[test]
    fn sanitize_refuses_every_escape_spelling() {
        let limits = SourceLimits::default();
        for bad in [
            &b"../x"[..],
            b"./../x",
            b"a/../../x",
            b"/abs",
            b"////abs",
            b"C:..\\x",
            b"a\\b",
            b"a\0b",
        ] {
            assert!(
                sanitize(bad, &limits).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            sanitize(b"./a//b/./c", &limits).unwrap(),
            Some(PathBuf::from("a/b/c"))
        );
        assert_eq!(sanitize(b"./", &limits).unwrap(), None);
    }
}
