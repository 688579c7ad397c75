//! Buffers the kernels write: vectors filled once in parallel, a pointer threads share to
//! write disjoint elements, and the host slices behind CPU tensors.

use candle_core::{CpuStorage, Layout, Tensor};
use rayon::prelude::*;

use crate::float::Float;

/// Elements per run of the parallel writers: 64 KiB of `f32`.
pub(crate) const RUN: usize = 1 << 14;

/// `len` zeros, written by every thread when there are many: a buffer this large comes from
/// glibc's reused heap (see `fmv_core::process::tune_glibc_malloc`), which would otherwise be
/// zeroed by one thread's `memset`.
pub(crate) fn zeroed<T: Float>(len: usize) -> Vec<T> {
    if len < 1 << 16 {
        return vec![T::zero(); len];
    }
    filled_in_runs(len, RUN, |_| T::zero())
}

/// `len` elements in runs of `run` (the last one may be shorter), each element of run `i`
/// equal to `value(i)`, written once, in parallel. With `run` a plane's size, the runs are
/// planes: a convolution's output starts as its bias this way.
pub(crate) fn filled_in_runs<T: Float>(
    len: usize,
    run: usize,
    value: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    // SAFETY: the loop writes every slot of the run.
    unsafe {
        written_in_runs(len, run, |i, run| {
            let v = value(i);
            for o in run {
                o.write(v);
            }
        })
    }
}

/// `len` elements written once, in parallel, in runs of `run` (the last one may be shorter):
/// `write(i, slots)` is given run `i`'s slots.
///
/// # Safety
///
/// `write` must write every slot it is given: the vector's elements are those slots.
pub(crate) unsafe fn written_in_runs<T: Float>(
    len: usize,
    run: usize,
    write: impl Fn(usize, &mut [std::mem::MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(run.max(1))
        .enumerate()
        .for_each(|(i, slots)| write(i, slots));
    // SAFETY: the runs above cover the first `len` elements, and `write` wrote each of them
    // (the caller's guarantee).
    unsafe { out.set_len(len) };
    out
}

/// Runs `f` on `len` elements of this thread's scratch, kept from call to call, so that a
/// kernel that runs once per layer and step neither allocates nor zeroes its working memory
/// each time. The elements hold whatever the thread's last call left there: `f` must write
/// each element before it reads it. A call nested in another on the same thread (a rayon
/// worker that takes up another kernel's job while it waits) gets a buffer of its own.
pub(crate) fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let cell = T::scratch();
    let mut buf = cell.take();
    if buf.len() < len {
        buf.resize(len, T::zero());
    }
    let result = f(&mut buf[..len]);
    cell.set(buf);
    result
}

/// A buffer's base pointer, shared by the threads that write disjoint elements of it.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<T>(pub *mut T);

// SAFETY: only a pointer; whoever writes through it guarantees the elements are disjoint.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The element `offset` past the base. (A method, so that closures capture the whole
    /// `Sync` wrapper, not the raw pointer field.)
    pub fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// The slice behind a contiguous CPU tensor.
pub(crate) fn host_slice<'a, T: Float>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<T>()?[start..end]),
        None => candle_core::bail!("fmv kernel: expected a contiguous tensor"),
    }
}

/// Runs `f` on the slices of CPU tensors of the element type `T` (`None` stays `None`).
pub(crate) fn with_host<T: Float, R>(
    tensors: &[Option<&Tensor>],
    f: impl FnOnce(&[Option<&[T]>]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let guards: Vec<_> = tensors
        .iter()
        .map(|t| t.map(|t| t.storage_and_layout()))
        .collect();
    let mut slices = Vec::with_capacity(guards.len());
    for g in &guards {
        slices.push(match g {
            None => None,
            Some((storage, layout)) => match &**storage {
                candle_core::Storage::Cpu(s) => Some(host_slice::<T>(s, layout)?),
                _ => candle_core::bail!("fmv kernel: weights are not on the CPU"),
            },
        });
    }
    f(&slices)
}

/// Runs `$body` with `$t` the storage's element type (`f32` or `f64`) and wraps the `Vec` it
/// returns as a storage of that type; other types are an error naming the op.
macro_rules! in_float_type {
    ($storage:expr, $op:literal, $t:ident => $body:expr) => {
        match $storage {
            CpuStorage::F32(_) => {
                type $t = f32;
                CpuStorage::F32($body)
            }
            CpuStorage::F64(_) => {
                type $t = f64;
                CpuStorage::F64($body)
            }
            other => candle_core::bail!("fmv {}: unsupported dtype {:?}", $op, other.dtype()),
        }
    };
}
pub(crate) use in_float_type;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every run gets its own value, the last one short; nothing is left unwritten, at the
    /// sizes where `zeroed` switches to writing in parallel too.
    #[test]
    fn filled_in_runs_writes_every_element_with_its_runs_value() {
        for (len, run) in [(0, 0), (0, 5), (1, 5), (17, 5), (20, 5), (100_003, 1000)] {
            let v = filled_in_runs(len, run, |i| i as f32 + 0.5);
            assert_eq!(v.len(), len);
            for (j, &x) in v.iter().enumerate() {
                assert_eq!(
                    x,
                    (j / run.max(1)) as f32 + 0.5,
                    "len {len}, run {run}, element {j}"
                );
            }
        }
        for len in [(1 << 16) - 1, 1 << 16, (1 << 16) + 3, 3 * RUN + 1] {
            let z = zeroed::<f64>(len);
            assert_eq!(z.len(), len);
            assert!(z.iter().all(|&x| x == 0.0), "zeroed({len})");
        }
    }
}
