//! Grids of titled pictures ("layer4.1 · filter 452 · 0.83"), the input image first.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::{Drawable, to_image};
use crate::error::RenderError;
use crate::font;

/// One picture of a grid and the title written above it.
#[derive(Debug, Clone)]
pub struct Tile {
    /// The picture; it is scaled (keeping its aspect) to fit the grid's cell.
    pub image: image::RgbImage,
    /// The title, one line.
    pub title: String,
}

/// Height of a tile's title band, in pixels.
const TITLE_BAND: u32 = 18;

/// Lays `tiles` out in rows of `columns`, each picture scaled to fit a `cell`×`cell` square
/// (smoothly, Catmull–Rom) under its title.
///
/// ```
/// use fmv_render::{grid, Tile};
/// let tile = |t: &str| Tile { image: image::RgbImage::new(10, 10), title: t.into() };
/// let out = grid(&[tile("input"), tile("filter 3"), tile("filter 7")], 2, 64).unwrap();
/// assert_eq!(out.dimensions(), (2 * 64 + 3 * 6, 2 * (64 + 18) + 3 * 6));
/// ```
pub fn grid(tiles: &[Tile], columns: usize, cell: u32) -> Result<image::RgbImage, RenderError> {
    if tiles.is_empty() || columns == 0 || cell == 0 {
        return Err(RenderError::Data(
            "a grid needs at least one tile, one column and a cell size".into(),
        ));
    }
    let columns = columns.min(tiles.len());
    let rows = tiles.len().div_ceil(columns);
    let layout = Layout {
        columns,
        rows,
        cell,
        titles: tiles.iter().map(|t| t.title.clone()).collect(),
    };
    let mut canvas = to_image(&layout)?;
    for (i, tile) in tiles.iter().enumerate() {
        let (x, y) = layout.origin(i);
        let (w, h) = tile.image.dimensions();
        if w == 0 || h == 0 {
            return Err(RenderError::Data(format!(
                "tile {i} (\"{}\") is empty",
                tile.title
            )));
        }
        let scale = cell as f64 / w.max(h) as f64;
        let (sw, sh) = (
            ((w as f64 * scale).round() as u32).max(1),
            ((h as f64 * scale).round() as u32).max(1),
        );
        let scaled = if (sw, sh) == (w, h) {
            tile.image.clone()
        } else {
            image::imageops::resize(&tile.image, sw, sh, image::imageops::FilterType::CatmullRom)
        };
        let dx = (cell - sw) / 2;
        let dy = (cell - sh) / 2;
        image::imageops::replace(
            &mut canvas,
            &scaled,
            (x + dx) as i64,
            (y + TITLE_BAND + dy) as i64,
        );
    }
    Ok(canvas)
}

const GAP: u32 = 6;

struct Layout {
    columns: usize,
    rows: usize,
    cell: u32,
    titles: Vec<String>,
}

impl Layout {
    /// Top-left corner of tile `i`'s title band.
    fn origin(&self, i: usize) -> (u32, u32) {
        let (c, r) = ((i % self.columns) as u32, (i / self.columns) as u32);
        (
            GAP + c * (self.cell + GAP),
            GAP + r * (self.cell + TITLE_BAND + GAP),
        )
    }
}

impl Drawable for Layout {
    fn size(&self) -> (u32, u32) {
        (
            self.columns as u32 * (self.cell + GAP) + GAP,
            self.rows as u32 * (self.cell + TITLE_BAND + GAP) + GAP,
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        for (i, title) in self.titles.iter().enumerate() {
            let (x, y) = self.origin(i);
            let (title, style) = fit(root, title, self.cell)?;
            let style = style.pos(Pos::new(HPos::Center, VPos::Top));
            root.draw_text(&title, &style, ((x + self.cell / 2) as i32, y as i32 + 2))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Fits `title` into `width` pixels: 12 px text, smaller down to 9 px, then shortened with an
/// ellipsis.
fn fit<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    width: u32,
) -> Result<(String, TextStyle<'static>), String> {
    let fits = |text: &str, style: &TextStyle<'static>| {
        root.estimate_text_size(text, style)
            .map(|(w, _)| w <= width)
            .map_err(|e| e.to_string())
    };
    for size in [12.0, 11.0, 10.0, 9.0] {
        let style = font::text(size);
        if fits(title, &style)? {
            return Ok((title.to_string(), style));
        }
    }
    let style = font::text(9.0);
    let mut chars: Vec<char> = title.chars().collect();
    while chars.len() > 1 {
        chars.pop();
        let short: String = chars.iter().chain(['…'].iter()).collect();
        if fits(&short, &style)? {
            return Ok((short, style));
        }
    }
    Ok(("…".into(), style))
}
