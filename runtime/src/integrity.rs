//! Expected digests of downloads: npm's SRI `integrity` strings and `algo:hex`.

use std::fmt;

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A hash algorithm a digest may name, weakest first (the order SRI's "strongest wins" uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// SHA-1: still in old npm lockfiles; accepted, as npm does.
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

    /// The name used in SRI strings and cache keys.
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
}

/// An expected digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Integrity {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The raw digest bytes.
    pub digest: Vec<u8>,
}

impl Integrity {
    /// Parses `sha512-<base64>` (SRI; several separated by whitespace, the strongest wins; options
    /// after `?` ignored, as the spec says) or `sha256:<hex>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let bad =
            || format!("unreadable digest {text:?}: expected sha512-<base64> or sha256:<hex>");
        let mut best: Option<Integrity> = None;
        for token in text.split_whitespace() {
            let candidate = if let Some((algo, hex)) = token.split_once(':') {
                let algorithm = Algorithm::parse(algo).ok_or_else(bad)?;
                let digest = hex::decode(hex).map_err(|_| bad())?;
                Integrity { algorithm, digest }
            } else if let Some((algo, b64)) = token.split_once('-') {
                let Some(algorithm) = Algorithm::parse(algo) else {
                    // SRI says unknown algorithms are skipped, not fatal.
                    continue;
                };
                let b64 = b64.split('?').next().unwrap_or_default();
                let digest = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| bad())?;
                Integrity { algorithm, digest }
            } else {
                return Err(bad());
            };
            if candidate.digest.len() != candidate.algorithm.len() {
                return Err(bad());
            }
            if best
                .as_ref()
                .is_none_or(|b| candidate.algorithm > b.algorithm)
            {
                best = Some(candidate);
            }
        }
        best.ok_or_else(bad)
    }

    /// A cache key naming this digest: `sha512-<hex>`.
    pub fn key(&self) -> String {
        format!("{}-{}", self.algorithm.name(), hex::encode(&self.digest))
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.digest);
        write!(f, "{}-{b64}", self.algorithm.name())
    }
}

/// Hashes a stream with sha256 (always: it names the body in the cache) and, when one is
/// expected, the expected digest's algorithm.
pub(crate) struct Hasher {
    sha256: Sha256,
    other: Option<Other>,
}

enum Other {
    Sha1(Sha1),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(expected: Option<&Integrity>) -> Self {
        let other = match expected.map(|e| e.algorithm) {
            Some(Algorithm::Sha1) => Some(Other::Sha1(Sha1::new())),
            Some(Algorithm::Sha384) => Some(Other::Sha384(Sha384::new())),
            Some(Algorithm::Sha512) => Some(Other::Sha512(Sha512::new())),
            Some(Algorithm::Sha256) | None => None,
        };
        Hasher {
            sha256: Sha256::new(),
            other,
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        match &mut self.other {
            Some(Other::Sha1(h)) => h.update(bytes),
            Some(Other::Sha384(h)) => h.update(bytes),
            Some(Other::Sha512(h)) => h.update(bytes),
            None => {}
        }
    }

    /// The sha256 (hex) and, for `expected`, the digest actually seen in its algorithm.
    pub(crate) fn finish(self, expected: Option<&Integrity>) -> (String, Option<Integrity>) {
        let sha256 = self.sha256.finalize().to_vec();
        let seen = expected.map(|e| {
            let digest = match self.other {
                Some(Other::Sha1(h)) => h.finalize().to_vec(),
                Some(Other::Sha384(h)) => h.finalize().to_vec(),
                Some(Other::Sha512(h)) => h.finalize().to_vec(),
                None => sha256.clone(),
            };
            Integrity {
                algorithm: e.algorithm,
                digest,
            }
        });
        (hex::encode(sha256), seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sri_and_hex_and_prefers_the_strongest() {
        let body = b"hello";
        let sha512 = Sha512::digest(body);
        let sha1 = Sha1::digest(body);
        use base64::Engine as _;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let sri = format!("sha1-{} sha512-{}?opt md5-xxx", b64(&sha1), b64(&sha512));
        let parsed = Integrity::parse(&sri).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Sha512);
        assert_eq!(parsed.digest, sha512.to_vec());
        let hex =
            Integrity::parse(&format!("sha256:{}", hex::encode(Sha256::digest(body)))).unwrap();
        assert_eq!(hex.algorithm, Algorithm::Sha256);
        assert_eq!(Integrity::parse(&parsed.to_string()).unwrap(), parsed);
    }

    #[test]
    fn refuses_garbage_and_wrong_lengths() {
        for bad in [
            "",
            "sha512",
            "sha512-!!!",
            "sha256:abcd",
            "md5-AAAA",
            "nope",
        ] {
            assert!(Integrity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hasher_reports_what_it_saw() {
        let expected =
            Integrity::parse(&format!("sha512:{}", hex::encode(Sha512::digest(b"x")))).unwrap();
        let mut h = Hasher::new(Some(&expected));
        h.update(b"x");
        let (sha256, seen) = h.finish(Some(&expected));
        assert_eq!(sha256, hex::encode(Sha256::digest(b"x")));
        assert_eq!(seen.unwrap(), expected);
    }
}
