//! One map, many images (viz 3): one feature map drawn over many images, with each image's
//! mean activation, streamed (memory stays flat however many images there are).
//!
//! `cargo run --release -p fmv-examples --example one_map`

use fmv::core::demo::{DEMO_SIZE, write_image_folder};
use fmv::models::demo::DemoNet;
use fmv::prelude::*;
use fmv::render::png_bytes;
use fmv::report::draw::original_overlay;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("fmv-example-one-map-{}", std::process::id()));
    write_image_folder(&dir.join("test"), 3, 100)?;
    let test = ImageFolder::open(dir.join("test"), None)?;
    let files: Vec<_> = test.classes.iter().flat_map(|c| c.files.clone()).collect();

    let net = DemoNet::ResNet;
    let model = net.load(&LoadOptions::new())?;
    let family = model.family();
    let viz = Visualizer::new(model)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));
    let config = FilterMapsConfig::new(net.layer(), vec![4]);
    // Each image's map arrives as an event: draw it the original's way (a grey mask, ×2 for a
    // ResNet) and save it, then let it go.
    let mut written = Vec::new();
    let maps = viz.filter_maps(&files, &config, &mut |event: &Event| {
        if let Event::Maps(maps) = event {
            let name = maps.path.file_name().unwrap_or_default().to_string_lossy();
            let out = dir.join(format!("filter4_{name}"));
            let drawn = original_overlay(maps, family).and_then(|img| png_bytes(&img));
            written.push(drawn.map(|png| std::fs::write(&out, png)));
            println!("{name}: mean activation of filter 4 = {:.3}", maps.mean);
        }
    })?;
    assert!(maps.skipped.is_empty());
    for w in written {
        w??;
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn runs_on_the_demo() {
    main().unwrap();
}
