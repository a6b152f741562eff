//! The benchmark report: one JSON object that every part writes into under its
//! own key, addressed by dotted paths (`per_packet.v4_udp.median_ns`), and a
//! plain-text table for stdout.
//!
//! Keys are stable: scripts compare runs by them. A part only ever adds keys
//! under its own top-level section.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

/// Every part's results, as nested JSON objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub sections: Map<String, Value>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value at a dotted `path`, creating the objects on the way and
    /// replacing whatever was there. Panics if a prefix of `path` already holds
    /// a non-object value or a segment is empty: both are programming errors.
    pub fn insert(&mut self, path: &str, value: impl Into<Value>) {
        let mut segments: Vec<&str> = path.split('.').collect();
        assert!(
            segments.iter().all(|s| !s.is_empty()),
            "bad report path {path:?}"
        );
        let last = segments.pop().unwrap_or_default();
        let mut obj = &mut self.sections;
        for seg in segments {
            let entry = obj
                .entry(seg.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            obj = match entry {
                Value::Object(m) => m,
                other => panic!("report path {path:?}: {seg} already holds {other}"),
            };
        }
        obj.insert(last.to_string(), value.into());
    }

    /// The value at a dotted `path`.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut segments = path.split('.');
        let mut v = self.sections.get(segments.next()?)?;
        for seg in segments {
            v = v.as_object()?.get(seg)?;
        }
        Some(v)
    }

    /// Moves every key of `other` into this report (later wins per leaf).
    pub fn merge(&mut self, other: Report) {
        fn merge_into(dst: &mut Map<String, Value>, src: Map<String, Value>) {
            for (k, v) in src {
                match (dst.get_mut(&k), v) {
                    (Some(Value::Object(d)), Value::Object(s)) => merge_into(d, s),
                    (_, v) => {
                        dst.insert(k, v);
                    }
                }
            }
        }
        merge_into(&mut self.sections, other.sections);
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.sections.clone())
    }

    /// Writes the report as pretty-printed JSON (atomically: a temporary file
    /// next to `path`, then a rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(&self.sections).context("serializing the report")?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }

    /// Reads a report written by [`write`](Self::write).
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        match serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))? {
            Value::Object(sections) => Ok(Self { sections }),
            _ => bail!("{}: not a JSON object", path.display()),
        }
    }

    /// Those of `keys` (dotted paths) that are absent or null.
    pub fn missing<'k>(&self, keys: &[&'k str]) -> Vec<&'k str> {
        keys.iter()
            .filter(|k| self.get(k).is_none_or(Value::is_null))
            .copied()
            .collect()
    }

    /// Every leaf's dotted path, sorted (for listing what a run produced).
    pub fn leaf_paths(&self) -> Vec<String> {
        fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) if !m.is_empty() => {
                    for (k, v) in m {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&p, v, out);
                    }
                }
                _ => out.push(prefix.to_string()),
            }
        }
        let mut out = Vec::new();
        walk("", &self.to_value(), &mut out);
        out.sort();
        out
    }
}

/// `x` rounded to `digits` decimals (how figures are filed).
pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// A plain-text table: the first column left-aligned, the others right-aligned.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells print empty, extra cells are kept).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let ncols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let cell = |r: &Vec<String>, i: usize| r.get(i).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..ncols)
            .map(|i| {
                self.rows
                    .iter()
                    .chain([&self.header])
                    .map(|r| cell(r, i).chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = (0..ncols)
                .map(|i| {
                    let c = cell(r, i);
                    if i == 0 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn insert_and_get_by_dotted_path() {
        let mut r = Report::new();
        r.insert("per_packet.v4_udp.median_ns", 120);
        r.insert("per_packet.v4_udp.p99_ns", 300);
        r.insert("verifier.instructions", 4242);
        assert_eq!(
            r.to_value(),
            json!({
                "per_packet": {"v4_udp": {"median_ns": 120, "p99_ns": 300}},
                "verifier": {"instructions": 4242}
            })
        );
        assert_eq!(r.get("per_packet.v4_udp.p99_ns"), Some(&json!(300)));
        assert_eq!(r.get("per_packet.nope"), None);
        assert_eq!(
            r.leaf_paths(),
            vec![
                "per_packet.v4_udp.median_ns",
                "per_packet.v4_udp.p99_ns",
                "verifier.instructions"
            ]
        );
    }

    #[test]
    fn finds_missing_and_null_keys() {
        let mut r = Report::new();
        r.insert("machine.cpu_model", "x");
        r.insert("machine.cores", 2);
        r.insert("machine.kernel", Value::Null);
        r.insert("e2e.xlb.pps", 1.0);
        let missing = r.missing(&[
            "machine.kernel",
            "machine.cores",
            "e2e.xlb.pps",
            "control.daemon_rss_mib",
        ]);
        assert!(
            missing.contains(&"machine.kernel"),
            "null counts as missing"
        );
        assert!(!missing.contains(&"machine.cores"));
        assert!(!missing.contains(&"e2e.xlb.pps"));
        assert!(missing.contains(&"control.daemon_rss_mib"));
    }

    #[test]
    fn rounds_to_digits() {
        assert_eq!(round(1.23456, 2), 1.23);
        assert_eq!(round(1234.5, 0), 1235.0);
    }

    #[test]
    fn merge_keeps_other_sections() {
        let mut a = Report::new();
        a.insert("live.floor_tx.pps", 1.0);
        let mut b = Report::new();
        b.insert("live.v4_udp.pps", 2.0);
        b.insert("e2e.http.rps", 3.0);
        a.merge(b);
        assert_eq!(a.get("live.floor_tx.pps"), Some(&json!(1.0)));
        assert_eq!(a.get("live.v4_udp.pps"), Some(&json!(2.0)));
        assert_eq!(a.get("e2e.http.rps"), Some(&json!(3.0)));
    }

    #[test]
    fn write_and_read_back() {
        let mut r = Report::new();
        r.insert("machine.kernel", "6.18");
        let path = std::env::temp_dir().join(format!("xlb-report-{}.json", std::process::id()));
        r.write(&path).unwrap();
        let back = Report::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["scenario", "ns"]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "1000".into()]);
        assert_eq!(
            t.render(),
            "scenario    ns\n--------  ----\na            1\nlonger    1000\n"
        );
    }
}
