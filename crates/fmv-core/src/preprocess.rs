//! Turning a decoded image into the network's input: squash-resize (the original's), or
//! torchvision's eval transform (resize the shorter side, centre-crop), with Pillow's filters,
//! then `/255` and optional mean/std normalisation.

use std::path::Path;

use crate::decode::{DecodeError, Gray16, RgbImage, decode_rgb8};
use crate::error::{Error, Field, Problem, Result};
use crate::resize::{Interpolation, resize_pillow};

/// ImageNet's per-channel mean (RGB), as torchvision's pretrained models expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How an image is brought to the input's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Geometry {
    /// Resized to the input size, aspect ratio not kept (the original's).
    Squash,
    /// The shorter side resized to this many pixels, aspect ratio kept, then the centre
    /// cropped to the input size (torchvision's `Resize(n)`, `CenterCrop`).
    ShorterSide(usize),
}

/// How images become network inputs.
///
/// Three presets: [`Preprocess::original`] reproduces FeatureMapVisualizer exactly (inputs in
/// `[0, 1]`, no normalisation: what its numbers mean), [`Preprocess::imagenet`] adds the
/// normalisation pretrained torchvision weights were trained with (fmv's default), and
/// [`Preprocess::torchvision`] is torchvision's eval transform (`Resize(256)`,
/// `CenterCrop(224)`), which fine-tuned networks were usually validated with.
///
/// ```
/// use fmv_core::Preprocess;
/// let p = Preprocess::imagenet().with_size(256, 256);
/// assert_eq!(p.name(), "imagenet,size=256x256");
/// assert_eq!(Preprocess::original().name(), "original");
/// assert_eq!(Preprocess::torchvision().with_resize(232).name(), "torchvision,resize=232");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    preset: &'static str,
    width: usize,
    height: usize,
    geometry: Geometry,
    interpolation: Interpolation,
    mean: [f32; 3],
    std: [f32; 3],
    gray16: Gray16,
    modified: Vec<String>,
}

impl Preprocess {
    /// FeatureMapVisualizer's preprocessing, bit for bit: `convert('RGB')` (alpha dropped,
    /// 16-bit grey clipped at 255 as Pillow does), squash-resize to 224×224 with Pillow's
    /// antialiased bilinear filter on 8-bit data, `/255`, no normalisation.
    pub fn original() -> Self {
        Preprocess {
            preset: "original",
            width: 224,
            height: 224,
            geometry: Geometry::Squash,
            interpolation: Interpolation::Bilinear,
            mean: [0.0; 3],
            std: [1.0; 3],
            gray16: Gray16::ClipLikePillow,
            modified: Vec::new(),
        }
    }

    /// The same resize, then ImageNet mean/std normalisation; 16-bit grey keeps its high byte.
    pub fn imagenet() -> Self {
        Preprocess {
            preset: "imagenet",
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            gray16: Gray16::HighByte,
            ..Self::original()
        }
    }

    /// torchvision's eval transform, bit for bit: `convert('RGB')` as torchvision's
    /// `ImageFolder` reads images (16-bit grey clipped at 255, as Pillow does), `Resize(256)`
    /// (the shorter side to 256 with Pillow's antialiased bilinear filter, the longer side
    /// `int(256·long/short)`), `CenterCrop(224)` (zero-padded where the image is smaller),
    /// `ToTensor`, ImageNet `Normalize`.
    pub fn torchvision() -> Self {
        Preprocess {
            preset: "torchvision",
            geometry: Geometry::ShorterSide(256),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            ..Self::original()
        }
    }

    /// A preset by name: `original`, `imagenet` or `torchvision`.
    pub fn from_preset(name: &str) -> Result<Self> {
        match name {
            "original" => Ok(Self::original()),
            "imagenet" => Ok(Self::imagenet()),
            "torchvision" => Ok(Self::torchvision()),
            other => Err(Error::invalid(
                Field::Preset,
                Problem::UnknownPreset(other.to_string()),
            )),
        }
    }

    /// Makes the input `width`×`height` instead: the squash presets resize to it (aspect
    /// ratio not kept), [`Preprocess::torchvision`] crops to it (as [`Preprocess::with_crop`]).
    /// By default, 224×224.
    pub fn with_size(mut self, width: usize, height: usize) -> Self {
        self.width = width;
        self.height = height;
        self.record("size", format!("{width}x{height}"));
        self
    }

    /// Resizes the shorter side to `n` pixels, keeping the aspect ratio, then crops the centre
    /// to the input size (torchvision's `Resize(n)` then `CenterCrop`). By default, 256 for
    /// [`Preprocess::torchvision`]; the squash presets squash.
    pub fn with_resize(mut self, n: usize) -> Self {
        self.geometry = Geometry::ShorterSide(n);
        self.record("resize", n.to_string());
        self
    }

    /// Crops the centre to `width`×`height` after [`Preprocess::with_resize`] (torchvision's
    /// `CenterCrop((height, width))`): the input's size. By default, 224×224.
    pub fn with_crop(mut self, width: usize, height: usize) -> Self {
        self.width = width;
        self.height = height;
        self.record("crop", format!("{width}x{height}"));
        self
    }

    /// Resizes with this Pillow filter. By default, bilinear.
    pub fn with_interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self.record("interpolation", interpolation.as_str().to_string());
        self
    }

    /// Records a changed setting in [`Preprocess::name`], replacing an earlier value.
    fn record(&mut self, setting: &str, value: String) {
        let tag = format!("{setting}=");
        self.modified.retain(|m| !m.starts_with(&tag));
        self.modified.push(format!("{tag}{value}"));
    }

    /// Subtracts this per-channel (RGB) mean after `/255`. By default, the preset's.
    pub fn with_mean(mut self, mean: [f32; 3]) -> Self {
        self.mean = mean;
        self.record("mean", format!("{},{},{}", mean[0], mean[1], mean[2]));
        self
    }

    /// Divides by this per-channel (RGB) standard deviation. By default, the preset's.
    pub fn with_std(mut self, std: [f32; 3]) -> Self {
        self.std = std;
        self.record("std", format!("{},{},{}", std[0], std[1], std[2]));
        self
    }

    /// Checks the settings: a size of at least 1×1, a resize of at least 1, finite means,
    /// positive finite deviations.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.geometry == Geometry::ShorterSide(0) {
            return Err(Error::invalid(
                Field::Size,
                Problem::EmptySize {
                    width: self.width,
                    height: self.height,
                },
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::invalid(Field::Mean, Problem::NotFinite));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::invalid(Field::Std, Problem::NotPositiveEach));
        }
        Ok(())
    }

    /// The name recorded in every output: the preset, then any changed setting.
    pub fn name(&self) -> String {
        std::iter::once(self.preset.to_string())
            .chain(self.modified.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether this is exactly [`Preprocess::original`] (no ImageNet normalisation).
    pub fn is_original(&self) -> bool {
        self.preset == "original" && self.modified.is_empty()
    }

    /// The input's width and height.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// The shorter side's length before the centre crop, for torchvision's geometry; `None`
    /// where images are squashed to the input size.
    pub fn resize_to(&self) -> Option<usize> {
        match self.geometry {
            Geometry::Squash => None,
            Geometry::ShorterSide(n) => Some(n),
        }
    }

    /// The Pillow filter images are resized with.
    pub fn interpolation(&self) -> Interpolation {
        self.interpolation
    }

    /// The per-channel mean.
    pub fn mean(&self) -> [f32; 3] {
        self.mean
    }

    /// The per-channel standard deviation.
    pub fn std(&self) -> [f32; 3] {
        self.std
    }

    /// How 16-bit grey images become 8-bit.
    pub fn gray16(&self) -> Gray16 {
        self.gray16
    }

    /// `img` as the network sees it, 8-bit at the input size: squashed, or resized on its
    /// shorter side and centre-cropped (Pillow's filters, torchvision's crop).
    pub fn resize(&self, img: &RgbImage) -> RgbImage {
        let resize = |width: usize, height: usize| RgbImage {
            width,
            height,
            pixels: resize_pillow(
                &img.pixels,
                img.width,
                img.height,
                3,
                width,
                height,
                self.interpolation,
            ),
        };
        match self.geometry {
            Geometry::Squash => resize(self.width, self.height),
            Geometry::ShorterSide(n) => {
                let (w, h) = shorter_side_size(img.width, img.height, n);
                center_crop(&resize(w, h), self.width, self.height)
            }
        }
    }

    /// The network input for `img`: `3×H×W` values, channel-major (CHW).
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        self.tensor_of_resized(&self.resize(img))
    }

    /// The network input for an image already resized by [`Preprocess::resize`].
    pub fn tensor_of_resized(&self, resized: &RgbImage) -> Vec<f32> {
        let plane = resized.width * resized.height;
        let mut out = vec![0f32; 3 * plane];
        let identity = self.mean == [0.0; 3] && self.std == [1.0; 3];
        for (i, px) in resized.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // A true IEEE division, as torchvision's ToTensor: `* (1/255)` differs in the last bit.
                let v = px[c] as f32 / 255.0;
                out[c * plane + i] = if identity {
                    v
                } else {
                    (v - self.mean[c]) / self.std[c]
                };
            }
        }
        out
    }

    /// Reads, decodes and preprocesses one image file.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        Ok(self.apply(&load_rgb8(path, self.gray16)?))
    }
}

/// torchvision's `_compute_resized_output_size` for `Resize(n)`: the shorter side becomes `n`,
/// the longer `int(n·long/short)` (a float quotient, truncated).
fn shorter_side_size(w: usize, h: usize, n: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = ((n * long) as f64 / short as f64) as usize;
    if w <= h { (n, new_long) } else { (new_long, n) }
}

/// torchvision's `center_crop` on a PIL image: zero padding where the image is smaller than
/// the crop (`(d // 2, (d + 1) // 2)` on the two sides), then the offset
/// `int(round((size − crop) / 2))`, Python's `round` rounding halves to even.
fn center_crop(img: &RgbImage, cw: usize, ch: usize) -> RgbImage {
    let padded;
    let img = if cw > img.width || ch > img.height {
        let (pl, pr) = split_padding(cw, img.width);
        let (pt, pb) = split_padding(ch, img.height);
        let (w, h) = (img.width + pl + pr, img.height + pt + pb);
        let mut pixels = vec![0u8; w * h * 3];
        for y in 0..img.height {
            let src = &img.pixels[y * img.width * 3..(y + 1) * img.width * 3];
            let at = ((y + pt) * w + pl) * 3;
            pixels[at..at + src.len()].copy_from_slice(src);
        }
        padded = RgbImage {
            width: w,
            height: h,
            pixels,
        };
        &padded
    } else {
        img
    };
    let top = half_to_even(img.height - ch);
    let left = half_to_even(img.width - cw);
    let mut pixels = Vec::with_capacity(cw * ch * 3);
    for y in top..top + ch {
        let row = (y * img.width + left) * 3;
        pixels.extend_from_slice(&img.pixels[row..row + cw * 3]);
    }
    RgbImage {
        width: cw,
        height: ch,
        pixels,
    }
}

/// The zero padding before and after an axis of `size` that a crop of `crop` needs.
fn split_padding(crop: usize, size: usize) -> (usize, usize) {
    let d = crop.saturating_sub(size);
    (d / 2, d.div_ceil(2))
}

/// Python's `round(d / 2)`: halves go to the even neighbour.
fn half_to_even(d: usize) -> usize {
    let f = d / 2;
    if d % 2 == 1 && f % 2 == 1 { f + 1 } else { f }
}

/// Reads and decodes an image file (format by content) to RGB.
///
/// A file that is not an image is refused from its first bytes, and one larger than
/// [`crate::files::MAX_IMAGE_FILE_BYTES`] from its size, before either is read whole.
pub fn load_rgb8(path: &Path, gray16: Gray16) -> Result<RgbImage> {
    let bytes = crate::inputs::read_image_file(path)?;
    decode_rgb8(&bytes, gray16).map_err(|e| match e {
        DecodeError::NotAnImage => Error::NotAnImage {
            path: path.to_path_buf(),
        },
        DecodeError::Corrupt(reason) => Error::Decode {
            path: path.to_path_buf(),
            reason,
        },
    })
}
