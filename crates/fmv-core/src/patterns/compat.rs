//! FeatureMapVisualizer's `visualize_patterns`, step for step: the parameter is the pre-sigmoid
//! image, initialised as `uint8(U(150, 180)) / 255`; each scale runs a fresh Adam
//! (lr, β 0.9/0.999, ε 1e-8, L2 decay 1e-6 added to the gradient) for `opt_steps` on
//! `−mean(map)` of `sigmoid(param)`, then the raw parameter grows by OpenCV's bicubic resize to
//! `int(factor · size)`. The final image is `sigmoid(param)` after the last update.

use std::sync::atomic::Ordering;

use candle_core::{DType, Tensor, Var};
use fmv_models::{LayerId, Tile};

use super::adam::Adam;
use super::{CompatConfig, Objective, Pattern, PatternConfig, Step, image_gradient, sigmoid};
use crate::cubic::resize_cubic_opencv;
use crate::error::Result;
use crate::lanes::Lanes;
use crate::relay::relay;
use crate::rng::Rng;
use crate::visualizer::Visualizer;

/// The original's weight decay.
const WEIGHT_DECAY: f64 = 1e-6;

/// The initial parameter, channel-major (CHW).
fn initial((config, compat): (&PatternConfig, &CompatConfig), side: usize) -> Vec<f32> {
    let plane = side * side;
    let mut p = vec![0f32; 3 * plane];
    match &compat.init_image {
        Some(img) => {
            for (i, px) in img.pixels.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    p[c * plane + i] = px[c] as f32 / 255.0;
                }
            }
        }
        None => {
            // numpy draws in HWC order; so does fmv, with its own generator.
            let mut rng = Rng::new(config.seed);
            for i in 0..plane {
                for c in 0..3 {
                    let u = rng.range(150.0, 180.0).floor() as u8;
                    p[c * plane + i] = u as f32 / 255.0;
                }
            }
        }
    }
    p
}

/// `sigmoid(p)` for a CHW parameter, as an HWC image.
fn sigmoid_hwc(p: &[f32], side: usize) -> Vec<f32> {
    let plane = side * side;
    let mut out = vec![0f32; 3 * plane];
    for c in 0..3 {
        for i in 0..plane {
            out[i * 3 + c] = 1.0 / (1.0 + (-p[c * plane + i]).exp());
        }
    }
    out
}

/// Every filter of `config`, each a [`run`]. On the CPU with several threads the filters run
/// side by side in [`Lanes`], each on one thread (a filter's result does not depend on it);
/// otherwise one after another, each on every thread. `Step` events count the steps of all
/// filters together. Once `should_stop` says so, the running filters finish with their best
/// image and the others do not start: the patterns returned are those of the first filters.
pub(super) fn run_all(
    viz: &Visualizer,
    layer: LayerId,
    (config, compat): (&PatternConfig, &CompatConfig),
    on_step: &mut dyn FnMut(Step),
    should_stop: &dyn Fn() -> bool,
) -> Result<Vec<Pattern>> {
    let filters = config.filters();
    let per_filter = compat.sizes().len() * compat.opt_steps;
    let total = filters.len() * per_filter;
    let Some(lanes) = Lanes::new(viz.backbone().device(), filters.len())? else {
        let mut out = Vec::with_capacity(filters.len());
        for (k, &f) in filters.iter().enumerate() {
            let mut on_filter_step = |step: Step| {
                on_step(Step {
                    done: k * per_filter + step.done,
                    total,
                    activation: step.activation,
                })
            };
            let pattern = run(
                viz,
                layer,
                f,
                (config, compat),
                &mut on_filter_step,
                should_stop,
            )?;
            let interrupted = pattern.interrupted;
            out.push(pattern);
            if interrupted {
                break;
            }
        }
        return Ok(out);
    };
    // Events and the stop request pass through this thread, which owns both callbacks.
    let mut done = vec![0; filters.len()];
    let results = relay(
        |send, halt| {
            let stopped = || halt.load(Ordering::SeqCst);
            lanes.run(filters.len(), halt, &|k| {
                let r = run(
                    viz,
                    layer,
                    filters[k],
                    (config, compat),
                    &mut |step| send((k, step)),
                    &stopped,
                );
                if r.as_ref().map_or(true, |p| p.interrupted) {
                    halt.store(true, Ordering::SeqCst);
                }
                r
            })
        },
        |(k, step): (usize, Step)| {
            done[k] = step.done;
            on_step(Step {
                done: done.iter().sum(),
                total,
                activation: step.activation,
            });
        },
        should_stop,
    );
    // Filters start in order, so those that ran come first.
    results.into_iter().map_while(|r| r).collect()
}

/// One filter's pattern with the compat settings `compat`.
pub(super) fn run(
    viz: &Visualizer,
    layer: LayerId,
    filter: usize,
    (config, compat): (&PatternConfig, &CompatConfig),
    on_step: &mut dyn FnMut(Step),
    should_stop: &dyn Fn() -> bool,
) -> Result<Pattern> {
    let sizes = compat.sizes();
    let total = sizes.len() * compat.opt_steps;
    let device = viz.backbone().device().clone();
    let dtype = viz.backbone().dtype();
    let mut side = sizes[0];
    let mut param = initial((config, compat), side);
    let mut trace = Vec::with_capacity(total);
    // The best step's activation, side and parameter (its image is made only if it is used).
    let mut best: Option<(f64, usize, Vec<f32>)> = None;
    let mut interrupted = false;
    'scales: for (scale, &s) in sizes.iter().enumerate() {
        if scale > 0 {
            let (old, plane) = (side, side * side);
            param = (0..3)
                .flat_map(|c| {
                    resize_cubic_opencv(&param[c * plane..(c + 1) * plane], old, old, s, s)
                })
                .collect();
            side = s;
        }
        let mut adam = Adam::new(param.len(), compat.lr(), WEIGHT_DECAY);
        for _ in 0..compat.opt_steps {
            if should_stop() {
                interrupted = true;
                break 'scales;
            }
            let var = Var::from_tensor(
                &Tensor::from_vec(param.clone(), (1, 3, side, side), &device)?.to_dtype(dtype)?,
            )?;
            let x = sigmoid(var.as_tensor())?;
            let act = viz.objective(&x, layer, &[filter], (Objective::Channel, Tile::F2))?;
            let a = act.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
            if !a.is_finite() {
                return Err(crate::Error::NonFinite {
                    layer: viz.backbone().layer(layer).name.clone(),
                    path: "(activation maximisation)".into(),
                });
            }
            trace.push(a);
            if best.as_ref().is_none_or(|b| a > b.0) {
                let mut kept = best.take().map(|(_, _, p)| p).unwrap_or_default();
                kept.clone_from(&param);
                best = Some((a, side, kept));
            }
            let grads = act.neg()?.sum_all()?.backward()?;
            let grad = image_gradient(&grads, &var)?;
            adam.step(&mut param, &grad);
            on_step(Step {
                done: trace.len(),
                total,
                activation: a,
            });
        }
    }
    let (image, side) = if interrupted {
        match best {
            Some((_, s, p)) => (sigmoid_hwc(&p, s), s),
            None => (sigmoid_hwc(&param, side), side),
        }
    } else {
        (sigmoid_hwc(&param, side), side)
    };
    let final_activation = evaluate(viz, layer, filter, &image, side)?;
    Ok(Pattern {
        layer: viz.backbone().layer(layer).name.clone(),
        filter,
        mode: "compat".into(),
        seed: config.seed,
        activation_trace: trace,
        final_activation,
        width: side,
        height: side,
        image,
        interrupted,
    })
}

/// The objective for an HWC image in `[0, 1]` (no normalisation, as the original).
fn evaluate(
    viz: &Visualizer,
    layer: LayerId,
    filter: usize,
    hwc: &[f32],
    side: usize,
) -> Result<f64> {
    let plane = side * side;
    let mut chw = vec![0f32; 3 * plane];
    for i in 0..plane {
        for c in 0..3 {
            chw[c * plane + i] = hwc[i * 3 + c];
        }
    }
    let x = Tensor::from_vec(chw, (1, 3, side, side), viz.backbone().device())?
        .to_dtype(viz.backbone().dtype())?;
    let a = viz.objective(&x, layer, &[filter], (Objective::Channel, Tile::F2))?;
    Ok(a.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
}
