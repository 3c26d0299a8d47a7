//! The allocators: mimalloc for every binary and its options (`binary_allocator!`), glibc's
//! arenas for the C code (`configure`, every binary's first call), and handing free memory back
//! (`trim`).
//!
//! Every binary allocates through mimalloc 3 rather than glibc: in a fresh pull of 100,000
//! resources the apply threads, the index writers and tokio's workers all allocate and free
//! at a high rate, and glibc's arenas (two, see below) made them wait on each other. Measured
//! with `atelier-bench sync` (2 cores, release builds, same hour): the pull went from 31.7 to
//! 21.9 s and its process's CPU from 52.9 to 38.1 s; its peak RSS after the first search from
//! 513 to 475 MB. Left to its defaults, mimalloc kept much more memory (a 10,000 pull: 330
//! against glibc's 186–194 MB), because it commits its arenas eagerly, so the pages it purges
//! stay resident; [`binary_allocator!`](crate::binary_allocator) turns that off
//! ([`ARENA_EAGER_COMMIT`]): 202 MB. Purging at once as well (`purge_delay` 0 instead of 10 ms)
//! saved another 14 MB but cost an import a sixth of its speed, in `madvise` calls.
//!
//! glibc's own heap still serves the C code linked in (zstd, ring), so its arenas stay limited:
//! glibc gives a thread that finds the heap busy an arena of its own, up to eight per core, and
//! memory freed in an arena mostly stays with the process. The sync's apply threads, the search
//! index's writer threads and tokio's workers each allocate and free hundreds of MB in a fresh
//! pull, so the process kept far more than it used. Measured on the fresh pull of 100,000
//! resources (`atelier-bench sync`, 2 cores, two runs each) with two arenas instead of glibc's
//! default: the puller's peak RSS went from 595–638 MB to 401–476 MB and the relay's from
//! 262–331 MB to 188–189 MB, with the pull no slower (13.5–16.3 s).

use std::ffi::OsStr;

/// The allocator of every binary, which [`binary_allocator!`](crate::binary_allocator) declares.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc's `arena_eager_commit`: 0 commits an arena's memory as it is used, not all at once
/// (its default on Linux), so that the pages it purges leave the process's resident memory.
pub const ARENA_EAGER_COMMIT: i64 = 0;

/// mimalloc's option number for `arena_eager_commit` (`mi_option_t` in mimalloc 3's
/// `mimalloc.h`; the Rust bindings do not name it).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Declares a binary's global allocator ([`Allocator`]) and sets its option
/// ([`ARENA_EAGER_COMMIT`]) before its first allocation: from `main` would be too late, the
/// first arena would already be made with mimalloc's default (a 10,000 pull then peaked at
/// 250 MB instead of 190). On Linux the options are set by a constructor that runs
/// before mimalloc's own (ELF init priority 101; mimalloc's has none). Put it in every binary's
/// `main.rs`, outside any function.
#[macro_export]
macro_rules! binary_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::malloc::Allocator = $crate::malloc::Allocator;

        #[cfg(target_os = "linux")]
        #[used]
        #[allow(unsafe_code)]
        // SAFETY: an `.init_array` entry is called once at load, before `main`, with no
        // arguments, as `extern "C" fn()`; the function it names allocates nothing and cannot
        // panic (see `set_allocator_options`).
        #[unsafe(link_section = ".init_array.00101")]
        static SET_ALLOCATOR_OPTIONS: extern "C" fn() = $crate::malloc::set_allocator_options;
    };
}

/// Sets mimalloc's option ([`ARENA_EAGER_COMMIT`]) unless the operator set it
/// (`MIMALLOC_ARENA_EAGER_COMMIT`). Called before anything is allocated ([`binary_allocator!`]
/// (crate::binary_allocator)), so it allocates nothing: the environment is read through
/// `getenv` with a static name.
pub extern "C" fn set_allocator_options() {
    if !env_is_set(c"MIMALLOC_ARENA_EAGER_COMMIT") {
        set_mimalloc_option(MI_OPTION_ARENA_EAGER_COMMIT, ARENA_EAGER_COMMIT);
    }
}

#[allow(unsafe_code)]
fn env_is_set(name: &std::ffi::CStr) -> bool {
    // SAFETY: `name` is a NUL-terminated string; `getenv` only reads the environment, which
    // nothing changes this early (no thread runs yet), and the pointer it returns is not kept.
    !unsafe { libc::getenv(name.as_ptr()) }.is_null()
}

#[allow(unsafe_code)]
fn set_mimalloc_option(option: libmimalloc_sys::mi_option_t, value: i64) {
    let value = std::ffi::c_long::try_from(value).unwrap_or(std::ffi::c_long::MAX);
    // SAFETY: `mi_option_set` takes two integers and stores the value in mimalloc's option
    // table (an out-of-range option number is ignored); no pointer is involved.
    unsafe { libmimalloc_sys::mi_option_set(option, value) }
}

/// The C library's allocator settings, for every binary, first thing in `main` (before any
/// thread starts): glibc's arenas ([`limit_arenas`]).
pub fn configure() {
    limit_arenas();
}

/// Arenas per core: one lets each core's thread allocate without waiting for the other's.
pub const ARENAS_PER_CORE: usize = 1;
/// Arenas at least, whatever the core count.
pub const MIN_ARENAS: usize = 2;

/// Limits glibc's arenas to [`ARENAS_PER_CORE`] per core (at least [`MIN_ARENAS`]), unless
/// `MALLOC_ARENA_MAX` is set (the operator's choice wins). Called first in `main`, before any
/// thread starts: arenas made before it are kept. Elsewhere than glibc it does nothing.
fn limit_arenas() {
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

/// Hands the heaps' free pages back to the system (mimalloc's `mi_collect`, glibc's
/// `malloc_trim` where glibc is the C library), before work that will allocate much on top of
/// what an earlier step freed: building the search index of a fresh pull, whose peak added
/// ~80 MB to what the pull's freed memory still held.
pub fn trim() {
    collect_mimalloc();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    trim_glibc();
}

#[allow(unsafe_code)]
fn collect_mimalloc() {
    // SAFETY: `mi_collect` takes a flag and frees what this thread's heap no longer uses, under
    // mimalloc's own locks; with another global allocator it finds an empty heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
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
