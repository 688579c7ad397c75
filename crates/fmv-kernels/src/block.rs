//! A residual block, `relu(main(x) + shortcut(x))`: [`residual`] runs it op by op, or, for a
//! tracked input on the CPU, as one differentiable op ([`Residual`]: the main branch's
//! convolutions, the shortcut and the closing add+ReLU, forward and input gradient).
//!
//! Why one op: candle's backward pass, for every node of the graph, makes a zeroed gradient the
//! size of each of its inputs and adds the incoming one to it: two more full passes over each
//! map, on one thread. A bottleneck block as separate ops is six such nodes (a block's input is
//! read twice, by the first convolution and by the shortcut); as this op it is one. The op also
//! keeps fewer maps for the backward pass: the main branch's hidden outputs, for their ReLU
//! masks, not its last output or the shortcut's.

use std::sync::Mutex;

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};

use crate::algorithm::Tile;
use crate::conv::Conv2d;
use crate::conv_op::ConvOp;
use crate::elementwise::{AddRelu, ReluGrad, Sum, add_relu, elementwise, op};

/// `relu(main(x) + shortcut(x))`, where the main branch runs its convolutions in order, every
/// one but the last followed by a ReLU, and the shortcut is a convolution or (`None`) the
/// identity: the block of a ResNet. Differentiable with respect to a tracked input only; on
/// the CPU such an input takes the whole block as one op, which gives the same output and
/// input gradient as the ops one by one, bit for bit.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use fmv_kernels::{Algorithms, Conv2d, residual};
/// let conv = |c_in, c_out| {
///     let w = Tensor::ones((c_out, c_in, 3, 3), DType::F32, &Device::Cpu)?;
///     Conv2d::new((w * 0.01)?, None, 1, 1, 1, Algorithms::default())
/// };
/// let (a, b) = (conv(4, 4)?, conv(4, 4)?);
/// let x = Tensor::ones((1, 4, 6, 6), DType::F32, &Device::Cpu)?;
/// let y = residual(&x, &[&a, &b], None)?;
/// assert_eq!(y.dims(), &[1, 4, 6, 6]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn residual(
    x: &Tensor,
    main: &[&Conv2d],
    shortcut: Option<&Conv2d>,
) -> candle_core::Result<Tensor> {
    residual_with(x, main, shortcut, Tile::F2)
}

/// [`residual`] where a tracked input's 3×3 convolutions may take Winograd tiles up to
/// `tracked_tile` (as [`Conv2d::forward_relu_with`]).
pub fn residual_with(
    x: &Tensor,
    main: &[&Conv2d],
    shortcut: Option<&Conv2d>,
    tracked_tile: Tile,
) -> candle_core::Result<Tensor> {
    if main.is_empty() {
        candle_core::bail!("fmv residual block: the main branch has no convolution")
    }
    if x.track_op() && main.iter().chain(shortcut.as_ref()).all(|c| c.runs_own(x)) {
        return as_one_op(x, main, shortcut, tracked_tile);
    }
    op_by_op(x, main, shortcut, tracked_tile)
}

/// The block as separate ops: inference, and tracked inputs off the CPU.
fn op_by_op(
    x: &Tensor,
    main: &[&Conv2d],
    shortcut: Option<&Conv2d>,
    tracked_tile: Tile,
) -> candle_core::Result<Tensor> {
    let (last, hidden) = main.split_last().expect("checked by the caller");
    let mut y = x.clone();
    for conv in hidden {
        y = conv.forward_relu_with(&y, tracked_tile)?;
    }
    let out = last.forward_with(&y, tracked_tile)?;
    let identity = match shortcut {
        Some(conv) => conv.forward_with(x, tracked_tile)?,
        None => x.clone(),
    };
    add_relu(&out, &identity)
}

/// The block as one op whose backward pass gives the input's gradient ([`Residual`]).
fn as_one_op(
    x: &Tensor,
    main: &[&Conv2d],
    shortcut: Option<&Conv2d>,
    tracked_tile: Tile,
) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let (_, _, in_h, in_w) = x.dims4()?;
    let (mut h, mut w) = (in_h, in_w);
    let last = main.len() - 1;
    let mut ops = Vec::with_capacity(main.len());
    for (k, conv) in main.iter().enumerate() {
        ops.push(conv.op((h, w), Some(tracked_tile), k < last)?);
        (h, w) = conv.out_hw(h, w)?;
    }
    let shortcut = shortcut
        .map(|c| c.op((in_h, in_w), Some(tracked_tile), false))
        .transpose()?;
    x.apply_op1(Residual::new(ops, shortcut))
}

/// `relu(main(x) + shortcut(x))`; see the module's documentation.
struct Residual {
    /// The main branch in order; every convolution but the last has its ReLU fused.
    main: Vec<ConvOp>,
    /// The shortcut's convolution, `None` for the identity.
    shortcut: Option<ConvOp>,
    /// The main branch's outputs but the last, from the forward pass, for the backward pass's
    /// ReLU masks.
    hidden: Mutex<Vec<Tensor>>,
}

impl Residual {
    /// The block of `main` (every convolution but the last with its ReLU fused) and
    /// `shortcut` (`None` for the identity).
    fn new(main: Vec<ConvOp>, shortcut: Option<ConvOp>) -> Self {
        Residual {
            main,
            shortcut,
            hidden: Mutex::new(Vec::new()),
        }
    }
}

/// A tensor around a storage a CPU op returned.
fn tensor((storage, shape): (CpuStorage, Shape)) -> Tensor {
    Tensor::from_storage(Storage::Cpu(storage), shape, BackpropOp::none(), false)
}

/// Runs `f` on the storage and layout of a CPU tensor.
fn on_cpu<R>(
    t: &Tensor,
    f: impl FnOnce(&CpuStorage, &Layout) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(s, layout),
        _ => candle_core::bail!("fmv residual block: a tensor is not on the CPU"),
    }
}

impl CustomOp1 for Residual {
    fn name(&self) -> &'static str {
        "fmv-residual-block"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((first, rest)) = self.main.split_first() else {
            candle_core::bail!("fmv residual block: the main branch has no convolution")
        };
        let mut hidden = Vec::with_capacity(rest.len());
        let mut y = tensor(first.cpu_fwd(s, l)?);
        for conv in rest {
            let next = y.apply_op1_no_bwd(conv)?;
            hidden.push(std::mem::replace(&mut y, next));
        }
        let out = on_cpu(&y, |ys, yl| match &self.shortcut {
            Some(conv) => on_cpu(&tensor(conv.cpu_fwd(s, l)?), |is, il| {
                elementwise::<AddRelu>((ys, yl), (is, il))
            }),
            None => elementwise::<AddRelu>((ys, yl), (s, l)),
        })?;
        *self.hidden.lock().unwrap_or_else(|e| e.into_inner()) = hidden;
        Ok(out)
    }

    fn bwd(&self, x: &Tensor, out: &Tensor, dout: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let hidden = self
            .hidden
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if hidden.len() + 1 != self.main.len() {
            candle_core::bail!("fmv residual block: the backward pass ran before the forward")
        }
        // Through the closing ReLU; then the main branch backwards, each convolution masking
        // the gradient by its own ReLU's output first.
        let g = dout
            .contiguous()?
            .apply_op2_no_bwd(out, &op::<ReluGrad>())?;
        let mut d = g.clone();
        for (k, conv) in self.main.iter().enumerate().rev() {
            let input = if k == 0 { x } else { &hidden[k - 1] };
            let (_, _, h, w) = input.dims4()?;
            let mask = if conv.relu { &hidden[k] } else { &d };
            d = d.apply_op2_no_bwd(mask, &conv.input_grad((h, w)))?;
        }
        let (_, _, h, w) = x.dims4()?;
        let short = match &self.shortcut {
            Some(conv) => g.apply_op2_no_bwd(&g, &conv.input_grad((h, w)))?,
            None => g,
        };
        Ok(Some(d.apply_op2_no_bwd(&short, &op::<Sum>())?))
    }
}

#[cfg(test)]
mod tests {
    //! The block as one op against the same block as separate ops (each with its own backward
    //! pass): the same output and the same input gradient, bit for bit, so that the one op
    //! changes no result.

    use candle_core::{DType, Tensor, Var};

    use super::{op_by_op, residual_with};
    use crate::algorithm::{Algorithms, Tile};
    use crate::conv::Conv2d;
    use crate::test_data::{max_abs_diff, random};

    fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, seed: u64, dtype: DType) -> Conv2d {
        let weight = (random(&[c_out, c_in, k, k], seed) * 0.5).unwrap();
        let bias = random(&[1, c_out, 1, 1], seed + 1);
        let (weight, bias) = (
            weight.to_dtype(dtype).unwrap(),
            bias.to_dtype(dtype).unwrap(),
        );
        Conv2d::new(weight, Some(bias), stride, k / 2, 1, Algorithms::default()).unwrap()
    }

    /// A block: its main branch, its shortcut (`None`: the identity) and its input channels.
    type Block = (Vec<Conv2d>, Option<Conv2d>, usize);

    /// A first bottleneck block (strided 3×3, downsampling shortcut), a later one (Winograd
    /// 3×3, identity shortcut) and a basic block (Winograd 3×3s). Winograd's 3×3 layers have
    /// the 16 input channels from which the default algorithm takes it.
    fn blocks(dtype: DType) -> [Block; 3] {
        let c = |c_in, c_out, k, stride, seed| conv(c_in, c_out, k, stride, seed, dtype);
        [
            (
                vec![c(8, 4, 1, 1, 1), c(4, 4, 3, 2, 3), c(4, 16, 1, 1, 5)],
                Some(c(8, 16, 1, 2, 7)),
                8,
            ),
            (
                vec![c(32, 16, 1, 1, 9), c(16, 16, 3, 1, 11), c(16, 32, 1, 1, 13)],
                None,
                32,
            ),
            (vec![c(16, 16, 3, 1, 15), c(16, 16, 3, 1, 17)], None, 16),
        ]
    }

    fn f64s(t: &Tensor) -> Tensor {
        t.to_dtype(DType::F64).unwrap()
    }

    #[test]
    fn a_block_as_one_op_equals_its_ops_one_by_one() {
        // 26×25 inputs: the 3×3 stride-1 layers take F(4×4, 3×3) where the tile allows it.
        for (dtype, tile) in [
            (DType::F32, Tile::F2),
            (DType::F64, Tile::F2),
            (DType::F32, Tile::F4),
        ] {
            for (i, (main, shortcut, c_in)) in blocks(dtype).iter().enumerate() {
                let main: Vec<&Conv2d> = main.iter().collect();
                let x = random(&[2, *c_in, 26, 25], 20 + i as u64);
                let var = Var::from_tensor(&x.to_dtype(dtype).unwrap()).unwrap();
                let one = residual_with(var.as_tensor(), &main, shortcut.as_ref(), tile).unwrap();
                let by_ops = op_by_op(var.as_tensor(), &main, shortcut.as_ref(), tile).unwrap();
                assert_eq!(
                    max_abs_diff(&f64s(&one), &f64s(&by_ops)),
                    0.0,
                    "block {i} {dtype:?} {tile:?}"
                );
                let dy = random(one.dims(), 30 + i as u64).to_dtype(dtype).unwrap();
                let dx = |y: &Tensor| {
                    let grads = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
                    f64s(grads.get(var.as_tensor()).unwrap())
                };
                let (a, b) = (dx(&one), dx(&by_ops));
                let size = a
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(size > 0.0, "block {i} {dtype:?}: no gradient at all");
                assert_eq!(max_abs_diff(&a, &b), 0.0, "block {i} {dtype:?}");
            }
        }
    }
}
