//! Turning a decoded image into the network's input: squash-resize with Pillow's bilinear
//! filter, `/255`, then optional mean/std normalisation.

use std::path::Path;

use crate::decode::{DecodeError, Gray16, RgbImage, decode_rgb8};
use crate::error::{Error, Field, Problem, Result};
use crate::resize::resize_bilinear_pillow;

/// ImageNet's per-channel mean (RGB), as torchvision's pretrained models expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How images become network inputs.
///
/// Two presets: [`Preprocess::original`] reproduces FeatureMapVisualizer exactly (inputs in
/// `[0, 1]`, no normalisation: what its numbers mean), [`Preprocess::imagenet`] adds the
/// normalisation pretrained torchvision weights were trained with (fmv's default).
///
/// ```
/// use fmv_core::Preprocess;
/// let p = Preprocess::imagenet().with_size(256, 256);
/// assert_eq!(p.name(), "imagenet,size=256x256");
/// assert_eq!(Preprocess::original().name(), "original");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    preset: &'static str,
    width: usize,
    height: usize,
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

    /// A preset by name: `original` or `imagenet`.
    pub fn from_preset(name: &str) -> Result<Self> {
        match name {
            "original" => Ok(Self::original()),
            "imagenet" => Ok(Self::imagenet()),
            other => Err(Error::invalid(
                Field::Preset,
                Problem::UnknownPreset(other.to_string()),
            )),
        }
    }

    /// Resizes to `width`×`height` instead (aspect ratio not kept). By default, 224×224.
    pub fn with_size(mut self, width: usize, height: usize) -> Self {
        self.width = width;
        self.height = height;
        self.modified.retain(|m| !m.starts_with("size="));
        self.modified.push(format!("size={width}x{height}"));
        self
    }

    /// Subtracts this per-channel (RGB) mean after `/255`. By default, the preset's.
    pub fn with_mean(mut self, mean: [f32; 3]) -> Self {
        self.mean = mean;
        self.modified.retain(|m| !m.starts_with("mean="));
        self.modified
            .push(format!("mean={},{},{}", mean[0], mean[1], mean[2]));
        self
    }

    /// Divides by this per-channel (RGB) standard deviation. By default, the preset's.
    pub fn with_std(mut self, std: [f32; 3]) -> Self {
        self.std = std;
        self.modified.retain(|m| !m.starts_with("std="));
        self.modified
            .push(format!("std={},{},{}", std[0], std[1], std[2]));
        self
    }

    /// Checks the settings: a size of at least 1×1, finite means, positive finite deviations.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 {
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

    /// Resizes `img` to the input size (8-bit, Pillow's filter).
    pub fn resize(&self, img: &RgbImage) -> RgbImage {
        RgbImage {
            width: self.width,
            height: self.height,
            pixels: resize_bilinear_pillow(
                &img.pixels,
                img.width,
                img.height,
                3,
                self.width,
                self.height,
            ),
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
