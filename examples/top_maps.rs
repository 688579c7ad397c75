//! One image, top-N maps (viz 2): the most active maps of one image, each drawn over it, and a
//! plot of every map's mean activation.
//!
//! `cargo run --release -p fmv-examples --example top_maps`

use fmv::core::demo::{DEMO_SIZE, DemoClass, generate};
use fmv::models::demo::DemoNet;
use fmv::prelude::*;
use fmv::render::{HeatmapStyle, PlotFormat, Tile, grid, heatmap, image, png_bytes};
use fmv::report::draw::mean_activation_plot;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join(format!("fmv-example-top-maps-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    // One picture of rings, saved as a file (the library reads image files).
    let rings = generate(DemoClass::Rings, 3, DEMO_SIZE);
    let input = image::RgbImage::from_raw(DEMO_SIZE as u32, DEMO_SIZE as u32, rings.pixels)
        .ok_or("image size")?;
    let file = out.join("rings.png");
    std::fs::write(&file, png_bytes(&input)?)?;

    let net = DemoNet::ResNet;
    let viz = Visualizer::new(net.load(&LoadOptions::new())?)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));
    let config = ActivationsConfig::new(net.layer())
        .with_top(5)
        .with_maps(true);
    let acts = viz.activations(&[file], &config, &mut ())?;
    let image = &acts.images[0];
    println!("most active maps of {}: {:?}", acts.layer, image.top);

    // The input first, then each top map as a heat map over it.
    let mut tiles = vec![Tile {
        image: input.clone(),
        title: "input".into(),
    }];
    for map in &image.maps {
        let drawn = heatmap(
            &input,
            &map.values,
            map.width,
            map.height,
            &HeatmapStyle::default(),
        )?;
        let title = format!("filter {} · {:.2}", map.channel, image.mean[map.channel]);
        tiles.push(Tile {
            image: drawn,
            title,
        });
    }
    std::fs::write(out.join("top_maps.png"), png_bytes(&grid(&tiles, 3, 128)?)?)?;
    let plot = mean_activation_plot(image, format!("rings · {}", acts.layer));
    std::fs::write(out.join("means.svg"), plot.render(PlotFormat::Svg)?)?;
    println!("wrote top_maps.png and means.svg to {}", out.display());
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

#[test]
fn runs_on_the_demo() {
    main().unwrap();
}
