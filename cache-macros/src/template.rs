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
    /// Characters that interpolated values percent-encode beyond the
    /// runtime's reserved set ([`separators`]).
    pub(crate) also: String,
}

/// The runtime's reserved set (`cache_runtime::keys::escape`): always
/// encoded, so never needed in a template's extra set.
fn reserved(c: char) -> bool {
    matches!(c, ':' | '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '%') || c.is_whitespace() || c.is_control()
}

/// The characters a template's values encode beyond the reserved set, so
/// that distinct values always give distinct strings (DESIGN §10.4):
///
/// - the first character of every literal that follows a placeholder (the
///   separator that ends the value): no value can contain it, so a reader
///   of the key knows where each value ends. This alone makes a template
///   with a separator between every two placeholders injective;
/// - every other character of the literal text that is not an ASCII letter
///   or digit, so that a value never contains any punctuation of its
///   template (`pair:{a}-{b}` and `pair:{a}-*` encode `a` alike). Letters
///   and digits of the literal text stay readable in values (`v1:{id}`
///   does not encode the `1` of an id).
pub(crate) fn separators(parts: &[Part]) -> String {
    let mut set = std::collections::BTreeSet::new();
    let mut after_var = false;
    for part in parts {
        match part {
            Part::Lit(s) => {
                for (i, c) in s.chars().enumerate() {
                    if !reserved(c) && ((i == 0 && after_var) || !c.is_ascii_alphanumeric()) {
                        set.insert(c);
                    }
                }
                after_var = false;
            }
            Part::Var(_) => after_var = true,
        }
    }
    set.into_iter().collect()
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

/// Rust's keywords (strict and reserved, edition 2024): a field with such a
/// name is written `r#name` in Rust; the expansion does that for the user.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
    "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract",
    "become", "box", "do", "final", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Keywords that cannot be raw identifiers, hence never a field name.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// True for a keyword that must be emitted as a raw identifier.
pub(crate) fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// A Rust identifier (XID, as rustc lexes it), `_` alone excluded.
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    s != "_"
        && matches!(chars.next(), Some(c) if c == '_' || unicode_ident::is_xid_start(c))
        && chars.all(unicode_ident::is_xid_continue)
}

/// Checks one field segment of a placeholder: a tuple index that fits `u32`
/// written without leading zeros, or an identifier (a keyword is emitted
/// raw; `r#type` is accepted and means `type`). Returns the field's name.
fn check_field<'a>(seg: &'a str, inner: &str) -> Result<&'a str, String> {
    if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
        if seg.len() > 1 && seg.starts_with('0') {
            let fixed = match seg.trim_start_matches('0') {
                "" => "0",
                rest => rest,
            };
            return Err(format!(
                "tuple index `{seg}` in placeholder `{{{inner}}}` has a leading zero; write it as in Rust code: `{fixed}`"
            ));
        }
        if seg.parse::<u32>().is_err() {
            return Err(format!(
                "tuple index `{seg}` in placeholder `{{{inner}}}` is too large: a tuple index fits in u32"
            ));
        }
        return Ok(seg);
    }
    let name = seg.strip_prefix("r#").unwrap_or(seg);
    if NOT_RAW.contains(&name) {
        return Err(format!(
            "`{name}` in placeholder `{{{inner}}}` cannot be a field name: interpolate a field, e.g. `{{param.field}}` or `{{self.field}}`"
        ));
    }
    if !is_ident(name) {
        return Err(format!(
            "`{seg}` in placeholder `{{{inner}}}` is not a field name: write the field as in Rust code, e.g. `{{param.field}}` or `{{param.0}}`"
        ));
    }
    Ok(name)
}

/// Parses `a.b.c` (fields may be tuple indices); `Err` says what is wrong.
fn parse_path(inner: &str) -> Result<Placeholder, String> {
    let malformed =
        || format!("malformed placeholder `{{{inner}}}`: write `{{param}}`, `{{param.field}}` or `{{self.field}}`");
    let mut segs = inner.trim().split('.').map(str::trim);
    let root = segs.next().ok_or_else(malformed)?;
    let root = root.strip_prefix("r#").unwrap_or(root);
    if !(root == "self" || is_ident(root)) {
        return Err(malformed());
    }
    let mut fields = Vec::new();
    for s in segs {
        if s.is_empty() {
            return Err(malformed());
        }
        fields.push(check_field(s, inner)?.to_owned());
    }
    Ok(Placeholder {
        root: root.to_owned(),
        fields,
    })
}

/// A statement appending `value` (an expression of a `Display` type)
/// escaped, with the separators `also`. With the parameter's declared type
/// `ty`, the call names it (`push_part::<T>`, spanned on `T`): every use of
/// a parameter whose type is not `Display`, in the function and in each
/// companion, is then one identical error on the type, reported once. A
/// parameter of type `Option<T>` (behind `&`, `Box`, `Arc`, `Rc` or not)
/// renders `Some(v)` as `v` and `None` as `%none`, which no escaped value
/// can spell; see [`push_typed`].
pub(crate) fn push_value(
    out: &syn::Ident,
    value: TokenStream,
    ty: Option<&syn::Type>,
    also: &str,
    span: Span,
) -> TokenStream {
    match ty.filter(|t| !mentions_impl_trait(t)) {
        Some(ty) => push_typed(out, &quote!(&#value), ty, also, 0),
        None => quote_spanned!(span=> ::cache_runtime::__private::push_part(&mut #out, &#value, #also);),
    }
}

/// Appends `value_ref` (an expression of type `&ty`). Options are matched:
/// `None` → `%none`; `Some(v)` → `v`, prefixed with `%some` when `v` is
/// itself optional (`Option<Option<T>>`), so that `None`, `Some(None)` and
/// `Some(Some(v))` stay apart.
fn push_typed(out: &syn::Ident, value_ref: &TokenStream, ty: &syn::Type, also: &str, depth: usize) -> TokenStream {
    let (derefs, inner) = peel(ty);
    let Some(item) = option_item(inner) else {
        let ty_span = syn::spanned::Spanned::span(ty);
        if derefs == 0 && is_primitive_int(ty) {
            let f = quote_spanned!(ty_span=> ::cache_runtime::__private::push_int::<#ty>);
            return quote_spanned!(ty_span=> #f(&mut #out, *#value_ref, #also););
        }
        let f = quote_spanned!(ty_span=> ::cache_runtime::__private::push_part::<#ty>);
        return quote_spanned!(ty_span=> #f(&mut #out, #value_ref, #also););
    };
    let stars = (0..=derefs).map(|_| quote!(*));
    let v = format_ident!("__cache_v{}", depth, span = Span::mixed_site());
    let nested = option_item(peel(item).1).is_some();
    let prefix = nested.then(|| quote!(::cache_runtime::__private::push_some(&mut #out);));
    let some = push_typed(out, &quote!(#v), item, also, depth + 1);
    quote!(
        match ::core::option::Option::as_ref(&#(#stars)* #value_ref) {
            ::core::option::Option::Some(#v) => {
                #prefix
                #some
            }
            ::core::option::Option::None => ::cache_runtime::__private::push_none(&mut #out),
        }
    )
}

/// Whether `ty` is spelled as a primitive integer (`i64`, `u32`, …), whose
/// key part is written without the `fmt` machinery (`__private::push_int`).
fn is_primitive_int(ty: &syn::Type) -> bool {
    const INTS: [&str; 12] = [
        "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
    ];
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => p.path.get_ident().is_some_and(|id| INTS.iter().any(|i| id == i)),
        _ => false,
    }
}

/// Strips `&`, `&mut`, `Box<_>`, `Arc<_>`, `Rc<_>` and parentheses:
/// (how many dereferences reach the inner type, the inner type).
fn peel(ty: &syn::Type) -> (usize, &syn::Type) {
    match ty {
        syn::Type::Reference(r) => {
            let (n, t) = peel(&r.elem);
            (n + 1, t)
        }
        syn::Type::Paren(p) => peel(&p.elem),
        syn::Type::Group(g) => peel(&g.elem),
        _ => match single_arg(ty, &["Box", "Arc", "Rc"]) {
            Some(inner) => {
                let (n, t) = peel(inner);
                (n + 1, t)
            }
            None => (0, ty),
        },
    }
}

/// `T` of `Option<T>`.
fn option_item(ty: &syn::Type) -> Option<&syn::Type> {
    single_arg(ty, &["Option"])
}

/// `T` of `Name<T>` for a path type whose last segment is one of `names`.
fn single_arg<'t>(ty: &'t syn::Type, names: &[&str]) -> Option<&'t syn::Type> {
    let syn::Type::Path(p) = ty else {
        return None;
    };
    let seg = p.path.segments.last()?;
    if p.qself.is_some() || !names.iter().any(|n| seg.ident == n) {
        return None;
    }
    let syn::PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    match a.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(t)] => Some(t),
        _ => None,
    }
}

/// `impl Trait` cannot be named in a turbofish.
fn mentions_impl_trait(ty: &syn::Type) -> bool {
    quote!(#ty).into_iter().any(|tt| mentions(&tt))
}

fn mentions(tt: &proc_macro2::TokenTree) -> bool {
    match tt {
        proc_macro2::TokenTree::Ident(i) => i == "impl",
        proc_macro2::TokenTree::Group(g) => g.stream().into_iter().any(|t| mentions(&t)),
        _ => false,
    }
}

/// The identifier `name` (checked by [`parse_path`]), raw when it is a keyword.
pub(crate) fn ident(name: &str, span: Span) -> syn::Ident {
    if is_keyword(name) {
        syn::Ident::new_raw(name, span)
    } else {
        syn::Ident::new(name, span)
    }
}

/// Every two placeholders have literal text between them, and no literal
/// after a placeholder starts with `%` (escapes start with `%`, so it cannot
/// mark where a value ends). Errors go to `errors`; false if any.
fn check_separated(parts: &[Part], lit: &LitStr, what: &str, errors: &mut Errors) -> bool {
    let mut ok = true;
    for pair in parts.windows(2) {
        match pair {
            [Part::Var(a), Part::Var(b)] => {
                ok = false;
                errors.at(
                    lit.span(),
                    format!(
                        "placeholders `{{{a}}}{{{b}}}` are adjacent in the {what} template: their values cannot be told apart (\"ab\" + \"\" and \"a\" + \"b\" would give one {what}); put a separator between them, e.g. `{{{a}}}:{{{b}}}`",
                        a = a.text(),
                        b = b.text()
                    ),
                );
            }
            [Part::Var(a), Part::Lit(l)] if l.starts_with('%') => {
                ok = false;
                errors.at(
                    lit.span(),
                    format!(
                        "`%` follows the placeholder `{{{a}}}` in the {what} template: escaped values contain `%` (as in `%3A`), so it cannot mark where the value ends; use another separator, e.g. `{{{a}}}:`",
                        a = a.text()
                    ),
                );
            }
            _ => {}
        }
    }
    ok
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
                            also: String::new(),
                        };
                    };
                    let inner = &text[i + 1..i + 1 + end];
                    match parse_path(inner) {
                        Ok(p) => {
                            if !buf.is_empty() {
                                parts.push(Part::Lit(std::mem::take(&mut buf)));
                            }
                            parts.push(Part::Var(p));
                        }
                        Err(why) => {
                            well_formed = false;
                            errors.at(lit.span(), format!("{why} (in the {what} template)"));
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
                        .and_then(|end| parse_path(&rest[..end]).ok().map(|p| (end, p)))
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
        if !check_separated(&parts, &lit, what, errors) {
            well_formed = false;
        }
        let also = separators(&parts);
        Template {
            lit,
            parts,
            well_formed,
            also,
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

    /// Uses the function's result (`{result…}`; only in tag and
    /// `invalidates` templates, see `validate::check_result`).
    pub(crate) fn uses_result(&self) -> bool {
        self.placeholders().any(|p| p.root == crate::validate::RESULT)
    }

    pub(crate) fn span(&self) -> Span {
        self.lit.span()
    }

    /// An expression building the `String`, with `suffix` (a literal)
    /// appended. `params` gives each parameter's declared type, so that a
    /// whole parameter is checked at its type (one error per type).
    pub(crate) fn build(&self, suffix: &str, params: &[crate::validate::Param]) -> TokenStream {
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
                        let id = ident(&p.root, span);
                        quote!(#id)
                    };
                    let fields = p.fields.iter().map(|f| {
                        let m: syn::Member = match f.parse::<u32>() {
                            Ok(n) => syn::Member::Unnamed(syn::Index { index: n, span }),
                            Err(_) => syn::Member::Named(ident(f, span)),
                        };
                        quote!(.#m)
                    });
                    let ty = if p.fields.is_empty() && p.root != "self" {
                        params
                            .iter()
                            .find(|q| syn::ext::IdentExt::unraw(&q.ident) == p.root)
                            .map(|q| &q.ty)
                    } else {
                        None
                    };
                    stmts.push(push_value(&out, quote!(#root #(#fields)*), ty, &self.also, span));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Template, usize) {
        let mut errors = Errors::default();
        let t = Template::parse(LitStr::new(s, Span::call_site()), "key", &mut errors);
        let n = errors.finish().err().map_or(0, |e| e.into_iter().count());
        (t, n)
    }

    #[test]
    fn separators_of_templates() {
        assert_eq!(parse("pair:{a}-{b}").0.also, "-");
        assert_eq!(parse("course:{id}").0.also, "");
        assert_eq!(parse("{a}:{b}").0.also, "");
        assert_eq!(parse("user{a}name{b}").0.also, "n");
        assert_eq!(parse("v1:{a}.{b}_x").0.also, "._");
        assert_eq!(parse("é{a}日{b}").0.also, "é日");
        assert_eq!(parse("lit:{{{a}}}<b>").0.also, "");
    }

    #[test]
    fn ambiguous_templates_are_errors() {
        for bad in ["cat:{a}{b}", "<a><b>", "{a}<b>", "x:{a}%{b}", "x:{a}%"] {
            let (t, n) = parse(bad);
            assert_eq!(n, 1, "{bad}");
            assert!(!t.well_formed, "{bad}");
        }
        for good in ["cat:{a}-{b}", "{a}{{{b}", "{a}x%{b}", "a%{b}"] {
            assert_eq!(parse(good).1, 0, "{good}");
        }
    }
}
