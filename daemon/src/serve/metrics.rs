//! Prometheus text-format metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the build duration histogram's buckets.
const BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Counters the daemon keeps in memory (build counts by status come from the database).
#[derive(Default)]
pub struct Metrics {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    durations: Mutex<Histogram>,
    /// Successful claims and the time their queries took, in microseconds.
    claims: AtomicU64,
    claim_micros: AtomicU64,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Metrics {
    /// Bytes received in uploads.
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes sent in downloads.
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// A finished build's duration, from start to final status.
    pub fn build_duration(&self, seconds: f64) {
        let mut h = self.durations.lock().unwrap();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// A successful claim's query time.
    pub fn claim(&self, seconds: f64) {
        self.claims.fetch_add(1, Ordering::Relaxed);
        self.claim_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, builds: &[(String, i64)], queued: i64, running: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP buildd_builds Builds by status.\n# TYPE buildd_builds gauge\n");
        for status in ["pending", "succeeded", "failed"] {
            let n = builds
                .iter()
                .find(|(s, _)| s == status)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            out.push_str(&format!("buildd_builds{{status=\"{status}\"}} {n}\n"));
        }
        out.push_str("# HELP buildd_queue_depth Pending builds no node has claimed yet.\n# TYPE buildd_queue_depth gauge\n");
        out.push_str(&format!("buildd_queue_depth {queued}\n"));
        out.push_str(&format!(
            "# HELP buildd_claim_seconds Time to claim a pending build from the database.\n\
             # TYPE buildd_claim_seconds summary\nbuildd_claim_seconds_sum {}\nbuildd_claim_seconds_count {}\n",
            self.claim_micros.load(Ordering::Relaxed) as f64 / 1e6,
            self.claims.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP buildd_builds_running Builds running on this node now.\n# TYPE buildd_builds_running gauge\n");
        out.push_str(&format!("buildd_builds_running {running}\n"));
        out.push_str("# HELP buildd_build_duration_seconds Build duration.\n# TYPE buildd_build_duration_seconds histogram\n");
        let h = self.durations.lock().unwrap();
        for (i, bound) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "buildd_build_duration_seconds_bucket{{le=\"{bound}\"}} {}\n",
                h.counts[i]
            ));
        }
        out.push_str(&format!(
            "buildd_build_duration_seconds_bucket{{le=\"+Inf\"}} {}\n",
            h.count
        ));
        out.push_str(&format!(
            "buildd_build_duration_seconds_sum {}\nbuildd_build_duration_seconds_count {}\n",
            h.sum, h.count
        ));
        out.push_str(
            "# HELP buildd_bytes_in_total Bytes uploaded.\n# TYPE buildd_bytes_in_total counter\n",
        );
        out.push_str(&format!(
            "buildd_bytes_in_total {}\n",
            self.bytes_in.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP buildd_bytes_out_total Bytes downloaded.\n# TYPE buildd_bytes_out_total counter\n");
        out.push_str(&format!(
            "buildd_bytes_out_total {}\n",
            self.bytes_out.load(Ordering::Relaxed)
        ));
        out
    }
}
