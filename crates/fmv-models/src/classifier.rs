//! A [`Head`] as it runs: its Linear layers with every BatchNorm1d folded into an adjacent
//! Linear (in f64, before rounding to the model's float type), or applied as a per-channel
//! scale and shift where an activation stands on both sides of it.

use candle_core::{Device, Module, Tensor};
use fmv_kernels::Linear;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::head::{Activation, Head, HeadModule};
use crate::ops::{BatchNorm, Build};

/// One step of the running head.
enum Step {
    Linear(Linear),
    /// `x·scale + shift`, per channel (`1×C` each).
    Affine {
        scale: Tensor,
        shift: Tensor,
    },
    Activation(Activation),
}

/// A head ready to run on the flattened pooled features.
pub(crate) struct Classifier {
    steps: Vec<Step>,
}

/// A Linear layer in f64 on the host: `weight` is `c_out×c_in`, row-major.
struct HostLinear {
    weight: Vec<f64>,
    bias: Vec<f64>,
    c_in: usize,
}

/// A BatchNorm1d at inference as `x·scale + shift`.
struct HostAffine {
    scale: Vec<f64>,
    shift: Vec<f64>,
}

impl From<BatchNorm> for HostAffine {
    fn from(bn: BatchNorm) -> Self {
        let shift = (0..bn.scale.len()).map(|c| bn.bias_after(c, 0.0)).collect();
        HostAffine {
            scale: bn.scale,
            shift,
        }
    }
}

enum HostStep {
    Linear(HostLinear),
    Affine(HostAffine),
    Activation(Activation),
}

impl Classifier {
    /// Reads the head's tensors and folds its BatchNorms.
    pub fn load(ck: &Checkpoint, head: &Head, build: Build<'_>) -> Result<Self> {
        let mut host: Vec<HostStep> = Vec::new();
        for module in &head.modules {
            match module {
                HeadModule::Linear {
                    key,
                    c_in,
                    c_out,
                    bias,
                } => {
                    let weight = ck.load_f64(&format!("{key}.weight"))?;
                    let bias = if *bias {
                        ck.load_f64(&format!("{key}.bias"))?
                    } else {
                        vec![0.0; *c_out]
                    };
                    let linear = HostLinear {
                        weight,
                        bias,
                        c_in: *c_in,
                    };
                    // A BatchNorm right before it (not itself folded backwards) folds forwards.
                    match host.last_mut() {
                        Some(HostStep::Affine(bn)) => {
                            let folded = fold_before(bn, &linear);
                            host.pop();
                            host.push(HostStep::Linear(folded));
                        }
                        _ => host.push(HostStep::Linear(linear)),
                    }
                }
                HeadModule::BatchNorm { key, affine, .. } => {
                    let bn = BatchNorm::load(ck, key, *affine)?;
                    match host.last_mut() {
                        Some(HostStep::Linear(l)) => fold_after(l, &bn),
                        _ => host.push(HostStep::Affine(bn.into())),
                    }
                }
                HeadModule::Activation(a) => host.push(HostStep::Activation(*a)),
                HeadModule::Dropout => {}
            }
        }
        let on_device = |values: Vec<f64>, shape: (usize, usize)| -> Result<Tensor> {
            Ok(Tensor::from_vec(values, shape, &Device::Cpu)?
                .to_dtype(build.dtype)?
                .to_device(build.device)?)
        };
        let steps = host
            .into_iter()
            .map(|s| {
                Ok(match s {
                    HostStep::Linear(l) => {
                        let c_out = l.bias.len();
                        let w = on_device(l.weight, (c_out, l.c_in))?;
                        let b = on_device(l.bias, (1, c_out))?;
                        Step::Linear(Linear::new(&w, &b)?)
                    }
                    HostStep::Affine(a) => {
                        let c = a.scale.len();
                        Step::Affine {
                            scale: on_device(a.scale, (1, c))?,
                            shift: on_device(a.shift, (1, c))?,
                        }
                    }
                    HostStep::Activation(a) => Step::Activation(a),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Classifier { steps })
    }

    /// Every tensor the head computes with.
    pub fn tensors(&self) -> Vec<&Tensor> {
        self.steps
            .iter()
            .flat_map(|s| match s {
                Step::Linear(l) => l.tensors(),
                Step::Affine { scale, shift } => vec![scale, shift],
                Step::Activation(_) => Vec::new(),
            })
            .collect()
    }
}

impl Module for Classifier {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for step in &self.steps {
            x = match step {
                Step::Linear(l) => l.forward(&x)?,
                Step::Affine { scale, shift } => x.broadcast_mul(scale)?.broadcast_add(shift)?,
                Step::Activation(a) => activate(&x, *a)?,
            };
        }
        Ok(x)
    }
}

/// torch's functions, each differentiable through candle's own ops.
fn activate(x: &Tensor, a: Activation) -> candle_core::Result<Tensor> {
    match a {
        Activation::Relu => x.relu(),
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
        Activation::Silu => x.silu(),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip(),
    }
}

/// `bn(linear(x))` as one Linear: each output row scaled, the bias mapped (as a
/// convolution's BatchNorm is folded).
fn fold_after(l: &mut HostLinear, bn: &BatchNorm) {
    for (o, row) in l.weight.chunks_exact_mut(l.c_in).enumerate() {
        row.iter_mut().for_each(|w| *w *= bn.scale[o]);
        l.bias[o] = bn.bias_after(o, l.bias[o]);
    }
}

/// `linear(bn(x))` as one Linear: each input column scaled, the shift carried into the bias.
fn fold_before(bn: &HostAffine, l: &HostLinear) -> HostLinear {
    let mut weight = l.weight.clone();
    let mut bias = l.bias.clone();
    for (o, row) in weight.chunks_exact_mut(l.c_in).enumerate() {
        let mut carried = 0.0;
        for (i, w) in row.iter_mut().enumerate() {
            carried += *w * bn.shift[i];
            *w *= bn.scale[i];
        }
        bias[o] += carried;
    }
    HostLinear {
        weight,
        bias,
        c_in: l.c_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folding is exact algebra: a folded Linear gives what the two steps give, in f64.
    #[test]
    fn folding_on_either_side_equals_the_two_steps() {
        let l = HostLinear {
            weight: vec![1.0, -2.0, 0.5, 3.0, 0.25, -1.0],
            bias: vec![0.1, -0.2],
            c_in: 3,
        };
        let apply = |l: &HostLinear, x: &[f64]| -> Vec<f64> {
            l.weight
                .chunks_exact(l.c_in)
                .zip(&l.bias)
                .map(|(row, b)| row.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + b)
                .collect()
        };
        let affine = |a: &HostAffine, x: &[f64]| -> Vec<f64> {
            x.iter()
                .enumerate()
                .map(|(i, v)| v * a.scale[i] + a.shift[i])
                .collect()
        };
        let x = [0.3, -1.5, 2.0];
        let after = BatchNorm {
            scale: vec![2.0, -0.5],
            mean: vec![0.5, -0.1],
            beta: vec![1.0, 0.25],
        };
        let mut folded = HostLinear {
            weight: l.weight.clone(),
            bias: l.bias.clone(),
            c_in: 3,
        };
        fold_after(&mut folded, &after);
        let (a, b) = (apply(&folded, &x), affine(&after.into(), &apply(&l, &x)));
        assert!(
            a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-12),
            "{a:?} {b:?}"
        );

        let before = HostAffine {
            scale: vec![0.5, 2.0, -1.0],
            shift: vec![0.1, 0.2, -0.3],
        };
        let folded = fold_before(&before, &l);
        let (a, b) = (apply(&folded, &x), apply(&l, &affine(&before, &x)));
        assert!(
            a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-12),
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn sigmoid_is_torchs() {
        let x = Tensor::new(&[-3.0f64, 0.0, 2.5], &Device::Cpu).unwrap();
        let y: Vec<f64> = activate(&x, Activation::Sigmoid)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (v, x) in y.iter().zip([-3.0f64, 0.0, 2.5]) {
            assert!((v - 1.0 / (1.0 + (-x).exp())).abs() < 1e-15);
        }
    }
}
