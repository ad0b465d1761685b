//! A bounded fuzz test of the whole pipeline (issue 15 item 9): generated
//! templates and argument lists through parse → validate → expand, on
//! several function shapes. Nothing may panic, and the output must always
//! be syntactically valid Rust (the item plus, on misuse, `compile_error!`).

use std::time::{Duration, Instant};

use proc_macro2::TokenStream;

/// Template pieces: braces, dots, digits, keywords, unicode that is and is
/// not XID, separators.
const PIECES: &[&str] = &[
    "{",
    "}",
    "{{",
    "}}",
    "<",
    ">",
    ".",
    ":",
    "-",
    "%",
    "_",
    " ",
    "*",
    "a",
    "id",
    "x",
    "p",
    "self",
    "self.",
    "s",
    "0",
    "01",
    "1",
    "4294967296",
    "4294967295",
    "type",
    "r#type",
    "async",
    "crate",
    "ⓐ",
    "\u{345}",
    "é",
    "日",
    "{id}",
    "{x.0}",
    "{p.limit}",
    "{self.s}",
    "<id>",
    "{x.1.0}",
];

/// Field segments: identifiers, keywords, tuple indices in and out of
/// range, leading zeros, non-identifier characters.
const SEGMENTS: &[&str] = &[
    "limit",
    "s",
    "0",
    "1",
    "01",
    "00",
    "4294967295",
    "4294967296",
    "99999999999999999999",
    "type",
    "r#type",
    "self",
    "Self",
    "super",
    "_",
    "async",
    "ⓐ",
    "\u{345}",
    "é",
    "a\u{345}",
    "",
    " ",
    "1e1",
    "-1",
];

const TTLS: &[&str] = &[
    "LONG",
    "LOGN",
    "\"90s\"",
    "\"90s\"ms",
    "90",
    "90ms",
    "\"5x\"",
    "\"\"",
    "crate::T",
    "{ T }",
    "1.5",
    "-1",
];

const ITEMS: &[&str] = &[
    "pub async fn f(&self, id: i64, x: (u8, u8), p: Page) -> Result<u32, E> { Ok(1) }",
    "async fn g(id: i64, x: Option<u8>) -> Option<u32> { None }",
    "pub async fn h(id: &str, p: Box<Page>) -> u32 { 1 }",
    "pub(self) async fn k<T: Display>(id: T, x: u8) -> String { String::new() }",
    "fn sync(id: i64) -> u32 { 1 }",
    "async fn d((a, b): (u8, u8)) -> u8 { a }",
    "struct S;",
    "impl T for S { #[cached(key = \"k:{id}\", cache = self.c)] async fn f(&self, id: i64) -> u32 { 1 } #[cached(key = \"{id}{x}\")] async fn g(id: i64, x: u8) -> u8 { x } }",
    "impl S { #[cached] pub async fn f(&self) -> u32 { 1 } }",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[usize::try_from(self.next() % from.len() as u64).expect("fits")]
    }

    /// `{root.seg.seg}` with roots that are parameters, so that generated
    /// fields reach the expansion.
    fn placeholder(&mut self) -> String {
        let root = self.pick(&["id", "x", "p", "self", "r#id", "nope"]);
        let mut s = format!("{{{root}");
        for _ in 0..self.next() % 3 {
            s.push('.');
            s.push_str(self.pick(SEGMENTS));
        }
        s.push('}');
        s
    }

    fn template(&mut self) -> String {
        let n = self.next() % 7;
        (0..n)
            .map(|_| {
                if self.next().is_multiple_of(3) {
                    self.placeholder()
                } else {
                    self.pick(PIECES).to_owned()
                }
            })
            .collect()
    }

    /// A string literal holding a generated template.
    fn lit(&mut self) -> String {
        format!("{:?}", self.template())
    }

    fn argument(&mut self) -> String {
        match self.next() % 12 {
            0 => format!("key = {}", self.lit()),
            1 => format!("key = format!({}, id)", self.lit()),
            2 => format!("ttl = {}", self.pick(TTLS)),
            3 => format!("tags = [{}, {}]", self.lit(), self.lit()),
            4 => format!(
                "invalidates = [{}, tag({}), pattern({})]",
                self.lit(),
                self.lit(),
                self.lit()
            ),
            5 => format!("skip = [{}]", self.pick(&["id", "x", "p", "self", "nope"])),
            6 => "put".to_owned(),
            7 => format!("negative_ttl = {}", self.pick(TTLS)),
            8 => format!("version = {}", self.pick(&["2", "2u8", "x", "99999999999"])),
            9 => "cache = self.cache".to_owned(),
            10 => format!("{} = 1", self.pick(&["tll", "keys", "covered", "skip"])),
            _ => format!("key = ({})", self.lit()),
        }
    }
}

fn run(attr: TokenStream, item: TokenStream) -> TokenStream {
    crate::pipeline(attr, item)
}

#[test]
fn pipeline_never_panics_and_emits_valid_rust() {
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cases = 0u32;
    while cases < 5_000 && Instant::now() < deadline {
        let n = rng.next() % 5;
        let attr: String = (0..n).map(|_| rng.argument()).collect::<Vec<_>>().join(", ");
        let item = rng.pick(ITEMS);
        // Generated text that does not lex is not something rustc would hand us.
        let (Ok(attr_tokens), Ok(item_tokens)) = (attr.parse::<TokenStream>(), item.parse::<TokenStream>()) else {
            continue;
        };
        let out = std::panic::catch_unwind(|| run(attr_tokens, item_tokens))
            .unwrap_or_else(|_| panic!("#[cached({attr})] on `{item}` panicked"));
        // Methods are expanded as impl items; wrap them so they parse as a file.
        let file = format!("impl Wrapper {{ {out} }}");
        assert!(
            syn::parse_str::<syn::File>(&file).is_ok() || syn::parse2::<syn::File>(out.clone()).is_ok(),
            "#[cached({attr})] on `{item}` expanded to invalid Rust: {out}"
        );
        cases += 1;
    }
    eprintln!("{cases} cases");
    assert!(cases >= 500, "only {cases} cases ran");
}
