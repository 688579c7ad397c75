//! The demo image set: procedurally generated pictures of a few visually distinct classes,
//! the same from a seed on every machine. The embedded demo networks
//! (`fmv_models::demo`) were trained on it by `cargo xtask train-demo`, and `fmv report`
//! without arguments analyses it.
//!
//! ```
//! use fmv_core::demo::{DemoClass, generate};
//! let a = generate(DemoClass::Rings, 7, 64);
//! let b = generate(DemoClass::Rings, 7, 64);
//! assert_eq!(a, b); // the same seed gives the same picture
//! assert_eq!((a.width, a.height), (64, 64));
//! ```

use std::path::Path;

use crate::decode::RgbImage;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Side of the demo images in pixels, and the demo networks' input size.
pub const DEMO_SIZE: usize = 96;

/// The classes of the demo image set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DemoClass {
    /// Parallel stripes at a random angle, period and phase.
    Stripes,
    /// A checkerboard, rotated, of random cell size.
    Checkerboard,
    /// Ring outlines of random number, size and place.
    Rings,
    /// Filled round blobs of random number, size and place.
    Blobs,
}

impl DemoClass {
    /// Every class, in label order (the order of the folders and of the networks' logits).
    pub const ALL: [DemoClass; 4] = [
        DemoClass::Blobs,
        DemoClass::Checkerboard,
        DemoClass::Rings,
        DemoClass::Stripes,
    ];

    /// The folder name: `blobs`, `checkerboard`, `rings`, `stripes`.
    pub fn name(self) -> &'static str {
        match self {
            DemoClass::Stripes => "stripes",
            DemoClass::Checkerboard => "checkerboard",
            DemoClass::Rings => "rings",
            DemoClass::Blobs => "blobs",
        }
    }

    /// The label: the class's index in [`DemoClass::ALL`].
    pub fn label(self) -> usize {
        DemoClass::ALL
            .iter()
            .position(|&c| c == self)
            .expect("every class is in ALL")
    }
}

/// A random saturated-ish colour and a contrasting one.
fn colour_pair(rng: &mut Rng) -> ([f64; 3], [f64; 3]) {
    let a: [f64; 3] = std::array::from_fn(|_| rng.range(0.0, 1.0));
    // The second colour is pushed away from the first in every channel.
    let b: [f64; 3] = std::array::from_fn(|c| {
        let shift = rng.range(0.45, 0.9);
        if a[c] > 0.5 {
            a[c] - shift
        } else {
            a[c] + shift
        }
        .clamp(0.0, 1.0)
    });
    (a, b)
}

/// One picture of `class`, `size`×`size`, from `seed`.
pub fn generate(class: DemoClass, seed: u64, size: usize) -> RgbImage {
    // Mix the class into the seed so that the classes' streams differ.
    let mut rng = Rng::new(seed ^ ((class.label() as u64 + 1) << 56));
    let (fg, bg) = colour_pair(&mut rng);
    let s = size as f64;
    let cx = rng.range(0.2, 0.8) * s;
    let cy = rng.range(0.2, 0.8) * s;
    let angle = rng.range(0.0, std::f64::consts::PI);
    let (sin, cos) = angle.sin_cos();
    let period = rng.range(0.07, 0.16) * s;
    let phase = rng.range(0.0, 1.0);
    // Blobs and rings are scattered shapes: 6 to 15 of them, radius 4–11 % of the side.
    let shapes: Vec<(f64, f64, f64)> = (0..(6 + (rng.uniform() * 10.0) as usize))
        .map(|_| {
            (
                rng.range(0.0, s),
                rng.range(0.0, s),
                rng.range(0.04, 0.11) * s,
            )
        })
        .collect();
    let ring_width = rng.range(0.015, 0.03) * s;
    let noise = rng.range(0.0, 0.08);
    // A soft edge of about one pixel keeps the pictures free of aliasing.
    let edge = |v: f64| (v * 2.0).clamp(-1.0, 1.0) * 0.5 + 0.5;
    let mut pixels = Vec::with_capacity(size * size * 3);
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let u = (px - cx) * cos + (py - cy) * sin;
            let v = -(px - cx) * sin + (py - cy) * cos;
            let wave = |t: f64| ((t / period + phase) * std::f64::consts::TAU).sin() * period / 4.0;
            let t = match class {
                DemoClass::Stripes => edge(wave(u)),
                DemoClass::Checkerboard => {
                    edge(wave(u).signum() * wave(v).signum() * wave(u).abs().min(wave(v).abs()))
                }
                DemoClass::Rings => shapes
                    .iter()
                    .map(|&(bx, by, r)| {
                        let d = ((px - bx).powi(2) + (py - by).powi(2)).sqrt();
                        edge(ring_width / 2.0 - (d - r).abs())
                    })
                    .fold(0.0, f64::max),
                DemoClass::Blobs => shapes
                    .iter()
                    .map(|&(bx, by, r)| edge(r - ((px - bx).powi(2) + (py - by).powi(2)).sqrt()))
                    .fold(0.0, f64::max),
            };
            for c in 0..3 {
                let value = fg[c] * t + bg[c] * (1.0 - t) + noise * rng.normal();
                pixels.push((value.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
    RgbImage {
        width: size,
        height: size,
        pixels,
    }
}

/// Writes an ImageFolder of PNGs under `root`: one folder per class, `per_class` images
/// each, named `{class}_{i:03}.png`, the image `i` of a class made from seed
/// `seed + i`. Returns the number of files written.
pub fn write_image_folder(root: &Path, per_class: usize, seed: u64) -> Result<usize> {
    let io = |path: &Path, e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    for class in DemoClass::ALL {
        let dir = root.join(class.name());
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        for i in 0..per_class {
            let img = generate(class, seed.wrapping_add(i as u64), DEMO_SIZE);
            let path = dir.join(format!("{}_{i:03}.png", class.name()));
            let buf = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels)
                .expect("the buffer has width × height × 3 bytes");
            buf.save(&path)
                .map_err(|e| io(&path, std::io::Error::other(e)))?;
        }
    }
    Ok(per_class * DemoClass::ALL.len())
}
