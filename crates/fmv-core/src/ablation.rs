//! Ablation: whether a class's maps matter for it. Zero the maps at the layer, run on to the
//! logits, and compare the class's logit (and the accuracy) with the network's own, and with
//! random sets of as many other maps (the causal test Captum's `LayerFeatureAblation` makes).
//!
//! Each batch runs to the layer once; every ablation runs on from the layer's value
//! ([`fmv_models::Pass::from_tap`]), so a set costs only the layers after the tap.

use fmv_models::{LayerKind, LayerRef, WeightsId};

use crate::dataset::ImageFolder;
use crate::error::{Error, Field, Problem, Result};
use crate::inputs::Skipped;
use crate::inputs::{report_listed, skip};
use crate::lists::first_repeated;
use crate::observer::{Dyn, Observer};
use crate::rng::Rng;
use crate::stream::{Item, StreamSpec};
use crate::visualizer::Visualizer;

/// What [`Visualizer::ablate`] computes.
///
/// ```
/// use fmv_core::AblationConfig;
/// let cfg = AblationConfig::new(
///     "layer4.1".parse().unwrap(),
///     vec![("cat".into(), vec![3, 17]), ("dog".into(), vec![40])],
/// )
/// .with_each(true)
/// .with_random_sets(50)
/// .with_seed(1);
/// assert_eq!(cfg.random_sets(), 50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AblationConfig {
    layer: LayerRef,
    maps: ClassMaps,
    each: bool,
    random_sets: usize,
    seed: u64,
    labels: Option<Vec<String>>,
    strict: bool,
}

/// The maps zeroed for each class.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassMaps {
    /// Per class (by name); classes not named are not ablated.
    PerClass(Vec<(String, Vec<usize>)>),
    /// The same maps for every class.
    Every(Vec<usize>),
}

impl AblationConfig {
    /// Zeroes, for each `(class, maps)`, those maps of `layer` (a class's unique maps from a
    /// ranking, or any lists). Classes of the test folder not named here are not ablated.
    pub fn new(layer: LayerRef, maps: Vec<(String, Vec<usize>)>) -> Self {
        Self::with_maps(layer, ClassMaps::PerClass(maps))
    }

    /// Zeroes the same maps for every class of the test folder.
    pub fn same_maps(layer: LayerRef, maps: Vec<usize>) -> Self {
        Self::with_maps(layer, ClassMaps::Every(maps))
    }

    fn with_maps(layer: LayerRef, maps: ClassMaps) -> Self {
        AblationConfig {
            layer,
            maps,
            each: false,
            random_sets: 20,
            seed: 0,
            labels: None,
            strict: false,
        }
    }

    /// Also zeroes every map of a class alone ([`ClassAblation::each`]). By default, off.
    pub fn with_each(mut self, each: bool) -> Self {
        self.each = each;
        self
    }

    /// Compares each class's drop with this many random sets of as many maps (0: none). By
    /// default, 20.
    pub fn with_random_sets(mut self, n: usize) -> Self {
        self.random_sets = n;
        self
    }

    /// Seeds the random sets: class `k` (its place in the test folder) draws from fmv's
    /// SplitMix64 ([`crate::rng::Rng`]) seeded with `seed + k`. By default, 0.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The names of the network's outputs, in order: a test class is the output of its name.
    /// By default, the test folder's classes in sorted order are outputs 0, 1, … (torchvision's
    /// `ImageFolder`).
    pub fn with_labels(mut self, labels: Option<Vec<String>>) -> Self {
        self.labels = labels;
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

    /// The number of random sets per class.
    pub fn random_sets(&self) -> usize {
        self.random_sets
    }

    /// The maps zeroed for a class of this name, if any.
    pub fn maps_of(&self, class: &str) -> Option<&[usize]> {
        match &self.maps {
            ClassMaps::Every(m) => Some(m),
            ClassMaps::PerClass(list) => list
                .iter()
                .find(|(c, _)| c == class)
                .map(|(_, m)| m.as_slice()),
        }
    }
}

/// The drops of random sets of maps, as many as a class's own.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RandomDrops {
    /// The sets drawn (each sorted), from the layer's maps not among the class's own.
    pub sets: Vec<Vec<usize>>,
    /// The drop of the class's mean logit with each set zeroed.
    pub drops: Vec<f64>,
    /// Their mean.
    pub mean_drop: f64,
    /// Their sample standard deviation (`n − 1`; 0 for one set).
    pub sd_drop: f64,
}

/// One class's ablation.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClassAblation {
    /// The class (a sub-folder of the test folder).
    pub name: String,
    /// The network's output for it.
    pub output: usize,
    /// The maps zeroed.
    pub maps: Vec<usize>,
    /// The class's images used.
    pub images: usize,
    /// The accuracy over the whole test set with the maps zeroed.
    pub accuracy_after: f64,
    /// The mean of the class's logit over its images.
    pub logit_before: f64,
    /// The same with the maps zeroed.
    pub logit_after: f64,
    /// `logit_before − logit_after`: how much the class's logit falls without its maps.
    pub drop: f64,
    /// The drops of random sets of as many maps (`None` without random sets, or when the
    /// layer has too few other maps).
    pub random: Option<RandomDrops>,
    /// `(drop − mean_drop) / sd_drop`: how many standard deviations the class's own maps
    /// matter more than random ones (`None` without a spread).
    pub z: Option<f64>,
    /// Each map alone: `(map, drop)`, in the order of `maps` (with
    /// [`AblationConfig::with_each`]).
    pub each: Vec<(usize, f64)>,
}

/// The result of [`Visualizer::ablate`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ablation {
    /// The weights that made it.
    pub weights: WeightsId,
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// The accuracy over the whole test set, nothing zeroed.
    pub accuracy: f64,
    /// Images of the test set used.
    pub images: usize,
    /// The seed of the random sets.
    pub seed: u64,
    /// Per class ablated, in the test folder's order.
    pub classes: Vec<ClassAblation>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Draws `m` distinct items of `pool` (a partial Fisher–Yates shuffle, `next_u64() % left`),
/// sorted.
///
/// ```
/// use fmv_core::{rng::Rng, stats::draw_set};
/// let set = draw_set(&mut Rng::new(7), &[1, 2, 4, 8, 16], 2);
/// assert_eq!(set.len(), 2);
/// assert!(set[0] < set[1]);
/// ```
pub fn draw_set(rng: &mut Rng, pool: &[usize], m: usize) -> Vec<usize> {
    let mut c = pool.to_vec();
    let m = m.min(c.len());
    for i in 0..m {
        let j = i + (rng.next_u64() % (c.len() - i) as u64) as usize;
        c.swap(i, j);
    }
    c.truncate(m);
    c.sort_unstable();
    c
}

/// The index of the largest value; the lowest of equal ones.
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Maps zeroed together.
type ChannelSet = Vec<usize>;

/// Running sums of one class's computation.
struct Tally {
    /// Images of the class.
    images: usize,
    /// Per set (baseline, then the sets): the sum of the class's logit over its images.
    logit_sums: Vec<f64>,
}

impl Visualizer {
    /// Zeroes each class's maps at the layer and measures, over an ImageFolder of test
    /// images, the accuracy and the class's mean logit before and after, against random sets
    /// of as many maps. Stopped, it returns [`Error::Stopped`].
    ///
    /// ```no_run
    /// use fmv_core::{AblationConfig, ImageFolder, Visualizer};
    /// use fmv_models::{LoadOptions, Model};
    /// let viz = Visualizer::new(Model::load("finetuned.safetensors", &LoadOptions::new())?);
    /// let test = ImageFolder::open("test", None)?;
    /// let cfg = AblationConfig::new("features.28".parse()?, vec![("cat".into(), vec![183, 85])]);
    /// for c in viz.ablate(&test, &cfg, &mut ())?.classes {
    ///     println!("{}: drop {:.3}, z {:?}", c.name, c.drop, c.z);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ablate(
        &self,
        test: &ImageFolder,
        config: &AblationConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<Ablation> {
        let observer = &mut Dyn(observer);
        let layer = self.resolve(&config.layer)?;
        let info = self.backbone().layer(layer).clone();
        if info.kind == LayerKind::Logits {
            return Err(Error::invalid(
                Field::Layer,
                Problem::NothingAfter(info.name.clone()),
            ));
        }
        let logits = self.resolve(&LayerRef::Name("logits".into()))?;
        let outputs = self.backbone().layer(logits).channels;
        // The classes ablated, their outputs and maps, in the test folder's order.
        let mut ablated = Vec::new();
        for (k, class) in test.classes.iter().enumerate() {
            let output = match &config.labels {
                Some(labels) => labels
                    .iter()
                    .position(|l| l == &class.name)
                    .ok_or_else(|| {
                        Error::invalid(
                            Field::Labels,
                            Problem::ClassNotLabelled {
                                class: class.name.clone(),
                                labels: labels.clone(),
                            },
                        )
                    })?,
                None => k,
            };
            if output >= outputs {
                return Err(Error::invalid(
                    Field::Labels,
                    Problem::ClassWithoutOutput {
                        class: class.name.clone(),
                        index: config.labels.is_none().then_some(output),
                        outputs,
                    },
                ));
            }
            if let Some(maps) = config.maps_of(&class.name) {
                if let Some(&c) = first_repeated(maps) {
                    return Err(Error::invalid(Field::Maps, Problem::ChannelTwice(c)));
                }
                for &c in maps {
                    self.check_channel(layer, c)?;
                }
                ablated.push((k, output, maps.to_vec()));
            }
        }
        report_listed(&test.skipped, config.strict, observer)?;
        let mut skipped = test.skipped.clone();
        // Per class ablated: the random sets and the single maps, zeroed on its own images.
        let extra: Vec<(Option<Vec<ChannelSet>>, Vec<ChannelSet>)> = ablated
            .iter()
            .map(|(k, _, maps)| {
                let pool: Vec<usize> = (0..info.channels).filter(|c| !maps.contains(c)).collect();
                let random = (config.random_sets > 0
                    && !maps.is_empty()
                    && pool.len() >= maps.len())
                .then(|| {
                    let mut rng = Rng::new(config.seed.wrapping_add(*k as u64));
                    (0..config.random_sets)
                        .map(|_| draw_set(&mut rng, &pool, maps.len()))
                        .collect()
                });
                let each = if config.each {
                    maps.iter().map(|&m| vec![m]).collect()
                } else {
                    Vec::new()
                };
                (random, each)
            })
            .collect();
        let total = test.n_files();
        let (mut done, mut images) = (0, 0);
        let (mut correct, mut correct_after) = (0usize, vec![0usize; ablated.len()]);
        let mut tallies: Vec<Tally> = Vec::new();
        for (k, class) in test.classes.iter().enumerate() {
            let own = ablated.iter().position(|(j, _, _)| *j == k);
            let label = match &config.labels {
                Some(labels) => labels.iter().position(|l| l == &class.name),
                None => Some(k),
            };
            // Sets: each class's maps (for the accuracy), then this class's random sets and
            // single maps.
            let mut sets: Vec<Vec<usize>> = ablated.iter().map(|(_, _, m)| m.clone()).collect();
            if let Some(i) = own {
                let (random, each) = &extra[i];
                sets.extend(random.iter().flatten().cloned());
                sets.extend(each.iter().cloned());
            }
            let n_sets = sets.len();
            let spec = StreamSpec {
                ablate: Some(sets),
                ..StreamSpec::default()
            };
            let mut tally = Tally {
                images: 0,
                logit_sums: vec![0.0; 1 + n_sets],
            };
            let mut on_item = |_: &std::path::Path, item: Item, obs: &mut dyn Observer| {
                match item {
                    Item::Image(o) => {
                        let runs = &o.ablated;
                        images += 1;
                        if label == Some(argmax(&runs[0])) {
                            correct += 1;
                        }
                        for (j, c) in correct_after.iter_mut().enumerate() {
                            if label == Some(argmax(&runs[1 + j])) {
                                *c += 1;
                            }
                        }
                        if let Some(i) = own {
                            let output = ablated[i].1;
                            tally.images += 1;
                            for (s, run) in tally.logit_sums.iter_mut().zip(runs) {
                                *s += run[output] as f64;
                            }
                        }
                    }
                    Item::Failed { skipped: s, .. } => {
                        skip(s, config.strict, obs, &mut skipped)?;
                    }
                }
                Ok(())
            };
            self.stream(
                &class.files,
                layer,
                &spec,
                (done, total),
                &mut on_item,
                observer,
            )?;
            done += class.files.len();
            if own.is_some() {
                if tally.images == 0 {
                    return Err(Error::NoImages {
                        reason: format!("class folder {} has no usable image", class.dir.display()),
                    });
                }
                tallies.push(tally);
            }
        }
        if images == 0 {
            return Err(Error::NoImages {
                reason: format!("no image of {} could be used", test.root.display()),
            });
        }
        let rate = |n: usize| n as f64 / images as f64;
        let classes = ablated
            .iter()
            .zip(&extra)
            .zip(tallies)
            .enumerate()
            .map(|(i, (((k, output, maps), (random, _)), tally))| {
                let n = tally.images as f64;
                let mean = |j: usize| tally.logit_sums[j] / n;
                let before = mean(0);
                let after = mean(1 + i);
                let drop = before - after;
                let first_extra = 1 + ablated.len();
                let random = random.as_ref().map(|sets| {
                    let drops: Vec<f64> = (0..sets.len())
                        .map(|j| before - mean(first_extra + j))
                        .collect();
                    let (mean_drop, sd_drop) = mean_sd(&drops);
                    RandomDrops {
                        sets: sets.clone(),
                        drops,
                        mean_drop,
                        sd_drop,
                    }
                });
                let z = random
                    .as_ref()
                    .filter(|r| r.sd_drop > 0.0)
                    .map(|r| (drop - r.mean_drop) / r.sd_drop);
                let first_each = first_extra + random.as_ref().map_or(0, |r| r.sets.len());
                let each = if config.each {
                    maps.iter()
                        .enumerate()
                        .map(|(j, &m)| (m, before - mean(first_each + j)))
                        .collect()
                } else {
                    Vec::new()
                };
                ClassAblation {
                    name: test.classes[*k].name.clone(),
                    output: *output,
                    maps: maps.clone(),
                    images: tally.images,
                    accuracy_after: rate(correct_after[i]),
                    logit_before: before,
                    logit_after: after,
                    drop,
                    random,
                    z,
                    each,
                }
            })
            .collect();
        Ok(Ablation {
            weights: self.backbone().provenance()?.id,
            layer: info.name.clone(),
            preprocess: self.preprocess().name(),
            accuracy: rate(correct),
            images,
            seed: config.seed,
            classes,
            skipped,
        })
    }
}

/// The mean and the sample standard deviation (`n − 1`; 0 for fewer than two values).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}
