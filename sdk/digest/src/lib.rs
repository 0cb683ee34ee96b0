//! Checking downloads and files against expected digests.
//!
//! Understands what package managers write: Subresource Integrity strings as in npm's
//! `integrity` (`sha512-<base64>`, several separated by spaces, in which case the strongest
//! algorithm present is the one checked, as npm does), and `algo:<hex>` (`sha256:<hex>`, as in
//! OCI and Docker digests, `SHASUMS256.txt` lines and lockfiles of other ecosystems).
//!
//! ```
//! use buildd_digest::Integrity;
//!
//! let expected = Integrity::parse("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")?;
//! expected.verify(b"hello")?;
//! assert!(expected.verify(b"hellO").is_err());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use sha2::Digest as _;

/// A hash algorithm, weakest first: the order "strongest wins" uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// SHA-1: still found in old npm lockfiles; accepted, as npm does.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512: what npm writes today.
    Sha512,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The algorithm's name as SRI writes it (`sha512`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        Hasher(match self {
            Algorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => State::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum State {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

/// Hashes bytes fed to it in pieces; also an [`std::io::Write`], so `std::io::copy` can feed it.
pub struct Hasher(State);

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            State::Sha1(h) => h.update(bytes),
            State::Sha256(h) => h.update(bytes),
            State::Sha384(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
            State::Sha384(h) => h.finalize().to_vec(),
            State::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One expected hash: an algorithm and the digest bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hash {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The raw digest.
    pub digest: Vec<u8>,
}

impl Hash {
    /// The hash as an SRI string (`sha512-<base64>`).
    pub fn to_sri(&self) -> String {
        format!(
            "{}-{}",
            self.algorithm,
            base64::engine::general_purpose::STANDARD.encode(&self.digest)
        )
    }

    /// The hash as `algo:<hex>`.
    pub fn to_hex(&self) -> String {
        format!("{}:{}", self.algorithm, hex::encode(&self.digest))
    }
}

/// An expected digest: one or more hashes, of which the strongest algorithm's are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    hashes: Vec<Hash>,
}

impl Integrity {
    /// Parses `sha512-<base64>` (SRI; several, space-separated, allowed; `?options` suffixes
    /// ignored as the SRI spec says) or `sha256:<hex>`. Unknown algorithms in an SRI list are
    /// skipped, as browsers and npm do, but at least one known hash must remain.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if let Some((algo, hex_digest)) = text.split_once(':')
            && !text.contains(char::is_whitespace)
        {
            let algorithm = Algorithm::parse(algo)
                .with_context(|| format!("unknown digest algorithm {algo:?} in {text:?}"))?;
            let digest = hex::decode(hex_digest)
                .with_context(|| format!("digest {text:?} is not hex after the colon"))?;
            check_len(algorithm, &digest, text)?;
            return Ok(Integrity {
                hashes: vec![Hash { algorithm, digest }],
            });
        }
        let mut hashes = Vec::new();
        for token in text.split_whitespace() {
            let Some((algo, rest)) = token.split_once('-') else {
                anyhow::bail!("integrity {token:?} is not `algorithm-base64`");
            };
            let Some(algorithm) = Algorithm::parse(algo) else {
                continue;
            };
            let b64 = rest.split_once('?').map_or(rest, |(b64, _)| b64);
            let digest = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .with_context(|| format!("integrity {token:?} is not valid base64"))?;
            check_len(algorithm, &digest, token)?;
            hashes.push(Hash { algorithm, digest });
        }
        if hashes.is_empty() {
            anyhow::bail!("integrity {text:?} has no sha1, sha256, sha384 or sha512 hash");
        }
        Ok(Integrity { hashes })
    }

    /// Every hash given.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The strongest algorithm present: the one [`Integrity::verify`] checks.
    pub fn algorithm(&self) -> Algorithm {
        self.hashes
            .iter()
            .map(|h| h.algorithm)
            .max()
            .expect("an Integrity has at least one hash")
    }

    /// Whether `digest` (computed with [`Integrity::algorithm`]) matches one of its hashes.
    pub fn matches(&self, digest: &[u8]) -> bool {
        let algorithm = self.algorithm();
        self.hashes
            .iter()
            .any(|h| h.algorithm == algorithm && h.digest == digest)
    }

    /// Checks bytes; the error shows the expected and the actual digest.
    pub fn verify(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut hasher = self.algorithm().hasher();
        hasher.update(bytes);
        self.check(hasher.finish())
    }

    /// Checks everything `reader` yields, streaming.
    pub fn verify_reader(&self, mut reader: impl Read) -> anyhow::Result<()> {
        let mut hasher = self.algorithm().hasher();
        std::io::copy(&mut reader, &mut hasher).context("reading the data to verify")?;
        self.check(hasher.finish())
    }

    /// Checks a file's contents; the error names the file.
    pub fn verify_file(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        self.verify_reader(file)
            .with_context(|| format!("verifying {}", path.display()))
    }

    fn check(&self, actual: Vec<u8>) -> anyhow::Result<()> {
        if self.matches(&actual) {
            return Ok(());
        }
        let actual = Hash {
            algorithm: self.algorithm(),
            digest: actual,
        };
        let expected: Vec<String> = self
            .hashes
            .iter()
            .filter(|h| h.algorithm == actual.algorithm)
            .map(Hash::to_sri)
            .collect();
        anyhow::bail!(
            "integrity mismatch: expected {}, got {}",
            expected.join(" or "),
            actual.to_sri()
        )
    }
}

impl std::str::FromStr for Integrity {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Integrity::parse(s)
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sri: Vec<String> = self.hashes.iter().map(Hash::to_sri).collect();
        f.write_str(&sri.join(" "))
    }
}

fn check_len(algorithm: Algorithm, digest: &[u8], text: &str) -> anyhow::Result<()> {
    if digest.len() != algorithm.len() {
        anyhow::bail!(
            "digest {text:?} has {} bytes, {algorithm} has {}",
            digest.len(),
            algorithm.len()
        );
    }
    Ok(())
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The SRI string of `bytes` with `algorithm` (`sha512-<base64>`), as npm writes `integrity`.
pub fn sri(algorithm: Algorithm, bytes: &[u8]) -> String {
    let mut hasher = algorithm.hasher();
    hasher.update(bytes);
    Hash {
        algorithm,
        digest: hasher.finish(),
    }
    .to_sri()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn hex_digests_verify() {
        let i = Integrity::parse(&format!("sha256:{HELLO_SHA256}")).unwrap();
        assert_eq!(i.algorithm(), Algorithm::Sha256);
        i.verify(b"hello").unwrap();
        let err = i.verify(b"world").unwrap_err().to_string();
        assert!(err.contains("integrity mismatch"), "{err}");
        assert!(Integrity::parse("sha256:abcd").is_err(), "too short");
        assert!(Integrity::parse("md5:abcd").is_err());
        assert_eq!(i.hashes()[0].to_hex(), format!("sha256:{HELLO_SHA256}"));
    }

    #[test]
    fn sri_strings_verify_and_the_strongest_wins() {
        let good512 = sri(Algorithm::Sha512, b"hello");
        let good1 = sri(Algorithm::Sha1, b"hello");
        let bad1 = sri(Algorithm::Sha1, b"other");
        Integrity::parse(&good512)
            .unwrap()
            .verify(b"hello")
            .unwrap();
        Integrity::parse(&good1).unwrap().verify(b"hello").unwrap();
        // A wrong weak hash beside a right strong one passes: only the strongest is checked.
        let both = Integrity::parse(&format!("{bad1} {good512}")).unwrap();
        assert_eq!(both.algorithm(), Algorithm::Sha512);
        both.verify(b"hello").unwrap();
        // A right weak hash cannot rescue a wrong strong one.
        let bad512 = sri(Algorithm::Sha512, b"other");
        let mixed = Integrity::parse(&format!("{good1} {bad512}")).unwrap();
        assert!(mixed.verify(b"hello").is_err());
        assert_eq!(Integrity::parse(&good512).unwrap().to_string(), good512);
    }

    #[test]
    fn sri_options_and_unknown_algorithms_are_tolerated() {
        let good = sri(Algorithm::Sha256, b"hello");
        let i = Integrity::parse(&format!("md5-AAAA {good}?foo")).unwrap();
        i.verify(b"hello").unwrap();
        assert!(Integrity::parse("md5-AAAA").is_err());
        assert!(Integrity::parse("sha512-not*base64").is_err());
        assert!(Integrity::parse("nonsense").is_err());
    }

    #[test]
    fn readers_and_files_verify() {
        let i = Integrity::parse(&sri(Algorithm::Sha512, b"hello")).unwrap();
        i.verify_reader(&b"hello"[..]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hellx").unwrap();
        let err = format!("{:#}", i.verify_file(&path).unwrap_err());
        assert!(
            err.contains("verifying") && err.contains("mismatch"),
            "{err}"
        );
        assert_eq!(sha256_hex(b"hello"), HELLO_SHA256);
    }
}
