//! A content-addressed blob store on the local disk: uploaded sources and slugs, named by the
//! sha256 of their bytes under `<data-dir>/blobs/sha256/ab/abcdef...`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// How much of an oversized upload is read and dropped before answering 413.
const DRAIN_LIMIT: u64 = 64 << 20;

/// The blob store.
#[derive(Clone)]
pub struct Blobs {
    root: PathBuf,
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

impl Blobs {
    /// A store rooted at `<data_dir>/blobs`.
    pub fn new(data_dir: &Path) -> Result<Blobs> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Blobs { root })
    }

    /// Where the blob with this sha256 lives (it may not exist).
    pub fn path(&self, sha: &str) -> PathBuf {
        let sha = if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            sha
        } else {
            "invalid"
        };
        self.root
            .join("sha256")
            .join(&sha[..2.min(sha.len())])
            .join(sha)
    }

    /// A temp path in the store's filesystem, for a file that [`Blobs::adopt`] will move in.
    pub fn temp(&self) -> Result<tempfile::TempPath> {
        Ok(tempfile::NamedTempFile::new_in(self.root.join("tmp"))?.into_temp_path())
    }

    /// Moves a finished file into the store; returns its sha256 and size.
    pub fn adopt(&self, file: &Path) -> Result<(String, u64)> {
        let mut hasher = Sha256::new();
        let mut f = std::fs::File::open(file)?;
        let size = std::io::copy(&mut f, &mut hasher)?;
        let sha = hex::encode(hasher.finalize());
        let dest = self.path(&sha);
        std::fs::create_dir_all(dest.parent().unwrap())?;
        std::fs::rename(file, &dest).with_context(|| format!("storing blob {sha}"))?;
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
        Ok((sha, size))
    }
}
