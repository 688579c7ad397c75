//! Decoding image files to 8-bit RGB as Pillow's `Image.open(p).convert('RGB')` does.
//!
//! The format is recognised by content, never by extension. JPEG goes through libjpeg-turbo's
//! algorithms (MozJPEG, built from source by cargo: ISLOW IDCT, fancy upsampling), which give
//! Pillow's pixels bit for bit; every other format goes through the `image` crate. Images over
//! Pillow's pixel limit ([`MAX_PIXELS`]) are refused from their header, as Pillow refuses them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, ImageFormat};

/// An 8-bit RGB image, rows top to bottom, pixels interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes.
    pub pixels: Vec<u8>,
}

/// How 16-bit greyscale images become 8-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gray16 {
    /// Pillow's `I;16 → RGB`: values above 255 become 255 (most of a 16-bit image turns white).
    ClipLikePillow,
    /// The high byte, as for 16-bit colour images (what a user expects).
    HighByte,
}

/// Why a file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The content is not a known image format (a text file, `.DS_Store`, ...).
    NotAnImage,
    /// The content claims an image format but the data is broken or unsupported.
    Corrupt(String),
}

impl RgbImage {
    /// The pixel at `(x, y)`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// The most pixels an image may have: Pillow's own limit (twice `Image.MAX_IMAGE_PIXELS`, above
/// which `Image.open` raises `DecompressionBombError`), so that fmv opens the images the original
/// opens and refuses, before decoding, a small file that would unpack to gigabytes.
pub const MAX_PIXELS: u64 = 2 * (1024 * 1024 * 1024 / 4 / 3);

/// Fails, saying why, when a `width × height` image has more than [`MAX_PIXELS`].
fn check_pixels(width: u64, height: u64) -> Result<(), String> {
    if width * height <= MAX_PIXELS {
        return Ok(());
    }
    Err(format!(
        "the image is {width}x{height} = {} pixels, more than the {MAX_PIXELS} fmv opens \
         (Pillow's limit against decompression bombs); downscale it first",
        width * height
    ))
}

/// Decodes an image file's bytes to RGB.
///
/// ```
/// use fmv_core::pixels::{decode_rgb8, DecodeError, Gray16};
/// assert_eq!(decode_rgb8(b"just some text", Gray16::HighByte), Err(DecodeError::NotAnImage));
/// ```
pub fn decode_rgb8(bytes: &[u8], gray16: Gray16) -> Result<RgbImage, DecodeError> {
    let format = image::guess_format(bytes).map_err(|_| DecodeError::NotAnImage)?;
    match format {
        ImageFormat::Jpeg => decode_jpeg(bytes),
        ImageFormat::Png
        | ImageFormat::Gif
        | ImageFormat::Bmp
        | ImageFormat::Tiff
        | ImageFormat::WebP => {
            let corrupt = |e: image::ImageError| DecodeError::Corrupt(e.to_string());
            let reader = || image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
            let (width, height) = reader().into_dimensions().map_err(corrupt)?;
            check_pixels(width.into(), height.into()).map_err(DecodeError::Corrupt)?;
            // The pixel count is bounded above, so the decoder's own cap (512 MiB) would only
            // refuse images Pillow opens, such as 100 million pixels of 16-bit RGBA.
            let mut reader = reader();
            let mut limits = image::Limits::default();
            limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
            reader.limits(limits);
            convert_rgb(reader.decode().map_err(corrupt)?, gray16)
        }
        other => Err(DecodeError::Corrupt(format!(
            "{other:?} images are not supported; convert the file to PNG or JPEG"
        ))),
    }
}

/// `convert('RGB')`: grey is repeated, alpha is dropped without compositing, 16-bit colour
/// keeps its high byte (Pillow's `RGB;16B` unpacking).
fn convert_rgb(img: DynamicImage, gray16: Gray16) -> Result<RgbImage, DecodeError> {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let n = width * height;
    let mut pixels = Vec::with_capacity(n * 3);
    let grey16 = |v: u16| match gray16 {
        Gray16::ClipLikePillow => v.min(255) as u8,
        Gray16::HighByte => (v >> 8) as u8,
    };
    match img {
        DynamicImage::ImageRgb8(b) => pixels = b.into_raw(),
        DynamicImage::ImageRgba8(b) => b.pixels().for_each(|p| pixels.extend_from_slice(&p.0[..3])),
        DynamicImage::ImageLuma8(b) => b
            .pixels()
            .for_each(|p| pixels.extend_from_slice(&[p.0[0]; 3])),
        DynamicImage::ImageLumaA8(b) => b
            .pixels()
            .for_each(|p| pixels.extend_from_slice(&[p.0[0]; 3])),
        DynamicImage::ImageLuma16(b) => b
            .pixels()
            .for_each(|p| pixels.extend_from_slice(&[grey16(p.0[0]); 3])),
        // Pillow opens 16-bit LA as `LA;16B`: the high byte.
        DynamicImage::ImageLumaA16(b) => b
            .pixels()
            .for_each(|p| pixels.extend_from_slice(&[(p.0[0] >> 8) as u8; 3])),
        DynamicImage::ImageRgb16(b) => b
            .pixels()
            .for_each(|p| pixels.extend(p.0.iter().map(|v| (v >> 8) as u8))),
        DynamicImage::ImageRgba16(b) => b
            .pixels()
            .for_each(|p| pixels.extend(p.0[..3].iter().map(|v| (v >> 8) as u8))),
        other => {
            return Err(DecodeError::Corrupt(format!(
                "{:?} pixels are not supported; convert the file to 8-bit RGB",
                other.color()
            )));
        }
    }
    debug_assert_eq!(pixels.len(), n * 3);
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

// ---- JPEG -----------------------------------------------------------------------------------

use mozjpeg_sys::{J_COLOR_SPACE, jpeg_common_struct, jpeg_error_mgr};

/// libjpeg's fatal errors unwind out of the C decoder; the payload is the message.
unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    std::panic::resume_unwind(Box::new(message(cinfo)));
}

/// Warnings are ignored as Pillow ignores them, except premature end of data: Pillow refuses
/// truncated files ("image file is truncated"), and so does fmv.
unsafe extern "C-unwind" fn emit_message(
    cinfo: &mut jpeg_common_struct,
    level: std::os::raw::c_int,
) {
    // SAFETY: libjpeg passes the struct whose `err` it was given, which is alive.
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && code == mozjpeg_sys::JWRN_JPEG_EOF {
        std::panic::resume_unwind(Box::new(
            "the file is truncated (premature end of JPEG data)".to_string(),
        ));
    }
}

fn message(cinfo: &mut jpeg_common_struct) -> String {
    let buffer = [0u8; 80];
    // SAFETY: `err` was set by `jpeg_std_error`, whose `format_message` writes at most 80
    // bytes into the buffer it is given.
    unsafe {
        if let Some(fmt) = (*cinfo.err).format_message {
            fmt(cinfo, &buffer);
        }
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

fn error_manager() -> jpeg_error_mgr {
    // SAFETY: `jpeg_error_mgr` is a C struct of integers, pointers and optional function
    // pointers, for which all-zero is valid; `jpeg_std_error` then fills in every field.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    let run = || -> std::io::Result<RgbImage> {
        let d = mozjpeg::Decompress::with_err(error_manager()).from_mem(bytes)?;
        let (width, height) = (d.width(), d.height());
        check_pixels(width as u64, height as u64).map_err(std::io::Error::other)?;
        let cmyk = matches!(
            d.color_space(),
            J_COLOR_SPACE::JCS_CMYK | J_COLOR_SPACE::JCS_YCCK
        );
        let pixels = if cmyk {
            let mut s = d.to_colorspace(J_COLOR_SPACE::JCS_CMYK)?;
            let raw: Vec<[u8; 4]> = s.read_scanlines()?;
            s.finish()?;
            cmyk_to_rgb(&raw, has_adobe_marker(bytes))
        } else {
            let mut s = d.rgb()?;
            let raw: Vec<[u8; 3]> = s.read_scanlines()?;
            s.finish()?;
            raw.into_iter().flatten().collect()
        };
        Ok(RgbImage {
            width,
            height,
            pixels,
        })
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(img)) if img.pixels.len() == img.width * img.height * 3 => Ok(img),
        Ok(Ok(_)) => Err(DecodeError::Corrupt("the file is truncated".into())),
        Ok(Err(e)) => Err(DecodeError::Corrupt(e.to_string())),
        Err(payload) => Err(DecodeError::Corrupt(
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "libjpeg failed".into()),
        )),
    }
}

/// Pillow reads CMYK JPEGs with an Adobe APP14 marker as inverted (`CMYK;I`), then converts
/// with `cmyk2rgb`: `255 − k − c·(255 − k)/255`, rounded as its `MULDIV255`.
fn cmyk_to_rgb(raw: &[[u8; 4]], inverted: bool) -> Vec<u8> {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let mut out = Vec::with_capacity(raw.len() * 3);
    for p in raw {
        let p = if inverted { p.map(|v| 255 - v) } else { *p };
        let nk = 255 - p[3] as i32;
        for &c in &p[..3] {
            out.push((nk - muldiv255(c as i32, nk)).clamp(0, 255) as u8);
        }
    }
    out
}

fn has_adobe_marker(bytes: &[u8]) -> bool {
    bytes
        .windows(9)
        .any(|w| w[0] == 0xFF && w[1] == 0xEE && &w[4..9] == b"Adobe")
}
