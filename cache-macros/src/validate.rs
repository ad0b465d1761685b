//! Stage 2: the function as the expansion sees it, and every cross-check
//! between the arguments and the signature.
//!
//! [`validate`] reads the function's shape ([`FnShape`]: receiver,
//! parameters, return kind), then runs a sequence of small named checks
//! (serde_derive's `internals/check.rs`), each recording its errors, and
//! finally turns the raw arguments ([`RawArgs`]) into the validated
//! [`Model`] that [`crate::expand`] reads. Whether a misuse was found is
//! the error context's business, not a flag threaded through the checks.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{Expr, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::args::{Invalidation, KeyArg, RawArgs, TtlArg};
use crate::ctxt::{Errors, did_you_mean};
use crate::template::Template;

/// The name templates of tags and `invalidates` use for the function's
/// result (`"article:{result.id}"`).
pub(crate) const RESULT: &str = "result";

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

/// The key, validated.
pub(crate) enum Key {
    /// `key = "template"`.
    Template(Template),
    /// `key = expr`.
    Expr(Box<Expr>),
    /// No `key`: `module::fn` (or `Type::fn`) and every key parameter.
    Default,
}

/// The function's signature as the expansion sees it.
pub(crate) struct FnShape {
    pub(crate) receiver: Receiver,
    pub(crate) params: Vec<Param>,
    /// Every parameter has a name (no destructuring pattern).
    pub(crate) all_named: bool,
    pub(crate) kind: ReturnKind,
    /// The declared return type (`()` when omitted), with its own span.
    pub(crate) ret: TokenStream,
    /// The span of the type that is stored (`Course` in `Result<Course, E>`),
    /// where "not serializable" errors point.
    pub(crate) value_span: Span,
    /// The stored type as written, when the return type spells it (an alias
    /// without type arguments does not): the expansion names it once so
    /// that a missing derive is one error on it.
    pub(crate) value_ty: Option<Type>,
    /// A method of some type (has a receiver or mentions `Self`).
    pub(crate) in_impl: bool,
    /// The stored type is visibly concrete and `'static`, so the near cache
    /// may hold it (see [`near_eligible`]).
    pub(crate) near_ok: bool,
    /// Companions are generated (the function has an explicit visibility).
    pub(crate) companions: bool,
    /// The body that is cached: the function's block, or for an
    /// `#[async_trait]` method the block inside its `Box::pin(async move ..)`.
    pub(crate) body: syn::Block,
    /// The function is an `#[async_trait]` method: not `async`, returning
    /// `Pin<Box<dyn Future<Output = R> ..>>`; the expansion boxes its future.
    pub(crate) async_trait: bool,
}

impl FnShape {
    fn param_names(&self) -> Vec<String> {
        self.params.iter().map(|p| p.ident.unraw().to_string()).collect()
    }

    /// "parameters are: a, b", for error messages.
    fn listing(&self) -> String {
        let names = self.param_names();
        if names.is_empty() {
            "the function has no parameters".to_owned()
        } else {
            format!("parameters are: {}", names.join(", "))
        }
    }
}

/// The validated function and arguments: everything the expansion reads.
pub(crate) struct Model {
    pub(crate) shape: FnShape,
    pub(crate) mode: Mode,
    pub(crate) key: Key,
    /// Parameters that make up the key, in declaration order.
    pub(crate) key_params: Vec<Ident>,
    pub(crate) ttl: Option<TtlArg>,
    pub(crate) negative_ttl: Option<TtlArg>,
    pub(crate) early_refresh: Option<Box<Expr>>,
    pub(crate) stale_while_revalidate: Option<TtlArg>,
    pub(crate) stale_if_error: Option<TtlArg>,
    pub(crate) tags: Vec<Template>,
    /// Tags that use `{result…}`: computed from the loaded value.
    pub(crate) result_tags: Vec<Template>,
    /// `invalidates = [..]`, when given.
    pub(crate) invalidates: Option<Vec<Invalidation>>,
    /// `cache = expr`; `None` for the installed global cache.
    pub(crate) cache: Option<Box<Expr>>,
    pub(crate) version: Option<u32>,
    /// `unless = ..`: values for which it returns `true` are not stored.
    pub(crate) unless: Option<Box<Expr>>,
    /// `local = ..`: whether the near cache may serve it (default true).
    pub(crate) local: Option<bool>,
}

/// What the checks learn beyond the shape, for the checks after them.
#[derive(Default)]
struct Facts {
    /// Parameters in `skip`.
    skipped: BTreeSet<String>,
    /// `skip` named only parameters (coverage is meaningless otherwise).
    skip_valid: bool,
    /// The key template's placeholders name parameters.
    key_valid: bool,
}

/// Checks the function against the arguments and builds the model; `None`
/// when a misuse was found (every one is in `errors`).
pub(crate) fn validate(func: &ItemFn, args: RawArgs, errors: &mut Errors) -> Option<Model> {
    let before = errors.len();
    check_signature(func, errors);
    let shape = fn_shape(func, errors);
    let mode = mode_of(&args);
    check_put_has_key(&args, errors);
    check_mutation_arguments(&args, mode, errors);
    if errors.len() == before {
        // Only once the function itself is sound: its return kind decides.
        check_negative_ttl(&args, &shape, errors);
    }
    let mut facts = Facts {
        skip_valid: true,
        key_valid: true,
        ..Facts::default()
    };
    check_skip(&args, &shape, &mut facts, errors);
    check_placeholders(&args, &shape, &mut facts, errors);
    check_coverage(&args, &shape, mode, &facts, errors);
    if errors.len() != before {
        return None;
    }
    let key_params = shape
        .params
        .iter()
        .filter(|p| !facts.skipped.contains(&p.ident.unraw().to_string()))
        .map(|p| p.ident.clone())
        .collect();
    let RawArgs {
        key,
        ttl,
        tags,
        invalidates,
        cache,
        negative_ttl,
        early_refresh,
        stale_while_revalidate,
        stale_if_error,
        version,
        unless,
        local,
        ..
    } = args;
    let (result_tags, tags): (Vec<Template>, Vec<Template>) = tags
        .into_value()
        .unwrap_or_default()
        .into_iter()
        .partition(Template::uses_result);
    Some(Model {
        shape,
        mode,
        key: match key.into_value() {
            Some(KeyArg::Template(t)) => Key::Template(t),
            Some(KeyArg::Expr(e)) => Key::Expr(e),
            None => Key::Default,
        },
        key_params,
        ttl: ttl.into_value(),
        negative_ttl: negative_ttl.into_value(),
        early_refresh: early_refresh.into_value(),
        stale_while_revalidate: stale_while_revalidate.into_value(),
        stale_if_error: stale_if_error.into_value(),
        tags,
        result_tags,
        invalidates: invalidates.into_value(),
        cache: cache.into_value(),
        version: version.into_value(),
        unless: unless.into_value(),
        local: local.into_value(),
    })
}

/// `async` (or rewritten by `#[async_trait]`), not `const`, not variadic.
fn check_signature(func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
    if sig.asyncness.is_none() && async_trait_parts(func).is_none() {
        if boxed_future_output(&sig.output).is_some() {
            errors.at(
                sig.fn_token.span,
                "#[cached] on a function returning `Pin<Box<dyn Future>>` needs the shape `#[async_trait]` writes (the body `Box::pin(async move { .. })`); write the method as `async fn` (in an `#[async_trait]` impl, or a native `async fn` in a trait)",
            );
        } else {
            errors.at(
                sig.fn_token.span,
                "#[cached] applies to `async fn` only: make this function `async` (its callers then `.await` it)",
            );
        }
    }
    if let Some(c) = &sig.constness {
        errors.at(c.span, "#[cached] cannot apply to a `const fn`: remove `const`");
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "#[cached] does not support variadic functions");
    }
}

/// The receiver, the named parameters, the return kind and the body; an
/// `#[async_trait]` method is seen as the `async fn` it was written as.
fn fn_shape(func: &ItemFn, errors: &mut Errors) -> FnShape {
    let (async_trait, body, sig) = match async_trait_parts(func) {
        Some((output, body)) => {
            let mut sig = func.sig.clone();
            sig.output = ReturnType::Type(Default::default(), Box::new(output));
            (true, body, sig)
        }
        None => (false, (*func.block).clone(), func.sig.clone()),
    };
    let sig = &sig;
    let (receiver, params, all_named) = receiver_and_params(sig, errors);
    let (kind, ret, value_span, value_ty) = return_kind(sig, errors);
    let mut sig_idents = BTreeSet::new();
    idents(quote::quote!(#sig), &mut sig_idents);
    let near_ok = value_ty.as_ref().is_some_and(|t| near_eligible(t, &sig.generics));
    FnShape {
        near_ok,
        in_impl: receiver != Receiver::None || sig_idents.contains("Self"),
        companions: !matches!(func.vis, syn::Visibility::Inherited),
        receiver,
        params,
        all_named,
        kind,
        ret,
        value_span,
        value_ty,
        body,
        async_trait,
    }
}

/// Whether the stored type may go to the near cache, which holds values as
/// `Any` and so needs them `'static`. Whether a type is `'static` is decided
/// after the runtime's choice of near or not (lifetimes play no part in
/// trait selection), so a type that might not be, would fail to compile
/// instead of falling back: only types that are visibly concrete qualify.
/// Not: `Self`, the function's generic parameters, lifetimes other than
/// `'static`, qualified paths (`<T as Tr>::X`), associated types of
/// capitalised names (`T::Row`), and single capitals (`T`, `R2`), the usual
/// spelling of an `impl`'s type parameters (invisible from here; other
/// spellings need `local = false`).
fn near_eligible(ty: &Type, generics: &syn::Generics) -> bool {
    use proc_macro2::TokenTree;
    let params: BTreeSet<String> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(t.ident.to_string()),
            syn::GenericParam::Const(c) => Some(c.ident.to_string()),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    fn walk(tokens: TokenStream, params: &BTreeSet<String>) -> bool {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, t) in tokens.iter().enumerate() {
            match t {
                TokenTree::Group(g) if !walk(g.stream(), params) => return false,
                TokenTree::Punct(p)
                    if p.as_char() == '\''
                        && !matches!(tokens.get(i + 1), Some(TokenTree::Ident(l)) if l == "static") =>
                {
                    return false;
                }
                TokenTree::Ident(id) => {
                    let name = id.to_string();
                    let after_quote = i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '\'');
                    if after_quote {
                        continue;
                    }
                    let single_capital = {
                        let mut c = name.chars();
                        c.next().is_some_and(|f| f.is_ascii_uppercase()) && c.all(|d| d.is_ascii_digit())
                    };
                    let projection = name.starts_with(|c: char| c.is_ascii_uppercase())
                        && matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                    if name == "Self" || name == "as" || params.contains(&name) || single_capital || projection {
                        return false;
                    }
                }
                _ => {}
            }
        }
        true
    }
    walk(quote::quote!(#ty), &params)
}

/// `R` of a return type `Pin<Box<dyn Future<Output = R> + ..>>`.
fn boxed_future_output(output: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let pin = last_segment(ty).filter(|s| s.ident == "Pin")?;
    let boxed = first_type_arg(pin)?;
    let bx = last_segment(boxed).filter(|s| s.ident == "Box")?;
    let Type::TraitObject(dyn_future) = first_type_arg(bx)? else {
        return None;
    };
    dyn_future.bounds.iter().find_map(|b| {
        let syn::TypeParamBound::Trait(t) = b else {
            return None;
        };
        let future = t.path.segments.last().filter(|s| s.ident == "Future")?;
        let PathArguments::AngleBracketed(a) = &future.arguments else {
            return None;
        };
        a.args.iter().find_map(|g| match g {
            GenericArgument::AssocType(at) if at.ident == "Output" => Some(at.ty.clone()),
            _ => None,
        })
    })
}

/// For a method rewritten by `#[async_trait]` (not `async`, returning
/// `Pin<Box<dyn Future<Output = R>>>`, body `Box::pin(async move { .. })`):
/// `R` and the async block's body.
fn async_trait_parts(func: &ItemFn) -> Option<(Type, syn::Block)> {
    if func.sig.asyncness.is_some() {
        return None;
    }
    let output = boxed_future_output(&func.sig.output)?;
    let [syn::Stmt::Expr(Expr::Call(call), None)] = func.block.stmts.as_slice() else {
        return None;
    };
    let Expr::Path(f) = &*call.func else {
        return None;
    };
    let is_pin = f.path.segments.last().is_some_and(|s| s.ident == "pin");
    if !is_pin || call.args.len() != 1 {
        return None;
    }
    match &call.args[0] {
        Expr::Async(a) if a.capture.is_some() => Some((output, a.block.clone())),
        _ => None,
    }
}

/// How `self` is taken, and every parameter bound to a plain name.
fn receiver_and_params(sig: &syn::Signature, errors: &mut Errors) -> (Receiver, Vec<Param>, bool) {
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
                    all_named = false;
                }
            },
        }
    }
    (receiver, params, all_named)
}

/// The return kind, the return type's tokens, the stored value's span and
/// type; `impl Trait`, references and trait objects cannot be stored.
fn return_kind(sig: &syn::Signature, errors: &mut Errors) -> (ReturnKind, TokenStream, Span, Option<Type>) {
    let ty = match &sig.output {
        ReturnType::Default => {
            let unit: Type = syn::parse_quote!(());
            return (ReturnKind::Plain, quote::quote!(()), sig.fn_token.span, Some(unit));
        }
        ReturnType::Type(_, ty) => ty,
    };
    let ret = quote::quote!(#ty);
    let unstorable = match &**ty {
        Type::ImplTrait(_) => Some(
            "a #[cached] function cannot return `impl Trait`: the value is stored and read back, so name a concrete type that implements Serialize and Deserialize",
        ),
        Type::Reference(_) => Some(
            "a #[cached] function cannot return a reference: cached values are read back as owned data; return an owned type (e.g. `String` for `&str`, `Vec<T>` for `&[T]`)",
        ),
        Type::TraitObject(_) => Some(
            "a #[cached] function cannot return a trait object: name a concrete type that implements Serialize and Deserialize",
        ),
        _ => None,
    };
    if let Some(message) = unstorable {
        errors.spanned(ty, message);
        return (ReturnKind::Plain, ret, sig.fn_token.span, None);
    }
    let seg = last_segment(ty);
    if seg.is_some_and(|s| s.ident.to_string().ends_with("Result")) {
        let ok_ty = seg.and_then(first_type_arg);
        let optional = ok_ty.is_some_and(|t| is_named(t, "Option"));
        let value = if optional {
            ok_ty.and_then(last_segment).and_then(first_type_arg)
        } else {
            ok_ty
        };
        let span = value.map_or_else(|| ty.span(), |t| t.span());
        (ReturnKind::Result { optional }, ret, span, value.cloned())
    } else if is_named(ty, "Option") {
        let value = seg.and_then(first_type_arg);
        let span = value.map_or_else(|| ty.span(), |t| t.span());
        (ReturnKind::Option, ret, span, value.cloned())
    } else {
        (ReturnKind::Plain, ret, ty.span(), Some((**ty).clone()))
    }
}

/// Read, write-through or pure mutation, from the arguments given.
fn mode_of(args: &RawArgs) -> Mode {
    if args.put.is_set() {
        Mode::Put
    } else if args.invalidates.is_set() && !args.key.is_set() {
        Mode::Mutation
    } else {
        Mode::Read
    }
}

/// `put` stores under `key`, so it needs one.
fn check_put_has_key(args: &RawArgs, errors: &mut Errors) {
    if let (Some(put), false) = (args.put.get(), args.key.is_set()) {
        errors.at(
            put.name.span(),
            "`put` stores the result under `key`, but there is no key: add `key = \"...\"` (e.g. `key = \"course:{id}\"`)",
        );
    }
}

/// A pure mutation caches nothing: arguments about the entry are mistakes,
/// and an empty `invalidates` does nothing.
fn check_mutation_arguments(args: &RawArgs, mode: Mode, errors: &mut Errors) {
    if mode != Mode::Mutation {
        return;
    }
    let useless: [(&str, Option<Span>); 11] = [
        ("ttl", args.ttl.name_span()),
        ("tags", args.tags.name_span()),
        ("negative_ttl", args.negative_ttl.name_span()),
        ("early_refresh", args.early_refresh.name_span()),
        ("stale_while_revalidate", args.stale_while_revalidate.name_span()),
        ("stale_if_error", args.stale_if_error.name_span()),
        ("version", args.version.name_span()),
        ("skip", args.skip.name_span()),
        ("covered", args.covered.name_span()),
        ("unless", args.unless.name_span()),
        ("local", args.local.name_span()),
    ];
    for (name, span) in useless {
        if let Some(span) = span {
            errors.at(span, format!("`{name}` has no effect: with `invalidates` and no `key` the function is a pure mutation whose result is not cached; remove `{name}`, or add `key = \"...\"` to cache the result too"));
        }
    }
    if args.invalidates.value().is_some_and(Vec::is_empty)
        && let Some(s) = args.invalidates.name_span()
    {
        errors.at(
            s,
            "`invalidates` is empty: list keys, `tag(\"..\")` or `pattern(\"..\")` entries, or remove it",
        );
    }
}

/// `negative_ttl` caches `None`, so the function must return an `Option`.
fn check_negative_ttl(args: &RawArgs, shape: &FnShape, errors: &mut Errors) {
    if let Some(neg) = args.negative_ttl.get()
        && !shape.kind.optional()
    {
        errors.at(neg.name.span(), "`negative_ttl` caches `None`, but this function does not return an `Option` (or a `Result<Option<T>, E>`): remove `negative_ttl`");
    }
}

/// `skip` names parameters (not `self`), each once.
fn check_skip(args: &RawArgs, shape: &FnShape, facts: &mut Facts, errors: &mut Errors) {
    let param_names = shape.param_names();
    for id in args.skip.value().into_iter().flatten() {
        let name = id.unraw().to_string();
        if name == "self" {
            errors.at(id.span(), "`self` is never part of a key: remove it from `skip` (use `{self.field}` in the key for state behind `self`)");
        } else if !param_names.contains(&name) {
            errors.at(
                id.span(),
                format!(
                    "`skip` names `{name}`, which is not a parameter{}; {}",
                    did_you_mean(&name, param_names.iter().map(String::as_str)),
                    shape.listing()
                ),
            );
            facts.skip_valid = false;
        } else if !facts.skipped.insert(name.clone()) {
            errors.at(id.span(), format!("`{name}` is listed twice in `skip`: remove one"));
        }
    }
}

/// Every placeholder of every template names a parameter, or a field of
/// `self` in a method.
fn check_placeholders(args: &RawArgs, shape: &FnShape, facts: &mut Facts, errors: &mut Errors) {
    if let Some(KeyArg::Template(t)) = args.key.value() {
        facts.key_valid = check_template(t, "key", shape, errors);
    }
    for t in args.tags.value().into_iter().flatten() {
        check_template(t, "tag", shape, errors);
    }
    for inv in args.invalidates.value().into_iter().flatten() {
        match inv {
            Invalidation::Key(t) => check_template(t, "invalidated key", shape, errors),
            Invalidation::Tag(t) => check_template(t, "invalidated tag", shape, errors),
            Invalidation::Pattern(t) => check_template(t, "invalidated pattern", shape, errors),
        };
    }
}

/// `{result…}` in a tag or `invalidates` template names the function's
/// result; it is checked here, before the parameters are. False if the
/// template cannot be used.
fn check_result(t: &Template, what: &str, shape: &FnShape, errors: &mut Errors) -> bool {
    let Some(p) = t.placeholders().find(|p| p.root == RESULT) else {
        return true;
    };
    let shadowed = shape.param_names().iter().any(|n| n == RESULT);
    if what == "key" {
        if shadowed {
            // `{result}` is that parameter, as any other.
            return true;
        }
        errors.at(
            t.span(),
            format!(
                "`{{{}}}` cannot be in the key: the key is needed before the load, and `result` is the loaded value; keep the key to the parameters, and to invalidate this entry by a field of the result, tag it: `tags = [\"…:{{{}}}\"]`",
                p.text(),
                p.text()
            ),
        );
        return false;
    }
    if shadowed {
        errors.at(
            t.span(),
            format!(
                "`{{{}}}` in the {what} template is ambiguous: `result` names the function's result in tag and `invalidates` templates, and this function also has a parameter `result`; rename the parameter",
                p.text()
            ),
        );
        return false;
    }
    if let Some(other) = t.placeholders().find(|p| p.root != RESULT) {
        errors.at(
            t.span(),
            format!(
                "the {what} template mixes `{{{}}}` with `{{{}}}`: a template that names the result may use only `{{result…}}` placeholders (it is built after the body ran, when the parameters are gone); split it in two, e.g. `\"x:{{{}}}\"` and `\"y:{{{}}}\"`",
                p.text(),
                other.text(),
                p.text(),
                other.text()
            ),
        );
        return false;
    }
    true
}

/// One template's placeholders; false if the template cannot be used for
/// the coverage check (malformed, or naming an unknown parameter).
fn check_template(t: &Template, what: &str, shape: &FnShape, errors: &mut Errors) -> bool {
    if !shape.all_named {
        // The parameters are not all known: placeholder errors would mislead.
        return false;
    }
    if !check_result(t, what, shape, errors) {
        return false;
    }
    let param_names = shape.param_names();
    let has_self = shape.receiver != Receiver::None;
    let mut good = t.well_formed;
    let result_is_value = what != "key" && !param_names.iter().any(|n| n == RESULT);
    for p in t.placeholders() {
        if p.root == RESULT && result_is_value {
            // The function's result (see `check_result`).
        } else if p.root == "self" {
            if !has_self {
                errors.at(
                    t.span(),
                    format!(
                        "the {what} template uses `{{{}}}`, but this function has no `self` receiver; {}",
                        p.text(),
                        shape.listing()
                    ),
                );
            } else if p.fields.is_empty() {
                errors.at(
                    t.span(),
                    format!("`{{self}}` in the {what} template: interpolate a field, e.g. `{{self.tenant_id}}`"),
                );
            }
        } else if !param_names.contains(&p.root) {
            errors.at(
                t.span(),
                format!(
                    "unknown placeholder `{{{}}}` in the {what} template: `{}` is not a parameter{}; {}",
                    p.text(),
                    p.root,
                    did_you_mean(
                        &p.root,
                        param_names.iter().map(String::as_str).chain(has_self.then_some("self"))
                    ),
                    shape.listing()
                ),
            );
            good = false;
        }
    }
    good
}

/// Every parameter that is neither `self` nor skipped is in the key, whole
/// or through fields declared in `covered`; a skipped one is not in it.
fn check_coverage(args: &RawArgs, shape: &FnShape, mode: Mode, facts: &Facts, errors: &mut Errors) {
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
    let param_names = shape.param_names();
    let covered = check_covered(
        args,
        &param_names,
        &facts.skipped,
        &partial,
        mode,
        &shape.listing(),
        errors,
    );
    // Coverage is only meaningful once the key and `skip` are themselves valid.
    let Some(key) = args
        .key
        .get()
        .filter(|_| facts.key_valid && facts.skip_valid && shape.all_named)
    else {
        return;
    };
    for p in &shape.params {
        let name = p.ident.unraw().to_string();
        if facts.skipped.contains(&name) {
            if in_key.contains(&name)
                && let Some(id) = args.skip.value().into_iter().flatten().find(|i| **i == name)
            {
                errors.at(
                    id.span(),
                    format!("`{name}` is in `skip` but the key uses it: remove it from `skip`"),
                );
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
        }
    }
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
/// declared complete. Returns the valid entries.
fn check_covered(
    args: &RawArgs,
    param_names: &[String],
    skipped: &BTreeSet<String>,
    partial: &BTreeMap<String, BTreeSet<String>>,
    mode: Mode,
    listing: &str,
    errors: &mut Errors,
) -> BTreeSet<String> {
    let mut covered = BTreeSet::new();
    if mode == Mode::Mutation {
        return covered;
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
        }
    }
    covered
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
