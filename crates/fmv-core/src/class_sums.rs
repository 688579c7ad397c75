//! Class sums (the original's `sum_top_feature_maps_by_class`): per test image, the summed
//! mean activation of each class's top maps, and how well those sums separate the classes.

use std::path::PathBuf;

use fmv_models::LayerRef;

use crate::dataset::ImageFolder;
use crate::error::Result;
use crate::inputs::Skipped;
use crate::inputs::{report_listed, skip};
use crate::observer::{Dyn, Observer};
use crate::stream::{Item, StreamSpec};
use crate::visualizer::Visualizer;

/// What [`Visualizer::class_sums`] computes: the maps of each class (from a ranking's
/// [`crate::ClassRanking::unique`], or any lists), summed per test image at one layer.
///
/// ```
/// use fmv_core::ClassSumsConfig;
/// let cfg = ClassSumsConfig::new("layer4.1".parse().unwrap(), vec![("cat".into(), vec![3, 17])])
///     .with_strict(true);
/// assert_eq!(cfg.top_maps()[0].1, [3, 17]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSumsConfig {
    layer: LayerRef,
    top_maps: Vec<(String, Vec<usize>)>,
    strict: bool,
}

impl ClassSumsConfig {
    /// Sums, for each `(class, maps)` of `top_maps`, the mean activations of its maps of
    /// `layer`.
    pub fn new(layer: LayerRef, top_maps: Vec<(String, Vec<usize>)>) -> Self {
        ClassSumsConfig {
            layer,
            top_maps,
            strict: false,
        }
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

    /// The maps of each class.
    pub fn top_maps(&self) -> &[(String, Vec<usize>)] {
        &self.top_maps
    }
}

/// One test class's sums.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TestClassSums {
    /// The true class.
    pub name: String,
    /// Its images, in sorted file order (skipped ones left out).
    pub images: Vec<PathBuf>,
    /// Per top-map class (in the order of [`ClassSums::top_maps`]): one sum per image.
    pub sums: Vec<Vec<f32>>,
}

/// The result of [`Visualizer::class_sums`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClassSums {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// The maps summed for each top-map class, in order.
    pub top_maps: Vec<(String, Vec<usize>)>,
    /// Per true class, in sorted order.
    pub classes: Vec<TestClassSums>,
    /// Per top-map class: the ROC AUC of its sums for the test images of the class with the
    /// same name against all others (1 = perfectly separated, 0.5 = chance), or `None` when
    /// the test set has no such class or nothing else.
    pub separability: Vec<Option<f64>>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// The original's sum: `float32`, accumulated left to right; an empty list sums to 0.
///
/// # Panics
///
/// If a channel is not an index of `means` (fmv checks the channels against the layer first).
///
/// ```
/// assert_eq!(fmv_core::stats::sum_f32(&[1.0, 2.0, 4.0], &[2, 0]), 5.0);
/// assert_eq!(fmv_core::stats::sum_f32(&[1.0], &[]), 0.0);
/// ```
pub fn sum_f32(means: &[f32], channels: &[usize]) -> f32 {
    channels.iter().fold(0.0f32, |s, &c| s + means[c])
}

/// The ROC AUC of `positive` scores against `negative` ones (ties count one half); `None` if
/// either is empty.
///
/// ```
/// assert_eq!(fmv_core::stats::roc_auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
/// assert_eq!(fmv_core::stats::roc_auc(&[1.0], &[1.0]), Some(0.5));
/// ```
pub fn roc_auc(positive: &[f32], negative: &[f32]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in positive {
        for n in negative {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (positive.len() * negative.len()) as f64)
}

impl Visualizer {
    /// Per test image (an ImageFolder of true classes), the sum of its mean activations over
    /// each class's maps. Stopped, it returns [`crate::Error::Stopped`].
    pub fn class_sums(
        &self,
        test: &ImageFolder,
        config: &ClassSumsConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<ClassSums> {
        let observer = &mut Dyn(observer);
        let (top_maps, strict) = (config.top_maps(), config.strict);
        let id = self.resolve(config.layer())?;
        for (_, maps) in top_maps {
            for &c in maps {
                self.check_channel(id, c)?;
            }
        }
        report_listed(&test.skipped, strict, observer)?;
        let mut skipped = test.skipped.clone();
        let total = test.n_files();
        let mut done = 0;
        let mut classes = Vec::new();
        for class in &test.classes {
            let mut images = Vec::new();
            let mut sums = vec![Vec::new(); top_maps.len()];
            let mut on_item = |path: &std::path::Path, item: Item, obs: &mut dyn Observer| {
                match item {
                    Item::Image(o) => {
                        images.push(path.to_path_buf());
                        for (s, (_, maps)) in sums.iter_mut().zip(top_maps) {
                            s.push(sum_f32(&o.means, maps));
                        }
                    }
                    Item::Failed { skipped: s, .. } => skip(s, strict, obs, &mut skipped)?,
                }
                Ok(())
            };
            self.stream(
                &class.files,
                id,
                &StreamSpec::default(),
                (done, total),
                &mut on_item,
                observer,
            )?;
            done += class.files.len();
            classes.push(TestClassSums {
                name: class.name.clone(),
                images,
                sums,
            });
        }
        let separability = top_maps
            .iter()
            .enumerate()
            .map(|(k, (name, _))| {
                let (mut pos, mut neg) = (Vec::new(), Vec::new());
                for c in &classes {
                    if &c.name == name {
                        pos.extend_from_slice(&c.sums[k]);
                    } else {
                        neg.extend_from_slice(&c.sums[k]);
                    }
                }
                roc_auc(&pos, &neg)
            })
            .collect();
        Ok(ClassSums {
            layer: self.backbone().layer(id).name.clone(),
            preprocess: self.preprocess().name(),
            top_maps: top_maps.to_vec(),
            classes,
            separability,
            skipped,
        })
    }
}
