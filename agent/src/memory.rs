//! Keeping the agent's resident memory near its live heap.
//!
//! glibc's malloc keeps freed memory in its arenas for reuse. The agent's
//! work comes in bursts (a sampling round, a batch served to the collector,
//! the first round that writes the whole series dictionary to the store),
//! each allocating a few MiB that are free a moment later; glibc then holds
//! them for good. Measured with 50 containers: a fresh store's first round
//! left about 11 MiB of freed memory resident, and `malloc_trim` gave 8 of it
//! back. So the agent caps the arenas at start and trims after each round.
//! Both are glibc-only; elsewhere they do nothing.

/// Caps glibc at two malloc arenas. Each thread that allocates would
/// otherwise get its own (up to eight per core), each keeping its freed
/// memory. Call before any other thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; the caller runs it
    // before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Caps glibc at two malloc arenas (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

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
