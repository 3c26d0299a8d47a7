//! One parallel map for CPU-bound work over many independent items (importing, loading
//! documents for the search index), on scoped threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// How many threads a parallel map of `len` items should use: at most `max_threads` and the
/// machine's parallelism, and at least `min_per_thread` items per thread, since starting a
/// thread costs more than a few items of work. Below 2, [`map`] runs on the calling thread.
pub fn threads_for(len: usize, max_threads: usize, min_per_thread: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(max_threads)
        .min(len / min_per_thread.max(1))
}

/// Calls `f` on every item on `threads` scoped threads (on the calling thread alone when
/// `threads` < 2), each thread taking the next item nobody has taken, so that uneven items
/// still keep every thread busy. `each` sees every result on the calling thread as it arrives
/// (for progress bars) and returns false to stop: items not started by then are skipped.
/// Results come back in input order, `None` for skipped items. A panic in `f` is a bug: it
/// reaches the caller once the other threads have stopped.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    mut each: impl FnMut(&R) -> bool,
) -> Vec<Option<R>> {
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    if threads < 2 {
        for (item, slot) in items.iter().zip(&mut results) {
            let r = f(item);
            let go_on = each(&r);
            *slot = Some(r);
            if !go_on {
                break;
            }
        }
        return results;
    }
    let (next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let (tx, next, stop, f) = (tx.clone(), &next, &stop, &f);
            scope.spawn(move || {
                while !stop.load(Relaxed) {
                    let i = next.fetch_add(1, Relaxed);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    if tx.send((i, f(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            if !each(&r) {
                stop.store(true, Relaxed);
            }
            results[i] = Some(r);
        }
    });
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order_on_any_number_of_threads() {
        let items: Vec<u64> = (0..1000).collect();
        for threads in [0, 1, 2, 4] {
            let mut seen = 0;
            let out = map(
                &items,
                threads,
                |x| x * 2,
                |_| {
                    seen += 1;
                    true
                },
            );
            assert_eq!(seen, items.len());
            let want: Vec<Option<u64>> = items.iter().map(|x| Some(x * 2)).collect();
            assert_eq!(out, want, "{threads} threads");
        }
    }

    #[test]
    fn stopping_skips_the_items_not_started() {
        let items: Vec<u64> = (0..10_000).collect();
        for threads in [1, 4] {
            // Items past the tenth wait until the stop is given, so each thread can have
            // started at most one of them by then, whatever the scheduling.
            let stopped = AtomicBool::new(false);
            let f = |x: &u64| {
                while *x > 10 && !stopped.load(Relaxed) {
                    std::thread::yield_now();
                }
                *x
            };
            let out = map(&items, threads, f, |x| {
                let go_on = *x != 10;
                stopped.fetch_or(!go_on, Relaxed);
                go_on
            });
            assert_eq!(out[10], Some(10));
            let done = out.iter().flatten().count();
            assert!(done <= 11 + threads, "{threads} threads did {done}");
        }
        assert!(threads_for(10, 8, 64) < 2, "too few items for threads");
        assert_eq!(threads_for(10_000, 1, 64), 1);
    }
}
