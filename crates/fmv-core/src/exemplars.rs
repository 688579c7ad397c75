//! Exemplars: for each map of a layer, the real images where it is most active, and where in
//! them (the dataset examples feature visualisation is read beside).
//!
//! One streaming pass keeps, per map, the `k` best images seen so far: memory holds `k` entries
//! per map, however many images there are. The order is total (score, then the image's place in
//! the [`ImageList`]), so results never depend on batches, threads or shards, and the lists of
//! shards merge exactly ([`Exemplars::merge`]).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use fmv_models::{LayerRef, WeightsId};

use crate::dataset::ImageList;
use crate::error::{Error, Field, Problem, Result};
use crate::inputs::Skipped;
use crate::inputs::{report_listed, skip};
use crate::lists::first_repeated;
use crate::observer::{Dyn, Event, Observer};
use crate::rank::Shard;
use crate::stream::{ImageOutput, Item, StreamSpec};
use crate::visualizer::Visualizer;

/// The statistic an image is ranked by for a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum ExemplarStat {
    /// The map's spatial mean: the original's statistic, images where the map fires broadly.
    #[default]
    Mean,
    /// The map's maximum: images where the map fires strongly somewhere.
    Max,
}

impl ExemplarStat {
    /// `mean` or `max`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExemplarStat::Mean => "mean",
            ExemplarStat::Max => "max",
        }
    }
}

impl std::str::FromStr for ExemplarStat {
    type Err = String;

    /// Parses `mean` or `max`.
    ///
    /// ```
    /// use fmv_core::ExemplarStat;
    /// assert_eq!("max".parse::<ExemplarStat>(), Ok(ExemplarStat::Max));
    /// assert!("median".parse::<ExemplarStat>().is_err());
    /// ```
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mean" => Ok(ExemplarStat::Mean),
            "max" => Ok(ExemplarStat::Max),
            other => Err(format!("`{other}` is not mean or max")),
        }
    }
}

/// What [`Visualizer::exemplars`] computes.
///
/// ```
/// use fmv_core::{ExemplarStat, ExemplarsConfig};
/// let cfg = ExemplarsConfig::new("features.28".parse().unwrap())
///     .with_filters(Some(vec![3, 17]))
///     .with_k(5)
///     .with_by(ExemplarStat::Max);
/// assert_eq!(cfg.k(), 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarsConfig {
    layer: LayerRef,
    filters: Option<Vec<usize>>,
    k: usize,
    by: ExemplarStat,
    shard: Option<Shard>,
    strict: bool,
    resume: Option<Exemplars>,
}

impl ExemplarsConfig {
    /// The exemplars of every map of `layer`.
    pub fn new(layer: LayerRef) -> Self {
        ExemplarsConfig {
            layer,
            filters: None,
            k: 9,
            by: ExemplarStat::Mean,
            shard: None,
            strict: false,
            resume: None,
        }
    }

    /// Only these maps, in this order (`None`: every map of the layer). By default, every map.
    pub fn with_filters(mut self, filters: Option<Vec<usize>>) -> Self {
        self.filters = filters;
        self
    }

    /// Keeps this many images per map. By default, 9.
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Ranks images by this statistic of the map. By default, the mean.
    pub fn with_by(mut self, by: ExemplarStat) -> Self {
        self.by = by;
        self
    }

    /// Processes only one shard of the images: image `j` of the list belongs to shard
    /// `j % count`. By default, all images.
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
    /// [`Event::ExemplarsCheckpoint`]), which must have been made with the same network,
    /// layer, preprocessing, parameters, image list and shard. By default, a run starts
    /// afresh.
    pub fn with_resume(mut self, state: Option<Exemplars>) -> Self {
        self.resume = state;
        self
    }

    /// The layer.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }

    /// The maps asked for (`None`: all).
    pub fn filters(&self) -> Option<&[usize]> {
        self.filters.as_deref()
    }

    /// Images kept per map.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The statistic images are ranked by.
    pub fn by(&self) -> ExemplarStat {
        self.by
    }
}

/// One image among a map's most active.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Exemplar {
    /// The image file.
    pub path: PathBuf,
    /// Its place in the [`ImageList`] (ties between equal scores go to the lower).
    pub index: usize,
    /// The map's spatial mean on it.
    pub mean: f32,
    /// The map's maximum on it.
    pub max: f32,
    /// Where the maximum is, `(y, x)` in the map's own grid ([`Exemplars::map_size`]); the
    /// first such place in row-major order.
    pub argmax: (usize, usize),
}

/// One map's exemplars.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MapExemplars {
    /// The map (channel).
    pub filter: usize,
    /// At most `k` images, most active first.
    pub top: Vec<Exemplar>,
}

/// The exemplars of a layer's maps over a list of images: the result of
/// [`Visualizer::exemplars`], and also its resumable state and a shard's part
/// ([`Exemplars::merge`]).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Exemplars {
    /// Version of this format; merging and resuming refuse other versions.
    pub format_version: u32,
    /// The weights that made the numbers.
    pub weights: WeightsId,
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// Images kept per map.
    pub k: usize,
    /// The statistic images are ranked by.
    pub by: ExemplarStat,
    /// The maps' size `(height, width)` at the preprocessing's input size.
    pub map_size: (usize, usize),
    /// The files of the whole image list (all shards), which ties refer to.
    pub files: usize,
    /// The shards these results cover (all of them for a whole run).
    pub shards: Vec<usize>,
    /// The number of shards the images were split into (1 for a whole run).
    pub shard_count: usize,
    /// Files of this run's shard already processed (used or skipped), in order; a resumed run
    /// starts after them.
    pub done: usize,
    /// Images scanned.
    pub images: usize,
    /// Per map, in the order asked.
    pub maps: Vec<MapExemplars>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// `a` before `b` in a map's list: the higher score, then the lower place in the list.
fn before(a: &Exemplar, b: &Exemplar, by: ExemplarStat) -> Ordering {
    let score = |e: &Exemplar| match by {
        ExemplarStat::Mean => e.mean,
        ExemplarStat::Max => e.max,
    };
    score(b).total_cmp(&score(a)).then(a.index.cmp(&b.index))
}

/// Puts `e` into `top` (sorted, at most `k` long) if it belongs there.
fn insert(top: &mut Vec<Exemplar>, e: Exemplar, k: usize, by: ExemplarStat) {
    if top.len() == k
        && top
            .last()
            .is_some_and(|last| before(last, &e, by) == Ordering::Less)
    {
        return;
    }
    let at = top.partition_point(|x| before(x, &e, by) == Ordering::Less);
    top.insert(at, e);
    top.truncate(k);
}

impl Exemplars {
    /// The current version of the format.
    pub const VERSION: u32 = 1;

    /// Checks that a state read from a file adds up: lists at most `k` long, sorted, with
    /// places inside the list of files and finite scores; shards inside `0..shard_count`.
    pub fn check(&self, field: Field) -> Result<()> {
        let bad = |why: String| Err(Error::invalid(field, Problem::StateInconsistent(why)));
        if self.shard_count == 0 || self.shards.iter().any(|&s| s >= self.shard_count) {
            return bad(format!("shards {:?} of {}", self.shards, self.shard_count));
        }
        if self.images > self.done || self.done > self.files {
            return bad(format!(
                "{} images used of {} processed of {} files",
                self.images, self.done, self.files
            ));
        }
        for m in &self.maps {
            if m.top.len() > self.k || m.top.len() > self.images {
                return bad(format!(
                    "map {} keeps {} images (k {}, {} scanned)",
                    m.filter,
                    m.top.len(),
                    self.k,
                    self.images
                ));
            }
            for e in &m.top {
                let (y, x) = e.argmax;
                if e.index >= self.files
                    || !e.mean.is_finite()
                    || !e.max.is_finite()
                    || y >= self.map_size.0
                    || x >= self.map_size.1
                {
                    return bad(format!("map {}: entry {}", m.filter, e.path.display()));
                }
            }
            if m.top
                .windows(2)
                .any(|w| before(&w[0], &w[1], self.by) != Ordering::Less)
            {
                return bad(format!("map {} is not in order", m.filter));
            }
        }
        Ok(())
    }

    /// Combines the parts of one run made with [`ExemplarsConfig::with_shard`]: the result over
    /// all shards equals one run over all images. Refuses parts of different runs (weights,
    /// layer, preprocessing, `k`, statistic, maps, list of files, shard count), the same shard
    /// twice, and parts whose numbers do not add up.
    pub fn merge(parts: &[Exemplars]) -> Result<Exemplars> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid(Field::Parts, Problem::NoParts))?;
        let mut out = first.clone();
        out.shards.clear();
        out.done = 0;
        out.images = 0;
        out.skipped.clear();
        out.maps.iter_mut().for_each(|m| m.top.clear());
        for (i, p) in parts.iter().enumerate() {
            p.check(Field::Parts)?;
            let differ = |what: &'static str, a: String, b: String| {
                Error::invalid(
                    Field::Parts,
                    Problem::PartsDiffer {
                        part: i + 1,
                        what,
                        first: a,
                        this: b,
                    },
                )
            };
            let filters = |e: &Exemplars| e.maps.iter().map(|m| m.filter).collect::<Vec<_>>();
            let checks: [(&'static str, String, String); 9] = [
                (
                    "format version",
                    Exemplars::VERSION.to_string(),
                    p.format_version.to_string(),
                ),
                (
                    "weights",
                    first.weights.as_str().into(),
                    p.weights.as_str().into(),
                ),
                ("layer", first.layer.clone(), p.layer.clone()),
                (
                    "preprocessing",
                    first.preprocess.clone(),
                    p.preprocess.clone(),
                ),
                ("k", first.k.to_string(), p.k.to_string()),
                ("statistic", first.by.as_str().into(), p.by.as_str().into()),
                (
                    "maps",
                    format!("{:?}", filters(first)),
                    format!("{:?}", filters(p)),
                ),
                (
                    "files",
                    format!("{} files", first.files),
                    format!("{} files", p.files),
                ),
                (
                    "shard count",
                    first.shard_count.to_string(),
                    p.shard_count.to_string(),
                ),
            ];
            for (what, a, b) in checks {
                if a != b {
                    return Err(differ(what, a, b));
                }
            }
            for &s in &p.shards {
                if out.shards.contains(&s) {
                    return Err(Error::invalid(
                        Field::Parts,
                        Problem::ShardTwice {
                            index: s,
                            count: p.shard_count,
                        },
                    ));
                }
                out.shards.push(s);
            }
            out.done += p.done;
            out.images += p.images;
            for (o, m) in out.maps.iter_mut().zip(&p.maps) {
                for e in &m.top {
                    insert(&mut o.top, e.clone(), out.k, out.by);
                }
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

    /// The exemplars of one map.
    pub fn map(&self, filter: usize) -> Option<&MapExemplars> {
        self.maps.iter().find(|m| m.filter == filter)
    }

    /// Adds one image's maps to every list.
    fn add(&mut self, path: &Path, index: usize, out: &ImageOutput) {
        for m in &mut self.maps {
            let peak = out.peaks[m.filter];
            let e = Exemplar {
                path: path.to_path_buf(),
                index,
                mean: out.means[m.filter],
                max: peak.max,
                argmax: peak.argmax,
            };
            insert(&mut m.top, e, self.k, self.by);
        }
        self.images += 1;
    }
}

impl Visualizer {
    /// For each map of a layer, the `k` images of `images` where it is most active (by the
    /// config's statistic), with the place of its maximum; one streaming pass.
    ///
    /// The observer receives [`Event::ExemplarsCheckpoint`] after every batch (save it, and an
    /// interrupted run loses at most one batch). Stopped, the run sends a last checkpoint and
    /// returns [`Error::Stopped`].
    ///
    /// ```no_run
    /// use fmv_core::{ExemplarsConfig, ImageList, Visualizer};
    /// use fmv_models::{LoadOptions, Model};
    /// let viz = Visualizer::new(Model::load("vgg16.safetensors", &LoadOptions::new())?);
    /// let photos = ImageList::open(&["photos".into()])?;
    /// let cfg = ExemplarsConfig::new("features.28".parse()?).with_filters(Some(vec![384]));
    /// let ex = viz.exemplars(&photos, &cfg, &mut ())?;
    /// for e in &ex.maps[0].top {
    ///     println!("{}: mean {}, max {} at {:?}", e.path.display(), e.mean, e.max, e.argmax);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exemplars(
        &self,
        images: &ImageList,
        config: &ExemplarsConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<Exemplars> {
        self.exemplars_dyn(images, config, &mut Dyn(observer))
    }

    fn exemplars_dyn(
        &self,
        images: &ImageList,
        config: &ExemplarsConfig,
        observer: &mut dyn Observer,
    ) -> Result<Exemplars> {
        if config.k == 0 {
            return Err(Error::invalid(Field::K, Problem::Zero));
        }
        let layer = self.resolve(&config.layer)?;
        let info = self.backbone().layer(layer).clone();
        if info.kind == fmv_models::LayerKind::Logits {
            return Err(Error::invalid(Field::Layer, Problem::NoMaps(info.name)));
        }
        let filters = match &config.filters {
            Some(f) if f.is_empty() => {
                return Err(Error::invalid(Field::Maps, Problem::NoChannels));
            }
            Some(f) => {
                if let Some(&c) = first_repeated(f) {
                    return Err(Error::invalid(Field::Maps, Problem::ChannelTwice(c)));
                }
                for &c in f {
                    self.check_channel(layer, c)?;
                }
                f.clone()
            }
            None => (0..info.channels).collect(),
        };
        let shard = config.shard.unwrap_or(Shard { index: 0, count: 1 });
        let (w, h) = self.preprocess().size();
        let map_size = self.backbone().spatial_sizes(h, w)[layer.0].unwrap_or((0, 0));
        let mut state = Exemplars {
            format_version: Exemplars::VERSION,
            weights: self.backbone().provenance()?.id,
            layer: info.name.clone(),
            preprocess: self.preprocess().name(),
            k: config.k,
            by: config.by,
            map_size,
            files: images.files.len(),
            shards: vec![shard.index],
            shard_count: shard.count,
            done: 0,
            images: 0,
            maps: filters
                .iter()
                .map(|&filter| MapExemplars {
                    filter,
                    top: Vec::new(),
                })
                .collect(),
            skipped: images.skipped.clone(),
        };
        if let Some(prev) = &config.resume {
            prev.check(Field::Resume)?;
            let mut expected = state.clone();
            expected.done = prev.done;
            expected.images = prev.images;
            expected.skipped = prev.skipped.clone();
            for (e, p) in expected.maps.iter_mut().zip(&prev.maps) {
                e.top = p.top.clone();
            }
            if *prev != expected {
                return Err(Error::invalid(Field::Resume, Problem::ResumeMismatch));
            }
            state = prev.clone();
        }
        report_listed(&state.skipped, config.strict, observer)?;
        let shard_files: Vec<(usize, PathBuf)> = images
            .files
            .iter()
            .enumerate()
            .filter(|(j, _)| j % shard.count == shard.index)
            .map(|(j, f)| (j, f.clone()))
            .collect();
        let start = state.done.min(shard_files.len());
        let (indices, files): (Vec<usize>, Vec<PathBuf>) =
            shard_files[start..].iter().cloned().unzip();
        let spec = StreamSpec {
            peaks: true,
            ..StreamSpec::default()
        };
        let batch = self.batch_size();
        let mut next = indices.iter();
        let mut on_item = |path: &Path, item: Item, observer: &mut dyn Observer| {
            let index = *next.next().expect("one place per file");
            match item {
                Item::Image(out) => state.add(path, index, &out),
                Item::Failed { skipped, .. } => {
                    skip(skipped, config.strict, observer, &mut state.skipped)?;
                }
            }
            state.done += 1;
            if state.done.is_multiple_of(batch) {
                observer.on_event(&Event::ExemplarsCheckpoint(&state));
            }
            Ok(())
        };
        let streamed = self.stream(
            &files,
            layer,
            &spec,
            (start, shard_files.len()),
            &mut on_item,
            observer,
        );
        if let Err(e) = streamed {
            if matches!(e, Error::Stopped) {
                observer.on_event(&Event::ExemplarsCheckpoint(&state));
            }
            return Err(e);
        }
        observer.on_event(&Event::ExemplarsCheckpoint(&state));
        if state.images == 0 && !shard_files.is_empty() {
            return Err(Error::NoImages {
                reason: format!(
                    "none of the {} files{} could be used",
                    shard_files.len(),
                    if shard.count > 1 {
                        format!(" of shard {}/{}", shard.index, shard.count)
                    } else {
                        String::new()
                    }
                ),
            });
        }
        Ok(state)
    }
}
