//! The LMS's cache keys. A key-building vocabulary belongs to the
//! application, not to the cache library: the library only provides the
//! escaping ([`cache_runtime::keys`]), and `#[cached]` generates a
//! `<fn>_key` companion for each cached function.

use std::fmt::Display;

use cache_runtime::keys::push_escaped;

/// The LMS's key set, in one place, with every argument escaped by
/// [`push_escaped`]. The cached repositories spell the same keys in
/// their `#[cached(key = ...)]` templates; the warmers and tests name
/// entries through these functions.
///
/// ```
/// use examples::lms::CacheKeys;
/// assert_eq!(CacheKeys::student_dashboard(123), "dashboard:student:123");
/// assert_eq!(CacheKeys::active_courses(), "courses:active");
/// // An argument cannot reach another entry's key.
/// assert_eq!(CacheKeys::student_profile("1:admin"), "student:profile:1%3Aadmin");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CacheKeys;

macro_rules! keyed {
    ($($(#[$doc:meta])* $name:ident => $prefix:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name(id: impl Display) -> String {
            let mut key = String::from($prefix);
            push_escaped(&mut key, &id);
            key
        }
    )*};
}

impl CacheKeys {
    keyed! {
        /// `dashboard:student:{id}`
        student_dashboard => "dashboard:student:";
        /// `dashboard:teacher:{id}`
        teacher_dashboard => "dashboard:teacher:";
        /// `course:{id}`
        course_details => "course:";
        /// `course:stats:{id}`
        course_stats => "course:stats:";
        /// `teacher:courses:{id}`
        teacher_courses => "teacher:courses:";
        /// `student:profile:{id}`
        student_profile => "student:profile:";
        /// `student:enrollments:{id}`
        student_enrollments => "student:enrollments:";
        /// `teacher:profile:{id}`
        teacher_profile => "teacher:profile:";
    }

    /// `dashboard:admin`
    pub fn admin_dashboard() -> String {
        "dashboard:admin".into()
    }
    /// `courses:active`
    pub fn active_courses() -> String {
        "courses:active".into()
    }
    /// `stats:platform`
    pub fn platform_stats() -> String {
        "stats:platform".into()
    }
}
