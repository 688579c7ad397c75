//! Element-wise ops on two CPU tensors of one shape (a residual block's closing add+ReLU, the
//! ReLU mask of a backward pass, a sum): one parallel loop that writes each output once, run
//! directly by the kernels and as a candle op.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use crate::buffer::{RUN, host_slice, written_in_runs};
use crate::float::{Float, relu_of, serves};

/// An element-wise op on two contiguous CPU tensors of one shape: run by [`elementwise`], and
/// as a candle op by [`ElementwiseOp`].
pub(crate) trait Elementwise {
    /// The op's name, in candle's graph and in errors.
    const NAME: &'static str;
    /// The output element for the inputs' elements `a` and `b`.
    fn apply<T: Float>(a: T, b: T) -> T;
    /// The gradients of both inputs from the output `y` and its gradient `dy`; by default the
    /// op has no backward pass.
    fn backward(
        _y: &Tensor,
        _dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Err(candle_core::Error::BackwardNotSupported { op: Self::NAME })
    }
}

/// [`Elementwise`] op `E` as a candle op ([`CustomOp2`]) on the CPU.
pub(crate) struct ElementwiseOp<E>(std::marker::PhantomData<fn() -> E>);

/// The candle op of [`Elementwise`] op `E`.
pub(crate) fn op<E: Elementwise>() -> ElementwiseOp<E> {
    ElementwiseOp(std::marker::PhantomData)
}

impl<E: Elementwise> CustomOp2 for ElementwiseOp<E> {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        elementwise::<E>((s1, l1), (s2, l2))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        E::backward(y, dy)
    }
}

/// `E::apply` element by element over two slices of one length, in parallel: each thread
/// takes runs of [`RUN`] elements, a plain loop the compiler vectorises, and
/// writes the output once (no zeroing first).
pub(crate) fn zip_map<E: Elementwise, T: Float>(a: &[T], b: &[T]) -> Vec<T> {
    assert_eq!(a.len(), b.len(), "zip_map: lengths differ");
    // SAFETY: `a` and `b` hold as many elements as the run from its start (the slices would
    // panic otherwise), so the zipped loop writes every slot of the run.
    unsafe {
        written_in_runs(a.len(), RUN, |i, out| {
            let start = i * RUN;
            let (a, b) = (&a[start..][..out.len()], &b[start..][..out.len()]);
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                o.write(E::apply(a, b));
            }
        })
    }
}

/// [`Elementwise`] op `E` as a candle op's CPU forward pass: the shapes must agree.
pub(crate) fn elementwise<E: Elementwise>(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
) -> candle_core::Result<(CpuStorage, Shape)> {
    if l1.shape() != l2.shape() {
        candle_core::bail!(
            "{}: shapes {:?} and {:?} differ",
            E::NAME,
            l1.shape(),
            l2.shape()
        );
    }
    let out = match s1 {
        CpuStorage::F32(_) => {
            CpuStorage::F32(zip_map::<E, f32>(host_slice(s1, l1)?, host_slice(s2, l2)?))
        }
        CpuStorage::F64(_) => {
            CpuStorage::F64(zip_map::<E, f64>(host_slice(s1, l1)?, host_slice(s2, l2)?))
        }
        other => candle_core::bail!("{}: unsupported dtype {:?}", E::NAME, other.dtype()),
    };
    Ok((out, l1.shape().clone()))
}

/// `relu(a + b)` for two contiguous CPU tensors of one shape (a residual block's end), with a
/// backward pass that sends the masked gradient to both.
pub(crate) struct AddRelu;

impl Elementwise for AddRelu {
    const NAME: &'static str = "fmv-add-relu";
    fn apply<T: Float>(a: T, b: T) -> T {
        relu_of(a + b)
    }
    fn backward(y: &Tensor, dy: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = dy.contiguous()?.apply_op2_no_bwd(y, &op::<ReluGrad>())?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `a + b` for two contiguous CPU tensors of one shape, in parallel.
pub(crate) struct Sum;

impl Elementwise for Sum {
    const NAME: &'static str = "fmv-sum";
    fn apply<T: Float>(a: T, b: T) -> T {
        a + b
    }
}

/// `dy` where `y > 0`, else 0 (the gradient through a ReLU whose output is `y`), as a candle
/// op on `(dy, y)`.
pub(crate) struct ReluGrad;

impl Elementwise for ReluGrad {
    const NAME: &'static str = "fmv-relu-grad";
    fn apply<T: Float>(dy: T, y: T) -> T {
        if y > T::zero() { dy } else { T::zero() }
    }
}

/// `relu(a + b)`, the end of a residual block: one fused pass (forward and backward) for two
/// CPU tensors of one shape and float type, candle's ops otherwise.
pub fn add_relu(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if !(serves(a) && a.dtype() == b.dtype() && a.dims() == b.dims()) {
        return (a + b)?.relu();
    }
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    if a.track_op() || b.track_op() {
        a.apply_op2(&b, op::<AddRelu>())
    } else {
        a.apply_op2_no_bwd(&b, &op::<AddRelu>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each element-wise op against its scalar rule, over more than one run with a short last
    /// one.
    #[test]
    fn zip_map_applies_the_rule_to_every_pair() {
        let n = 2 * RUN + 7;
        let a: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.5).collect();
        let add_relu = zip_map::<AddRelu, f32>(&a, &b);
        let relu_grad = zip_map::<ReluGrad, f32>(&a, &b);
        assert_eq!((add_relu.len(), relu_grad.len()), (n, n));
        for i in 0..n {
            assert_eq!(add_relu[i], (a[i] + b[i]).max(0.0), "add-relu at {i}");
            assert_eq!(
                relu_grad[i],
                if b[i] > 0.0 { a[i] } else { 0.0 },
                "relu grad at {i}"
            );
        }
    }
}
