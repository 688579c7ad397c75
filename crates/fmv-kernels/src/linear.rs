//! [`Linear`]: a fully connected layer whose backward pass gives the input's gradient only.

use candle_core::{Module, Tensor};

use crate::input_grad::InputGrad;

/// A fully connected layer `y = x·Wᵀ + b`, differentiable with respect to a tracked input only
/// (candle's own would compute the weights' gradients too).
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// let weight = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?; // 3 inputs, 2 outputs
/// let bias = Tensor::new(&[0.5f32, -0.5], &Device::Cpu)?;
/// let fc = fmv_kernels::Linear::new(&weight, &bias)?;
/// let y = fc.forward(&Tensor::ones((1, 3), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[3.5, 2.5]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    /// The layer of `weight` (`(out, in)`, torch's layout) and `bias` (`out` values).
    pub fn new(weight: &Tensor, bias: &Tensor) -> candle_core::Result<Self> {
        Ok(Linear {
            weight_t: weight.t()?.contiguous()?,
            bias: bias.flatten_all()?.unsqueeze(0)?,
        })
    }

    /// The weight (transposed) and the bias.
    pub fn tensors(&self) -> Vec<&Tensor> {
        vec![&self.weight_t, &self.bias]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x
            .detach()
            .matmul(&self.weight_t)?
            .broadcast_add(&self.bias)?;
        if !x.track_op() {
            return Ok(y);
        }
        x.apply_op2(
            &y,
            InputGrad::Linear {
                weight_t: self.weight_t.clone(),
            },
        )
    }
}
