//! Stage 1: the attribute's arguments, parsed into a typed struct whose
//! fields keep their spans. Every malformed argument is recorded and parsing
//! goes on with the next one, so one build reports every misuse.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, LitInt, LitStr, Token, bracketed, parenthesized};

use crate::ctxt::{Errors, did_you_mean};
use crate::template::Template;

/// The valid argument names, in the order the docs list them.
pub(crate) const ARGUMENTS: &[&str] = &[
    "key",
    "ttl",
    "tags",
    "invalidates",
    "put",
    "skip",
    "covered",
    "cache",
    "negative_ttl",
    "early_refresh",
    "stale_while_revalidate",
    "stale_if_error",
    "version",
    "unless",
    "local",
];

/// The `Ttl` constants a bare identifier may name.
pub(crate) const TTL_NAMES: &[&str] = &["SHORT", "MEDIUM", "LONG", "VERY_LONG", "DAY"];

/// An argument's value with the span of its name.
pub(crate) struct Spanned<T> {
    pub(crate) name: Ident,
    pub(crate) value: T,
}

/// One optional argument. Duplicates are caught here, once for all arguments.
pub(crate) struct Slot<T>(Option<Spanned<T>>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(None)
    }
}

impl<T> Slot<T> {
    fn set(&mut self, name: Ident, value: T, errors: &mut Errors) {
        if self.0.is_some() {
            errors.at(
                name.span(),
                format!("duplicate argument `{name}`: give it once and remove this one"),
            );
        } else {
            self.0 = Some(Spanned { name, value });
        }
    }

    pub(crate) fn get(&self) -> Option<&Spanned<T>> {
        self.0.as_ref()
    }

    pub(crate) fn value(&self) -> Option<&T> {
        self.0.as_ref().map(|s| &s.value)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn into_value(self) -> Option<T> {
        self.0.map(|s| s.value)
    }

    pub(crate) fn name_span(&self) -> Option<Span> {
        self.0.as_ref().map(|s| s.name.span())
    }
}

/// `key = "template"` or `key = expr`.
pub(crate) enum KeyArg {
    Template(Template),
    Expr(Box<Expr>),
}

/// A duration argument (`ttl`, `negative_ttl`).
pub(crate) enum TtlArg {
    /// One of [`TTL_NAMES`].
    Named(Ident),
    /// `"90s"`, already converted to milliseconds.
    Literal { millis: u64, span: Span },
    /// Any `Duration` expression.
    Expr(Box<Expr>),
}

/// One entry of `invalidates = [..]`.
pub(crate) enum Invalidation {
    Key(Template),
    Tag(Template),
    Pattern(Template),
}

/// The parsed attribute, before any cross-check: each argument as written,
/// with its span. [`crate::validate`] turns it into the validated model.
#[derive(Default)]
pub(crate) struct RawArgs {
    pub(crate) key: Slot<KeyArg>,
    pub(crate) ttl: Slot<TtlArg>,
    pub(crate) tags: Slot<Vec<Template>>,
    pub(crate) invalidates: Slot<Vec<Invalidation>>,
    pub(crate) put: Slot<()>,
    pub(crate) skip: Slot<Vec<Ident>>,
    pub(crate) covered: Slot<Vec<Ident>>,
    pub(crate) cache: Slot<Box<Expr>>,
    pub(crate) negative_ttl: Slot<TtlArg>,
    /// XFetch's β: any `f64` expression (an integer literal is accepted).
    pub(crate) early_refresh: Slot<Box<Expr>>,
    pub(crate) stale_while_revalidate: Slot<TtlArg>,
    pub(crate) stale_if_error: Slot<TtlArg>,
    pub(crate) version: Slot<u32>,
    /// `unless = <closure or path>`: a predicate over the value.
    pub(crate) unless: Slot<Box<Expr>>,
    /// `local = false`: never served from the near cache.
    pub(crate) local: Slot<bool>,
}

/// Parses the attribute's tokens; errors go to `errors`.
pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> RawArgs {
    let mut args = RawArgs::default();
    let parser = |input: ParseStream<'_>| {
        while !input.is_empty() {
            if let Err(e) = parse_one(input, &mut args, errors) {
                errors.push(e);
                skip_to_comma(input);
            }
            if input.is_empty() {
                break;
            }
            if let Err(e) = input.parse::<Token![,]>() {
                errors.push(syn::Error::new(e.span(), "expected `,` between arguments"));
                skip_to_comma(input);
                let _ = input.parse::<Option<Token![,]>>();
            }
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(tokens) {
        errors.push(e);
    }
    args
}

/// Skips tokens up to (not including) the next top-level `,`.
fn skip_to_comma(input: ParseStream<'_>) {
    let _ = input.step(|cursor| {
        let mut c = *cursor;
        while let Some((tt, next)) = c.token_tree() {
            if matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            c = next;
        }
        Ok(((), c))
    });
}

fn parse_one(input: ParseStream<'_>, args: &mut RawArgs, errors: &mut Errors) -> syn::Result<()> {
    let name = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!(
                "expected an argument name; valid arguments are: {}",
                ARGUMENTS.join(", ")
            ),
        )
    })?;
    let key = name.to_string();
    if key == "put" {
        if input.peek(Token![=]) {
            return Err(syn::Error::new(input.span(), "`put` takes no value: write just `put`"));
        }
        args.put.set(name, (), errors);
        return Ok(());
    }
    if !ARGUMENTS.contains(&key.as_str()) {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "unknown argument `{key}`{}; valid arguments are: {}",
                did_you_mean(&key, ARGUMENTS.iter().copied()),
                ARGUMENTS.join(", ")
            ),
        ));
    }
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            name.span(),
            format!("`{key}` needs a value: `{key} = ...`"),
        ));
    }
    input.parse::<Token![=]>()?;
    match key.as_str() {
        "key" => {
            let v = if input.peek(LitStr) {
                KeyArg::Template(Template::parse(lit_str(input)?, "key", errors))
            } else {
                KeyArg::Expr(Box::new(input.parse()?))
            };
            args.key.set(name, v, errors);
        }
        "ttl" => {
            let v = parse_ttl(input, "ttl")?;
            args.ttl.set(name, v, errors);
        }
        "negative_ttl" => {
            let v = parse_ttl(input, "negative_ttl")?;
            args.negative_ttl.set(name, v, errors);
        }
        "stale_while_revalidate" => {
            let v = parse_ttl(input, "stale_while_revalidate")?;
            args.stale_while_revalidate.set(name, v, errors);
        }
        "stale_if_error" => {
            let v = parse_ttl(input, "stale_if_error")?;
            args.stale_if_error.set(name, v, errors);
        }
        "local" => {
            let b: syn::LitBool = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`local` is `true` or `false`: `local = false` keeps this function's values out of the near cache",
                )
            })?;
            args.local.set(name, b.value, errors);
        }
        "early_refresh" => {
            let e: Expr = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`early_refresh` is the β of XFetch, a number: e.g. `early_refresh = 1.0` (0 turns it off)",
                )
            })?;
            args.early_refresh.set(name, Box::new(e), errors);
        }
        "tags" => {
            let v = parse_list(
                input,
                "tags",
                |input, errors| {
                    if input.peek(LitStr) {
                        Ok(Template::parse(lit_str(input)?, "tag", errors))
                    } else {
                        Err(input
                            .error("tags are string templates, e.g. `tags = [\"courses\", \"teacher:{teacher_id}\"]`"))
                    }
                },
                errors,
            )?;
            args.tags.set(name, v, errors);
        }
        "invalidates" => {
            let v = parse_list(input, "invalidates", parse_invalidation, errors)?;
            args.invalidates.set(name, v, errors);
        }
        "skip" => {
            let v = parse_list(
                input,
                "skip",
                |input, _| {
                    input.call(Ident::parse_any).map_err(|e| {
                        syn::Error::new(e.span(), "`skip` lists parameter names, e.g. `skip = [pool, tx]`")
                    })
                },
                errors,
            )?;
            args.skip.set(name, v, errors);
        }
        "covered" => {
            let v = parse_list(
                input,
                "covered",
                |input, _| {
                    input.call(Ident::parse_any).map_err(|e| {
                        syn::Error::new(e.span(), "`covered` lists parameter names, e.g. `covered = [params]`")
                    })
                },
                errors,
            )?;
            args.covered.set(name, v, errors);
        }
        "cache" => {
            let v: Expr = input.parse()?;
            args.cache.set(name, Box::new(v), errors);
        }
        "unless" => {
            let v: Expr = input.parse()?;
            if let Expr::Lit(lit) = &v {
                return Err(syn::Error::new_spanned(
                    lit,
                    "`unless` takes a closure or the path of a function over the value, returning `bool` (`true`: do not cache it), e.g. `unless = |courses| courses.is_empty()` or `unless = Vec::is_empty`",
                ));
            }
            args.unless.set(name, Box::new(v), errors);
        }
        "version" => {
            let lit: LitInt = input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), "`version` is a whole number, e.g. `version = 2`"))?;
            if !lit.suffix().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "`version` is a plain whole number: remove the suffix `{}`, e.g. `version = {}`",
                        lit.suffix(),
                        lit.base10_digits()
                    ),
                ));
            }
            let v = lit.base10_parse::<u32>().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    "`version` is a whole number that fits in u32, e.g. `version = 2`",
                )
            })?;
            args.version.set(name, v, errors);
        }
        _ => unreachable!("checked against ARGUMENTS"),
    }
    Ok(())
}

/// `[a, b, c]`; each element's errors are recorded and the list goes on.
fn parse_list<T>(
    input: ParseStream<'_>,
    what: &str,
    mut each: impl FnMut(ParseStream<'_>, &mut Errors) -> syn::Result<T>,
    errors: &mut Errors,
) -> syn::Result<Vec<T>> {
    if !input.peek(syn::token::Bracket) {
        return Err(input.error(format!("`{what}` takes a list in brackets: `{what} = [...]`")));
    }
    let content;
    bracketed!(content in input);
    let mut out = Vec::new();
    while !content.is_empty() {
        match each(&content, errors) {
            Ok(v) => out.push(v),
            Err(e) => {
                errors.push(e);
                skip_to_comma(&content);
            }
        }
        if content.is_empty() {
            break;
        }
        if let Err(e) = content.parse::<Token![,]>() {
            errors.push(syn::Error::new(
                e.span(),
                format!("expected `,` between the entries of `{what}`"),
            ));
            skip_to_comma(&content);
            let _ = content.parse::<Option<Token![,]>>();
        }
    }
    Ok(out)
}

fn parse_invalidation(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<Invalidation> {
    const HELP: &str =
        "an `invalidates` entry is a key template `\"course:{id}\"`, `tag(\"...\")` or `pattern(\"...\")`";
    if input.peek(LitStr) {
        return Ok(Invalidation::Key(Template::parse(lit_str(input)?, "key", errors)));
    }
    let kind = input
        .call(Ident::parse_any)
        .map_err(|e| syn::Error::new(e.span(), HELP))?;
    let kind_str = kind.to_string();
    if kind_str != "tag" && kind_str != "pattern" {
        return Err(syn::Error::new(
            kind.span(),
            format!(
                "unknown invalidation `{kind_str}`{}: {HELP}",
                did_you_mean(&kind_str, ["tag", "pattern"])
            ),
        ));
    }
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(kind.span(), format!("write `{kind_str}(\"...\")`")));
    }
    let content;
    parenthesized!(content in input);
    let lit: LitStr = lit_str(&content)
        .map_err(|e| syn::Error::new(e.span(), format!("`{kind_str}(..)` takes one string template")))?;
    if !content.is_empty() {
        return Err(content.error(format!("`{kind_str}(..)` takes one string template")));
    }
    Ok(if kind_str == "tag" {
        Invalidation::Tag(Template::parse(lit, "tag", errors))
    } else {
        Invalidation::Pattern(Template::parse(lit, "pattern", errors))
    })
}

/// A string literal without a suffix (`"90s"ms` is an error, not `"90s"`).
fn lit_str(input: ParseStream<'_>) -> syn::Result<LitStr> {
    let lit: LitStr = input.parse()?;
    if lit.suffix().is_empty() {
        Ok(lit)
    } else {
        Err(syn::Error::new(
            lit.span(),
            format!(
                "unexpected suffix `{}` after the string literal: remove it, e.g. `{:?}`",
                lit.suffix(),
                lit.value()
            ),
        ))
    }
}

fn parse_ttl(input: ParseStream<'_>, what: &str) -> syn::Result<TtlArg> {
    if input.peek(LitStr) {
        let lit = lit_str(input)?;
        let millis = parse_duration(&lit.value()).map_err(|why| {
            syn::Error::new(
                lit.span(),
                format!("malformed {what} literal {:?}: {why}; write a number and a unit (ms, s, m, h, d), e.g. \"90s\", \"5m\", \"2h\", \"1d\"", lit.value()),
            )
        })?;
        return Ok(TtlArg::Literal {
            millis,
            span: lit.span(),
        });
    }
    let fork = input.fork();
    let bare_number = (fork.parse::<LitInt>().is_ok() || fork.parse::<syn::LitFloat>().is_ok())
        && (fork.is_empty() || fork.peek(Token![,]));
    if bare_number {
        let tok: proc_macro2::TokenTree = input.parse()?;
        // `90ms` lexes as the number 90 with the suffix `ms`.
        if let Ok(lit) = syn::parse2::<LitInt>(tok.clone().into())
            && ["ms", "s", "m", "h", "d"].contains(&lit.suffix())
        {
            return Err(syn::Error::new(
                tok.span(),
                format!(
                    "a duration literal is a string: write `{what} = \"{}{}\"`",
                    lit.base10_digits(),
                    lit.suffix()
                ),
            ));
        }
        return Err(syn::Error::new(
            tok.span(),
            format!(
                "a bare number has no unit: write `{what} = \"{tok}s\"` or `{what} = std::time::Duration::from_secs({tok})`"
            ),
        ));
    }
    let fork = input.fork();
    if let Ok(id) = fork.call(Ident::parse_any)
        && (fork.is_empty() || fork.peek(Token![,]))
    {
        input.call(Ident::parse_any)?;
        let name = id.to_string();
        if TTL_NAMES.contains(&name.as_str()) {
            return Ok(TtlArg::Named(id));
        }
        return Err(syn::Error::new(
            id.span(),
            format!(
                "unknown ttl name `{name}`{}; the constants are {}; a constant of your own is written as a path or a block: `{what} = crate::{name}` or `{what} = {{ {name} }}`",
                did_you_mean(&name, TTL_NAMES.iter().copied()),
                TTL_NAMES.join(", "),
            ),
        ));
    }
    Ok(TtlArg::Expr(Box::new(input.parse()?)))
}

/// `"90s"` → 90 000. Units: ms, s, m, h, d.
fn parse_duration(s: &str) -> Result<u64, &'static str> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err("it must start with a number");
    }
    let n: u64 = s[..digits].parse().map_err(|_| "the number is too large")?;
    let unit = match &s[digits..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err("the unit is missing"),
        _ => return Err("unknown unit"),
    };
    if n == 0 {
        return Err("it must be longer than zero");
    }
    n.checked_mul(unit).ok_or("the number is too large")
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
