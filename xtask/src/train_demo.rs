//! `cargo xtask train-demo`: trains the two embedded demo networks (a tiny ResNet and a tiny
//! VGG, torchvision layout) on the generated demo image set and writes them to
//! `models/demo/` with their sha256.
//!
//! Deterministic: the weights start from fmv's seeded generator, every batch is generated from
//! its own seed, and the training runs on the CPU. Training uses real BatchNorm (batch
//! statistics, running averages with torch's momentum and unbiased variance), so the files are
//! ordinary torchvision checkpoints.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{D, Device, Tensor, Var};
use fmv_core::demo::{DEMO_SIZE, DemoClass, generate};
use fmv_core::rng::Rng;
use fmv_kernels::{adaptive_avg_pool2d, max_pool2d_differentiable};
use fmv_models::{
    Arch, BATCH_NORM_EPS, BlockKind, Head, HeadState, ResNetConfig, Stage, VggConfig, VggItem,
};

/// Seeds at or above this make the held-out images; training seeds stay below.
const TEST_SEED: u64 = 1 << 40;

/// The demo ResNet: BasicBlocks, one per stage, widths 16/32/64/64.
pub fn resnet_arch() -> Arch {
    let stage = |out, stride| Stage {
        n_blocks: 1,
        inner: out,
        out,
        stride,
    };
    Arch::ResNet(ResNetConfig {
        block: BlockKind::Basic,
        stem_width: 16,
        stages: vec![stage(16, 1), stage(32, 2), stage(64, 2), stage(64, 2)],
        groups: 1,
        head: HeadState::Ready(Head::linear("fc", 64, DemoClass::ALL.len())),
    })
}

/// The demo VGG: 16-M-32-M-64-M-64-M with BatchNorm, a 32-wide classifier.
pub fn vgg_arch() -> Arch {
    let mut features = Vec::new();
    let mut index = 0;
    let mut c_in = 3;
    for c_out in [16, 32, 64, 64] {
        features.push(VggItem::Conv { index, c_in, c_out });
        index += 3; // conv, BatchNorm, ReLU
        features.push(VggItem::Pool { index });
        index += 1;
        c_in = c_out;
    }
    Arch::Vgg(VggConfig {
        features,
        batch_norm: true,
        head: HeadState::Ready(Head::vgg(64 * 49, 32, 32, DemoClass::ALL.len())),
    })
}

/// A network under training: trainable Vars and BatchNorm's running statistics.
struct Net {
    arch: Arch,
    vars: Vec<(String, Var)>,
    running: HashMap<String, Tensor>,
}

impl Net {
    fn init(arch: Arch, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let mut vars = Vec::new();
        let mut running = HashMap::new();
        for (name, shape) in arch.expected_tensors() {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("running_mean") || name.ends_with(".bias") {
                vec![0.0; n]
            } else if shape.len() == 1 {
                vec![1.0; n] // BatchNorm's weight and running variance
            } else {
                // He initialisation on the fan-in.
                let fan_in: usize = shape[1..].iter().product();
                let std = (2.0 / fan_in as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            };
            let t = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?;
            if name.contains("running_") {
                running.insert(name, t);
            } else {
                vars.push((name, Var::from_tensor(&t)?));
            }
        }
        Ok(Net {
            arch,
            vars,
            running,
        })
    }

    fn p(&self, name: &str) -> Result<&Tensor> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor())
            .with_context(|| format!("no parameter {name}"))
    }

    fn batch_norm(&mut self, x: &Tensor, prefix: &str, train: bool) -> Result<Tensor> {
        let c = x.dim(1)?;
        let shape = (1, c, 1, 1);
        let (mean, var) = if train {
            let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
            let centred = x.broadcast_sub(&mean)?;
            let var = centred
                .sqr()?
                .mean_keepdim(0)?
                .mean_keepdim(2)?
                .mean_keepdim(3)?;
            let n = (x.elem_count() / c) as f64;
            for (stat, value) in [("running_mean", &mean), ("running_var", &var)] {
                let key = format!("{prefix}.{stat}");
                let value = value.detach().flatten_all()?;
                let value = if stat == "running_var" {
                    (value * (n / (n - 1.0)))?
                } else {
                    value
                };
                let old = &self.running[&key];
                let new = ((old * 0.9)? + (value * 0.1)?)?;
                self.running.insert(key, new);
            }
            (mean, var)
        } else {
            (
                self.running[&format!("{prefix}.running_mean")].reshape(shape)?,
                self.running[&format!("{prefix}.running_var")].reshape(shape)?,
            )
        };
        let x = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + BATCH_NORM_EPS)?.sqrt()?)?;
        let w = self.p(&format!("{prefix}.weight"))?.reshape(shape)?;
        let b = self.p(&format!("{prefix}.bias"))?.reshape(shape)?;
        Ok(x.broadcast_mul(&w)?.broadcast_add(&b)?)
    }

    fn conv(&self, x: &Tensor, name: &str, stride: usize, pad: usize) -> Result<Tensor> {
        Ok(x.conv2d(self.p(&format!("{name}.weight"))?, pad, stride, 1, 1)?)
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let w = self.p(&format!("{name}.weight"))?;
        let b = self.p(&format!("{name}.bias"))?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
    }

    fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self.arch.clone() {
            Arch::ResNet(c) => {
                let x = self.conv(x, "conv1", 2, 3)?;
                let x = self.batch_norm(&x, "bn1", train)?.relu()?;
                let mut x = max_pool2d_differentiable(&x, 3, 2, 1)?;
                for (s, st) in c.stages.iter().enumerate() {
                    for b in 0..st.n_blocks {
                        let p = format!("layer{}.{b}", s + 1);
                        let stride = if b == 0 { st.stride } else { 1 };
                        let y = self.conv(&x, &format!("{p}.conv1"), stride, 1)?;
                        let y = self.batch_norm(&y, &format!("{p}.bn1"), train)?.relu()?;
                        let y = self.conv(&y, &format!("{p}.conv2"), 1, 1)?;
                        let y = self.batch_norm(&y, &format!("{p}.bn2"), train)?;
                        let identity = if self.p(&format!("{p}.downsample.0.weight")).is_ok() {
                            let d = self.conv(&x, &format!("{p}.downsample.0"), stride, 0)?;
                            self.batch_norm(&d, &format!("{p}.downsample.1"), train)?
                        } else {
                            x.clone()
                        };
                        x = (y + identity)?.relu()?;
                    }
                }
                let x = x.mean(D::Minus1)?.mean(D::Minus1)?;
                self.linear(&x, "fc")
            }
            Arch::Vgg(c) => {
                let mut x = x.clone();
                for item in &c.features {
                    x = match *item {
                        VggItem::Conv { index, .. } => {
                            let name = format!("features.{index}");
                            let y = self.conv(&x, &name, 1, 1)?;
                            let b = self.p(&format!("{name}.bias"))?;
                            let y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
                            let bn = format!("features.{}", index + 1);
                            self.batch_norm(&y, &bn, train)?.relu()?
                        }
                        VggItem::Pool { .. } => max_pool2d_differentiable(&x, 2, 2, 0)?,
                    };
                }
                let x = adaptive_avg_pool2d(&x, 7, 7)?.flatten_from(1)?;
                let x = self.linear(&x, "classifier.0")?.relu()?;
                let x = self.linear(&x, "classifier.3")?.relu()?;
                self.linear(&x, "classifier.6")
            }
        }
    }

    fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .chain(self.running.iter().map(|(n, t)| (n.clone(), t.clone())))
            .collect()
    }
}

/// A batch of demo images and labels; image `i` of the batch is made from `seed + i`.
///
/// With `augment`, each image gets a random contrast (×0.5–1.2), brightness (±0.15) and pixel
/// noise (σ up to 0.15): the networks then rely on shapes rather than on exact intensities or
/// the generator's noise level, which makes their activation-maximisation patterns readable.
pub fn batch(seed: u64, n: usize, augment: bool) -> Result<(Tensor, Vec<usize>)> {
    let preprocess = fmv_core::Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE);
    let mut data = Vec::with_capacity(n * 3 * DEMO_SIZE * DEMO_SIZE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let class = DemoClass::ALL[((seed + i) % DemoClass::ALL.len() as u64) as usize];
        let mut x = preprocess.apply(&generate(class, seed + i, DEMO_SIZE));
        if augment {
            let mut rng = Rng::new((seed + i).wrapping_mul(0xA24B_AED4_963E_E407));
            let contrast = rng.range(0.5, 1.2) as f32;
            let brightness = rng.range(-0.15, 0.15) as f32;
            let noise = rng.range(0.0, 0.15);
            for v in &mut x {
                let n = (noise * rng.normal()) as f32;
                *v = ((*v - 0.5) * contrast + 0.5 + brightness + n).clamp(0.0, 1.0);
            }
        }
        data.extend(x);
        labels.push(class.label());
    }
    let x = Tensor::from_vec(data, (n, 3, DEMO_SIZE, DEMO_SIZE), &Device::Cpu)?;
    Ok((x, labels))
}

fn cross_entropy(logits: &Tensor, labels: &[usize]) -> Result<Tensor> {
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_z = shifted.exp()?.sum_keepdim(1)?.log()?;
    let log_p = shifted.broadcast_sub(&log_z)?;
    let k = logits.dim(1)?;
    let one_hot: Vec<f32> = labels
        .iter()
        .flat_map(|&l| (0..k).map(move |j| if j == l { 1.0 } else { 0.0 }))
        .collect();
    let one_hot = Tensor::from_vec(one_hot, (labels.len(), k), &Device::Cpu)?;
    Ok((log_p * one_hot)?
        .sum_all()?
        .neg()?
        .affine(1.0 / labels.len() as f64, 0.0)?)
}

fn accuracy(logits: &Tensor, labels: &[usize]) -> Result<f64> {
    let pred = logits.argmax(1)?.to_vec1::<u32>()?;
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|&(&p, &l)| p as usize == l)
        .count();
    Ok(hits as f64 / labels.len() as f64)
}

/// Torch's Adam (no weight decay) over the Vars.
struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl Adam {
    fn step(
        &mut self,
        vars: &[(String, Var)],
        grads: &candle_core::backprop::GradStore,
        lr: f64,
    ) -> Result<()> {
        self.t += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for (i, (name, var)) in vars.iter().enumerate() {
            // Detached: a gradient carries its own graph, which would otherwise chain every
            // step's moments to the previous ones and grow without bound.
            let g = grads
                .get(var.as_tensor())
                .with_context(|| format!("no gradient for {name}"))?
                .detach();
            self.m[i] = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((&self.v[i] / c2)?.sqrt()? + eps)?;
            let update = ((&self.m[i] / c1)? / denom)?;
            var.set(&(var.as_tensor() - (update * lr)?)?)?;
        }
        Ok(())
    }
}

/// Trains one network and returns its tensors and held-out accuracy.
fn train(
    arch: Arch,
    seed: u64,
    steps: usize,
    batch_size: usize,
) -> Result<(HashMap<String, Tensor>, f64)> {
    let mut net = Net::init(arch, seed)?;
    let mut adam = Adam {
        m: net
            .vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<candle_core::Result<_>>()?,
        v: net
            .vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<candle_core::Result<_>>()?,
        t: 0,
    };
    let start = Instant::now();
    for step in 0..steps {
        // Cosine decay from 3e-3.
        let lr = 3e-3 * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / steps as f64).cos());
        let (x, labels) = batch(
            seed.wrapping_mul(1_000_003) + (step * batch_size) as u64,
            batch_size,
            true,
        )?;
        let logits = net.forward(&x, true)?;
        let loss = cross_entropy(&logits, &labels)?;
        let grads = loss.backward()?;
        adam.step(&net.vars, &grads, lr)?;
        if step % 25 == 0 || step + 1 == steps {
            println!(
                "  step {step:4}  loss {:.4}  batch accuracy {:.2}  ({:.0} s)",
                loss.to_scalar::<f32>()?,
                accuracy(&logits, &labels)?,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let (x, labels) = batch(TEST_SEED, 256, false)?;
    let acc = accuracy(&net.forward(&x, false)?, &labels)?;
    Ok((net.tensors(), acc))
}

/// Checks a written file through fmv's own loader: the held-out accuracy must be the same.
fn accuracy_of_file(path: &Path) -> Result<f64> {
    use fmv_models::{Backbone, LoadOptions, Model};
    let model = Model::load(path, &LoadOptions::new())?;
    let (x, labels) = batch(TEST_SEED, 256, false)?;
    let logits = model.resolve(&"logits".parse()?)?;
    let logits = model.forward_taps(&x, &[logits])?[0].flatten_from(1)?;
    accuracy(&logits, &labels)
}

/// Trains both networks (or only `resnet` / `vgg`) and writes `models/demo/{resnet,vgg}_demo.safetensors` and
/// `models/demo/SHA256SUMS`.
pub fn run(steps: usize, only: Option<&str>) -> Result<()> {
    let dir = Path::new("models/demo");
    std::fs::create_dir_all(dir)?;
    for (file, arch, seed) in [
        ("resnet_demo.safetensors", resnet_arch(), 1u64),
        ("vgg_demo.safetensors", vgg_arch(), 2u64),
    ] {
        if only.is_some_and(|o| !file.starts_with(o)) {
            continue;
        }
        println!("training {file} ({})", arch.description());
        let (tensors, acc) = train(arch, seed, steps, 16)?;
        let path = dir.join(file);
        let tmp = path.with_extension("safetensors.tmp");
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, &path)?;
        let reloaded = accuracy_of_file(&path)?;
        println!("  held-out accuracy {acc:.3} (trainer), {reloaded:.3} (fmv's loader)");
        anyhow::ensure!(
            (acc - reloaded).abs() < 1e-9,
            "the saved file classifies differently from the trained network"
        );
    }
    let mut sums = String::new();
    for file in ["resnet_demo.safetensors", "vgg_demo.safetensors"] {
        let path = dir.join(file);
        if path.exists() {
            sums.push_str(&format!("{}  {file}\n", crate::sha256_file(&path)?));
        }
    }
    std::fs::write(dir.join("SHA256SUMS"), sums)?;
    Ok(())
}
