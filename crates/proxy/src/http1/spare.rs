//! Per-thread stores of spare allocations (read and write buffers, a head's field list, request
//! slots), and their trimming.
//!
//! A store keeps what connections give back so the next taker neither allocates nor zeroes.
//! Up to [`SPARE_MAX`] of each kind: under steady load that is what the busy connections need
//! at once. After a burst (500 clients connecting at once) it would keep the burst's peak for
//! good — 4 MiB of read buffers alone, half a kilobyte per connection of 8,000 idle ones
//! (`bench/idle-memory.sh`). So each store remembers its low-water mark, the fewest spares it
//! held since it was last trimmed: those were never needed in that time, and [`trim`] frees
//! them. Under steady load a period takes spares from the store and the mark stays near zero,
//! so trimming costs the hot path nothing but a comparison per take.

use std::cell::RefCell;
use std::time::Duration;

/// Most spares kept per thread (of each kind).
pub(crate) const SPARE_MAX: usize = 256;

/// How often a thread's stores are trimmed.
pub(crate) const TRIM_PERIOD: Duration = Duration::from_millis(500);

/// Spares of one kind, and the fewest it held since the last trim.
pub(crate) struct Store<T> {
    spare: Vec<T>,
    low: usize,
}

impl<T> Store<T> {
    /// An empty store (usable in `thread_local!` with `const`).
    pub(crate) const fn new() -> Store<T> {
        Store {
            spare: Vec::new(),
            low: 0,
        }
    }

    /// A spare, if the store has one.
    pub(crate) fn take(&mut self) -> Option<T> {
        let _ = TAKES.try_with(|t| t.set(t.get().wrapping_add(1)));
        let item = self.spare.pop();
        self.low = self.low.min(self.spare.len());
        item
    }

    /// Keep `item` for the next taker (dropped if the store is full).
    pub(crate) fn give(&mut self, item: T) {
        if self.spare.len() < SPARE_MAX {
            self.spare.push(item);
        }
    }

    /// Free the spares no one took since the last trim; start a new period. Returns how
    /// many were freed.
    pub(crate) fn trim(&mut self) -> usize {
        let freed = self.low.min(self.spare.len());
        let keep = self.spare.len() - freed;
        self.spare.truncate(keep);
        if keep == 0 {
            self.spare = Vec::new();
        }
        self.low = keep;
        freed
    }

    /// Spares held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.spare.len()
    }
}

/// A per-thread store of spare vectors (read and write buffers, a head's field list).
pub(crate) type Spare<T> = std::thread::LocalKey<RefCell<Store<Vec<T>>>>;

/// A spare vector from `spare`, if it has one.
pub(crate) fn take_from<T>(spare: &'static Spare<T>) -> Option<Vec<T>> {
    spare.with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
}

/// Keep `buf` in `spare` for the next taker (freed if the store is full).
pub(crate) fn give_to<T>(spare: &'static Spare<T>, buf: Vec<T>) {
    // During thread teardown the store may be gone: then the buffer is simply freed.
    let _ = spare.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.give(buf);
        }
    });
}

/// Trim `spare` (see [`Store::trim`]); how many spares were freed.
pub(crate) fn trim_store<T>(spare: &'static Spare<T>) -> usize {
    spare
        .try_with(|s| s.try_borrow_mut().map_or(0, |mut s| s.trim()))
        .unwrap_or(0)
}

/// What the process's allocator does to give freed memory back to the system (see
/// [`set_memory_release`]).
static RELEASE: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Tell the data plane how to make the allocator give freed memory back to the system, run
/// after a trim freed spares. An allocator may keep freed pages for a while and give them back
/// only when it is next busy (mimalloc purges them lazily): on a process gone quiet after a
/// burst, that would be never. The binary, which chose the allocator, sets it once.
pub fn set_memory_release(release: fn()) {
    let _ = RELEASE.set(release);
}

thread_local! {
    /// Takes from this thread's stores since the last trim.
    static TAKES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Trim every store of this thread; then, if that freed anything and the thread was quiet
/// (nothing taken since the last trim: a burst is over), let the allocator give it back. Under
/// load the allocator keeps its pages: giving them back twice a second would have them faulted
/// in again at once.
pub(crate) fn trim() {
    let freed = super::buf::trim() + super::head::trim() + super::slot::trim();
    let quiet = TAKES.try_with(|t| t.replace(0) == 0).unwrap_or(false);
    if freed > 0 && quiet {
        if let Some(release) = RELEASE.get() {
            release();
        }
    }
}

/// Trim this thread's stores every [`TRIM_PERIOD`], from a task of their own, when the runtime
/// runs every task on this thread (as `flotilla up --worker-threads 1` does). On a multi-thread
/// runtime a task is not bound to a thread, and each worker keeps at most [`SPARE_MAX`] spares
/// of each kind.
pub(crate) fn spawn_trimmer() {
    thread_local! {
        static SPAWNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if rt.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread
        || SPAWNED.with(|s| s.replace(true))
    {
        return;
    }
    /// Lets a later runtime on this thread spawn its own trimmer once this one is gone.
    struct Spawned;
    impl Drop for Spawned {
        fn drop(&mut self) {
            let _ = SPAWNED.try_with(|s| s.set(false));
        }
    }
    rt.spawn(async move {
        let _spawned = Spawned;
        let mut tick = tokio::time::interval(TRIM_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            trim();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_frees_what_went_untaken_since_the_last_and_keeps_what_was_used() {
        let mut store = Store::new();
        for i in 0..10 {
            store.give(i);
        }
        // A burst's leftovers: nothing took them in the first period.
        store.trim();
        assert_eq!(store.len(), 10, "the first period's mark starts at zero");
        store.trim();
        assert_eq!(store.len(), 0, "untaken for a whole period: freed");
        // Steady use: four at a time taken and given back.
        for i in 0..4 {
            store.give(i);
        }
        store.trim();
        for _ in 0..3 {
            let taken: Vec<_> = (0..4).filter_map(|_| store.take()).collect();
            assert_eq!(taken.len(), 4);
            taken.into_iter().for_each(|t| store.give(t));
            store.trim();
            assert_eq!(store.len(), 4, "spares in use are kept");
        }
    }

    /// The trimmer of a one-thread runtime frees a burst's read buffers once they have gone
    /// untaken for a period (virtual time).
    #[tokio::test(start_paused = true)]
    async fn the_trimmer_gives_a_bursts_buffers_back() {
        use crate::http1::buf::{spare_reads, InBuf};
        let before = spare_reads();
        let burst: Vec<InBuf> = (0..10)
            .map(|_| {
                let mut b = InBuf::new();
                b.push(b"GET / HTTP/1.1\r\n");
                b
            })
            .collect();
        drop(burst);
        assert_eq!(spare_reads(), before + 10, "given back to the store");
        spawn_trimmer();
        tokio::time::sleep(3 * TRIM_PERIOD).await;
        assert_eq!(spare_reads(), 0, "untaken for a period: freed");
    }

    #[test]
    fn a_store_keeps_at_most_its_maximum() {
        let mut store = Store::new();
        for i in 0..SPARE_MAX + 5 {
            store.give(i);
        }
        assert_eq!(store.len(), SPARE_MAX);
    }
}
