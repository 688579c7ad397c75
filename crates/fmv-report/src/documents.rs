//! The JSON documents fmv writes, as typed `serde` structs: the ranking, class sums, exemplars
//! and ablation (the contracts of `fmv rank --json`, `fmv class-sums --json`, `fmv exemplars
//! --json` and `fmv ablate --json`, which the report's `results.json` embeds), and what they
//! share. Paths are written as the platform shows them.

use std::path::Path;

use fmv_core::{Ablation, Activations, ClassSums, Exemplars, Ranking, Skipped};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A path as the JSON documents show it.
pub fn show(path: &Path) -> String {
    path.display().to_string()
}

/// Values per class, in the classes' order, written as a JSON object `{class: value}` (and read
/// back in the file's order).
#[derive(Debug, Clone, PartialEq)]
pub struct ByClass<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for ByClass<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ByClass<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = ByClass<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with one entry per class")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(ByClass(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

impl<T> ByClass<T> {
    /// One value per item, keyed by the item's name.
    pub fn from_items<I>(items: &[I], name: impl Fn(&I) -> &str, value: impl Fn(&I) -> T) -> Self {
        ByClass(
            items
                .iter()
                .map(|i| (name(i).to_string(), value(i)))
                .collect(),
        )
    }
}

/// f32 values as f64, exactly: the documents write them with f64's shortest representation,
/// as they always have.
pub fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}

/// A file left out of an analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedDocument {
    /// The file.
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

impl SkippedDocument {
    /// The documents of some skipped files.
    pub fn all(skipped: &[Skipped]) -> Vec<SkippedDocument> {
        skipped
            .iter()
            .map(|s| SkippedDocument {
                path: show(&s.path),
                reason: s.reason.clone(),
            })
            .collect()
    }
}

/// A ranking: `fmv rank --json`, and `results.json`'s `rank`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankDocument {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// Per class, the maps unique to it, most frequent first.
    pub classes: ByClass<Vec<usize>>,
    /// Per class and channel, the images in whose top maps it was.
    pub counts: ByClass<Vec<u32>>,
    /// Per class, the images used.
    pub images: ByClass<usize>,
    /// Files left out.
    pub skipped: Vec<SkippedDocument>,
    /// The per-image cut-off.
    pub n_each_img: usize,
    /// The per-class cut-off.
    pub n_each_class: usize,
    /// Per class, its most frequent maps before shared ones were removed.
    pub top_before_filter: ByClass<Vec<usize>>,
    /// Per class and channel, the mean activation over the class's images (f32 values,
    /// written as f64).
    pub mean_activation: ByClass<Vec<f64>>,
    /// The sha256 of the weights that made it (absent from rankings of fmv before 2026-12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
}

impl From<&Ranking> for RankDocument {
    fn from(r: &Ranking) -> Self {
        RankDocument {
            layer: r.layer.clone(),
            preprocess: r.preprocess.clone(),
            classes: ByClass::from_items(&r.classes, |c| &c.name, |c| c.unique.clone()),
            counts: ByClass::from_items(&r.classes, |c| &c.name, |c| c.counts.clone()),
            images: ByClass::from_items(&r.classes, |c| &c.name, |c| c.n_images),
            skipped: SkippedDocument::all(&r.skipped),
            n_each_img: r.n_each_img,
            n_each_class: r.n_each_class,
            top_before_filter: ByClass::from_items(&r.classes, |c| &c.name, |c| c.top.clone()),
            mean_activation: ByClass::from_items(
                &r.classes,
                |c| &c.name,
                |c| widen(&c.mean_activation),
            ),
            weights: Some(r.weights.as_str().to_string()),
        }
    }
}

/// Class sums: `fmv class-sums --json`, and `results.json`'s `class_sums`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSumsDocument {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// Per true class, per class's maps: one sum per image, in file order (f32 values,
    /// written as f64).
    pub sums: ByClass<ByClass<Vec<f64>>>,
    /// Per true class, its images.
    pub images: ByClass<Vec<String>>,
    /// Per class, its maps.
    pub top_maps: ByClass<Vec<usize>>,
    /// Per class's maps, the ROC AUC of its own images against the others (null when
    /// undefined).
    pub separability: ByClass<Option<f64>>,
    /// Files left out.
    pub skipped: Vec<SkippedDocument>,
}

impl From<&ClassSums> for ClassSumsDocument {
    fn from(s: &ClassSums) -> Self {
        let maps_of = |k: usize| s.top_maps[k].0.clone();
        ClassSumsDocument {
            layer: s.layer.clone(),
            preprocess: s.preprocess.clone(),
            sums: ByClass::from_items(
                &s.classes,
                |c| &c.name,
                |c| {
                    ByClass(
                        c.sums
                            .iter()
                            .enumerate()
                            .map(|(k, v)| (maps_of(k), widen(v)))
                            .collect(),
                    )
                },
            ),
            images: ByClass::from_items(
                &s.classes,
                |c| &c.name,
                |c| c.images.iter().map(|p| show(p)).collect(),
            ),
            top_maps: ByClass(s.top_maps.clone()),
            separability: ByClass(
                s.top_maps
                    .iter()
                    .zip(&s.separability)
                    .map(|((k, _), a)| (k.clone(), *a))
                    .collect(),
            ),
            skipped: SkippedDocument::all(&s.skipped),
        }
    }
}

/// The maps of each class a command reads (`class-sums --top-maps`): the JSON of `fmv rank`,
/// which records the layer, preprocessing and weights that made it, or a plain
/// `{"class": [channel indices]}`, which records nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMaps {
    /// Each class's maps, in the file's order.
    pub maps: Vec<(String, Vec<usize>)>,
    /// What made them, when the file is a ranking.
    pub made_by: Option<MadeBy>,
}

/// The layer, preprocessing and weights a ranking was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeBy {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// The sha256 of the weights (absent from older rankings).
    pub weights: Option<String>,
}

/// How a file's maps were made otherwise than the run that reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Another layer: the channels are another layer's, so the maps mean nothing here.
    Layer {
        /// The file's.
        file: String,
        /// The run's.
        run: String,
    },
    /// Other weights: the channels may not mean the same.
    Weights {
        /// The file's sha256.
        file: String,
        /// The run's.
        run: String,
    },
    /// Another preprocessing: the same channels, seen through other inputs.
    Preprocess {
        /// The file's.
        file: String,
        /// The run's.
        run: String,
    },
    /// A ranking that does not record its weights (made by fmv before 2026-12).
    UnknownWeights,
}

impl ClassMaps {
    /// Reads the JSON of `fmv rank` or a plain `{"class": [channel indices]}`; the error says
    /// what is wrong.
    ///
    /// ```
    /// use fmv_report::documents::ClassMaps;
    /// let plain = ClassMaps::parse(br#"{"cat": [3, 17], "dog": []}"#).unwrap();
    /// assert_eq!(plain.maps[0], ("cat".to_string(), vec![3, 17]));
    /// assert!(plain.made_by.is_none());
    /// assert!(ClassMaps::parse(br#"{"cat": [-1]}"#).is_err());
    /// ```
    pub fn parse(json: &[u8]) -> Result<ClassMaps, String> {
        /// The fields of `fmv rank`'s JSON that say what the maps are and what made them.
        #[derive(Deserialize)]
        struct Ranked {
            classes: ByClass<serde_json::Value>,
            layer: String,
            preprocess: String,
            #[serde(default)]
            weights: Option<String>,
        }
        /// Any document with the maps under `classes`, recording nothing else.
        #[derive(Deserialize)]
        struct Wrapped {
            classes: ByClass<serde_json::Value>,
        }
        let expected = "expected {\"class\": [channel indices]} or the JSON of `fmv rank`";
        let (classes, made_by) = if let Ok(r) = serde_json::from_slice::<Ranked>(json) {
            let made_by = MadeBy {
                layer: r.layer,
                preprocess: r.preprocess,
                weights: r.weights,
            };
            (r.classes, Some(made_by))
        } else if let Ok(w) = serde_json::from_slice::<Wrapped>(json) {
            (w.classes, None)
        } else {
            let plain = serde_json::from_slice::<ByClass<serde_json::Value>>(json)
                .map_err(|e| format!("{expected} ({e})"))?;
            (plain, None)
        };
        let maps = classes
            .0
            .into_iter()
            .map(|(class, v)| {
                serde_json::from_value::<Vec<usize>>(v)
                    .map(|maps| (class.clone(), maps))
                    .map_err(|_| format!("`{class}` must be a list of channel indices"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ClassMaps { maps, made_by })
    }

    /// How the file's maps were made otherwise than a run at `layer`, with `preprocess` and
    /// the weights `weights` (sha256); nothing for a plain file, which records nothing.
    pub fn differences(&self, layer: &str, preprocess: &str, weights: &str) -> Vec<Difference> {
        let Some(made) = &self.made_by else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if made.layer != layer {
            out.push(Difference::Layer {
                file: made.layer.clone(),
                run: layer.to_string(),
            });
        }
        match &made.weights {
            None => out.push(Difference::UnknownWeights),
            Some(w) if w != weights => out.push(Difference::Weights {
                file: w.clone(),
                run: weights.to_string(),
            }),
            Some(_) => {}
        }
        if made.preprocess != preprocess {
            out.push(Difference::Preprocess {
                file: made.preprocess.clone(),
                run: preprocess.to_string(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ranking's maps record what made them, and a run at another layer, with other weights
    /// or another preprocessing sees each difference; a plain file records nothing.
    #[test]
    fn a_rankings_maps_know_what_made_them() {
        let ranking = br#"{"layer": "layer4.1", "preprocess": "imagenet", "weights": "abc",
            "classes": {"cat": [3], "dog": [5, 1]}, "counts": {}}"#;
        let maps = ClassMaps::parse(ranking).unwrap();
        assert_eq!(
            maps.maps,
            [("cat".into(), vec![3]), ("dog".into(), vec![5, 1])]
        );
        assert!(maps.differences("layer4.1", "imagenet", "abc").is_empty());
        assert_eq!(
            maps.differences("layer4.2", "original", "xyz"),
            [
                Difference::Layer {
                    file: "layer4.1".into(),
                    run: "layer4.2".into()
                },
                Difference::Weights {
                    file: "abc".into(),
                    run: "xyz".into()
                },
                Difference::Preprocess {
                    file: "imagenet".into(),
                    run: "original".into()
                },
            ]
        );
        let old = br#"{"layer": "layer4.1", "preprocess": "imagenet", "classes": {"cat": [3]}}"#;
        let old = ClassMaps::parse(old).unwrap();
        assert_eq!(
            old.differences("layer4.1", "imagenet", "abc"),
            [Difference::UnknownWeights]
        );
        let plain = ClassMaps::parse(br#"{"cat": [3]}"#).unwrap();
        assert!(plain.differences("x", "y", "z").is_empty());
        for bad in [&b"[1, 2]"[..], b"not json", br#"{"cat": "3"}"#] {
            assert!(
                ClassMaps::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Classes keep their order (not sorted) both ways.
    #[test]
    fn by_class_keeps_the_classes_order() {
        let v = ByClass(vec![("zebra".to_string(), 1), ("ant".to_string(), 2)]);
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"zebra":1,"ant":2}"#);
        let back: ByClass<i32> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}

/// One image among a map's exemplars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarDocument {
    /// The image file.
    pub path: String,
    /// The map's spatial mean on it (an f32 value, written as f64).
    pub mean: f64,
    /// The map's maximum on it (an f32 value, written as f64).
    pub max: f64,
    /// Where the maximum is, `[y, x]` in the map's own grid.
    pub argmax: [usize; 2],
}

/// One map's exemplars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapExemplarsDocument {
    /// The map (channel).
    pub filter: usize,
    /// Its most active images, most active first.
    pub top: Vec<ExemplarDocument>,
}

/// Exemplars: `fmv exemplars --json`, and `results.json`'s `exemplars`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarsDocument {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// Images kept per map.
    pub k: usize,
    /// `mean` or `max`: what the images are ranked by.
    pub by: String,
    /// Per map, in the order asked.
    pub maps: Vec<MapExemplarsDocument>,
    /// Images scanned.
    pub images: usize,
    /// Files left out.
    pub skipped: Vec<SkippedDocument>,
    /// The maps' size `[height, width]`, the grid `argmax` refers to.
    pub map_size: [usize; 2],
    /// The sha256 of the weights that made it.
    pub weights: String,
}

impl From<&Exemplars> for ExemplarsDocument {
    fn from(e: &Exemplars) -> Self {
        ExemplarsDocument {
            layer: e.layer.clone(),
            preprocess: e.preprocess.clone(),
            k: e.k,
            by: e.by.as_str().to_string(),
            maps: e
                .maps
                .iter()
                .map(|m| MapExemplarsDocument {
                    filter: m.filter,
                    top: m
                        .top
                        .iter()
                        .map(|x| ExemplarDocument {
                            path: show(&x.path),
                            mean: x.mean as f64,
                            max: x.max as f64,
                            argmax: [x.argmax.0, x.argmax.1],
                        })
                        .collect(),
                })
                .collect(),
            images: e.images,
            skipped: SkippedDocument::all(&e.skipped),
            map_size: [e.map_size.0, e.map_size.1],
            weights: e.weights.as_str().to_string(),
        }
    }
}

/// The spread of random sets' drops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomDropsDocument {
    /// How many sets were drawn.
    pub sets: usize,
    /// The mean of their drops.
    pub mean_drop: f64,
    /// The sample standard deviation of their drops.
    pub sd_drop: f64,
}

/// One map zeroed alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapDropDocument {
    /// The map.
    pub filter: usize,
    /// The drop of the class's mean logit.
    pub drop: f64,
}

/// One class's ablation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAblationDocument {
    /// The maps zeroed.
    pub maps: Vec<usize>,
    /// The class's images used.
    pub images: usize,
    /// The accuracy over the whole test set with the maps zeroed.
    pub accuracy_after: f64,
    /// The class's mean logit over its images.
    pub logit_before: f64,
    /// The same with the maps zeroed.
    pub logit_after: f64,
    /// `logit_before − logit_after`.
    pub drop: f64,
    /// Random sets of as many maps (null without them).
    pub random: Option<RandomDropsDocument>,
    /// `(drop − mean_drop) / sd_drop` (null without a spread).
    pub z: Option<f64>,
    /// Each map alone (only with `--each`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<Vec<MapDropDocument>>,
}

/// Ablation: `fmv ablate --json`, and `results.json`'s `ablation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationDocument {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// The accuracy over the whole test set, nothing zeroed.
    pub accuracy: f64,
    /// Per class ablated.
    pub classes: ByClass<ClassAblationDocument>,
    /// Files left out.
    pub skipped: Vec<SkippedDocument>,
    /// The seed of the random sets.
    pub seed: u64,
    /// The sha256 of the weights that made it.
    pub weights: String,
}

impl AblationDocument {
    /// The document of an ablation; `each` says whether single maps were zeroed.
    pub fn new(a: &Ablation, each: bool) -> Self {
        AblationDocument {
            layer: a.layer.clone(),
            preprocess: a.preprocess.clone(),
            accuracy: a.accuracy,
            classes: ByClass::from_items(
                &a.classes,
                |c| &c.name,
                |c| ClassAblationDocument {
                    maps: c.maps.clone(),
                    images: c.images,
                    accuracy_after: c.accuracy_after,
                    logit_before: c.logit_before,
                    logit_after: c.logit_after,
                    drop: c.drop,
                    random: c.random.as_ref().map(|r| RandomDropsDocument {
                        sets: r.sets.len(),
                        mean_drop: r.mean_drop,
                        sd_drop: r.sd_drop,
                    }),
                    z: c.z,
                    each: each.then(|| {
                        c.each
                            .iter()
                            .map(|&(filter, drop)| MapDropDocument { filter, drop })
                            .collect()
                    }),
                },
            ),
            skipped: SkippedDocument::all(&a.skipped),
            seed: a.seed,
            weights: a.weights.as_str().to_string(),
        }
    }
}

/// One image's activations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageActivationsDocument {
    /// The image file.
    pub path: String,
    /// Each channel's spatial mean (for `logits`, the logits), written as f32 values (the
    /// shortest decimal that reads back as the same f32).
    pub mean: Vec<f32>,
    /// The most active channels, most active first.
    pub top: Vec<usize>,
}

/// Activations: `fmv activations --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationsDocument {
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// The names of the logits, for `logits` with labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// One entry per image, in the order given.
    pub images: Vec<ImageActivationsDocument>,
    /// Files left out.
    pub skipped: Vec<SkippedDocument>,
}

impl ActivationsDocument {
    /// The document of some activations, with the labels of the logits and the files the
    /// listing left out.
    pub fn new(a: &Activations, labels: Option<Vec<String>>, skipped: &[Skipped]) -> Self {
        ActivationsDocument {
            layer: a.layer.clone(),
            preprocess: a.preprocess.clone(),
            labels,
            images: a
                .images
                .iter()
                .map(|i| ImageActivationsDocument {
                    path: show(&i.path),
                    mean: i.mean.clone(),
                    top: i.top.clone(),
                })
                .collect(),
            skipped: SkippedDocument::all(skipped),
        }
    }
}
