//! The transforms of `f32` tiles four at a time in SSE registers, part of every x86-64 CPU: one
//! tile a lane, for the tiles of one tile row side by side. Each value is the same sums in the
//! same order as the scalar path's [`dot`](super::dot) (no fused multiply-add), so the results
//! are the same bit for bit; the tests compare the two.

use std::arch::x86_64::{
    __m128, _mm_add_ps, _mm_loadu_ps, _mm_max_ps, _mm_mul_ps, _mm_set1_ps, _mm_setzero_ps,
    _mm_storeu_ps, _mm_sub_ps,
};

use super::{Float, Scheme};

/// Tiles computed together.
const LANES: usize = 4;

/// The widest tile row whose F(2×2, 3×3) input transform takes this path: on wider rows the
/// scalar path measured faster (that transform is additions only), on narrower ones this one.
const F2_INPUT_TILES_UP_TO: usize = 16;

/// Computes one tile row's input transform ([`super::input_row`]) when `T` is `f32` and the
/// row has at least [`LANES`] tiles (and, for F(2×2, 3×3), at most
/// [`F2_INPUT_TILES_UP_TO`]); returns whether it did.
pub(super) fn input_row<T: Float, S: Scheme>(
    d: &[T],
    len: usize,
    tw: usize,
    tiles: usize,
    row_out: &mut [T],
) -> bool {
    let (Some(d), Some(row_out)) = (as_f32(d), as_f32_mut(row_out)) else {
        return false;
    };
    if tw < LANES || (S::M == 2 && tw > F2_INPUT_TILES_UP_TO) {
        return false;
    }
    for tx in (0..tw).step_by(LANES) {
        // The last block may overlap the one before; it writes the same values again.
        let tx = tx.min(tw - LANES);
        // Arrays of the tile's own size: larger ones would be zeroed for nothing.
        match S::A {
            4 => input_tiles::<S, 4>(d, len, tx, tiles, row_out),
            _ => input_tiles::<S, 6>(d, len, tx, tiles, row_out),
        }
    }
    true
}

/// Computes one tile row's output transform ([`super::output_row`]) when `T` is `f32` and the
/// row has at least [`LANES`] tiles; returns whether it did.
pub(super) fn output_row<T: Float, S: Scheme>(
    row_in: &[T],
    tw: usize,
    tiles: usize,
    bias: T,
    relu: bool,
    lines: &mut [T],
) -> bool {
    let (Some(row_in), Some(lines), Some(&[bias])) = (
        as_f32(row_in),
        as_f32_mut(lines),
        as_f32(std::slice::from_ref(&bias)),
    ) else {
        return false;
    };
    if tw < LANES {
        return false;
    }
    for tx in (0..tw).step_by(LANES) {
        let tx = tx.min(tw - LANES);
        match S::A {
            4 => output_tiles::<S, 4>(row_in, tw, tx, tiles, bias, relu, lines),
            _ => output_tiles::<S, 6>(row_in, tw, tx, tiles, bias, relu, lines),
        }
    }
    true
}

/// `V = Bᵀ d B` of the tiles `tx..tx + 4`: `d` holds the row's `a` input rows in phases (`len`
/// values a phase), `V[ξ]` goes to `row_out[ξ·tiles + tx..]`.
#[inline(always)]
fn input_tiles<S: Scheme, const A: usize>(
    d: &[f32],
    len: usize,
    tx: usize,
    tiles: usize,
    row_out: &mut [f32],
) {
    let m = S::M;
    let width = m * len;
    // t[i][c] = Σ_r Bᵀ[i, r] · d[r][c], then V[i·a + j] = Σ_c Bᵀ[j, c] · t[i][c].
    let mut t = [[zero(); A]; A];
    for c in 0..A {
        let at = (c % m) * len + c / m + tx;
        let column: [__m128; A] = std::array::from_fn(|r| load(d, r * width + at));
        for (i, ti) in t.iter_mut().enumerate() {
            ti[c] = dot(&S::BT[i], &column);
        }
    }
    for (i, ti) in t.iter().enumerate() {
        for j in 0..A {
            store(row_out, (i * A + j) * tiles + tx, dot(&S::BT[j], ti));
        }
    }
}

/// `Y = Aᵀ M A` (+ bias, ReLU) of the tiles `tx..tx + 4`, from `M[ξ]` at `row_in[ξ·tiles +
/// tx..]`: output row `i'` of the tiles goes to `lines[i'·m·tw..]`, at columns `tx·m..`.
#[inline(always)]
fn output_tiles<S: Scheme, const A: usize>(
    row_in: &[f32],
    tw: usize,
    tx: usize,
    tiles: usize,
    bias: f32,
    relu: bool,
    lines: &mut [f32],
) {
    let m = S::M;
    // s[i'][j] = Σ_i Aᵀ[i', i] · M[i·a + j]; then Y[i'][j'] = Σ_j Aᵀ[j', j] · s[i'][j].
    let mut s = [[zero(); A]; 4];
    for j in 0..A {
        let column: [__m128; A] = std::array::from_fn(|i| load(row_in, (i * A + j) * tiles + tx));
        for (ii, si) in s.iter_mut().enumerate().take(m) {
            si[j] = dot(&S::AT[ii], &column);
        }
    }
    let bias = splat(bias);
    for (ii, si) in s.iter().enumerate().take(m) {
        // y[j'][l]: column j' of tile tx + l.
        let mut y = [[0f32; LANES]; 4];
        for (jj, yj) in y.iter_mut().enumerate().take(m) {
            let mut v = add(dot(&S::AT[jj], si), bias);
            if relu {
                // `max` returns its second operand for NaN and for −0, as `relu_of` gives 0.
                v = max(v, zero());
            }
            store(yj, 0, v);
        }
        let line = &mut lines[ii * m * tw + tx * m..][..LANES * m];
        for (l, tile) in line.chunks_exact_mut(m).enumerate() {
            for (jj, out) in tile.iter_mut().enumerate() {
                *out = y[jj][l];
            }
        }
    }
}

/// [`dot`](super::dot) over all `N` values, lane by lane.
#[inline(always)]
fn dot<const N: usize>(c: &[f64; 6], x: &[__m128; N]) -> __m128 {
    let mut acc = zero();
    for r in 0..N {
        if c[r] == 1.0 {
            acc = add(acc, x[r]);
        } else if c[r] == -1.0 {
            acc = sub(acc, x[r]);
        } else if c[r] != 0.0 {
            acc = add(acc, mul(splat(c[r] as f32), x[r]));
        }
    }
    acc
}

/// SSE is part of the x86-64 baseline that every build for it targets, so its arithmetic
/// intrinsics are sound to call; these wrappers say so once.
macro_rules! baseline {
    ($($name:ident($($arg:ident: $ty:ty),*) = $intrinsic:ident;)*) => {$(
        #[inline(always)]
        fn $name($($arg: $ty),*) -> __m128 {
            // SAFETY: SSE is enabled on every x86-64 target (see above).
            unsafe { $intrinsic($($arg),*) }
        }
    )*};
}

baseline! {
    zero() = _mm_setzero_ps;
    splat(v: f32) = _mm_set1_ps;
    add(a: __m128, b: __m128) = _mm_add_ps;
    sub(a: __m128, b: __m128) = _mm_sub_ps;
    mul(a: __m128, b: __m128) = _mm_mul_ps;
    max(a: __m128, b: __m128) = _mm_max_ps;
}

/// The four values `s[at..at + 4]`.
#[inline(always)]
fn load(s: &[f32], at: usize) -> __m128 {
    let s = &s[at..][..LANES];
    // SAFETY: `s` holds the four values read; SSE is enabled on every x86-64 target.
    unsafe { _mm_loadu_ps(s.as_ptr()) }
}

/// Writes four values to `s[at..at + 4]`.
#[inline(always)]
fn store(s: &mut [f32], at: usize, v: __m128) {
    let s = &mut s[at..][..LANES];
    // SAFETY: `s` holds the four values written; SSE is enabled on every x86-64 target.
    unsafe { _mm_storeu_ps(s.as_mut_ptr(), v) }
}

/// `s` as `f32`s, when `T` is `f32`.
fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32`, so the slice's elements are `f32`s.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) }
    })
}

/// `s` as `f32`s, when `T` is `f32`.
fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32`, so the slice's elements are `f32`s.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) }
    })
}
