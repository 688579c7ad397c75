//! Class sums (viz 5): per test image, the summed activation of each class's unique maps, and
//! how well those sums separate the classes (ROC AUC), as numbers and as a plot.
//!
//! `cargo run --release -p fmv-examples --example class_sums`

use fmv::core::demo::{DEMO_SIZE, write_image_folder};
use fmv::models::demo::DemoNet;
use fmv::prelude::*;
use fmv::render::PlotFormat;
use fmv::report::draw::class_sums_plot;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("fmv-example-class-sums-{}", std::process::id()));
    write_image_folder(&dir.join("train"), 16, 1)?;
    write_image_folder(&dir.join("test"), 6, 300)?;
    let net = DemoNet::ResNet;
    let viz = Visualizer::new(net.load(&LoadOptions::new())?)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));

    let train = ImageFolder::open(dir.join("train"), None)?;
    let config = RankConfig::new(net.layer())
        .with_n_each_img(8)
        .with_n_each_class(8);
    let ranking = viz.rank(&train, &config, &mut ())?;
    let top: Vec<(String, Vec<usize>)> = ranking
        .classes
        .iter()
        .map(|c| (c.name.clone(), c.unique.clone()))
        .collect();

    let test = ImageFolder::open(dir.join("test"), None)?;
    let sums = viz.class_sums(&test, &ClassSumsConfig::new(net.layer(), top), &mut ())?;
    for ((class, maps), auc) in sums.top_maps.iter().zip(&sums.separability) {
        println!("maps of {class} {maps:?}: ROC AUC {auc:?}");
    }

    let plot = class_sums_plot(&sums);
    std::fs::write(dir.join("class_sums.png"), plot.render(PlotFormat::Png)?)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn runs_on_the_demo() {
    main().unwrap();
}
