//! Heroku's list pagination: `Range: FIELD [START]..[END][; max=N[, order=asc|desc]]`.
//!
//! Separators `;` and `,` are interchangeable, spaces optional, options in any order; `]START..`
//! makes the start exclusive (that is what `Next-Range` sends back).

/// Default and largest page sizes.
pub const DEFAULT_MAX: usize = 200;
pub const LIMIT_MAX: usize = 1000;

/// A parsed `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub field: String,
    pub start: Option<String>,
    pub start_exclusive: bool,
    pub end: Option<String>,
    pub max: usize,
    pub descending: bool,
}

/// Why a `Range` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RangeError(pub String);

impl Range {
    /// The range a list uses when the request has none.
    pub fn default_for(field: &str) -> Range {
        Range {
            field: field.to_string(),
            start: None,
            start_exclusive: false,
            end: None,
            max: DEFAULT_MAX,
            descending: false,
        }
    }

    /// Parses a header against the fields this list can sort by (the first is the default).
    pub fn parse(header: Option<&str>, fields: &[&str]) -> Result<Range, RangeError> {
        let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(Range::default_for(fields[0]));
        };
        let bad = |why: &str| RangeError(format!("Invalid Range header {header:?}: {why}"));
        let (field, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        let field = field.trim_end_matches([';', ',']);
        if !fields.contains(&field) {
            return Err(RangeError(format!(
                "Invalid Range header {header:?}: cannot sort by {field:?}; use one of {}",
                fields.join(", ")
            )));
        }
        let mut range = Range::default_for(field);
        let mut parts = rest
            .split([';', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let mut spec = None;
        if let Some(first) = parts.clone().next()
            && !first.contains('=')
        {
            spec = Some(first);
            parts.next();
        }
        if let Some(spec) = spec {
            let (start, end) = spec
                .split_once("..")
                .ok_or_else(|| bad("expected START..END"))?;
            let (start, exclusive) = match start.strip_prefix(']') {
                Some(s) => (s, true),
                None => (start, false),
            };
            range.start = (!start.trim().is_empty()).then(|| start.trim().to_string());
            range.start_exclusive = exclusive;
            range.end = (!end.trim().is_empty()).then(|| end.trim().to_string());
        }
        for option in parts {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| bad("expected key=value"))?;
            match key.trim() {
                "max" => {
                    let max: usize = value
                        .trim()
                        .parse()
                        .map_err(|_| bad("max is not a number"))?;
                    if max == 0 || max > LIMIT_MAX {
                        return Err(bad(&format!("max must be 1 to {LIMIT_MAX}")));
                    }
                    range.max = max;
                }
                "order" => {
                    range.descending = match value.trim() {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(bad("order must be asc or desc")),
                    }
                }
                _ => return Err(bad("unknown option")),
            }
        }
        Ok(range)
    }

    /// Applies the range to items sorted ascending by the field; `key` gives an item's value,
    /// compared as numbers when both parse as integers. Returns the page and the `Next-Range`.
    pub fn apply<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        // Integers before other values, so the order is total: comparing numbers as numbers
        // and the rest as text, mixed, is not transitive ("2" < "10" < "10x" < "2"), and the
        // standard sort panics on such an order (found by the fuzzer).
        let cmp = |a: &str, b: &str| match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        };
        items.sort_by(|a, b| cmp(&key(a), &key(b)));
        if self.descending {
            items.reverse();
        }
        let within = |v: &str| {
            let after_start = match &self.start {
                None => true,
                Some(s) => {
                    let o = cmp(v, s);
                    let o = if self.descending { o.reverse() } else { o };
                    if self.start_exclusive {
                        o.is_gt()
                    } else {
                        o.is_ge()
                    }
                }
            };
            let before_end = match &self.end {
                None => true,
                Some(e) => {
                    let o = cmp(v, e);
                    let o = if self.descending { o.reverse() } else { o };
                    o.is_le()
                }
            };
            after_start && before_end
        };
        let mut page: Vec<T> = items.into_iter().filter(|i| within(&key(i))).collect();
        let next = (page.len() > self.max).then(|| {
            let last = key(&page[self.max - 1]);
            format!(
                "{} ]{}..; max={}, order={}",
                self.field,
                last,
                self.max,
                if self.descending { "desc" } else { "asc" }
            )
        });
        page.truncate(self.max);
        (page, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_clients_send() {
        let r = Range::parse(
            Some("created_at ..; max=15, order=desc"),
            &["id", "created_at"],
        )
        .unwrap();
        assert_eq!(
            (r.field.as_str(), r.max, r.descending),
            ("created_at", 15, true)
        );
        let r = Range::parse(Some("version ..; order=desc,max=1"), &["id", "version"]).unwrap();
        assert_eq!((r.max, r.descending), (1, true));
        let r = Range::parse(Some("id ]abc..; max=2"), &["id"]).unwrap();
        assert_eq!((r.start.as_deref(), r.start_exclusive), (Some("abc"), true));
        let r = Range::parse(Some("name"), &["id", "name"]).unwrap();
        assert_eq!((r.field.as_str(), r.max), ("name", DEFAULT_MAX));
        assert_eq!(
            Range::parse(Some(""), &["id"]).unwrap(),
            Range::default_for("id")
        );
        assert!(Range::parse(Some("bogus .."), &["id"]).is_err());
        assert!(Range::parse(Some("id ..; max=0"), &["id"]).is_err());
        assert!(Range::parse(Some("id ..; max=5000"), &["id"]).is_err());
    }

    #[test]
    fn mixed_numeric_and_text_keys_sort_without_panicking() {
        // Numbers-as-numbers mixed with text-as-text is not a total order; the sort panicked.
        let keys: Vec<String> = ["10", "2", "10x", "a", "-1", "2b", "9", "10", "b"]
            .iter()
            .cycle()
            .take(60)
            .map(|s| s.to_string())
            .collect();
        let r = Range::parse(None, &["id"]).unwrap();
        let (page, _) = r.apply(keys, |k| k.clone());
        let firsts: Vec<&str> = page.iter().map(String::as_str).take(7).collect();
        assert_eq!(firsts, ["-1"; 7]);
        assert_eq!(page.last().unwrap(), "b");
        let numbers_end = page.iter().position(|k| k.parse::<i64>().is_err()).unwrap();
        assert!(
            page[numbers_end..]
                .iter()
                .all(|k| k.parse::<i64>().is_err())
        );
    }

    #[test]
    fn pages_follow_next_range() {
        let items: Vec<i64> = (1..=5).collect();
        let r = Range::parse(Some("version ..; max=2"), &["version"]).unwrap();
        let (page, next) = r.apply(items.clone(), |v| v.to_string());
        assert_eq!(page, vec![1, 2]);
        let next = next.unwrap();
        assert_eq!(next, "version ]2..; max=2, order=asc");
        let r = Range::parse(Some(&next), &["version"]).unwrap();
        let (page, _) = r.apply(items.clone(), |v| v.to_string());
        assert_eq!(page, vec![3, 4]);
        let r = Range::parse(Some("version ..; max=2, order=desc"), &["version"]).unwrap();
        let (page, next) = r.apply(items.clone(), |v| v.to_string());
        assert_eq!(page, vec![5, 4]);
        let r = Range::parse(Some(&next.unwrap()), &["version"]).unwrap();
        assert_eq!(r.apply(items, |v| v.to_string()).0, vec![3, 2]);
    }
}
