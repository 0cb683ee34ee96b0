//! Git sources: a shallow fetch with gix, then the commit's tree written into the app dir under
//! the same rules as a tarball (no `..`, symlinks checked, limits counted). Nothing is checked
//! out by git itself, so a hostile repository gets no more than a hostile tarball.

use std::path::Path;
#[cfg(feature = "engine")]
use std::sync::atomic::AtomicBool;

use cap_std::fs::Dir;
#[cfg(feature = "engine")]
use gix::object::tree::EntryKind;

use crate::limits::SourceLimits;
use crate::source::SourceError;
use crate::unpack::AppStats;
#[cfg(feature = "engine")]
use crate::unpack::{AppWriter, sanitize};

/// A repository and the ref to build: a branch, a tag, a full commit sha, or the default branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What gix fetches from: `https://...`, `git://...` or `file://...`.
    pub url: String,
    /// `#REF` of the source URL.
    pub reference: Option<String>,
}

impl GitSource {
    /// Reads `git+https://HOST/REPO.git#REF`, `git+http://...`, `git://...#REF` and
    /// `git+file:///path#REF`; `None` for anything else.
    pub fn parse(url: &str) -> Option<GitSource> {
        let (base, reference) = match url.split_once('#') {
            Some((base, r)) if !r.is_empty() => (base, Some(r.to_string())),
            Some((base, _)) => (base, None),
            None => (url, None),
        };
        let url = if let Some(rest) = base.strip_prefix("git+") {
            rest.to_string()
        } else if base.starts_with("git://") {
            base.to_string()
        } else {
            return None;
        };
        Some(GitSource { url, reference })
    }

    #[cfg_attr(not(feature = "engine"), allow(dead_code))]
    fn reference_is_commit(&self) -> bool {
        self.reference
            .as_deref()
            .is_some_and(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

fn git_error(source: &GitSource, err: impl std::fmt::Display) -> SourceError {
    SourceError::Download {
        url: source.url.clone(),
        message: format!("git: {err}"),
    }
}

#[cfg(feature = "engine")]
/// Fetches `source` into `work/git` (shallowly, unless the ref is a commit sha) and writes the
/// commit's tree into `dest`. Returns what was written and the commit's sha.
pub(crate) fn fetch(
    source: &GitSource,
    work: &Path,
    dest: &Dir,
    limits: &SourceLimits,
) -> Result<(AppStats, String), SourceError> {
    let fail = |e: &dyn std::fmt::Display| git_error(source, e);
    let mut prepare =
        gix::prepare_clone_bare(source.url.as_str(), work.join("git")).map_err(|e| fail(&e))?;
    if !source.reference_is_commit() {
        // A commit sha cannot be asked for by name; everything else can be fetched 1 deep.
        prepare = prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(
            1.try_into().unwrap(),
        ));
        if let Some(reference) = &source.reference {
            prepare = prepare
                .with_ref_name(Some(reference.as_str()))
                .map_err(|e| fail(&e))?;
        }
    }
    let (repo, _) = prepare
        .fetch_only(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| fail(&e))?;
    let commit = match &source.reference {
        Some(sha) if source.reference_is_commit() => {
            let id = gix::ObjectId::from_hex(sha.as_bytes()).map_err(|e| fail(&e))?;
            repo.find_commit(id)
                .map_err(|_| fail(&format!("commit {sha} is not in the repository")))?
        }
        _ => repo.head_commit().map_err(|e| fail(&e))?,
    };
    let sha = commit.id.to_string();
    let tree = commit.tree().map_err(|e| fail(&e))?;
    let mut writer = AppWriter::new(dest, limits);
    write_tree(source, &tree, b"", &mut writer, limits)?;
    let stats = AppStats {
        bytes: writer.bytes,
        files: writer.files,
    };
    writer.finish()?;
    Ok((stats, sha))
}

#[cfg(feature = "engine")]
fn write_tree(
    source: &GitSource,
    tree: &gix::Tree<'_>,
    prefix: &[u8],
    writer: &mut AppWriter<'_>,
    limits: &SourceLimits,
) -> Result<(), SourceError> {
    let fail = |e: &dyn std::fmt::Display| git_error(source, e);
    for entry in tree.iter() {
        let entry = entry.map_err(|e| fail(&e))?;
        let mut raw = prefix.to_vec();
        if !raw.is_empty() {
            raw.push(b'/');
        }
        raw.extend_from_slice(entry.filename());
        let Some(path) = sanitize(&raw, limits)? else {
            continue;
        };
        let object = || entry.id().object().map_err(|e| fail(&e));
        match entry.mode().kind() {
            EntryKind::Tree => {
                writer.dir(&raw, &path)?;
                let sub = object()?.try_into_tree().map_err(|e| fail(&e))?;
                write_tree(source, &sub, &raw, writer, limits)?;
            }
            EntryKind::Blob | EntryKind::BlobExecutable => {
                let mode = if entry.mode().kind() == EntryKind::BlobExecutable {
                    0o755
                } else {
                    0o644
                };
                let blob = object()?;
                writer.file(&raw, &path, mode, &mut &blob.data[..])?;
            }
            EntryKind::Link => {
                let blob = object()?;
                writer.symlink(&raw, &path, &blob.data)?;
            }
            // Submodules are other repositories: not part of this source.
            EntryKind::Commit => {}
        }
    }
    Ok(())
}

/// Without the engine feature (the fuzz targets) there is no git client.
#[cfg(not(feature = "engine"))]
pub(crate) fn fetch(
    source: &GitSource,
    _work: &Path,
    _dest: &Dir,
    _limits: &SourceLimits,
) -> Result<(AppStats, String), SourceError> {
    Err(git_error(source, "built without git support"))
}

#[cfg(test)]
mod tests {
    use super::GitSource;

    #[test]
    fn urls_and_refs_parse() {
        assert_eq!(
            GitSource::parse("git+https://example.com/a/b.git#v1.2"),
            Some(GitSource {
                url: "https://example.com/a/b.git".into(),
                reference: Some("v1.2".into())
            })
        );
        assert_eq!(
            GitSource::parse("git://127.0.0.1:9418/repo.git"),
            Some(GitSource {
                url: "git://127.0.0.1:9418/repo.git".into(),
                reference: None
            })
        );
        assert_eq!(GitSource::parse("https://example.com/x.tgz"), None);
        let sha = GitSource::parse(&format!("git+file:///tmp/r#{}", "a".repeat(40))).unwrap();
        assert!(sha.reference_is_commit());
    }
}
