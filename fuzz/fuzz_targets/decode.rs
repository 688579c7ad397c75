//! An image file of any bytes through fmv's own decode path (mozjpeg for JPEG, `image` for the
//! rest), both ways of reading 16-bit grey.

#![no_main]

use fmv_core::pixels::{Gray16, decode_rgb8};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for gray16 in [Gray16::ClipLikePillow, Gray16::HighByte] {
        if let Ok(image) = decode_rgb8(bytes, gray16) {
            assert_eq!(image.pixels.len(), image.width * image.height * 3);
        }
    }
});
