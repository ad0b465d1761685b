//! Compile errors of `#[cached]` (DESIGN §3, issue 3): one misuse per file in
//! `tests/ui/`, each with its reviewed `.stderr` snapshot. Regenerate with
//! `TRYBUILD=overwrite cargo test -p tests --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
