//! Stage 3: code generation. The expansion only wires the function to the
//! runtime's public cache-aside API (`Cache::get_or_load` and friends); every
//! behaviour lives in `cache_runtime`.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Ident, ItemFn};

use crate::args::{Invalidation, TtlArg};
use crate::validate::{Key, Mode, Model, Receiver, ReturnKind, idents};

/// Everything needed to generate one function and its companions.
struct Ctx<'a> {
    func: &'a ItemFn,
    m: &'a Model,
    /// The function's signature, as validated.
    s: &'a crate::validate::FnShape,
    name: &'a Ident,
}

/// Which function is being generated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// The annotated function: its mode decides (read, put, mutation).
    Main,
    /// `<name>_refresh`: always loads and stores (write-through).
    Refresh,
}

/// Whether the function that binds the cache also builds the body future,
/// which takes the parameters: a cache borrowed from them is then cloned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyTakes {
    /// The body future moves the parameters (`self` included).
    Parameters,
    /// No body runs (`<name>_invalidate`).
    Nothing,
}

/// The function and, when it has a visibility, its companions.
pub(crate) fn expand(func: &ItemFn, m: &Model) -> TokenStream {
    with_ctx(func, m, |cx| {
        let main = cx.main_fn();
        let companions = if m.shape.companions {
            cx.companions()
        } else {
            TokenStream::new()
        };
        quote!(#main #companions)
    })
}

/// Only the companions of `func` (for a trait-impl method, whose companions
/// go to an inherent impl: see [`crate::impl_block`]).
pub(crate) fn companions(func: &ItemFn, m: &Model) -> TokenStream {
    with_ctx(func, m, |cx| cx.companions())
}

fn with_ctx(func: &ItemFn, m: &Model, f: impl FnOnce(&Ctx<'_>) -> TokenStream) -> TokenStream {
    // `pub(self)` asks for companions; it means private, so emit it as such.
    let owned;
    let mut func = func;
    if let syn::Visibility::Restricted(r) = &func.vis
        && r.in_token.is_none()
        && r.path.is_ident("self")
    {
        owned = ItemFn {
            vis: syn::Visibility::Inherited,
            ..func.clone()
        };
        func = &owned;
    }
    let cx = Ctx {
        func,
        m,
        s: &m.shape,
        name: &func.sig.ident,
    };
    f(&cx)
}

fn ttl_tokens(t: &TtlArg) -> TokenStream {
    match t {
        TtlArg::Named(id) => quote_spanned!(id.span()=> ::cache_runtime::Ttl::#id),
        TtlArg::Literal { millis, span } => quote_spanned!(*span=> ::core::time::Duration::from_millis(#millis)),
        TtlArg::Expr(e) => {
            quote_spanned!(e.span()=> { let __cache_ttl: ::core::time::Duration = #e; __cache_ttl })
        }
    }
}

impl Ctx<'_> {
    fn fn_name_str(&self) -> String {
        self.name.to_string()
    }

    /// `&'static str` naming the function for stats and logs.
    fn stats_name(&self) -> TokenStream {
        let f = self.fn_name_str();
        if self.s.in_impl {
            quote!({
                static __CACHE_NAME: ::std::sync::OnceLock<&'static str> = ::std::sync::OnceLock::new();
                ::cache_runtime::__private::method_name(&__CACHE_NAME, ::core::any::type_name::<Self>, #f)
            })
        } else {
            Self::placed_name(&f)
        }
    }

    /// `path::function` of a function without `self` that does not mention
    /// `Self`: a free function or an associated function, which the
    /// attribute cannot tell apart. A nested marker item's type name says
    /// where it is (the module, or `Type` for `Type::find`).
    fn placed_name(f: &str) -> TokenStream {
        quote!({
            #[allow(non_snake_case)]
            fn __cache_here() {}
            static __CACHE_NAME: ::std::sync::OnceLock<&'static str> = ::std::sync::OnceLock::new();
            ::cache_runtime::__private::fn_path(&__CACHE_NAME, ::core::any::type_name_of_val(&__cache_here), #f)
        })
    }

    fn version_suffix(&self) -> String {
        self.m.version.map(|v| format!(":v{v}")).unwrap_or_default()
    }

    /// An expression of type `String`: the key without the namespace.
    fn key_expr(&self) -> TokenStream {
        let suffix = self.version_suffix();
        match &self.m.key {
            Key::Template(t) => t.build(&suffix, &self.s.params),
            Key::Expr(e) => quote_spanned!(e.span()=>
                ::cache_runtime::__private::key_from_expr(&(#e), #suffix)
            ),
            Key::Default => {
                let f = format!("::{}", self.fn_name_str());
                let prefix = if self.s.in_impl {
                    quote!(
                        __cache_k.push_str(::core::any::type_name::<Self>());
                        __cache_k.push_str(#f);
                    )
                } else {
                    let placed = Self::placed_name(&self.fn_name_str());
                    quote!(__cache_k.push_str(#placed);)
                };
                let out = Ident::new("__cache_k", proc_macro2::Span::call_site());
                let parts = self.m.key_params.iter().map(|p| {
                    let ty = self.s.params.iter().find(|q| q.ident == *p).map(|q| &q.ty);
                    let push = crate::template::push_value(&out, quote!(#p), ty, "", p.span());
                    quote!(
                        __cache_k.push(':');
                        #push
                    )
                });
                quote!({
                    let mut __cache_k = ::std::string::String::with_capacity(64);
                    #prefix
                    #(#parts)*
                    __cache_k.push_str(#suffix);
                    __cache_k
                })
            }
        }
    }

    fn policy_expr(&self) -> TokenStream {
        let ttl = self
            .m
            .ttl
            .as_ref()
            .map(ttl_tokens)
            .unwrap_or_else(|| quote!(::cache_runtime::Ttl::MEDIUM));
        let mut p = quote!(::cache_runtime::Policy::ttl(#ttl));
        if !self.m.tags.is_empty() {
            let t = self.m.tags.iter().map(|t| t.build("", &self.s.params));
            p = quote!(#p.tags([#(#t),*]));
        }
        if let Some(neg) = &self.m.negative_ttl {
            let n = ttl_tokens(neg);
            p = quote!(#p.negative_ttl(#n));
        }
        if let Some(beta) = &self.m.early_refresh {
            p = quote_spanned!(beta.span()=> #p.early_refresh(::core::convert::Into::<f64>::into(#beta)));
        }
        if let Some(d) = &self.m.stale_while_revalidate {
            let d = ttl_tokens(d);
            p = quote!(#p.stale_while_revalidate(#d));
        }
        if let Some(d) = &self.m.stale_if_error {
            let d = ttl_tokens(d);
            p = quote!(#p.stale_if_error(#d));
        }
        if self.m.local == Some(false) {
            p = quote!(#p.local(false));
        }
        let name = self.stats_name();
        quote!(::cache_runtime::__private::at_site(#p.name(#name), {
            static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new();
            &__CACHE_SITE
        }))
    }

    fn cache_expr_mentions(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        if let Some(e) = &self.m.cache {
            idents(quote!(#e), &mut s);
        }
        s
    }

    /// Statements binding `__cache_cache: &Cache`, or returning `on_none`
    /// when no cache is installed.
    fn bind_cache(&self, body: BodyTakes, on_none: TokenStream) -> TokenStream {
        match &self.m.cache {
            None => {
                let name = self.stats_name();
                quote!(
                    let __cache_cache: &::cache_runtime::Cache = match ::cache_runtime::__private::global() {
                        ::core::option::Option::Some(c) => c,
                        ::core::option::Option::None => {
                            ::cache_runtime::__private::warn_not_installed(#name);
                            #on_none
                        }
                    };
                )
            }
            Some(e) => {
                let mentions = self.cache_expr_mentions();
                let takes_self = mentions.contains("self") && self.s.receiver == Receiver::Owned;
                let takes_param = self.s.params.iter().any(|p| mentions.contains(&p.ident.to_string()));
                if body == BodyTakes::Parameters && (takes_self || takes_param) {
                    quote_spanned!(e.span()=>
                        let __cache_owned = ::core::clone::Clone::clone(&(#e));
                        let __cache_cache: &::cache_runtime::Cache = &__cache_owned;
                    )
                } else {
                    quote_spanned!(e.span()=> let __cache_cache: &::cache_runtime::Cache = &(#e);)
                }
            }
        }
    }

    fn uncached_ident(&self) -> Ident {
        format_ident!("{}_uncached", self.name)
    }

    /// `let __cache_body = move || <the body as a future>;`: a closure, so
    /// that the future is only built when the body runs (a hit moves
    /// nothing but the captured parameters).
    fn body_future(&self) -> TokenStream {
        let m = self.s;
        // A companion can be named only where the attribute knows whether it
        // is in an impl (`Self::f_uncached`); a function without `self` that
        // does not mention `Self` may be free or associated, so its body is
        // expanded inline instead.
        if m.companions && m.in_impl {
            let f = self.uncached_ident();
            let args = m.params.iter().map(|p| &p.ident);
            let generics = &self.func.sig.generics;
            let has_impl_trait = m.params.iter().any(|p| matches!(p.ty, syn::Type::ImplTrait(_)));
            let explicit: Vec<TokenStream> = generics
                .params
                .iter()
                .filter_map(|g| match g {
                    syn::GenericParam::Type(t) => {
                        let i = &t.ident;
                        Some(quote!(#i))
                    }
                    syn::GenericParam::Const(c) => {
                        let i = &c.ident;
                        Some(quote!(#i))
                    }
                    syn::GenericParam::Lifetime(_) => None,
                })
                .collect();
            let turbofish = if explicit.is_empty() || has_impl_trait {
                quote!()
            } else {
                quote!(::<#(#explicit),*>)
            };
            let call = if m.receiver == Receiver::None {
                quote!(Self::#f #turbofish(#(#args),*))
            } else {
                quote!(Self::#f #turbofish(self, #(#args),*))
            };
            quote!(
                let __cache_fut = #call;
                let __cache_body = move || __cache_fut;
            )
        } else {
            let ret = &m.ret;
            let block = &self.s.body;
            quote!(
                let __cache_body = move || async move {
                    #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::let_unit_value, clippy::needless_return)]
                    if false {
                        let __cache_fake_return: #ret = loop {};
                        return __cache_fake_return;
                    }
                    #block
                };
            )
        }
    }

    /// The runtime call for `mode` (`Read` or `Put`), as an expression of the
    /// function's return type. Uses `__cache_cache`, `__cache_key`,
    /// `__cache_policy` and the loader closure `__cache_loader`.
    fn runtime_call(&self, mode: Mode) -> TokenStream {
        let put = mode == Mode::Put;
        let kind = self.s.kind;
        let ret_span = self.s.value_span;
        let (wrap, unwrap) = match kind {
            ReturnKind::Result { .. } => (quote!(__cache_loader()), quote!(__cache_r)),
            ReturnKind::Option | ReturnKind::Plain => (
                quote!(
                    async move { ::core::result::Result::Ok::<_, ::core::convert::Infallible>(__cache_loader().await) }
                ),
                quote!(match __cache_r {
                    ::core::result::Result::Ok(v) => v,
                    ::core::result::Result::Err(e) => match e {},
                }),
            ),
        };
        // The stored type, named once through `Cacheable`: a type without
        // the serde derives is one error on the user's type (identical in
        // the function and `_refresh`, so reported once), and the runtime
        // call then sees an error type and adds no follow-on errors.
        // With `unless`, the `_unless` variant of each call, which takes the
        // predicate (one more generic parameter) as its last argument.
        let unless = self.m.unless.as_ref().map(|e| quote_spanned!(e.span()=> , #e));
        let more = unless.as_ref().map(|_| quote!(, _));
        let (rest3, rest2) = match &self.s.value_ty {
            Some(ty) => {
                let value = quote_spanned!(ret_span=> <#ty as ::cache_runtime::__private::Cacheable>::Value);
                (
                    quote_spanned!(ret_span=> ::<#value, _, _, _ #more>),
                    quote_spanned!(ret_span=> ::<#value, _, _ #more>),
                )
            }
            None => (quote!(), quote!()),
        };
        let suffix = if unless.is_some() { "_unless" } else { "" };
        let call = if !self.m.result_tags.is_empty() {
            // Tags from the result: the `__private` entry points of
            // `Cache::get_or_load_tagged` and friends, which take `unless`
            // (never true when not given) and the tags of a value.
            let f = match (put, kind.optional()) {
                (true, true) => "put_optional_tagged",
                (true, false) => "put_tagged",
                (false, true) => "read_optional_tagged",
                (false, false) => "read_tagged",
            };
            let f = Ident::new(f, ret_span);
            let unless = match &self.m.unless {
                Some(e) => quote_spanned!(e.span()=> #e),
                None => quote!(|_| false),
            };
            let tags = self.m.result_tags.iter().map(|t| t.build("", &self.s.params));
            let turbofish = self
                .s
                .value_ty
                .as_ref()
                .map(|ty| quote_spanned!(ret_span=> ::<<#ty as ::cache_runtime::__private::Cacheable>::Value, _, _, _, _, _>));
            quote_spanned!(ret_span=>
                ::cache_runtime::__private::#f #turbofish (
                    __cache_cache,
                    &__cache_key,
                    __cache_policy,
                    move || #wrap,
                    #unless,
                    |result| -> ::std::vec::Vec<::std::string::String> { ::std::vec![#(#tags),*] },
                ).await
            )
        } else if put && kind.optional() {
            let f = Ident::new(&format!("put_optional{suffix}"), ret_span);
            quote_spanned!(ret_span=>
                ::cache_runtime::__private::#f #rest2 (__cache_cache, &__cache_key, __cache_policy, #wrap #unless).await
            )
        } else if !put && self.s.near_ok {
            // The near tier serves values whose type is `Clone + Send +
            // Sync + 'static`: the probe picks its operations for such a
            // type, `None` for any other (autoref specialization).
            let (f, probe) = match (kind.optional(), &self.s.value_ty) {
                (true, Some(ty)) => (
                    "get_or_load_optional_near",
                    quote_spanned!(ret_span=> ::core::option::Option<<#ty as ::cache_runtime::__private::Cacheable>::Value>),
                ),
                (_, Some(ty)) => (
                    "get_or_load_near",
                    quote_spanned!(ret_span=> <#ty as ::cache_runtime::__private::Cacheable>::Value),
                ),
                (_, None) => unreachable!("checked above"),
            };
            let f = Ident::new(f, ret_span);
            let value = self.s.value_ty.as_ref().map(
                |ty| quote_spanned!(ret_span=> ::<<#ty as ::cache_runtime::__private::Cacheable>::Value, _, _, _, _>),
            );
            let unless = match &self.m.unless {
                Some(e) => quote_spanned!(e.span()=> #e),
                None => quote!(|_| false),
            };
            quote_spanned!(ret_span=>
                ::cache_runtime::__private::#f #value (
                    __cache_cache,
                    &__cache_key,
                    __cache_policy,
                    {
                        #[allow(unused_imports)]
                        use ::cache_runtime::__private::{NearNo as _, NearYes as _};
                        (&&::cache_runtime::__private::NearProbe::<#probe>::new()).near_ops()
                    },
                    move || #wrap,
                    #unless,
                ).await
            )
        } else {
            let method = match (put, kind.optional()) {
                (true, _) => "put_with",
                (false, true) => "get_or_load_optional",
                (false, false) => "get_or_load",
            };
            let method = Ident::new(&format!("{method}{suffix}"), ret_span);
            quote_spanned!(ret_span=> __cache_cache.#method #rest3 (&__cache_key, __cache_policy, move || #wrap #unless).await)
        };
        quote!({
            let __cache_r = #call;
            #unwrap
        })
    }

    fn success_check(&self) -> TokenStream {
        match self.s.kind {
            ReturnKind::Result { .. } => quote!(::core::result::Result::is_ok(&__cache_result)),
            _ => quote!(true),
        }
    }

    /// `let __cache_inv_* = [..];` for `invalidates`, and the call that runs them.
    fn invalidations(&self) -> Option<(TokenStream, TokenStream)> {
        let list = self.m.invalidates.as_ref()?;
        let (mut keys, mut tags, mut patterns) = (Vec::new(), Vec::new(), Vec::new());
        // Templates naming the result, built after the body ran.
        let (mut r_keys, mut r_tags, mut r_patterns) = (Vec::new(), Vec::new(), Vec::new());
        for inv in list {
            let (t, (now, after)) = match inv {
                Invalidation::Key(t) => (t, (&mut keys, &mut r_keys)),
                Invalidation::Tag(t) => (t, (&mut tags, &mut r_tags)),
                Invalidation::Pattern(t) => (t, (&mut patterns, &mut r_patterns)),
            };
            if t.uses_result() {
                after.push(t.build("", &self.s.params));
            } else {
                now.push(t.build("", &self.s.params));
            }
        }
        let name = self.stats_name();
        let bind = quote!(
            let __cache_inv_keys: &[::std::string::String] = &[#(#keys),*];
            let __cache_inv_tags: &[::std::string::String] = &[#(#tags),*];
            let __cache_inv_patterns: &[::std::string::String] = &[#(#patterns),*];
        );
        if r_keys.is_empty() && r_tags.is_empty() && r_patterns.is_empty() {
            let run = quote!(
                ::cache_runtime::__private::invalidate(
                    __cache_cache, #name, __cache_inv_keys, __cache_inv_tags, __cache_inv_patterns,
                ).await;
            );
            return Some((bind, run));
        }
        // `{result}`: the `Ok` value, the value inside `Some`, or the value;
        // after an `Err` or a `None` the templates naming it are skipped.
        let value = match self.s.kind {
            ReturnKind::Result { optional: false } => {
                quote!(::core::result::Result::as_ref(&__cache_result).ok())
            }
            ReturnKind::Result { optional: true } => quote!(
                ::core::result::Result::as_ref(&__cache_result)
                    .ok()
                    .and_then(::core::option::Option::as_ref)
            ),
            ReturnKind::Option => quote!(::core::option::Option::as_ref(&__cache_result)),
            ReturnKind::Plain => quote!(::core::option::Option::Some(&__cache_result)),
        };
        let run = quote!(
            let (__cache_r_keys, __cache_r_tags, __cache_r_patterns): (
                ::std::vec::Vec<::std::string::String>,
                ::std::vec::Vec<::std::string::String>,
                ::std::vec::Vec<::std::string::String>,
            ) = match #value {
                ::core::option::Option::Some(result) => (
                    ::std::vec![#(#r_keys),*],
                    ::std::vec![#(#r_tags),*],
                    ::std::vec![#(#r_patterns),*],
                ),
                ::core::option::Option::None => ::core::default::Default::default(),
            };
            let __cache_all = |now: &[::std::string::String], after: ::std::vec::Vec<::std::string::String>| {
                now.iter().cloned().chain(after).collect::<::std::vec::Vec<::std::string::String>>()
            };
            ::cache_runtime::__private::invalidate(
                __cache_cache,
                #name,
                &__cache_all(__cache_inv_keys, __cache_r_keys),
                &__cache_all(__cache_inv_tags, __cache_r_tags),
                &__cache_all(__cache_inv_patterns, __cache_r_patterns),
            ).await;
        );
        Some((bind, run))
    }

    /// Binds `__cache_body` and `__cache_cache`. An explicit cache is bound
    /// first (the body future may take `self`); the global one after (its
    /// `None` branch runs the body).
    fn setup(&self, body: &TokenStream) -> TokenStream {
        let bind_cache = self.bind_cache(BodyTakes::Parameters, quote!(return __cache_body().await;));
        if self.m.cache.is_some() {
            quote!(#bind_cache #body)
        } else {
            quote!(#body #bind_cache)
        }
    }

    /// The body of the main function or of `_refresh`.
    fn cached_body(&self, call: Call) -> TokenStream {
        let body = self.body_future();
        let (mode, inv) = match call {
            Call::Main => (self.m.mode, self.invalidations()),
            Call::Refresh => (Mode::Put, None),
        };
        let inv_bind = inv.as_ref().map(|i| &i.0);
        match mode {
            Mode::Mutation => {
                let (_, run) = inv.as_ref().expect("mutation mode has invalidates");
                let setup = self.setup(&body);
                let ok = self.success_check();
                quote!(
                    #inv_bind
                    #setup
                    let __cache_result = __cache_body().await;
                    if #ok {
                        #run
                    }
                    __cache_result
                )
            }
            Mode::Read | Mode::Put => {
                let key = self.key_expr();
                let policy = self.policy_expr();
                let setup = self.setup(&body);
                let put = mode == Mode::Put;
                let call = self.runtime_call(mode);
                match &inv {
                    None => quote!(
                        let __cache_key: ::std::string::String = #key;
                        #setup
                        let __cache_policy = #policy;
                        let __cache_loader = __cache_body;
                        #call
                    ),
                    Some((_, run)) => {
                        let ok = self.success_check();
                        // A read-through invalidates only when its body ran.
                        let (ran_decl, loader, ran) = if put {
                            (quote!(), quote!(let __cache_loader = __cache_body;), quote!(true))
                        } else {
                            (
                                quote!(let __cache_ran = ::core::sync::atomic::AtomicBool::new(false);
                                       let __cache_ran_ref = &__cache_ran;),
                                quote!(let __cache_loader = move || async move {
                                    let __cache_v = __cache_body().await;
                                    __cache_ran_ref.store(true, ::core::sync::atomic::Ordering::Relaxed);
                                    __cache_v
                                };),
                                quote!(__cache_ran.load(::core::sync::atomic::Ordering::Relaxed)),
                            )
                        };
                        quote!(
                            let __cache_key: ::std::string::String = #key;
                            #inv_bind
                            #setup
                            let __cache_policy = #policy;
                            #ran_decl
                            #loader
                            let __cache_result = #call;
                            if #ran && #ok {
                                #run
                            }
                            __cache_result
                        )
                    }
                }
            }
        }
    }

    fn main_fn(&self) -> TokenStream {
        let f = self.func;
        let attrs = &f.attrs;
        let vis = &f.vis;
        let sig = &f.sig;
        let body = self.boxed_if_async_trait(self.cached_body(Call::Main));
        quote!(
            #(#attrs)*
            #vis #sig {
                #body
            }
        )
    }

    /// The statements of an `async fn` body as the function's body: as is,
    /// or for an `#[async_trait]` method inside `Box::pin(async move ..)`,
    /// the shape `#[async_trait]` gave its signature.
    fn boxed_if_async_trait(&self, body: TokenStream) -> TokenStream {
        if self.s.async_trait {
            quote!(::std::boxed::Box::pin(async move { #body }))
        } else {
            body
        }
    }

    /// Attributes that must follow the function onto its companions.
    fn carried_attrs(&self) -> Vec<&syn::Attribute> {
        self.func
            .attrs
            .iter()
            .filter(|a| {
                ["cfg", "allow", "cfg_attr", "deprecated"]
                    .iter()
                    .any(|n| a.path().is_ident(n))
            })
            .collect()
    }

    fn companions(&self) -> TokenStream {
        let m = self.s;
        let f = self.func;
        let vis = &f.vis;
        let carried = self.carried_attrs();
        let name = self.name;
        let name_str = name.to_string();

        // `_uncached`: the original body under a new name.
        let mut sig = f.sig.clone();
        sig.ident = self.uncached_ident();
        let block = &f.block;
        let doc = format!(" [`{name_str}`](Self::{name_str})'s body, without the cache.");
        let doc = if m.in_impl {
            doc
        } else {
            // Free or associated: no link that resolves in both.
            format!(" `{name_str}`'s body, without the cache.")
        };
        let uncached = quote!(
            #(#carried)*
            #[doc = #doc]
            #[allow(unused_variables, dead_code)]
            #vis #sig #block
        );
        if self.m.mode == Mode::Mutation {
            return uncached;
        }

        let generics = &f.sig.generics;
        let where_clause = &generics.where_clause;
        let key_uses_self = match &self.m.key {
            Key::Template(t) => t.uses_self(),
            Key::Expr(e) => {
                let mut s = BTreeSet::new();
                idents(quote!(#e), &mut s);
                s.contains("self")
            }
            Key::Default => false,
        };
        let key_params: Vec<TokenStream> = m
            .params
            .iter()
            .filter(|p| self.m.key_params.contains(&p.ident))
            .map(|p| {
                let (i, t) = (&p.ident, &p.ty);
                quote!(#i: #t)
            })
            .collect();
        let key_recv = key_uses_self.then(|| quote!(&self,));
        let key_expr = self.key_expr();
        let key_fn = format_ident!("{}_key", name);
        let key_doc = format!(
            " The cache key of `{name_str}` (without the namespace), as `Cache::get` and `Invalidator::key` take it."
        );
        let key_companion = quote!(
            #(#carried)*
            #[doc = #key_doc]
            #[allow(unused_variables, clippy::needless_pass_by_value)]
            #vis fn #key_fn #generics (#key_recv #(#key_params),*) -> ::std::string::String #where_clause {
                #key_expr
            }
        );

        // `_refresh`: same signature, always loads and stores.
        let mut sig = f.sig.clone();
        sig.ident = format_ident!("{}_refresh", name);
        let refresh_body = self.boxed_if_async_trait(self.cached_body(Call::Refresh));
        let refresh_doc = format!(" Runs `{name_str}`'s body, stores its result under its key, and returns it.");
        let refresh = quote!(
            #(#carried)*
            #[doc = #refresh_doc]
            #vis #sig {
                #refresh_body
            }
        );

        // `_invalidate`: the key's parameters plus what the cache expression needs.
        let cache_mentions = self.cache_expr_mentions();
        let inv_recv = (key_uses_self || cache_mentions.contains("self")).then(|| quote!(&self,));
        let inv_params: Vec<TokenStream> = m
            .params
            .iter()
            .filter(|p| self.m.key_params.contains(&p.ident) || cache_mentions.contains(&p.ident.to_string()))
            .map(|p| {
                let (i, t) = (&p.ident, &p.ty);
                quote!(#i: #t)
            })
            .collect();
        let inv_fn = format_ident!("{}_invalidate", name);
        let bind_cache = self.bind_cache(BodyTakes::Nothing, quote!(return ::core::result::Result::Ok(0);));
        let inv_doc =
            format!(" Drops `{name_str}`'s cached entry for these arguments; returns how many entries were dropped.");
        let invalidate = quote!(
            #(#carried)*
            #[doc = #inv_doc]
            #[allow(unused_variables, clippy::needless_pass_by_value)]
            #vis async fn #inv_fn #generics (#inv_recv #(#inv_params),*)
                -> ::core::result::Result<u64, ::cache_runtime::CacheError> #where_clause
            {
                let __cache_key: ::std::string::String = #key_expr;
                #bind_cache
                __cache_cache.invalidator().key(&__cache_key).await
            }
        );
        quote!(#uncached #key_companion #refresh #invalidate)
    }
}
