//! Ranking (the original's `find_unique_filters`): per class, the maps that are most often
//! among each image's most active maps, minus the maps other classes share.
//!
//! The work splits in two: counting ([`Visualizer::rank_counts`], over images, resumable and
//! shardable — [`RankCounts`] is plain data that [`RankCounts::merge`] adds up exactly), and
//! selecting ([`select_unique`], a pure function of the counts).

use std::path::PathBuf;

use fmv_models::{LayerRef, WeightsId};

use crate::dataset::ImageFolder;
use crate::error::{Error, Field, Problem, Result};
use crate::inputs::{Skipped, report_listed, skip};
use crate::observer::{Dyn, Event, Observer};
use crate::stream::{Item, StreamSpec};
use crate::topk::top_n;
use crate::visualizer::Visualizer;

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
    ///
    /// ```
    /// use fmv_core::Shard;
    /// assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
    /// assert!("4/4".parse::<Shard>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        let bad = |problem| Error::invalid(Field::Shard, problem);
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad(Problem::ShardSyntax(s.to_string())))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad(Problem::ShardIndex(i.to_string())))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad(Problem::ShardCount(n.to_string())))?;
        if count == 0 || index >= count {
            return Err(bad(Problem::ShardOutOfRange { index, count }));
        }
        Ok(Shard { index, count })
    }
}

/// What [`Visualizer::rank`] computes.
///
/// ```
/// use fmv_core::{RankConfig, Shard};
/// let cfg = RankConfig::new("layer4.1".parse().unwrap())
///     .with_n_each_img(10)
///     .with_shard(Some(Shard { index: 0, count: 4 }));
/// assert_eq!(cfg.n_each_img(), 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RankConfig {
    layer: LayerRef,
    n_each_img: usize,
    n_each_class: usize,
    shard: Option<Shard>,
    strict: bool,
    resume: Option<RankCounts>,
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
            resume: None,
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

    /// Continues an interrupted run from its saved state (the last
    /// [`Event::RankCheckpoint`]), which must have been made with the same network, layer,
    /// preprocessing, parameters, classes and shard. By default, a run starts afresh.
    pub fn with_resume(mut self, state: Option<RankCounts>) -> Self {
        self.resume = state;
        self
    }

    /// The layer.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }

    /// The per-image cut-off.
    pub fn n_each_img(&self) -> usize {
        self.n_each_img
    }

    /// The per-class cut-off.
    pub fn n_each_class(&self) -> usize {
        self.n_each_class
    }

    /// The shard, if only one is processed.
    pub fn shard(&self) -> Option<Shard> {
        self.shard
    }

    fn validate(&self) -> Result<()> {
        if self.n_each_img == 0 {
            return Err(Error::invalid(Field::NEachImg, Problem::Zero));
        }
        if self.n_each_class == 0 {
            return Err(Error::invalid(Field::NEachClass, Problem::Zero));
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
    /// The weights that made the numbers, checked when merging and resuming.
    pub weights: WeightsId,
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
    /// The weights that made it.
    pub weights: WeightsId,
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
/// let sel = fmv_core::stats::select_unique(&counts, 2);
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
    /// The current version of the format; merging and resuming refuse other versions.
    pub const VERSION: u32 = 1;

    /// Checks that the numbers of a state read from a file add up: every class has one count
    /// and one sum per channel, no count exceeds the images counted, the sums are finite, and
    /// the shards lie in `0..shard_count`. [`RankCounts::merge`] and resuming call it; the
    /// `field` names the setting that supplied the state.
    pub fn check(&self, field: Field) -> Result<()> {
        let bad = |why: String| Err(Error::invalid(field, Problem::StateInconsistent(why)));
        if self.shard_count == 0 || self.shards.iter().any(|&s| s >= self.shard_count) {
            return bad(format!("shards {:?} of {}", self.shards, self.shard_count));
        }
        for c in &self.classes {
            if c.counts.len() != self.channels || c.mean_sum.len() != self.channels {
                return bad(format!(
                    "class {:?} has {} counts and {} sums for {} channels",
                    c.name,
                    c.counts.len(),
                    c.mean_sum.len(),
                    self.channels
                ));
            }
            if c.n_images > c.n_done {
                return bad(format!(
                    "class {:?} used {} images of {} processed",
                    c.name, c.n_images, c.n_done
                ));
            }
            if let Some(n) = c.counts.iter().find(|&&n| n as usize > c.n_images) {
                return bad(format!(
                    "class {:?} counts a map {n} times in {} images",
                    c.name, c.n_images
                ));
            }
            if c.mean_sum.iter().any(|s| !s.is_finite()) {
                return bad(format!("class {:?} has a sum that is not finite", c.name));
            }
        }
        Ok(())
    }

    /// Adds up shards of one ranking. Refuses parts made with different weights, layer,
    /// preprocessing, parameters, classes or shard count, the same shard twice, and parts
    /// whose numbers do not add up ([`RankCounts::check`]); the result over all shards equals
    /// one run over all images.
    pub fn merge(parts: &[RankCounts]) -> Result<RankCounts> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid(Field::Parts, Problem::NoParts))?;
        for p in parts {
            p.check(Field::Parts)?;
        }
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
            let differ = |what: &'static str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
                Error::invalid(
                    Field::Parts,
                    Problem::PartsDiffer {
                        part: i + 1,
                        what,
                        first: format!("{a:?}"),
                        this: format!("{b:?}"),
                    },
                )
            };
            if p.format_version != RankCounts::VERSION {
                return Err(differ(
                    "format version",
                    &RankCounts::VERSION,
                    &p.format_version,
                ));
            }
            if p.weights != first.weights {
                return Err(differ(
                    "weights",
                    &first.weights.as_str(),
                    &p.weights.as_str(),
                ));
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
                    return Err(Error::invalid(
                        Field::Parts,
                        Problem::ShardTwice {
                            index: *s,
                            count: p.shard_count,
                        },
                    ));
                }
                out.shards.push(*s);
            }
            for (o, c) in out.classes.iter_mut().zip(&p.classes) {
                let overflow = || {
                    Error::invalid(
                        Field::Parts,
                        Problem::StateInconsistent(format!(
                            "class {:?} counts more images than fit in a number",
                            c.name
                        )),
                    )
                };
                for (a, b) in o.counts.iter_mut().zip(&c.counts) {
                    *a = a.checked_add(*b).ok_or_else(overflow)?;
                }
                for (a, b) in o.mean_sum.iter_mut().zip(&c.mean_sum) {
                    *a += b;
                }
                o.n_images = o.n_images.checked_add(c.n_images).ok_or_else(overflow)?;
                o.n_done = o.n_done.checked_add(c.n_done).ok_or_else(overflow)?;
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
            return Err(Error::invalid(
                Field::Classes,
                Problem::TooFewClasses(self.classes.iter().map(|c| c.name.clone()).collect()),
            ));
        }
        let counts: Vec<Vec<u32>> = self.classes.iter().map(|c| c.counts.clone()).collect();
        let sel = select_unique(&counts, self.n_each_class);
        Ok(Ranking {
            weights: self.weights.clone(),
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
    /// Ranks the maps of a layer over a training ImageFolder: [`Visualizer::rank_counts`] over
    /// every image (or the config's shard), then [`RankCounts::select`].
    ///
    /// ```no_run
    /// use fmv_core::{ImageFolder, RankConfig, Visualizer};
    /// use fmv_models::{LoadOptions, Model};
    /// let viz = Visualizer::new(Model::load("resnet50.safetensors", &LoadOptions::new())?);
    /// let train = ImageFolder::open("train", None)?;
    /// let ranking = viz.rank(&train, &RankConfig::new("-2".parse()?), &mut ())?;
    /// for class in &ranking.classes {
    ///     println!("{}: {:?}", class.name, class.unique);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rank(
        &self,
        folder: &ImageFolder,
        config: &RankConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<Ranking> {
        self.rank_counts(folder, config, observer)?.select()
    }

    /// Counts, per class, how often each map is among an image's `n_each_img` most active
    /// maps, over the images of the config's shard, from scratch or from the config's saved
    /// state.
    ///
    /// The observer receives [`Event::RankCheckpoint`] after every batch (save it, and an
    /// interrupted run loses at most one batch). Stopped, the run sends a last checkpoint and
    /// returns [`Error::Stopped`].
    pub fn rank_counts(
        &self,
        folder: &ImageFolder,
        config: &RankConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<RankCounts> {
        self.rank_counts_dyn(folder, config, &mut Dyn(observer))
    }

    fn rank_counts_dyn(
        &self,
        folder: &ImageFolder,
        config: &RankConfig,
        observer: &mut dyn Observer,
    ) -> Result<RankCounts> {
        config.validate()?;
        let layer = self.resolve(config.layer())?;
        let info = self.backbone().layer(layer).clone();
        let channels = info.channels;
        if config.n_each_img >= channels {
            return Err(Error::invalid(
                Field::NEachImg,
                Problem::NotBelowChannels {
                    n: config.n_each_img,
                    channels,
                    layer: info.name.clone(),
                },
            ));
        }
        let shard = config.shard.unwrap_or(Shard { index: 0, count: 1 });
        let mut state = RankCounts {
            format_version: RankCounts::VERSION,
            weights: self.backbone().provenance()?.id,
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
        if let Some(prev) = &config.resume {
            prev.check(Field::Resume)?;
            let mut expected = state.clone();
            expected.classes = prev.classes.clone();
            expected.skipped = prev.skipped.clone();
            let names =
                |r: &RankCounts| r.classes.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            if *prev != expected || names(prev) != names(&state) {
                return Err(Error::invalid(Field::Resume, Problem::ResumeMismatch));
            }
            state = prev.clone();
        }
        report_listed(&state.skipped, config.strict, observer)?;
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
        let mut done: usize = state
            .classes
            .iter()
            .fold(0usize, |n, c| n.saturating_add(c.n_done));
        let batch = self.batch_size();
        for (k, files) in shard_files.iter().enumerate() {
            let start = state.classes[k].n_done.min(files.len());
            let remaining = &files[start..];
            let mut on_item = |_: &std::path::Path, item: Item, observer: &mut dyn Observer| {
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
                        skip(skipped, config.strict, observer, &mut state.skipped)?;
                    }
                }
                state.classes[k].n_done += 1;
                if state.classes[k].n_done.is_multiple_of(batch) {
                    observer.on_event(&Event::RankCheckpoint(&state));
                }
                Ok(())
            };
            let streamed = self.stream(
                remaining,
                layer,
                &StreamSpec::default(),
                (done, total),
                &mut on_item,
                observer,
            );
            if let Err(e) = streamed {
                if matches!(e, Error::Stopped) {
                    observer.on_event(&Event::RankCheckpoint(&state));
                }
                return Err(e);
            }
            done += remaining.len();
            observer.on_event(&Event::RankCheckpoint(&state));
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
