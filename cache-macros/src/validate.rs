//! Stage 2: the function as the expansion sees it (receiver, parameters,
//! return kind, mode), and every cross-check between the arguments and the
//! signature.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::args::{Args, Invalidation, KeyArg};
use crate::ctxt::{Errors, did_you_mean};
use crate::template::Template;

/// How the method receives `self`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    /// A free or associated function.
    None,
    /// `&self`: the cache handle can be borrowed next to the body.
    Shared,
    /// `&mut self`, `self`, `self: Arc<Self>`, …: the body takes `self`.
    Owned,
}

/// A named parameter.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// What the function returns, which decides the runtime call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    /// A path whose last segment ends in `Result` (`Result`, `io::Result`,
    /// `DbResult`); `optional` when its `Ok` type is an `Option`.
    Result { optional: bool },
    /// `Option<T>`.
    Option,
    /// Anything else, `()` included.
    Plain,
}

impl ReturnKind {
    pub(crate) fn optional(self) -> bool {
        matches!(self, ReturnKind::Option | ReturnKind::Result { optional: true })
    }
}

/// What the function does with the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read-through under a key (explicit or default).
    Read,
    /// `put`: write-through.
    Put,
    /// `invalidates` without `key`/`put`: the body always runs.
    Mutation,
}

/// The validated function.
pub(crate) struct Model {
    pub(crate) receiver: Receiver,
    pub(crate) params: Vec<Param>,
    pub(crate) kind: ReturnKind,
    /// The declared return type (`()` when omitted), with its own span.
    pub(crate) ret: TokenStream,
    /// The span of the type that is stored (`Course` in `Result<Course, E>`),
    /// where "not serializable" errors point.
    pub(crate) value_span: Span,
    pub(crate) mode: Mode,
    /// Parameters that make up the key, in declaration order.
    pub(crate) key_params: Vec<Ident>,
    /// A method of some type (has a receiver or mentions `Self`).
    pub(crate) in_impl: bool,
    /// Companions are generated (the function has an explicit visibility).
    pub(crate) companions: bool,
}

/// Every identifier token in a token stream, macro arguments included
/// (never text inside literals). For the key's coverage, see [`crate::uses`].
pub(crate) fn idents(tokens: TokenStream, out: &mut BTreeSet<String>) {
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                out.insert(i.to_string());
            }
            TokenTree::Group(g) => idents(g.stream(), out),
            TokenTree::Literal(_) | TokenTree::Punct(_) => {}
        }
    }
}

/// Parameters the key uses only through fields (`{params.limit}`,
/// `params.limit` in an expression), never whole: name → fields used.
fn partial_uses(key: &KeyArg) -> BTreeMap<String, BTreeSet<String>> {
    let (whole, mut fields): (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) = match key {
        KeyArg::Template(t) => {
            let mut whole = BTreeSet::new();
            let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for p in t.placeholders().filter(|p| p.root != "self") {
                match p.fields.first() {
                    None => {
                        whole.insert(p.root.clone());
                    }
                    Some(_) => {
                        fields.entry(p.root.clone()).or_default().insert(p.fields.join("."));
                    }
                }
            }
            (whole, fields)
        }
        KeyArg::Expr(e) => {
            let uses = crate::uses::of_expr(e);
            (uses.whole, uses.fields)
        }
    };
    fields.retain(|name, _| !whole.contains(name));
    fields
}

/// Checks `covered = [..]`: parameters the key uses only through fields,
/// declared complete: the valid entries, and false after an error.
fn check_covered(
    args: &Args,
    param_names: &[String],
    skipped: &BTreeSet<String>,
    partial: &BTreeMap<String, BTreeSet<String>>,
    mode: Mode,
    listing: &str,
    errors: &mut Errors,
) -> (BTreeSet<String>, bool) {
    let mut covered = BTreeSet::new();
    let mut ok = true;
    if mode == Mode::Mutation {
        return (covered, true);
    }
    for id in args.covered.value().into_iter().flatten() {
        let name = id.unraw().to_string();
        let error = if name == "self" {
            Some("`self` is never part of a key's coverage: remove it from `covered` (use `{self.field}` in the key for state behind `self`)".to_owned())
        } else if !param_names.contains(&name) {
            Some(format!(
                "`covered` names `{name}`, which is not a parameter{}; {listing}",
                did_you_mean(&name, param_names.iter().map(String::as_str))
            ))
        } else if skipped.contains(&name) {
            Some(format!(
                "`{name}` is in both `skip` and `covered`: keep one (`skip` if it does not change the result)"
            ))
        } else if !partial.contains_key(&name) {
            Some(format!(
                "`covered` lists `{name}`, but the key does not use it through fields (it uses it whole, or not at all): remove it from `covered`"
            ))
        } else if !covered.insert(name.clone()) {
            Some(format!("`{name}` is listed twice in `covered`: remove one"))
        } else {
            None
        };
        if let Some(message) = error {
            errors.at(id.span(), message);
            ok = false;
        }
    }
    (covered, ok)
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn first_type_arg(seg: &syn::PathSegment) -> Option<&Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

/// Checks the function against the arguments.
pub(crate) fn validate(func: &ItemFn, args: &Args, errors: &mut Errors) -> Option<Model> {
    let sig = &func.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            "#[cached] applies to `async fn` only: make this function `async` (its callers then `.await` it)",
        );
        ok = false;
    }
    if let Some(c) = &sig.constness {
        errors.at(c.span, "#[cached] cannot apply to a `const fn`: remove `const`");
        ok = false;
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "#[cached] does not support variadic functions");
        ok = false;
    }

    // Receiver and parameters.
    let mut receiver = Receiver::None;
    let mut all_named = true;
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                let shared = match &r.kind {
                    syn::ReceiverKind::Reference(_, _, mutability) => mutability.is_none(),
                    syn::ReceiverKind::Typed(_, ty) => matches!(&**ty, Type::Reference(t) if t.mutability.is_none()),
                    _ => false,
                };
                receiver = if shared { Receiver::Shared } else { Receiver::Owned };
            }
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => params.push(Param {
                    ident: p.ident.clone(),
                    ty: (*t.ty).clone(),
                }),
                other => {
                    errors.spanned(
                        other,
                        "#[cached] needs a name for every parameter: bind it as `name: Type` and destructure it in the body (list it in `skip = [..]` if it is not part of the key)",
                    );
                    ok = false;
                    all_named = false;
                }
            },
        }
    }
    let param_names: Vec<String> = params.iter().map(|p| p.ident.unraw().to_string()).collect();
    let listing = if param_names.is_empty() {
        "the function has no parameters".to_owned()
    } else {
        format!("parameters are: {}", param_names.join(", "))
    };

    // Return type.
    let mut value_span = sig.fn_token.span;
    let (kind, ret) = match &sig.output {
        ReturnType::Default => (ReturnKind::Plain, quote::quote!(())),
        ReturnType::Type(_, ty) => {
            let ret = quote::quote!(#ty);
            match &**ty {
                Type::ImplTrait(_) => {
                    errors.spanned(ty, "a #[cached] function cannot return `impl Trait`: the value is stored and read back, so name a concrete type that implements Serialize and Deserialize");
                    ok = false;
                    (ReturnKind::Plain, ret)
                }
                Type::Reference(_) => {
                    errors.spanned(ty, "a #[cached] function cannot return a reference: cached values are read back as owned data; return an owned type (e.g. `String` for `&str`, `Vec<T>` for `&[T]`)");
                    ok = false;
                    (ReturnKind::Plain, ret)
                }
                Type::TraitObject(_) => {
                    errors.spanned(ty, "a #[cached] function cannot return a trait object: name a concrete type that implements Serialize and Deserialize");
                    ok = false;
                    (ReturnKind::Plain, ret)
                }
                _ => {
                    let seg = last_segment(ty);
                    if last_segment(ty).is_some_and(|s| s.ident.to_string().ends_with("Result")) {
                        let ok_ty = seg.and_then(first_type_arg);
                        let optional = ok_ty.is_some_and(|t| is_named(t, "Option"));
                        let value = if optional {
                            ok_ty.and_then(last_segment).and_then(first_type_arg)
                        } else {
                            ok_ty
                        };
                        value_span = value.map_or_else(|| ty.span(), |t| t.span());
                        (ReturnKind::Result { optional }, ret)
                    } else if is_named(ty, "Option") {
                        value_span = seg.and_then(first_type_arg).map_or_else(|| ty.span(), |t| t.span());
                        (ReturnKind::Option, ret)
                    } else {
                        value_span = ty.span();
                        (ReturnKind::Plain, ret)
                    }
                }
            }
        }
    };

    // Mode.
    let mode = if args.put.is_set() {
        Mode::Put
    } else if args.invalidates.is_set() && !args.key.is_set() {
        Mode::Mutation
    } else {
        Mode::Read
    };
    if let (Some(put), false) = (args.put.get(), args.key.is_set()) {
        errors.at(
            put.name.span(),
            "`put` stores the result under `key`, but there is no key: add `key = \"...\"` (e.g. `key = \"course:{id}\"`)",
        );
        ok = false;
    }
    if mode == Mode::Mutation {
        let useless: [(&str, Option<Span>); 6] = [
            ("ttl", args.ttl.name_span()),
            ("tags", args.tags.name_span()),
            ("negative_ttl", args.negative_ttl.name_span()),
            ("version", args.version.name_span()),
            ("skip", args.skip.name_span()),
            ("covered", args.covered.name_span()),
        ];
        for (name, span) in useless {
            if let Some(span) = span {
                errors.at(span, format!("`{name}` has no effect: with `invalidates` and no `key` the function is a pure mutation whose result is not cached; remove `{name}`, or add `key = \"...\"` to cache the result too"));
                ok = false;
            }
        }
        if args.invalidates.value().is_some_and(Vec::is_empty)
            && let Some(s) = args.invalidates.name_span()
        {
            errors.at(
                s,
                "`invalidates` is empty: list keys, `tag(\"..\")` or `pattern(\"..\")` entries, or remove it",
            );
            ok = false;
        }
    }
    if let Some(neg) = args.negative_ttl.get()
        && !kind.optional()
        && ok
    {
        errors.at(neg.name.span(), "`negative_ttl` caches `None`, but this function does not return an `Option` (or a `Result<Option<T>, E>`): remove `negative_ttl`");
        ok = false;
    }

    // skip.
    let mut skipped = BTreeSet::new();
    let mut skip_ok = true;
    for id in args.skip.value().into_iter().flatten() {
        let name = id.unraw().to_string();
        if name == "self" {
            errors.at(id.span(), "`self` is never part of a key: remove it from `skip` (use `{self.field}` in the key for state behind `self`)");
            ok = false;
        } else if !param_names.contains(&name) {
            errors.at(
                id.span(),
                format!(
                    "`skip` names `{name}`, which is not a parameter{}; {listing}",
                    did_you_mean(&name, param_names.iter().map(String::as_str))
                ),
            );
            ok = false;
            skip_ok = false;
        } else if !skipped.insert(name.clone()) {
            errors.at(id.span(), format!("`{name}` is listed twice in `skip`: remove one"));
            ok = false;
        }
    }

    // Placeholders of every template.
    let has_self = receiver != Receiver::None;
    let mut key_ok = true;
    let mut check_template = |t: &Template, what: &str, errors: &mut Errors| -> bool {
        let mut good = t.well_formed;
        if !all_named {
            // The parameters are not all known: placeholder errors would mislead.
            return false;
        }
        for p in t.placeholders() {
            if p.root == "self" {
                if !has_self {
                    errors.at(
                        t.span(),
                        format!(
                            "the {what} template uses `{{{}}}`, but this function has no `self` receiver; {listing}",
                            p.text()
                        ),
                    );
                    ok = false;
                } else if p.fields.is_empty() {
                    errors.at(
                        t.span(),
                        format!("`{{self}}` in the {what} template: interpolate a field, e.g. `{{self.tenant_id}}`"),
                    );
                    ok = false;
                }
            } else if !param_names.contains(&p.root) {
                errors.at(
                    t.span(),
                    format!(
                        "unknown placeholder `{{{}}}` in the {what} template: `{}` is not a parameter{}; {listing}",
                        p.text(),
                        p.root,
                        did_you_mean(
                            &p.root,
                            param_names.iter().map(String::as_str).chain(has_self.then_some("self"))
                        )
                    ),
                );
                ok = false;
                good = false;
            }
        }
        good
    };
    if let Some(KeyArg::Template(t)) = args.key.value() {
        key_ok = check_template(t, "key", errors);
    }
    for t in args.tags.value().into_iter().flatten() {
        check_template(t, "tag", errors);
    }
    for inv in args.invalidates.value().into_iter().flatten() {
        match inv {
            Invalidation::Key(t) => check_template(t, "invalidated key", errors),
            Invalidation::Tag(t) => check_template(t, "invalidated tag", errors),
            Invalidation::Pattern(t) => check_template(t, "invalidated pattern", errors),
        };
    }

    // Key coverage: every non-skipped parameter is in the key.
    let mut in_key = BTreeSet::new();
    match args.key.value() {
        Some(KeyArg::Template(t)) => in_key.extend(t.placeholders().map(|p| p.root.clone())),
        Some(KeyArg::Expr(e)) => {
            let uses = crate::uses::of_expr(e);
            in_key.extend(uses.whole);
            in_key.extend(uses.fields.into_keys());
        }
        None => {}
    }
    // Parameters the key uses only through fields: name → fields.
    let partial = args.key.value().map(partial_uses).unwrap_or_default();
    let (covered, covered_ok) = check_covered(args, &param_names, &skipped, &partial, mode, &listing, errors);
    ok &= covered_ok;
    // Coverage is only meaningful once the key and `skip` are themselves valid.
    if let Some(key) = args.key.get().filter(|_| key_ok && skip_ok && all_named) {
        for p in &params {
            let name = p.ident.unraw().to_string();
            if skipped.contains(&name) {
                if in_key.contains(&name)
                    && let Some(id) = args.skip.value().into_iter().flatten().find(|i| **i == name)
                {
                    errors.at(
                        id.span(),
                        format!("`{name}` is in `skip` but the key uses it: remove it from `skip`"),
                    );
                    ok = false;
                }
            } else if let Some(fields) = partial
                .get(&name)
                .filter(|_| mode == Mode::Read && !covered.contains(&name))
            {
                let used: Vec<String> = fields.iter().map(|f| format!("`{name}.{f}`")).collect();
                errors.at(
                    p.ident.span(),
                    format!(
                        "the key covers parameter `{name}` only through {}: two calls whose `{name}` differ in another field (a page offset, a filter) would share one cache entry; add every field that changes the result to the key, and if the fields in the key determine the result, say so with `covered = [{name}]` (or `skip = [{name}]` if `{name}` does not change the result)",
                        used.join(", ")
                    ),
                );
                ok = false;
            } else if !in_key.contains(&name) {
                let fix = match &key.value {
                    KeyArg::Template(_) => format!("add `{{{name}}}` to the key"),
                    KeyArg::Expr(_) => format!("use `{name}` in the key expression"),
                };
                errors.at(
                    p.ident.span(),
                    format!(
                        "the key does not cover parameter `{name}`: two calls that differ only in `{name}` would share one cache entry; {fix}, or list it in `skip = [{name}]` if it does not change the result"
                    ),
                );
                ok = false;
            }
        }
    }
    let key_params: Vec<Ident> = params
        .iter()
        .filter(|p| !skipped.contains(&p.ident.unraw().to_string()))
        .map(|p| p.ident.clone())
        .collect();

    let mut sig_idents = BTreeSet::new();
    idents(quote::quote!(#sig), &mut sig_idents);
    let in_impl = has_self || sig_idents.contains("Self");
    let companions = !matches!(func.vis, syn::Visibility::Inherited);

    ok.then_some(Model {
        receiver,
        params,
        kind,
        ret,
        value_span,
        mode,
        key_params,
        in_impl,
        companions,
    })
}
