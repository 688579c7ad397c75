//! The GPU against the CPU, in a build with `--features cuda` on a machine with an NVIDIA GPU
//! (`cargo test -p fmv-core --features cuda -- cuda`): the `cuda` path must give the CPU's
//! results within 1e-4 relative. On the GPU fmv runs candle's kernels and `fmv-models`'
//! input-gradient ops; on the CPU its own convolution (im2col, Winograd) with its own backward
//! pass, so the two share no arithmetic. Each test prints the deviations it measured.
//!
//! Robust patterns are not compared: that optimisation amplifies rounding (on the CPU alone,
//! the f32 and f64 networks end 10–33 % apart after 40 steps), so no two arithmetics agree on
//! its images; compat runs, compared here, follow one trajectory to 2e-5.

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use fmv_core::Visualizer;
use fmv_models::{Backbone, LayerId, LayerKind, LoadOptions, Model};

use crate::golden::Golden;

/// The largest deviation allowed, relative to the CPU's largest value.
const TOLERANCE: f64 = 1e-4;

const NETWORKS: [&str; 2] = ["resnet50_small_seed1", "vgg16_small_seed1"];

fn gpu() -> Device {
    Device::new_cuda(0)
        .unwrap_or_else(|e| panic!("built with `cuda`, but no CUDA device is usable: {e}"))
}

fn load(name: &str, device: &Device) -> Model {
    let opts = LoadOptions::new().with_device(device.clone());
    Model::load(Golden::load(name).weights(), &opts).unwrap()
}

/// `max |a − b| / max |b|`, in f64 on the CPU.
fn deviation(a: &Tensor, b: &Tensor) -> f64 {
    let a = a
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let b = b
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let max = |t: Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let diff = max((a - &b).unwrap()).to_scalar::<f64>().unwrap();
    diff / max(b).to_scalar::<f64>().unwrap()
}

/// Two seeded 224×224 images with values in [0, 1), on the CPU.
fn images() -> Tensor {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let values: Vec<f32> = (0..2 * 3 * 224 * 224)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_vec(values, (2, 3, 224, 224), &Device::Cpu).unwrap()
}

/// Every tap's maps (and the logits) on two images.
#[test]
fn every_layer_matches_the_cpu() {
    let gpu = gpu();
    let x = images();
    for name in NETWORKS {
        let (cpu_model, gpu_model) = (load(name, &Device::Cpu), load(name, &gpu));
        let taps: Vec<LayerId> = (0..cpu_model.layers().len()).map(LayerId).collect();
        let want = cpu_model.forward_taps(&x, &taps).unwrap();
        let got = gpu_model
            .forward_taps(&x.to_device(&gpu).unwrap(), &taps)
            .unwrap();
        let mut worst = (0f64, "");
        for ((g, w), info) in got.iter().zip(&want).zip(cpu_model.layers()) {
            let d = deviation(g, w);
            assert!(d <= TOLERANCE, "{name} {}: {d:e}", info.name);
            if d >= worst.0 {
                worst = (d, &info.name);
            }
        }
        eprintln!(
            "{name}: {} taps, largest deviation {:e} at {}",
            taps.len(),
            worst.0,
            worst.1
        );
    }
}

/// The gradient with respect to the input of one map's mean, what a pattern step follows, at
/// every feature-map tap (for the channel that fires most).
///
/// Through max pools this gradient is ill-conditioned wherever two inputs of a pooling window
/// are within rounding of each other: which one receives the gradient then depends on the last
/// bit. Measured on the CPU alone, scaling the input by 1 + 1e-6 moves the gradient at VGG
/// `features.16` by 22 % of its largest value (and the f64 network's gradient is as far from
/// the f32 one). So each tap's tolerance is 1e-4 plus twice that sensitivity of the CPU's own
/// gradient: strict where the gradient is well-defined, no stricter than f32 itself elsewhere.
#[test]
fn input_gradient_matches_the_cpu() {
    let gpu = gpu();
    let x = images().i(0..1).unwrap();
    let nudged = x.affine(1.0 + 1e-6, 0.0).unwrap();
    for name in NETWORKS {
        let (cpu_model, gpu_model) = (load(name, &Device::Cpu), load(name, &gpu));
        let (mut strict, mut tie_bound) = (0, 0);
        for (i, info) in cpu_model.layers().iter().enumerate() {
            if info.kind == LayerKind::Logits {
                continue;
            }
            let tap = LayerId(i);
            // The channel that fires most on the CPU: a silent one has no gradient to compare.
            let means = cpu_model.forward_taps(&x, &[tap]).unwrap()[0]
                .mean((2, 3))
                .unwrap()
                .flatten_all()
                .unwrap();
            let channel = means.argmax(0).unwrap().to_scalar::<u32>().unwrap() as usize;
            let gradient = |model: &Model, x: &Tensor| {
                let var = Var::from_tensor(&x.to_device(model.device()).unwrap()).unwrap();
                let map = model
                    .forward_taps(var.as_tensor(), &[tap])
                    .unwrap()
                    .remove(0);
                let loss = map.i((0, channel)).unwrap().mean_all().unwrap();
                loss.backward().unwrap().get(&var).unwrap().clone()
            };
            let want = gradient(&cpu_model, &x);
            let sensitivity = deviation(&gradient(&cpu_model, &nudged), &want);
            let d = deviation(&gradient(&gpu_model, &x), &want);
            let tolerance = TOLERANCE + 2.0 * sensitivity;
            if sensitivity < 1e-5 {
                strict += 1;
            } else {
                tie_bound += 1;
            }
            eprintln!(
                "{name} {} channel {channel}: gradient deviation {d:.1e} (the CPU's own under a 1e-6 nudge: {sensitivity:.1e})",
                info.name
            );
            assert!(
                d <= tolerance,
                "{name} {} channel {channel}: {d:e} > {tolerance:e}",
                info.name
            );
        }
        eprintln!("{name}: {strict} taps held to 1e-4, {tie_bound} bounded by max-pool near-ties");
        // The loose bound must stay the exception: on the H200, 13 of 23 ResNet taps and 6 of
        // 19 VGG taps were held to 1e-4.
        assert!(
            strict * 4 >= strict + tie_bound,
            "{name}: only {strict} of {} taps well-conditioned; the test no longer checks much",
            strict + tie_bound
        );
    }
}

/// The original's compat schedule from the goldens (the same start image, filter and steps)
/// on both devices: the objective at every step and the final image.
#[test]
fn compat_patterns_match_the_cpu() {
    let gpu = gpu();
    for name in NETWORKS {
        let golden = Golden::load(name);
        let cfg = golden.pattern_config();
        let run = |device: &Device| {
            Visualizer::new(load(name, device))
                .with_preprocess(fmv_core::Preprocess::original())
                .maximize(&cfg, &mut ())
                .unwrap()
                .remove(0)
        };
        let (want, got) = (run(&Device::Cpu), run(&gpu));
        assert_eq!(got.activation_trace.len(), want.activation_trace.len());
        let trace = got
            .activation_trace
            .iter()
            .zip(&want.activation_trace)
            .map(|(g, w)| (g - w).abs() / w.abs())
            .fold(0f64, f64::max);
        let image = got
            .image
            .iter()
            .zip(&want.image)
            .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        eprintln!(
            "{name}: {} steps, largest relative objective deviation {trace:e}, final image max abs {image:e}",
            want.activation_trace.len()
        );
        assert!(trace <= TOLERANCE, "{name}: objective {trace:e}");
        assert!(f64::from(image) <= TOLERANCE, "{name}: image {image:e}");
    }
}
