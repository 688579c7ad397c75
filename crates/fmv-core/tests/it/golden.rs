//! Access to the reference fixtures copied from the original package's run
//! (`testdata/reference/`, see its README).

use std::path::{Path, PathBuf};

use fmv_core::{CompatConfig, PatternConfig, RgbImage};
use fmv_models::{LayerRef, LoadOptions};
use serde_json::Value;

/// How the golden tests load networks: on the device `FMV_TEST_DEVICE` names (`cpu`, the
/// default, or `cuda` in a build with `--features cuda`).
pub fn load_options() -> LoadOptions {
    let device = std::env::var("FMV_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = fmv_models::parse_device(&device)
        .unwrap_or_else(|e| panic!("FMV_TEST_DEVICE={device}: {e}"));
    LoadOptions::new().with_device(device)
}

/// The folder holding the reference fixtures.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/reference")
}

/// One of the model goldens, parsed.
pub struct Golden {
    pub json: Value,
}

impl Golden {
    pub fn load(name: &str) -> Golden {
        let path = root().join("golden").join(format!("{name}__dsA.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Golden {
            json: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn weights(&self) -> PathBuf {
        root()
            .join("weights")
            .join(self.json["meta"]["weights_file"].as_str().unwrap())
    }

    /// `(path relative to reference/, entry)` for every image, in file order.
    pub fn images(&self) -> Vec<(String, &Value)> {
        let mut v: Vec<(String, &Value)> = self.json["images"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The compat pattern run the goldens recorded: the original's call (layer, filter, lr,
    /// schedule) from its saved start image.
    pub fn pattern_config(&self) -> PatternConfig {
        let vp = &self.json["visualize_patterns"];
        let call = &vp["call"];
        let init: Vec<u8> = vp["init_image_uint8_hwc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let side = call["init_size"].as_u64().unwrap() as usize;
        let compat = CompatConfig::new()
            .with_init_image(Some(RgbImage {
                width: side,
                height: side,
                pixels: init,
            }))
            .with_lr(call["lr"].as_f64().unwrap())
            .with_opt_steps(call["opt_steps"].as_u64().unwrap() as usize)
            .with_upscaling_steps(call["upscaling_steps"].as_u64().unwrap() as usize)
            .with_upscaling_factor(call["upscaling_factor"].as_f64().unwrap());
        PatternConfig::new(
            LayerRef::Compat(call["layer"].as_i64().unwrap()),
            vec![call["filter_n"].as_u64().unwrap() as usize],
            compat,
        )
    }

    pub fn layers(&self) -> Vec<i64> {
        self.json["meta"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }
}

pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// `max_i |a_i − g_i| / max_i |g_i|`, the criterion of the reference README (§6).
pub fn rel_max_err(a: &[f32], g: &[f32]) -> f64 {
    assert_eq!(a.len(), g.len(), "length");
    let scale = g.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
    let err = a
        .iter()
        .zip(g)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max);
    err / scale
}

/// `‖a − g‖₂ / ‖g‖₂`.
pub fn rel_l2_err(a: &[f32], g: &[f32]) -> f64 {
    assert_eq!(a.len(), g.len(), "length");
    let num: f64 = a
        .iter()
        .zip(g)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = g.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}
