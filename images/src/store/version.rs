//! Ordering MAAS-style version serials (`20240101`, `20240101.1`, ...).

use std::cmp::Ordering;

use super::candidate::Candidate;

pub(super) fn sort_newest_first(cands: &mut [Candidate]) {
    cands.sort_by(|a, b| {
        (a.release.as_str(), a.arch.as_str())
            .cmp(&(b.release.as_str(), b.arch.as_str()))
            .then_with(|| compare_versions(&b.version, &a.version))
            // Prefer our own image when a simplestreams one has the same serial.
            .then_with(|| a.origin.tag().cmp(b.origin.tag()).reverse())
    });
}

/// Orders MAAS-style serials (`20240101`, `20240101.1`, `20240101.10`): runs of digits
/// compare as numbers, everything else as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<Result<u128, &str>> {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let digit = bytes[i].is_ascii_digit();
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() == digit {
                i += 1;
            }
            let t = &s[start..i];
            out.push(if digit {
                t.parse::<u128>().map_err(|_| t)
            } else {
                Err(t)
            });
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            (Ok(x), Ok(y)) => x.cmp(y),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(x), Err(y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// The version a build published on `day` (`YYYYMMDD`) gets: `day`, or `day.N` sorting
/// after every version of that day in `existing`, also after pruning removed some (a free but
/// lower name would make the new image look older).
pub(super) fn next_version(day: &str, existing: &[String]) -> String {
    let same_day: Vec<&String> = existing.iter().filter(|v| v.starts_with(day)).collect();
    let mut version = day.to_string();
    let mut n = 0;
    while same_day
        .iter()
        .any(|v| compare_versions(v, &version) != Ordering::Less)
    {
        n += 1;
        version = format!("{day}.{n}");
    }
    version
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let mut v = vec![
            "20240101.10",
            "20240101",
            "20231231",
            "20240101.2",
            "20240102",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            [
                "20231231",
                "20240101",
                "20240101.2",
                "20240101.10",
                "20240102"
            ]
        );
    }

    #[test]
    fn next_version_sorts_after_the_days_versions() {
        let have = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(next_version("20240101", &have(&[])), "20240101");
        assert_eq!(next_version("20240101", &have(&["20231231"])), "20240101");
        assert_eq!(
            next_version("20240101", &have(&["20240101", "20240101.1"])),
            "20240101.2"
        );
        // Only ".2" left after a prune: the next is ".3", never the free "20240101".
        assert_eq!(
            next_version("20240101", &have(&["20240101.2"])),
            "20240101.3"
        );
    }
}
