//! The load driver behind `lms-web --load`: N concurrent HTTP clients, each
//! on its own keep-alive connection, request the five pages (random
//! students and teachers from fixed ranges, a seeded generator) for a fixed
//! time after a warm-up, and the driver reports requests/s and p50/p99
//! latency per page, plus the cache's hit rate over the measured window
//! (read from `/api/cache`). Loopback servers only; clients, duration and
//! requests are bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::{Client, ClientError};
use super::dashboard::CacheReport;

/// The five pages, in the original's order.
pub const PAGES: [&str; 5] = [
    "teacher courses",
    "admin dashboard",
    "student dashboard",
    "teacher dashboard",
    "student courses",
];

/// At most this many clients.
pub const MAX_CLIENTS: usize = 256;
/// At most this long per run (warm-up included).
pub const MAX_RUN: Duration = Duration::from_secs(600);
/// At most this many requests per client and run.
pub const MAX_REQUESTS_PER_CLIENT: usize = 2_000_000;

/// How to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadConfig {
    /// Concurrent clients (connections).
    pub clients: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it (fills the cache).
    pub warmup: Duration,
    /// Students `1..=students` are visited.
    pub students: i64,
    /// Teachers `1..=teachers` are visited.
    pub teachers: i64,
    /// Seed of the clients' page choices.
    pub seed: u64,
}

impl Default for LoadConfig {
    /// 16 clients, 5 s after 1 s of warm-up, the `lms` example's traffic
    /// ranges (students 1..=150, teachers 1..=50).
    fn default() -> Self {
        LoadConfig {
            clients: 16,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            students: 150,
            teachers: 50,
            seed: 0x5EED,
        }
    }
}

impl LoadConfig {
    /// The config with its numbers clamped to the driver's bounds.
    pub fn bounded(mut self) -> Self {
        self.clients = self.clients.clamp(1, MAX_CLIENTS);
        self.duration = self.duration.clamp(Duration::from_millis(100), MAX_RUN);
        self.warmup = self.warmup.min(MAX_RUN - self.duration);
        self.students = self.students.max(1);
        self.teachers = self.teachers.max(1);
        self
    }
}

/// The path of page `page` (an index into [`PAGES`]) for a student and a
/// teacher; `json` for the `/api` variant.
pub fn page_path(page: usize, student: i64, teacher: i64, json: bool) -> String {
    let api = if json { "/api" } else { "" };
    match page {
        0 => format!("{api}/teacher/{teacher}/courses"),
        1 => format!("{api}/admin/dashboard"),
        2 => format!("{api}/student/{student}/dashboard"),
        3 => format!("{api}/teacher/{teacher}/dashboard"),
        _ => format!("{api}/student/{student}/courses"),
    }
}

/// One page's numbers over the measured window.
#[derive(Debug, Clone, PartialEq)]
pub struct PageStats {
    /// Its name, from [`PAGES`].
    pub page: &'static str,
    /// Responses with status 2xx.
    pub requests: u64,
    /// Other statuses and failed exchanges.
    pub errors: u64,
    /// `requests / duration`.
    pub rps: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// One run's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// What ran (`cache off`, `in-process`, …).
    pub label: String,
    /// The measured window.
    pub duration: Duration,
    /// Every page together.
    pub total: PageStats,
    /// Per page, in [`PAGES`] order.
    pub pages: Vec<PageStats>,
    /// The cache's hit rate over the measured window (from `/api/cache`).
    pub hit_rate: Option<f64>,
    /// Repository queries that reached the database per second over the
    /// measured window (from `/api/cache`).
    pub db_queries_per_s: Option<f64>,
}

fn stats(page: &'static str, mut micros: Vec<u32>, errors: u64, window: Duration) -> PageStats {
    micros.sort_unstable();
    let q = |q: f64| {
        if micros.is_empty() {
            Duration::ZERO
        } else {
            let i = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1;
            Duration::from_micros(u64::from(micros[i]))
        }
    };
    PageStats {
        page,
        requests: micros.len() as u64,
        errors,
        rps: micros.len() as f64 / window.as_secs_f64(),
        p50: q(0.50),
        p99: q(0.99),
    }
}

/// xorshift64: deterministic page choices per client.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Cache hits, misses and database queries so far.
async fn cache_counts(addr: SocketAddr) -> Option<(u64, u64, u64)> {
    let mut c = Client::new(addr).ok()?;
    let r: CacheReport = c.get("/api/cache").await.ok()?.json().ok()?;
    Some((r.total.hits, r.total.misses, r.db_queries))
}

/// Drives the server at `addr` (loopback only) with `config`'s clients and
/// returns what they measured. Only HTML pages are requested (what a browser
/// asks for).
pub async fn drive(addr: SocketAddr, label: &str, config: LoadConfig) -> Result<LoadReport, ClientError> {
    let config = config.bounded();
    // Fails now, not in every client, for a non-loopback address.
    Client::new(addr)?;
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let before = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        cache_counts(addr).await
    });
    let mut clients = Vec::with_capacity(config.clients);
    for n in 0..config.clients {
        clients.push(tokio::spawn(async move {
            let mut client = Client::new(addr)?;
            let mut rng = config.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut micros: Vec<Vec<u32>> = vec![Vec::new(); PAGES.len()];
            let mut errors = vec![0u64; PAGES.len()];
            for _ in 0..MAX_REQUESTS_PER_CLIENT {
                if Instant::now() >= end {
                    break;
                }
                let page = (next(&mut rng) % PAGES.len() as u64) as usize;
                let student = 1 + (next(&mut rng) % config.students as u64) as i64;
                let teacher = 1 + (next(&mut rng) % config.teachers as u64) as i64;
                let path = page_path(page, student, teacher, false);
                let t = Instant::now();
                let ok = matches!(client.get(&path).await, Ok(r) if (200..300).contains(&r.status));
                let done = Instant::now();
                if t >= measure_from && done <= end {
                    if ok {
                        let us = (done - t).as_micros().min(u128::from(u32::MAX)) as u32;
                        micros[page].push(us);
                    } else {
                        errors[page] += 1;
                    }
                }
            }
            Ok::<_, ClientError>((micros, errors))
        }));
    }
    let mut micros: Vec<Vec<u32>> = vec![Vec::new(); PAGES.len()];
    let mut errors = vec![0u64; PAGES.len()];
    for c in clients {
        let (m, e) = c.await??;
        for (i, v) in m.into_iter().enumerate() {
            micros[i].extend(v);
            errors[i] += e[i];
        }
    }
    let after = cache_counts(addr).await;
    let before = before.await.ok().flatten();
    let hit_rate = match (before, after) {
        (Some((h0, m0, _)), Some((h1, m1, _))) if h1 + m1 > h0 + m0 => {
            Some((h1 - h0) as f64 / ((h1 + m1) - (h0 + m0)) as f64)
        }
        _ => None,
    };
    let window = config.duration;
    let db_queries_per_s = match (before, after) {
        (Some((_, _, q0)), Some((_, _, q1))) => Some(q1.saturating_sub(q0) as f64 / window.as_secs_f64()),
        _ => None,
    };
    let all: Vec<u32> = micros.iter().flatten().copied().collect();
    let total = stats("all pages", all, errors.iter().sum(), window);
    let pages = PAGES
        .iter()
        .zip(micros)
        .zip(errors)
        .map(|((page, m), e)| stats(page, m, e, window))
        .collect();
    Ok(LoadReport {
        label: label.to_owned(),
        duration: window,
        total,
        pages,
        hit_rate,
        db_queries_per_s,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One run as a text table.
pub fn print_report(r: &LoadReport) {
    let hit = r
        .hit_rate
        .map_or_else(String::new, |h| format!(", cache hit rate {:.1}%", h * 100.0));
    let db = r
        .db_queries_per_s
        .map_or_else(String::new, |q| format!(", {q:.1} database queries/s"));
    println!(
        "{}: {} requests in {:.1?}, {:.0} req/s, p50 {} ms, p99 {} ms, {} errors{hit}{db}",
        r.label,
        r.total.requests,
        r.duration,
        r.total.rps,
        ms(r.total.p50),
        ms(r.total.p99),
        r.total.errors
    );
    println!(
        "  {:<20} {:>9} {:>10} {:>10} {:>8}",
        "page", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for p in r.pages.iter().chain([&r.total]) {
        println!(
            "  {:<20} {:>9.0} {:>10} {:>10} {:>8}",
            p.page,
            p.rps,
            ms(p.p50),
            ms(p.p99),
            p.errors
        );
    }
}

/// Several runs side by side, as a Markdown table (what BENCHMARKS.md holds).
pub fn markdown_table(reports: &[LoadReport]) -> String {
    let mut out = String::from("| page |");
    let mut rule = String::from("| --- |");
    for r in reports {
        out.push_str(&format!(" {0} req/s | {0} p50 ms | {0} p99 ms |", r.label));
        rule.push_str(" ---: | ---: | ---: |");
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    let rows = reports.first().map_or(0, |r| r.pages.len());
    for i in 0..=rows {
        let name = if i == rows {
            "all pages"
        } else {
            PAGES.get(i).copied().unwrap_or("?")
        };
        out.push_str(&format!("| {name} |"));
        for r in reports {
            let p = if i == rows { &r.total } else { &r.pages[i] };
            out.push_str(&format!(" {:.0} | {} | {} |", p.rps, ms(p.p50), ms(p.p99)));
        }
        out.push('\n');
    }
    out
}

/// One row per run (every page together), as a Markdown table: requests,
/// latency, hit rate and the load on the database.
pub fn summary_table(reports: &[LoadReport]) -> String {
    let mut out = String::from(
        "| run | req/s | p50 ms | p99 ms | hit rate | database queries/s |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in reports {
        let t = &r.total;
        let hit = r
            .hit_rate
            .map_or_else(|| "—".to_owned(), |h| format!("{:.1} %", h * 100.0));
        let db = r.db_queries_per_s.map_or_else(|| "—".to_owned(), |q| format!("{q:.1}"));
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {hit} | {db} |\n",
            r.label,
            t.rps,
            ms(t.p50),
            ms(t.p99)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_bounded() {
        let c = LoadConfig {
            clients: 100_000,
            duration: Duration::from_secs(100_000),
            warmup: Duration::from_secs(100_000),
            students: 0,
            teachers: -3,
            seed: 1,
        }
        .bounded();
        assert_eq!(c.clients, MAX_CLIENTS);
        assert_eq!(c.duration + c.warmup, MAX_RUN);
        assert_eq!((c.students, c.teachers), (1, 1));
    }

    #[test]
    fn percentiles_of_the_samples() {
        let s = stats("p", (1..=100).rev().collect(), 2, Duration::from_secs(2));
        assert_eq!((s.requests, s.errors), (100, 2));
        assert_eq!(s.rps, 50.0);
        assert_eq!(s.p50, Duration::from_micros(50));
        assert_eq!(s.p99, Duration::from_micros(99));
    }
}
