//! The method works on the embedded demo: the patterns of each class's top maps look like the
//! class to the network, and the class sums separate the classes. Both demo networks, on
//! generated images the networks never saw in training.

use std::path::{Path, PathBuf};

use fmv::core::demo::{DEMO_SIZE, write_image_folder};
use fmv::models::Tensor;
use fmv::models::demo::{DEMO_CLASSES, DemoNet};
use fmv::prelude::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fmv-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn folders(dir: &Path) -> (ImageFolder, ImageFolder) {
    write_image_folder(&dir.join("train"), 24, 1 << 34).unwrap();
    write_image_folder(&dir.join("test"), 8, 1 << 35).unwrap();
    (
        ImageFolder::open(dir.join("train"), None).unwrap(),
        ImageFolder::open(dir.join("test"), None).unwrap(),
    )
}

/// The class the network gives a pattern (an input-sized image in [0, 1], CHW).
fn classify(viz: &Visualizer, image: &[f32]) -> usize {
    let x = viz.batch_tensor(&[image]).unwrap();
    let logits = viz.resolve(&LayerRef::Name("logits".into())).unwrap();
    let out: Tensor = viz
        .backbone()
        .forward_taps(&x, &[logits])
        .unwrap()
        .remove(0);
    let v = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

/// Returns (patterns classified as their class, patterns made, lowest class-sums AUC).
fn run(net: DemoNet, name: &str) -> (usize, usize, f64) {
    let dir = scratch(name);
    let (train, test) = folders(&dir);
    let model = net.load(&LoadOptions::new()).unwrap();
    let viz = Visualizer::new(model)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));
    let cfg = RankConfig::new(net.layer())
        .with_n_each_img(8)
        .with_n_each_class(8);
    let ranking = viz.rank(&train, &cfg, &mut ()).unwrap();
    let names: Vec<&str> = ranking.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, DEMO_CLASSES);
    let (mut hits, mut made) = (0, 0);
    for (label, class) in ranking.classes.iter().enumerate() {
        let maps: Vec<usize> = class.unique.iter().take(3).copied().collect();
        if maps.is_empty() {
            continue;
        }
        let cfg =
            PatternConfig::new(net.layer(), maps, RobustConfig::new().with_steps(96)).with_seed(3);
        for p in viz.maximize(&cfg, &mut ()).unwrap() {
            made += 1;
            hits += usize::from(classify(&viz, &p.image) == label);
        }
    }
    let top: Vec<(String, Vec<usize>)> = ranking
        .classes
        .iter()
        .map(|c| (c.name.clone(), c.unique.clone()))
        .collect();
    let cfg = ClassSumsConfig::new(net.layer(), top).with_strict(true);
    let sums = viz.class_sums(&test, &cfg, &mut ()).unwrap();
    let min_auc = sums
        .separability
        .iter()
        .map(|a| a.expect("every class has test images"))
        .fold(1.0, f64::min);
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "{name}: {hits}/{made} patterns classified as their class; lowest class-sums AUC {min_auc:.3}"
    );
    (hits, made, min_auc)
}

/// Chance is 1/4 for the patterns (four classes) and 0.5 for an AUC. Measured with this
/// test's settings (release build; see `models/demo/README.md`): ResNet 5/12 patterns
/// classified as their class, lowest class-sums AUC 0.958; VGG 5/10 and 0.682. The thresholds
/// sit above chance and one pattern below what was measured, so that rounding differences
/// between builds cannot flip the result.
fn check(net: DemoNet, name: &str, min_rate: f64, min_auc_wanted: f64) {
    let (hits, made, min_auc) = run(net, name);
    assert!(
        made >= 8,
        "{name}: only {made} patterns (too few unique maps)"
    );
    let rate = hits as f64 / made as f64;
    assert!(
        rate >= min_rate,
        "{name}: {hits}/{made} patterns classified as their class (chance: 1/4)"
    );
    assert!(
        min_auc >= min_auc_wanted,
        "{name}: a class's sums separate it with AUC {min_auc:.3}"
    );
}

#[test]
fn resnet_demo_patterns_look_like_their_class_and_class_sums_separate() {
    check(DemoNet::ResNet, "resnet", 4.0 / 12.0, 0.9);
}

#[test]
fn vgg_demo_patterns_look_like_their_class_and_class_sums_separate() {
    check(DemoNet::Vgg, "vgg", 4.0 / 10.0, 0.6);
}
