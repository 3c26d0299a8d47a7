//! The C allocator's settings: fewer glibc arenas (every binary, first thing), and trimming.
//!
//! glibc gives a thread that finds the heap busy an arena of its own, up to eight per core, and
//! memory freed in an arena mostly stays with the process. The sync's apply threads, the search
//! index's writer threads and tokio's workers each allocate and free hundreds of MB in a fresh
//! pull, so the process kept far more than it used. Measured on the fresh pull of 100,000
//! resources (`atelier-bench sync`, 2 cores, two runs each) with two arenas instead of glibc's
//! default: the puller's peak RSS went from 595–638 MB to 401–476 MB and the relay's from
//! 262–331 MB to 188–189 MB, with the pull no slower (13.5–16.3 s).

use std::ffi::OsStr;

/// Arenas per core: one lets each core's thread allocate without waiting for the other's.
pub const ARENAS_PER_CORE: usize = 1;
/// Arenas at least, whatever the core count.
pub const MIN_ARENAS: usize = 2;

/// Limits glibc's arenas to [`ARENAS_PER_CORE`] per core (at least [`MIN_ARENAS`]), unless
/// `MALLOC_ARENA_MAX` is set (the operator's choice wins). Call it first in `main`, before any
/// thread starts: arenas made before it are kept. Elsewhere than glibc it does nothing.
pub fn limit_arenas() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(arenas) = arena_limit(cores, std::env::var_os("MALLOC_ARENA_MAX").as_deref()) else {
        return;
    };
    set_arena_max(arenas);
}

/// The arena limit for `cores` cores, or `None` when `MALLOC_ARENA_MAX` (`env`) is set.
fn arena_limit(cores: usize, env: Option<&OsStr>) -> Option<usize> {
    match env {
        Some(_) => None,
        None => Some((cores * ARENAS_PER_CORE).max(MIN_ARENAS)),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: usize) {
    let arenas = libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX);
    // SAFETY: `mallopt` takes two integers and only records the limit for arenas created from
    // now on, under glibc's own lock; no pointer, no memory of ours is involved.
    let applied = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    if applied != 1 {
        tracing::warn!(arenas, "glibc refused the arena limit");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: usize) {}

/// Hands the heap's free pages back to the system (glibc's `malloc_trim`), before work that will
/// allocate much on top of what an earlier step freed: building the search index of a fresh
/// pull, whose peak added ~80 MB to what the pull's freed memory still held. Elsewhere than glibc
/// it does nothing.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    trim_glibc();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_glibc() {
    // SAFETY: `malloc_trim` takes an integer (the padding to keep) and only releases free
    // memory, under glibc's own locks; no pointer of ours is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_arena_per_core_at_least_two_unless_the_operator_chose() {
        assert_eq!(arena_limit(1, None), Some(2));
        assert_eq!(arena_limit(2, None), Some(2));
        assert_eq!(arena_limit(8, None), Some(8));
        assert_eq!(arena_limit(8, Some(OsStr::new("4"))), None);
    }
}
