//! One map, many images (viz 3): one feature map drawn over many images, with each image's
//! mean activation, streamed (memory stays flat however many images there are).
//!
//! `cargo run --release -p fmv-examples --example one_map`

use fmv::core::demo::{DEMO_SIZE, write_image_folder};
use fmv::models::demo::DemoNet;
use fmv::render::{MaskScale, image, overlay, png_bytes};
use fmv::{FilterMapsConfig, ImageFolder, LoadOptions, Preprocess, Visualizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("fmv-example-one-map-{}", std::process::id()));
    write_image_folder(&dir.join("test"), 3, 100)?;
    let test = ImageFolder::open(dir.join("test"), None)?;
    let files: Vec<_> = test.classes.iter().flat_map(|c| c.files.clone()).collect();

    let net = DemoNet::ResNet;
    let viz = Visualizer::new(net.load(&LoadOptions::new())?)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));
    let config = FilterMapsConfig::new(net.layer(), vec![4]);
    let skipped = viz.filter_maps(
        &files,
        &config,
        &mut |maps| {
            // The original's drawing: the map as a grey mask, ×2 for a ResNet.
            let input = image::RgbImage::from_raw(
                maps.input.width as u32,
                maps.input.height as u32,
                maps.input.pixels.clone(),
            )
            .expect("width × height × 3 bytes");
            let drawn = overlay(
                &input,
                &maps.maps[0],
                maps.width,
                maps.height,
                MaskScale::Factor(2.0),
            )
            .map_err(|e| fmv::core::Error::Io {
                path: maps.path.clone(),
                source: std::io::Error::other(e),
            })?;
            let name = maps
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let out = dir.join(format!("filter4_{name}"));
            std::fs::write(&out, png_bytes(&drawn).expect("PNG encoding")).map_err(|e| {
                fmv::core::Error::Io {
                    path: out,
                    source: e,
                }
            })?;
            println!("{name}: mean activation of filter 4 = {:.3}", maps.mean);
            Ok(())
        },
        &mut |_| {},
    )?;
    assert!(skipped.is_empty());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn runs_on_the_demo() {
    main().unwrap();
}
