//! What the numbers were measured on.

use serde_json::{json, Value};

/// Keys every report files under `machine` (CI checks them).
pub const REQUIRED_KEYS: &[&str] = &["machine.cpu_model", "machine.cores", "machine.kernel"];

/// The machine a benchmark ran on (best effort: unknown fields say so).
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    /// 1-minute load average when the run started: a busy machine skews timings.
    pub load_avg_1m: Option<f64>,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_string()),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".to_string()),
            load_avg_1m: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok()),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "cpu_model": self.cpu_model,
            "cores": self.cores,
            "kernel": self.kernel,
            "load_avg_1m": self.load_avg_1m,
        })
    }
}

/// The first `model name` (x86) or `Hardware`/`CPU part` (arm) of /proc/cpuinfo.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "CPU part"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *key).then(|| v.trim().to_string())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_section_holds_the_required_keys() {
        let mut report = crate::bench::Report::new();
        report.insert("machine", Machine::detect().to_json());
        assert_eq!(report.missing(REQUIRED_KEYS), Vec::<&str>::new());
    }

    #[test]
    fn model_name_from_cpuinfo() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model(""), None);
    }
}
