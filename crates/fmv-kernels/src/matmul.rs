//! The one way into `gemm`: a matrix product over rayon's threads, with wide products split
//! by columns by hand.
//!
//! `gemm` gives each column of the destination the same sum however a product is split, so
//! every result here is the same bit for bit on any number of threads.

use rayon::prelude::*;

use crate::buffer::SharedOut;
use crate::float::Float;

/// `gemm`'s parallelism for the threads of the current rayon pool.
fn threads() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// The columns of each part when [`matmul`] splits a wide product by hand.
const COLUMN_CHUNK: usize = 2048;

/// `dst (m × n) = [dst +] lhs (m × k) · rhs (k × n)`, every operand given by its strides
/// (dst's rows `dst_rs` apart, its columns adjacent), over rayon's threads.
///
/// A wide product (at least four parts of [`COLUMN_CHUNK`] columns) is split into such parts by
/// hand, each multiplied on one thread; others are split by `gemm` itself. The products of a
/// few rows and tens of thousands of columns that large maps make run faster this way than
/// under `gemm`'s own split (measured in `docs/PERFORMANCE.md`). `gemm` gives each column of
/// `dst` the same sum either way, so the result is the same bit for bit whatever the number of
/// threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Float>(
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: &[T],
    lhs_strides: (usize, usize),
    rhs: &[T],
    rhs_strides: (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst.len() > (m - 1) * dst_rs + n - 1,
        "gemm destination too small"
    );
    let parallelism = threads();
    if matches!(parallelism, gemm::Parallelism::Rayon(_)) && n >= 4 * COLUMN_CHUNK {
        let out = SharedOut(dst.as_mut_ptr());
        (0..n.div_ceil(COLUMN_CHUNK))
            .into_par_iter()
            .for_each(|part| {
                let first = part * COLUMN_CHUNK;
                let cols = COLUMN_CHUNK.min(n - first);
                // SAFETY: part `part` writes the columns `first..first + cols` of the rows of
                // `dst`, inside it by the assert above and disjoint from every other part's;
                // `dst` is borrowed mutably for the whole call.
                unsafe {
                    matmul_into(
                        out.at(first),
                        dst_rs,
                        accumulate,
                        (m, cols, k),
                        lhs,
                        lhs_strides,
                        &rhs[first * rhs_strides.1..],
                        rhs_strides,
                        gemm::Parallelism::None,
                    )
                }
            });
        return;
    }
    // SAFETY: the assert keeps every element written inside `dst`, which is borrowed mutably.
    unsafe {
        matmul_into(
            dst.as_mut_ptr(),
            dst_rs,
            accumulate,
            (m, n, k),
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
            parallelism,
        )
    }
}

/// The one call into `gemm`: [`matmul`] into a raw destination, with the parallelism given
/// (several products can then run side by side, each on one thread, into disjoint elements of
/// one buffer).
///
/// # Safety
///
/// Every element `dst + i·dst_rs + j` (`i < m`, `j < n`) must be valid for reads and writes,
/// not alias `lhs` or `rhs`, and not be accessed by another thread during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_into<T: Float>(
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts keep every index gemm reads inside `lhs` and `rhs`; the caller
    // guarantees the destination's elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::random;

    /// A product wide enough to be split by columns gives the same bits on one, two and three
    /// threads, each element the exact sum within f32 rounding; strided operands, a padded
    /// destination and accumulation included, and nothing written past a row's `n` columns.
    #[test]
    fn a_wide_product_is_the_same_bit_for_bit_on_any_number_of_threads() {
        let (m, n, k) = (5, 4 * COLUMN_CHUNK + 123, 37);
        let dst_rs = n + 3;
        let values = |len: usize, seed: u64| -> Vec<f32> {
            let t = random(&[len], seed);
            t.to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|&v| v as f32)
                .collect()
        };
        // lhs stored transposed (k × m), rhs as it is (k × n).
        let (lhs, rhs, start) = (values(k * m, 1), values(k * n, 2), values(m * dst_rs, 3));
        let product = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut dst = start.clone();
            pool.install(|| {
                matmul(
                    &mut dst,
                    dst_rs,
                    true,
                    (m, n, k),
                    &lhs,
                    (1, m),
                    &rhs,
                    (n, 1),
                )
            });
            dst
        };
        let one = product(1);
        for threads in [2, 3] {
            let many = product(threads);
            assert!(
                one.iter()
                    .zip(&many)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads differ from one"
            );
        }
        for i in 0..m {
            for j in 0..dst_rs {
                let got = one[i * dst_rs + j] as f64;
                let was = start[i * dst_rs + j] as f64;
                if j >= n {
                    assert_eq!(got, was, "padding ({i}, {j}) written");
                    continue;
                }
                let sum: f64 = (0..k)
                    .map(|p| lhs[p * m + i] as f64 * rhs[p * n + j] as f64)
                    .sum();
                assert!(
                    (got - was - sum).abs() < 1e-5,
                    "({i}, {j}): {got} vs {}",
                    was + sum
                );
            }
        }
    }
}
