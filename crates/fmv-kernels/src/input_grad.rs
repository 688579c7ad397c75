//! The ops that make the network differentiable with respect to its input, and only its
//! input, where fmv's CPU convolution (which has its own backward pass) does not run: on other
//! devices, with [`ConvAlgorithm::Candle`](crate::ConvAlgorithm::Candle), and for linear layers
//! everywhere. Used whenever the input is tracked (a `Var` or derived from one).
//!
//! - [`InputGrad`]: a convolution (candle's) or linear layer whose backward pass computes the
//!   input's gradient only (candle's computes the weights' gradients too, about 60 % of the
//!   backward time, although they are never needed); the convolution handles groups and
//!   non-square inputs.
//! - [`max_pool2d_differentiable`]: max pooling built from padding, reshapes, narrows and
//!   `maximum`, so its gradient is right on every device (candle 0.11's `max_pool2d` backward is
//!   ×1/4 per pool for k == s and missing for k ≠ s).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, MetalStorage, Shape, Tensor};

use crate::algorithm::InputGradAlgorithm;

/// A layer as a graph node whose backward pass gives the input's gradient only. Applied as
/// `x.apply_op2(&y_detached, op)`: the forward pass returns `y_detached` (the layer's output,
/// bias included, computed by stock ops on a detached input), the backward pass the
/// transposed layer applied to the incoming gradient.
pub(crate) enum InputGrad {
    /// `y = conv(x, w) + b`.
    Conv {
        weight: Tensor,
        stride: usize,
        padding: usize,
        groups: usize,
        /// How the gradient is computed.
        algorithm: InputGradAlgorithm,
    },
    /// `y = x·wᵀ + b`, with `wᵀ` stored.
    Linear { weight_t: Tensor },
}

fn copy_contiguous<S: BackendStorage>(s: &S, l: &Layout) -> candle_core::Result<(S, Shape)> {
    Ok((s.try_clone(l)?, l.shape().clone()))
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "fmv-input-grad"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        copy_contiguous(y, l)
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        y: &CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        copy_contiguous(y, l)
    }

    fn metal_fwd(
        &self,
        _: &MetalStorage,
        _: &Layout,
        y: &MetalStorage,
        l: &Layout,
    ) -> candle_core::Result<(MetalStorage, Shape)> {
        copy_contiguous(y, l)
    }

    fn bwd(
        &self,
        x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = match self {
            InputGrad::Conv {
                weight,
                stride,
                padding,
                groups,
                algorithm,
            } => conv_input_grad(x, grad, weight, (*stride, *padding, *groups), *algorithm)?,
            InputGrad::Linear { weight_t } => grad.matmul(&weight_t.t()?)?,
        };
        Ok((Some(dx), None))
    }
}

/// `dx` of a convolution of `(stride, padding, groups)`. With [`InputGradAlgorithm::Flipped`],
/// a stride-1 layer with a square kernel runs it as a convolution of `dy` with the kernel
/// flipped in space and transposed (`c_in` ↔ `c_out`, group by group), padded by `k − 1 − p`:
/// on CUDA that is candle's im2col + cuBLAS convolution (cuDNN with the `cudnn` feature),
/// where its `conv_transpose2d` is a direct kernel in both builds. Strided layers, and every
/// layer with [`InputGradAlgorithm::Transposed`], take [`conv_input_grad_transposed`].
pub(crate) fn conv_input_grad(
    x: &Tensor,
    grad: &Tensor,
    weight: &Tensor,
    (stride, padding, groups): (usize, usize, usize),
    algorithm: InputGradAlgorithm,
) -> candle_core::Result<Tensor> {
    let transposed_only = algorithm == InputGradAlgorithm::Transposed;
    let (c_out, _, kh, kw) = weight.dims4()?;
    if transposed_only || stride != 1 || kh != kw || padding >= kh {
        return conv_input_grad_transposed(x, grad, weight, stride, padding, groups);
    }
    let per_group = c_out / groups;
    let transposed = if groups == 1 {
        weight.transpose(0, 1)?
    } else {
        let parts = (0..groups)
            .map(|g| weight.narrow(0, g * per_group, per_group)?.transpose(0, 1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)?
    };
    let flipped = transposed.contiguous()?.flip(&[2, 3])?;
    grad.contiguous()?
        .conv2d(&flipped, kh - 1 - padding, 1, 1, groups)
}

/// `dx` of a convolution: the transposed convolution of `dy`, group by group.
pub(crate) fn conv_input_grad_transposed(
    x: &Tensor,
    grad: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (_, _, ho, wo) = grad.dims4()?;
    let (c_out, _, kh, kw) = weight.dims4()?;
    // conv_transpose2d's output size is (o − 1)·s − 2p + k + output_padding; take the larger
    // padding of the two axes and cut the other axis back.
    let base = |o: usize, k: usize| ((o - 1) * stride + k).saturating_sub(2 * padding);
    let pad = h
        .saturating_sub(base(ho, kh))
        .max(w.saturating_sub(base(wo, kw)));
    let per_group = c_out / groups;
    let mut parts = Vec::with_capacity(groups);
    for g in 0..groups {
        let dy = grad.narrow(1, g * per_group, per_group)?.contiguous()?;
        let wg = weight.narrow(0, g * per_group, per_group)?.contiguous()?;
        parts.push(dy.conv_transpose2d(&wg, padding, pad, stride, 1)?);
    }
    let dx = if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(&parts, 1)?
    };
    dx.narrow(2, 0, h)?.narrow(3, 0, w)
}

/// Max pooling along one axis (`dim` 2 or 3) with window `k`, stride `s` and padding `p`
/// (edge-replicated: the same maxima as torch's −∞ padding since `p ≤ k/2`).
fn max_pool_axis(
    x: &Tensor,
    dim: usize,
    k: usize,
    s: usize,
    p: usize,
) -> candle_core::Result<Tensor> {
    let len = x.dim(dim)?;
    let n = (len + 2 * p - k) / s + 1;
    // Window j of output o reads padded index s·o + j = s·(o + j / s) + j % s: lay the padded
    // axis out as (q, r) with index s·q + r and take, for each j, rows j/s .. j/s + n of column j % s.
    let rows = n + (k - 1) / s + 1;
    let right = (rows * s).saturating_sub(len + p);
    let xp = x.pad_with_same(dim, p, right)?;
    let mut shape = xp.dims().to_vec();
    shape[dim] = rows;
    shape.insert(dim + 1, s);
    let xr = xp.narrow(dim, 0, rows * s)?.reshape(shape)?;
    let mut out: Option<Tensor> = None;
    for j in 0..k {
        let tap = xr
            .narrow(dim, j / s, n)?
            .narrow(dim + 1, j % s, 1)?
            .squeeze(dim + 1)?;
        out = Some(match out {
            None => tap,
            Some(m) => m.maximum(&tap)?,
        });
    }
    Ok(out.expect("k >= 1"))
}

/// Max pooling as torch's `MaxPool2d(k, s, p)` (floor mode) whose gradient is right on every
/// device: separable (rows, then columns), from pads, reshapes, narrows and `maximum`. Tied
/// maxima share the gradient equally (torch gives it to the first); ties have measure zero
/// except for exact zeros after a ReLU, whose gradient the ReLU removes anyway.
pub fn max_pool2d_differentiable(
    x: &Tensor,
    k: usize,
    s: usize,
    p: usize,
) -> candle_core::Result<Tensor> {
    let rows = max_pool_axis(x, 2, k, s, p)?;
    max_pool_axis(&rows, 3, k, s, p)
}

#[cfg(test)]
mod tests {
    use crate::algorithm::InputGradAlgorithm;
    use crate::test_data::{max_abs_diff, random};

    /// The convolution form of the input gradient (stride 1) against candle's transposed
    /// convolution, in f64: kernels 1, 3 and 7, paddings 0 to k − 1, groups, non-square maps;
    /// and the strided layers, which must take the transposed convolution.
    #[test]
    fn input_grad_as_a_convolution_matches_the_transposed_convolution() {
        // (c_in, c_out, k, stride, padding, groups, h, w)
        let cases = [
            (3, 8, 7, 1, 3, 1, 19, 23),
            (8, 6, 3, 1, 1, 1, 9, 7),
            (8, 6, 3, 1, 0, 1, 9, 7),
            (7, 5, 3, 1, 2, 1, 5, 4),
            (6, 12, 1, 1, 0, 1, 5, 8),
            (4, 4, 3, 1, 1, 4, 6, 6),
            (8, 12, 3, 1, 1, 2, 10, 11),
            (3, 8, 7, 2, 3, 1, 19, 23),
            (6, 12, 1, 2, 0, 1, 7, 6),
        ];
        for (i, (c_in, c_out, k, stride, padding, groups, h, w)) in cases.into_iter().enumerate() {
            let seed = 10 * i as u64;
            let x = random(&[2, c_in, h, w], seed);
            let weight = random(&[c_out, c_in / groups, k, k], seed + 1);
            let y = x.conv2d(&weight, padding, stride, 1, groups).unwrap();
            let dy = random(y.dims(), seed + 2);
            let ours = super::conv_input_grad(
                &x,
                &dy,
                &weight,
                (stride, padding, groups),
                InputGradAlgorithm::Flipped,
            )
            .unwrap();
            let theirs =
                super::conv_input_grad_transposed(&x, &dy, &weight, stride, padding, groups)
                    .unwrap();
            assert_eq!(ours.dims(), x.dims(), "case {i}");
            let diff = max_abs_diff(&ours, &theirs);
            assert!(diff < 1e-12, "case {i}: {diff:e}");
        }
    }
}
