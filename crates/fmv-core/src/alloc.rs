//! glibc malloc tuning for tensor workloads, for binaries to call once at start-up.

/// Keeps large freed blocks in the heap instead of returning them to the kernel: every candle
/// op returns a fresh buffer, and glibc's defaults `mmap` and `munmap` each large one, so every
/// step page-faults its buffers in again. Measured by `cargo xtask bench patterns` (ResNet50
/// optimisation step): 1.12× faster at 224×224 and 1.13× at 448×448 (`docs/PERFORMANCE.md`).
/// Freed memory stays with the process (its peak does not grow). Does nothing outside glibc.
///
/// Call it from `main` before other threads start: it changes process-wide allocator settings.
pub fn tune_glibc_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; glibc serialises it with allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
