//! Locking a `std::sync::Mutex` whose data a panic cannot leave half-updated.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning.
///
/// A mutex is poisoned when a thread panicked while holding it. Use this only where every
/// critical section leaves the guarded data consistent at each step (a map insert or remove, a
/// value swapped whole, data written only after the operation it records succeeded), so that a
/// panic elsewhere in the thread must not take every later user of the lock down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = Mutex::new(vec![1]);
        let poisoned = std::panic::catch_unwind(|| {
            let mut guard = m.lock().unwrap();
            guard.push(2);
            panic!("while holding the lock");
        });
        assert!(poisoned.is_err() && m.is_poisoned());
        lock(&m).push(3);
        assert_eq!(*lock(&m), [1, 2, 3]);
    }
}
