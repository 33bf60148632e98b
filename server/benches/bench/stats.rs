//! Percentiles of one run, and the median and spread of a figure over repeated runs: every
//! figure the bench reports is a median of repeats, with its min–max beside it, so a noisy
//! run shows itself instead of passing for a result.

use serde_json::{Value, json};

/// Nearest-rank percentile of an ascending slice (p in 0..=1); 0 for an empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50/p95/p99 and max of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut sample: Vec<f64>) -> Self {
        sample.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&sample, 0.50),
            p95: percentile(&sample, 0.95),
            p99: percentile(&sample, 0.99),
            max: sample.last().copied().unwrap_or(0.0),
        }
    }
}

/// One figure over repeated runs.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// A figure whose repeats differ by more than this fraction of their median is flagged noisy.
const NOISY_SPREAD: f64 = 0.25;

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut values: Vec<f64> = values.into_iter().collect();
        values.sort_by(f64::total_cmp);
        if values.is_empty() {
            return Self {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Self {
            median,
            min: values[0],
            max: values[values.len() - 1],
        }
    }

    pub fn noisy(&self) -> bool {
        self.median.abs() > f64::EPSILON && (self.max - self.min) / self.median.abs() > NOISY_SPREAD
    }

    pub fn json(&self) -> Value {
        json!({
            "median": round(self.median),
            "min": round(self.min),
            "max": round(self.max),
            "noisy": self.noisy(),
        })
    }
}

/// Three significant decimals are plenty for milliseconds and rates.
pub fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A process's peak resident memory (VmHWM) in MiB; `pid` is a number or `self`.
pub fn peak_rss_mib(pid: &str) -> f64 {
    rss_fields(pid).1
}

/// (VmRSS, VmHWM) of a process in MiB, from /proc; zeros where unreadable.
pub fn rss_fields(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| round(kb / 1024.0))
    };
    (field("VmRSS:"), field("VmHWM:"))
}
