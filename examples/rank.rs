//! Rank (pre-viz): per class of a training ImageFolder, the feature maps most often among each
//! image's most active maps, minus those other classes share.
//!
//! `cargo run --release -p fmv-examples --example rank`

use fmv::core::demo::{DEMO_SIZE, write_image_folder};
use fmv::models::demo::DemoNet;
use fmv::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A training ImageFolder: the demo's generated pictures, 16 per class.
    let dir = std::env::temp_dir().join(format!("fmv-example-rank-{}", std::process::id()));
    write_image_folder(&dir.join("train"), 16, 1)?;
    let train = ImageFolder::open(dir.join("train"), None)?;

    // The embedded demo ResNet, fed as it was trained (inputs in [0, 1] at 96×96).
    let net = DemoNet::ResNet;
    let viz = Visualizer::new(net.load(&LoadOptions::new())?)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));

    let config = RankConfig::new(net.layer())
        .with_n_each_img(8)
        .with_n_each_class(8);
    let ranking = viz.rank(&train, &config, &mut ())?;
    println!("layer {}:", ranking.layer);
    for class in &ranking.classes {
        println!("  {:>12}: unique maps {:?}", class.name, class.unique);
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn runs_on_the_demo() {
    main().unwrap();
}
