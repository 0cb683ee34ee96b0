//! Per-app build caches that follow the app from node to node.
//!
//! The engine always works on a local directory, `<data-dir>/cache/<app_id>` (one subdirectory
//! per buildpack). With a local blob store that directory is the cache and nothing else happens.
//! With an S3 store, the object `<prefix>/caches/<app_id>.tar.gz` is the truth: [`BuildCaches::
//! restore`] makes the local directory match it before a build, [`BuildCaches::save`] uploads it
//! after a successful one. A marker file beside the directory (`<app_id>.marker`) remembers which
//! version of the object the directory holds (its e_tag) and the digest of the directory's
//! contents then, so a node that built the app last downloads nothing, and a build that left the
//! cache as it was uploads nothing.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::blobs::{Blobs, CACHE_GRACE, Remote, evict_lru, upload_file};

/// The single top-level directory of a packed cache. The unpacker strips a lone top-level
/// directory, and a cache used by one buildpack would otherwise have one (the buildpack's), so
/// every cache has this one and the buildpacks' directories below it.
const TOP: &str = "cache";

/// The app's build caches, local and shared.
#[derive(Clone)]
pub struct BuildCaches {
    /// `<data-dir>/cache`: one directory (and marker) per app.
    root: PathBuf,
    /// The object store the caches follow the app through (none with a local blob store).
    remote: Option<Remote>,
}

/// What the marker beside an app's cache directory records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    /// The e_tag of the object version the directory was restored from or saved as.
    e_tag: String,
    /// The sha256 of the directory's packed tar (uncompressed) at that time.
    digest: String,
}

impl BuildCaches {
    /// The caches under `<data_dir>/cache`, shared through `blobs`'s object store when it has one.
    pub fn new(blobs: &Blobs, data_dir: &Path) -> BuildCaches {
        BuildCaches {
            root: data_dir.join("cache"),
            remote: blobs.remote().cloned(),
        }
    }

    /// The local cache directory the engine gets for this app (each buildpack makes a
    /// subdirectory in it).
    pub fn dir(&self, app_id: &str) -> PathBuf {
        self.root.join(app_id)
    }

    fn marker_path(&self, app_id: &str) -> PathBuf {
        self.root.join(format!("{app_id}.marker"))
    }

    fn key(remote: &Remote, app_id: &str) -> ObjectPath {
        remote.key(&format!("caches/{app_id}.tar.gz"))
    }

    /// Before a build: makes the local directory hold the app's shared cache (with S3; nothing to
    /// do with a local store). No object means no cache: the directory is emptied. An error
    /// (store unreachable, a tampered or broken tarball) must not fail the build: callers log a
    /// warning and build with whatever the directory holds (at worst, from scratch).
    pub async fn restore(&self, app_id: &str) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        check_app_id(app_id)?;
        let key = Self::key(remote, app_id);
        let dir = self.dir(app_id);
        let marker = read_marker(&self.marker_path(app_id)).await;
        let meta = match remote.store.head(&key).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                remove_dir(&dir).await?;
                remove_file(&self.marker_path(app_id)).await?;
                return Ok(());
            }
            Err(e) => return Err(anyhow::Error::from(e).context(format!("checking {key}"))),
        };
        let e_tag = meta.e_tag.as_deref().map(normalize_e_tag);
        if let (Some(marker), Some(e_tag)) = (&marker, &e_tag)
            && marker.e_tag == *e_tag
            && tokio::fs::try_exists(&dir).await.unwrap_or(false)
        {
            // Local copies are trimmed least recently used first (the marker's time): a use.
            let _ = std::fs::File::open(self.marker_path(app_id))
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Ok(());
        }

        tokio::fs::create_dir_all(&self.root).await?;
        let scratch = tempfile::Builder::new()
            .prefix(".restore-")
            .tempdir_in(&self.root)?;
        let archive = scratch.path().join("cache.tar.gz");
        let got = remote
            .store
            .get(&key)
            .await
            .with_context(|| format!("fetching {key}"))?;
        let e_tag = got.meta.e_tag.as_deref().map(normalize_e_tag);
        let mut file = tokio::fs::File::create(&archive).await?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.with_context(|| format!("fetching {key}"))?)
                .await?;
        }
        file.sync_all().await?;
        drop(file);

        // The runtime's unpacker: no paths outside the directory, no absolute or escaping
        // symlinks, no devices, bounded sizes; modes become 0644/0755, which is all a cache needs.
        let work = scratch.path().join("work");
        let unpacked = tokio::task::spawn_blocking(move || {
            buildd_runtime::fetch_source(
                &buildd_runtime::Source::Archive(archive),
                None,
                &work,
                &restore_limits(),
            )
        })
        .await?
        .with_context(|| format!("unpacking {key}"))?
        .0;
        if unpacked.file_name().is_none_or(|n| n != TOP) {
            anyhow::bail!("{key} is not a build cache (no single {TOP}/ directory)");
        }
        let digest = {
            let unpacked = unpacked.clone();
            tokio::task::spawn_blocking(move || pack(&unpacked, None)).await??
        };
        remove_dir(&dir).await?;
        tokio::fs::rename(&unpacked, &dir).await?;
        if let Some(e_tag) = e_tag {
            write_marker(&self.marker_path(app_id), &Marker { e_tag, digest }).await?;
        }
        Ok(())
    }

    /// After a successful build: uploads the local directory as the app's shared cache, unless
    /// it is what this node last restored or saved (with S3; nothing to do with a local store).
    /// An error must not fail the build: callers log a warning (the next build, maybe on another
    /// node, then starts from the previous cache).
    pub async fn save(&self, app_id: &str) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        check_app_id(app_id)?;
        let dir = self.dir(app_id);
        tokio::fs::create_dir_all(&dir).await?;
        let scratch = tempfile::Builder::new()
            .prefix(".save-")
            .tempdir_in(&self.root)?;
        let archive = scratch.path().join("cache.tar.gz");
        // Hashing the tar is cheaper than compressing it, and most builds leave the cache as
        // it was: compress only what will be uploaded.
        let marker_path = self.marker_path(app_id);
        if let Some(marker) = read_marker(&marker_path).await {
            let dir = dir.clone();
            let digest = tokio::task::spawn_blocking(move || pack(&dir, None)).await??;
            if marker.digest == digest {
                return Ok(());
            }
        }
        let digest = {
            let (dir, archive) = (dir.clone(), archive.clone());
            tokio::task::spawn_blocking(move || pack(&dir, Some(&archive))).await??
        };
        let key = Self::key(remote, app_id);
        let put = upload_file(remote.store.as_ref(), &key, &archive).await?;
        match put.e_tag {
            Some(e_tag) => {
                let e_tag = normalize_e_tag(&e_tag);
                write_marker(&marker_path, &Marker { e_tag, digest }).await?;
            }
            None => remove_file(&marker_path).await?,
        }
        Ok(())
    }

    /// Deletes the app's cache here and in the shared store (`DELETE /apps/:app/build-cache`,
    /// app deletion). Other nodes' copies are emptied by their next restore.
    pub async fn purge(&self, app_id: &str) -> Result<()> {
        check_app_id(app_id)?;
        remove_dir(&self.dir(app_id)).await?;
        remove_file(&self.marker_path(app_id)).await?;
        if let Some(remote) = &self.remote {
            let key = Self::key(remote, app_id);
            match remote.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(anyhow::Error::from(e).context(format!("deleting {key}"))),
            }
        }
        Ok(())
    }
}

impl BuildCaches {
    /// With an object store, trims this node's copies of app caches to `limit` bytes, least
    /// recently used first (by their markers' times), sparing apps in `busy` (building here) and
    /// copies used within [`CACHE_GRACE`]. A trimmed copy is restored from the store when its
    /// app builds here again. Returns the bytes removed. With a local store the copies are the
    /// caches themselves: never trimmed.
    pub fn trim_copies(&self, limit: u64, busy: &HashSet<String>) -> Result<u64> {
        if self.remote.is_none() {
            return Ok(0);
        }
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut copies = Vec::new();
        for entry in entries {
            let entry = entry?;
            let app_id = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_dir() || check_app_id(&app_id).is_err() {
                continue;
            }
            let used = std::fs::metadata(self.marker_path(&app_id))
                .or_else(|_| entry.metadata())
                .and_then(|m| m.modified())?;
            copies.push((used, app_id, tree_size(&entry.path())));
        }
        evict_lru(copies, limit, CACHE_GRACE, |app_id| {
            if busy.contains(app_id) {
                return Ok(false);
            }
            // The marker first: a copy without one is downloaded again, never trusted.
            let _ = std::fs::remove_file(self.marker_path(app_id));
            std::fs::remove_dir_all(self.dir(app_id))?;
            Ok(true)
        })
    }
}

/// Bytes of the files below `dir` (links not followed).
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Bounds on unpacking a shared cache. A source's defaults (1 GiB packed, 4 GiB unpacked,
/// 200,000 entries) are too tight for an app whose buildpacks each fill their 1 GiB cache (a
/// cache of npm tarballs has many files); these still stop a gzip bomb from filling the disk.
fn restore_limits() -> buildd_runtime::SourceLimits {
    buildd_runtime::SourceLimits {
        download_bytes: 16 << 30,
        unpacked_bytes: 16 << 30,
        entries: 2_000_000,
        ..buildd_runtime::SourceLimits::default()
    }
}

/// App ids name a directory and an object: nothing that could climb out of either.
fn check_app_id(app_id: &str) -> Result<()> {
    let ok = !app_id.is_empty()
        && app_id.len() <= 128
        && app_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    anyhow::ensure!(ok, "invalid app id {app_id:?}");
    Ok(())
}

/// S3 quotes e_tags in some answers and not in others.
fn normalize_e_tag(e_tag: &str) -> String {
    e_tag.trim_matches('"').to_string()
}

async fn read_marker(path: &Path) -> Option<Marker> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    let mut lines = text.lines();
    Some(Marker {
        e_tag: lines.next()?.to_string(),
        digest: lines.next()?.to_string(),
    })
}

async fn write_marker(path: &Path, marker: &Marker) -> Result<()> {
    // Write then rename: a crash leaves the old marker or the new one, never half of one.
    let tmp = path.with_extension("marker.tmp");
    tokio::fs::write(&tmp, format!("{}\n{}\n", marker.e_tag, marker.digest)).await?;
    tokio::fs::rename(&tmp, path).await?;
    Ok(())
}

async fn remove_dir(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

async fn remove_file(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Packs `dir` as a tar of `cache/...` (sorted, zero mtimes and owners, modes 0644/0755, so the
/// same contents give the same tar) into `out`, gzipped at level 1, when given. Returns the
/// sha256 of the uncompressed tar: the digest of the contents, to tell an unchanged cache.
fn pack(dir: &Path, out: Option<&Path>) -> Result<String> {
    match out {
        Some(out) => {
            let gz = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(std::fs::File::create(out)?),
                flate2::Compression::new(1),
            );
            let (gz, digest) = pack_into(dir, gz)?;
            let mut file = gz.finish()?;
            file.flush()?;
            file.get_ref().sync_all()?;
            Ok(digest)
        }
        None => Ok(pack_into(dir, std::io::sink())?.1),
    }
}

/// Writes the tar of `dir` into `sink`; returns the sink and the tar's sha256.
fn pack_into<W: Write>(dir: &Path, sink: W) -> Result<(W, String)> {
    let mut tar = tar::Builder::new(Hashing {
        inner: sink,
        hasher: Sha256::new(),
    });
    tar.follow_symlinks(false);
    append_dir(&mut tar, dir, Path::new(TOP))?;
    let hashing = tar.into_inner()?;
    Ok((hashing.inner, hex::encode(hashing.hasher.finalize())))
}

/// Appends `dir` as `name` and everything below it, in name order.
fn append_dir<W: Write>(tar: &mut tar::Builder<W>, dir: &Path, name: &Path) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, name, std::io::empty())?;
    let mut entries = std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let child = name.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            append_dir(tar, &path, &child)?;
        } else if kind.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let meta = entry.metadata()?;
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            });
            header.set_size(meta.len());
            header.set_mtime(0);
            let file = std::fs::File::open(&path)?;
            tar.append_data(&mut header, &child, file)
                .with_context(|| format!("packing {}", path.display()))?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            header.set_mtime(0);
            tar.append_link(&mut header, &child, &target)?;
        }
        // Anything else (sockets, fifos) is not cache content.
    }
    Ok(())
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::blobs::moto::Moto;
    use object_store::PutPayload;

    #[test]
    fn local_copies_are_trimmed_least_recently_used_first_sparing_busy_apps() {
        use std::time::{Duration, SystemTime};
        let data = tempfile::tempdir().unwrap();
        let caches = BuildCaches {
            root: data.path().join("cache"),
            remote: Some(Remote {
                store: std::sync::Arc::new(object_store::memory::InMemory::new()),
                prefix: String::new(),
            }),
        };
        let days_ago = |d: u64| SystemTime::now() - Duration::from_secs(d * 86_400);
        for (app, days) in [("a", 4), ("b", 3), ("c", 5), ("d", 0)] {
            let dir = caches.dir(app).join("buildd.static");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("blob"), vec![1; 100]).unwrap();
            let marker = std::fs::File::create(caches.marker_path(app)).unwrap();
            marker.set_modified(days_ago(days)).unwrap();
        }
        let busy = HashSet::from(["c".to_string()]);
        // 400 bytes, limit 150: a and b go (oldest first, c is building here); d was just used.
        assert_eq!(caches.trim_copies(150, &busy).unwrap(), 200);
        for (app, kept) in [("a", false), ("b", false), ("c", true), ("d", true)] {
            assert_eq!(caches.dir(app).exists(), kept, "{app}");
            assert_eq!(caches.marker_path(app).exists(), kept, "{app}");
        }
        // A local store's caches are the only copy: never trimmed.
        let local = BuildCaches {
            root: caches.root.clone(),
            remote: None,
        };
        assert_eq!(local.trim_copies(0, &HashSet::new()).unwrap(), 0);
    }

    /// A node: its data dir and its caches, on the bucket `spec` names.
    fn node(moto: &Moto, spec: &str) -> (tempfile::TempDir, BuildCaches) {
        let data = tempfile::tempdir().unwrap();
        let blobs = Blobs::open_with(Some(spec), data.path(), moto.s3()).unwrap();
        let caches = BuildCaches::new(&blobs, data.path());
        (data, caches)
    }

    /// Every file under `dir`, with its contents and whether it is executable.
    fn files(dir: &Path) -> Vec<(String, Vec<u8>, bool)> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>, bool)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(base, &path, out);
                } else {
                    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                    out.push((
                        path.strip_prefix(base).unwrap().display().to_string(),
                        std::fs::read(&path).unwrap(),
                        mode & 0o111 != 0,
                    ));
                }
            }
        }
        if dir.exists() {
            walk(dir, dir, &mut out);
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn local_store_caches_stay_local() {
        let data = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(None, data.path()).unwrap();
        let caches = BuildCaches::new(&blobs, data.path());
        let dir = caches.dir("app-1");
        assert_eq!(dir, data.path().join("cache/app-1"));
        std::fs::create_dir_all(dir.join("buildd-static")).unwrap();
        std::fs::write(dir.join("buildd-static/x"), "x").unwrap();
        caches.restore("app-1").await.unwrap();
        caches.save("app-1").await.unwrap();
        assert_eq!(files(&dir).len(), 1);
        caches.purge("app-1").await.unwrap();
        assert!(!dir.exists());
        assert!(caches.restore("../x").await.is_ok(), "no-op without S3");
    }

    #[tokio::test]
    async fn s3_cache_follows_the_app() {
        use std::os::unix::fs::PermissionsExt;
        let Some(moto) = Moto::start() else { return };
        let spec = format!("s3://{}/buildd", moto.bucket());
        let (_a_data, a) = node(&moto, &spec);
        let (_b_data, b) = node(&moto, &spec);
        let app = "0b6c8a5e-4a1f-4a57-9d1e-6b1f0f1c2d3e";

        // Nothing saved yet: restore gives an empty cache.
        a.restore(app).await.unwrap();
        assert!(files(&a.dir(app)).is_empty());

        // One buildpack's cache (one top-level directory, which the unpacker would strip).
        let dir = a.dir(app);
        std::fs::create_dir_all(dir.join("buildd-nodejs/node/bin")).unwrap();
        std::fs::write(dir.join("buildd-nodejs/node/bin/node"), b"\x7fELF...").unwrap();
        std::fs::set_permissions(
            dir.join("buildd-nodejs/node/bin/node"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(dir.join("buildd-nodejs/index.json"), "{}").unwrap();
        std::fs::create_dir_all(dir.join("buildd-nodejs/empty")).unwrap();
        a.save(app).await.unwrap();

        let remote = a.remote.as_ref().unwrap();
        let key = BuildCaches::key(remote, app);
        assert_eq!(key.to_string(), format!("buildd/caches/{app}.tar.gz"));
        let first = remote.store.head(&key).await.unwrap();

        // Node B builds next: it gets the same files.
        b.restore(app).await.unwrap();
        assert_eq!(files(&b.dir(app)), files(&dir));
        assert!(b.dir(app).join("buildd-nodejs/empty").is_dir());
        assert_eq!(files(&b.dir(app)).len(), 2);

        // Unchanged caches are not uploaded again, by the node that saved or the one that
        // restored.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        a.save(app).await.unwrap();
        b.save(app).await.unwrap();
        let again = remote.store.head(&key).await.unwrap();
        assert_eq!(again.e_tag, first.e_tag);
        assert_eq!(again.last_modified, first.last_modified);

        // B changes it; A's next restore picks the change up and drops what B removed.
        std::fs::write(b.dir(app).join("buildd-nodejs/index.json"), "{\"v\":2}").unwrap();
        std::fs::create_dir_all(b.dir(app).join("buildd-static")).unwrap();
        std::fs::write(b.dir(app).join("buildd-static/gz"), "gz").unwrap();
        std::fs::remove_file(b.dir(app).join("buildd-nodejs/node/bin/node")).unwrap();
        b.save(app).await.unwrap();
        assert_ne!(remote.store.head(&key).await.unwrap().e_tag, first.e_tag);
        a.restore(app).await.unwrap();
        assert_eq!(files(&a.dir(app)), files(&b.dir(app)));
        assert_eq!(files(&a.dir(app)).len(), 2);

        // Purged: gone from the bucket and from A; B's next restore empties its copy.
        a.purge(app).await.unwrap();
        assert!(!a.dir(app).exists());
        assert!(matches!(
            remote.store.head(&key).await,
            Err(object_store::Error::NotFound { .. })
        ));
        b.restore(app).await.unwrap();
        assert!(files(&b.dir(app)).is_empty());
        a.purge(app).await.unwrap();
    }

    /// A gzipped tar whose entries are written raw, names included, as an attacker could.
    fn hostile_tarball(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            for (name, kind, content) in entries {
                let mut header = tar::Header::new_gnu();
                header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_entry_type(*kind);
                header.set_mode(0o644);
                if *kind == tar::EntryType::Symlink {
                    header.set_link_name(content).unwrap();
                    header.set_size(0);
                    header.set_cksum();
                    tar.append(&header, std::io::empty()).unwrap();
                } else {
                    header.set_size(content.len() as u64);
                    header.set_cksum();
                    tar.append(&header, content.as_bytes()).unwrap();
                }
            }
            tar.into_inner().unwrap().finish().unwrap();
        }
        out
    }

    #[tokio::test]
    async fn s3_tampered_cache_is_refused() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let Some(moto) = Moto::start() else { return };
        let spec = format!("s3://{}", moto.bucket());
        let (data, caches) = node(&moto, &spec);
        let remote = caches.remote.clone().unwrap();
        let app = "app-1";
        let key = BuildCaches::key(&remote, app);
        // What the node had: it must survive a refused restore untouched.
        std::fs::create_dir_all(caches.dir(app).join("bp")).unwrap();
        std::fs::write(caches.dir(app).join("bp/kept"), "kept").unwrap();

        let cases: [&[(&str, tar::EntryType, &str)]; 4] = [
            &[
                ("cache/", Directory, ""),
                ("cache/ok", Regular, "ok"),
                ("cache/../escape", Regular, "out"),
            ],
            &[("../escape", Regular, "out")],
            &[("cache/", Directory, ""), ("cache/link", Symlink, "/etc")],
            &[
                ("cache/", Directory, ""),
                ("cache/up", Symlink, "../../../.."),
            ],
        ];
        for entries in cases {
            remote
                .store
                .put(&key, PutPayload::from(hostile_tarball(entries)))
                .await
                .unwrap();
            let err = caches.restore(app).await.unwrap_err();
            assert!(format!("{err:#}").contains("unpacking"), "{err:#}");
            assert_eq!(
                std::fs::read_to_string(caches.dir(app).join("bp/kept")).unwrap(),
                "kept"
            );
            for outside in [
                data.path().join("escape"),
                data.path().join("cache/escape"),
                data.path().join("cache/link"),
            ] {
                assert!(!outside.exists(), "{}", outside.display());
            }
        }
        // A tarball without the cache/ directory is not a cache.
        remote
            .store
            .put(
                &key,
                PutPayload::from(hostile_tarball(&[("x", Regular, "x"), ("y", Regular, "y")])),
            )
            .await
            .unwrap();
        let err = caches.restore(app).await.unwrap_err();
        assert!(err.to_string().contains("not a build cache"), "{err:#}");
        // Scratch dirs are cleaned up.
        let left: Vec<_> = std::fs::read_dir(data.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(app)]);
    }
}
