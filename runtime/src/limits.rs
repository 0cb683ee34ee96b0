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
    /// Size of one buildpack's cache directory, in bytes, checked while it compiles.
    pub cache_size: u64,
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
    /// A download that receives nothing for this long, or less than [`Self::min_rate`] on
    /// average over this long, is abandoned: a server that never answers or trickles bytes
    /// would otherwise hold a build slot until the build's time limit.
    pub stall_timeout: Duration,
    /// The slowest a download may be, in bytes per second, averaged over
    /// [`Self::stall_timeout`].
    pub min_rate: u64,
    /// Which hosts source URLs may reach.
    pub network: NetworkPolicy,
}

/// Which addresses source downloads may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Refuse loopback, private (RFC 1918, ULA), shared, link-local (cloud metadata) and
    /// unspecified addresses, checked on the address each connection (and redirect) really uses.
    pub deny_private: bool,
    /// Addresses allowed despite [`Self::deny_private`] (an internal mirror, say).
    pub allow: Vec<std::net::IpAddr>,
}

impl NetworkPolicy {
    /// Why `ip` may not be reached under this policy: the address class, or `None` if it may.
    pub fn refuses(&self, ip: std::net::IpAddr) -> Option<&'static str> {
        if !self.deny_private || self.allow.contains(&ip) {
            return None;
        }
        address_class(ip)
    }
}

/// The class of a non-public address (`"loopback"`, `"private (RFC 1918)"`, ...); `None` for a
/// public one. IPv4-mapped IPv6 addresses are classed as the IPv4 address they carry.
pub fn address_class(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private (RFC 1918)")
            } else if v4.octets() == [169, 254, 169, 254] {
                Some("link-local (cloud metadata)")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (RFC 6598)")
            } else if v4.is_broadcast() || v4.is_multicast() || a >= 240 {
                Some("broadcast, multicast or reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return address_class(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (ULA)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("broadcast, multicast or reserved")
            } else {
                None
            }
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 512 << 20,
            timeout: Duration::from_secs(15 * 60),
            log_bytes: 16 << 20,
            slug_size: 500 << 20,
            cache_size: 1 << 30,
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
            stall_timeout: Duration::from_secs(30),
            min_rate: 1024,
            network: NetworkPolicy::default(),
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
    /// A buildpack's cache grew past [`Limits::cache_size`]; the cache was emptied.
    #[error(
        "cache limit exceeded: the buildpack's cache grew past {}; it has been emptied",
        human(*.0)
    )]
    Cache(u64),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_classed_and_public_ones_are_not() {
        let class = |s: &str| address_class(s.parse().unwrap());
        assert_eq!(class("127.0.0.1"), Some("loopback"));
        assert_eq!(class("127.3.4.5"), Some("loopback"));
        assert_eq!(class("::1"), Some("loopback"));
        assert_eq!(class("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(class("10.1.2.3"), Some("private (RFC 1918)"));
        assert_eq!(class("172.16.0.1"), Some("private (RFC 1918)"));
        assert_eq!(class("192.168.1.1"), Some("private (RFC 1918)"));
        assert_eq!(class("fd00::1"), Some("private (ULA)"));
        assert_eq!(
            class("169.254.169.254"),
            Some("link-local (cloud metadata)")
        );
        assert_eq!(
            class("::ffff:169.254.169.254"),
            Some("link-local (cloud metadata)")
        );
        assert_eq!(class("169.254.1.1"), Some("link-local"));
        assert_eq!(class("fe80::1"), Some("link-local"));
        assert_eq!(class("0.0.0.0"), Some("unspecified"));
        assert_eq!(class("::"), Some("unspecified"));
        assert_eq!(class("100.64.0.1"), Some("shared (RFC 6598)"));
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "100.128.0.1",
        ] {
            assert_eq!(class(public), None, "{public}");
        }
    }

    #[test]
    fn the_policy_is_permissive_by_default_and_honours_exceptions() {
        let lo = "127.0.0.1".parse().unwrap();
        assert_eq!(NetworkPolicy::default().refuses(lo), None);
        let deny = NetworkPolicy {
            deny_private: true,
            allow: vec![],
        };
        assert_eq!(deny.refuses(lo), Some("loopback"));
        let except = NetworkPolicy {
            deny_private: true,
            allow: vec![lo],
        };
        assert_eq!(except.refuses(lo), None);
        assert_eq!(
            except.refuses("127.0.0.2".parse().unwrap()),
            Some("loopback")
        );
    }
}
