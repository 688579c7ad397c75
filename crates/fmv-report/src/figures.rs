//! The report's pictures: each function turns one stage's plain results into image files (kept
//! in memory, under paths relative to the report's folder) and returns what the page and
//! `results.json` need to show them.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use fmv_core::{
    ClassSums, Event, FilterMapsConfig, ImageActivations, ImageFolder, Observer, Pattern, Ranking,
    Visualizer,
};
use fmv_models::{Family, LayerRef};
use fmv_render::{HeatmapStyle, PlotFormat, RenderError, Tile, grid, heatmap, overlay};
use fmv_render::{png_bytes, with_colour_bar};

use crate::config::Style;
use crate::documents::show;
use crate::draw::{class_sums_plot, mask_scale, mean_activation_plot, rank_chart, to_image};
use crate::results::{MapsRowDocument, ShownImage, ShownPattern, TopMapsDocument};
use crate::{Error, ReportFile, Result};

/// Size of a picture's cell in the grids, in pixels.
const CELL: u32 = 128;

/// What every figure needs: where its files go, which layer, how to draw.
pub struct Ctx {
    /// The files written so far, paths relative to the report's folder.
    pub files: RefCell<Vec<ReportFile>>,
    /// The layer, as the library addresses it.
    pub layer: LayerRef,
    /// Its name.
    pub layer_name: String,
    /// The network family (the original scales masks by it).
    pub family: Family,
    /// How to draw.
    pub style: Style,
    /// Whether plots are written as SVG too.
    pub svg: bool,
}

/// A written figure: the PNG (and SVG) paths relative to the output folder, and its alt text.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The PNG, relative to the output folder.
    pub png: String,
    /// The SVG, if written.
    pub svg: Option<String>,
    /// Alt text.
    pub alt: String,
}

impl Ctx {
    /// Keeps `bytes` as the file `rel`.
    fn write(&self, rel: &str, bytes: Vec<u8>) {
        self.files.borrow_mut().push(ReportFile {
            path: rel.to_string(),
            bytes,
        });
    }

    fn write_png(&self, rel: &str, img: &image::RgbImage) -> Result<String> {
        self.write(rel, png_bytes(img)?);
        Ok(rel.to_string())
    }

    /// Writes a plot as PNG, and as SVG when asked.
    fn write_plot(
        &self,
        rel_stem: &str,
        alt: String,
        png: impl Fn() -> std::result::Result<image::RgbImage, RenderError>,
        svg: impl Fn() -> std::result::Result<Vec<u8>, RenderError>,
    ) -> Result<Figure> {
        let png = self.write_png(&format!("{rel_stem}.png"), &png()?)?;
        let svg = if self.svg {
            let rel = format!("{rel_stem}.svg");
            self.write(&rel, svg()?);
            Some(rel)
        } else {
            None
        };
        Ok(Figure { png, svg, alt })
    }

    /// One map over its image, in the chosen style. `max` is the heat map's top value.
    fn draw_map(
        &self,
        input: &image::RgbImage,
        map: &[f32],
        (w, h): (usize, usize),
        summed: bool,
        max: f32,
    ) -> Result<image::RgbImage> {
        if self.style == Style::Heatmap {
            let style = HeatmapStyle {
                max: Some(max),
                colour_bar: false,
                ..HeatmapStyle::default()
            };
            return Ok(heatmap(input, map, w, h, &style)?);
        }
        let scale = mask_scale(self.family, if summed { 2 } else { 1 });
        Ok(overlay(input, map, w, h, scale)?)
    }

    /// A grid with, in heat-map style, one colour bar for all its maps.
    fn finish_grid(&self, tiles: &[Tile], columns: usize, max: f32) -> Result<image::RgbImage> {
        let g = grid(tiles, columns, CELL)?;
        Ok(if self.style == Style::Heatmap {
            with_colour_bar(&g, 0.0, max)?
        } else {
            g
        })
    }
}

/// A file-name-safe version of a class name.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| show(p))
}

/// Rank's bar chart.
pub fn rank(ctx: &Ctx, ranking: &Ranking) -> Result<Figure> {
    let chart = rank_chart(ranking);
    let alt = format!(
        "Bar chart: for each class, its unique maps of {} and the fraction of the class's training images that had each among their most active maps.",
        ranking.layer
    );
    ctx.write_plot(
        "rank",
        alt,
        || chart.to_image(),
        || chart.render(PlotFormat::Svg),
    )
}

/// Writes one pattern image.
pub fn pattern(ctx: &Ctx, class: &str, p: &Pattern) -> Result<ShownPattern> {
    let rel = format!("patterns/{}_{}.png", slug(class), p.filter);
    ctx.write_png(&rel, &to_image(&p.to_rgb8()))?;
    Ok(ShownPattern {
        class: class.to_string(),
        filter: p.filter,
        final_activation: p.final_activation,
        file: rel,
    })
}

/// One sample image's top maps: a grid (input first) and the plot of every map's mean.
#[derive(Debug, Clone)]
pub struct TopMaps {
    /// The image's class.
    pub class: String,
    /// The image's file name.
    pub image: String,
    /// The most active maps, most active first, with their means.
    pub top: Vec<(usize, f32)>,
    /// The grid of overlays.
    pub grid: Figure,
    /// The plot of every map's mean activation.
    pub plot: Figure,
    /// What the network predicts for the image, where it has a classifier.
    pub predicted: Option<crate::results::Prediction>,
}

impl TopMaps {
    /// The entry in `results.json`.
    pub fn document(&self) -> TopMapsDocument {
        TopMapsDocument {
            class: self.class.clone(),
            image: self.image.clone(),
            top: self.top.iter().map(|t| t.0).collect(),
            top_means: self.top.iter().map(|t| t.1 as f64).collect(),
            grid: self.grid.png.clone(),
            plot: self.plot.png.clone(),
            predicted: self.predicted.clone(),
        }
    }
}

/// Draws viz 2 for one image.
pub fn top_maps(ctx: &Ctx, class: &str, img: &ImageActivations) -> Result<TopMaps> {
    let input = to_image(
        img.input
            .as_ref()
            .expect("the activations were asked with their maps"),
    );
    let name = file_name(&img.path);
    let max = img
        .maps
        .iter()
        .flat_map(|m| m.values.iter().copied())
        .fold(0.0, f32::max);
    let mut tiles = vec![Tile {
        image: input.clone(),
        title: name.clone(),
    }];
    for m in &img.maps {
        tiles.push(Tile {
            image: ctx.draw_map(&input, &m.values, (m.width, m.height), false, max)?,
            title: format!(
                "{} · filter {} · {:.2}",
                ctx.layer_name, m.channel, img.mean[m.channel]
            ),
        });
    }
    let stem = format!("top-maps/{}", slug(&name));
    let grid_png = ctx.write_png(&format!("{stem}.png"), &ctx.finish_grid(&tiles, 4, max)?)?;
    let top: Vec<(usize, f32)> = img.top.iter().map(|&c| (c, img.mean[c])).collect();
    let plot = mean_activation_plot(
        img,
        format!("{name} · {} · mean activation of every map", ctx.layer_name),
    );
    let plot_fig = ctx.write_plot(
        &format!("{stem}_means"),
        format!(
            "Plot of the mean activation of each of the {} maps of {} for {name}; the {} most active are marked: {}.",
            img.mean.len(),
            ctx.layer_name,
            img.top.len(),
            img.top.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
        ),
        || plot.to_image(),
        || plot.render(PlotFormat::Svg),
    )?;
    Ok(TopMaps {
        class: class.to_string(),
        image: name.clone(),
        grid: Figure {
            png: grid_png,
            svg: None,
            alt: format!(
                "{name} and its {} most active maps of {} overlaid on it: {}.",
                top.len(),
                ctx.layer_name,
                top.iter()
                    .map(|(c, m)| format!("filter {c} (mean {m:.2})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        plot: plot_fig,
        top,
        predicted: None,
    })
}

/// Up to `n` test images per class, as `(class, file)`, by class.
pub fn pick_images(test: &ImageFolder, n: usize) -> Vec<Vec<(String, PathBuf)>> {
    test.classes
        .iter()
        .map(|c| {
            c.files
                .iter()
                .take(n)
                .map(|f| (c.name.clone(), f.clone()))
                .collect()
        })
        .collect()
}

/// Some maps of one class over its own test images (first row) and the other classes'
/// (second row).
#[derive(Debug, Clone)]
pub struct MapsRow {
    /// The class whose maps these are.
    pub class: String,
    /// The maps (summed when several).
    pub maps: Vec<usize>,
    /// The grid.
    pub grid: Figure,
    /// `(true class, image file, mean activation)` per image shown.
    pub images: Vec<(String, String, f32)>,
}

impl MapsRow {
    /// The entry in `results.json`.
    pub fn document(&self) -> MapsRowDocument {
        MapsRowDocument {
            class: self.class.clone(),
            maps: self.maps.clone(),
            grid: self.grid.png.clone(),
            images: self
                .images
                .iter()
                .map(|(c, f, m)| ShownImage {
                    class: c.clone(),
                    image: f.clone(),
                    mean: *m as f64,
                })
                .collect(),
        }
    }
}

/// Draws viz 3 (one map) or viz 4 (several, summed) for `class`.
pub fn maps_row(
    viz: &Visualizer,
    ctx: &Ctx,
    (section, class, maps): (&str, &str, &[usize]),
    picks: &[Vec<(String, PathBuf)>],
    observer: &mut dyn Observer,
) -> Result<MapsRow> {
    let n = picks.iter().map(Vec::len).max().unwrap_or(0);
    let own: Vec<(String, PathBuf)> = picks
        .iter()
        .flatten()
        .filter(|(c, _)| c == class)
        .cloned()
        .collect();
    // The other classes' images, round-robin, as many as the class's own.
    let others: Vec<(String, PathBuf)> = (0..n)
        .flat_map(|i| {
            picks
                .iter()
                .filter_map(move |p| p.get(i))
                .filter(|(c, _)| c != class)
        })
        .take(own.len().max(1))
        .cloned()
        .collect();
    let chosen: Vec<(String, PathBuf)> = own.iter().chain(&others).cloned().collect();
    let files: Vec<PathBuf> = chosen.iter().map(|(_, f)| f.clone()).collect();
    let cfg = FilterMapsConfig::new(ctx.layer.clone(), maps.to_vec());
    let mut shown = Vec::new();
    let mut keep = Keep {
        shown: &mut shown,
        observer,
    };
    viz.filter_maps(&files, &cfg, &mut keep)?;
    if shown.len() != chosen.len() {
        return Err(Error::Unreadable {
            class: class.to_string(),
            missing: chosen.len() - shown.len(),
            chosen: chosen.len(),
        });
    }
    let max = shown
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .fold(0.0, f32::max);
    let summed = maps.len() > 1;
    let mut tiles = Vec::new();
    for ((true_class, _), (input, map, size, mean)) in chosen.iter().zip(&shown) {
        tiles.push(Tile {
            image: ctx.draw_map(input, map, *size, summed, max)?,
            title: format!("{true_class} · {mean:.2}"),
        });
    }
    let columns = own.len().max(1);
    let label = if summed {
        format!("maps {:?}", maps)
    } else {
        format!("filter {}", maps[0])
    };
    let rel = format!("{section}/{}.png", slug(class));
    let png = ctx.write_png(&rel, &ctx.finish_grid(&tiles, columns, max)?)?;
    Ok(MapsRow {
        class: class.to_string(),
        maps: maps.to_vec(),
        grid: Figure {
            png,
            svg: None,
            alt: format!(
                "{label} of {} for class {class}, overlaid on {} of its test images (first row) and {} images of other classes (second row), each titled with its mean activation: {}.",
                ctx.layer_name,
                own.len(),
                others.len(),
                chosen
                    .iter()
                    .zip(&shown)
                    .map(|((c, f), s)| format!("{} ({c}) {:.2}", file_name(f), s.3))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        images: chosen
            .iter()
            .zip(&shown)
            .map(|((c, f), s)| (c.clone(), show(f), s.3))
            .collect(),
    })
}

/// The class-sums figure.
pub fn class_sums(ctx: &Ctx, sums: &ClassSums) -> Result<Figure> {
    let plot = class_sums_plot(sums);
    let alt = format!(
        "For each class's unique maps, the summed activation on every test image, coloured by true class. ROC AUC of each class against the rest: {}.",
        sums.top_maps
            .iter()
            .zip(&sums.separability)
            .map(|((k, _), a)| match a {
                Some(a) => format!("{k} {a:.2}"),
                None => format!("{k} n/a"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    ctx.write_plot(
        "class-sums",
        alt,
        || plot.to_image(),
        || plot.render(PlotFormat::Svg),
    )
}

/// One image of a maps row, drawn: the input, the summed map, its size and the mean.
type Shown = (image::RgbImage, Vec<f32>, (usize, usize), f32);

/// Keeps each image's summed map as it streams in, and passes every event on.
struct Keep<'a> {
    shown: &'a mut Vec<Shown>,
    observer: &'a mut dyn Observer,
}

impl Observer for Keep<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Event::Maps(m) = event {
            let sum = crate::draw::sum_maps(&m.maps, m.width * m.height);
            self.shown
                .push((to_image(&m.input), sum, (m.width, m.height), m.mean));
        }
        self.observer.on_event(event);
    }

    fn should_stop(&mut self) -> bool {
        self.observer.should_stop()
    }
}
