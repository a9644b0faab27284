//! Keeping the agent's resident memory near its live heap.
//!
//! glibc's malloc keeps freed memory in its arenas for reuse. The agent's
//! work comes in bursts (a sampling round, a batch served to the collector,
//! the first round that writes the whole series dictionary to the store),
//! each allocating a few MiB that are free a moment later; glibc then holds
//! them for good. Measured with 50 containers: a fresh store's first round
//! left about 11 MiB of freed memory resident, and `malloc_trim` gave 8 of it
//! back. So the agent tunes the allocator at start and trims after each round.
//! Both are glibc-only; elsewhere they do nothing.

/// Large blocks come straight from the kernel at and above this size.
const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Caps glibc at two malloc arenas and fixes its mmap threshold. Call before
/// any other thread starts.
///
/// - Each thread that allocates would otherwise get its own arena (up to
///   eight per core), each keeping its freed memory.
/// - glibc raises its mmap threshold to the size of any large block freed
///   (up to 32 MiB), after which large blocks come from the arenas, where a
///   zeroed allocation must be written to and stays resident. sled allocates
///   about 20 MiB of zeroed statistics tables at open that it never touches
///   with its metrics off: from fresh mmap pages they cost nothing; from an
///   arena they cost 20 MiB of RSS. A fixed threshold keeps them mmapped.
///   This relies on sled's tables reaching `calloc`, which the optimizer does
///   at opt-level 3; built for size ("s") sled writes the zeros itself and
///   they cost 20 MiB whatever the threshold (measured; see
///   docs/benchmarks.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; the caller runs it
    // before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Tunes glibc's allocator (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

/// Returns the allocator's free pages to the kernel. Takes well under a
/// millisecond on the agent's heap of a few MiB; called from blocking code
/// once per sampling round.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is
    // thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns free pages to the kernel (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free() {}
