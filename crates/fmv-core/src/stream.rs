//! The batch pipeline every folder analysis runs on: images are decoded and preprocessed in
//! parallel (rayon) on a producer thread while the network runs on the previous batch, and
//! each image's result is handed to the caller at once, so memory stays flat however many
//! images there are.
//!
//! On the CPU the network runs in [`Lanes`]: each batch is split into one part per thread, and
//! each part goes through the whole network on one thread. Results do not depend on the split
//! (the batch-size invariant).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::sync_channel;

use candle_core::{DType, IndexOp};
use fmv_models::{LayerId, LayerRef, Pass};
use rayon::prelude::*;

use crate::decode::RgbImage;
use crate::error::Field;
use crate::error::{Error, Result};
use crate::inputs::Skipped;
use crate::lanes::Lanes;
use crate::memory::Keeps;
use crate::observer::{Event, Observer};
use crate::preprocess::load_rgb8;
use crate::topk::top_n;
use crate::visualizer::Visualizer;

/// What to keep of each image.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamSpec {
    /// Channels whose whole maps are wanted (not only their means).
    pub map_channels: Vec<usize>,
    /// Also keep the maps of each image's this many most active channels.
    pub top_maps: usize,
    /// Keep the resized 8-bit input (for overlays).
    pub keep_resized: bool,
    /// Keep each channel's maximum and where it is.
    pub peaks: bool,
    /// Run on from the layer to the logits: unchanged, then once with each of these channel
    /// sets zeroed at the layer.
    pub ablate: Option<Vec<Vec<usize>>>,
}

/// A channel's maximum over its map, and its first position in row-major order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Peak {
    /// The largest value.
    pub max: f32,
    /// Its position `(y, x)` in the map; the first one (row-major) where several are equal.
    pub argmax: (usize, usize),
}

/// One image's result.
#[derive(Debug, Clone)]
pub(crate) struct ImageOutput {
    /// Every channel's spatial mean at the layer.
    pub means: Vec<f32>,
    /// The maps of [`StreamSpec::map_channels`], each `map_h·map_w` values, row-major.
    pub maps: Vec<Vec<f32>>,
    /// The maps of the image's most active channels: `(channel, values)`, most active first.
    pub top_maps: Vec<(usize, Vec<f32>)>,
    /// The maps' size `(height, width)`.
    pub map_size: (usize, usize),
    /// The resized input, if asked for.
    pub resized: Option<RgbImage>,
    /// Every channel's peak, if asked for ([`StreamSpec::peaks`]).
    pub peaks: Vec<Peak>,
    /// The logits unchanged, then with each of [`StreamSpec::ablate`]'s sets zeroed.
    pub ablated: Vec<Vec<f32>>,
}

/// What the pipeline hands over for each file, in file order.
pub(crate) enum Item {
    /// The image went through the network.
    Image(ImageOutput),
    /// The image could not be read; the analysis decides whether that is fatal (`error`) or
    /// a skipped file (`skipped`).
    Failed {
        /// The file and the reason, as recorded when skipped.
        skipped: Skipped,
        /// The error, as returned when fatal.
        error: Error,
    },
}

type Decoded = (PathBuf, Result<(Vec<f32>, Option<RgbImage>)>);

impl Visualizer {
    /// Runs `files` through the network at `layer` in batches and calls `on_item` once per
    /// file, in order, with the observer (for its events). `done_before` and `total` only feed
    /// the progress events. Once the observer asks to stop, the images of the batch at hand are
    /// handed over, and [`Error::Stopped`] is returned unless every file was done.
    pub(crate) fn stream(
        &self,
        files: &[PathBuf],
        layer: LayerId,
        spec: &StreamSpec,
        progress: (usize, usize),
        on_item: &mut dyn FnMut(&Path, Item, &mut dyn Observer) -> Result<()>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        self.preprocess().validate()?;
        for &c in &spec.map_channels {
            self.check_channel(layer, c)?;
        }
        let (done_before, total) = progress;
        let batch_size = self.batch_size();
        let (w, h) = self.preprocess().size();
        let batch = batch_size.min(files.len()).max(1);
        // An ablation runs the whole network.
        let deepest = match spec.ablate {
            Some(_) => self.resolve(&LayerRef::Name("logits".into()))?,
            None => layer,
        };
        self.check_memory(
            deepest,
            (h, w),
            batch,
            Keeps::LargestMap,
            &format!("a batch of {batch} image(s) at {w}x{h} px"),
            (&[Field::Size, Field::BatchSize], ""),
        )?;
        let preprocess = self.preprocess().clone();
        let keep = spec.keep_resized;
        let lanes = Lanes::new(self.backbone().device(), batch_size)?;
        std::thread::scope(|scope| {
            // One decoded batch waits while the network runs on the other.
            let (tx, rx) = sync_channel::<Vec<Decoded>>(1);
            scope.spawn(move || {
                for chunk in files.chunks(batch_size) {
                    let decoded: Vec<Decoded> = chunk
                        .par_iter()
                        .map(|p| {
                            let r = load_rgb8(p, preprocess.gray16()).map(|img| {
                                let resized = preprocess.resize(&img);
                                let x = preprocess.tensor_of_resized(&resized);
                                (x, keep.then_some(resized))
                            });
                            (p.clone(), r)
                        })
                        .collect();
                    if tx.send(decoded).is_err() {
                        return; // the consumer stopped (an error): stop decoding
                    }
                }
            });
            let mut done = done_before;
            for batch in rx {
                let good: Vec<&[f32]> = batch
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().map(|(x, _)| x.as_slice()))
                    .collect();
                let mut outputs = self
                    .run_lanes(lanes.as_ref(), &good, layer, spec)?
                    .into_iter();
                for (path, r) in batch {
                    let item = match r {
                        Ok((_, resized)) => {
                            let mut out = outputs.next().expect("one output per decoded image");
                            self.check_finite(&out.means, layer, &path)?;
                            out.resized = resized;
                            Item::Image(out)
                        }
                        Err(error) => Item::Failed {
                            skipped: Skipped {
                                reason: skip_reason(&error),
                                path: path.clone(),
                            },
                            error,
                        },
                    };
                    on_item(&path, item, observer)?;
                    done += 1;
                }
                observer.on_event(&Event::Progress { done, total });
                if done < done_before + files.len() && observer.should_stop() {
                    return Err(Error::Stopped);
                }
            }
            Ok(())
        })
    }

    /// [`Self::run_batch`] with `inputs` split into contiguous parts, one per lane, run side
    /// by side; the outputs in input order.
    fn run_lanes(
        &self,
        lanes: Option<&Lanes>,
        inputs: &[&[f32]],
        layer: LayerId,
        spec: &StreamSpec,
    ) -> Result<Vec<ImageOutput>> {
        let Some(lanes) = lanes.filter(|_| inputs.len() >= 2) else {
            return self.run_batch(inputs, layer, spec);
        };
        let parts: Vec<&[&[f32]]> = inputs
            .chunks(inputs.len().div_ceil(lanes.count()))
            .collect();
        let never = AtomicBool::new(false);
        let mut outputs = Vec::with_capacity(inputs.len());
        for part in lanes.run(parts.len(), &never, &|i| {
            self.run_batch(parts[i], layer, spec)
        }) {
            outputs.extend(part.expect("no halt, so every part ran")?);
        }
        Ok(outputs)
    }

    fn run_batch(
        &self,
        inputs: &[&[f32]],
        layer: LayerId,
        spec: &StreamSpec,
    ) -> Result<Vec<ImageOutput>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let x = self.batch_tensor(inputs)?;
        let t = self.backbone().forward_taps(&x, &[layer])?.remove(0);
        let (means, maps, map_size) = if t.rank() == 4 {
            let (n, _, h, w) = t.dims4()?;
            let means: Vec<Vec<f32>> = t.mean((2, 3))?.to_dtype(DType::F32)?.to_vec2()?;
            let mut maps = vec![Vec::new(); n];
            for &c in &spec.map_channels {
                let m: Vec<Vec<f32>> = t
                    .i((.., c))?
                    .flatten_from(1)?
                    .to_dtype(DType::F32)?
                    .to_vec2()?;
                for (i, v) in m.into_iter().enumerate() {
                    maps[i].push(v);
                }
            }
            (means, maps, (h, w))
        } else {
            let logits: Vec<Vec<f32>> = t.to_dtype(DType::F32)?.to_vec2()?;
            let maps = logits
                .iter()
                .map(|l| spec.map_channels.iter().map(|&c| vec![l[c]]).collect())
                .collect();
            (logits, maps, (1, 1))
        };
        let mut peaks = vec![Vec::new(); means.len()];
        if spec.peaks && t.rank() == 4 {
            let (_, c, h, w) = t.dims4()?;
            let values: Vec<f32> = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            for (i, image) in values.chunks_exact(c * h * w).enumerate() {
                peaks[i] = image.chunks_exact(h * w).map(|m| peak(m, w)).collect();
            }
        }
        let mut ablated = vec![Vec::new(); means.len()];
        if let Some(sets) = &spec.ablate {
            let logits = self.resolve(&LayerRef::Name("logits".into()))?;
            let net = self.backbone();
            let mut run = |pass: &Pass| -> Result<()> {
                let l: Vec<Vec<f32>> = net.forward_pass(&t, pass, &[logits])?[0]
                    .to_dtype(DType::F32)?
                    .to_vec2()?;
                for (a, l) in ablated.iter_mut().zip(l) {
                    a.push(l);
                }
                Ok(())
            };
            run(&Pass::from_tap(layer))?;
            for set in sets {
                run(&Pass::from_tap(layer).zeroing(layer, set.clone()))?;
            }
        }
        let mut outputs = Vec::with_capacity(means.len());
        for (i, ((means, maps), (peaks, ablated))) in means
            .into_iter()
            .zip(maps)
            .zip(peaks.into_iter().zip(ablated))
            .enumerate()
        {
            let mut top_maps = Vec::new();
            for c in top_n(&means, spec.top_maps) {
                let values = if t.rank() == 4 {
                    t.i((i, c))?
                        .flatten_all()?
                        .to_dtype(DType::F32)?
                        .to_vec1()?
                } else {
                    vec![means[c]]
                };
                top_maps.push((c, values));
            }
            outputs.push(ImageOutput {
                means,
                maps,
                top_maps,
                map_size,
                resized: None,
                peaks,
                ablated,
            });
        }
        Ok(outputs)
    }
}

/// The peak of one `…×w` map, row-major: the first position of the largest value.
fn peak(map: &[f32], w: usize) -> Peak {
    let (mut best, mut at) = (f32::NEG_INFINITY, 0);
    for (i, &v) in map.iter().enumerate() {
        if v > best {
            (best, at) = (v, i);
        }
    }
    Peak {
        max: best,
        argmax: (at / w, at % w),
    }
}

/// The reason recorded for a file that could not be used.
fn skip_reason(e: &Error) -> String {
    match e {
        Error::NotAnImage { .. } => "not an image".into(),
        Error::Decode { reason, .. } => format!("cannot decode: {reason}"),
        Error::Io { source, .. } => format!("cannot read: {source}"),
        Error::TooLarge { size, limit, .. } => format!(
            "{}, more than the {} fmv reads from an image file",
            crate::memory::bytes(*size as u128),
            crate::memory::bytes(*limit as u128)
        ),
        Error::NotAFile { .. } => "not a regular file".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first of equal maxima, row-major, as torch's `argmax` returns it; a map that is 0
    /// everywhere peaks at its first place.
    #[test]
    fn a_peak_is_the_first_maximum() {
        let p = peak(&[1.0, 3.0, 2.0, 3.0], 2);
        assert_eq!((p.max, p.argmax), (3.0, (0, 1)));
        let p = peak(&[0.0; 6], 3);
        assert_eq!((p.max, p.argmax), (0.0, (0, 0)));
        let p = peak(&[0.0, 0.0, 0.0, 0.5, 0.0, 0.5], 3);
        assert_eq!(p.argmax, (1, 0));
    }
}
