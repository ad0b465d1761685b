//! Which parameters a `key = expr` really uses: identifiers in expression
//! position and the inline arguments of format strings (`format!("{id}")`),
//! never text inside other string literals or escaped braces
//! (`format!("c:{{id}}")` and `("c:{id}")` use nothing).

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Expr, Lit, Token};

/// How an expression uses names.
#[derive(Default, Debug)]
pub(crate) struct Uses {
    /// Names used as a whole (`id`, `&params`, `params.to_string()`).
    pub(crate) whole: BTreeSet<String>,
    /// Names used only through fields: `params.limit` → `params: {limit}`.
    pub(crate) fields: BTreeMap<String, BTreeSet<String>>,
}

/// The uses of names in `expr`.
pub(crate) fn of_expr(expr: &Expr) -> Uses {
    let mut v = Collector::default();
    v.visit_expr(expr);
    v.uses
}

/// Macros whose first string literal is a format string.
const FORMAT_MACROS: &[&str] = &[
    "format",
    "format_args",
    "write",
    "writeln",
    "print",
    "println",
    "eprint",
    "eprintln",
    "panic",
    "unreachable",
    "todo",
    "unimplemented",
];

#[derive(Default)]
struct Collector {
    uses: Uses,
}

impl Collector {
    /// `a.b.c` with `a` a plain name: records `a: {b}` and returns true.
    fn field_use(&mut self, e: &syn::ExprField) -> bool {
        let mut base = &*e.base;
        let mut member = &e.member;
        while let Expr::Field(inner) = base {
            member = &inner.member;
            base = &*inner.base;
        }
        if let Some(name) = plain_name(base) {
            let field = match member {
                syn::Member::Named(i) => i.unraw().to_string(),
                syn::Member::Unnamed(i) => i.index.to_string(),
            };
            self.uses.fields.entry(name).or_default().insert(field);
            true
        } else {
            false
        }
    }

    fn format_string(&mut self, s: &str, named: &BTreeSet<String>) {
        for name in format_names(s) {
            if !named.contains(&name) {
                self.uses.whole.insert(name);
            }
        }
    }

    /// Identifiers of tokens that are not an expression list: every
    /// identifier counts (literals never do).
    fn tokens(&mut self, tokens: TokenStream) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => {
                    self.uses.whole.insert(i.unraw().to_string());
                }
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Literal(_) | TokenTree::Punct(_) => {}
            }
        }
    }
}

/// `name` for a path expression that is one plain identifier.
fn plain_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Path(p) if p.qself.is_none() && p.path.leading_colon.is_none() && p.path.segments.len() == 1 => {
            Some(p.path.segments[0].ident.unraw().to_string())
        }
        Expr::Paren(p) => plain_name(&p.expr),
        Expr::Group(g) => plain_name(&g.expr),
        _ => None,
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_expr(&mut self, e: &'ast Expr) {
        if let Expr::Field(f) = e
            && self.field_use(f)
        {
            return;
        }
        syn::visit::visit_expr(self, e);
    }

    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if let Some(name) = plain_name(&Expr::Path(p.clone())) {
            self.uses.whole.insert(name);
        }
        syn::visit::visit_expr_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        let is_format = m
            .path
            .segments
            .last()
            .is_some_and(|s| FORMAT_MACROS.contains(&s.ident.to_string().as_str()));
        let Ok(args) = m.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) else {
            self.tokens(m.tokens.clone());
            return;
        };
        if !is_format {
            for a in &args {
                self.visit_expr(a);
            }
            return;
        }
        // Named arguments (`name = expr`) shadow parameters in the format string.
        let mut named = BTreeSet::new();
        for a in &args {
            if let Expr::Assign(assign) = a
                && let Some(name) = plain_name(&assign.left)
            {
                named.insert(name);
            }
        }
        let mut format_seen = false;
        for a in &args {
            match a {
                Expr::Lit(l) if !format_seen => {
                    if let Lit::Str(s) = &l.lit {
                        format_seen = true;
                        self.format_string(&s.value(), &named);
                    }
                }
                Expr::Assign(assign) if plain_name(&assign.left).is_some() => self.visit_expr(&assign.right),
                other => self.visit_expr(other),
            }
        }
    }
}

/// The inline arguments of a format string: `{id}`, `{id:>5}`, `{:w$}` → w.
/// Escaped braces (`{{id}}`) and positional arguments are not names.
pub(crate) fn format_names(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let (arg, spec) = inner.split_once(':').unwrap_or((&inner, ""));
                let arg = arg.trim();
                let arg = arg.strip_prefix("r#").unwrap_or(arg);
                if is_name(arg) {
                    out.push(arg.to_owned());
                }
                // `width$` / `.precision$` name arguments too.
                for piece in spec.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')) {
                    if let Some(name) = piece.strip_suffix('$')
                        && is_name(name)
                    {
                        out.push(name.to_owned());
                    }
                }
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || unicode_ident::is_xid_start(c))
        && chars.all(unicode_ident::is_xid_continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(s: &str) -> Uses {
        of_expr(&syn::parse_str(s).expect("expr"))
    }

    #[test]
    fn only_real_uses_count() {
        assert!(uses(r#"format!("c:{{id}}:{{x}}")"#).whole.is_empty());
        assert!(uses(r#"("c:{id}:{x}")"#).whole.is_empty());
        assert!(uses(r#"concat!("c:{id}")"#).whole.is_empty());
        let u = uses(r#"format!("c:{id}:{x:>5}:{:w$}", y, w = 3)"#);
        assert_eq!(u.whole, ["id", "x", "y"].map(String::from).into());
        let u = uses(r#"format!("{{{id}}}")"#);
        assert_eq!(u.whole, ["id"].map(String::from).into());
        let u = uses("CacheKeys::course(id, &other)");
        assert_eq!(u.whole, ["id", "other"].map(String::from).into());
        let u = uses(r#"format!("{}", params.limit.to_string())"#);
        assert!(u.whole.is_empty());
        assert_eq!(u.fields["params"], ["limit"].map(String::from).into());
        let u = uses(r#"my_key!(a, "b {c}")"#);
        assert_eq!(u.whole, ["a"].map(String::from).into());
        let u = uses(r#"weird!(a => b)"#);
        assert_eq!(u.whole, ["a", "b"].map(String::from).into());
        assert!(uses("p.0.1").fields["p"].contains("0"));
    }
}
