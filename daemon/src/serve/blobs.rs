//! A content-addressed blob store: uploaded sources, slugs and buildpack components, named by the
//! sha256 of their bytes.
//!
//! Two backends, chosen by [`Blobs::open`]'s spec:
//! - the local disk (`<data-dir>/blobs/sha256/ab/abcdef...`, or a `file:///` directory), for a
//!   single node;
//! - an S3-compatible object store (`s3://bucket/prefix`, objects at `<prefix>/sha256/<sha>`),
//!   shared by several nodes. Every node keeps a read-through cache of what it read or wrote at
//!   `<data-dir>/blob-cache` (same layout as the local store), so the engine and the download
//!   handlers always get a plain file, and a blob read twice on one node downloads once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, PutResult, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of an oversized upload is read and dropped before answering 413.
const DRAIN_LIMIT: u64 = 64 << 20;

/// Files up to this size are uploaded with one PUT (read into memory); bigger ones in parts of
/// this size, so a slug of hundreds of MB never sits in memory whole.
const PART_SIZE: usize = 8 << 20;

/// Parts in flight at once during a multipart upload (bounds memory to about this many parts).
const PART_CONCURRENCY: usize = 4;

/// What [`Blobs::open`] accepts, for error messages.
const ACCEPTED: &str = "use file:///absolute/path or s3://bucket[/prefix] (or nothing, for \
                        <data-dir>/blobs)";

/// How recently used a cached blob must be to survive a trim whatever the limit.
pub const CACHE_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the least recently modified files of a two-level `dir/ab/abcdef…` tree until at
/// most `limit` bytes are left, keeping files modified within `grace`.
fn trim_dir(dir: &Path, limit: u64, grace: std::time::Duration) -> Result<u64> {
    let mut files = Vec::new();
    let shards = match std::fs::read_dir(dir) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    for shard in shards {
        for entry in std::fs::read_dir(shard?.path())? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() {
                files.push((meta.modified()?, entry.path(), meta.len()));
            }
        }
    }
    evict_lru(files, limit, grace, |path| {
        std::fs::remove_file(path)?;
        Ok(true)
    })
}

/// Evicts `(last used, item, bytes)` entries, least recently used first, until at most `limit`
/// bytes are left, stopping at the first entry used within `grace`. `remove` returns whether it
/// removed the item (`false`: in use, skipped). Returns the bytes removed.
pub(crate) fn evict_lru<T: Ord>(
    mut entries: Vec<(std::time::SystemTime, T, u64)>,
    limit: u64,
    grace: std::time::Duration,
    mut remove: impl FnMut(&T) -> Result<bool>,
) -> Result<u64> {
    let total: u64 = entries.iter().map(|(_, _, size)| size).sum();
    entries.sort();
    let recent = std::time::SystemTime::now() - grace;
    let mut removed = 0;
    for (used, item, size) in entries {
        if total - removed <= limit || used > recent {
            break;
        }
        if remove(&item)? {
            removed += size;
        }
    }
    Ok(removed)
}

/// The blob store.
#[derive(Clone)]
pub struct Blobs {
    /// The local store's directory, or the S3 store's read-through cache.
    root: PathBuf,
    /// The shared object store, when there is one.
    remote: Option<Remote>,
}

/// A bucket (and key prefix) in an S3-compatible object store.
#[derive(Clone)]
pub(crate) struct Remote {
    /// The store, shared by clones.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The key prefix everything of this daemon lives under (possibly empty).
    pub(crate) prefix: String,
}

impl Remote {
    /// The object key of `name` (a relative key such as `sha256/<sha>`) under the prefix.
    pub(crate) fn key(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Bigger than allowed.
    #[error("upload larger than {0} bytes")]
    TooLarge(u64),
    /// The connection or the disk failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Why [`Blobs::local`] has no file to give.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob with that sha256 is stored (or the name is not a sha256): a 404 for clients.
    #[error("blob {0} is not in the store")]
    NotFound(String),
    /// The store could not be read, or the object's bytes do not match its name.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Whether `sha` is a lowercase hex sha256, so it can name a file or an object safely.
fn valid_sha(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Blobs {
    /// Opens the store `spec` names: `None` is the local store at `<data_dir>/blobs` (the layout
    /// buildd always used, so existing data keeps working); `file:///abs/path` a local store
    /// there; `s3://bucket[/prefix]` an S3-compatible bucket, configured from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP`, ...), with a read-through cache at `<data_dir>/blob-cache`.
    pub fn open(spec: Option<&str>, data_dir: &Path) -> Result<Blobs> {
        Blobs::open_with(spec, data_dir, AmazonS3Builder::from_env())
    }

    /// [`Blobs::open`] with the S3 settings given instead of read from the environment (tests
    /// run in parallel in one process, so they cannot each set the environment).
    pub(crate) fn open_with(
        spec: Option<&str>,
        data_dir: &Path,
        s3: AmazonS3Builder,
    ) -> Result<Blobs> {
        let (root, remote) = match spec {
            None => (data_dir.join("blobs"), None),
            Some(spec) => {
                if let Some(path) = spec.strip_prefix("file://") {
                    let path = PathBuf::from(path);
                    if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
                        anyhow::bail!("blob store {spec:?}: the path must be absolute; {ACCEPTED}");
                    }
                    (path, None)
                } else if let Some(rest) = spec.strip_prefix("s3://") {
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    let prefix = prefix.trim_matches('/');
                    if bucket.is_empty() || spec.contains(['?', '#']) {
                        anyhow::bail!("blob store {spec:?}: no bucket name; {ACCEPTED}");
                    }
                    // Refuses `..`, empty segments and the like: keys stay under the prefix.
                    let parsed = ObjectPath::parse(prefix)
                        .with_context(|| format!("blob store {spec:?}: bad key prefix"))?;
                    let store = s3
                        .with_bucket_name(bucket)
                        .build()
                        .with_context(|| format!("blob store {spec:?}: configuring S3"))?;
                    let remote = Remote {
                        store: Arc::new(store),
                        prefix: parsed.to_string(),
                    };
                    (data_dir.join("blob-cache"), Some(remote))
                } else {
                    anyhow::bail!("unsupported blob store {spec:?}: {ACCEPTED}");
                }
            }
        };
        std::fs::create_dir_all(root.join("tmp"))
            .with_context(|| format!("creating {}", root.display()))?;
        Ok(Blobs { root, remote })
    }

    /// The shared object store, for the build caches that live beside the blobs.
    pub(crate) fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Where the blob with this sha256 lives on this node (it may not exist).
    fn path(&self, sha: &str) -> PathBuf {
        let sha = if valid_sha(sha) { sha } else { "invalid" };
        self.root.join("sha256").join(&sha[..2]).join(sha)
    }

    /// A local file holding the blob: with the local store, its file; with S3, the cached copy,
    /// downloaded first when this node does not have it (its sha256 is checked before it is
    /// cached, so a tampered object is refused, not served).
    pub async fn local(&self, sha: &str) -> Result<PathBuf, BlobError> {
        if !valid_sha(sha) {
            return Err(BlobError::NotFound(sha.to_string()));
        }
        let path = self.path(sha);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            if self.remote.is_some() {
                // The cache is trimmed least recently used first: this is a use.
                let _ = std::fs::File::open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            }
            return Ok(path);
        }
        let Some(remote) = &self.remote else {
            return Err(BlobError::NotFound(sha.to_string()));
        };
        let key = remote.key(&format!("sha256/{sha}"));
        let got = match remote.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(sha.to_string()));
            }
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("fetching {key}"))
                    .into());
            }
        };
        // Write then rename: a reader never sees a partial file, and two concurrent downloads
        // of the same blob each rename a complete copy.
        let tmp =
            tempfile::NamedTempFile::new_in(self.root.join("tmp")).map_err(anyhow::Error::from)?;
        let (file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("fetching {key}"))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
        }
        file.sync_all().await.map_err(anyhow::Error::from)?;
        let actual = hex::encode(hasher.finalize());
        if actual != sha {
            return Err(anyhow::anyhow!(
                "object {key} holds bytes with sha256 {actual}, not {sha}: refused"
            )
            .into());
        }
        std::fs::create_dir_all(path.parent().unwrap()).map_err(anyhow::Error::from)?;
        tmp_path
            .persist(&path)
            .map_err(|e| anyhow::anyhow!("caching blob {sha}: {e}"))?;
        Ok(path)
    }

    /// With an object store, trims this node's read-through cache to `limit` bytes, least
    /// recently used first, sparing blobs used in the last [`CACHE_GRACE`] (a build may be about
    /// to open one it was just handed). Returns the bytes removed. The local store is the
    /// blobs themselves: never trimmed.
    pub fn trim_cache(&self, limit: u64) -> Result<u64> {
        if self.remote.is_none() {
            return Ok(0);
        }
        trim_dir(&self.root.join("sha256"), limit, CACHE_GRACE)
    }

    /// A temp path in the store's filesystem, for a file that [`Blobs::adopt`] will move in.
    pub fn temp(&self) -> Result<tempfile::TempPath> {
        Ok(tempfile::NamedTempFile::new_in(self.root.join("tmp"))?.into_temp_path())
    }

    /// Moves a finished file into the store (with S3: uploads it, and keeps it in this node's
    /// cache); returns its sha256 and size.
    pub async fn adopt(&self, file: &Path) -> Result<(String, u64)> {
        let to_hash = file.to_path_buf();
        let (sha, size) = tokio::task::spawn_blocking(move || -> Result<(String, u64)> {
            let mut hasher = Sha256::new();
            let mut f = std::fs::File::open(&to_hash)?;
            let size = std::io::copy(&mut f, &mut hasher)?;
            Ok((hex::encode(hasher.finalize()), size))
        })
        .await??;
        let dest = self.path(&sha);
        std::fs::create_dir_all(dest.parent().unwrap())?;
        std::fs::rename(file, &dest).with_context(|| format!("storing blob {sha}"))?;
        self.publish(&sha, &dest).await?;
        Ok((sha, size))
    }

    /// Streams a request body into the store, up to `limit` bytes; returns sha256 and size.
    pub async fn put_stream(
        &self,
        body: axum::body::Body,
        limit: u64,
    ) -> Result<(String, u64), UploadError> {
        let tmp =
            tempfile::NamedTempFile::new_in(self.root.join("tmp")).map_err(anyhow::Error::from)?;
        let (file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("reading upload: {e}"))?;
            size += chunk.len() as u64;
            if size > limit {
                // Read (and drop) a bounded rest, so a client that sends the whole body before
                // reading the answer gets the 413 instead of a broken pipe.
                while size <= limit.saturating_add(DRAIN_LIMIT) {
                    match stream.next().await {
                        Some(Ok(chunk)) => size += chunk.len() as u64,
                        _ => break,
                    }
                }
                return Err(UploadError::TooLarge(limit));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
        }
        file.flush().await.map_err(anyhow::Error::from)?;
        file.sync_all().await.map_err(anyhow::Error::from)?;
        let sha = hex::encode(hasher.finalize());
        let dest = self.path(&sha);
        std::fs::create_dir_all(dest.parent().unwrap()).map_err(anyhow::Error::from)?;
        tmp_path
            .persist(&dest)
            .map_err(|e| anyhow::anyhow!("storing blob: {e}"))?;
        self.publish(&sha, &dest).await?;
        Ok((sha, size))
    }

    /// Uploads a blob this node just stored to the shared store (nothing to do on the local
    /// store). An object already there is not sent again: the name is the content.
    async fn publish(&self, sha: &str, file: &Path) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let key = remote.key(&format!("sha256/{sha}"));
        let size = tokio::fs::metadata(file).await?.len();
        match remote.store.head(&key).await {
            Ok(meta) if meta.size == size => return Ok(()),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(anyhow::Error::from(e).context(format!("checking {key}"))),
        }
        upload_file(remote.store.as_ref(), &key, file).await?;
        Ok(())
    }

    /// Deletes a blob here and in the shared store; a missing blob is not an error.
    pub async fn delete(&self, sha: &str) -> Result<()> {
        if !valid_sha(sha) {
            return Ok(());
        }
        match tokio::fs::remove_file(self.path(sha)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        if let Some(remote) = &self.remote {
            let key = remote.key(&format!("sha256/{sha}"));
            match remote.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(anyhow::Error::from(e).context(format!("deleting {key}"))),
            }
        }
        Ok(())
    }
}

/// Uploads a local file to `key`: one PUT when small, else a multipart upload read from the file
/// part by part (at most [`PART_CONCURRENCY`] parts in memory). Returns the store's answer (its
/// e_tag names this version of the object).
pub(crate) async fn upload_file(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    file: &Path,
) -> Result<PutResult> {
    let size = tokio::fs::metadata(file).await?.len();
    if size <= PART_SIZE as u64 {
        let bytes = tokio::fs::read(file).await?;
        return store
            .put(key, PutPayload::from(bytes))
            .await
            .with_context(|| format!("uploading {key}"));
    }
    let upload = store
        .put_multipart(key)
        .await
        .with_context(|| format!("uploading {key}"))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut f = tokio::fs::File::open(file).await?;
    let mut buf = vec![0u8; 1 << 20];
    let sent: Result<()> = async {
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            writer.wait_for_capacity(PART_CONCURRENCY).await?;
            writer.write(&buf[..n]);
        }
    }
    .await;
    match sent {
        Ok(()) => writer
            .finish()
            .await
            .with_context(|| format!("uploading {key}")),
        Err(e) => {
            // Abandoned parts cost storage until the bucket's lifecycle rules clear them.
            let _ = writer.abort().await;
            Err(e.context(format!("uploading {key}")))
        }
    }
}

/// A real S3 server for tests: `moto_server` (from PyPI's `moto[server]`) on a free loopback
/// port, killed on drop. Without it the S3 tests are skipped loudly, except under CI, which
/// must run them.
#[cfg(test)]
pub(crate) mod moto {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use object_store::aws::AmazonS3Builder;

    /// A running `moto_server`.
    pub(crate) struct Moto {
        pub(crate) endpoint: String,
        child: Child,
    }

    impl Moto {
        /// Starts one, or returns `None` (after saying so) when `moto_server` is not installed.
        pub(crate) fn start() -> Option<Moto> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = match Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "moto_server not found, and CI must run the S3 tests \
                         (python3 -m pip install 'moto[server]')"
                    );
                    eprintln!(
                        "SKIPPED: moto_server not found; install it with \
                         `python3 -m pip install 'moto[server]'` to run the S3 tests"
                    );
                    return None;
                }
                Err(e) => panic!("starting moto_server: {e}"),
            };
            let moto = Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                child,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            while ureq::get(&moto.endpoint).call().is_err() {
                assert!(Instant::now() < deadline, "moto_server did not answer");
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(moto)
        }

        /// A new, empty bucket.
        pub(crate) fn bucket(&self) -> String {
            let name = format!("test-{}", uuid::Uuid::new_v4().simple());
            ureq::put(format!("{}/{name}", self.endpoint))
                .send_empty()
                .expect("creating a bucket");
            name
        }

        /// S3 settings that reach this server (the bucket comes from the store's spec).
        pub(crate) fn s3(&self) -> AmazonS3Builder {
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id("test")
                .with_secret_access_key("test")
        }
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::moto::Moto;
    use super::*;

    fn s3_store(moto: &Moto, spec: &str, data_dir: &Path) -> Blobs {
        Blobs::open_with(Some(spec), data_dir, moto.s3()).unwrap()
    }

    /// Bytes that differ from part to part, so a misplaced part shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i / 7 + i / 4099) as u8).collect()
    }

    #[test]
    fn the_read_through_cache_is_trimmed_least_recently_used_first() {
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let age = |days: u64| SystemTime::now() - Duration::from_secs(days * 86_400);
        for (name, days) in [("aa1", 3), ("ab2", 1), ("cc3", 2)] {
            let shard = dir.path().join(&name[..2]);
            std::fs::create_dir_all(&shard).unwrap();
            let f = std::fs::File::create(shard.join(name)).unwrap();
            f.set_len(100).unwrap();
            f.set_modified(age(days)).unwrap();
        }
        // A fresh one, over the limit by itself, is spared: someone is about to read it.
        std::fs::write(dir.path().join("ab").join("ab4"), vec![0; 500]).unwrap();
        let removed = trim_dir(dir.path(), 150, CACHE_GRACE).unwrap();
        assert_eq!(
            removed, 300,
            "the three old ones go, oldest first, then the limit stops"
        );
        assert!(dir.path().join("ab/ab4").exists());
        let removed = trim_dir(dir.path(), 10_000, CACHE_GRACE).unwrap();
        assert_eq!(removed, 0);
    }

    #[test]
    fn specs() {
        let data = tempfile::tempdir().unwrap();
        let local = Blobs::open(None, data.path()).unwrap();
        assert_eq!(local.root, data.path().join("blobs"));
        let dir = data.path().join("elsewhere");
        let spec = format!("file://{}", dir.display());
        assert_eq!(Blobs::open(Some(&spec), data.path()).unwrap().root, dir);
        for bad in [
            "file://relative/path",
            "s3://",
            "s3:///prefix",
            "s3://bucket/../up",
            "gs://bucket",
            "/plain/path",
        ] {
            let err = Blobs::open(Some(bad), data.path()).err().unwrap();
            let err = format!("{err:#}");
            assert!(err.contains(bad), "{bad}: {err}");
        }
        let err = Blobs::open(Some("gs://bucket"), data.path()).err().unwrap();
        assert!(err.to_string().contains("s3://bucket[/prefix]"), "{err}");
    }

    #[tokio::test]
    async fn file_store_round_trip() {
        let data = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(None, data.path()).unwrap();
        let (sha, size) = blobs
            .put_stream(axum::body::Body::from("hello"), 100)
            .await
            .unwrap();
        assert_eq!(size, 5);
        let path = blobs.local(&sha).await.unwrap();
        assert_eq!(
            path,
            data.path().join("blobs/sha256").join(&sha[..2]).join(&sha)
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert!(matches!(
            blobs.put_stream(axum::body::Body::from("hello"), 4).await,
            Err(UploadError::TooLarge(4))
        ));
        blobs.delete(&sha).await.unwrap();
        blobs.delete(&sha).await.unwrap();
        assert!(matches!(
            blobs.local(&sha).await,
            Err(BlobError::NotFound(_))
        ));
        assert!(matches!(
            blobs.local("../../etc/passwd").await,
            Err(BlobError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn s3_blobs_reach_another_node() {
        let Some(moto) = Moto::start() else { return };
        let spec = format!("s3://{}/some/prefix", moto.bucket());
        let (a_dir, b_dir, c_dir) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let a = s3_store(&moto, &spec, a_dir.path());

        // A small upload (one PUT) and a slug bigger than a part (multipart).
        let small = b"a source tarball".to_vec();
        let (small_sha, _) = a
            .put_stream(axum::body::Body::from(small.clone()), 1 << 30)
            .await
            .unwrap();
        let big = pattern(PART_SIZE * 2 + 12345);
        let slug = a.temp().unwrap();
        std::fs::write(&slug, &big).unwrap();
        let (big_sha, big_size) = a.adopt(&slug).await.unwrap();
        assert_eq!(big_size, big.len() as u64);
        assert_eq!(big_sha, hex::encode(Sha256::digest(&big)));
        // Node A keeps its copies.
        assert_eq!(
            std::fs::read(a.local(&big_sha).await.unwrap()).unwrap(),
            big
        );

        let remote = a.remote().unwrap();
        let key = remote.key(&format!("sha256/{big_sha}"));
        assert_eq!(key.to_string(), format!("some/prefix/sha256/{big_sha}"));
        assert_eq!(
            remote.store.head(&key).await.unwrap().size,
            big.len() as u64
        );

        // Node B, empty, gets the same bytes, into its cache.
        let b = s3_store(&moto, &spec, b_dir.path());
        let path = b.local(&big_sha).await.unwrap();
        assert!(path.starts_with(b_dir.path().join("blob-cache/sha256")));
        assert_eq!(std::fs::read(&path).unwrap(), big);
        assert_eq!(
            std::fs::read(b.local(&small_sha).await.unwrap()).unwrap(),
            small
        );
        // A second read is served from the cache: it works with the object gone.
        remote.store.delete(&key).await.unwrap();
        assert_eq!(
            std::fs::read(b.local(&big_sha).await.unwrap()).unwrap(),
            big
        );

        // Deleted everywhere: a third node finds nothing; deleting again is fine.
        a.delete(&small_sha).await.unwrap();
        a.delete(&small_sha).await.unwrap();
        let c = s3_store(&moto, &spec, c_dir.path());
        assert!(matches!(
            c.local(&small_sha).await,
            Err(BlobError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn s3_tampered_object_is_refused() {
        let Some(moto) = Moto::start() else { return };
        let spec = format!("s3://{}", moto.bucket());
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = s3_store(&moto, &spec, a_dir.path());
        let (sha, _) = a
            .put_stream(axum::body::Body::from("the real slug"), 1 << 20)
            .await
            .unwrap();
        let remote = a.remote().unwrap();
        let key = remote.key(&format!("sha256/{sha}"));
        assert_eq!(key.to_string(), format!("sha256/{sha}"));
        remote
            .store
            .put(&key, PutPayload::from_static(b"something else"))
            .await
            .unwrap();

        let b = s3_store(&moto, &spec, b_dir.path());
        let err = b.local(&sha).await.unwrap_err();
        assert!(matches!(err, BlobError::Other(_)), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(!b.path(&sha).exists());
    }
}
