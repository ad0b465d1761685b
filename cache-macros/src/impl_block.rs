//! `#[cached]` on a trait impl block: the companions of its `#[cached]`
//! methods (`<name>_key`, `_uncached`, `_refresh`, `_invalidate`), which a
//! trait impl cannot hold, in an inherent impl of the same type.
//!
//! ```text
//! #[cached(pub)]            // the companions' visibility; none: private
//! #[async_trait]            // if any, in either order
//! impl CourseRepo for Repo {
//!     #[cached(key = "course:{id}", cache = self.cache)]
//!     async fn course(&self, id: i64) -> Result<Course, DbError> { .. }
//! }
//! // Repo::course_key(1), repo.course_invalidate(1).await, …
//! ```
//!
//! The impl is emitted unchanged: each method's own `#[cached]` expands it
//! and reports its misuses, so a method with a misuse simply gets no
//! companions here (one error, not two).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ImplItem, ItemFn, ItemImpl, Visibility};

use crate::ctxt::Errors;

/// The impl, unchanged, and an inherent impl with the companions.
pub(crate) fn expand(attr: TokenStream, item: ItemImpl, errors: &mut Errors) -> TokenStream {
    let vis: Visibility = match syn::parse2(attr) {
        Ok(v) => v,
        Err(e) => {
            errors.at(
                e.span(),
                "on an impl block, #[cached] takes only the companions' visibility: `#[cached(pub)]`, `#[cached(pub(crate))]`, or `#[cached]` for private ones",
            );
            return quote!(#item);
        }
    };
    if item.trait_.is_none() {
        errors.at(
            item.impl_token.span,
            "#[cached] on an impl block gives a trait impl's methods their companions; in an inherent impl, give each `#[cached]` method a visibility (`pub`, or `pub(self)` for private companions) instead",
        );
        return quote!(#item);
    }
    // Private companions are asked for with `pub(self)`, as on functions.
    let vis = match vis {
        Visibility::Inherited => syn::parse_quote!(pub(self)),
        v => v,
    };
    let mut companions = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let Some(attr) = method.attrs.iter().find(|a| is_cached(a)) else {
            continue;
        };
        let tokens = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => TokenStream::new(),
        };
        let func = ItemFn {
            attrs: method.attrs.iter().filter(|a| !is_cached(a)).cloned().collect(),
            vis: vis.clone(),
            modifiers: syn::FnModifiers::default(),
            sig: method.sig.clone(),
            block: Box::new(method.block.clone()),
        };
        // The method's own attribute reports misuses; stay silent here.
        let mut quiet = Errors::default();
        let args = crate::args::parse(tokens, &mut quiet);
        if let Some(model) = crate::validate::validate(&func, args, &mut quiet)
            && quiet.len() == 0
        {
            companions.push(crate::expand::companions(&func, &model));
        }
    }
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    quote!(
        #item
        impl #impl_generics #self_ty #where_clause {
            #(#companions)*
        }
    )
}

/// `#[cached(..)]`, `#[cache_runtime::cached(..)]`.
fn is_cached(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "cached")
}
