//! `/cache`: the cache dashboard (hit rate per cached function, latency
//! percentiles per operation, breaker state, a live chart), and
//! `/api/cache`, the JSON it polls every second. One HTML document with a
//! little inline CSS and JS: no library, no CDN, works offline.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::App;
use super::html::{esc, layout};
use super::telemetry::{CacheLatencies, short_function_name};
use crate::lms::Mode;

/// What `/api/cache` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheReport {
    /// The cache's key prefix.
    pub namespace: String,
    /// `redis` or `in-process`.
    pub backend: String,
    /// `false` when the service runs with the cache off (`CACHE_DISABLED=1`).
    pub cache_enabled: bool,
    /// The circuit breaker is open: the backend is being skipped.
    pub degraded: bool,
    /// Times the breaker opened, and closed again.
    pub breaker_opened: u64,
    /// See `breaker_opened`.
    pub breaker_closed: u64,
    /// Seconds since the service started.
    pub uptime_s: f64,
    /// Page requests served (HTML and JSON pages, not the dashboard).
    pub page_views: u64,
    /// Repository queries that reached the database (loader runs, and every
    /// query with the cache off).
    #[serde(default)]
    pub db_queries: u64,
    /// Every call of the cache.
    pub total: Counts,
    /// Per `#[cached]` function, by `Type::method`.
    pub functions: Vec<FunctionRow>,
    /// Latency percentiles per (operation, outcome) of the runtime's events
    /// in this process.
    pub latencies: Vec<LatencyRow>,
    /// The counters once a second, oldest first: the chart.
    pub history: Vec<HistoryPoint>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Seconds since the service started.
    pub t: f64,
    /// Cache hits so far.
    pub hits: u64,
    /// Cache misses so far.
    pub misses: u64,
    /// Page views so far.
    pub page_views: u64,
}

/// Counters of a function or of the whole cache.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Reads answered by the cache (request-scope hits included).
    pub hits: u64,
    /// Of those, reads answered by the request's scope (an earlier call of
    /// the same request), without a backend round trip.
    #[serde(default)]
    pub scope_hits: u64,
    /// Reads that found nothing usable.
    pub misses: u64,
    /// Loader runs.
    pub loads: u64,
    /// Loader runs that failed.
    pub load_errors: u64,
    /// Backend calls that failed or timed out.
    pub backend_errors: u64,
    /// `hits / (hits + misses)`.
    pub hit_rate: f64,
}

impl From<&cache_runtime::FunctionStats> for Counts {
    fn from(f: &cache_runtime::FunctionStats) -> Self {
        Counts {
            hits: f.hits,
            scope_hits: f.scope_hits,
            misses: f.misses,
            loads: f.loads,
            load_errors: f.load_errors,
            backend_errors: f.backend_errors,
            hit_rate: f.hit_rate(),
        }
    }
}

/// One cached function's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRow {
    /// `CourseRepository::course_details`.
    pub function: String,
    /// Its counters.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Latency percentiles of one (operation, outcome), in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    /// `GET`, `LOAD`, `SET`, …
    pub op: String,
    /// `hit`, `miss`, `ok`, …
    pub outcome: String,
    /// Events seen.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// The dashboard's data now.
pub fn report(app: &App) -> CacheReport {
    let cache = &app.lms().cache;
    let stats = cache.stats();
    let ms = |us: u64| us as f64 / 1000.0;
    CacheReport {
        namespace: cache.namespace().to_owned(),
        backend: if cache.backend().is_redis() {
            "redis"
        } else {
            "in-process"
        }
        .to_owned(),
        cache_enabled: app.mode() == Mode::Cached,
        degraded: cache.is_degraded(),
        breaker_opened: stats.breaker_opened,
        breaker_closed: stats.breaker_closed,
        uptime_s: app.uptime().as_secs_f64(),
        page_views: app.page_views(),
        db_queries: app.lms().db.queries(),
        total: Counts::from(&stats.total),
        functions: stats
            .per_function
            .iter()
            .map(|(name, f)| FunctionRow {
                function: short_function_name(name),
                counts: Counts::from(f),
            })
            .collect(),
        latencies: CacheLatencies::global()
            .snapshot()
            .into_iter()
            .map(|s| LatencyRow {
                op: s.op.to_owned(),
                outcome: s.outcome.to_owned(),
                count: s.snapshot.count,
                p50_ms: ms(s.snapshot.quantile(0.50)),
                p90_ms: ms(s.snapshot.quantile(0.90)),
                p99_ms: ms(s.snapshot.quantile(0.99)),
                max_ms: ms(s.snapshot.max),
            })
            .collect(),
        history: app.history(),
    }
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// The rows of the per-function table (the script renders the same shape).
fn function_rows(r: &CacheReport) -> String {
    let mut out = String::new();
    for f in &r.functions {
        let c = &f.counts;
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n hit-rate\" data-value=\"{:.4}\">{}</td><td><div class=\"bar wide\"><span style=\"width:{:.0}%\"></span></div></td></tr>",
            esc(&f.function),
            c.hits,
            c.misses,
            c.loads,
            c.hit_rate,
            pct(c.hit_rate),
            c.hit_rate * 100.0
        );
    }
    if r.functions.is_empty() {
        out.push_str("<tr><td colspan=\"6\">no cached calls yet</td></tr>");
    }
    out
}

fn latency_rows(r: &CacheReport) -> String {
    let mut out = String::new();
    for l in &r.latencies {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{:.3}</td>\
             <td class=\"n\">{:.3}</td><td class=\"n\">{:.3}</td></tr>",
            esc(&l.op),
            esc(&l.outcome),
            l.count,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms
        );
    }
    if r.latencies.is_empty() {
        out.push_str("<tr><td colspan=\"7\">no cache events yet</td></tr>");
    }
    out
}

const DASHBOARD_STYLE: &str = r#"
#chart{width:100%;height:260px;display:block;background:#fff;border:1px solid #e1e4ea;border-radius:8px}
.legend{display:flex;gap:16px;color:#5b6475;font-size:12px;margin:6px 2px}
.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:5px}
#js-errors{color:#8a1c1c;background:#fbe0e0;padding:8px;border-radius:6px;white-space:pre-wrap}
#js-errors:empty{display:none}
"#;

/// Runs first, in its own script, so that even a syntax error of the main
/// script lands in `#js-errors`, where the browser test reads it.
const ERROR_SCRIPT: &str = r#"
window.reportJsError = function (msg) { document.getElementById('js-errors').textContent += msg + '\n'; };
window.onerror = function (msg, src, line, col) { window.reportJsError('error: ' + msg + ' (' + line + ':' + col + ')'); };
window.addEventListener('unhandledrejection', function (e) { window.reportJsError('unhandled rejection: ' + e.reason); });
"#;

const DASHBOARD_SCRIPT: &str = r#"
(function () {
  'use strict';
  var report = window.reportJsError;

  var WINDOW = 60;    // seconds shown
  var points = [];    // {t, hitRate: 0..1 or null (no reads), total: 0..1, views: per second}
  var polls = 0;
  var canvas = document.getElementById('chart');
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function pct(r) { return (r * 100).toFixed(1) + '%'; }
  function set(id, text) { document.getElementById(id).textContent = text; }

  function render(r) {
    set('hit-rate-total', pct(r.total.hit_rate));
    document.getElementById('hit-rate-total').setAttribute('data-value', r.total.hit_rate.toFixed(4));
    set('hits', r.total.hits); set('misses', r.total.misses); set('loads', r.total.loads);
    set('views', r.page_views); set('uptime', Math.round(r.uptime_s) + ' s');
    var b = document.getElementById('breaker');
    b.textContent = r.degraded ? 'open: Redis skipped' : 'closed';
    b.className = 'tag ' + (r.degraded ? 'bad' : 'ok');
    set('breaker-counts', 'opened ' + r.breaker_opened + '×, closed ' + r.breaker_closed + '×');
    var rows = r.functions.map(function (f) {
      return '<tr><td>' + esc(f.function) + '</td><td class="n">' + f.hits + '</td><td class="n">' + f.misses +
        '</td><td class="n">' + f.loads + '</td><td class="n hit-rate" data-value="' + f.hit_rate.toFixed(4) + '">' +
        pct(f.hit_rate) + '</td><td><div class="bar wide"><span style="width:' + (f.hit_rate * 100).toFixed(0) +
        '%"></span></div></td></tr>';
    });
    document.getElementById('functions').innerHTML = rows.length ? rows.join('') :
      '<tr><td colspan="6">no cached calls yet</td></tr>';
    var lat = r.latencies.map(function (l) {
      return '<tr><td>' + esc(l.op) + '</td><td>' + esc(l.outcome) + '</td><td class="n">' + l.count +
        '</td><td class="n">' + l.p50_ms.toFixed(3) + '</td><td class="n">' + l.p90_ms.toFixed(3) +
        '</td><td class="n">' + l.p99_ms.toFixed(3) + '</td><td class="n">' + l.max_ms.toFixed(3) + '</td></tr>';
    });
    document.getElementById('latencies').innerHTML = lat.length ? lat.join('') :
      '<tr><td colspan="7">no cache events yet</td></tr>';
  }

  // Per-second rates from the server's samples, plus the live counters.
  function series(r) {
    var h = r.history.slice();
    h.push({t: r.uptime_s, hits: r.total.hits, misses: r.total.misses, page_views: r.page_views});
    points = [];
    for (var i = 1; i < h.length; i++) {
      var a = h[i - 1], b = h[i], dt = b.t - a.t;
      if (dt < 0.5) continue; // the live point, too close to the last sample
      var dh = b.hits - a.hits, dm = b.misses - a.misses, reads = b.hits + b.misses;
      points.push({
        t: b.t,
        hitRate: dh + dm > 0 ? dh / (dh + dm) : null,
        total: reads > 0 ? b.hits / reads : null,
        views: Math.max(b.page_views - a.page_views, 0) / dt
      });
    }
  }

  function draw() {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    var g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var L = 46, R = 56, T = 14, B = 26, pw = w - L - R, ph = h - T - B;
    var maxViews = 1;
    points.forEach(function (p) { maxViews = Math.max(maxViews, p.views); });
    maxViews = niceCeil(Math.max(maxViews, 4));
    g.font = '11px system-ui, sans-serif'; g.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var y = T + ph - ph * i / 4;
      g.strokeStyle = '#eef0f3'; g.beginPath(); g.moveTo(L, y); g.lineTo(L + pw, y); g.stroke();
      g.fillStyle = '#3f6fd8'; g.textAlign = 'right'; g.fillText((25 * i) + '%', L - 6, y + 4);
      g.fillStyle = '#8a93a3'; g.textAlign = 'left'; g.fillText(fmt(maxViews * i / 4) + '/s', L + pw + 6, y + 4);
    }
    g.fillStyle = '#8a93a3'; g.textAlign = 'center';
    g.fillText('last ' + WINDOW + ' s', L + pw / 2, h - 8);
    var now = points.length ? points[points.length - 1].t : 0;
    var x = function (p) { return L + pw * (1 - Math.min(Math.max(now - p.t, 0), WINDOW) / WINDOW); };
    line(g, x, function (p) { return p.views / maxViews; }, ph, T, '#b6bdca', 1.5, []);
    line(g, x, function (p) { return p.total; }, ph, T, '#3f6fd8', 1.5, [5, 4]);
    line(g, x, function (p) { return p.hitRate; }, ph, T, '#3f6fd8', 2.5, []);
    canvas.setAttribute('data-points', String(points.length));
  }

  function line(g, x, val, ph, T, color, width, dash) {
    g.strokeStyle = color; g.lineWidth = width; g.setLineDash(dash); g.beginPath();
    var open = false;
    points.forEach(function (p) {
      var v = val(p);
      if (v === null || v === undefined) { open = false; return; }
      var y = T + ph - ph * Math.min(Math.max(v, 0), 1);
      if (open) g.lineTo(x(p), y); else g.moveTo(x(p), y);
      open = true;
    });
    g.stroke(); g.setLineDash([]);
    if (dash.length === 0 && width > 2) {
      // Dots too, so that a lone point between gaps is visible.
      g.fillStyle = color;
      points.forEach(function (p) {
        var v = val(p);
        if (v === null || v === undefined) return;
        g.beginPath(); g.arc(x(p), T + ph - ph * Math.min(Math.max(v, 0), 1), 2.5, 0, 2 * Math.PI); g.fill();
      });
    }
  }
  function niceCeil(v) {
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = [1, 2, 5, 10].find(function (k) { return k * p >= v; });
    return m * p;
  }
  function fmt(v) { return v >= 1000 ? (v / 1000).toFixed(1) + 'k' : (v < 10 && v % 1 ? v.toFixed(1) : String(Math.round(v))); }

  function poll() {
    fetch('/api/cache', {cache: 'no-store'})
      .then(function (res) {
        if (!res.ok) throw new Error('GET /api/cache: HTTP ' + res.status);
        return res.json();
      })
      .then(function (r) {
        render(r); series(r); draw();
        polls += 1;
        var el = document.getElementById('polls');
        el.textContent = String(polls); el.setAttribute('data-polls', String(polls));
      })
      .catch(function (e) { report('poll failed: ' + e); });
  }
  window.addEventListener('resize', draw);
  poll();
  setInterval(poll, 1000);
})();
"#;

/// The `/cache` page, rendered with the current numbers (the script then
/// refreshes them every second).
pub fn page(r: &CacheReport) -> String {
    let mut b = format!("<style>{DASHBOARD_STYLE}</style>");
    let _ = write!(
        b,
        "<h1>Cache dashboard</h1><p class=\"sub\">namespace <code>{}</code> · backend {} · cache {} · \
         breaker <span id=\"breaker\" class=\"tag {}\">{}</span> <span id=\"breaker-counts\">opened {}×, closed {}×</span> · \
         up <span id=\"uptime\">{:.0} s</span> · updates <span id=\"polls\" data-polls=\"0\">0</span></p>\
         <pre id=\"js-errors\"></pre><script>{ERROR_SCRIPT}</script>",
        esc(&r.namespace),
        esc(&r.backend),
        if r.cache_enabled { "on" } else { "off (CACHE_DISABLED)" },
        if r.degraded { "bad" } else { "ok" },
        if r.degraded { "open: Redis skipped" } else { "closed" },
        r.breaker_opened,
        r.breaker_closed,
        r.uptime_s
    );
    let _ = write!(
        b,
        "<div class=\"cards\"><div class=\"card\"><div class=\"v\" id=\"hit-rate-total\" data-value=\"{:.4}\">{}</div>\
         <div class=\"l\">hit rate</div></div>\
         <div class=\"card\"><div class=\"v\" id=\"hits\">{}</div><div class=\"l\">hits</div></div>\
         <div class=\"card\"><div class=\"v\" id=\"misses\">{}</div><div class=\"l\">misses</div></div>\
         <div class=\"card\"><div class=\"v\" id=\"loads\">{}</div><div class=\"l\">loads (database)</div></div>\
         <div class=\"card\"><div class=\"v\" id=\"views\">{}</div><div class=\"l\">page views</div></div></div>",
        r.total.hit_rate,
        pct(r.total.hit_rate),
        r.total.hits,
        r.total.misses,
        r.total.loads,
        r.page_views
    );
    b.push_str(
        "<h2>Hit rate and traffic</h2><canvas id=\"chart\" data-points=\"0\"></canvas>\
         <div class=\"legend\"><span><i style=\"background:#3f6fd8\"></i>hit rate, each second</span>\
         <span><i style=\"background:repeating-linear-gradient(90deg,#3f6fd8 0 5px,transparent 5px 9px)\"></i>hit rate since start</span>\
         <span><i style=\"background:#b6bdca\"></i>page views per second (right axis)</span></div>",
    );
    let _ = write!(
        b,
        "<h2>Per cached function</h2><table><thead><tr><th>function</th><th class=\"n\">hits</th>\
         <th class=\"n\">misses</th><th class=\"n\">loads</th><th class=\"n\">hit rate</th><th></th></tr></thead>\
         <tbody id=\"functions\">{}</tbody></table>\
         <h2>Latency per operation (ms)</h2><p class=\"sub\">From the runtime's <code>cache_runtime</code> debug \
         events: GET hit / miss is the read, LOAD the loader (the database), SET the store.</p>\
         <table><thead><tr><th>operation</th><th>outcome</th><th class=\"n\">count</th><th class=\"n\">p50</th>\
         <th class=\"n\">p90</th><th class=\"n\">p99</th><th class=\"n\">max</th></tr></thead>\
         <tbody id=\"latencies\">{}</tbody></table>",
        function_rows(r),
        latency_rows(r)
    );
    let _ = write!(b, "<script>{DASHBOARD_SCRIPT}</script>");
    layout("Cache dashboard", &b)
}
