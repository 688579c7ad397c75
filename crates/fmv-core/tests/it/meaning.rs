//! Exemplars and ablation on the two small reference networks against what torch computes
//! (`testdata/torch/make_meaning.py`: a forward hook that reads or zeroes the maps, images read
//! with Pillow as the `imagenet` preprocessing reads them), and their invariants: batch size,
//! shards and interruptions change nothing.

use std::path::PathBuf;

use fmv_core::{
    AblationConfig, Error, Event, ExemplarStat, Exemplars, ExemplarsConfig, Field, ImageFolder,
    ImageList, Observer, Problem, Shard, Visualizer,
};
use fmv_models::{LayerRef, Model};
use serde_json::Value;

use crate::golden::{load_options, root};

fn torch_golden(name: &str) -> Value {
    let path = root().join("../torch").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn visualizer(net: &str, batch_size: usize) -> Visualizer {
    let path = root().join(format!("weights/{net}.safetensors"));
    Visualizer::new(Model::load(path, &load_options()).unwrap()).with_batch_size(batch_size)
}

fn dsa_images() -> ImageList {
    let dsa = root().join("data/dsA");
    ImageList::open(&[dsa.join("train"), dsa.join("test")]).unwrap()
}

fn layer(name: &str) -> LayerRef {
    LayerRef::Name(name.into())
}

fn exemplars_config(case: &Value) -> ExemplarsConfig {
    let filters: Option<Vec<usize>> = serde_json::from_value(case["filters"].clone()).unwrap();
    ExemplarsConfig::new(layer(case["layer"].as_str().unwrap()))
        .with_filters(filters)
        .with_k(case["k"].as_u64().unwrap() as usize)
        .with_by(case["by"].as_str().unwrap().parse().unwrap())
}

/// Within `tol` of torch, relative to the larger of 1 and the value.
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn exemplars_match_torch_on_both_reference_networks() {
    const TOL: f64 = 1e-4;
    let images = dsa_images();
    let dsa = root().join("data/dsA");
    for case in torch_golden("exemplars.json").as_array().unwrap() {
        let want = &case["expected"];
        let listed: Vec<PathBuf> = serde_json::from_value(want["files"].clone()).unwrap();
        let ours: Vec<PathBuf> = images
            .files
            .iter()
            .map(|f| f.strip_prefix(&dsa).unwrap().to_path_buf())
            .collect();
        assert_eq!(ours, listed, "the list's order");
        let viz = visualizer(case["net"].as_str().unwrap(), 5);
        let got = viz
            .exemplars(&images, &exemplars_config(case), &mut ())
            .unwrap();
        let what = format!("{} {} by {}", case["net"], case["layer"], case["by"]);
        let size: Vec<usize> = serde_json::from_value(want["map_size"].clone()).unwrap();
        assert_eq!([got.map_size.0, got.map_size.1], size[..], "{what}");
        assert_eq!(got.images, 32);
        let (mut paths, mut argmaxes) = (0, 0);
        for (m, w) in got.maps.iter().zip(want["maps"].as_array().unwrap()) {
            assert_eq!(m.filter as u64, w["filter"].as_u64().unwrap());
            let top = w["top"].as_array().unwrap();
            assert_eq!(m.top.len(), top.len(), "{what} map {}", m.filter);
            let score = |e: &Value| e[case["by"].as_str().unwrap()].as_f64().unwrap();
            for (j, (e, t)) in m.top.iter().zip(top).enumerate() {
                let at = format!("{what} map {} place {j}", m.filter);
                // Scores in order within the tolerance, whichever image holds them.
                let ours = match got.by {
                    ExemplarStat::Mean => e.mean,
                    ExemplarStat::Max => e.max,
                } as f64;
                assert!(close(ours, score(t), TOL), "{at}: {ours} vs {}", score(t));
                // The image, where its score is apart from its neighbours'.
                let prev = (j > 0).then(|| score(&top[j - 1]));
                let next = (j + 1 < top.len()).then(|| score(&top[j + 1]));
                let apart = |n: Option<f64>| n.is_none_or(|n| !close(n, score(t), 2.0 * TOL));
                if apart(prev) && apart(next) && j + 1 < top.len() {
                    let path = e.path.strip_prefix(&dsa).unwrap();
                    assert_eq!(path, PathBuf::from(t["path"].as_str().unwrap()), "{at}");
                    assert!(
                        close(e.mean as f64, t["mean"].as_f64().unwrap(), TOL),
                        "{at}"
                    );
                    assert!(close(e.max as f64, t["max"].as_f64().unwrap(), TOL), "{at}");
                    paths += 1;
                    // A unique maximum, or a map that is 0 everywhere (the first place).
                    let max = t["max"].as_f64().unwrap();
                    if t["gap"].as_f64().unwrap() > TOL * max.max(1.0) || max == 0.0 {
                        let a: Vec<usize> = serde_json::from_value(t["argmax"].clone()).unwrap();
                        assert_eq!([e.argmax.0, e.argmax.1], a[..], "{at}");
                        argmaxes += 1;
                    }
                }
            }
        }
        // Most places are decided: the test compares something.
        let places: usize = got.maps.iter().map(|m| m.top.len()).sum();
        assert!(paths * 2 > places, "{what}: {paths} of {places} places");
        assert!(
            argmaxes * 3 > paths,
            "{what}: {argmaxes} argmaxes of {paths}"
        );
    }
}

/// Stops the run once `after` checkpoints were heard, keeping the last.
#[derive(Default)]
struct StopAfter {
    after: usize,
    heard: usize,
    saved: Option<Exemplars>,
}

impl Observer for StopAfter {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Event::ExemplarsCheckpoint(state) = event {
            self.heard += 1;
            self.saved = Some((*state).clone());
        }
    }

    fn should_stop(&mut self) -> bool {
        self.heard >= self.after
    }
}

#[test]
fn exemplars_do_not_depend_on_batches_shards_or_interruptions() {
    let images = dsa_images();
    let cfg = ExemplarsConfig::new(layer("features.28")).with_k(4);
    let whole = visualizer("vgg16_small_seed1", 32)
        .exemplars(&images, &cfg, &mut ())
        .unwrap();
    let viz = visualizer("vgg16_small_seed1", 3);
    assert_eq!(viz.exemplars(&images, &cfg, &mut ()).unwrap(), whole);
    // Three shards, merged in any order, give the whole run.
    let parts: Vec<Exemplars> = [2, 0, 1]
        .iter()
        .map(|&index| {
            let shard = Some(Shard { index, count: 3 });
            viz.exemplars(&images, &cfg.clone().with_shard(shard), &mut ())
                .unwrap()
        })
        .collect();
    assert_eq!(parts[1].images, 11);
    let merged = Exemplars::merge(&parts).unwrap();
    assert!(merged.is_complete());
    assert_eq!(merged.maps, whole.maps);
    assert_eq!((merged.images, merged.done), (32, 32));
    // A part given twice, and a part of another run, are refused.
    let twice = Exemplars::merge(&[parts[0].clone(), parts[0].clone()]).unwrap_err();
    assert!(
        twice.to_string().contains("shard 2/3 is given twice"),
        "{twice}"
    );
    // A part whose place of a maximum lies outside the map is refused.
    let mut outside = parts[1].clone();
    outside.maps[0].top[0].argmax = (14, 0);
    let err = Exemplars::merge(&[parts[0].clone(), outside]).unwrap_err();
    assert!(err.to_string().contains("do not add up"), "{err}");
    let mut other = parts[1].clone();
    other.k = 5;
    let err = Exemplars::merge(&[parts[0].clone(), other]).unwrap_err();
    assert!(
        err.to_string().contains("part 2 was made with k 5"),
        "{err}"
    );
    // Stopped after two batches, the state holds the six images scanned; resumed, the run
    // ends where a whole run ends.
    let mut stop = StopAfter {
        after: 2,
        ..StopAfter::default()
    };
    let stopped = viz.exemplars(&images, &cfg, &mut stop);
    assert!(matches!(stopped, Err(Error::Stopped)), "{stopped:?}");
    let saved = stop.saved.unwrap();
    assert_eq!((saved.done, saved.images), (6, 6));
    let resumed = viz
        .exemplars(
            &images,
            &cfg.clone().with_resume(Some(saved.clone())),
            &mut (),
        )
        .unwrap();
    assert_eq!(resumed, whole);
    let other = cfg.with_by(ExemplarStat::Max).with_resume(Some(saved));
    let err = viz.exemplars(&images, &other, &mut ()).unwrap_err();
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

#[test]
fn ablation_matches_torch_on_both_reference_networks() {
    const TOL: f64 = 1e-4;
    let test = ImageFolder::open(root().join("data/dsA/test"), None).unwrap();
    for case in torch_golden("ablation.json")["ablate"].as_array().unwrap() {
        let maps: Vec<(String, Vec<usize>)> = case["maps"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(c, m)| (c.clone(), serde_json::from_value(m.clone()).unwrap()))
            .collect();
        let cfg = AblationConfig::new(layer(case["layer"].as_str().unwrap()), maps)
            .with_random_sets(case["random_sets"].as_u64().unwrap() as usize)
            .with_seed(case["seed"].as_u64().unwrap())
            .with_each(case["each"].as_bool().unwrap());
        let got = visualizer(case["net"].as_str().unwrap(), 3)
            .ablate(&test, &cfg, &mut ())
            .unwrap();
        let want = &case["expected"];
        let what = format!("{} {}", case["net"], case["layer"]);
        assert_eq!(got.accuracy, want["accuracy"].as_f64().unwrap(), "{what}");
        assert_eq!(got.images, 8);
        assert_eq!(got.classes.len(), 2);
        for c in &got.classes {
            let w = &want["classes"][&c.name];
            let at = format!("{what} class {}", c.name);
            let num = |k: &str| w[k].as_f64().unwrap();
            // Logits of a few units: the tolerance is relative to the class's logit.
            let scale = num("logit_before").abs().max(1.0);
            let near = |a: f64, b: f64| (a - b).abs() <= TOL * scale;
            assert_eq!(c.images, 4, "{at}");
            assert_eq!(c.accuracy_after, num("accuracy_after"), "{at}");
            assert!(near(c.logit_before, num("logit_before")), "{at}");
            assert!(near(c.logit_after, num("logit_after")), "{at}");
            assert!(
                near(c.drop, num("drop")),
                "{at}: {} vs {}",
                c.drop,
                num("drop")
            );
            let r = c.random.as_ref().unwrap();
            let drawn: Vec<Vec<usize>> =
                serde_json::from_value(w["random"]["drawn"].clone()).unwrap();
            assert_eq!(r.sets, drawn, "{at}: the random sets");
            let drops: Vec<f64> = serde_json::from_value(w["random"]["drops"].clone()).unwrap();
            for (a, b) in r.drops.iter().zip(&drops) {
                assert!(near(*a, *b), "{at}: random drop {a} vs {b}");
            }
            assert!(near(
                r.mean_drop,
                w["random"]["mean_drop"].as_f64().unwrap()
            ));
            assert!(near(r.sd_drop, w["random"]["sd_drop"].as_f64().unwrap()));
            let z = c.z.unwrap();
            assert!(
                (z - num("z")).abs() <= 1e-3 * num("z").abs().max(1.0),
                "{at}: z {z}"
            );
            if case["each"].as_bool().unwrap() {
                let each = w["each"].as_array().unwrap();
                assert_eq!(c.each.len(), each.len());
                for ((f, d), e) in c.each.iter().zip(each) {
                    assert_eq!(*f as u64, e["filter"].as_u64().unwrap());
                    assert!(near(*d, e["drop"].as_f64().unwrap()), "{at}: map {f}");
                }
            } else {
                assert!(c.each.is_empty());
            }
        }
    }
}

#[test]
fn ablation_refuses_what_it_cannot_measure() {
    let test = ImageFolder::open(root().join("data/dsA/test"), None).unwrap();
    let viz = visualizer("resnet50_small_seed1", 8);
    let err = |cfg: AblationConfig| viz.ablate(&test, &cfg, &mut ()).unwrap_err().to_string();
    let e = err(AblationConfig::same_maps(layer("logits"), vec![0]));
    assert!(e.contains("`logits` is the network's last layer"), "{e}");
    let e = err(AblationConfig::same_maps(layer("layer4.1"), vec![256]));
    assert!(e.contains("256"), "{e}");
    let e = err(AblationConfig::same_maps(layer("layer4.1"), vec![3, 3]));
    assert!(e.contains("channel 3 is listed twice"), "{e}");
    let labels = vec!["dog".to_string(), "cat".to_string()];
    let e = err(AblationConfig::same_maps(layer("layer4.1"), vec![3]).with_labels(Some(labels)));
    assert!(
        e.contains("class `coffee` of the test folder is none of the labels (dog, cat)"),
        "{e}"
    );
    // Labels name the outputs: `coffee` is output 0 here, `cat` output 1.
    let labels = vec!["coffee".to_string(), "cat".to_string()];
    let cfg = AblationConfig::same_maps(layer("layer4.1"), vec![3]).with_random_sets(0);
    let plain = viz.ablate(&test, &cfg, &mut ()).unwrap();
    let named = viz
        .ablate(&test, &cfg.with_labels(Some(labels)), &mut ())
        .unwrap();
    assert_eq!(named.classes[0].output, 1);
    assert_eq!(plain.classes[0].output, 0);
    assert!((named.accuracy + plain.accuracy - 1.0).abs() < 1e-12);
    assert!(named.classes[0].random.is_none() && named.classes[0].z.is_none());
}
