//! Server-rendered HTML of the pages: plain functions from a page's data to
//! a document, no template engine, no front-end build, no external assets.
//! The output depends on the data only (no clock, no cache state), so a
//! cached page renders byte for byte like its uncached twin.

use std::fmt::Write as _;

use crate::lms::model::*;

/// `&`, `<`, `>`, `"`, `'` escaped for text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Cents as dollars: `$1,234.50`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let dollars = (c / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in dollars.chars().enumerate() {
        if i > 0 && (dollars.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}${grouped}.{:02}", c % 100)
}

/// The shared stylesheet: small, inline, no web fonts.
pub const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
header a{color:#cfd8ea;text-decoration:none}header a:hover{color:#fff}
header strong{color:#fff;margin-right:12px}
main{max-width:1120px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:16px;margin:22px 0 8px}
.sub{color:#5b6475;margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:10px 12px}
.card .v{font-size:20px;font-weight:600}.card .l{color:#5b6475;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e4ea;border-radius:8px;overflow:hidden}
th,td{padding:6px 10px;border-bottom:1px solid #eef0f3;text-align:left;vertical-align:middle}
th{background:#fafbfc;font-weight:600;color:#3b4252;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;vertical-align:middle;width:110px;margin-right:6px;background:#e7ebf3;border-radius:4px;height:8px}
.bar.wide{display:block;width:auto;min-width:80px;margin:0}
.bar>span{display:block;height:8px;border-radius:4px;background:#3f6fd8}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media(max-width:800px){.grid2{grid-template-columns:1fr}}
form.inline{display:inline;margin:0}
button{font:inherit;padding:3px 10px;border:1px solid #3f6fd8;background:#3f6fd8;color:#fff;border-radius:5px;cursor:pointer}
input{font:inherit;padding:3px 6px;border:1px solid #c8cdd6;border-radius:5px}
.tag{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;background:#eef0f3}
.tag.ok{background:#dff3e4;color:#17612e}.tag.warn{background:#fdf0d5;color:#7a5200}.tag.bad{background:#fbe0e0;color:#8a1c1c}
a{color:#2d5bc4}
"#;

/// A whole document: header with the navigation, then `body`.
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · LMS</title><style>{STYLE}</style></head><body>\
         <header><strong>LMS</strong><a href=\"/\">Home</a><a href=\"/admin/dashboard\">Admin dashboard</a>\
         <a href=\"/cache\">Cache dashboard</a><a href=\"/metrics\">/metrics</a></header>\
         <main>{body}</main></body></html>\n",
        esc(title)
    )
}

fn card(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"v\">{}</div><div class=\"l\">{}</div></div>",
        esc(&value.to_string()),
        esc(label)
    );
}

/// A progress bar beside its figure.
fn bar(pct: f64) -> String {
    format!(
        "<div class=\"bar\"><span style=\"width:{:.0}%\"></span></div>",
        pct.clamp(0.0, 100.0)
    )
}

/// A bar filling its own cell.
fn wide_bar(pct: f64) -> String {
    format!(
        "<div class=\"bar wide\"><span style=\"width:{:.0}%\"></span></div>",
        pct.clamp(0.0, 100.0)
    )
}

fn status_tag(status: &str) -> String {
    let class = match status {
        "completed" | "active" => "ok",
        "pending" | "draft" => "warn",
        _ => "",
    };
    format!("<span class=\"tag {class}\">{}</span>", esc(status))
}

fn course_link(id: i64, title: &str) -> String {
    format!("<a href=\"/course/{id}\">{}</a>", esc(title))
}

/// A month table with a bar per row, scaled to the largest value.
fn monthly_table(out: &mut String, title: &str, rows: &[Monthly], fmt: fn(i64) -> String) {
    let _ = write!(
        out,
        "<h2>{}</h2><table><tr><th>month</th><th class=\"n\">value</th><th></th></tr>",
        esc(title)
    );
    let max = rows.iter().map(|m| m.value).max().unwrap_or(0).max(1);
    // The last 12 months, oldest first.
    for m in rows.iter().skip(rows.len().saturating_sub(12)) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td style=\"width:45%\">{}</td></tr>",
            esc(&m.month),
            fmt(m.value),
            wide_bar(m.value as f64 * 100.0 / max as f64)
        );
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"3\">none</td></tr>");
    }
    out.push_str("</table>");
}

fn count(v: i64) -> String {
    v.to_string()
}

/// The home page: links to the five pages for a few students and teachers.
pub fn index(students: &[i64], teachers: &[i64]) -> String {
    let mut b = String::from(
        "<h1>Learning platform</h1><p class=\"sub\">The original's five pages, served through \
         <code>#[cached]</code> repositories. Each page is also JSON under <code>/api</code>.</p>",
    );
    b.push_str("<div class=\"grid2\"><div><h2>Students</h2><table><tr><th>student</th><th>pages</th></tr>");
    for s in students {
        let _ = write!(
            b,
            "<tr><td>#{s}</td><td><a href=\"/student/{s}/dashboard\">dashboard</a> · \
             <a href=\"/student/{s}/courses\">courses</a></td></tr>"
        );
    }
    b.push_str("</table></div><div><h2>Teachers</h2><table><tr><th>teacher</th><th>pages</th></tr>");
    for t in teachers {
        let _ = write!(
            b,
            "<tr><td>#{t}</td><td><a href=\"/teacher/{t}/dashboard\">dashboard</a> · \
             <a href=\"/teacher/{t}/courses\">courses</a></td></tr>"
        );
    }
    b.push_str(
        "</table></div></div><h2>Everyone</h2><p><a href=\"/admin/dashboard\">Admin dashboard</a> · \
         <a href=\"/cache\">Cache dashboard</a> (hit rates, latencies, breaker) · \
         <a href=\"/metrics\">Prometheus metrics</a></p>",
    );
    layout("Home", &b)
}

/// Page 1: a teacher's courses.
pub fn teacher_courses(p: &TeacherCoursesPage) -> String {
    let t = &p.teacher;
    let mut b = format!(
        "<h1>{}'s courses</h1><p class=\"sub\">{} · <a href=\"/teacher/{}/dashboard\">dashboard</a></p>",
        esc(&t.name),
        esc(&t.email),
        t.id
    );
    b.push_str(
        "<table><tr><th>course</th><th>category</th><th>status</th><th class=\"n\">price</th>\
         <th class=\"n\">enrollments</th><th class=\"n\">completions</th><th>avg progress</th>\
         <th class=\"n\">revenue</th></tr>",
    );
    for (c, s) in &p.courses {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{} {:.1}%</td><td class=\"n\">{}</td></tr>",
            course_link(c.id, &c.title),
            esc(&c.category),
            status_tag(&c.status),
            money(c.price_cents),
            s.enrollments,
            s.completions,
            bar(s.avg_progress),
            s.avg_progress,
            money(s.revenue_cents)
        );
    }
    if p.courses.is_empty() {
        b.push_str("<tr><td colspan=\"8\">no courses</td></tr>");
    }
    b.push_str("</table>");
    layout(&format!("{}'s courses", t.name), &b)
}

/// Page 2: the admin dashboard.
pub fn admin_dashboard(p: &AdminDashboardPage) -> String {
    let s = &p.stats;
    let mut b =
        String::from("<h1>Admin dashboard</h1><p class=\"sub\">The platform's numbers</p><div class=\"cards\">");
    card(&mut b, "students", s.students);
    card(&mut b, "teachers", s.teachers);
    card(&mut b, "courses", s.courses);
    card(&mut b, "active courses", s.active_courses);
    card(&mut b, "enrollments", s.enrollments);
    card(&mut b, "completions", s.completions);
    card(&mut b, "paying students", s.paying_students);
    card(&mut b, "revenue", money(s.revenue_cents));
    card(&mut b, "pending", money(s.pending_cents));
    b.push_str("</div><div class=\"grid2\"><div>");
    monthly_table(&mut b, "Revenue by month", &p.dashboard.revenue_by_month, money);
    b.push_str("</div><div>");
    monthly_table(&mut b, "Enrollments by month", &p.dashboard.enrollments_by_month, count);
    b.push_str("</div></div><div class=\"grid2\"><div><h2>Top courses</h2><table><tr><th>course</th><th class=\"n\">revenue</th></tr>");
    for (c, (_, revenue)) in p.top_courses.iter().zip(&p.dashboard.top_courses) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            course_link(c.id, &c.title),
            money(*revenue)
        );
    }
    b.push_str("</table></div><div><h2>Top teachers</h2><table><tr><th>teacher</th><th class=\"n\">revenue</th></tr>");
    for (t, revenue) in &p.dashboard.top_teachers {
        let _ = write!(
            b,
            "<tr><td><a href=\"/teacher/{t}/dashboard\">teacher #{t}</a></td><td class=\"n\">{}</td></tr>",
            money(*revenue)
        );
    }
    b.push_str(
        "</table></div></div><h2>Categories</h2><table><tr><th>category</th><th class=\"n\">courses</th>\
         <th class=\"n\">enrollments</th><th class=\"n\">revenue</th></tr>",
    );
    for c in &p.dashboard.categories {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&c.category),
            c.courses,
            c.enrollments,
            money(c.revenue_cents)
        );
    }
    b.push_str("</table>");
    layout("Admin dashboard", &b)
}

/// Page 3: a student's dashboard.
pub fn student_dashboard(p: &StudentDashboardPage) -> String {
    let (s, d) = (&p.student, &p.dashboard);
    let mut b = format!(
        "<h1>{}</h1><p class=\"sub\">{} · joined {} · <a href=\"/student/{}/courses\">my courses</a></p><div class=\"cards\">",
        esc(&s.name),
        esc(&s.email),
        esc(&s.joined_at),
        s.id
    );
    card(&mut b, "enrolled", d.enrolled);
    card(&mut b, "completed", d.completed);
    card(&mut b, "average progress", format!("{:.1}%", d.avg_progress));
    card(&mut b, "total spent", money(d.total_spent_cents));
    card(&mut b, "pending payments", d.pending_payments);
    card(&mut b, "pending", money(d.pending_cents));
    card(
        &mut b,
        "completion percentile",
        format!("{:.1}", d.completion_percentile),
    );
    b.push_str("</div><h2>Continue learning</h2><table><tr><th>course</th><th>category</th><th>progress</th></tr>");
    for (c, (_, progress)) in p.continue_learning.iter().zip(&d.continue_learning) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{} {progress}%</td></tr>",
            course_link(c.id, &c.title),
            esc(&c.category),
            bar(*progress as f64)
        );
    }
    if p.continue_learning.is_empty() {
        b.push_str("<tr><td colspan=\"3\">nothing in progress</td></tr>");
    }
    b.push_str("</table><h2>Recommended for you</h2><table><tr><th>course</th><th>category</th><th class=\"n\">price</th></tr>");
    for c in &p.recommended {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            course_link(c.id, &c.title),
            esc(&c.category),
            money(c.price_cents)
        );
    }
    if p.recommended.is_empty() {
        b.push_str("<tr><td colspan=\"3\">no recommendations yet</td></tr>");
    }
    b.push_str("</table>");
    monthly_table(&mut b, "Spending by month", &d.monthly_spending, money);
    layout(&s.name, &b)
}

/// Page 4: a teacher's dashboard.
pub fn teacher_dashboard(p: &TeacherDashboardPage) -> String {
    let (t, d) = (&p.teacher, &p.dashboard);
    let mut b = format!(
        "<h1>{}</h1><p class=\"sub\">{} · <a href=\"/teacher/{}/courses\">all courses</a></p><p>{}</p><div class=\"cards\">",
        esc(&t.name),
        esc(&t.email),
        t.id,
        esc(&t.bio)
    );
    card(&mut b, "courses", d.courses);
    card(&mut b, "active courses", d.active_courses);
    card(&mut b, "enrollments", d.enrollments);
    card(&mut b, "students", d.students);
    card(&mut b, "completions", d.completions);
    card(&mut b, "average progress", format!("{:.1}%", d.avg_progress));
    card(&mut b, "revenue", money(d.revenue_cents));
    card(&mut b, "pending", money(d.pending_cents));
    card(&mut b, "revenue rank", format!("#{}", d.revenue_rank));
    b.push_str(
        "</div><h2>Top courses</h2><table><tr><th>course</th><th class=\"n\">enrollments</th>\
         <th class=\"n\">completions</th><th>avg progress</th><th class=\"n\">revenue</th><th class=\"n\">pending</th></tr>",
    );
    for (c, s) in &p.top_courses {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{} {:.1}%</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            course_link(c.id, &c.title),
            s.enrollments,
            s.completions,
            bar(s.avg_progress),
            s.avg_progress,
            money(s.revenue_cents),
            money(s.pending_cents)
        );
    }
    if p.top_courses.is_empty() {
        b.push_str("<tr><td colspan=\"6\">no enrollments yet</td></tr>");
    }
    b.push_str("</table>");
    monthly_table(&mut b, "Enrollments by month", &d.monthly_enrollments, count);
    layout(&t.name, &b)
}

/// Page 5: a student's courses, with the forms to pay and to enroll.
pub fn student_courses(p: &StudentCoursesPage) -> String {
    let s = &p.student;
    let mut b = format!(
        "<h1>{}'s courses</h1><p class=\"sub\">{} · <a href=\"/student/{}/dashboard\">dashboard</a></p>",
        esc(&s.name),
        esc(&s.email),
        s.id
    );
    b.push_str(
        "<table><tr><th>course</th><th>enrolled</th><th>progress</th><th>status</th>\
         <th class=\"n\">price</th><th>payment</th></tr>",
    );
    for (e, c) in &p.enrollments {
        let payment = match e.payment_status.as_deref() {
            Some("pending") => format!(
                "{} <form class=\"inline\" method=\"post\" action=\"/student/{}/pay\">\
                 <input type=\"hidden\" name=\"course_id\" value=\"{}\"><button>Complete payment</button></form>",
                status_tag("pending"),
                s.id,
                c.id
            ),
            Some(other) => status_tag(other),
            None => "free".to_owned(),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{} {}%</td><td>{}</td><td class=\"n\">{}</td><td>{payment}</td></tr>",
            course_link(c.id, &c.title),
            esc(&e.enrolled_at),
            bar(e.progress as f64),
            e.progress,
            status_tag(&e.status),
            money(c.price_cents)
        );
    }
    if p.enrollments.is_empty() {
        b.push_str("<tr><td colspan=\"6\">no enrollments</td></tr>");
    }
    let _ = write!(
        b,
        "</table><h2>Browse courses</h2><p class=\"sub\">{} active courses in the catalog</p>\
         <table><tr><th>course</th><th>category</th><th class=\"n\">price</th><th></th></tr>",
        p.catalog_total
    );
    for c in &p.browse {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td><form class=\"inline\" method=\"post\" \
             action=\"/student/{}/enroll\"><input type=\"hidden\" name=\"course_id\" value=\"{}\">\
             <button>Enroll</button></form></td></tr>",
            course_link(c.id, &c.title),
            esc(&c.category),
            money(c.price_cents),
            s.id,
            c.id
        );
    }
    b.push_str("</table>");
    layout(&format!("{}'s courses", s.name), &b)
}

/// A course's details, with the form that updates it.
pub fn course(c: &Course) -> String {
    let mut b = format!(
        "<h1>{}</h1><p class=\"sub\">{} · {} · <a href=\"/teacher/{}/courses\">teacher #{}</a> · updated {}</p><p>{}</p>",
        esc(&c.title),
        esc(&c.category),
        status_tag(&c.status),
        c.teacher_id,
        c.teacher_id,
        esc(&c.updated_at),
        esc(&c.description)
    );
    let _ = write!(
        b,
        "<div class=\"cards\"><div class=\"card\"><div class=\"v\">{}</div><div class=\"l\">price</div></div></div>\
         <h2>Update</h2><form method=\"post\" action=\"/course/{}\">\
         <label>title <input name=\"title\" size=\"50\" value=\"{}\"></label> \
         <label>price (cents) <input name=\"price_cents\" type=\"number\" min=\"0\" value=\"{}\"></label> \
         <button>Save</button></form>",
        money(c.price_cents),
        c.id,
        esc(&c.title),
        c.price_cents
    );
    layout(&c.title, &b)
}

/// An error page.
pub fn error(status: u16, message: &str) -> String {
    layout(
        &format!("Error {status}"),
        &format!("<h1>Error {status}</h1><p>{}</p>", esc(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_formats_money() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(money(0), "$0.00");
        assert_eq!(money(5), "$0.05");
        assert_eq!(money(123_456_789), "$1,234,567.89");
        assert_eq!(money(-100_000), "-$1,000.00");
    }
}
