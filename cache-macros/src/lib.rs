//! The `#[cached]` attribute macro of `cache-runtime`. Use it through
//! `cache_runtime::cached` (the runtime re-exports it, so one dependency
//! is enough); its documentation there is the reference. This crate holds
//! no caching behaviour: it only parses, checks and wires functions to the
//! runtime's public API.

#![warn(missing_docs)]

mod args;
mod ctxt;
mod expand;
#[cfg(test)]
mod fuzz;
mod impl_block;
mod template;
mod uses;
mod validate;

use proc_macro::TokenStream;

/// Turns an `async fn` into cache-aside code: on a hit the body does not
/// run; on a miss it runs once (concurrent callers share the run) and its
/// successful result is stored.
///
/// ```ignore
/// use cache_runtime::cached;
///
/// impl CourseRepository {
///     #[cached(key = "course:{id}", ttl = LONG, tags = ["courses"])]
///     pub async fn course(&self, id: i64) -> Result<Option<Course>, DbError> { /* query */ }
///
///     #[cached(invalidates = ["course:{course.id}", tag("courses")])]
///     pub async fn update_course(&self, course: &Course) -> Result<(), DbError> { /* update */ }
/// }
/// ```
///
/// The expansion only calls the runtime's public API (`Cache::get_or_load`
/// and friends): everything it does can be written by hand. Only `Ok`
/// (of any `Result`) and `Some` (of an `Option`, unless `negative_ttl`)
/// are stored; errors pass through untouched. The stored type must be
/// `serde::Serialize + serde::de::DeserializeOwned`.
///
/// Misuse is a compile error spanned on the offending token: an unknown
/// argument or placeholder (with the valid ones listed), a malformed TTL,
/// a key that does not cover every parameter (two calls differing only in
/// that parameter would share one entry), a non-`async` function.
///
/// # Arguments
///
/// | argument | meaning |
/// | --- | --- |
/// | `key = "course:{id}"` | key template: `{param}`, `{param.field}`, `{self.field}`, `<param>`; values are escaped |
/// | `key = expr` | any `Display` expression of the parameters (not escaped: key functions escape) |
/// | *(none)* | default key: `module::fn` (for methods `Self`'s full type name and `fn`), then every non-skipped parameter |
/// | `ttl = LONG` / `"90s"` / `expr` | `SHORT`, `MEDIUM`, `LONG`, `VERY_LONG`, `DAY`; a literal with `ms`/`s`/`m`/`h`/`d`; a `Duration` (`crate::MY_TTL`, `{ MY_TTL }`) |
/// | `tags = ["courses", "teacher:{t}"]` | tags of the stored entry; `{result.field}` takes them from the loaded value (see below) |
/// | `invalidates = ["k:{id}", tag("t"), pattern("p:*")]` | dropped after the body succeeded; `{result.field}` names the returned value |
/// | `put` | write-through (needs `key`) |
/// | `skip = [pool]` | parameters that are not part of the key |
/// | `covered = [params]` | parameters the key uses only through fields (`{params.limit}`), declared complete: without it such partial coverage is an error |
/// | `cache = self.cache` | which `Cache` (default: the installed global one) |
/// | `negative_ttl = "30s"` | for `Option` results: cache `None` too |
/// | `early_refresh = 1.0` | XFetch's β: reload hot entries shortly before they expire (default 1; 0 turns it off) |
/// | `stale_while_revalidate = "30s"` | for this long after expiry, answer with the old value while one caller reloads |
/// | `stale_if_error = "5m"` | when the loader fails, answer with the value expired at most this long ago |
/// | `version = 2` | appended to the key as `:v2` |
/// | `local = false` | never served from the near cache (`CacheBuilder::near_cache`); by default a function whose value type is `Clone + Send + Sync + 'static` is |
/// | `unless = \|v\| v.is_empty()` | a closure or function path over the value to be stored (`&T` of `Result<T, E>`, `&Option<T>` of an `Option`), returning `bool`: `true` returns the value without storing it (with `put`, the key is dropped) |
///
/// # Injective templates
///
/// Distinct argument values give distinct keys, tags and invalidated keys
/// (no two users share an entry because their names contain a separator):
///
/// - every two placeholders have literal text between them (`{a}{b}` is a
///   compile error: `"ab" + ""` and `"a" + "b"` would meet), and `%` does
///   not follow a placeholder (escapes start with `%`);
/// - each interpolated value is escaped with `cache_runtime::keys` (the
///   reserved set `:` `*` `?` `[` `]` `\` `{` `}` `%`, whitespace, control
///   characters) and also percent-encodes its template's separators: every
///   character of the literal text that is not an ASCII letter or digit,
///   and the first character after each placeholder. With
///   `"pair:{a}-{b}"`, `("x-y", "z")` gives `pair:x%2Dy-z` and
///   `("x", "y-z")` gives `pair:x-y%2Dz`. The set is computed at compile
///   time; `<name>_key` gives the exact key.
///
/// # Tags from the result: `{result…}`
///
/// In `tags` and `invalidates` templates (never in the key, which is needed
/// before the load), `{result}` and `{result.field}` name the function's
/// value: the `T` of `Result<T, E>`, of `Option<T>` or of
/// `Result<Option<T>, E>`, or the plain return value. A read keyed by one
/// name of a thing and tagged by another ("key by slug, invalidate by id"):
///
/// ```ignore
/// #[cached(key = "article:{slug}", tags = ["article:{result.id}"], cache = self.cache)]
/// pub async fn article_by_slug(&self, slug: &str) -> Result<Option<Article>, DbError> { /* … */ }
///
/// #[cached(invalidates = [tag("article:{article_id}")], cache = self.cache)]
/// pub async fn favorite_article(&self, article_id: i64) -> Result<(), DbError> { /* … */ }
///
/// #[cached(invalidates = [tag("article:{result.id}")], cache = self.cache)]
/// pub async fn update_article(&self, slug: &str, patch: &Patch) -> Result<Article, DbError> { /* … */ }
/// ```
///
/// A `None` value carries no result tags; after an `Err` (or a `None`) the
/// `invalidates` templates that name the result are skipped, the others
/// run. A template that names the result may use only `{result…}`
/// placeholders (it is built after the body ran), and a function with
/// such templates may not have a parameter named `result`. The read
/// expands to `Cache::get_or_load_tagged` (or its `Option`/`put` forms):
/// a value loaded while a tag is invalidated is not stored.
///
/// # Optional and borrowed parameters
///
/// A parameter of type `Option<T>`, `&T`, `Box<T>`, `Arc<T>` or `Rc<T>`
/// (nested or not) interpolates wherever `T` does, in keys, tags,
/// invalidated keys and default keys: `Some(v)` is written as `v`, `None`
/// as `%none`, which no escaped value can spell (`cache_runtime::keys::NONE`),
/// and `Some(v)` of an `Option<Option<T>>` as `%some` then `v`. A field
/// placeholder (`{p.viewer}`) is interpolated with `Display` as written.
///
/// # `#[async_trait]`
///
/// `#[cached]` works on the methods of an `#[async_trait]` impl, written in
/// the usual order (`#[async_trait]` on the impl, `#[cached]` on the
/// method). `#[async_trait]` expands first and turns each method into a
/// plain `fn` returning `Pin<Box<dyn Future<Output = R> + Send>>` whose body
/// is `Box::pin(async move { .. })`; `#[cached]` recognises exactly that
/// shape, caches the body inside the `async move` block as it would an
/// `async fn` returning `R`, and boxes the result again. A function that
/// returns a boxed future written by hand is an error: write it as
/// `async fn`. For companions, see below (`#[cached(pub)]` on the impl).
///
/// # Companions
///
/// A function declared with an explicit visibility gets `<name>_key`,
/// `<name>_uncached`, `<name>_refresh` and `<name>_invalidate` beside it, with
/// the same visibility. A private function that wants its companions is
/// declared `pub(self)`. Trait-impl methods cannot have extra methods (and
/// cannot have a visibility): put `#[cached(pub)]` (or `#[cached]` for
/// private ones, `#[cached(pub(crate))]`, …) on the trait impl block (with
/// `#[async_trait]`, in either order), and the companions of its `#[cached]`
/// methods go to an inherent impl of the type.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    pipeline(attr.into(), item.into()).into()
}

/// Parse → validate → expand. On error the original item is emitted next to
/// the errors, so the user sees the misuse and not a cascade of follow-ons.
fn pipeline(attr: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut errors = ctxt::Errors::default();
    if let Ok(block) = syn::parse2::<syn::ItemImpl>(item.clone()) {
        let out = impl_block::expand(attr, block, &mut errors);
        let err = errors.finish().err().map(|e| e.to_compile_error());
        return quote::quote!(#out #err);
    }
    let args = args::parse(attr, &mut errors);
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            errors.spanned(
                first_tokens(&item),
                "#[cached] applies to an `async fn` with a body: a free function, an inherent method (`&self`, `&mut self`, `self: Arc<Self>`) or a trait-impl method; on a trait impl block, `#[cached(pub)]` gives its methods companions",
            );
            return with_errors(item, errors);
        }
    };
    let model = validate::validate(&func, args, &mut errors);
    match (model, errors.finish()) {
        (Some(model), Ok(())) => expand::expand(&func, &model),
        (_, Err(e)) => {
            let err = e.to_compile_error();
            quote::quote!(#func #err)
        }
        (None, Ok(())) => unreachable!("validation failed without an error"),
    }
}

fn with_errors(item: proc_macro2::TokenStream, errors: ctxt::Errors) -> proc_macro2::TokenStream {
    let err = errors.finish().err().map(|e| e.to_compile_error());
    quote::quote!(#item #err)
}

/// The item's tokens up to its name, so the error points at `struct Foo`
/// rather than the whole item.
fn first_tokens(item: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut out = proc_macro2::TokenStream::new();
    let mut seen_keyword = false;
    for tt in item.clone() {
        let is_ident = matches!(tt, proc_macro2::TokenTree::Ident(_));
        let done = seen_keyword && is_ident;
        if let proc_macro2::TokenTree::Ident(i) = &tt
            && [
                "struct", "enum", "fn", "impl", "trait", "mod", "static", "const", "type", "union", "use",
            ]
            .contains(&i.to_string().as_str())
        {
            seen_keyword = true;
        }
        if seen_keyword {
            out.extend([tt]);
        }
        if done {
            break;
        }
    }
    if out.is_empty() { item.clone() } else { out }
}
