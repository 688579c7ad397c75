//! `torch.optim.Adam` (single-tensor implementation, as on the CPU) with L2 weight decay added
//! to the gradient, on host `f32` vectors, step for step.

/// One Adam state for one parameter vector.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    m: Vec<f32>,
    v: Vec<f32>,
    step: i32,
}

impl Adam {
    pub fn new(n: usize, lr: f64, weight_decay: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            m: vec![0.0; n],
            v: vec![0.0; n],
            step: 0,
        }
    }

    /// Forgets the moments of `range` (a restarted part of the parameters).
    pub fn reset(&mut self, range: std::ops::Range<usize>) {
        self.m[range.clone()].iter_mut().for_each(|x| *x = 0.0);
        self.v[range].iter_mut().for_each(|x| *x = 0.0);
    }

    /// Updates `param` in place with the gradient `grad` (of the loss to minimise).
    pub fn step(&mut self, param: &mut [f32], grad: &[f32]) {
        self.step += 1;
        let t = self.step;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        let step_size = (self.lr / bias1) as f32;
        let bias2_sqrt = bias2.sqrt() as f32;
        let (b1w, b2, b2w, eps, wd) = (
            (1.0 - self.beta1) as f32,
            self.beta2 as f32,
            (1.0 - self.beta2) as f32,
            self.eps as f32,
            self.weight_decay as f32,
        );
        for i in 0..param.len() {
            let g = if wd != 0.0 {
                grad[i] + wd * param[i]
            } else {
                grad[i]
            };
            // torch's lerp for a weight below 0.5: m + w·(g − m).
            self.m[i] += b1w * (g - self.m[i]);
            self.v[i] = self.v[i] * b2 + b2w * g * g;
            let denom = self.v[i].sqrt() / bias2_sqrt + eps;
            param[i] -= step_size * (self.m[i] / denom);
        }
    }
}
