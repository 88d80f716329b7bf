//! The one reader of sizes and durations, for configs, the environment and the command
//! line alike: `10G`, `512M`, `1.5G`, `4096`; `90s`, `5m`. Units are binary (curtin's
//! `human2bytes`: K = 1024). Values that do not fit are errors, never wrapped or
//! saturated.

use std::time::Duration;

/// Largest size accepted: what a file length (i64) can hold.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// Bytes from curtin's size text: digits with an optional fraction, then an optional
/// unit `B`, `K`, `M`, `G`, `T` (also `KB`/`KiB`, any case).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let idx = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("`{s}` has an unknown size unit (use K, M, G or T)")),
    };
    let bad = || format!("`{s}` is not a size (e.g. 10G, 512M, 4096)");
    let too_big = || format!("`{s}` is too large: sizes go up to {MAX_SIZE} bytes (8 EiB)");
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    // Exact integer arithmetic: no float rounding, and overflow is seen.
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    if !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 18 {
        return Err(bad());
    }
    let scale = 10u128.pow(frac.len() as u32);
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let bytes = whole
        .checked_mul(u128::from(mult))
        .and_then(|w| w.checked_add(frac * u128::from(mult) / scale))
        .ok_or_else(too_big)?;
    if bytes > u128::from(MAX_SIZE) {
        return Err(too_big());
    }
    Ok(bytes as u64)
}

/// MiB of guest memory: a number of MiB, or a size with a unit (`512M`, `2G`), at least
/// 1 MiB.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bytes = if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        t.parse::<u64>()
            .ok()
            .and_then(|m| m.checked_mul(1 << 20))
            .ok_or_else(|| format!("'{s}' MiB is too large"))?
    } else {
        parse_size(t).map_err(|e| {
            if e.contains("too large") {
                e
            } else {
                format!("'{s}' is not a memory size (examples: 512, 512M, 2G)")
            }
        })?
    };
    match bytes >> 20 {
        0 => Err(format!(
            "'{s}' is not a memory size of at least 1 MiB (examples: 512, 512M, 2G)"
        )),
        mib => Ok(mib),
    }
}

/// The longest duration accepted (a year): long enough for any VM run, short enough
/// that a deadline computed from it never overflows `Instant` arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// A duration: seconds, or a number with `ms`, `s`, `m` or `h`; more than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v * mult)
        .ok_or_else(|| format!("'{s}' is not a duration (examples: 30, 90s, 5m)"))?;
    // `Duration::from_secs_f64` panics on what it cannot hold: bound the value first.
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "'{s}' is longer than the longest duration accepted ({} days)",
            MAX_DURATION.as_secs() / 86_400
        ));
    }
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{s}' is not a positive duration (examples: 30, 90s, 5m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("3GB").unwrap(), 3 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4096B").unwrap(), 4096);
        assert_eq!(parse_size("2k").unwrap(), 2048);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("4Q").unwrap_err().contains("unit"));
        assert!(parse_size(".").is_err());
        assert!(parse_size("1.2.3G").is_err());
    }

    #[test]
    fn oversized_sizes_are_refused_not_wrapped() {
        let e = parse_size("99999999T").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(parse_size("99999999999999999999999999999999999999999").is_err());
        assert_eq!(parse_size("8388607T").unwrap(), 8388607 << 40);
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory("512"), Ok(512));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("2G"), Ok(2048));
        assert_eq!(parse_memory("1GiB"), Ok(1024));
        assert!(
            parse_memory("lots")
                .unwrap_err()
                .contains("not a memory size")
        );
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("512K").is_err());
        assert!(parse_memory("99999999999999999999").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        // Huge, infinite and vanishing values are errors, never a panic.
        for bad in ["1e30", "1e30h", "inf", "NaN", "1e-12", "0", "-0"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(parse_duration("1e30").unwrap_err().contains("365 days"));
        assert_eq!(parse_duration("365d").ok(), None);
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
    }
}
