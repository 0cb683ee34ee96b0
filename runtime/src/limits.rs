//! The bounds every build runs within.

use std::time::Duration;

/// Bounds on one build. Exceeding any of them fails the build with a message naming the limit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory per buildpack instance, in bytes.
    pub memory: u64,
    /// Wall-clock time for the whole build, from fetching the source to packing the slug.
    pub timeout: Duration,
    /// Bytes of build output the buildpacks may print, in all.
    pub log_bytes: u64,
    /// Size of the compressed slug, in bytes.
    pub slug_size: u64,
    /// Bounds on the source tarball.
    pub source: SourceLimits,
}

/// Bounds on fetching and unpacking a source.
#[derive(Debug, Clone)]
pub struct SourceLimits {
    /// Bytes read from the archive (compressed), or copied from a source directory.
    pub download_bytes: u64,
    /// Bytes after decompression: caps gzip bombs.
    pub unpacked_bytes: u64,
    /// Entries in the archive.
    pub entries: u64,
    /// Length of one entry's path, in bytes.
    pub path_len: usize,
    /// Directory depth of one entry.
    pub depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 512 << 20,
            timeout: Duration::from_secs(15 * 60),
            log_bytes: 16 << 20,
            slug_size: 500 << 20,
            source: SourceLimits::default(),
        }
    }
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            download_bytes: 1 << 30,
            unpacked_bytes: 4 << 30,
            entries: 200_000,
            path_len: 4096,
            depth: 64,
        }
    }
}

/// A limit that a build ran into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// Linear memory of an instance would have grown past [`Limits::memory`].
    #[error("memory limit exceeded: the buildpack tried to use more than {} of memory", human(*.0))]
    Memory(u64),
    /// The build ran longer than [`Limits::timeout`].
    #[error("time limit exceeded: the build ran longer than {}s", .0.as_secs_f64())]
    Time(Duration),
    /// The buildpacks printed more than [`Limits::log_bytes`].
    #[error("output limit exceeded: the build printed more than {} of output", human(*.0))]
    Log(u64),
    /// The compressed slug grew past [`Limits::slug_size`].
    #[error("slug size limit exceeded: the compressed slug is larger than {}", human(*.0))]
    SlugSize(u64),
    /// A table would have grown past its bound.
    #[error("table limit exceeded: the buildpack tried to grow a table past {0} elements")]
    Table(usize),
}

/// Formats a byte count for messages: `512 MiB`, `10 KiB`, `12 bytes`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{b} bytes"),
    }
}
