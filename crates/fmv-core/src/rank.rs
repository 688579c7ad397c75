//! Ranking (the original's `find_unique_filters`): per class, the maps that are most often
//! among each image's most active maps, minus the maps other classes share.
//!
//! The work splits in two: counting ([`Visualizer::rank_counts`], over images, resumable and
//! shardable — [`RankCounts`] is plain data that [`RankCounts::merge`] adds up exactly), and
//! selecting ([`select_unique`], a pure function of the counts).

use std::path::PathBuf;

use fmv_models::LayerRef;

use crate::dataset::ImageFolder;
use crate::error::{Error, Result};
use crate::inputs::Skipped;
use crate::stream::{Item, StreamSpec};
use crate::topk::top_n;
use crate::visualizer::{Event, Visualizer};

/// Which part of every class a run processes: image `j` of a class (sorted order) belongs to
/// shard `j % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// The number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// Parses `I/N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidArgument {
            name: "--shard",
            reason,
        };
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad(format!("expected I/N (e.g. 0/4), got `{s}`")))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{i}` is not a shard number")))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{n}` is not a shard count")))?;
        if count == 0 || index >= count {
            return Err(bad(format!("shard {index}/{count}: need 0 <= I < N")));
        }
        Ok(Shard { index, count })
    }
}

/// What [`Visualizer::rank`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankConfig {
    layer: LayerRef,
    n_each_img: usize,
    n_each_class: usize,
    shard: Option<Shard>,
    strict: bool,
}

impl RankConfig {
    /// Ranks the maps of `layer`.
    pub fn new(layer: LayerRef) -> Self {
        RankConfig {
            layer,
            n_each_img: 25,
            n_each_class: 25,
            shard: None,
            strict: false,
        }
    }

    /// Counts a map for an image when it is among the image's `n` most active maps. By
    /// default, 25 (the original's `n_each_img`). Ranking refuses an `n` that is not below the
    /// layer's channel count: every map would then count for every image.
    pub fn with_n_each_img(mut self, n: usize) -> Self {
        self.n_each_img = n;
        self
    }

    /// Keeps each class's `n` most frequent maps before removing shared ones. By default, 25
    /// (the original's `n_each_class`).
    pub fn with_n_each_class(mut self, n: usize) -> Self {
        self.n_each_class = n;
        self
    }

    /// Processes only one shard of every class. By default, all images.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Fails on the first file that cannot be used instead of skipping it. By default, off.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The layer.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }

    fn validate(&self) -> Result<()> {
        if self.n_each_img == 0 {
            return Err(Error::InvalidArgument {
                name: "--n-each-img",
                reason: "must be at least 1".into(),
            });
        }
        if self.n_each_class == 0 {
            return Err(Error::InvalidArgument {
                name: "--n-each-class",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// One class's counts.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClassCounts {
    /// The class name.
    pub name: String,
    /// Per channel: the number of images in whose top `n_each_img` it was.
    pub counts: Vec<u32>,
    /// Per channel: the sum over images of its mean activation.
    pub mean_sum: Vec<f64>,
    /// Images used.
    pub n_images: usize,
    /// Files of this run's shard already processed (used or skipped), in order; a resumed run
    /// starts after them.
    pub n_done: usize,
}

/// The counting state of a ranking run: everything needed to resume it, to merge it with the
/// other shards, and to select the maps.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RankCounts {
    /// Version of this format; merging refuses other versions.
    pub format_version: u32,
    /// What made the numbers, checked when merging: the caller's description of the weights
    /// (the CLI uses the weights file's sha256).
    pub weights: String,
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// Channels of the layer.
    pub channels: usize,
    /// The per-image cut-off.
    pub n_each_img: usize,
    /// The per-class cut-off.
    pub n_each_class: usize,
    /// The shards these counts cover (all of them for a whole run).
    pub shards: Vec<usize>,
    /// The number of shards the images were split into (1 for a whole run).
    pub shard_count: usize,
    /// Per class, in order.
    pub classes: Vec<ClassCounts>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// The current version of [`RankCounts`].
pub const RANK_COUNTS_VERSION: u32 = 1;

/// One class's result.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClassRanking {
    /// The class name.
    pub name: String,
    /// The class-unique maps, most frequent first (the original's result).
    pub unique: Vec<usize>,
    /// The class's `n_each_class` most frequent maps, before shared ones are removed.
    pub top: Vec<usize>,
    /// Per channel: the number of images in whose top `n_each_img` it was.
    pub counts: Vec<u32>,
    /// Per channel: its mean activation over the class's images (how selective it is).
    pub mean_activation: Vec<f32>,
    /// Images used.
    pub n_images: usize,
}

/// The result of a ranking.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ranking {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// The per-image cut-off.
    pub n_each_img: usize,
    /// The per-class cut-off.
    pub n_each_class: usize,
    /// Per class, in order.
    pub classes: Vec<ClassRanking>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Selects each class's maps from its counts, as the original does: per class the
/// `n_each_class` channels with the highest counts (ties: lower channel first; channels never
/// counted are not candidates), then without the channels in any other class's list.
/// Returns `(top, unique)` per class, in order.
///
/// ```
/// let counts = vec![vec![3, 0, 2, 2], vec![0, 3, 2, 1]];
/// let sel = fmv_core::select_unique(&counts, 2);
/// assert_eq!(sel[0], (vec![0, 2], vec![0]));
/// assert_eq!(sel[1], (vec![1, 2], vec![1]));
/// ```
pub fn select_unique(counts: &[Vec<u32>], n_each_class: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let tops: Vec<Vec<usize>> = counts
        .iter()
        .map(|c| {
            let mut t = top_n(c, n_each_class);
            t.retain(|&i| c[i] > 0);
            t
        })
        .collect();
    tops.iter()
        .enumerate()
        .map(|(k, top)| {
            let unique = top
                .iter()
                .copied()
                .filter(|ch| {
                    !tops
                        .iter()
                        .enumerate()
                        .any(|(j, other)| j != k && other.contains(ch))
                })
                .collect();
            (top.clone(), unique)
        })
        .collect()
}

impl RankCounts {
    /// Adds up shards of one ranking. Refuses parts made with different weights, layer,
    /// preprocessing, parameters, classes or shard count, and the same shard twice; the result
    /// over all shards equals one run over all images.
    pub fn merge(parts: &[RankCounts]) -> Result<RankCounts> {
        let first = parts.first().ok_or_else(|| Error::InvalidArgument {
            name: "--merge",
            reason: "no partial results given".into(),
        })?;
        let mut out = first.clone();
        out.shards.clear();
        for c in &mut out.classes {
            c.counts.iter_mut().for_each(|v| *v = 0);
            c.mean_sum.iter_mut().for_each(|v| *v = 0.0);
            c.n_images = 0;
            c.n_done = 0;
        }
        out.skipped.clear();
        for (i, p) in parts.iter().enumerate() {
            let differ = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
                Error::InvalidArgument {
                    name: "--merge",
                    reason: format!(
                        "part {} was made with {what} {b:?}, part 1 with {a:?}; only parts of one ranking can be merged",
                        i + 1
                    ),
                }
            };
            if p.format_version != RANK_COUNTS_VERSION {
                return Err(differ(
                    "format version",
                    &RANK_COUNTS_VERSION,
                    &p.format_version,
                ));
            }
            if p.weights != first.weights {
                return Err(differ("weights", &first.weights, &p.weights));
            }
            if p.layer != first.layer {
                return Err(differ("layer", &first.layer, &p.layer));
            }
            if p.preprocess != first.preprocess {
                return Err(differ("preprocessing", &first.preprocess, &p.preprocess));
            }
            if (p.n_each_img, p.n_each_class) != (first.n_each_img, first.n_each_class) {
                return Err(differ(
                    "(n_each_img, n_each_class)",
                    &(first.n_each_img, first.n_each_class),
                    &(p.n_each_img, p.n_each_class),
                ));
            }
            if p.shard_count != first.shard_count {
                return Err(differ("shard count", &first.shard_count, &p.shard_count));
            }
            let names =
                |r: &RankCounts| r.classes.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            if names(p) != names(first) || p.channels != first.channels {
                return Err(differ("classes", &names(first), &names(p)));
            }
            for s in &p.shards {
                if out.shards.contains(s) {
                    return Err(Error::InvalidArgument {
                        name: "--merge",
                        reason: format!("shard {s}/{} is given twice", p.shard_count),
                    });
                }
                out.shards.push(*s);
            }
            for (o, c) in out.classes.iter_mut().zip(&p.classes) {
                for (a, b) in o.counts.iter_mut().zip(&c.counts) {
                    *a += b;
                }
                for (a, b) in o.mean_sum.iter_mut().zip(&c.mean_sum) {
                    *a += b;
                }
                o.n_images += c.n_images;
                o.n_done += c.n_done;
            }
            out.skipped.extend(p.skipped.iter().cloned());
        }
        out.shards.sort_unstable();
        out.skipped
            .sort_by(|a, b| (&a.path, &a.reason).cmp(&(&b.path, &b.reason)));
        // A file the listing left out is listed by every shard.
        out.skipped.dedup();
        Ok(out)
    }

    /// Whether every shard is included.
    pub fn is_complete(&self) -> bool {
        self.shards.len() == self.shard_count
    }

    /// Selects the maps ([`select_unique`]).
    pub fn select(&self) -> Result<Ranking> {
        if self.classes.len() < 2 {
            return Err(Error::InvalidArgument {
                name: "--classes",
                reason: format!(
                    "ranking finds maps unique to a class among several; found {} class(es): {}",
                    self.classes.len(),
                    self.classes
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let counts: Vec<Vec<u32>> = self.classes.iter().map(|c| c.counts.clone()).collect();
        let sel = select_unique(&counts, self.n_each_class);
        Ok(Ranking {
            layer: self.layer.clone(),
            preprocess: self.preprocess.clone(),
            n_each_img: self.n_each_img,
            n_each_class: self.n_each_class,
            classes: self
                .classes
                .iter()
                .zip(sel)
                .map(|(c, (top, unique))| ClassRanking {
                    name: c.name.clone(),
                    unique,
                    top,
                    counts: c.counts.clone(),
                    mean_activation: c
                        .mean_sum
                        .iter()
                        .map(|s| (s / c.n_images.max(1) as f64) as f32)
                        .collect(),
                    n_images: c.n_images,
                })
                .collect(),
            skipped: self.skipped.clone(),
        })
    }
}

impl Visualizer {
    /// Ranks the maps of a layer over a training ImageFolder: the whole run of
    /// [`Visualizer::rank_counts`] then [`RankCounts::select`].
    pub fn rank(
        &self,
        folder: &ImageFolder,
        config: &RankConfig,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Ranking> {
        self.rank_counts(folder, config, "", None, on_event, &mut |_| Ok(()))?
            .select()
    }

    /// Counts, per class, how often each map is among an image's `n_each_img` most active
    /// maps, over the images of `config`'s shard.
    ///
    /// `weights` describes the network for [`RankCounts::merge`]'s checks. `resume` continues
    /// an interrupted run from its saved state. `on_checkpoint` receives the state after every
    /// batch (the CLI saves it, so an interrupted run loses at most one batch).
    pub fn rank_counts(
        &self,
        folder: &ImageFolder,
        config: &RankConfig,
        weights: &str,
        resume: Option<RankCounts>,
        on_event: &mut dyn FnMut(&Event),
        on_checkpoint: &mut dyn FnMut(&RankCounts) -> Result<()>,
    ) -> Result<RankCounts> {
        config.validate()?;
        let layer = self.resolve(config.layer())?;
        let info = self.backbone().layer(layer).clone();
        let channels = info.channels;
        if config.n_each_img >= channels {
            return Err(Error::InvalidArgument {
                name: "--n-each-img",
                reason: format!(
                    "{} is not below the {channels} channels of `{}`: every map would be among \
                     every image's top maps, so none could be unique to a class; use fewer \
                     than {channels} (the original's default is 25)",
                    config.n_each_img, info.name
                ),
            });
        }
        let shard = config.shard.unwrap_or(Shard { index: 0, count: 1 });
        let mut state = RankCounts {
            format_version: RANK_COUNTS_VERSION,
            weights: weights.to_string(),
            layer: info.name.clone(),
            preprocess: self.preprocess().name(),
            channels,
            n_each_img: config.n_each_img,
            n_each_class: config.n_each_class,
            shards: vec![shard.index],
            shard_count: shard.count,
            classes: folder
                .classes
                .iter()
                .map(|c| ClassCounts {
                    name: c.name.clone(),
                    counts: vec![0; channels],
                    mean_sum: vec![0.0; channels],
                    n_images: 0,
                    n_done: 0,
                })
                .collect(),
            skipped: folder.skipped.clone(),
        };
        if config.strict
            && let Some(s) = state.skipped.first()
        {
            return Err(strict_error(s));
        }
        if let Some(prev) = resume {
            let mut expected = state.clone();
            expected.classes = prev.classes.clone();
            expected.skipped = prev.skipped.clone();
            if prev != expected {
                return Err(Error::InvalidArgument {
                    name: "--resume",
                    reason: "the saved partial result was made with other weights, layer, preprocessing, parameters, classes or shard; delete it or change -o".into(),
                });
            }
            state = prev;
        }
        let shard_files: Vec<Vec<PathBuf>> = folder
            .classes
            .iter()
            .map(|c| {
                c.files
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| j % shard.count == shard.index)
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect();
        let total: usize = shard_files.iter().map(Vec::len).sum();
        let mut done: usize = state.classes.iter().map(|c| c.n_done).sum();
        let batch = self.batch_size();
        for (k, files) in shard_files.iter().enumerate() {
            let start = state.classes[k].n_done.min(files.len());
            let remaining = &files[start..];
            let mut on_item = |_: &std::path::Path, item: Item| -> Result<()> {
                match item {
                    Item::Image(out) => {
                        let class = &mut state.classes[k];
                        for c in top_n(&out.means, config.n_each_img) {
                            class.counts[c] += 1;
                        }
                        for (s, m) in class.mean_sum.iter_mut().zip(&out.means) {
                            *s += *m as f64;
                        }
                        class.n_images += 1;
                    }
                    Item::Failed { skipped, .. } => {
                        if config.strict {
                            return Err(strict_error(&skipped));
                        }
                        state.skipped.push(skipped);
                    }
                }
                state.classes[k].n_done += 1;
                if state.classes[k].n_done.is_multiple_of(batch) {
                    on_checkpoint(&state)?;
                }
                Ok(())
            };
            self.stream(
                remaining,
                layer,
                &StreamSpec::default(),
                (done, total),
                &mut on_item,
                on_event,
            )?;
            done += remaining.len();
            on_checkpoint(&state)?;
            if state.classes[k].n_images == 0 && !files.is_empty() {
                return Err(Error::NoImages {
                    reason: format!(
                        "class folder {} has no usable image{}",
                        folder.classes[k].dir.display(),
                        if shard.count > 1 {
                            format!(" in shard {}/{}", shard.index, shard.count)
                        } else {
                            String::new()
                        }
                    ),
                });
            }
        }
        Ok(state)
    }
}

/// The error `--strict` turns a skipped file into.
pub(crate) fn strict_error(s: &Skipped) -> Error {
    Error::Decode {
        path: s.path.clone(),
        reason: format!("{} (--strict refuses to skip files)", s.reason),
    }
}
