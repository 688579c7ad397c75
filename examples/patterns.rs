//! Patterns (viz 1): activation maximisation, an image that makes one feature map fire as hard
//! as possible. Writes one PNG per map.
//!
//! `cargo run --release -p fmv-examples --example patterns`

use fmv::core::demo::DEMO_SIZE;
use fmv::models::demo::DemoNet;
use fmv::prelude::*;
use fmv::render::{image, png_bytes};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = DemoNet::ResNet;
    let viz = Visualizer::new(net.load(&LoadOptions::new())?)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));

    // Two maps of the demo layer, optimised together; few steps keep the example quick
    // (the default is 256).
    let config = PatternConfig::new(net.layer(), vec![4, 33], RobustConfig::new().with_steps(32))
        .with_seed(7);
    let out = std::env::temp_dir().join(format!("fmv-example-patterns-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    for pattern in viz.maximize(&config, &mut ())? {
        let rgb = pattern.to_rgb8();
        let img = image::RgbImage::from_raw(rgb.width as u32, rgb.height as u32, rgb.pixels)
            .ok_or("pattern size")?;
        let path = out.join(format!("filter_{}.png", pattern.filter));
        std::fs::write(&path, png_bytes(&img)?)?;
        println!(
            "filter {}: activation {:.2} → {}",
            pattern.filter,
            pattern.final_activation,
            path.display()
        );
    }
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

#[test]
fn runs_on_the_demo() {
    main().unwrap();
}
