//! Request scope: memoisation of cache-aside calls for one request (see
//! [`scope`]).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::futures::TaskLocalFuture;

use crate::cache::trace_op;
use crate::codec;
use crate::{Cache, Policy};

/// Largest total of encoded values one scope keeps (16 MiB).
pub const MAX_SCOPE_BYTES: usize = 16 * 1024 * 1024;

tokio::task_local! {
    static CURRENT: RequestScope;
}

/// Request scope: within one request, repeated cache-aside calls of one key
/// are answered from memory, so each key costs at most one backend round
/// trip per request (the counterpart of React's `cache()` in the original).
///
/// `scope(future)` runs `future` in a new scope (a `tokio` task-local);
/// inside it, [`Cache::get_or_load`], [`Cache::get_or_load_optional`] and
/// `#[cached]` methods look the full key (namespace and key) up in the scope
/// first, and the first call's value fills it. Values are kept encoded (as
/// the single-flight keeps them), so no `Clone` bound is needed: each caller
/// decodes its own copy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use cache_runtime::{Cache, Ttl};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// let cache = Cache::memory();
/// let loads = AtomicU32::new(0);
/// let course = || cache.get_or_load("course:7", Ttl::LONG, || async {
///     loads.fetch_add(1, Ordering::Relaxed);
///     Ok::<_, std::io::Error>(String::from("Rust 101"))
/// });
/// cache_runtime::scope(async {
///     for _ in 0..10 {
///         assert_eq!(course().await.unwrap(), "Rust 101"); // the backend is read once
///     }
/// })
/// .await;
/// assert_eq!(loads.load(Ordering::Relaxed), 1);
/// assert_eq!(cache.stats().total.scope_hits, 9);
/// # }
/// ```
///
/// **What a scope sees.**
/// * Only values the cache would store: `Ok` values, `Some` (and `None` with
///   a negative TTL). Errors and uncached `None`s are asked for again.
/// * Its own invalidations: any [`Invalidator`](crate::Invalidator) method,
///   [`Cache::del`], [`Cache::set`] and [`Cache::put_with`] (so `#[cached]`
///   `invalidates` and `put`) made inside the scope drop the matching
///   entries of the scope (a key: that entry; a tag, a pattern or `all`:
///   the whole scope), before the backend is asked. A load of this scope
///   still running at that moment does not fill it.
/// * Not other requests' invalidations: a scope is a snapshot for one
///   request, the way a request that read a value keeps it. Keep scopes
///   request-sized (the tower layer does), not process-sized.
/// * Concurrent calls of one key in a scope (`join!`) wait for the first;
///   if it fails or is cancelled, the next one loads.
/// * Tasks spawned inside a scope are outside it (`tokio` task-locals are not
///   inherited); take it along with [`RequestScope::current`] and
///   [`RequestScope::run`].
/// * A `scope` inside a scope joins the enclosing one (a handler that wraps
///   its own work in `scope` under the tower layer still reads each key once
///   per request).
/// * At most [`MAX_SCOPE_BYTES`] of encoded values per scope; beyond that
///   calls go to the cache as outside a scope.
///
/// Answers from the scope count as hits in [`Stats`](crate::Stats) (and in
/// `FunctionStats::scope_hits`), are traced as `GET … scope_hit` and, with
/// the `metrics` feature, counted as `cache_requests_total{outcome="scope_hit"}`.
pub fn scope<F: Future>(future: F) -> TaskLocalFuture<RequestScope, F> {
    RequestScope::current().unwrap_or_default().run(future)
}

/// One request's memo of cache-aside values: a cheap-to-clone handle.
#[derive(Clone, Default)]
pub struct RequestScope {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    map: Mutex<Slots>,
    /// Woken when a pending slot is filled or released.
    changed: Notify,
}

#[derive(Default)]
struct Slots {
    slots: HashMap<String, Slot>,
    /// Bytes of the `Ready` values.
    bytes: usize,
    next_claim: u64,
}

enum Slot {
    Ready(Arc<[u8]>),
    /// A call of this scope is loading the key.
    Pending(u64),
}

impl fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.lock();
        f.debug_struct("RequestScope")
            .field("entries", &slots.slots.len())
            .field("bytes", &slots.bytes)
            .finish()
    }
}

impl RequestScope {
    /// A new, empty scope.
    pub fn new() -> Self {
        RequestScope::default()
    }

    /// The scope the current task runs in, if any.
    pub fn current() -> Option<RequestScope> {
        CURRENT.try_with(RequestScope::clone).ok()
    }

    /// Runs `future` in this scope (e.g. a task spawned by a request, with
    /// the request's scope: `tokio::spawn(scope.run(work))`).
    pub fn run<F: Future>(self, future: F) -> TaskLocalFuture<RequestScope, F> {
        CURRENT.scope(self, future)
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.lock()
            .slots
            .values()
            .filter(|s| matches!(s, Slot::Ready(_)))
            .count()
    }

    /// `true` when no value is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.state.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(slots: &mut Slots, full_key: &str) {
        if let Some(Slot::Ready(bytes)) = slots.slots.remove(full_key) {
            slots.bytes -= bytes.len();
        }
    }
}

/// A key this call is loading for its scope: filled with the call's value,
/// or released (waiters load themselves) when dropped unfilled.
struct Claim {
    scope: RequestScope,
    full_key: String,
    id: u64,
}

impl Claim {
    fn fill(self, bytes: Vec<u8>) {
        {
            let mut slots = self.scope.lock();
            let ours = matches!(slots.slots.get(&self.full_key), Some(Slot::Pending(id)) if *id == self.id);
            if ours && slots.bytes + bytes.len() <= MAX_SCOPE_BYTES {
                slots.bytes += bytes.len();
                slots.slots.insert(self.full_key.clone(), Slot::Ready(Arc::from(bytes)));
            }
        }
        // Drop releases the slot if it is still ours (too large) and wakes
        // the waiters.
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        {
            let mut slots = self.scope.lock();
            if matches!(slots.slots.get(&self.full_key), Some(Slot::Pending(id)) if *id == self.id) {
                slots.slots.remove(&self.full_key);
            }
        }
        self.scope.state.changed.notify_waiters();
    }
}

/// What the scope says about a key.
enum Lookup<T> {
    Hit(T),
    /// This call loads; its value fills the scope.
    Claimed(Claim),
    /// Outside a scope, the scope is full, or it holds another type under
    /// this key: an ordinary call.
    Pass,
}

async fn lookup<T: DeserializeOwned>(scope: RequestScope, cache: &Cache, key: &str) -> Lookup<T> {
    let full_key = cache.full_key(key);
    loop {
        let changed = {
            let mut slots = scope.lock();
            match slots.slots.get(&full_key) {
                Some(Slot::Ready(bytes)) => {
                    let bytes = bytes.clone();
                    drop(slots);
                    return match codec::decode::<T>(&bytes) {
                        Ok(v) => Lookup::Hit(v),
                        Err(_) => Lookup::Pass,
                    };
                }
                Some(Slot::Pending(_)) => {
                    // Created under the lock, so a fill or release after it
                    // is never missed.
                    scope.state.changed.notified()
                }
                None => {
                    if slots.bytes >= MAX_SCOPE_BYTES {
                        return Lookup::Pass;
                    }
                    slots.next_claim += 1;
                    let id = slots.next_claim;
                    slots.slots.insert(full_key.clone(), Slot::Pending(id));
                    drop(slots);
                    return Lookup::Claimed(Claim {
                        scope: scope.clone(),
                        full_key,
                        id,
                    });
                }
            }
        };
        changed.await;
    }
}

/// What [`check`] leaves to the call it did not answer: the key to fill
/// in the current scope, if any.
pub(crate) struct Fill(Option<Claim>);

impl Fill {
    /// Fills the scope with the call's result when `keep` says the cache
    /// would store it (an `Ok` the policy caches); otherwise releases the
    /// key, so that a waiting call of the scope loads.
    pub(crate) fn keep<T: Serialize, E>(self, cache: &Cache, result: &Result<T, E>, keep: impl FnOnce(&T) -> bool) {
        if let (Some(claim), Ok(v)) = (self.0, result)
            && keep(v)
            && let Ok(bytes) = cache.inner.codec.encode_with(v, None)
        {
            claim.fill(bytes);
        }
    }
}

/// The request-scope hook at the start of cache-aside: `Ok` is the answer
/// from the current scope (an earlier call of the request); `Err` lets the
/// call go on, and its result goes to [`Fill::keep`]. Outside a scope,
/// `Err` at once (one task-local lookup).
pub(crate) async fn check<T: DeserializeOwned>(cache: &Cache, key: &str, policy: &Policy) -> Result<T, Fill> {
    let Some(scope) = RequestScope::current() else {
        // Outside a scope (every near hit outside a web request): no clock
        // read.
        return Err(Fill(None));
    };
    let start = Instant::now();
    match lookup::<T>(scope, cache, key).await {
        Lookup::Pass => Err(Fill(None)),
        Lookup::Claimed(claim) => Err(Fill(Some(claim))),
        Lookup::Hit(v) => {
            let name = policy.name;
            let stats = cache.inner.stats.scope(name, policy.site);
            stats.add(|c| &c.hits);
            stats.add(|c| &c.scope_hits);
            crate::metrics::request(name, "scope_hit");
            trace_op(cache.origin(name), "GET", key, "scope_hit", start);
            Ok(v)
        }
    }
}

/// Drops these keys (as given to the cache, without the namespace) from the
/// current scope: an invalidation or write made inside it.
pub(crate) fn forget_keys(cache: &Cache, keys: &[String]) {
    let _ = CURRENT.try_with(|scope| {
        {
            let mut slots = scope.lock();
            for key in keys {
                RequestScope::remove(&mut slots, &cache.full_key(key));
            }
        }
        scope.state.changed.notify_waiters();
    });
}

/// Drops one key from the current scope.
pub(crate) fn forget_key(cache: &Cache, key: &str) {
    forget_keys(cache, std::slice::from_ref(&key.to_owned()));
}

/// Empties the current scope: a tag, pattern or namespace invalidation made
/// inside it (which entries carry a tag is not known here).
pub(crate) fn forget_all() {
    let _ = CURRENT.try_with(|scope| {
        {
            let mut slots = scope.lock();
            slots.slots.clear();
            slots.bytes = 0;
        }
        scope.state.changed.notify_waiters();
    });
}

#[cfg(feature = "tower")]
pub use self::tower::{ScopeLayer, ScopeService};

#[cfg(feature = "tower")]
mod tower {
    use std::task::{Context, Poll};

    use tokio::task::futures::TaskLocalFuture;

    use super::RequestScope;

    /// A tower [`Layer`](tower_layer::Layer) that runs each request in its
    /// own [request scope](crate::scope()) (feature `tower`): with axum,
    /// `Router::new().route(…).layer(cache_runtime::ScopeLayer::new())`.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct ScopeLayer {
        _priv: (),
    }

    impl ScopeLayer {
        /// The layer.
        pub fn new() -> Self {
            ScopeLayer::default()
        }
    }

    impl<S> tower_layer::Layer<S> for ScopeLayer {
        type Service = ScopeService<S>;

        fn layer(&self, inner: S) -> ScopeService<S> {
            ScopeService { inner }
        }
    }

    /// The service of [`ScopeLayer`]: `inner`, each call in a new scope.
    #[derive(Debug, Clone)]
    pub struct ScopeService<S> {
        inner: S,
    }

    impl<S, R> tower_service::Service<R> for ScopeService<S>
    where
        S: tower_service::Service<R>,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = TaskLocalFuture<RequestScope, S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, req: R) -> Self::Future {
            // Each request its own scope, even if the server itself runs
            // inside one.
            RequestScope::new().run(self.inner.call(req))
        }
    }
}
