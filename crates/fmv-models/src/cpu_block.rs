//! A residual block on the CPU as one differentiable op: the main branch's convolutions, the
//! shortcut (a convolution or the identity) and the closing `relu(main + shortcut)`, forward
//! and input gradient.
//!
//! Why: candle's backward pass, for every node of the graph, makes a zeroed gradient the size
//! of each of its inputs and adds the incoming one to it: two more full passes over each map,
//! on one thread. A bottleneck block as separate ops is six such nodes (a block's input is read
//! twice, by the first convolution and by the shortcut); as this op it is one. The op also
//! keeps fewer maps for the backward pass: the main branch's hidden outputs, for their ReLU
//! masks, not its last output or the shortcut's (`docs/PERFORMANCE.md`, attempt 19).

use std::sync::Mutex;

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};

use crate::cpu_conv::{AddRelu, ConvOp, Elementwise, Float, ReluGrad, elementwise, op};

/// `relu(main(x) + shortcut(x))`; see the module's documentation.
pub(crate) struct Residual {
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
    pub fn new(main: Vec<ConvOp>, shortcut: Option<ConvOp>) -> Self {
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

/// `a + b` for two contiguous CPU tensors of one shape, in parallel.
struct Sum;

impl Elementwise for Sum {
    const NAME: &'static str = "fmv-sum";
    fn apply<T: Float>(a: T, b: T) -> T {
        a + b
    }
}
