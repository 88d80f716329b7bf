//! Dates for version serials and index time stamps, from `jiff` (all in UTC).

use jiff::Timestamp;

/// Seconds since the Unix epoch, now.
pub(crate) fn now_secs() -> u64 {
    u64::try_from(Timestamp::now().as_second()).unwrap_or(0)
}

/// The instant `secs` after the epoch; the latest time jiff can represent (year 9999) for
/// anything later.
fn at(secs: u64) -> Timestamp {
    i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `YYYYMMDD` (UTC) of a Unix time.
pub fn utc_date(secs: u64) -> String {
    at(secs).strftime("%Y%m%d").to_string()
}

/// RFC 3339 UTC time stamp of a Unix time (whole seconds).
pub fn utc_timestamp(secs: u64) -> String {
    at(secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "19700101");
        assert_eq!(utc_date(1_709_164_800), "20240229");
        assert_eq!(utc_timestamp(1_709_164_800 + 3_723), "2024-02-29T01:02:03Z");
    }
}
