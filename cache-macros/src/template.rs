//! Key, tag and pattern templates: `"course:{id}"`, `"teacher:{course.teacher_id}"`,
//! `"tenant:{self.tenant}:<id>"`. Literal parts are kept as written;
//! placeholders are interpolated with `Display` and escaped at run time.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::LitStr;

use crate::ctxt::Errors;

/// A parsed template string.
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    pub(crate) parts: Vec<Part>,
    /// False when the string had a syntax error (already reported).
    pub(crate) well_formed: bool,
}

pub(crate) enum Part {
    Lit(String),
    Var(Placeholder),
}

/// `{root.field.field}`.
pub(crate) struct Placeholder {
    pub(crate) root: String,
    pub(crate) fields: Vec<String>,
}

impl Placeholder {
    pub(crate) fn text(&self) -> String {
        let mut s = self.root.clone();
        for f in &self.fields {
            s.push('.');
            s.push_str(f);
        }
        s
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Parses `a.b.c` (fields may be tuple indices); `None` if malformed.
fn parse_path(inner: &str) -> Option<Placeholder> {
    let mut segs = inner.trim().split('.').map(str::trim);
    let root = segs.next()?;
    if !is_ident(root) {
        return None;
    }
    let mut fields = Vec::new();
    for s in segs {
        if !(is_ident(s) || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))) {
            return None;
        }
        fields.push(s.to_owned());
    }
    Some(Placeholder {
        root: root.to_owned(),
        fields,
    })
}

impl Template {
    /// Parses a template literal; `what` names it in errors ("key", "tag", …).
    pub(crate) fn parse(lit: LitStr, what: &str, errors: &mut Errors) -> Template {
        let text = lit.value();
        let mut parts = Vec::new();
        let mut buf = String::new();
        let mut chars = text.char_indices().peekable();
        let mut well_formed = true;
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    buf.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    buf.push('}');
                }
                '{' => {
                    let Some(end) = text[i + 1..].find('}') else {
                        errors.at(
                            lit.span(),
                            format!("unclosed `{{` in {what} template: close the placeholder, or write `{{{{` for a literal brace"),
                        );
                        return Template {
                            lit,
                            parts,
                            well_formed: false,
                        };
                    };
                    let inner = &text[i + 1..i + 1 + end];
                    match parse_path(inner) {
                        Some(p) => {
                            if !buf.is_empty() {
                                parts.push(Part::Lit(std::mem::take(&mut buf)));
                            }
                            parts.push(Part::Var(p));
                        }
                        None => {
                            well_formed = false;
                            errors.at(
                            lit.span(),
                            format!(
                                "malformed placeholder `{{{inner}}}` in {what} template: write `{{param}}`, `{{param.field}}` or `{{self.field}}`"
                            ),
                        )
                        }
                    }
                    // Skip the placeholder's characters.
                    while let Some((j, _)) = chars.peek() {
                        if *j > i + 1 + end {
                            break;
                        }
                        chars.next();
                    }
                }
                '}' => {
                    well_formed = false;
                    errors.at(
                        lit.span(),
                        format!("unmatched `}}` in {what} template: write `}}}}` for a literal brace"),
                    )
                }
                '<' => {
                    // `<param>` is a synonym of `{param}`; any other `<` is literal.
                    let rest = &text[i + 1..];
                    match rest
                        .find('>')
                        .and_then(|end| parse_path(&rest[..end]).map(|p| (end, p)))
                    {
                        Some((end, p)) if !rest[..end].contains(char::is_whitespace) => {
                            if !buf.is_empty() {
                                parts.push(Part::Lit(std::mem::take(&mut buf)));
                            }
                            parts.push(Part::Var(p));
                            while let Some((j, _)) = chars.peek() {
                                if *j > i + 1 + end {
                                    break;
                                }
                                chars.next();
                            }
                        }
                        _ => buf.push('<'),
                    }
                }
                c => buf.push(c),
            }
        }
        if !buf.is_empty() {
            parts.push(Part::Lit(buf));
        }
        Template {
            lit,
            parts,
            well_formed,
        }
    }

    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
    }

    pub(crate) fn uses_self(&self) -> bool {
        self.placeholders().any(|p| p.root == "self")
    }

    pub(crate) fn span(&self) -> Span {
        self.lit.span()
    }

    /// An expression building the `String`, with `suffix` (a literal) appended.
    pub(crate) fn build(&self, suffix: &str) -> TokenStream {
        let span = self.lit.span();
        let out = format_ident!("__cache_k", span = Span::mixed_site());
        let mut capacity = suffix.len();
        let mut stmts = Vec::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => {
                    capacity += s.len();
                    stmts.push(quote!(#out.push_str(#s);));
                }
                Part::Var(p) => {
                    capacity += 8;
                    let root = if p.root == "self" {
                        quote_spanned!(span=> self)
                    } else {
                        let id = syn::Ident::new(&p.root, span);
                        quote!(#id)
                    };
                    let fields = p.fields.iter().map(|f| {
                        let m: syn::Member = match f.parse::<u32>() {
                            Ok(n) => syn::Member::Unnamed(syn::Index { index: n, span }),
                            Err(_) => syn::Member::Named(syn::Ident::new(f, span)),
                        };
                        quote!(.#m)
                    });
                    stmts.push(quote_spanned!(span=>
                        ::cache_runtime::__private::push_part(&mut #out, &#root #(#fields)*);
                    ));
                }
            }
        }
        if !suffix.is_empty() {
            stmts.push(quote!(#out.push_str(#suffix);));
        }
        quote!({
            let mut #out = ::std::string::String::with_capacity(#capacity);
            #(#stmts)*
            #out
        })
    }
}
