//! Packing the app dir into a slug: a gzipped tar of `./app/...` that depends only on the tree's
//! names, contents, symlink targets and executable bits.
//!
//! Entries are written depth first with siblings sorted by raw name bytes (as
//! `tar --sort=name`), every header is built here (mtime 1980-01-01T00:00:01Z, uid/gid 0, no user
//! or group names, modes 0755/0644), and the gzip header has no mtime or name. Compression runs on
//! every core in fixed-size chunks (see `gzip`), so the bytes do not depend on the machine. The app dir was
//! written by a buildpack, so it is hostile: nothing here follows a symlink, symlinks must resolve
//! inside the app, and FIFOs, sockets and devices are refused rather than opened.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cap_std::fs::{Dir, PermissionsExt as _};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use crate::confine;
use crate::gzip::ParallelGz;
use crate::limits::LimitExceeded;

/// The fixed mtime of every entry: 1980-01-01T00:00:01Z, as Cloud Native Buildpacks use.
pub const SLUG_MTIME: u64 = 315_532_801;
/// Deflate level: gzip's default, the usual size/speed balance.
const LEVEL: u32 = 6;

/// A packed slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug {
    /// Where it was written.
    pub path: PathBuf,
    /// Compressed size in bytes.
    pub size: u64,
    /// `SHA256:<hex>` of the compressed bytes.
    pub checksum: String,
    /// Process types: the buildpacks' defaults, overridden by the app's `Procfile`.
    pub process_types: BTreeMap<String, String>,
}

/// Why a slug could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The slug grew past its limit.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// An entry the buildpacks left cannot go in a slug.
    #[error("slug: refusing {entry:?}: {reason}")]
    Refused {
        /// Path inside the app.
        entry: String,
        /// Why.
        reason: String,
    },
    /// The time limit ran out while packing.
    #[error("time limit exceeded while packing the slug")]
    Timeout,
    /// Reading the app or writing the slug failed.
    #[error("slug: {0}")]
    Io(#[from] io::Error),
}

/// Passes bytes to the file while hashing and counting them, and stops past the size limit.
struct Output<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.size += n as u64;
        if self.size > self.limit {
            return Err(io::Error::other(LimitExceeded::SlugSize(self.limit)));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pack_io(err: io::Error) -> PackError {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<LimitExceeded>())
    {
        Some(limit) => PackError::Limit(limit.clone()),
        None => PackError::Io(err),
    }
}

/// Packs `app` into a gzipped tar at `out`. Returns the compressed size and `SHA256:<hex>`.
pub(crate) fn pack(
    app: &Path,
    out: &Path,
    limit: u64,
    deadline: Instant,
) -> Result<(u64, String), PackError> {
    let dir = Dir::open_ambient_dir(app, cap_std::ambient_authority())?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::NamedTempFile::new_in(parent)?;
    let output = Output {
        inner: io::BufWriter::with_capacity(256 * 1024, tmp.as_file().try_clone()?),
        hasher: Sha256::new(),
        size: 0,
        limit,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gz = ParallelGz::new(output, LEVEL, threads);
    let mut tar = tar::Builder::new(gz);
    let mut packer = Packer {
        root: &dir,
        tar: &mut tar,
        deadline,
    };
    packer.dir_entry(b"./app/")?;
    packer.walk(&dir, Path::new(""))?;
    let gz = tar.into_inner().map_err(pack_io)?;
    let mut output = gz.finish().map_err(pack_io)?;
    output.flush().map_err(pack_io)?;
    let Output {
        inner,
        hasher,
        size,
        ..
    } = output;
    inner
        .into_inner()
        .map_err(|e| PackError::Io(e.into_error()))?;
    let digest = hasher.finalize();
    // Temp files are created 0600; a slug is meant to be read by whoever deploys it.
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.persist(out).map_err(|e| PackError::Io(e.error))?;
    Ok((size, format!("SHA256:{}", hex::encode(digest))))
}

struct Packer<'a, W: Write> {
    root: &'a Dir,
    tar: &'a mut tar::Builder<W>,
    deadline: Instant,
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(SLUG_MTIME);
    h.set_size(size);
    h
}

impl<W: Write> Packer<'_, W> {
    /// Writes a name into `h`, preceded by a GNU long-name entry when it does not fit.
    fn set_name(
        &mut self,
        h: &mut Header,
        name: &[u8],
        long_kind: u8,
        field: fn(&mut Header) -> &mut [u8],
    ) -> Result<(), PackError> {
        let slot = field(h);
        if name.len() <= slot.len() {
            slot[..name.len()].copy_from_slice(name);
            return Ok(());
        }
        let mut long = header(EntryType::new(long_kind), 0o644, name.len() as u64 + 1);
        long.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        long.set_cksum();
        let mut body = name.to_vec();
        body.push(0);
        self.tar.append(&long, &body[..]).map_err(pack_io)?;
        let slot = field(h);
        let cut = slot.len();
        slot.copy_from_slice(&name[..cut]);
        Ok(())
    }

    fn append(&mut self, mut h: Header, name: &[u8], data: &mut dyn Read) -> Result<(), PackError> {
        self.set_name(&mut h, name, b'L', |h| &mut h.as_old_mut().name)?;
        h.set_cksum();
        self.tar.append(&h, data).map_err(pack_io)
    }

    fn dir_entry(&mut self, name: &[u8]) -> Result<(), PackError> {
        self.append(
            header(EntryType::Directory, 0o755, 0),
            name,
            &mut io::empty(),
        )
    }

    fn walk(&mut self, dir: &Dir, rel: &Path) -> Result<(), PackError> {
        if Instant::now() >= self.deadline {
            return Err(PackError::Timeout);
        }
        let mut entries: Vec<_> = dir.entries()?.collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
        for entry in entries {
            let path = rel.join(entry.file_name());
            let mut name = b"./app/".to_vec();
            name.extend_from_slice(path.as_os_str().as_bytes());
            let refuse = |reason: &str| PackError::Refused {
                entry: path.display().to_string(),
                reason: reason.to_string(),
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                name.push(b'/');
                self.dir_entry(&name)?;
                let sub = entry.open_dir()?;
                self.walk(&sub, &path)?;
            } else if kind.is_symlink() {
                confine::check(self.root, &path).map_err(|e| refuse(&e.to_string()))?;
                let target = dir.read_link(entry.file_name())?;
                let mut h = header(EntryType::Symlink, 0o777, 0);
                let target = target.as_os_str().as_bytes();
                self.set_name(&mut h, target, b'K', |h| &mut h.as_old_mut().linkname)?;
                self.append(h, &name, &mut io::empty())?;
            } else if kind.is_file() {
                let file = entry.open()?;
                // Size and type from the open descriptor: what we read is what we describe.
                let meta = file.metadata()?;
                if !meta.is_file() {
                    return Err(refuse("changed type while being packed"));
                }
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                let mut exact = Exact {
                    inner: file.take(meta.len()),
                    left: meta.len(),
                };
                self.append(
                    header(EntryType::Regular, mode, meta.len()),
                    &name,
                    &mut exact,
                )?;
            } else {
                return Err(refuse(
                    "FIFOs, sockets and device files cannot go in a slug",
                ));
            }
        }
        Ok(())
    }
}

/// Fails instead of writing a short entry when a file shrinks while it is read.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    /// A small tree with a nested dir, an executable, a long name and a symlink.
    fn fixture(root: &Path, file_mode: u32) {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("public/css")).unwrap();
        std::fs::write(root.join("Procfile"), "web: bin/web\n").unwrap();
        std::fs::write(root.join("bin/web"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(root.join("bin/web"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(root.join("public/css/site.css"), "body { color: red }\n").unwrap();
        std::fs::set_permissions(
            root.join("public/css/site.css"),
            std::fs::Permissions::from_mode(file_mode),
        )
        .unwrap();
        let long = format!("public/{}.txt", "n".repeat(150));
        std::fs::write(root.join(long), "long name\n").unwrap();
        std::os::unix::fs::symlink("css/site.css", root.join("public/style.css")).unwrap();
    }

    #[test]
    fn golden_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        fixture(&app, 0o644);
        let (size, sum) = pack(&app, &tmp.path().join("slug.tgz"), 1 << 20, far()).unwrap();
        // Changes only when the slug format or the deflate backend changes: both are breaking.
        assert_eq!(
            sum, "SHA256:9b03dc476dc9d443e2856c9d27388f6cf61faf2e2c3a2877f2554d47e39b7398",
            "slug format changed (size {size})"
        );
    }

    #[test]
    fn metadata_does_not_change_the_slug() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fixture(&a, 0o644);
        fixture(&b, 0o600);
        let t = filetime_now_minus(&b);
        let one = pack(&a, &tmp.path().join("a.tgz"), 1 << 20, far()).unwrap();
        let two = pack(&b, &tmp.path().join("b.tgz"), 1 << 20, far()).unwrap();
        assert_eq!(one, two, "{t}");
    }

    /// Backdates every file in `root` by a day, so mtimes differ from the other tree.
    fn filetime_now_minus(root: &Path) -> String {
        let old = std::time::SystemTime::now() - Duration::from_secs(86_400);
        for path in ["Procfile", "bin/web", "public/css/site.css"] {
            let f = std::fs::File::options()
                .write(true)
                .open(root.join(path))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        format!("{old:?}")
    }

    #[test]
    fn entries_are_sorted_normalized_and_prefixed() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        fixture(&app, 0o600);
        let out = tmp.path().join("slug.tgz");
        pack(&app, &out, 1 << 20, far()).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&out).unwrap(),
        ));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(h.mtime().unwrap(), SLUG_MTIME);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.username().unwrap(), Some(""));
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            seen.push((path, h.mode().unwrap()));
        }
        let names: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names[0], "./app/");
        assert_eq!(names[1], "./app/Procfile");
        assert!(names.contains(&"./app/bin/web"));
        assert!(
            seen.iter()
                .any(|(p, m)| p == "./app/bin/web" && *m == 0o755)
        );
        assert!(
            seen.iter()
                .any(|(p, m)| p == "./app/public/css/site.css" && *m == 0o644)
        );
        assert!(
            names.iter().any(|n| n.len() > 150),
            "long names survive: {names:?}"
        );
    }

    #[test]
    fn escaping_symlinks_and_fifos_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", app.join("leak")).unwrap();
        let err = pack(&app, &tmp.path().join("s.tgz"), 1 << 20, far()).unwrap_err();
        assert!(
            err.to_string().contains("leak") && err.to_string().contains("outside"),
            "{err}"
        );

        std::fs::remove_file(app.join("leak")).unwrap();
        let fifo = app.join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = pack(&app, &tmp.path().join("s.tgz"), 1 << 20, far()).unwrap_err();
        assert!(err.to_string().contains("pipe"), "{err}");
    }

    #[test]
    fn size_limit_names_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(app.join("noise"), noise).unwrap();
        let err = pack(&app, &tmp.path().join("s.tgz"), 50_000, far()).unwrap_err();
        assert!(
            matches!(err, PackError::Limit(LimitExceeded::SlugSize(50_000))),
            "{err}"
        );
        assert!(!tmp.path().join("s.tgz").exists());
    }
}
