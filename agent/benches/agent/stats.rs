//! What a run measured ([`Run`]): client latencies summarised, the
//! agent's own histograms scraped from `/metrics` before and after
//! ([`Scrape`]), and how the report shows it (cells, ratios, the verdict
//! against the targets).

use std::time::Duration;

use tally_agent_api::client::AgentClient as ApiClient;

pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Debug, Clone)]
pub struct Run {
    pub clients: usize,
    pub sales_per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub batch_mean: f64,
    /// Server side: durable commit alone, p50 / p99 (bucket upper bounds).
    pub commit_p50: Duration,
    pub commit_p99: Duration,
    /// Server side: whole batch (apply + commit), p99.
    pub batch_p99: Duration,
    /// Server side: a sale's arrival at the committer → durable answer.
    pub durable_p50: Duration,
    pub durable_p99: Duration,
    /// CPU time per sale: the agent's, and the load generator's.
    pub agent_cpu: Duration,
    pub client_cpu: Duration,
}

impl Run {
    /// The report's cells from "raw fsyncs/s" to "sales per commit",
    /// against `raw` (rate, p50, p99) measured just before.
    pub fn cells(&self, (rate, _, raw_p99): (f64, Duration, Duration)) -> String {
        format!(
            "{rate:.0} | {} | {:.0} | {:.1}× | {} | {} | {:.1} | {} / {} | {:.1} | {} / {} | {:.1} | {} | {:.1}",
            self.clients,
            self.sales_per_s,
            self.sales_per_s / rate,
            ms(self.p50),
            ms(self.p99),
            self.p99.as_secs_f64() / raw_p99.as_secs_f64(),
            ms(self.durable_p50),
            ms(self.durable_p99),
            self.durable_p99.as_secs_f64() / raw_p99.as_secs_f64(),
            ms(self.commit_p50),
            ms(self.commit_p99),
            self.commit_p99.as_secs_f64() / raw_p99.as_secs_f64(),
            ms(self.batch_p99),
            self.batch_mean
        )
    }
}

/// One level's row, from its latencies and the metrics around it.
pub fn summarise(
    clients: usize,
    mut lat: Vec<Duration>,
    elapsed: f64,
    before: &Scrape,
    after: &Scrape,
    agent_cpu: Duration,
    client_cpu: Duration,
) -> Run {
    let n = u32::try_from(lat.len()).unwrap_or(u32::MAX).max(1);
    lat.sort();
    Run {
        clients,
        sales_per_s: lat.len() as f64 / elapsed,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        batch_mean: (after.batches.1 - before.batches.1)
            / (after.batches.0 - before.batches.0).max(1.0),
        commit_p50: hist_quantile(&before.commit, &after.commit, 0.5),
        commit_p99: hist_quantile(&before.commit, &after.commit, 0.99),
        batch_p99: hist_quantile(&before.batch, &after.batch, 0.99),
        durable_p50: hist_quantile(&before.durable, &after.durable, 0.5),
        durable_p99: hist_quantile(&before.durable, &after.durable, 0.99),
        agent_cpu: agent_cpu / n,
        client_cpu: client_cpu / n,
    }
}

/// The agent's metrics that the report uses, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Committed batches and the commands in them.
    pub batches: (f64, f64),
    /// Cumulative `le` buckets of the durable-commit histogram.
    pub commit: Vec<(f64, f64)>,
    /// Same for the whole batch (apply + commit).
    pub batch: Vec<(f64, f64)>,
    /// Same for a command's arrival at the committer → durable answer.
    pub durable: Vec<(f64, f64)>,
}

pub async fn scrape(client: &ApiClient) -> Scrape {
    let (_, text) = client.get_text("/metrics").await.unwrap();
    parse_metrics(&text)
}

/// The report's metrics out of a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> Scrape {
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let buckets = |name: &str| {
        let prefix = format!("{name}_bucket{{le=\"");
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (le, n) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, n.trim().parse().ok()?))
            })
            .collect::<Vec<(f64, f64)>>()
    };
    Scrape {
        batches: (
            get("tally_agent_batch_size_count "),
            get("tally_agent_batch_size_sum "),
        ),
        commit: buckets("tally_agent_commit_seconds"),
        batch: buckets("tally_agent_batch_seconds"),
        durable: buckets("tally_agent_durable_seconds"),
    }
}

/// Upper bound of the bucket holding quantile `q` of what was observed
/// between two scrapes of a cumulative histogram.
pub fn hist_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Duration {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let b = before
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, n)| *n);
            (le, n - b)
        })
        .collect();
    let total = diff.last().map_or(0.0, |(_, n)| *n);
    let want = total * q;
    let le = diff
        .iter()
        .find(|(_, n)| *n >= want)
        .map_or(f64::INFINITY, |(le, _)| *le);
    Duration::from_secs_f64(if le.is_finite() { le } else { 1.0 })
}

/// How many rounds met the two rate and latency targets, with the ranges
/// of their ratios: committed sales/s ≥ 5 × raw fsyncs/s, and the commit
/// p99 ≤ 3 × the raw fsync p99.
pub fn verdict<'a>(rows: impl Iterator<Item = (&'a Run, (f64, Duration, Duration))>) -> String {
    let (mut n, mut fast, mut short) = (0, 0, 0);
    let (mut rates, mut p99s) = (Vec::new(), Vec::new());
    for (run, (rate, _, raw_p99)) in rows {
        let ratio = run.sales_per_s / rate;
        let p99 = run.commit_p99.as_secs_f64() / raw_p99.as_secs_f64();
        n += 1;
        fast += usize::from(ratio >= 5.0);
        short += usize::from(p99 <= 3.0);
        rates.push(ratio);
        p99s.push(p99);
    }
    let range = |v: &[f64], unit: &str| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.1}–{hi:.1}{unit}")
    };
    format!(
        "sales/s ≥ 5× raw fsyncs/s in {fast} of {n} rounds ({}); commit p99 ≤ 3 raw fsync p99 in {short} of {n} rounds ({} the raw p99)",
        range(&rates, "×"),
        range(&p99s, "×")
    )
}
