//! Parsing what a guest sends the HTTP server: the request head and `Range` headers.
//! Pure functions over bytes already read (at most [`MAX_HEAD`] of them), so they can be
//! fuzzed alone.

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 << 10;
/// Most header lines accepted in one head.
pub const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The target without its query string.
    pub path: String,
    /// Names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

/// Why a head was refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request head over {MAX_HEAD} bytes or {MAX_HEADERS} headers")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

impl HeadError {
    pub fn status(&self) -> &'static str {
        match self {
            HeadError::TooLarge => "431 Request Header Fields Too Large",
            HeadError::Malformed(_) => "400 Bad Request",
        }
    }
}

/// Where the head in `buf` ends (the index after its blank line), once it is complete.
/// Accepts CRLF and bare LF line ends.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                // A blank line before any request line is tolerated whitespace only if
                // something came before it; a head cannot be empty.
                if line_start > 0 {
                    return Some(i + 1);
                }
            }
            line_start = i + 1;
        }
    }
    None
}

impl RequestHead {
    /// Parses a complete head (as delimited by [`head_end`]).
    pub fn parse(head: &[u8]) -> Result<RequestHead, HeadError> {
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed("not UTF-8"))?;
        let mut lines = text.lines();
        let mut req = lines
            .next()
            .ok_or(HeadError::Malformed("no request line"))?
            .split_whitespace();
        let (Some(method), Some(target)) = (req.next(), req.next()) else {
            return Err(HeadError::Malformed("no method and target"));
        };
        let version = req.next().unwrap_or("HTTP/1.0");
        if !version.starts_with("HTTP/1.") || req.next().is_some() {
            return Err(HeadError::Malformed("not HTTP/1.x"));
        }
        let mut headers = Vec::new();
        for l in lines.map(|l| l.trim_end_matches('\r')) {
            if l.is_empty() {
                break;
            }
            if headers.len() == MAX_HEADERS {
                return Err(HeadError::TooLarge);
            }
            let (k, v) = l
                .split_once(':')
                .ok_or(HeadError::Malformed("header line without `:`"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        Ok(RequestHead {
            method: method.to_string(),
            path: target.split('?').next().unwrap_or("").to_string(),
            headers,
        })
    }

    /// The value of header `name` (lowercase); `Err` when it is given twice differently.
    pub fn header(&self, name: &str) -> Result<Option<&str>, HeadError> {
        let mut found: Option<&str> = None;
        for (k, v) in &self.headers {
            if k == name {
                match found {
                    Some(prev) if prev != v => {
                        return Err(HeadError::Malformed("conflicting duplicate header"));
                    }
                    _ => found = Some(v),
                }
            }
        }
        Ok(found)
    }

    /// The declared body length (0 without one).
    pub fn content_length(&self) -> Result<u64, HeadError> {
        match self.header("content-length")? {
            None => Ok(0),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
                .parse()
                .map_err(|_| HeadError::Malformed("Content-Length out of range")),
            Some(_) => Err(HeadError::Malformed("Content-Length is not a number")),
        }
    }
}

/// Parses `bytes=A-B`, `bytes=A-`, `bytes=-N` against `len` into an inclusive range.
pub fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multi-range: serve the whole thing instead
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let s: u64 = a.parse().ok()?;
        let e: u64 = if b.is_empty() {
            len.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
        };
        (s, e)
    };
    (start <= end && end < len).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Some((0, 0)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=5-100", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }

    #[test]
    fn heads() {
        let raw = b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nRange:  bytes=1-2 \r\n\r\nBODY";
        let end = head_end(raw).unwrap();
        assert_eq!(&raw[end..], b"BODY");
        let h = RequestHead::parse(&raw[..end]).unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("GET", "/x"));
        assert_eq!(h.header("range").unwrap(), Some("bytes=1-2"));
        assert_eq!(h.content_length().unwrap(), 0);
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\n"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b"\r\n"), None);

        let bad = |s: &str| RequestHead::parse(s.as_bytes()).unwrap_err();
        assert!(matches!(bad("GET\r\n\r\n"), HeadError::Malformed(_)));
        assert!(matches!(
            bad("GET / SPDY/3\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nno colon\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "a: b\r\n".repeat(65));
        assert_eq!(bad(&many), HeadError::TooLarge);
        let cl = |v: &str| {
            RequestHead::parse(format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n").as_bytes())
                .unwrap()
                .content_length()
        };
        assert_eq!(cl("12"), Ok(12));
        assert!(cl("-1").is_err() && cl("1e3").is_err() && cl("99999999999999999999999").is_err());
        let dup = RequestHead::parse(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n",
        )
        .unwrap();
        assert!(dup.content_length().is_err());
    }
}
