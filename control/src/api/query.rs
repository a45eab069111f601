//! Splitting a request target into its path and decoded query pairs
//! (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte).
//! Never panics: a bad escape or non-UTF-8 result is an error for a 400.

/// A request target, split and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The path, not decoded (our routes are plain ASCII).
    pub path: String,
    /// Decoded `(key, value)` pairs in request order.
    pub query: Vec<(String, String)>,
}

impl Target {
    /// Splits `url` (`/path?k=v&...`), decoding the query.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url, ""),
        };
        let mut pairs = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Target { path: path.to_owned(), query: pairs })
    }

    /// The value of `key`; an error if it is given more than once.
    pub fn get(&self, key: &str) -> Result<Option<&str>, String> {
        let mut found = self.query.iter().filter(|(k, _)| k == key);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(format!("query parameter {key:?} given more than once"));
        }
        Ok(first)
    }

    /// An error naming the first parameter not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.query.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown query parameter {k:?}")),
            None => Ok(()),
        }
    }
}

/// Percent-decodes one query component.
pub fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|&c| (c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(format!("bad percent escape in {s:?}"));
                };
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("query component {s:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_splits_into_path_and_decoded_pairs() {
        let t = Target::parse("/api/v1/peers?endpoint=udp%3A%2F%2F%5B%3A%3A1%5D%3A9651&x=a+b").unwrap();
        assert_eq!(t.path, "/api/v1/peers");
        assert_eq!(t.get("endpoint").unwrap(), Some("udp://[::1]:9651"));
        assert_eq!(t.get("x").unwrap(), Some("a b"));
        assert_eq!(t.get("missing").unwrap(), None);
        assert!(t.only(&["endpoint"]).is_err());
        assert!(t.only(&["endpoint", "x"]).is_ok());
    }

    #[test]
    fn bad_escapes_repeated_keys_and_non_utf8_are_errors_not_panics() {
        for bad in ["/a?x=%", "/a?x=%4", "/a?x=%zz", "/a?x=%ff", "/a?%=1"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse("/a?x=1&x=2").unwrap().get("x").is_err());
        assert_eq!(Target::parse("/a?&&flag").unwrap().query, vec![("flag".to_owned(), String::new())]);
    }
}
