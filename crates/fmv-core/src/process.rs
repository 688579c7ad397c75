//! Process-wide settings for binaries to make once at start-up, before any other thread: glibc
//! malloc tuning for tensor workloads, and candle's CPU thread pool left out of fmv's own
//! parallelism. Libraries never call these; `fmv` and `cargo xtask bench` do.

/// Keeps freed blocks in the heap instead of returning them to the kernel: every candle op
/// returns a fresh buffer, and glibc's defaults `mmap` and `munmap` each large one, so every
/// step page-faults its buffers in again, and the kernel zeroes every page on the way.
///
/// The heap is never trimmed, and no block is `mmap`ped at all: glibc caps `M_MMAP_THRESHOLD`
/// at 32 MiB, and the maps of a patterns step at 986 px are up to 62 MB each. Freed memory
/// stays with the process, to be reused (what that gains and costs is measured in
/// `docs/PERFORMANCE.md`). Does nothing outside glibc.
///
/// Call it from `main` before other threads start: it changes process-wide allocator settings.
pub fn tune_glibc_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; glibc serialises it with allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

/// Makes candle's own CPU thread pool single-threaded, unless `CANDLE_NUM_THREADS` is already
/// set. fmv spreads its work itself (rayon inside each op, and lanes that run several images
/// or filters side by side, one per thread). candle's pool, which its element-wise ops fan out
/// to, is one per process and takes one op at a time behind a lock, so lanes queue on it and
/// compat patterns side by side run far slower (`docs/PERFORMANCE.md`). candle reads the
/// variable when it first needs the pool.
///
/// # Safety
///
/// It sets an environment variable: call it from `main` before any other thread starts (and
/// before any candle op), as for [`std::env::set_var`].
pub unsafe fn disable_candle_thread_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees that no other thread reads or writes the environment.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}
