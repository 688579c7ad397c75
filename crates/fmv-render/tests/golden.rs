//! Golden-image tests: each figure is drawn from fixed data and compared with a committed PNG
//! under `tests/golden/`, within `Tolerance::default()` (antialiasing may differ by a unit
//! between platforms). `UPDATE_GOLDEN=1 cargo test -p fmv-render --test golden` rewrites
//! the goldens; on a mismatch the actual image is written to `target/golden-actual/`.

use std::path::PathBuf;

use fmv_render::{
    ClassSumsPanel, ClassSumsPlot, HeatmapStyle, MaskScale, MeanActivationPlot, PlotFormat,
    RankChart, RankedClass, Tile, Tolerance, grid, heatmap, image_difference, overlay,
};

/// Largest allowed golden file.
const MAX_GOLDEN_BYTES: u64 = 20 * 1024;

fn check(name: &str, actual: &image::RgbImage) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let path = dir.join(format!("{name}.png"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, fmv_render::png_bytes(actual).unwrap()).unwrap();
    }
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|_| panic!("no golden {} (run with UPDATE_GOLDEN=1)", path.display()))
        .len();
    assert!(
        size <= MAX_GOLDEN_BYTES,
        "{name}.png is {size} bytes, over 20 KiB"
    );
    let golden = image::open(&path).unwrap().to_rgb8();
    let failure = image_difference(actual, &golden, Tolerance::default());
    if let Some(why) = failure {
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/golden-actual");
        std::fs::create_dir_all(&out).unwrap();
        let actual_path = out.join(format!("{name}.png"));
        actual.save(&actual_path).unwrap();
        panic!(
            "{name} differs from its golden: {why}; actual image: {}",
            actual_path.display()
        );
    }
}

/// A fixed picture: a colour gradient with a dark disc.
fn picture(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - w as f32 * 0.6, y as f32 - h as f32 * 0.4);
        let inside = dx * dx + dy * dy < (w.min(h) as f32 * 0.25).powi(2);
        let k = if inside { 0.35 } else { 1.0 };
        image::Rgb([
            (k * (60.0 + 180.0 * x as f32 / w as f32)) as u8,
            (k * (200.0 - 120.0 * y as f32 / h as f32)) as u8,
            (k * 150.0) as u8,
        ])
    })
}

/// A fixed 6×6 map with one hot spot.
fn map() -> Vec<f32> {
    (0..36)
        .map(|i| {
            let (x, y) = ((i % 6) as f32, (i / 6) as f32);
            (2.0 - ((x - 3.5).powi(2) + (y - 2.0).powi(2)) / 6.0).max(0.0)
        })
        .collect()
}

#[test]
fn mean_activation_plot() {
    let means: Vec<f32> = (0..64)
        .map(|c| ((c * 37 % 64) as f32 / 64.0).powi(3) * 2.0)
        .collect();
    let mut top: Vec<usize> = (0..means.len()).collect();
    top.sort_by(|&a, &b| means[b].total_cmp(&means[a]));
    top.truncate(3);
    let plot = MeanActivationPlot {
        title: "rings_003.png · layer3".into(),
        means,
        top,
    };
    check("mean_activation", &plot.to_image().unwrap());
}

#[test]
fn class_sums_plot() {
    let classes: Vec<String> = ["blobs", "rings", "stripes"].map(String::from).into();
    let panels = (0..2)
        .map(|m| ClassSumsPanel {
            map_class: classes[m].clone(),
            points: (0..18)
                .map(|i| {
                    let c = i % 3;
                    (c, if c == m { 4.0 } else { 1.0 } + (i * 7 % 5) as f32 * 0.3)
                })
                .collect(),
            auc: Some(1.0 - m as f64 * 0.05),
        })
        .collect();
    let plot = ClassSumsPlot {
        title: "class sums · layer3".into(),
        classes,
        panels,
    };
    check("class_sums", &plot.to_image().unwrap());
}

#[test]
fn rank_chart() {
    let chart = RankChart {
        title: "rank · layer3 · 5 of 8".into(),
        classes: vec![
            RankedClass {
                name: "blobs".into(),
                maps: vec![(12, 0.95), (40, 0.7), (3, 0.4)],
            },
            RankedClass {
                name: "rings".into(),
                maps: vec![(7, 1.0), (55, 0.5)],
            },
        ],
    };
    check("rank_chart", &chart.to_image().unwrap());
}

#[test]
fn heatmap_with_colour_bar() {
    let out = heatmap(&picture(96, 96), &map(), 6, 6, &HeatmapStyle::default()).unwrap();
    check("heatmap", &out);
}

#[test]
fn grid_of_overlays_input_first() {
    let img = picture(96, 96);
    let grey = overlay(&img, &map(), 6, 6, MaskScale::Factor(2.0)).unwrap();
    let style = HeatmapStyle {
        colour_bar: false,
        ..HeatmapStyle::default()
    };
    let heat = heatmap(&img, &map(), 6, 6, &style).unwrap();
    let tiles = [
        Tile {
            image: img,
            title: "input".into(),
        },
        Tile {
            image: grey,
            title: "layer3 · filter 45 · 0.83".into(),
        },
        Tile {
            image: heat,
            title: "layer3 · filter 45 · 0.83".into(),
        },
    ];
    check("grid", &grid(&tiles, 3, 96).unwrap());
}

#[test]
fn svg_carries_the_font_and_no_system_font_name() {
    let plot = MeanActivationPlot {
        title: "t".into(),
        means: vec![1.0, 2.0],
        top: vec![1],
    };
    let svg = String::from_utf8(plot.render(PlotFormat::Svg).unwrap()).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("@font-face{font-family:\"fmv-sans\";src:url(data:font/ttf;base64,"));
    assert!(!svg.contains("sans-serif"), "the SVG names a system font");
}

#[test]
fn bad_data_is_an_error_that_names_it() {
    let nan = MeanActivationPlot {
        title: "t".into(),
        means: vec![1.0, f32::NAN],
        top: vec![],
    };
    let e = nan.render(PlotFormat::Png).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
    let out_of_range = MeanActivationPlot {
        title: "t".into(),
        means: vec![1.0],
        top: vec![4],
    };
    let e = out_of_range.to_image().unwrap_err().to_string();
    assert!(e.contains("top channel 4 is out of range"), "{e}");
    let e = grid(&[], 3, 10).unwrap_err().to_string();
    assert!(e.contains("at least one tile"), "{e}");
    let e = heatmap(&picture(4, 4), &[1.0; 3], 2, 2, &HeatmapStyle::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 values cannot be 2×2"), "{e}");
}
