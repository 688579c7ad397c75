//! The transforms of `f32` tiles several at a time in vector registers: one tile a lane, for
//! the tiles of one tile row side by side. Four lanes in SSE, part of every x86-64 CPU; eight
//! in AVX and sixteen in AVX-512 where the CPU has them (detected at run time) and the row has
//! that many tiles. Each value is the same sums in the same order as the scalar path's
//! [`dot`](super::dot) (no fused multiply-add), so every width gives the scalar path's values
//! bit for bit; the tests compare them.

use std::arch::x86_64::{
    __m128, __m256, __m512, _mm_add_ps, _mm_loadu_ps, _mm_max_ps, _mm_movehl_ps, _mm_movelh_ps,
    _mm_mul_ps, _mm_set1_ps, _mm_setzero_ps, _mm_shuffle_ps, _mm_storeu_ps, _mm_sub_ps,
    _mm_unpackhi_ps, _mm_unpacklo_ps, _mm256_add_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_mul_ps,
    _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm256_sub_ps, _mm512_add_ps,
    _mm512_loadu_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps, _mm512_sub_ps,
};

use super::{Float, Scheme};
use crate::float::{as_f32, as_f32_mut};

/// The widest tile row whose F(2×2, 3×3) input transform takes the SSE path: on wider rows the
/// scalar path measured faster (that transform is additions only), on narrower ones SSE. AVX
/// and AVX-512 measured faster than both on every row.
const F2_SSE_INPUT_TILES_UP_TO: usize = 16;

/// A register width the transforms can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Width {
    /// 4 lanes, SSE.
    Sse,
    /// 8 lanes, AVX.
    Avx,
    /// 16 lanes, AVX-512F.
    Avx512,
}

impl Width {
    /// Every width, narrowest first.
    pub(super) const ALL: [Width; 3] = [Width::Sse, Width::Avx, Width::Avx512];

    /// Tiles computed together.
    pub(super) fn lanes(self) -> usize {
        match self {
            Width::Sse => 4,
            Width::Avx => 8,
            Width::Avx512 => 16,
        }
    }

    /// Whether this CPU has the width's instructions.
    pub(super) fn available(self) -> bool {
        match self {
            Width::Sse => true,
            Width::Avx => std::arch::is_x86_feature_detected!("avx"),
            Width::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        }
    }

    /// The widest width this CPU has whose lanes a row of `tw` tiles fills.
    fn for_row(tw: usize) -> Option<Width> {
        Width::ALL
            .into_iter()
            .rev()
            .find(|w| w.lanes() <= tw && w.available())
    }
}

/// Computes one tile row's input transform ([`super::input_row`]) when `T` is `f32` and the
/// row has at least 4 tiles, at the widest width the row fills (for F(2×2, 3×3) on SSE, rows of
/// at most [`F2_SSE_INPUT_TILES_UP_TO`] tiles); returns whether it did.
pub(super) fn input_row<T: Float, S: Scheme>(
    d: &[T],
    len: usize,
    tw: usize,
    tiles: usize,
    row_out: &mut [T],
) -> bool {
    match Width::for_row(tw) {
        Some(Width::Sse) if S::M == 2 && tw > F2_SSE_INPUT_TILES_UP_TO => false,
        Some(w) => input_row_at::<T, S>(w, d, len, tw, tiles, row_out),
        None => false,
    }
}

/// [`input_row`] at width `width`, if the CPU has it and the row fills it (no F(2×2, 3×3)
/// rule); returns whether it ran.
pub(super) fn input_row_at<T: Float, S: Scheme>(
    width: Width,
    d: &[T],
    len: usize,
    tw: usize,
    tiles: usize,
    row_out: &mut [T],
) -> bool {
    let (Some(d), Some(row_out)) = (as_f32(d), as_f32_mut(row_out)) else {
        return false;
    };
    if tw < width.lanes() || !width.available() {
        return false;
    }
    // Every block reads `a` input rows of `m·len` values and writes `a²` rows of `tiles`
    // values: checked here once, so that the vector loads and stores need no checks.
    assert!(d.len() >= S::A * S::M * len && len > tw);
    assert!(row_out.len() >= (S::A * S::A - 1) * tiles + tw);
    // SAFETY: the CPU has the width's instructions (checked above).
    unsafe {
        match width {
            Width::Sse => input_blocks::<Sse, S>(d, len, tw, tiles, row_out),
            Width::Avx => input_blocks_avx::<S>(d, len, tw, tiles, row_out),
            Width::Avx512 => input_blocks_avx512::<S>(d, len, tw, tiles, row_out),
        }
    }
    true
}

/// Computes one tile row's output transform ([`super::output_row`]) when `T` is `f32` and the
/// row has at least 4 tiles, at the widest width the row fills; returns whether it did.
pub(super) fn output_row<T: Float, S: Scheme>(
    row_in: &[T],
    tw: usize,
    tiles: usize,
    bias: T,
    relu: bool,
    lines: &mut [T],
) -> bool {
    Width::for_row(tw)
        .is_some_and(|w| output_row_at::<T, S>(w, row_in, tw, tiles, bias, relu, lines))
}

/// [`output_row`] at width `width`, if the CPU has it and the row fills it; returns whether
/// it ran.
pub(super) fn output_row_at<T: Float, S: Scheme>(
    width: Width,
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
    if tw < width.lanes() || !width.available() {
        return false;
    }
    assert!(row_in.len() >= (S::A * S::A - 1) * tiles + tw);
    assert!(lines.len() >= S::M * S::M * tw);
    // SAFETY: the CPU has the width's instructions (checked above).
    unsafe {
        match width {
            Width::Sse => output_blocks::<Sse, S>(row_in, tw, tiles, bias, relu, lines),
            Width::Avx => output_blocks_avx::<S>(row_in, tw, tiles, bias, relu, lines),
            Width::Avx512 => output_blocks_avx512::<S>(row_in, tw, tiles, bias, relu, lines),
        }
    }
}

/// `outs[ph][q] = runs[q·M + ph]`: runs of `M` values transposed into `M` phases (each
/// `runs.len() / M` long), four runs at a time in SSE registers when `T` is `f32` and `M` is 2 or
/// 4 (SSE is part of every x86-64 CPU), the rest one by one; returns whether it did. It moves
/// values only, so the phases are the scalar loop's bit for bit.
pub(super) fn deinterleave<T: Float, const M: usize>(runs: &[T], outs: &mut [&mut [T]; M]) -> bool {
    let Some(runs) = as_f32(runs) else {
        return false;
    };
    let n = runs.len() / M;
    let mut outs = outs
        .each_mut()
        .map(|out| as_f32_mut(out).map(|out| &mut out[..n]));
    match &mut outs[..] {
        [Some(p0), Some(p1)] => {
            let blocks = n / 4;
            for b in 0..blocks {
                // SAFETY: run values 8b .. 8b + 8 ≤ 2n and phase values 4b .. 4b + 4 ≤ n are
                // inside their slices; SSE is part of x86-64.
                unsafe {
                    let src = runs.as_ptr().add(8 * b);
                    let (x, y) = (_mm_loadu_ps(src), _mm_loadu_ps(src.add(4)));
                    _mm_storeu_ps(
                        p0.as_mut_ptr().add(4 * b),
                        _mm_shuffle_ps::<0b10_00_10_00>(x, y),
                    );
                    _mm_storeu_ps(
                        p1.as_mut_ptr().add(4 * b),
                        _mm_shuffle_ps::<0b11_01_11_01>(x, y),
                    );
                }
            }
            for q in 4 * blocks..n {
                (p0[q], p1[q]) = (runs[2 * q], runs[2 * q + 1]);
            }
        }
        [Some(p0), Some(p1), Some(p2), Some(p3)] => {
            let blocks = n / 4;
            for b in 0..blocks {
                // SAFETY: run values 16b .. 16b + 16 ≤ 4n and phase values 4b .. 4b + 4 ≤ n are
                // inside their slices; SSE is part of x86-64.
                unsafe {
                    let src = runs.as_ptr().add(16 * b);
                    // Row r holds run 4b + r; the transpose's row ph, phase ph of the four.
                    let r: [__m128; 4] = std::array::from_fn(|r| _mm_loadu_ps(src.add(4 * r)));
                    let (lo01, lo23) = (_mm_unpacklo_ps(r[0], r[1]), _mm_unpacklo_ps(r[2], r[3]));
                    let (hi01, hi23) = (_mm_unpackhi_ps(r[0], r[1]), _mm_unpackhi_ps(r[2], r[3]));
                    _mm_storeu_ps(p0.as_mut_ptr().add(4 * b), _mm_movelh_ps(lo01, lo23));
                    _mm_storeu_ps(p1.as_mut_ptr().add(4 * b), _mm_movehl_ps(lo23, lo01));
                    _mm_storeu_ps(p2.as_mut_ptr().add(4 * b), _mm_movelh_ps(hi01, hi23));
                    _mm_storeu_ps(p3.as_mut_ptr().add(4 * b), _mm_movehl_ps(hi23, hi01));
                }
            }
            for q in 4 * blocks..n {
                (p0[q], p1[q], p2[q], p3[q]) = (
                    runs[4 * q],
                    runs[4 * q + 1],
                    runs[4 * q + 2],
                    runs[4 * q + 3],
                );
            }
        }
        _ => return false,
    }
    true
}

/// The blocks of one tile row at one width, compiled with that width's instructions enabled so
/// that the vector operations inline.
macro_rules! at_width {
    ($feature:literal, $lanes:ty, $input:ident, $output:ident) => {
        #[target_feature(enable = $feature)]
        unsafe fn $input<S: Scheme>(
            d: &[f32],
            len: usize,
            tw: usize,
            tiles: usize,
            row_out: &mut [f32],
        ) {
            // SAFETY: the caller's guarantees, passed on.
            unsafe { input_blocks::<$lanes, S>(d, len, tw, tiles, row_out) }
        }

        #[target_feature(enable = $feature)]
        unsafe fn $output<S: Scheme>(
            row_in: &[f32],
            tw: usize,
            tiles: usize,
            bias: f32,
            relu: bool,
            lines: &mut [f32],
        ) -> bool {
            // SAFETY: the caller's guarantees, passed on.
            unsafe { output_blocks::<$lanes, S>(row_in, tw, tiles, bias, relu, lines) }
        }
    };
}

at_width!("avx", Avx, input_blocks_avx, output_blocks_avx);
at_width!("avx512f", Avx512, input_blocks_avx512, output_blocks_avx512);

/// The input transform of a row's tiles, `V::N` at a time.
///
/// # Safety
///
/// The CPU has `V`'s instructions; `tw ≥ V::N`, and `d` and `row_out` are as large as
/// [`input_row_at`] checks.
#[inline(always)]
unsafe fn input_blocks<V: Lanes, S: Scheme>(
    d: &[f32],
    len: usize,
    tw: usize,
    tiles: usize,
    row_out: &mut [f32],
) {
    for tx in (0..tw).step_by(V::N) {
        // The last block may overlap the one before; it writes the same values again.
        let tx = tx.min(tw - V::N);
        // Arrays of the tile's own size: larger ones would be zeroed for nothing.
        // SAFETY: the caller's guarantees, and `tx + V::N ≤ tw`.
        unsafe {
            match S::A {
                4 => input_tiles::<V, S, 4>(d, len, tx, tiles, row_out),
                _ => input_tiles::<V, S, 6>(d, len, tx, tiles, row_out),
            }
        }
    }
}

/// The output transform of a row's tiles, `V::N` at a time; returns `true`.
///
/// # Safety
///
/// The CPU has `V`'s instructions; `tw ≥ V::N`, and `row_in` and `lines` are as large as
/// [`output_row_at`] checks.
#[inline(always)]
unsafe fn output_blocks<V: Lanes, S: Scheme>(
    row_in: &[f32],
    tw: usize,
    tiles: usize,
    bias: f32,
    relu: bool,
    lines: &mut [f32],
) -> bool {
    for tx in (0..tw).step_by(V::N) {
        let tx = tx.min(tw - V::N);
        // SAFETY: the caller's guarantees, and `tx + V::N ≤ tw`.
        unsafe {
            match S::A {
                4 => output_tiles::<V, S, 4>(row_in, tw, tx, tiles, bias, relu, lines),
                _ => output_tiles::<V, S, 6>(row_in, tw, tx, tiles, bias, relu, lines),
            }
        }
    }
    true
}

/// `V = Bᵀ d B` of the tiles `tx..tx + N`: `d` holds the row's `a` input rows in phases (`len`
/// values a phase), `V[ξ]` goes to `row_out[ξ·tiles + tx..]`.
///
/// # Safety
///
/// As [`input_blocks`], with `tx + V::N ≤ tw`.
#[inline(always)]
unsafe fn input_tiles<V: Lanes, S: Scheme, const A: usize>(
    d: &[f32],
    len: usize,
    tx: usize,
    tiles: usize,
    row_out: &mut [f32],
) {
    let m = S::M;
    let width = m * len;
    // SAFETY (all loads and stores below): read `d[r·width + (c % m)·len + c/m + tx..][..N]`,
    // inside `d` since `c/m + tx + N ≤ 1 + tw ≤ len`; written `row_out[ξ·tiles + tx..][..N]`,
    // inside it since `tx + N ≤ tw`; the CPU has `V`'s instructions.
    unsafe {
        // t[i][c] = Σ_r Bᵀ[i, r] · d[r][c], then V[i·a + j] = Σ_c Bᵀ[j, c] · t[i][c].
        let mut t = [[V::zero(); A]; A];
        for c in 0..A {
            let at = (c % m) * len + c / m + tx;
            let column: [V; A] = std::array::from_fn(|r| V::load(d.as_ptr().add(r * width + at)));
            for (i, ti) in t.iter_mut().enumerate() {
                ti[c] = dot(&S::BT[i], &column);
            }
        }
        for (i, ti) in t.iter().enumerate() {
            for j in 0..A {
                let at = (i * A + j) * tiles + tx;
                dot(&S::BT[j], ti).store(row_out.as_mut_ptr().add(at));
            }
        }
    }
}

/// `Y = Aᵀ M A` (+ bias, ReLU) of the tiles `tx..tx + N`, from `M[ξ]` at `row_in[ξ·tiles +
/// tx..]`: output row `i'` of the tiles goes to `lines[i'·m·tw..]`, at columns `tx·m..`.
///
/// # Safety
///
/// As [`output_blocks`], with `tx + V::N ≤ tw`.
#[inline(always)]
unsafe fn output_tiles<V: Lanes, S: Scheme, const A: usize>(
    row_in: &[f32],
    tw: usize,
    tx: usize,
    tiles: usize,
    bias: f32,
    relu: bool,
    lines: &mut [f32],
) {
    let m = S::M;
    // SAFETY (loads and stores): read `row_in[ξ·tiles + tx..][..N]`, inside it since `tx + N ≤
    // tw`; stored into `y`'s rows of `MAX_LANES ≥ N`; the CPU has `V`'s instructions.
    unsafe {
        // s[i'][j] = Σ_i Aᵀ[i', i] · M[i·a + j]; then Y[i'][j'] = Σ_j Aᵀ[j', j] · s[i'][j].
        let mut s = [[V::zero(); A]; 4];
        for j in 0..A {
            let column: [V; A] =
                std::array::from_fn(|i| V::load(row_in.as_ptr().add((i * A + j) * tiles + tx)));
            for (ii, si) in s.iter_mut().enumerate().take(m) {
                si[j] = dot(&S::AT[ii], &column);
            }
        }
        let bias = V::splat(bias);
        for (ii, si) in s.iter().enumerate().take(m) {
            // y[j'][l]: column j' of tile tx + l.
            let mut y = [[0f32; MAX_LANES]; 4];
            for (jj, yj) in y.iter_mut().enumerate().take(m) {
                let mut v = dot(&S::AT[jj], si).add(bias);
                if relu {
                    // `max` returns its second operand for NaN and for −0, as `relu_of` gives 0.
                    v = v.max(V::zero());
                }
                v.store(yj.as_mut_ptr());
            }
            let line = &mut lines[ii * m * tw + tx * m..][..V::N * m];
            for (l, tile) in line.chunks_exact_mut(m).enumerate() {
                for (jj, out) in tile.iter_mut().enumerate() {
                    *out = y[jj][l];
                }
            }
        }
    }
}

/// [`dot`](super::dot) over all `N` values, lane by lane.
///
/// # Safety
///
/// The CPU has `V`'s instructions.
#[inline(always)]
unsafe fn dot<V: Lanes, const N: usize>(c: &[f64; 6], x: &[V; N]) -> V {
    // SAFETY: the caller's guarantee.
    unsafe {
        let mut acc = V::zero();
        for r in 0..N {
            if c[r] == 1.0 {
                acc = acc.add(x[r]);
            } else if c[r] == -1.0 {
                acc = acc.sub(x[r]);
            } else if c[r] != 0.0 {
                acc = acc.add(V::splat(c[r] as f32).mul(x[r]));
            }
        }
        acc
    }
}

/// The most lanes of any width.
const MAX_LANES: usize = 16;

/// A vector of `N` `f32` lanes and the arithmetic the transforms need. Every method is unsafe:
/// it needs the CPU to have the vector's instructions, and `load` / `store` need `N` values at
/// the pointer.
trait Lanes: Copy {
    const N: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(v: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    /// The lanes' maxima, `b` where either is NaN or both are zero (`maxps`).
    unsafe fn max(self, b: Self) -> Self;
}

/// The [`Lanes`] of one register type, from its intrinsics.
macro_rules! lanes {
    ($name:ident($reg:ty, $n:literal): $zero:ident, $splat:ident, $load:ident, $store:ident,
     $add:ident, $sub:ident, $mul:ident, $max:ident) => {
        #[derive(Clone, Copy)]
        struct $name($reg);

        impl Lanes for $name {
            const N: usize = $n;
            #[inline(always)]
            unsafe fn zero() -> Self {
                // SAFETY (each method): the trait's contract.
                unsafe { Self($zero()) }
            }
            #[inline(always)]
            unsafe fn splat(v: f32) -> Self {
                unsafe { Self($splat(v)) }
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                unsafe { Self($load(p)) }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                unsafe { $store(p, self.0) }
            }
            #[inline(always)]
            unsafe fn add(self, b: Self) -> Self {
                unsafe { Self($add(self.0, b.0)) }
            }
            #[inline(always)]
            unsafe fn sub(self, b: Self) -> Self {
                unsafe { Self($sub(self.0, b.0)) }
            }
            #[inline(always)]
            unsafe fn mul(self, b: Self) -> Self {
                unsafe { Self($mul(self.0, b.0)) }
            }
            #[inline(always)]
            unsafe fn max(self, b: Self) -> Self {
                unsafe { Self($max(self.0, b.0)) }
            }
        }
    };
}

lanes!(Sse(__m128, 4): _mm_setzero_ps, _mm_set1_ps, _mm_loadu_ps, _mm_storeu_ps,
    _mm_add_ps, _mm_sub_ps, _mm_mul_ps, _mm_max_ps);
lanes!(Avx(__m256, 8): _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps,
    _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_max_ps);
lanes!(Avx512(__m512, 16): _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps,
    _mm512_storeu_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_max_ps);
