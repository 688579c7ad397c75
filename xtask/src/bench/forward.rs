//! Forward passes of full-size ResNet50 and VGG16 (seeded random weights) at 224×224, batch 1
//! and 8, and the GFLOP/s of a 2048³ f32 matmul: the ceiling the convolutions are judged by.
//! On a GPU, also how far its maps and logits are from the CPU's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Row, Setup, Table};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use fmv_models::{
    Arch, Backbone, BlockKind, Checkpoint, Head, HeadModule, HeadState, LayerRef, LoadOptions,
    Model, ResNetConfig, Stage, VggConfig, VggItem,
};

/// A small deterministic generator, so every run benchmarks the same weights.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

pub fn resnet50() -> Arch {
    let stage = |i: usize, n| Stage {
        n_blocks: n,
        inner: 64 << i,
        out: 256 << i,
        stride: if i == 0 { 1 } else { 2 },
    };
    Arch::ResNet(ResNetConfig {
        block: BlockKind::Bottleneck,
        stem_width: 64,
        stages: vec![stage(0, 3), stage(1, 4), stage(2, 6), stage(3, 3)],
        groups: 1,
        head: HeadState::Ready(Head::linear("fc", 2048, 1000)),
    })
}

pub fn vgg16() -> Arch {
    let cfg: [usize; 18] = [
        64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
    ];
    let (mut features, mut index, mut c_in) = (Vec::new(), 0, 3);
    for c in cfg {
        if c == 0 {
            features.push(VggItem::Pool { index });
            index += 1;
        } else {
            features.push(VggItem::Conv {
                index,
                c_in,
                c_out: c,
            });
            c_in = c;
            index += 2;
        }
    }
    Arch::Vgg(VggConfig {
        features,
        batch_norm: false,
        head: HeadState::Ready(Head::vgg(512 * 49, 4096, 4096, 1000)),
    })
}

/// Random weights in He scale for convolutions and linear layers; BatchNorm near identity.
/// A model of `arch` with [`random_tensors`], in f32 on `device`.
pub fn random_model(arch: &Arch, seed: u64, device: &Device) -> Result<Model> {
    random_model_in(arch, seed, DType::F32, device)
}

fn random_model_in(arch: &Arch, seed: u64, dtype: DType, device: &Device) -> Result<Model> {
    let algorithms = super::algorithms_from_env()?;
    Ok(Model::from_checkpoint(
        Checkpoint::from_tensors(arch.name(), random_tensors(arch, seed)?)?,
        &LoadOptions::new()
            .with_dtype(dtype)
            .with_device(device.clone())
            .with_conv_algorithm(algorithms.conv)
            .with_input_grad_algorithm(algorithms.input_grad),
    )?)
}

/// `max |a − b| / max |b|` over two tensors of the same shape, in f64 on the CPU.
fn relative_deviation(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let diff = (a - &b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    Ok(diff / scale)
}

/// A seeded batch of `n` random 224×224 images in [0, 1) on `device`.
fn random_images(n: usize, device: &Device) -> Result<Tensor> {
    let mut rng = SplitMix(3);
    let x: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.next_f32()).collect();
    Ok(Tensor::from_vec(x, (n, 3, 224, 224), device)?)
}

/// How far the maps at `tap` and the logits of `model` (on a GPU) are from the same network's
/// on the CPU, for a batch of 2: the largest of the two relative deviations.
fn device_deviation(arch: &Arch, seed: u64, model: &Model, tap: &str) -> Result<f64> {
    let cpu = random_model(arch, seed, &Device::Cpu)?;
    let layers = [
        model.resolve(&LayerRef::Name(tap.into()))?,
        model.resolve(&LayerRef::Name("logits".into()))?,
    ];
    let x = random_images(2, &Device::Cpu)?;
    let want = cpu.forward_taps(&x, &layers)?;
    let got = model.forward_taps(&x.to_device(model.device())?, &layers)?;
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(&want) {
        worst = worst.max(relative_deviation(g, w)?);
    }
    Ok(worst)
}

/// The largest difference between the f32 and the f64 network's maps at `tap` on one image,
/// relative to the largest f64 value: what f32 rounding (the convolution algorithms included)
/// costs.
fn f32_deviation(arch: &Arch, seed: u64, model: &Model, tap: &str) -> Result<f64> {
    let wide = random_model_in(arch, seed, DType::F64, &Device::Cpu)?;
    let layer = model.resolve(&LayerRef::Name(tap.into()))?;
    let mut rng = SplitMix(5);
    let x: Vec<f32> = (0..3 * 224 * 224).map(|_| rng.next_f32()).collect();
    let x = Tensor::from_vec(x, (1, 3, 224, 224), &Device::Cpu)?;
    let narrow = model.forward_taps(&x, &[layer])?.remove(0);
    let exact = wide
        .forward_taps(&x.to_dtype(DType::F64)?, &[layer])?
        .remove(0);
    relative_deviation(&narrow, &exact)
}

/// Seeded He-scaled weights (BatchNorm statistics near 1 and 0) under torchvision's names.
pub fn random_tensors(arch: &Arch, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = SplitMix(seed);
    let mut tensors = HashMap::new();
    for (name, shape) in arch.expected_tensors() {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let scale = (2.0 / fan_in as f32).sqrt() * 1.7;
        let values: Vec<f32> =
            if name.ends_with("running_var") || name.ends_with(".weight") && shape.len() == 1 {
                (0..n).map(|_| 0.5 + rng.next_f32()).collect()
            } else if shape.len() == 1 {
                (0..n).map(|_| 0.1 * (rng.next_f32() - 0.5)).collect()
            } else {
                (0..n).map(|_| scale * (rng.next_f32() - 0.5)).collect()
            };
        tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    Ok(tensors)
}

/// Multiply-adds ×2 of every convolution and linear layer for a 224×224 input.
pub(super) fn gflop(arch: &Arch) -> f64 {
    let mut flop = 0f64;
    match arch {
        Arch::ResNet(c) => {
            flop += 2.0 * (c.stem_width * 3 * 49 * 112 * 112) as f64;
            let mut hw = 56usize;
            let mut c_in = c.stem_width;
            for st in &c.stages {
                for b in 0..st.n_blocks {
                    let (bin, stride) = if b == 0 {
                        (c_in, st.stride)
                    } else {
                        (st.out, 1)
                    };
                    let out_hw = hw / stride;
                    let (i, o) = (st.inner as f64, st.out as f64);
                    let at = |n: usize| (n * n) as f64;
                    match c.block {
                        BlockKind::Bottleneck => {
                            flop += 2.0 * i * bin as f64 * at(hw); // 1×1 at input resolution
                            flop += 2.0 * i * i / c.groups as f64 * 9.0 * at(out_hw);
                            flop += 2.0 * o * i * at(out_hw);
                        }
                        BlockKind::Basic => {
                            flop += 2.0 * o * bin as f64 * 9.0 * at(out_hw);
                            flop += 2.0 * o * o * 9.0 * at(out_hw);
                        }
                    }
                    if b == 0 && (stride != 1 || bin != st.out) {
                        flop += 2.0 * o * bin as f64 * at(out_hw);
                    }
                    hw = out_hw;
                }
                c_in = st.out;
            }
        }
        Arch::Vgg(c) => {
            let mut hw = 224usize;
            for item in &c.features {
                match *item {
                    VggItem::Conv { c_in, c_out, .. } => {
                        flop += 2.0 * (c_out * c_in * 9 * hw * hw) as f64
                    }
                    VggItem::Pool { .. } => hw /= 2,
                }
            }
        }
    }
    if let Some(head) = arch.head().ready() {
        for m in &head.modules {
            if let HeadModule::Linear { c_in, c_out, .. } = m {
                flop += 2.0 * (c_in * c_out) as f64;
            }
        }
    }
    flop / 1e9
}

/// `(min, median)` of `runs` timed calls after one warm-up call.
pub fn time(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<(Duration, Duration)> {
    f()?;
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed());
    }
    t.sort();
    Ok((t[0], t[t.len() / 2]))
}

fn matmul_ceiling(setup: &Setup) -> Result<f64> {
    let n = 2048;
    let mut rng = SplitMix(7);
    let mut matrix = || {
        let v: Vec<f32> = (0..n * n).map(|_| rng.next_f32()).collect();
        Tensor::from_vec(v, (n, n), &setup.device)
    };
    let (a, b) = (matrix()?, matrix()?);
    let (min, _) = time(setup.runs, || {
        a.matmul(&b)?;
        setup.sync()
    })?;
    Ok(2.0 * (n * n * n) as f64 / min.as_secs_f64() / 1e9)
}

/// The matmul ceiling's row.
pub fn ceiling(setup: &Setup) -> Result<(f64, Row)> {
    let gflops = matmul_ceiling(setup)?;
    let row = Row::new("matmul 2048³ f32 (the ceiling)", "GFLOP/s", gflops);
    Ok((gflops, row))
}

/// ms per image and GFLOP/s of each network's forward pass at batch 1 and 8, after a row of
/// its rounding: f32 against f64 on the CPU, the GPU against the CPU on a GPU.
pub fn rows(setup: &Setup, table: &Table) -> Result<()> {
    for (arch, seed, tap) in [(resnet50(), 1u64, "layer4.1"), (vgg16(), 2, "features.28")] {
        let model = random_model(&arch, seed, &setup.device)?;
        table.print(&if setup.device.is_cpu() {
            Row::new(
                format!(
                    "{} → {tap}, f32 maps vs f64, max deviation / max value",
                    arch.name()
                ),
                "relative",
                f32_deviation(&arch, seed, &model, tap)?,
            )
        } else {
            Row::new(
                format!(
                    "{} → {tap} and logits, {} vs CPU (f32 both), max deviation / max value",
                    arch.name(),
                    setup.device_name
                ),
                "relative",
                device_deviation(&arch, seed, &model, tap)?,
            )
        });
        let logits = model.resolve(&LayerRef::Name("logits".into()))?;
        let work = gflop(&arch);
        let torch = setup
            .original
            .as_ref()
            .map(|o| o.forward(&arch, seed, setup.runs))
            .transpose()?;
        for batch in [1usize, 8] {
            let x = random_images(batch, &setup.device)?;
            let (min, _) = time(setup.runs, || {
                model.forward_taps(&x, &[logits])?;
                setup.sync()
            })?;
            let ms = min.as_secs_f64() * 1e3 / batch as f64;
            let mut row = Row::new(
                format!(
                    "{} forward, batch {batch} ({work:.2} GFLOP/image)",
                    arch.name()
                ),
                "ms/image",
                ms,
            )
            .with_gflops(work / ms * 1e3);
            if let Some(t) = &torch {
                row = row.with_original(t[usize::from(batch != 1)]);
            }
            table.print(&row);
        }
    }
    Ok(())
}
