//! Ranking, class sums and one-map-over-many-images against the original package's goldens
//! (`find_unique_filters`, `sum_top_feature_maps_by_class`, `one_feature_map_N_images`).

use std::collections::BTreeMap;

use fmv_core::stats::{select_unique, sum_f32, top_n};
use fmv_core::{
    ClassSumsConfig, Error, Event, Field, FilterMapsConfig, ImageFolder, Observer, Preprocess,
    Problem, RankConfig, RankCounts, Visualizer,
};
use fmv_models::{LayerRef, Model};
use serde_json::Value;

use crate::golden::{Golden, f32s, load_options, root, usizes};

fn visualizer(golden: &Golden, batch_size: usize) -> Visualizer {
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    Visualizer::new(model)
        .with_preprocess(Preprocess::original())
        .with_batch_size(batch_size)
}

fn classes_of(v: &Value) -> BTreeMap<String, Vec<usize>> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), usizes(v)))
        .collect()
}

/// The run's expected result under the tie rule "value descending, lower channel first".
fn expected(run: &Value) -> (BTreeMap<String, Vec<usize>>, BTreeMap<String, Vec<usize>>) {
    let r = &run["replica_other_tie_orders"]["desc_then_index"];
    (
        classes_of(&r["unique"]),
        classes_of(&r["top_before_filter"]),
    )
}

#[track_caller]
fn check_rank(name: &str, batch_size: usize) {
    let golden = Golden::load(name);
    let viz = visualizer(&golden, batch_size);
    let train = ImageFolder::open(root().join("data/dsA/train"), None).unwrap();
    for run in golden.json["find_unique_filters"].as_array().unwrap() {
        let call = &run["call"];
        let cfg = RankConfig::new(LayerRef::Compat(call["layer"].as_i64().unwrap()))
            .with_n_each_img(call["n_each_img"].as_u64().unwrap() as usize)
            .with_n_each_class(call["n_each_class"].as_u64().unwrap() as usize);
        let what = format!("{name} {call}");
        let got = viz.rank(&train, &cfg, &mut ()).unwrap();
        let (unique, top) = expected(run);
        for c in &got.classes {
            assert_eq!(
                c.unique, unique[&c.name],
                "{what}: unique maps of {}",
                c.name
            );
            assert_eq!(c.top, top[&c.name], "{what}: top maps of {}", c.name);
            assert_eq!(c.n_images, 12);
            let freq: BTreeMap<usize, u32> = run["frequency_counts"][&c.name]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap() as u32))
                .collect();
            let ours: BTreeMap<usize, u32> = c
                .counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i, *n))
                .collect();
            assert_eq!(ours, freq, "{what}: frequency counts of {}", c.name);
        }
    }
}

#[test]
fn rank_matches_the_original_on_the_resnet() {
    check_rank("resnet50_small_seed1", 4);
}

#[test]
fn rank_matches_the_original_on_the_vgg() {
    check_rank("vgg16_small_seed1", 4);
}

#[test]
fn rank_does_not_depend_on_batch_size() {
    check_rank("vgg16_small_seed1", 1);
}

/// The selection alone, fed with the golden per-image mean vectors, must reproduce the
/// expected results exactly (no network involved).
#[test]
fn selection_from_golden_means_is_exact() {
    for name in ["resnet50_small_seed1", "vgg16_small_seed1"] {
        let golden = Golden::load(name);
        for run in golden.json["find_unique_filters"].as_array().unwrap() {
            let call = &run["call"];
            let layer = call["layer"].to_string();
            let (n_img, n_cls) = (
                call["n_each_img"].as_u64().unwrap() as usize,
                call["n_each_class"].as_u64().unwrap() as usize,
            );
            let classes: Vec<String> = call["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            let counts: Vec<Vec<u32>> = classes
                .iter()
                .map(|cls| {
                    let mut counts = vec![
                        0u32;
                        golden.json["meta"]["n_channels"][&layer].as_u64().unwrap()
                            as usize
                    ];
                    for (rel, entry) in golden.images() {
                        if entry["split"] == "train" && entry["cls"] == cls.as_str() {
                            let _ = rel;
                            for c in top_n(&f32s(&entry["mean_activations"][&layer]), n_img) {
                                counts[c] += 1;
                            }
                        }
                    }
                    counts
                })
                .collect();
            let (unique, top) = expected(run);
            for (cls, (t, u)) in classes.iter().zip(select_unique(&counts, n_cls)) {
                assert_eq!(u, unique[cls], "{name} {call} {cls}");
                assert_eq!(t, top[cls], "{name} {call} {cls}");
            }
        }
    }
}

#[test]
fn class_sums_match_the_original() {
    for name in ["resnet50_small_seed1", "vgg16_small_seed1"] {
        let golden = Golden::load(name);
        let viz = visualizer(&golden, 4);
        let test = ImageFolder::open(root().join("data/dsA/test"), None).unwrap();
        for run in golden.json["sum_top_feature_maps_by_class"]
            .as_array()
            .unwrap()
        {
            let call = &run["call"];
            let layer = LayerRef::Compat(call["layer"].as_i64().unwrap());
            // The dict the original was called with, in its order.
            let top_maps: Vec<(String, Vec<usize>)> = call["top_feature_maps_dict"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), usizes(v)))
                .collect();
            let cfg = ClassSumsConfig::new(layer, top_maps.clone());
            let got = viz.class_sums(&test, &cfg, &mut ()).unwrap();
            for tc in &got.classes {
                for (k, (top_cls, maps)) in top_maps.iter().enumerate() {
                    let want = f32s(&run["output"][&tc.name][top_cls]);
                    for (i, (a, g)) in tc.sums[k].iter().zip(&want).enumerate() {
                        // README §6: |a − g| ≤ 1e-4 · len(list) · max |mean vector|.
                        let rel = tc.images[i]
                            .strip_prefix(root())
                            .unwrap()
                            .display()
                            .to_string();
                        let vmax = f32s(
                            &golden.json["images"][&rel]["mean_activations"]
                                [call["layer"].to_string()],
                        )
                        .iter()
                        .fold(0f32, |m, v| m.max(v.abs()));
                        let tol = 1e-4 * maps.len() as f32 * vmax;
                        assert!(
                            (a - g).abs() <= tol,
                            "{name} {} {top_cls} image {i}: {a} vs {g}",
                            tc.name
                        );
                        // Fed with the golden means, the sum is bit for bit the original's.
                        let golden_means = f32s(
                            &golden.json["images"][&rel]["mean_activations"]
                                [call["layer"].to_string()],
                        );
                        assert_eq!(
                            sum_f32(&golden_means, maps).to_bits(),
                            g.to_bits(),
                            "{name} {rel} {top_cls}"
                        );
                    }
                }
            }
            // Both classes are well separated by their own maps on this data.
            assert!(
                got.separability.iter().all(|a| a.unwrap() >= 0.75),
                "{:?}",
                got.separability
            );
        }
    }
}

#[test]
fn one_map_over_many_images_matches_the_original() {
    for name in ["resnet50_small_seed1", "vgg16_small_seed1"] {
        let golden = Golden::load(name);
        for run in golden.json["one_feature_map_N_images"].as_array().unwrap() {
            let call = &run["call"];
            let viz = visualizer(&golden, call["batch_size"].as_u64().unwrap() as usize);
            let files: Vec<_> = run["files_order"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| root().join(p.as_str().unwrap()))
                .collect();
            let filter = call["filter_idx"].as_u64().unwrap() as usize;
            let cfg = FilterMapsConfig::new(
                LayerRef::Compat(call["layer"].as_i64().unwrap()),
                vec![filter],
            );
            let mut means = Vec::new();
            let maps = viz
                .filter_maps(&files, &cfg, &mut |e: &Event| {
                    if let Event::Maps(m) = e {
                        assert_eq!(m.maps.len(), 1);
                        assert_eq!(m.maps[0].len(), m.width * m.height);
                        assert_eq!((m.input.width, m.input.height), (224, 224));
                        means.push(m.mean);
                    }
                })
                .unwrap();
            assert!(maps.skipped.is_empty());
            assert_eq!(maps.n_images, files.len());
            let want = f32s(&run["output"]);
            for (i, (a, g)) in means.iter().zip(&want).enumerate() {
                let rel = run["files_order"][i].as_str().unwrap();
                let vmax = f32s(
                    &golden.json["images"][rel]["mean_activations"][call["layer"].to_string()],
                )
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
                assert!((a - g).abs() <= 1e-4 * vmax, "{name} {rel}: {a} vs {g}");
            }
        }
    }
}

/// Keeps the last saved state of a ranking, and asks the run to stop once one is saved.
#[derive(Default)]
struct StopAfterFirstBatch {
    saved: Option<RankCounts>,
}

impl Observer for StopAfterFirstBatch {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Event::RankCheckpoint(state) = event {
            self.saved = Some((*state).clone());
        }
    }

    fn should_stop(&mut self) -> bool {
        self.saved.is_some()
    }
}

/// A run stopped after its first batch, and resumed from its last saved state, gives the
/// result of an uninterrupted run.
#[test]
fn an_interrupted_ranking_resumes_to_the_same_result() {
    let golden = Golden::load("vgg16_small_seed1");
    let viz = visualizer(&golden, 3);
    let train = ImageFolder::open(root().join("data/dsA/train"), None).unwrap();
    let cfg = RankConfig::new(LayerRef::Compat(12))
        .with_n_each_img(5)
        .with_n_each_class(5);
    let whole = viz.rank_counts(&train, &cfg, &mut ()).unwrap();
    let mut stopper = StopAfterFirstBatch::default();
    let interrupted = viz.rank_counts(&train, &cfg, &mut stopper);
    assert!(
        matches!(interrupted, Err(Error::Stopped)),
        "{interrupted:?}"
    );
    let saved = stopper.saved.unwrap();
    assert_eq!(
        saved.classes[0].n_done, 3,
        "the state after the first batch"
    );
    assert_eq!(saved.classes[1].n_done, 0);
    let resumed = viz
        .rank_counts(
            &train,
            &cfg.clone().with_resume(Some(saved.clone())),
            &mut (),
        )
        .unwrap();
    assert_eq!(
        resumed
            .classes
            .iter()
            .map(|c| &c.counts)
            .collect::<Vec<_>>(),
        whole.classes.iter().map(|c| &c.counts).collect::<Vec<_>>()
    );
    assert_eq!(
        resumed.select().unwrap().classes,
        whole.select().unwrap().classes
    );
    // A state made with other parameters is refused.
    let other = RankConfig::new(LayerRef::Compat(12))
        .with_n_each_img(6)
        .with_n_each_class(5)
        .with_resume(Some(saved));
    let err = viz.rank_counts(&train, &other, &mut ()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                field: Field::Resume,
                problem: Problem::ResumeMismatch
            }
        ),
        "{err}"
    );
}

/// The maps returned for drawing (viz 2) are those of the top channels, and each map's mean is
/// the channel's mean activation.
#[test]
fn activations_with_maps_return_the_top_channels_maps() {
    let golden = Golden::load("resnet50_small_seed1");
    let viz = visualizer(&golden, 2);
    let files = vec![
        root().join("data/dsA/test/cat/cat_1.png"),
        root().join("data/dsA/test/coffee/coffee_2.jpg"),
    ];
    let cfg = fmv_core::ActivationsConfig::new(LayerRef::Compat(-2))
        .with_top(4)
        .with_maps(true);
    let got = viz.activations(&files, &cfg, &mut ()).unwrap();
    for img in &got.images {
        assert_eq!(
            img.maps.iter().map(|m| m.channel).collect::<Vec<_>>(),
            img.top
        );
        for m in &img.maps {
            assert_eq!((m.width, m.height, m.values.len()), (7, 7, 49));
            let mean = m.values.iter().map(|&v| v as f64).sum::<f64>() / 49.0;
            assert!(
                (mean - img.mean[m.channel] as f64).abs() < 1e-5,
                "channel {}",
                m.channel
            );
        }
        let input = img.input.as_ref().unwrap();
        assert_eq!((input.width, input.height), (224, 224));
    }
}

/// Asks to stop once `after` progress events have arrived, and counts the maps that stream in.
struct StopAfterProgress {
    after: usize,
    progress: usize,
    maps: usize,
}

impl StopAfterProgress {
    fn new(after: usize) -> Self {
        StopAfterProgress {
            after,
            progress: 0,
            maps: 0,
        }
    }
}

impl Observer for StopAfterProgress {
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::Progress { .. } => self.progress += 1,
            Event::Maps(_) => self.maps += 1,
            _ => {}
        }
    }

    fn should_stop(&mut self) -> bool {
        self.progress >= self.after
    }
}

/// Files left out reach the observer as they are left out (the same list as the result's),
/// and every analysis stops at the next batch when its observer asks: the maps of the batch
/// done were sent, and the run returns `Error::Stopped`.
#[test]
fn the_observer_hears_of_skipped_files_and_stops_any_analysis() {
    let golden = Golden::load("resnet50_small_seed1");
    let viz = visualizer(&golden, 2);
    let dir = std::env::temp_dir().join(format!("fmv-core-observer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let source = root().join("data/dsA/test");
    for class in ["cat", "coffee"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for f in std::fs::read_dir(source.join(class)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.join("cat/notes.txt"), "not an image").unwrap();
    let jpeg = std::fs::read(source.join("coffee/coffee_1.jpg")).unwrap();
    std::fs::write(dir.join("coffee/broken.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    let test = ImageFolder::open(&dir, None).unwrap();
    let layer = LayerRef::Compat(-2);
    let cfg = ClassSumsConfig::new(layer.clone(), vec![("cat".into(), vec![1, 2])]);
    let mut heard = Vec::new();
    let sums = viz
        .class_sums(&test, &cfg, &mut |e: &Event| {
            if let Event::Skipped(s) = e {
                heard.push((*s).clone());
            }
        })
        .unwrap();
    assert_eq!(heard, sums.skipped);
    let names: Vec<String> = heard
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["notes.txt", "broken.jpg"]);

    let files: Vec<_> = test.classes.iter().flat_map(|c| c.files.clone()).collect();
    assert!(files.len() > 4, "more than two batches of 2");
    let stopped = |r: fmv_core::Result<()>| assert!(matches!(r, Err(Error::Stopped)), "{r:?}");
    let acts = fmv_core::ActivationsConfig::new(layer.clone());
    let good: Vec<_> = files
        .iter()
        .filter(|f| !f.ends_with("broken.jpg"))
        .cloned()
        .collect();
    stopped(
        viz.activations(&good, &acts, &mut StopAfterProgress::new(1))
            .map(|_| ()),
    );
    stopped(
        viz.class_sums(&test, &cfg, &mut StopAfterProgress::new(1))
            .map(|_| ()),
    );
    let mut observer = StopAfterProgress::new(1);
    let maps = FilterMapsConfig::new(layer.clone(), vec![3]);
    stopped(viz.filter_maps(&files, &maps, &mut observer).map(|_| ()));
    assert_eq!(observer.maps, 2, "the first batch's maps were sent");
    let rank = RankConfig::new(layer)
        .with_n_each_img(5)
        .with_n_each_class(5);
    stopped(
        viz.rank(&test, &rank, &mut StopAfterProgress::new(1))
            .map(|_| ()),
    );
    // Asked after the last batch, a stop changes nothing.
    let mut late = StopAfterProgress::new(files.len().div_ceil(2));
    let all = viz.filter_maps(&files, &maps, &mut late).unwrap();
    assert_eq!(
        (late.maps, all.n_images),
        (files.len() - 1, files.len() - 1)
    );
    std::fs::remove_dir_all(&dir).ok();
}
