//! Robust activation maximisation, after Olah et al., "Feature Visualization" (Distill 2017)
//! and Lucid/Lucent, with these defaults:
//!
//! - **Fourier parameterisation**: per colour channel a complex spectrum `R + iI` (initialised
//!   `N(0, 0.01²)`), scaled by `1 / max(f, 1/side)` (`f` the frequency in cycles per pixel) so
//!   that every frequency learns at a similar rate, turned into pixels with the real part of an
//!   inverse DFT (`fmv_kernels::InverseDft2`: FFTs on the CPU, matrix products elsewhere),
//!   `/ (4·√(HW))` as Lucid.
//! - **Decorrelated colour**: the three channels are mixed by Lucid's square root of ImageNet's
//!   colour covariance (normalised), then squashed by a sigmoid into `[0, 1]`.
//! - **Transformations** every step, one random affine warp per image: scale in [0.9, 1.1],
//!   rotation in ±10°, translation up to ±12 px (at 224 px; in proportion at other sizes),
//!   grey (0.5) outside — Lucid's pad 12, jitter 8, scale, rotate, jitter 4 in one bilinear
//!   resampling.
//! - **The model's normalisation** (the preprocessing's mean/std) at the preprocessing's size.
//! - **Adam**, lr 0.05, 256 steps; several filters optimise together as one batch (on the CPU
//!   with several threads, in even shares, one per thread: [`Lanes`]).
//! - **Dead starts restart.** A map behind a ReLU that is zero everywhere on the start image
//!   gets no gradient, and plain gradient ascent would never move. When a filter's gradient is
//!   exactly zero during the first quarter of the steps, its spectrum is drawn again from its
//!   own random stream with 4× the amplitude (up to [`MAX_RESTARTS`] times) and its Adam
//!   moments are cleared. Lucid's answer to the same problem is a "redirected" ReLU gradient;
//!   restarting needs no change to the network.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor, Var};
use fmv_kernels::{BilinearTaps, InverseDft2};
use fmv_models::LayerId;

use super::adam::Adam;
use super::{Pattern, PatternConfig, RobustConfig, Step, image_gradient, sigmoid};
use crate::error::Result;
use crate::lanes::Lanes;
use crate::rng::Rng;
use crate::visualizer::Visualizer;

/// How often a filter whose objective has no gradient is started again.
pub(crate) const MAX_RESTARTS: usize = 4;

/// Draws filter `k`'s spectrum (real and imaginary parts) from `rng` at amplitude `scale`.
fn draw_spectrum(re: &mut [f32], im: &mut [f32], rng: &mut Rng, scale: f64) {
    for v in re.iter_mut() {
        *v = (scale * rng.normal()) as f32;
    }
    for v in im.iter_mut() {
        *v = (scale * rng.normal()) as f32;
    }
}

/// Lucid's `color_correlation_svd_sqrt` (ImageNet's colour covariance, square root).
const COLOR_SQRT: [[f64; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// The inverse DFT, the frequency scale and the colour mixing.
struct Fourier {
    idft: InverseDft2,
    scale: Tensor,
    color: Tensor,
}

impl Fourier {
    fn new(h: usize, w: usize, device: &Device, dtype: DType) -> Result<Self> {
        // numpy's fftfreq: 0, 1, …, n/2−1, −n/2, …, −1 over n.
        let freq = |k: usize, n: usize| -> f64 {
            let k = k as f64;
            let n_f = n as f64;
            if k < n_f / 2.0 {
                k / n_f
            } else {
                (k - n_f) / n_f
            }
        };
        let side = h.max(w) as f64;
        let norm = 1.0 / (4.0 * ((h * w) as f64).sqrt());
        let scale: Vec<f64> = (0..h * w)
            .map(|i| {
                let f = (freq(i / w, h).powi(2) + freq(i % w, w).powi(2)).sqrt();
                norm / f.max(1.0 / side)
            })
            .collect();
        let max_norm = (0..3)
            .map(|c| (0..3).map(|r| COLOR_SQRT[r][c].powi(2)).sum::<f64>().sqrt())
            .fold(0f64, f64::max);
        let color: Vec<f64> = COLOR_SQRT.iter().flatten().map(|v| v / max_norm).collect();
        Ok(Fourier {
            idft: InverseDft2::new(h, w, device, dtype)?,
            scale: Tensor::from_vec(scale, (1, h, w), device)?.to_dtype(dtype)?,
            color: Tensor::from_vec(color, (3, 3), device)?.to_dtype(dtype)?,
        })
    }

    /// `B×3×H×W` images in `[0, 1]` from spectra `re`, `im` of shape `(B·3)×H×W`.
    fn render(&self, re: &Tensor, im: &Tensor, b: usize) -> candle_core::Result<Tensor> {
        let (_, h, w) = re.dims3()?;
        let r = re.broadcast_mul(&self.scale)?;
        let i = im.broadcast_mul(&self.scale)?;
        let spatial = self.idft.real_part(&r, &i)?;
        let flat = spatial.reshape((b, 3, h * w))?;
        let mixed = self.color.broadcast_matmul(&flat)?;
        sigmoid(&mixed)?.reshape((b, 3, h, w))
    }
}

/// One random affine warp: output pixel ← bilinear sample of the input, grey outside.
fn warp(img: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let (c, h, w) = img.dims3()?;
    let n = h * w;
    let s = rng.range(0.9, 1.1);
    let theta = rng.range(-10.0, 10.0).to_radians();
    // ±12 px at 224 px, in proportion at other sizes.
    let shift = 12.0 * h.max(w) as f64 / 224.0;
    let (tx, ty) = (rng.range(-shift, shift), rng.range(-shift, shift));
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (cos, sin) = (theta.cos(), theta.sin());
    let mut idx: [Vec<u32>; 4] = std::array::from_fn(|_| vec![n as u32; n]);
    let mut wt: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0f32; n]);
    for y in 0..h {
        for x in 0..w {
            // Inverse map: undo the translation, rotation and scale about the centre.
            let (dx, dy) = (x as f64 - cx - tx, y as f64 - cy - ty);
            let sx = (cos * dx + sin * dy) / s + cx;
            let sy = (-sin * dx + cos * dy) / s + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let o = y * w + x;
            for (k, (ox, oy, weight)) in [
                (0, 0, (1.0 - fx) * (1.0 - fy)),
                (1, 0, fx * (1.0 - fy)),
                (0, 1, (1.0 - fx) * fy),
                (1, 1, fx * fy),
            ]
            .into_iter()
            .enumerate()
            {
                let (xi, yi) = (x0 as i64 + ox, y0 as i64 + oy);
                if xi >= 0 && yi >= 0 && (xi as usize) < w && (yi as usize) < h {
                    idx[k][o] = (yi as usize * w + xi as usize) as u32;
                }
                wt[k][o] = weight as f32;
            }
        }
    }
    // Index `n` reads the grey outside.
    let taps = BilinearTaps::new(n, idx, wt, 0.5)?;
    Ok(taps.resample(&img.reshape((c, n))?)?.reshape((c, h, w))?)
}

/// `(x − mean) / std` per channel.
fn normalize(viz: &Visualizer, x: &Tensor) -> Result<Tensor> {
    let p = viz.preprocess();
    let dev = x.device();
    let mean = Tensor::from_vec(p.mean().to_vec(), (1, 3, 1, 1), dev)?.to_dtype(x.dtype())?;
    let std = Tensor::from_vec(p.std().to_vec(), (1, 3, 1, 1), dev)?.to_dtype(x.dtype())?;
    Ok(x.broadcast_sub(&mean)?.broadcast_div(&std)?)
}

/// `B×3×H×W` in `[0, 1]` to one HWC vector per image.
fn to_hwc(img: &Tensor) -> Result<Vec<Vec<f32>>> {
    let (b, c, h, w) = img.dims4()?;
    let flat: Vec<f32> = img.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let plane = h * w;
    Ok((0..b)
        .map(|bi| {
            let mut out = Vec::with_capacity(plane * c);
            for i in 0..plane {
                for ci in 0..c {
                    out.push(flat[(bi * c + ci) * plane + i]);
                }
            }
            out
        })
        .collect())
}

/// One filter's optimisation: its spectrum, its Adam states, its random stream and what it has
/// done so far.
struct MapRun {
    re: Vec<f32>,
    im: Vec<f32>,
    adam: (Adam, Adam),
    rng: Rng,
    restarts: usize,
    trace: Vec<f64>,
    /// The best objective seen and that step's (warped) image, for an interrupted run.
    best: Option<(f64, Vec<f32>)>,
    /// Still optimised: not yet on a plateau.
    active: bool,
}

impl MapRun {
    fn new(filter: usize, seed: u64, plane: usize, lr: f64) -> Self {
        // One random stream per filter, derived from the seed and the filter: a filter's
        // pattern does not depend on which other filters share the batch.
        let mut rng = Rng::new(seed ^ (filter as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (mut re, mut im) = (vec![0f32; plane], vec![0f32; plane]);
        draw_spectrum(&mut re, &mut im, &mut rng, 0.01);
        MapRun {
            re,
            im,
            adam: (Adam::new(plane, lr, 0.0), Adam::new(plane, lr, 0.0)),
            rng,
            restarts: 0,
            trace: Vec::new(),
            best: None,
            active: true,
        }
    }

    /// Draws the spectrum again at 4× the amplitude and forgets the Adam moments: the start
    /// gave no gradient.
    fn restart(&mut self) {
        self.restarts += 1;
        let scale = 0.01 * 4f64.powi(self.restarts as i32);
        draw_spectrum(&mut self.re, &mut self.im, &mut self.rng, scale);
        let n = self.re.len();
        self.adam.0.reset(0..n);
        self.adam.1.reset(0..n);
        self.best = None;
    }
}

/// What every step of one run shares.
struct Setup<'a> {
    viz: &'a Visualizer,
    layer: LayerId,
    robust: &'a RobustConfig,
    fourier: &'a Fourier,
    /// The image's height and width.
    h: usize,
    w: usize,
    /// Values per image, `3·h·w`.
    plane: usize,
}

/// Step `step` of the maps `active`, whose filters are `filters`, as one batch: the images,
/// the objective, its gradient, each map's Adam step, restart or plateau. Returns the maps'
/// objectives.
fn step_maps(
    s: &Setup<'_>,
    step: usize,
    active: &mut [&mut MapRun],
    filters: &[usize],
) -> Result<Vec<f64>> {
    let (viz, robust, plane) = (s.viz, s.robust, s.plane);
    let device = viz.backbone().device();
    let dtype = viz.backbone().dtype();
    let spectra = |part: fn(&MapRun) -> &[f32]| -> Result<Var> {
        let v: Vec<f32> = active
            .iter()
            .flat_map(|m| part(m).iter().copied())
            .collect();
        Ok(Var::from_tensor(
            &Tensor::from_vec(v, (active.len() * 3, s.h, s.w), device)?.to_dtype(dtype)?,
        )?)
    };
    let b = active.len();
    let (vr, vi) = (spectra(|m| &m.re)?, spectra(|m| &m.im)?);
    let img = s.fourier.render(vr.as_tensor(), vi.as_tensor(), b)?;
    let warped = active
        .iter_mut()
        .enumerate()
        .map(|(k, m)| {
            warp(&img.get(k)?, &mut m.rng)?
                .unsqueeze(0)
                .map_err(Into::into)
        })
        .collect::<Result<Vec<_>>>()?;
    let x = normalize(viz, &Tensor::cat(&warped, 0)?)?;
    let obj = viz.objective(
        &x,
        s.layer,
        filters,
        (robust.objective, robust.tracked_tile),
    )?;
    let values: Vec<f64> = obj.to_dtype(DType::F64)?.to_vec1()?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(crate::Error::NonFinite {
            layer: viz.backbone().layer(s.layer).name.clone(),
            path: "(activation maximisation)".into(),
        });
    }
    let improved: Vec<usize> = (0..b)
        .filter(|&k| active[k].best.as_ref().is_none_or(|(a, _)| values[k] > *a))
        .collect();
    if !improved.is_empty() {
        let hwc = to_hwc(&img.detach())?;
        for k in improved {
            active[k].best = Some((values[k], hwc[k].clone()));
        }
    }
    for (m, v) in active.iter_mut().zip(&values) {
        m.trace.push(*v);
    }
    let grads = obj.neg()?.sum_all()?.backward()?;
    let (g_re, g_im) = (image_gradient(&grads, &vr)?, image_gradient(&grads, &vi)?);
    for (k, m) in active.iter_mut().enumerate() {
        let part = k * plane..(k + 1) * plane;
        m.adam.0.step(&mut m.re, &g_re[part.clone()]);
        m.adam.1.step(&mut m.im, &g_im[part.clone()]);
        let dead =
            g_re[part.clone()].iter().all(|&g| g == 0.0) && g_im[part].iter().all(|&g| g == 0.0);
        let restarting = step < robust.steps / 4;
        if restarting && dead && m.restarts < MAX_RESTARTS {
            m.restart();
        } else if !restarting && robust.plateau.is_some_and(|p| p.reached(&m.trace)) {
            m.active = false;
        }
    }
    Ok(values)
}

/// Step `step` of the maps `active`: split evenly across the `lanes` when their number
/// divides among them, each share a batch on one thread (the lanes meet once a step, not at
/// every op's joins); otherwise one batch on every thread. A map's step does not depend on
/// which maps share its batch, so both give the same values.
fn step_in_lanes(
    s: &Setup<'_>,
    lanes: Option<&Lanes>,
    step: usize,
    active: &mut [&mut MapRun],
    filters: &[usize],
) -> Result<Vec<f64>> {
    let Some(lanes) = lanes.filter(|l| active.len().is_multiple_of(l.count())) else {
        return step_maps(s, step, active, filters);
    };
    let per_lane = active.len() / lanes.count();
    let shares: Vec<Mutex<(&mut [&mut MapRun], &[usize])>> = active
        .chunks_mut(per_lane)
        .zip(filters.chunks(per_lane))
        .map(Mutex::new)
        .collect();
    let never = AtomicBool::new(false);
    let mut values = Vec::with_capacity(filters.len());
    for share in lanes.run(shares.len(), &never, &|i| {
        let mut share = shares[i].lock().unwrap_or_else(|e| e.into_inner());
        let (maps, filters) = &mut *share;
        step_maps(s, step, maps, filters)
    }) {
        values.extend(share.expect("no lane halts")?);
    }
    Ok(values)
}

/// Every filter of `config`, optimised with the robust settings `robust`: as one batch, or on
/// the CPU with several threads in even shares, one per thread ([`step_in_lanes`]); a filter
/// whose objective reaches a plateau ([`Plateau`]) leaves the batch, its image as it was.
pub(super) fn run(
    viz: &Visualizer,
    layer: LayerId,
    (config, robust): (&PatternConfig, &RobustConfig),
    on_step: &mut dyn FnMut(Step),
    should_stop: &dyn Fn() -> bool,
) -> Result<Vec<Pattern>> {
    let (w, h) = viz.preprocess().size();
    let device = viz.backbone().device().clone();
    let dtype = viz.backbone().dtype();
    let fourier = Fourier::new(h, w, &device, dtype)?;
    let plane = 3 * h * w;
    let setup = Setup {
        viz,
        layer,
        robust,
        fourier: &fourier,
        h,
        w,
        plane,
    };
    let lanes = Lanes::new(&device, config.filters.len())?;
    let mut maps: Vec<MapRun> = config
        .filters
        .iter()
        .map(|&f| MapRun::new(f, config.seed, plane, robust.lr()))
        .collect();
    let mut interrupted = false;
    for step in 0..robust.steps {
        if should_stop() {
            interrupted = true;
            break;
        }
        let filters: Vec<usize> = (0..maps.len())
            .filter(|&k| maps[k].active)
            .map(|k| config.filters[k])
            .collect();
        let mut active: Vec<&mut MapRun> = maps.iter_mut().filter(|m| m.active).collect();
        if active.is_empty() {
            break;
        }
        let values = step_in_lanes(&setup, lanes.as_ref(), step, &mut active, &filters)?;
        on_step(Step {
            done: step + 1,
            total: robust.steps,
            activation: values.iter().sum::<f64>() / values.len() as f64,
        });
    }
    // The final images, without transformations, and their objective.
    let current = |m: &MapRun| -> Result<Vec<f32>> {
        let re = Tensor::from_vec(m.re.clone(), (3, h, w), &device)?.to_dtype(dtype)?;
        let im = Tensor::from_vec(m.im.clone(), (3, h, w), &device)?.to_dtype(dtype)?;
        Ok(to_hwc(&fourier.render(&re, &im, 1)?)?.remove(0))
    };
    let final_imgs: Vec<Vec<f32>> = maps
        .iter()
        .map(|m| match (&m.best, interrupted) {
            (Some((_, img)), true) => Ok(img.clone()),
            _ => current(m),
        })
        .collect::<Result<_>>()?;
    let mut chw = Vec::with_capacity(maps.len() * plane);
    for img in &final_imgs {
        for c in 0..3 {
            chw.extend((0..h * w).map(|i| img[i * 3 + c]));
        }
    }
    let x = normalize(
        viz,
        &Tensor::from_vec(chw, (maps.len(), 3, h, w), &device)?.to_dtype(dtype)?,
    )?;
    let finals: Vec<f64> = viz
        .objective(
            &x,
            layer,
            &config.filters,
            (robust.objective, robust.tracked_tile),
        )?
        .to_dtype(DType::F64)?
        .to_vec1()?;
    Ok(config
        .filters
        .iter()
        .zip(final_imgs)
        .zip(maps)
        .zip(finals)
        .map(|(((&filter, image), m), final_activation)| Pattern {
            layer: viz.backbone().layer(layer).name.clone(),
            filter,
            mode: "robust".into(),
            seed: config.seed,
            activation_trace: m.trace,
            final_activation,
            width: w,
            height: h,
            image,
            interrupted,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    //! The image parameterisation and the warp are differentiable: their gradients match
    //! central finite differences in f64.

    use super::*;

    /// `Σ k·v_k` over a rendered and warped 10×12 image, and its gradient w.r.t. `re`.
    fn objective(re: &[f64], im: &[f64], warp_seed: Option<u64>) -> (f64, Vec<f64>) {
        let (h, w) = (10, 12);
        let f = Fourier::new(h, w, &Device::Cpu, DType::F64).unwrap();
        let vr = Var::from_vec(re.to_vec(), (3, h, w), &Device::Cpu).unwrap();
        let vi = Tensor::from_vec(im.to_vec(), (3, h, w), &Device::Cpu).unwrap();
        let img = f.render(vr.as_tensor(), &vi, 1).unwrap().get(0).unwrap();
        let img = match warp_seed {
            Some(s) => warp(&img, &mut Rng::new(s)).unwrap(),
            None => img,
        };
        let weights: Vec<f64> = (0..3 * h * w)
            .map(|i| ((i * 37) % 11) as f64 - 5.0)
            .collect();
        let wt = Tensor::from_vec(weights, (3, h, w), &Device::Cpu).unwrap();
        let obj = (img * wt).unwrap().sum_all().unwrap();
        let g = obj
            .backward()
            .unwrap()
            .get(vr.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        (obj.to_scalar::<f64>().unwrap(), g)
    }

    #[test]
    fn render_and_warp_gradients_match_finite_differences() {
        let n = 3 * 10 * 12;
        let mut rng = Rng::new(1);
        let re: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let im: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        for warp_seed in [None, Some(3), Some(4)] {
            let (_, g) = objective(&re, &im, warp_seed);
            let (mut num, mut den) = (0.0, 0.0);
            for i in (0..n).step_by(7) {
                let eps = 1e-6;
                let mut p = re.clone();
                p[i] += eps;
                let mut m = re.clone();
                m[i] -= eps;
                let fd = (objective(&p, &im, warp_seed).0 - objective(&m, &im, warp_seed).0)
                    / (2.0 * eps);
                num += (fd - g[i]).powi(2);
                den += fd * fd;
            }
            let rel = (num / den).sqrt();
            assert!(rel < 1e-6, "warp {warp_seed:?}: relative error {rel:e}");
        }
    }
}
