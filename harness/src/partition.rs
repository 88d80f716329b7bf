//! Splitting the selected tests across CI machines: `--partition K/N` keeps the K-th of N
//! parts, on the CI system's own matrix (no scheduler of ours). Every test lands in
//! exactly one part, the same one on every machine and every run given the same selection
//! and durations. Without durations the parts differ by at most one test (sorted names
//! dealt out in turn); with the durations of a previous run (its JUnit files) the longest
//! tests are placed first, each on the part with the least time so far.

use std::collections::BTreeMap;
use std::path::Path;

/// `K/N`: the K-th (1-based) of N parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Partition, String> {
        let bad = || format!("`{s}` is not K/N with 1 <= K <= N (e.g. 2/4)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Seconds per test name, from earlier runs.
pub type Durations = BTreeMap<String, f64>;

/// Which part (0-based) each of `names` goes to, in the order given. Deterministic: it
/// depends on the set of names and the durations only, not on their order.
pub fn assign(names: &[String], count: usize, durations: &Durations) -> Vec<usize> {
    let count = count.max(1);
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    sorted.dedup();
    let known: Vec<f64> = sorted
        .iter()
        .filter_map(|n| durations.get(*n).copied())
        .filter(|d| d.is_finite() && *d >= 0.0)
        .collect();
    let mut part: BTreeMap<&String, usize> = BTreeMap::new();
    if known.is_empty() {
        for (i, n) in sorted.iter().enumerate() {
            part.insert(n, i % count);
        }
    } else {
        // A test never timed costs what a timed one does on average.
        let mean = known.iter().sum::<f64>() / known.len() as f64;
        let cost = |n: &String| {
            durations
                .get(n)
                .copied()
                .filter(|d| d.is_finite() && *d >= 0.0)
                .unwrap_or(mean)
        };
        let mut by_cost = sorted.clone();
        // Longest first; equal ones by name, so the order is total.
        by_cost.sort_by(|a, b| cost(b).total_cmp(&cost(a)).then_with(|| a.cmp(b)));
        let mut load = vec![0.0f64; count];
        for n in by_cost {
            let (best, _) = load
                .iter()
                .enumerate()
                .min_by(|(i, a), (j, b)| a.total_cmp(b).then_with(|| i.cmp(j)))
                .expect("count >= 1");
            load[best] += cost(n);
            part.insert(n, best);
        }
    }
    names.iter().map(|n| part[n]).collect()
}

/// The items of `items` (named by `name`) in partition `p`, in their order.
pub fn keep<T>(
    items: Vec<T>,
    name: impl Fn(&T) -> &str,
    p: Partition,
    durations: &Durations,
) -> Vec<T> {
    let names: Vec<String> = items.iter().map(|t| name(t).to_string()).collect();
    let parts = assign(&names, p.count, durations);
    items
        .into_iter()
        .zip(parts)
        .filter(|(_, k)| *k == p.index - 1)
        .map(|(t, _)| t)
        .collect()
}

/// Why a durations file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DurationsError {
    #[error("{}: {source}", file.display())]
    Read {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not JUnit XML: {msg}", file.display())]
    Parse {
        file: std::path::PathBuf,
        msg: String,
    },
}

/// Test durations from a JUnit file: each `<testcase>` counts for the test its name
/// begins with (`basic`, or `basic / fstab /` for a check), the longest time wins (the
/// test's own testcase carries its whole run). Several files (one per partition) add up.
pub fn durations_from_junit(file: &Path, into: &mut Durations) -> Result<(), DurationsError> {
    let text = std::fs::read_to_string(file).map_err(|source| DurationsError::Read {
        file: file.into(),
        source,
    })?;
    let parse = |msg: String| DurationsError::Parse {
        file: file.into(),
        msg,
    };
    for case in crate::report::junit_testcases(&text).map_err(parse)? {
        let test = case
            .name
            .split(" / ")
            .next()
            .unwrap_or_default()
            .to_string();
        let Some(t) = case.time.filter(|t| t.is_finite() && *t >= 0.0) else {
            continue;
        };
        let e = into.entry(test).or_insert(0.0);
        *e = e.max(t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i:02}")).collect()
    }

    #[test]
    fn parse() {
        assert_eq!(
            "2/4".parse::<Partition>().unwrap(),
            Partition { index: 2, count: 4 }
        );
        for bad in ["0/3", "4/3", "1/0", "x", "1/", "/2", "1/2/3", "-1/2"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    /// For N in 1..=5 the parts of the default set are disjoint, cover it, are the same
    /// whatever the order the tests come in, and differ in size by at most one.
    #[test]
    fn parts_by_count_are_disjoint_cover_and_stable() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests");
        let mut default: Vec<String> = crate::config::discover(&dir)
            .unwrap()
            .iter()
            .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(default.len() >= 3, "{default:?}");
        // A bigger set too, so every N has parts of different sizes to balance.
        let mut sets = [default.clone(), names(23)];
        default.reverse();
        for set in sets.iter_mut() {
            for n in 1..=5 {
                let mut seen: Vec<String> = Vec::new();
                let mut sizes = Vec::new();
                for k in 1..=n {
                    let p = Partition { index: k, count: n };
                    let part = keep(set.clone(), |s| s, p, &Durations::new());
                    // Stable: again, and from the set in another order.
                    assert_eq!(part, keep(set.clone(), |s| s, p, &Durations::new()));
                    let mut rev = set.clone();
                    rev.reverse();
                    let mut other = keep(rev, |s| s, p, &Durations::new());
                    other.reverse();
                    assert_eq!(part, other, "N={n} K={k}: order of input");
                    sizes.push(part.len());
                    seen.extend(part);
                }
                let mut all = seen.clone();
                all.sort();
                all.dedup();
                assert_eq!(all.len(), seen.len(), "N={n}: disjoint");
                let mut want = set.clone();
                want.sort();
                assert_eq!(all, want, "N={n}: covers");
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "N={n}: sizes {sizes:?}");
            }
        }
        let _ = default;
    }

    /// With durations: one long test gets a part of its own, the short ones share the
    /// rest; the slowest part is no slower than the longest test or twice the ideal.
    #[test]
    fn parts_by_duration_are_balanced() {
        let set = names(10);
        let mut d = Durations::new();
        d.insert("t00".into(), 600.0);
        for n in &set[1..] {
            d.insert(n.clone(), 100.0);
        }
        let parts = assign(&set, 3, &d);
        let load = |k: usize| -> f64 {
            set.iter()
                .zip(&parts)
                .filter(|(_, p)| **p == k)
                .map(|(n, _)| d[n])
                .sum()
        };
        let loads: Vec<f64> = (0..3).map(load).collect();
        assert_eq!(loads.iter().sum::<f64>(), 1500.0);
        assert_eq!(loads[parts[0]], 600.0, "the long test alone: {loads:?}");
        let max = loads.iter().cloned().fold(0.0, f64::max);
        assert!(max <= 600.0, "{loads:?}");
        // Stable, and by count (sizes within one) when nothing was timed.
        assert_eq!(parts, assign(&set, 3, &d));
        // Untimed tests count as the mean of the timed ones (500 s here): 8 x 500 + 900
        // + 100 in two parts of 2500 s.
        let mut partial = Durations::new();
        partial.insert("t00".into(), 900.0);
        partial.insert("t01".into(), 100.0);
        let p = assign(&set, 2, &partial);
        let cost = |n: &String| partial.get(n).copied().unwrap_or(500.0);
        let loads: Vec<f64> = (0..2)
            .map(|k| {
                set.iter()
                    .zip(&p)
                    .filter(|(_, q)| **q == k)
                    .map(|(n, _)| cost(n))
                    .sum()
            })
            .collect();
        assert_eq!(loads, vec![2500.0, 2500.0], "{p:?}");
    }

    #[test]
    fn durations_from_our_junit() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.xml");
        std::fs::write(
            &f,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
<testsuite name="vmtest" tests="3" failures="0" errors="0" time="330.5">
  <testcase classname="vmtest.qemu-tcg" name="basic" time="260.250">
    <system-out>x</system-out>
  </testcase>
  <testcase classname="vmtest.qemu-tcg.basic" name="basic / fstab /" time="0.000">
  </testcase>
  <testcase classname="vmtest.qemu-tcg" name="basic_lvm" time="70.25"/>
</testsuite>
</testsuites>
"#,
        )
        .unwrap();
        let mut got = Durations::new();
        durations_from_junit(&f, &mut got).unwrap();
        assert_eq!(got.get("basic"), Some(&260.25));
        assert_eq!(got.get("basic_lvm"), Some(&70.25));
        assert_eq!(got.len(), 2);
        std::fs::write(&f, "<testsuites><testcase name=").unwrap();
        assert!(durations_from_junit(&f, &mut got).is_err());
        assert!(durations_from_junit(&d.path().join("none"), &mut got).is_err());
    }
}
