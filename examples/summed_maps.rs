//! Several maps summed, many images (viz 4): a class's unique maps added up and drawn over
//! images, with each image's summed mean activation.
//!
//! `cargo run --release -p fmv-examples --example summed_maps`

use fmv::core::demo::{DEMO_SIZE, write_image_folder};
use fmv::models::demo::DemoNet;
use fmv::prelude::*;
use fmv::render::{HeatmapStyle, Tile, grid, heatmap, png_bytes};
use fmv::report::draw::{sum_maps, to_image};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("fmv-example-summed-{}", std::process::id()));
    write_image_folder(&dir.join("train"), 12, 1)?;
    write_image_folder(&dir.join("test"), 2, 200)?;
    let net = DemoNet::ResNet;
    let viz = Visualizer::new(net.load(&LoadOptions::new())?)
        .with_preprocess(Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE));

    // The maps unique to `rings`, from a ranking of the training images.
    let train = ImageFolder::open(dir.join("train"), None)?;
    let ranking = viz.rank(
        &train,
        &RankConfig::new(net.layer())
            .with_n_each_img(8)
            .with_n_each_class(8),
        &mut (),
    )?;
    let rings = ranking
        .classes
        .iter()
        .find(|c| c.name == "rings")
        .ok_or("no rings class")?;
    println!("maps unique to rings: {:?}", rings.unique);
    if rings.unique.is_empty() {
        return Ok(());
    }

    let test = ImageFolder::open(dir.join("test"), None)?;
    let files: Vec<_> = test.classes.iter().flat_map(|c| c.files.clone()).collect();
    let mut tiles = Vec::new();
    let style = HeatmapStyle {
        colour_bar: false,
        ..HeatmapStyle::default()
    };
    // Each image's maps arrive as an event: sum them and draw the sum as a heat map.
    viz.filter_maps(
        &files,
        &FilterMapsConfig::new(net.layer(), rings.unique.clone()),
        &mut |event: &Event| {
            if let Event::Maps(maps) = event {
                let sum = sum_maps(&maps.maps, maps.width * maps.height);
                let input = to_image(&maps.input);
                let drawn =
                    heatmap(&input, &sum, maps.width, maps.height, &style).expect("map shape");
                let name = maps.path.file_name().unwrap_or_default().to_string_lossy();
                println!("{name}: summed mean activation {:.3}", maps.mean);
                tiles.push(Tile {
                    image: drawn,
                    title: format!("{name} · {:.2}", maps.mean),
                });
            }
        },
    )?;
    std::fs::write(dir.join("summed.png"), png_bytes(&grid(&tiles, 4, 128)?)?)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn runs_on_the_demo() {
    main().unwrap();
}
