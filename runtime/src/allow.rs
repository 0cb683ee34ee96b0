//! Which hosts a buildpack may `fetch` from: the operator's grants.
//!
//! A buildpack's manifest (`fetch-hosts` in its info) says what it needs; nothing is granted
//! until the operator says so. A grant is `HOST`, `HOST:PORT` or `*.DOMAIN`, optionally scoped to
//! one buildpack as `ID=HOST`; the host `manifest` grants exactly the hosts the buildpack declares.

use std::fmt;
use std::str::FromStr;

/// One operator grant, e.g. `registry.npmjs.org`, `buildd/nodejs=127.0.0.1:4873`,
/// `acme/ruby=manifest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    /// The buildpack id it applies to; `None` applies to every buildpack.
    pub buildpack: Option<String>,
    /// What it grants.
    pub host: GrantedHost,
}

/// The host part of a [`HostGrant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantedHost {
    /// The hosts the buildpack's manifest declares.
    Manifest,
    /// A host pattern: `name` (any port), `name:port`, or `*.domain` (any subdomain, any port).
    Pattern(String),
}

impl FromStr for HostGrant {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (buildpack, host) = match text.split_once('=') {
            Some((id, host)) if !id.trim().is_empty() => (Some(id.trim().to_string()), host),
            Some(_) => return Err(format!("grant {text:?}: empty buildpack id before '='")),
            None => (None, text),
        };
        let host = host.trim().to_ascii_lowercase();
        if host.is_empty()
            || host.contains('/')
            || host.contains('@')
            || host.contains(char::is_whitespace)
        {
            return Err(format!(
                "grant {text:?}: expected HOST, HOST:PORT, *.DOMAIN or manifest, optionally after BUILDPACK_ID="
            ));
        }
        let host = if host == "manifest" {
            GrantedHost::Manifest
        } else {
            GrantedHost::Pattern(host)
        };
        Ok(HostGrant { buildpack, host })
    }
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.buildpack {
            write!(f, "{id}=")?;
        }
        match &self.host {
            GrantedHost::Manifest => f.write_str("manifest"),
            GrantedHost::Pattern(p) => f.write_str(p),
        }
    }
}

/// The hosts granted to one buildpack in one build.
#[derive(Debug, Clone, Default)]
pub(crate) struct Allowlist {
    patterns: Vec<String>,
}

impl Allowlist {
    /// The patterns `grants` give the buildpack `id` whose manifest declares `manifest`.
    pub(crate) fn for_buildpack(grants: &[HostGrant], id: &str, manifest: &[String]) -> Self {
        let mut patterns = Vec::new();
        for grant in grants {
            if grant.buildpack.as_deref().is_some_and(|g| g != id) {
                continue;
            }
            match &grant.host {
                GrantedHost::Manifest => {
                    patterns.extend(manifest.iter().map(|h| h.trim().to_ascii_lowercase()))
                }
                GrantedHost::Pattern(p) => patterns.push(p.clone()),
            }
        }
        patterns.sort();
        patterns.dedup();
        Allowlist { patterns }
    }

    /// Whether `host` (lowercase, IPv6 in brackets) on `port` is granted.
    pub(crate) fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.patterns.iter().any(|pattern| {
            let (name, want_port) = split_port(pattern);
            if want_port.is_some_and(|p| p != port) {
                return false;
            }
            match name.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == name,
            }
        })
    }

    /// The granted patterns, for error messages.
    pub(crate) fn describe(&self) -> String {
        if self.patterns.is_empty() {
            "none".into()
        } else {
            self.patterns.join(", ")
        }
    }
}

/// `name:port` -> (`name`, Some(port)); `[::1]:80` too; a bare name or IPv6 literal has no port.
fn split_port(pattern: &str) -> (&str, Option<u16>) {
    if let Some(rest) = pattern.strip_prefix('[')
        && let Some((addr, after)) = rest.split_once(']')
    {
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (&pattern[..addr.len() + 2], port);
    }
    match pattern.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (pattern, None),
        },
        _ => (pattern, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> Vec<HostGrant> {
        list.iter().map(|g| g.parse().unwrap()).collect()
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let list = Allowlist::for_buildpack(&[], "a/b", &["registry.npmjs.org".into()]);
        assert!(!list.allows("registry.npmjs.org", 443));
        assert_eq!(list.describe(), "none");
    }

    #[test]
    fn grants_match_host_port_and_wildcards() {
        let list = Allowlist::for_buildpack(
            &grants(&["example.org", "127.0.0.1:4873", "*.cdn.test", "[::1]:8080"]),
            "a/b",
            &[],
        );
        assert!(list.allows("example.org", 443));
        assert!(list.allows("EXAMPLE.org", 80));
        assert!(!list.allows("evil.example.org", 443));
        assert!(list.allows("127.0.0.1", 4873));
        assert!(!list.allows("127.0.0.1", 4874));
        assert!(list.allows("a.cdn.test", 1));
        assert!(!list.allows("cdn.test", 1));
        assert!(list.allows("[::1]", 8080));
    }

    #[test]
    fn scoped_grants_and_manifest() {
        let g = grants(&["buildd/nodejs=manifest", "other/bp=nodejs.org"]);
        let node = Allowlist::for_buildpack(&g, "buildd/nodejs", &["registry.npmjs.org".into()]);
        assert!(node.allows("registry.npmjs.org", 443));
        assert!(!node.allows("nodejs.org", 443));
        let other = Allowlist::for_buildpack(&g, "other/bp", &["registry.npmjs.org".into()]);
        assert!(!other.allows("registry.npmjs.org", 443));
        assert!(other.allows("nodejs.org", 443));
    }

    #[test]
    fn bad_grants_are_refused() {
        for bad in ["", "=x", "http://x/", "a b", "user@host"] {
            assert!(bad.parse::<HostGrant>().is_err(), "{bad}");
        }
        assert_eq!(
            "A/B=Manifest".parse::<HostGrant>().unwrap().to_string(),
            "A/B=manifest"
        );
    }
}
