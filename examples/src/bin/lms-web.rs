//! The LMS example as an axum web service, with `/metrics` and a live cache
//! dashboard at `/cache`; or, with `--load`, a load run against it.
//!
//! ```sh
//! cargo run --release -p examples --bin lms-web                       # http://127.0.0.1:3000 (PORT=…), SQLite + in-process cache
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p examples --bin lms-web   # Redis
//! DATABASE_URL=postgres://user:pw@127.0.0.1/db cargo run …            # Postgres (its lms_* tables are recreated)
//! CACHE_DISABLED=1 cargo run …                                        # every page from the database (or --no-cache)
//! CACHE_LOG=1 cargo run …                                             # every cache operation, [Cache] GET …: HIT (0.21ms)
//! cargo run --release -p examples --bin lms-web -- --load             # load run: cache off vs in-process (vs Redis with REDIS_URL)
//! cargo run --release -p examples --bin lms-web -- --load --url http://127.0.0.1:3000 --clients 32 --seconds 10
//! cargo run --release -p examples --bin lms-web -- --load --dashboard-ttl 1 --early-refresh 1,0   # expiry storms
//! ```

use std::time::Duration;

use cache_runtime::Cache;
use examples::lms::{Db, DbKind, Freshness, Lms, Mode, SeedConfig};
use examples::web::load::{self, LoadConfig, LoadReport};
use examples::web::{App, RunningServer, client, telemetry};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
usage: lms-web [--no-cache]
       lms-web --load [--clients N] [--seconds S] [--warmup S] [--url http://127.0.0.1:PORT]
                      [--students N] [--teachers N] [--dashboard-ttl S] [--early-refresh BETA[,BETA...]]

Serves the LMS on 127.0.0.1:$PORT (default 3000). Environment: DATABASE_URL
(default: a generated SQLite file), REDIS_URL (default: in-process cache),
CACHE_DISABLED=1 (pages straight from the database), CACHE_LOG=1.

--load starts the service in this process and drives it with N clients
(default 16) for S seconds (default 5) after a warm-up (default 1 s), once
with the cache off, once with the in-process cache, and once with Redis when
REDIS_URL is set; prints req/s and p50/p99 per page. With --url it drives a
running server instead (loopback addresses only).

--students and --teachers set how many of them the clients visit (default
150 and 50; fewer make hotter pages). --dashboard-ttl sets the TTL of the three dashboards (default 300 s), and
--early-refresh their XFetch beta (default 1; 0 turns early refresh off).
With several betas, each cached run is made once per beta (expiry storms:
--dashboard-ttl 1 --early-refresh 1,0).";

#[derive(Debug)]
struct Args {
    load: bool,
    no_cache: bool,
    url: Option<String>,
    config: LoadConfig,
    dashboard_ttl: Option<Duration>,
    /// One cached run per β (empty: the default policy).
    betas: Vec<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        load: false,
        no_cache: false,
        url: None,
        config: LoadConfig::default(),
        dashboard_ttl: None,
        betas: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let secs = |v: Option<String>, name: &str| -> Result<Duration, String> {
        let v = v.ok_or(format!("{name} needs a value"))?;
        let s: f64 = v.parse().map_err(|_| format!("{name}: not a number: {v}"))?;
        if !(0.0..=600.0).contains(&s) {
            return Err(format!("{name}: 0 to 600 seconds"));
        }
        Ok(Duration::from_secs_f64(s))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--load" => args.load = true,
            "--no-cache" => args.no_cache = true,
            "--url" => args.url = Some(it.next().ok_or("--url needs a value")?),
            "--clients" => {
                let v = it.next().ok_or("--clients needs a value")?;
                args.config.clients = v.parse().map_err(|_| format!("--clients: not a number: {v}"))?;
                if args.config.clients == 0 || args.config.clients > load::MAX_CLIENTS {
                    return Err(format!("--clients: 1 to {}", load::MAX_CLIENTS));
                }
            }
            "--seconds" => args.config.duration = secs(it.next(), "--seconds")?,
            "--warmup" => args.config.warmup = secs(it.next(), "--warmup")?,
            "--students" | "--teachers" => {
                let v = it.next().ok_or(format!("{a} needs a value"))?;
                let n: i64 = v.parse().map_err(|_| format!("{a}: not a number: {v}"))?;
                if !(1..=1000).contains(&n) {
                    return Err(format!("{a}: 1 to 1000"));
                }
                if a == "--students" {
                    args.config.students = n;
                } else {
                    args.config.teachers = n;
                }
            }
            "--dashboard-ttl" => {
                let ttl = secs(it.next(), "--dashboard-ttl")?;
                if ttl < Duration::from_millis(100) {
                    return Err("--dashboard-ttl: at least 0.1 s".into());
                }
                args.dashboard_ttl = Some(ttl);
            }
            "--early-refresh" => {
                let v = it.next().ok_or("--early-refresh needs a value")?;
                for b in v.split(',') {
                    let beta: f64 = b
                        .trim()
                        .parse()
                        .map_err(|_| format!("--early-refresh: not a number: {b}"))?;
                    if !(0.0..=100.0).contains(&beta) || args.betas.len() >= 4 {
                        return Err("--early-refresh: at most 4 betas, each 0 to 100".into());
                    }
                    args.betas.push(beta);
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lms-web: {e}\n");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    telemetry::init_tracing();
    // The recorder first: caches register their zero series when built.
    let _ = telemetry::prometheus();
    if args.load {
        return run_load(args).await;
    }

    let (db, seeded) = Db::from_env(SeedConfig::full()).await?;
    let cache = Cache::builder().namespace("lms-web").env_overrides().build().await?;
    // A fresh database: entries of an earlier run must not outlive it. A
    // Redis that is down now is no reason not to start (the cache skips it
    // until it is back, and the namespace is cleared then by the TTLs).
    if let Err(e) = cache.invalidator().all().await {
        eprintln!("warning: could not clear the cache namespace ({e}); serving anyway");
    }
    let disabled = args.no_cache || std::env::var("CACHE_DISABLED").is_ok_and(|v| v == "1" || v == "true");
    let mode = if disabled { Mode::Uncached } else { Mode::Cached };
    println!("LMS web service: the original's five pages, cached with #[cached]");
    println!("  database: {}", db_name(db.kind()));
    println!(
        "  cache:    {}",
        match (mode, cache.backend().is_redis()) {
            (Mode::Uncached, _) => "off (CACHE_DISABLED): every page from the database".to_owned(),
            (_, true) => format!("Redis (REDIS_URL), namespace `{}`", cache.namespace()),
            (_, false) => format!(
                "in-process (set REDIS_URL=redis://… for Redis), namespace `{}`",
                cache.namespace()
            ),
        }
    );
    println!(
        "  data:     {} teachers, {} students, {} courses, {} enrollments, {} payments",
        seeded.teachers, seeded.students, seeded.courses, seeded.enrollments, seeded.payments
    );
    let port: u16 = match std::env::var("PORT") {
        Ok(p) if !p.trim().is_empty() => p.trim().parse().map_err(|_| format!("PORT: not a port: {p}"))?,
        _ => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("  pages:    /, /student/42/dashboard, /admin/dashboard, … (JSON under /api); /cache; /metrics");
    println!("listening on http://{addr}  (Ctrl-C stops)");
    let app = App::new(Lms::new(db, cache), mode);
    examples::web::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

fn db_name(kind: DbKind) -> &'static str {
    match kind {
        DbKind::Sqlite if std::env::var("DATABASE_URL").is_ok_and(|u| !u.trim().is_empty()) => "SQLite (DATABASE_URL)",
        DbKind::Sqlite => "SQLite (temporary file; set DATABASE_URL=postgres://… for Postgres)",
        DbKind::Postgres => "Postgres (DATABASE_URL)",
    }
}

async fn run_load(args: Args) -> Result<(), BoxError> {
    let c = args.config.bounded();
    println!(
        "load: {} clients, {:.1?} measured per run after {:.1?} of warm-up, pages over students 1..={} and teachers 1..={}",
        c.clients, c.duration, c.warmup, c.students, c.teachers
    );
    if let Some(url) = &args.url {
        let addr = client::loopback_addr(url)?;
        let report = load::drive(addr, url, c).await?;
        load::print_report(&report);
        return Ok(());
    }

    let (db, seeded) = Db::from_env(SeedConfig::full()).await?;
    println!(
        "  database: {}, {} students, {} courses, {} enrollments; service in this process on 127.0.0.1 (client and server share the cores)",
        db_name(db.kind()),
        seeded.students,
        seeded.courses,
        seeded.enrollments
    );
    let defaults = Freshness::default();
    let dashboard_ttl = args.dashboard_ttl.unwrap_or(defaults.dashboard_ttl);
    // One cached run per β; labelled with it only when β was asked for.
    let policies: Vec<(String, Freshness)> = if args.betas.is_empty() {
        vec![(
            String::new(),
            Freshness {
                dashboard_ttl,
                ..defaults
            },
        )]
    } else {
        args.betas
            .iter()
            .map(|&early_refresh| {
                (
                    format!(", β={early_refresh}"),
                    Freshness {
                        dashboard_ttl,
                        early_refresh,
                    },
                )
            })
            .collect()
    };
    if args.dashboard_ttl.is_some() || !args.betas.is_empty() {
        println!("  dashboards: TTL {dashboard_ttl:.1?}, early refresh β per run as labelled");
    }
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    let mut runs: Vec<(String, Mode, Freshness, Option<&str>)> =
        vec![("cache off".to_owned(), Mode::Uncached, defaults, None)];
    for (suffix, freshness) in &policies {
        runs.push((format!("in-process{suffix}"), Mode::Cached, *freshness, None));
    }
    if let Some(url) = &redis_url {
        for (suffix, freshness) in &policies {
            runs.push((format!("Redis{suffix}"), Mode::Cached, *freshness, Some(url.as_str())));
        }
    }
    let mut reports: Vec<LoadReport> = Vec::new();
    for (label, mode, freshness, redis) in runs {
        // Every run starts from an empty cache.
        let cache = match (mode, redis) {
            (Mode::Uncached, _) => Cache::memory(),
            (_, None) => Cache::builder().namespace("lms-web-load").memory().build().await?,
            (_, Some(url)) => {
                let cache = Cache::builder().namespace("lms-web-load").redis(url).build().await?;
                if let Err(e) = cache.invalidator().all().await {
                    eprintln!("warning: could not clear the Redis namespace ({e}); the Redis run may start warm");
                }
                cache
            }
        };
        println!();
        let server = RunningServer::start(App::new(Lms::with_freshness(db.clone(), cache, freshness), mode)).await?;
        let report = load::drive(server.addr, &label, c).await?;
        server.stop().await?;
        load::print_report(&report);
        reports.push(report);
    }
    println!();
    println!("{}", load::markdown_table(&reports));
    println!("{}", load::summary_table(&reports));
    Ok(())
}
