//! Where and when the numbers were taken: CPU, cores, GPU, OS, engine versions, date.
//!
//! Every output format carries it, so that tables from different machines are never
//! confused. Everything is read from `/proc`, `/etc/os-release` and `nvidia-smi` when
//! present, and degrades to "unknown" elsewhere instead of failing the benchmark.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Where and when the numbers were taken.
#[derive(Serialize, Debug, Clone)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores.
    pub logical_cores: usize,
    /// GPU names from `nvidia-smi`, if any.
    pub gpu: Option<String>,
    /// Operating system.
    pub os: String,
    /// Kernel release.
    pub kernel: Option<String>,
    /// CPU architecture.
    pub arch: String,
    /// ONNX Runtime library version, or why it is unavailable.
    pub onnxruntime: String,
    /// tract version.
    pub tract: String,
    /// hearken version.
    pub hearken: String,
    /// UTC date and time of the run.
    pub date: String,
}

impl Machine {
    /// Reads the machine (ONNX Runtime from `ort_lib` when given).
    pub fn detect(ort_lib: Option<&Path>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = ["model name", "Hardware", "Model", "cpu model"]
            .iter()
            .find_map(|key| {
                cpuinfo.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        Machine {
            cpu,
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            gpu: gpu_names(),
            os,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            arch: std::env::consts::ARCH.to_string(),
            onnxruntime: ort_version(ort_lib),
            tract: env!("HEARKEN_TRACT_VERSION").to_string(),
            hearken: env!("CARGO_PKG_VERSION").to_string(),
            date: utc_now(),
        }
    }

    /// One line for a table header or a chart footer.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} logical cores), GPU: {}, {} {}, ONNX Runtime {}, tract {}, hearken {}, {}",
            self.cpu,
            self.logical_cores,
            self.gpu.as_deref().unwrap_or("none"),
            self.os,
            self.arch,
            self.onnxruntime,
            self.tract,
            self.hearken,
            self.date
        )
    }
}

/// `nvidia-smi`'s GPU names, if that tool exists and answers.
fn gpu_names() -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()?;
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (out.status.success() && !names.is_empty()).then(|| names.join(", "))
}

#[cfg(feature = "ort")]
fn ort_version(ort_lib: Option<&Path>) -> String {
    match crate::engine::ort_info(ort_lib) {
        Ok(info) => info.version,
        Err(e) => format!("unavailable ({e})"),
    }
}

#[cfg(not(feature = "ort"))]
fn ort_version(_: Option<&Path>) -> String {
    "not compiled in".into()
}

/// The current UTC time as ISO 8601 (`2025-01-31T12:00:00Z`).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
// http://howardhinnant.github.io/date_algorithms.html#civil_from_days
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
