//! The LMS as an axum service (the `lms-web` binary): the original's five
//! pages as server-rendered HTML and as JSON under `/api`, the three
//! mutations as POST forms and JSON endpoints, `/metrics` for Prometheus,
//! `/cache` (a live cache dashboard), and a load driver.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /teacher/{id}/courses` | page 1, a teacher's courses |
//! | `GET /admin/dashboard` | page 2, the admin dashboard |
//! | `GET /student/{id}/dashboard` | page 3, a student's dashboard |
//! | `GET /teacher/{id}/dashboard` | page 4, a teacher's dashboard |
//! | `GET /student/{id}/courses` | page 5, a student's courses |
//! | `GET /course/{id}` | a course, with its update form |
//! | `GET /api/…` | each of these as JSON |
//! | `POST /course/{id}` | update a course (form `title`, `price_cents`; JSON under `/api`) |
//! | `POST /student/{id}/enroll` | enroll (form `course_id`) |
//! | `POST /student/{id}/pay` | complete the pending payment for `course_id` |
//! | `GET /cache`, `GET /api/cache` | the cache dashboard and its data |
//! | `GET /metrics` | Prometheus text format |
//!
//! Handlers call the same service layer as the `lms` binary ([`Lms`]); its
//! mutations are `#[cached(invalidates = …)]` methods, so a POST drops exactly
//! the entries it changes. With the cache off ([`Mode::Uncached`],
//! `CACHE_DISABLED=1`) every page goes to the database.

pub mod client;
pub mod dashboard;
pub mod hist;
pub mod html;
pub mod load;
pub mod telemetry;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use crate::lms::{Lms, LmsError, LmsResult, Mode};

/// The service's state: the application and whether pages go through the
/// cache. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
struct AppInner {
    lms: Lms,
    mode: Mode,
    started: Instant,
    page_views: AtomicU64,
    history: Mutex<VecDeque<dashboard::HistoryPoint>>,
    sampling: AtomicBool,
}

/// Seconds of history the dashboard's chart shows.
pub const HISTORY_SECONDS: usize = 60;

impl App {
    /// Serves `lms`'s pages in `mode`.
    pub fn new(lms: Lms, mode: Mode) -> Self {
        // The recorder exists before the first request is counted.
        let _ = telemetry::prometheus();
        App {
            inner: Arc::new(AppInner {
                lms,
                mode,
                started: Instant::now(),
                page_views: AtomicU64::new(0),
                history: Mutex::new(VecDeque::with_capacity(HISTORY_SECONDS + 1)),
                sampling: AtomicBool::new(false),
            }),
        }
    }

    /// The application.
    pub fn lms(&self) -> &Lms {
        &self.inner.lms
    }

    /// Cached or uncached pages.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Since [`App::new`].
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Page requests served (HTML and JSON).
    pub fn page_views(&self) -> u64 {
        self.inner.page_views.load(Ordering::Relaxed)
    }

    /// The counters once a second over the last [`HISTORY_SECONDS`],
    /// oldest first (the dashboard's chart).
    pub fn history(&self) -> Vec<dashboard::HistoryPoint> {
        self.inner
            .history
            .lock()
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    fn sample(&self) {
        let total = self.lms().cache.stats().total;
        let point = dashboard::HistoryPoint {
            t: self.uptime().as_secs_f64(),
            hits: total.hits,
            misses: total.misses,
            page_views: self.page_views(),
        };
        if let Ok(mut h) = self.inner.history.lock() {
            h.push_back(point);
            while h.len() > HISTORY_SECONDS + 1 {
                h.pop_front();
            }
        }
    }

    /// Samples the counters every second while the app is alive (once per
    /// app, however many servers serve it).
    fn start_sampling(&self) {
        if self.inner.sampling.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => App { inner }.sample(),
                    None => break,
                }
            }
        });
    }
}

/// The routes, each request in its own request scope (a page that needs one
/// entry twice reads it once), with the HTTP metrics middleware.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/teacher/{id}/courses", get(teacher_courses_html))
        .route("/api/teacher/{id}/courses", get(teacher_courses_json))
        .route("/admin/dashboard", get(admin_dashboard_html))
        .route("/api/admin/dashboard", get(admin_dashboard_json))
        .route("/student/{id}/dashboard", get(student_dashboard_html))
        .route("/api/student/{id}/dashboard", get(student_dashboard_json))
        .route("/teacher/{id}/dashboard", get(teacher_dashboard_html))
        .route("/api/teacher/{id}/dashboard", get(teacher_dashboard_json))
        .route("/student/{id}/courses", get(student_courses_html))
        .route("/api/student/{id}/courses", get(student_courses_json))
        .route("/course/{id}", get(course_html).post(update_course_form))
        .route("/api/course/{id}", get(course_json).post(update_course_json))
        .route("/student/{id}/enroll", axum::routing::post(enroll_form))
        .route("/api/student/{id}/enroll", axum::routing::post(enroll_json))
        .route("/student/{id}/pay", axum::routing::post(pay_form))
        .route("/api/student/{id}/pay", axum::routing::post(pay_json))
        .route("/cache", get(cache_html))
        .route("/api/cache", get(cache_json))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(cache_runtime::ScopeLayer::new())
        .layer(axum::middleware::from_fn(telemetry::track_http))
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    app.start_sampling();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A server running in this process on a free loopback port (tests, the
/// load driver). Stops when dropped.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens (`127.0.0.1:port`).
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Binds `127.0.0.1:0` and serves `app` on a background task.
    pub async fn start(app: App) -> std::io::Result<RunningServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, async {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets open requests finish, waits for the task.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ------------------------------------------------------------------ errors

/// A failed request: its status and message, rendered as HTML or JSON.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
    json: bool,
}

impl Failure {
    fn new(err: LmsError, json: bool) -> Self {
        let status = match err {
            LmsError::NotFound(_) => StatusCode::NOT_FOUND,
            LmsError::Conflict(_) => StatusCode::CONFLICT,
            LmsError::Db(_) | LmsError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure {
            status,
            message: err.to_string(),
            json,
        }
    }

    fn bad_request(message: impl Into<String>, json: bool) -> Self {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            json,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.json {
            (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
        } else {
            (self.status, Html(html::error(self.status.as_u16(), &self.message))).into_response()
        }
    }
}

async fn not_found() -> Failure {
    Failure {
        status: StatusCode::NOT_FOUND,
        message: "no such page".to_owned(),
        json: false,
    }
}

// ------------------------------------------------------------------- pages

/// Runs a page, counts it, and answers with its HTML or JSON plus the time
/// it took (`server-timing`) and the cache mode (`x-cache`), both in
/// headers so that the body depends on the data only.
async fn page<T: Serialize>(
    app: &App,
    load: impl Future<Output = LmsResult<T>>,
    render: fn(&T) -> String,
    json: bool,
) -> Response {
    let start = Instant::now();
    app.inner.page_views.fetch_add(1, Ordering::Relaxed);
    let value = match load.await {
        Ok(v) => v,
        Err(e) => return Failure::new(e, json).into_response(),
    };
    let mut response = if json {
        Json(&value).into_response()
    } else {
        Html(render(&value)).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.3}", start.elapsed().as_secs_f64() * 1000.0)) {
        headers.insert("server-timing", v);
    }
    headers.insert(
        "x-cache",
        HeaderValue::from_static(match app.mode() {
            Mode::Cached => "on",
            Mode::Uncached => "off",
        }),
    );
    response
}

/// A few students and teachers to link to.
async fn index() -> Html<String> {
    Html(html::index(&[1, 2, 3, 42, 43], &[1, 2, 3, 4]))
}

macro_rules! page_routes {
    ($($html:ident, $json:ident, |$app:ident, $id:ident| $load:expr, $render:path;)*) => {$(
        async fn $html(State($app): State<App>, Path($id): Path<i64>) -> Response {
            page(&$app, $load, $render, false).await
        }
        async fn $json(State($app): State<App>, Path($id): Path<i64>) -> Response {
            page(&$app, $load, $render, true).await
        }
    )*};
}

page_routes! {
    teacher_courses_html, teacher_courses_json,
        |app, id| app.lms().teacher_courses_page(id, app.mode()), html::teacher_courses;
    student_dashboard_html, student_dashboard_json,
        |app, id| app.lms().student_dashboard_page(id, app.mode()), html::student_dashboard;
    teacher_dashboard_html, teacher_dashboard_json,
        |app, id| app.lms().teacher_dashboard_page(id, app.mode()), html::teacher_dashboard;
    student_courses_html, student_courses_json,
        |app, id| app.lms().student_courses_page(id, app.mode()), html::student_courses;
    course_html, course_json,
        |app, id| app.lms().course(id, app.mode()), html::course;
}

async fn admin_dashboard_html(State(app): State<App>) -> Response {
    page(
        &app,
        app.lms().admin_dashboard_page(app.mode()),
        html::admin_dashboard,
        false,
    )
    .await
}

async fn admin_dashboard_json(State(app): State<App>) -> Response {
    page(
        &app,
        app.lms().admin_dashboard_page(app.mode()),
        html::admin_dashboard,
        true,
    )
    .await
}

// --------------------------------------------------------------- mutations

/// `POST /course/{id}`: a course's new title and price.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CourseForm {
    /// 1 to 200 characters.
    pub title: String,
    /// Zero or more.
    pub price_cents: i64,
}

/// `POST /student/{id}/enroll` and `/pay`: which course.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CourseIdForm {
    /// The course.
    pub course_id: i64,
}

/// What `POST /api/student/{id}/enroll` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The new enrollment.
    pub enrollment_id: i64,
    /// The pending payment of a paid course.
    pub payment_id: Option<i64>,
    /// Its amount.
    pub amount_cents: Option<i64>,
}

/// What `POST /api/student/{id}/pay` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paid {
    /// The completed payment.
    pub payment_id: i64,
    /// Its amount.
    pub amount_cents: i64,
}

async fn update_course(app: &App, id: i64, form: CourseForm, json: bool) -> Result<(), Failure> {
    let title = form.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(Failure::bad_request("title: 1 to 200 characters", json));
    }
    if form.price_cents < 0 {
        return Err(Failure::bad_request("price_cents: zero or more", json));
    }
    app.lms()
        .update_course(id, title, form.price_cents)
        .await
        .map_err(|e| Failure::new(e, json))
}

async fn update_course_form(
    State(app): State<App>,
    Path(id): Path<i64>,
    Form(form): Form<CourseForm>,
) -> Result<Redirect, Failure> {
    update_course(&app, id, form, false).await?;
    Ok(Redirect::to(&format!("/course/{id}")))
}

async fn update_course_json(State(app): State<App>, Path(id): Path<i64>, Json(form): Json<CourseForm>) -> Response {
    if let Err(f) = update_course(&app, id, form, true).await {
        return f.into_response();
    }
    page(&app, app.lms().course(id, app.mode()), html::course, true).await
}

async fn enroll(app: &App, student: i64, course: i64, json: bool) -> Result<Enrolled, Failure> {
    let e = app
        .lms()
        .enroll_student(student, course)
        .await
        .map_err(|e| Failure::new(e, json))?;
    Ok(Enrolled {
        enrollment_id: e.enrollment_id,
        payment_id: e.payment.map(|p| p.id),
        amount_cents: e.payment.map(|p| p.amount_cents),
    })
}

async fn enroll_form(
    State(app): State<App>,
    Path(id): Path<i64>,
    Form(form): Form<CourseIdForm>,
) -> Result<Redirect, Failure> {
    enroll(&app, id, form.course_id, false).await?;
    Ok(Redirect::to(&format!("/student/{id}/courses")))
}

async fn enroll_json(
    State(app): State<App>,
    Path(id): Path<i64>,
    Json(form): Json<CourseIdForm>,
) -> Result<Json<Enrolled>, Failure> {
    enroll(&app, id, form.course_id, true).await.map(Json)
}

async fn pay(app: &App, student: i64, course: i64, json: bool) -> Result<Paid, Failure> {
    let pending = app
        .lms()
        .enrollments
        .pending_payments(student)
        .await
        .map_err(|e| Failure::new(e, json))?;
    let payment = pending.into_iter().find(|p| p.course_id == course).ok_or_else(|| {
        Failure::new(
            LmsError::NotFound(format!("pending payment of student {student} for course {course}")),
            json,
        )
    })?;
    app.lms()
        .complete_payment(&payment)
        .await
        .map_err(|e| Failure::new(e, json))?;
    Ok(Paid {
        payment_id: payment.id,
        amount_cents: payment.amount_cents,
    })
}

async fn pay_form(
    State(app): State<App>,
    Path(id): Path<i64>,
    Form(form): Form<CourseIdForm>,
) -> Result<Redirect, Failure> {
    pay(&app, id, form.course_id, false).await?;
    Ok(Redirect::to(&format!("/student/{id}/courses")))
}

async fn pay_json(
    State(app): State<App>,
    Path(id): Path<i64>,
    Json(form): Json<CourseIdForm>,
) -> Result<Json<Paid>, Failure> {
    pay(&app, id, form.course_id, true).await.map(Json)
}

// ------------------------------------------------------- cache and metrics

async fn cache_html(State(app): State<App>) -> Response {
    let mut r = Html(dashboard::page(&dashboard::report(&app))).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn cache_json(State(app): State<App>) -> Response {
    let mut r = Json(dashboard::report(&app)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        telemetry::render_metrics(&app.lms().cache),
    )
        .into_response()
}
