//! npm-style semantic versions and ranges: what `engines.node` and `package.json` dependencies
//! say, and "the highest published version that satisfies it".
//!
//! Follows node-semver: `^`, `~`, x-ranges (`1.x`, `1.2.*`, `1`, `*`, empty), hyphen ranges
//! (`1.2 - 2.3.4`), comparators (`>=1.2.3 <2`), `||` between alternatives. Versions with a
//! prerelease tag (`2.0.0-rc.1`) only satisfy a range that names a prerelease of the same
//! `major.minor.patch`, unless [`Range::satisfies_including_prerelease`] is asked.
//!
//! ```
//! use buildd_sdk::semver::{Range, Version, max_satisfying};
//!
//! let published: Vec<Version> = ["18.20.4", "20.11.1", "20.17.0", "22.9.0"]
//!     .iter().map(|v| v.parse().unwrap()).collect();
//! let range: Range = "^20".parse()?;
//! assert_eq!(max_satisfying(&published, &range).unwrap().to_string(), "20.17.0");
//! # Ok::<(), buildd_sdk::Error>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// One dot-separated part of a prerelease tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// All digits: compared as a number, and lower than any alphanumeric one.
    Numeric(u64),
    /// Anything else: compared as ASCII text.
    Alpha(String),
}

impl Ord for Identifier {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Identifier::Numeric(a), Identifier::Numeric(b)) => a.cmp(b),
            (Identifier::Numeric(_), Identifier::Alpha(_)) => Ordering::Less,
            (Identifier::Alpha(_), Identifier::Numeric(_)) => Ordering::Greater,
            (Identifier::Alpha(a), Identifier::Alpha(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Numeric(n) => write!(f, "{n}"),
            Identifier::Alpha(s) => f.write_str(s),
        }
    }
}

/// A version: `major.minor.patch`, an optional prerelease tag, and build metadata (which does
/// not take part in comparisons).
#[derive(Debug, Clone, Eq)]
pub struct Version {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
    /// Prerelease identifiers (`rc.1` is `[Alpha("rc"), Numeric(1)]`); empty for a release.
    pub pre: Vec<Identifier>,
    /// Build metadata after `+`, kept for display only.
    pub build: String,
}

impl Version {
    /// A release version.
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
            pre: Vec::new(),
            build: String::new(),
        }
    }

    /// Parses a version; a leading `v` or `=` and surrounding spaces are allowed, as npm allows.
    pub fn parse(text: &str) -> crate::Result<Self> {
        let partial = Partial::parse(text)?;
        match partial {
            Partial {
                major: Some(major),
                minor: Some(minor),
                patch: Some(patch),
                pre,
                build,
            } => Ok(Version {
                major,
                minor,
                patch,
                pre,
                build,
            }),
            _ => crate::bail!("{text:?} is not a full version (major.minor.patch)"),
        }
    }

    /// Whether this is a prerelease (`1.0.0-rc.1`).
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    fn with_pre_zero(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            pre: vec![Identifier::Numeric(0)],
            ..Version::new(major, minor, patch)
        }
    }

    fn same_core(&self, other: &Version) -> bool {
        (self.major, self.minor, self.patch) == (other.major, other.minor, other.patch)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            let pre: Vec<String> = self.pre.iter().map(ToString::to_string).collect();
            write!(f, "-{}", pre.join("."))?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Version::parse(s)
    }
}

/// A version with parts possibly missing or wild (`1`, `1.2`, `1.x`, `*`).
#[derive(Debug, Clone)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Vec<Identifier>,
    build: String,
}

impl Partial {
    fn parse(text: &str) -> crate::Result<Self> {
        let original = text;
        let text = text.trim();
        let text = text.strip_prefix('=').unwrap_or(text).trim_start();
        let text = text
            .strip_prefix('v')
            .or_else(|| text.strip_prefix('V'))
            .unwrap_or(text);
        let (text, build) = text.split_once('+').unwrap_or((text, ""));
        let (core, pre) = text.split_once('-').unwrap_or((text, ""));
        let bad = || crate::anyhow!("{original:?} is not a version");
        if core.is_empty() || (text.contains('-') && pre.is_empty()) {
            return Err(bad());
        }
        let mut parts = [None; 3];
        let mut wild = false;
        for (i, part) in core.split('.').enumerate() {
            if i >= 3 {
                return Err(bad());
            }
            if matches!(part, "x" | "X" | "*") {
                wild = true;
                continue;
            }
            if wild || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            // Leading zeros are not valid semver, but npm's loose mode and real packuments
            // contain them rarely enough that reading them as numbers is the kinder choice.
            parts[i] = Some(part.parse::<u64>().map_err(|_| bad())?);
        }
        let pre = if pre.is_empty() {
            Vec::new()
        } else {
            pre.split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        Err(bad())
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        id.parse().map(Identifier::Numeric).map_err(|_| bad())
                    } else {
                        Ok(Identifier::Alpha(id.to_string()))
                    }
                })
                .collect::<crate::Result<_>>()?
        };
        Ok(Partial {
            major: parts[0],
            minor: parts[1],
            patch: parts[2],
            pre,
            build: build.to_string(),
        })
    }

    /// The lowest version the partial covers (`1.2` -> `1.2.0`), with its prerelease.
    fn floor(&self) -> Version {
        Version {
            pre: if self.patch.is_some() {
                self.pre.clone()
            } else {
                Vec::new()
            },
            ..Version::new(
                self.major.unwrap_or(0),
                self.minor.unwrap_or(0),
                self.patch.unwrap_or(0),
            )
        }
    }

    /// The first version above what the partial covers (`1.2` -> `1.3.0-0`); `None` for `*`
    /// or a full version.
    fn ceiling(&self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (Some(major), None, _) => Some(Version::with_pre_zero(major + 1, 0, 0)),
            (Some(major), Some(minor), None) => Some(Version::with_pre_zero(major, minor + 1, 0)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

impl Comparator {
    fn new(op: Op, version: Version) -> Self {
        Comparator { op, version }
    }

    fn test(&self, v: &Version) -> bool {
        let ord = v.cmp(&self.version);
        match self.op {
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Eq => ord == Ordering::Equal,
        }
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "",
        };
        write!(f, "{op}{}", self.version)
    }
}

/// A range: alternatives (`||`), each a set of comparators that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    sets: Vec<Vec<Comparator>>,
    text: String,
}

/// A comparator set that nothing satisfies (`<0.0.0-0`).
fn nothing() -> Vec<Comparator> {
    vec![Comparator::new(Op::Lt, Version::with_pre_zero(0, 0, 0))]
}

const OPERATORS: &[&str] = &[">=", "<=", "~>", ">", "<", "=", "~", "^"];

impl Range {
    /// Parses an npm range. An empty string, `*`, `x` and `latest`-free wildcards mean "any".
    pub fn parse(text: &str) -> crate::Result<Self> {
        let mut sets = Vec::new();
        for alternative in text.split("||") {
            sets.push(
                parse_set(alternative).map_err(|err| {
                    crate::anyhow!("{text:?} is not a valid version range: {err}")
                })?,
            );
        }
        Ok(Range {
            sets,
            text: text.trim().to_string(),
        })
    }

    /// Whether `version` is in the range; prereleases only when the range names one of the same
    /// `major.minor.patch` (npm's default).
    pub fn satisfies(&self, version: &Version) -> bool {
        self.sets.iter().any(|set| {
            set.iter().all(|c| c.test(version))
                && (!version.is_prerelease()
                    || set
                        .iter()
                        .any(|c| c.version.is_prerelease() && c.version.same_core(version)))
        })
    }

    /// Whether `version` is in the range, prereleases judged like releases.
    pub fn satisfies_including_prerelease(&self, version: &Version) -> bool {
        self.sets
            .iter()
            .any(|set| set.iter().all(|c| c.test(version)))
    }

    /// The desugared form, e.g. `^1.2` gives `>=1.2.0 <2.0.0-0`.
    pub fn desugared(&self) -> String {
        let sets: Vec<String> = self
            .sets
            .iter()
            .map(|set| {
                if set.is_empty() {
                    "*".to_string()
                } else {
                    set.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            })
            .collect();
        sets.join(" || ")
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Range {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Range::parse(s)
    }
}

fn parse_set(text: &str) -> crate::Result<Vec<Comparator>> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if let [low, "-", high] = tokens[..] {
        let (low, high) = (Partial::parse(low)?, Partial::parse(high)?);
        let mut set = Vec::new();
        if low.major.is_some() {
            set.push(Comparator::new(Op::Ge, low.floor()));
        }
        match high.ceiling() {
            Some(ceiling) => set.push(Comparator::new(Op::Lt, ceiling)),
            None if high.major.is_some() => set.push(Comparator::new(Op::Le, high.floor())),
            None => {}
        }
        return Ok(set);
    }
    // Join a lone operator with the version after it: `>= 1.2.3` is `>=1.2.3`.
    let mut joined: Vec<String> = Vec::new();
    let mut pending: Option<&str> = None;
    for token in tokens {
        if OPERATORS.contains(&token) {
            if pending.is_some() {
                crate::bail!("two operators in a row");
            }
            pending = Some(token);
        } else {
            joined.push(format!("{}{token}", pending.take().unwrap_or("")));
        }
    }
    if let Some(op) = pending {
        crate::bail!("{op:?} is not followed by a version");
    }
    let mut set = Vec::new();
    for token in &joined {
        set.extend(comparators(token)?);
    }
    Ok(set)
}

/// Desugars one comparator token (`^1.2`, `>=1`, `1.x`) into plain comparators.
fn comparators(token: &str) -> crate::Result<Vec<Comparator>> {
    let op = OPERATORS
        .iter()
        .find(|op| token.starts_with(**op))
        .copied()
        .unwrap_or("");
    let p = Partial::parse(&token[op.len()..])?;
    let full = p.patch.is_some();
    let floor = p.floor();
    let ge = |v: Version| Comparator::new(Op::Ge, v);
    let lt = |v: Version| Comparator::new(Op::Lt, v);
    let Some(major) = p.major else {
        // `*`, `>=*`, `<=*` are anything; `<*` and `>*` are nothing.
        return Ok(if matches!(op, "<" | ">") {
            nothing()
        } else {
            Vec::new()
        });
    };
    Ok(match op {
        "" | "=" if full => vec![Comparator::new(Op::Eq, floor)],
        "" | "=" => vec![ge(floor), lt(p.ceiling().expect("a partial has a ceiling"))],
        ">=" => vec![ge(floor)],
        "<" => vec![lt(if full {
            floor
        } else {
            Version::with_pre_zero(floor.major, floor.minor, floor.patch)
        })],
        ">" if full => vec![Comparator::new(Op::Gt, floor)],
        ">" => vec![ge(p.ceiling().expect("a partial has a ceiling").release())],
        "<=" if full => vec![Comparator::new(Op::Le, floor)],
        "<=" => vec![lt(p.ceiling().expect("a partial has a ceiling"))],
        "~" | "~>" => {
            let ceiling = match p.minor {
                None => Version::with_pre_zero(major + 1, 0, 0),
                Some(minor) => Version::with_pre_zero(major, minor + 1, 0),
            };
            vec![ge(floor), lt(ceiling)]
        }
        "^" => {
            let ceiling = match (major, p.minor, p.patch) {
                (0, None, _) => Version::with_pre_zero(1, 0, 0),
                (0, Some(0), Some(patch)) => Version::with_pre_zero(0, 0, patch + 1),
                (0, Some(minor), _) => Version::with_pre_zero(0, minor + 1, 0),
                (major, _, _) => Version::with_pre_zero(major + 1, 0, 0),
            };
            vec![ge(floor), lt(ceiling)]
        }
        _ => unreachable!("every operator is handled"),
    })
}

impl Version {
    fn release(mut self) -> Version {
        self.pre.clear();
        self
    }
}

/// The highest of `versions` in `range` (prereleases excluded unless the range names one).
pub fn max_satisfying<'a>(
    versions: impl IntoIterator<Item = &'a Version>,
    range: &Range,
) -> Option<&'a Version> {
    versions.into_iter().filter(|v| range.satisfies(v)).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn sat(range: &str, version: &str) -> bool {
        Range::parse(range).unwrap().satisfies(&v(version))
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(v("v1.2.3").to_string(), "1.2.3");
        assert_eq!(v("=1.2.3-rc.1+build.5").to_string(), "1.2.3-rc.1+build.5");
        let mut list = [
            v("1.0.0"),
            v("1.0.0-rc.1"),
            v("1.0.0-beta.11"),
            v("1.0.0-beta.2"),
            v("1.0.0-beta"),
            v("1.0.0-alpha.1"),
            v("1.0.0-alpha"),
            v("0.9.10"),
        ];
        list.sort();
        let sorted: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(
            sorted,
            [
                "0.9.10",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0"
            ]
        );
        assert_eq!(v("1.2.3+a"), v("1.2.3+b"));
        for bad in ["1.2", "1.2.3.4", "a.b.c", "1.2.3-", "1..3", ""] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn desugaring_matches_node_semver() {
        let cases = [
            ("^1.2.3", ">=1.2.3 <2.0.0-0"),
            ("^0.2.3", ">=0.2.3 <0.3.0-0"),
            ("^0.0.3", ">=0.0.3 <0.0.4-0"),
            ("^1.2.x", ">=1.2.0 <2.0.0-0"),
            ("^0.0.x", ">=0.0.0 <0.1.0-0"),
            ("^0.x", ">=0.0.0 <1.0.0-0"),
            ("^20", ">=20.0.0 <21.0.0-0"),
            ("~1.2.3", ">=1.2.3 <1.3.0-0"),
            ("~1.2", ">=1.2.0 <1.3.0-0"),
            ("~1", ">=1.0.0 <2.0.0-0"),
            ("1.x", ">=1.0.0 <2.0.0-0"),
            ("1.2.*", ">=1.2.0 <1.3.0-0"),
            ("*", "*"),
            ("", "*"),
            ("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4"),
            ("1.2 - 2.3.4", ">=1.2.0 <=2.3.4"),
            ("1.2.3 - 2.3", ">=1.2.3 <2.4.0-0"),
            ("1.2.3 - 2", ">=1.2.3 <3.0.0-0"),
            (">1.2", ">=1.3.0"),
            (">1", ">=2.0.0"),
            ("<1.2", "<1.2.0-0"),
            ("<=1.2", "<1.3.0-0"),
            (">= 18.0.0 < 21", ">=18.0.0 <21.0.0-0"),
            ("18 || 20", ">=18.0.0 <19.0.0-0 || >=20.0.0 <21.0.0-0"),
        ];
        for (range, expected) in cases {
            assert_eq!(
                Range::parse(range).unwrap().desugared(),
                expected,
                "{range}"
            );
        }
    }

    #[test]
    fn satisfaction_and_prereleases() {
        assert!(sat("^20", "20.17.0"));
        assert!(!sat("^20", "21.0.0"));
        assert!(!sat("^20", "21.0.0-rc.1"));
        assert!(
            !sat("^20", "20.18.0-rc.1"),
            "prereleases excluded by default"
        );
        assert!(
            sat(">=1.2.3-beta.1 <2", "1.2.3-beta.4"),
            "same tuple prerelease"
        );
        assert!(!sat(">=1.2.3-beta.1 <2", "1.2.4-beta.4"));
        assert!(
            Range::parse("^20")
                .unwrap()
                .satisfies_including_prerelease(&v("20.18.0-rc.1"))
        );
        assert!(sat("18.x || >=22", "22.1.0"));
        assert!(sat("18.x || >=22", "18.0.0"));
        assert!(!sat("18.x || >=22", "20.0.0"));
        assert!(sat("1.2.3", "1.2.3") && sat("=v1.2.3", "1.2.3") && !sat("1.2.3", "1.2.4"));
        assert!(!sat("<*", "1.0.0") && !sat(">*", "1.0.0") && sat(">=*", "1.0.0"));
    }

    #[test]
    fn max_satisfying_picks_the_highest_match() {
        let published: Vec<Version> = ["18.20.4", "20.9.0", "20.17.0", "20.18.0-rc.1", "22.9.0"]
            .iter()
            .map(|s| v(s))
            .collect();
        let max = |r: &str| {
            max_satisfying(&published, &Range::parse(r).unwrap()).map(ToString::to_string)
        };
        assert_eq!(max("^20").as_deref(), Some("20.17.0"));
        assert_eq!(max("20.x || 18").as_deref(), Some("20.17.0"));
        assert_eq!(max(">=18 <20").as_deref(), Some("18.20.4"));
        assert_eq!(max("*").as_deref(), Some("22.9.0"));
        assert_eq!(max("^16"), None);
    }

    #[test]
    fn bad_ranges_are_errors() {
        for bad in [">= ", "^a.b", "1.2.3.4", ">= >= 1", "1.x.3"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }
}
