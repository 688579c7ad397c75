//! The report's pictures: each function turns one stage's plain results into image files (kept
//! in memory, under paths relative to the report's folder) and returns what the page and
//! `results.json` need to show them.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use fmv_core::{
    Ablation, ClassSums, Event, ExemplarStat, Exemplars, FilterMapsConfig, ImageActivations,
    ImageFolder, MapExemplars, Observer, Pattern, Ranking, Visualizer,
};
use fmv_models::{Family, LayerRef};
use fmv_render::{
    AblatedClass, AblationChart, HeatmapStyle, PlotFormat, RenderError, Tile, grid, heatmap,
    overlay,
};
use fmv_render::{cell_region, outline, png_bytes, with_caption, with_colour_bar};

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
        size: (usize, usize),
        summed: bool,
        max: f32,
    ) -> Result<image::RgbImage> {
        draw_map((self.style, self.family), input, map, size, summed, max)
    }

    /// A grid with, in heat-map style, one colour bar for all its maps.
    fn finish_grid(&self, tiles: &[Tile], columns: usize, max: f32) -> Result<image::RgbImage> {
        finish_grid(self.style, tiles, columns, max)
    }
}

/// One map over its image, in `style` (the original's overlay scales by the `family`). `max`
/// is the heat map's top value.
fn draw_map(
    (style, family): (Style, Family),
    input: &image::RgbImage,
    map: &[f32],
    (w, h): (usize, usize),
    summed: bool,
    max: f32,
) -> Result<image::RgbImage> {
    if style == Style::Heatmap {
        let style = HeatmapStyle {
            max: Some(max),
            colour_bar: false,
            ..HeatmapStyle::default()
        };
        return Ok(heatmap(input, map, w, h, &style)?);
    }
    let scale = mask_scale(family, if summed { 2 } else { 1 });
    Ok(overlay(input, map, w, h, scale)?)
}

/// A grid with, in heat-map style, one colour bar for all its maps.
fn finish_grid(style: Style, tiles: &[Tile], columns: usize, max: f32) -> Result<image::RgbImage> {
    let g = grid(tiles, columns, CELL)?;
    Ok(if style == Style::Heatmap {
        with_colour_bar(&g, 0.0, max)?
    } else {
        g
    })
}

/// The colour of the box around a map's most active place.
const BOX: [u8; 3] = [230, 30, 30];

/// One map's exemplars drawn: the grid, and the crops when asked for.
#[derive(Debug, Clone)]
pub struct ExemplarPictures {
    /// `lead` first (the map's pattern, in the report), then each image with the map overlaid
    /// (one scale for all) and a box around the map's most active place, titled with the file
    /// and its score, under a caption.
    pub grid: image::RgbImage,
    /// Each image's most active place cut out of the image as the network saw it (after
    /// resizing, at its resolution): the most active cell and one cell around it, in a row
    /// titled with each file, under a caption.
    pub crops: Option<image::RgbImage>,
}

/// Draws one map's exemplars ([`ExemplarPictures`]) in `style`, the crops too if `crops`.
///
/// The maps are computed again, once, for the few images shown (`viz` must be the network and
/// preprocessing that found the exemplars); an image that can no longer be read is an error.
pub fn exemplar_pictures(
    viz: &Visualizer,
    exemplars: &Exemplars,
    map: &MapExemplars,
    (style, lead): (Style, Option<Tile>),
    crops: bool,
    observer: &mut dyn Observer,
) -> Result<ExemplarPictures> {
    let files: Vec<PathBuf> = map.top.iter().map(|e| e.path.clone()).collect();
    let layer = LayerRef::Name(exemplars.layer.clone());
    let cfg = FilterMapsConfig::new(layer, vec![map.filter]).with_strict(true);
    let mut shown = Vec::new();
    let mut keep = Keep {
        shown: &mut shown,
        observer,
    };
    viz.filter_maps(&files, &cfg, &mut keep)?;
    let family = viz.backbone().family();
    Ok(ExemplarPictures {
        grid: exemplar_grid(exemplars, map, (style, family, lead), &shown)?,
        crops: crops
            .then(|| exemplar_crops(exemplars, map, &shown))
            .transpose()?,
    })
}

/// [`ExemplarPictures::grid`], from the images' maps.
fn exemplar_grid(
    exemplars: &Exemplars,
    map: &MapExemplars,
    (style, family, lead): (Style, Family, Option<Tile>),
    shown: &[Shown],
) -> Result<image::RgbImage> {
    let max = shown
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .fold(0.0, f32::max);
    let mut tiles: Vec<Tile> = lead.into_iter().collect();
    for (e, (input, values, size, _)) in map.top.iter().zip(shown) {
        let mut image = draw_map((style, family), input, values, *size, false, max)?;
        let region = cell_region(e.argmax, (size.1, size.0), image.dimensions());
        let thickness = (image.width().max(image.height()) / 90).max(2);
        outline(&mut image, region, BOX, thickness);
        let score = match exemplars.by {
            ExemplarStat::Mean => e.mean,
            ExemplarStat::Max => e.max,
        };
        tiles.push(Tile {
            image,
            title: format!("{} · {score:.2}", file_name(&e.path)),
        });
    }
    let columns = if tiles.len() > 5 {
        tiles.len().div_ceil(2)
    } else {
        tiles.len()
    };
    let g = finish_grid(style, &tiles, columns, max)?;
    let caption = format!(
        "{} · filter {} · its {} most active of {} images, by {} (box: the most active place)",
        exemplars.layer,
        map.filter,
        map.top.len(),
        exemplars.images,
        exemplars.by.as_str()
    );
    Ok(with_caption(&g, &caption)?)
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
        steps: p.steps(),
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

/// [`ExemplarPictures::crops`], from the images' maps.
fn exemplar_crops(
    exemplars: &Exemplars,
    map: &MapExemplars,
    shown: &[Shown],
) -> Result<image::RgbImage> {
    let mut tiles = Vec::new();
    for (e, (input, _, (w, h), _)) in map.top.iter().zip(shown) {
        // Inside the map, whatever a merged part claimed.
        let (y, x) = (e.argmax.0.min(h - 1), e.argmax.1.min(w - 1));
        let first = (y.saturating_sub(1), x.saturating_sub(1));
        let last = ((y + 1).min(h - 1), (x + 1).min(w - 1));
        let (x0, y0, _, _) = cell_region(first, (*h, *w), input.dimensions());
        let (_, _, x1, y1) = cell_region(last, (*h, *w), input.dimensions());
        let crop = image::imageops::crop_imm(input, x0, y0, x1 - x0, y1 - y0).to_image();
        tiles.push(Tile {
            image: crop,
            title: file_name(&e.path),
        });
    }
    let g = grid(&tiles, tiles.len(), CELL)?;
    let caption = format!(
        "{} · filter {} · each image's most active place and one cell around it ({}×{} map)",
        exemplars.layer, map.filter, exemplars.map_size.0, exemplars.map_size.1
    );
    Ok(with_caption(&g, &caption)?)
}

/// One map's exemplars as the report shows them.
#[derive(Debug, Clone)]
pub struct ShownExemplars {
    /// The class whose unique map this is.
    pub class: String,
    /// The map.
    pub filter: usize,
    /// The grid: the pattern, then the images.
    pub grid: Figure,
}

/// The exemplars of each class's maps, each grid led by the map's pattern when there is one.
pub fn exemplars(
    viz: &Visualizer,
    ctx: &Ctx,
    found: &Exemplars,
    classes: &[(String, Vec<usize>)],
    patterns: &[(usize, image::RgbImage)],
    observer: &mut dyn Observer,
) -> Result<Vec<ShownExemplars>> {
    let mut out = Vec::new();
    for (class, maps) in classes {
        for &filter in maps {
            let Some(map) = found.map(filter) else {
                continue;
            };
            let lead = patterns
                .iter()
                .find(|(f, _)| *f == filter)
                .map(|(_, image)| Tile {
                    image: image.clone(),
                    title: "pattern".into(),
                });
            let g = exemplar_pictures(viz, found, map, (ctx.style, lead), false, observer)?.grid;
            let rel = format!("exemplars/{}_{filter}.png", slug(class));
            let png = ctx.write_png(&rel, &g)?;
            let alt = format!(
                "Filter {filter} of {} (a unique map of class {class}): its pattern, then the {} images of the training and test folders where it is most active by {}, the map overlaid and its most active place boxed: {}.",
                ctx.layer_name,
                map.top.len(),
                found.by.as_str(),
                map.top
                    .iter()
                    .map(|e| format!("{} {:.2}", file_name(&e.path), e.mean))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            out.push(ShownExemplars {
                class: class.clone(),
                filter,
                grid: Figure {
                    png,
                    svg: None,
                    alt,
                },
            });
        }
    }
    Ok(out)
}

/// The ablation chart.
pub fn ablation(ctx: &Ctx, a: &Ablation) -> Result<Figure> {
    let chart = AblationChart {
        title: format!("ablation · {}", a.layer),
        classes: a
            .classes
            .iter()
            .map(|c| AblatedClass {
                name: c.name.clone(),
                drop: c.drop as f32,
                random: c
                    .random
                    .as_ref()
                    .map(|r| r.drops.iter().map(|&d| d as f32).collect())
                    .unwrap_or_default(),
                each: c.each.iter().map(|&(m, d)| (m, d as f32)).collect(),
            })
            .collect(),
    };
    let alt = format!(
        "For each class, how much its mean logit drops when its unique maps of {} are zeroed, against random sets of as many other maps: {}.",
        a.layer,
        a.classes
            .iter()
            .map(|c| match (&c.random, c.z) {
                (Some(r), Some(z)) => format!(
                    "{} drop {:.2} (random {:.2} ± {:.2}, z {z:.1})",
                    c.name, c.drop, r.mean_drop, r.sd_drop
                ),
                _ => format!("{} drop {:.2}", c.name, c.drop),
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    ctx.write_plot(
        "ablation",
        alt,
        || chart.to_image(),
        || chart.render(PlotFormat::Svg),
    )
}
