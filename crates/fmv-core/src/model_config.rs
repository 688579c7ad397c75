//! timm's `config.json` (as `timm` saves it beside a model's weights, and the Hugging Face hub
//! serves it): the preprocessing the network was evaluated with (`pretrained_cfg`: input size,
//! `crop_pct`, interpolation, mean, std) and its class names (`label_names`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::inputs::{MAX_JSON_BYTES, read_limited};
use crate::preprocess::{IMAGENET_MEAN, IMAGENET_STD, Preprocess};
use crate::resize::Interpolation;

/// The preprocessing fields of a timm `pretrained_cfg` (all optional, as in timm).
#[derive(Debug, Clone, Default, PartialEq)]
struct DataConfig {
    input_size: Option<Vec<usize>>,
    interpolation: Option<String>,
    crop_pct: Option<f64>,
    crop_mode: Option<String>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
}

impl DataConfig {
    /// The fields of `obj`; one of the wrong type is an error naming it.
    fn of(obj: &serde_json::Map<String, Value>) -> std::result::Result<Self, String> {
        let wrong = |k: &str, what: &str| format!("its `{k}` is not {what}");
        let string = |k: &str| match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong(k, "a string")),
        };
        let numbers = |k: &str| match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| wrong(k, "a list of numbers")))
                .collect::<std::result::Result<Vec<f64>, String>>()
                .map(Some),
            Some(_) => Err(wrong(k, "a list of numbers")),
        };
        let floats = |k: &str| -> std::result::Result<Option<Vec<f32>>, String> {
            Ok(numbers(k)?.map(|v| v.into_iter().map(|x| x as f32).collect()))
        };
        let input_size = match numbers("input_size")? {
            None => None,
            Some(v) if v.iter().all(|x| x.fract() == 0.0 && *x >= 0.0 && *x < 1e9) => {
                Some(v.into_iter().map(|x| x as usize).collect())
            }
            Some(_) => return Err(wrong("input_size", "a list of sizes")),
        };
        let crop_pct = match obj.get("crop_pct") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| wrong("crop_pct", "a number"))?),
        };
        Ok(DataConfig {
            input_size,
            interpolation: string("interpolation")?,
            crop_pct,
            crop_mode: string("crop_mode")?,
            mean: floats("mean")?,
            std: floats("std")?,
        })
    }
}

/// A timm model configuration.
///
/// ```
/// use fmv_core::TimmConfig;
/// let cfg = TimmConfig::parse(
///     r#"{"architecture": "resnet50", "pretrained_cfg": {"input_size": [3, 224, 224],
///         "interpolation": "bicubic", "crop_pct": 0.95,
///         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}"#,
///     "config.json",
/// )?;
/// // timm's eval transform: Resize(floor(224 / 0.95) = 235, bicubic), CenterCrop(224).
/// assert_eq!(cfg.preprocess()?.name(), "torchvision,resize=235,interpolation=bicubic");
/// # Ok::<(), fmv_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TimmConfig {
    path: PathBuf,
    architecture: Option<String>,
    data: DataConfig,
    label_names: Option<Vec<String>>,
}

impl TimmConfig {
    /// Reads a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = read_limited(path, MAX_JSON_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::BadFile {
            path: path.to_path_buf(),
            what: "timm config",
            reason: "it is not UTF-8 text".into(),
        })?;
        Self::parse(&text, path)
    }

    /// The `config.json` beside a weights file, if there is one and it is timm's (it has a
    /// `pretrained_cfg`); `Ok(None)` otherwise. A timm config that cannot be used is an error.
    pub fn beside(weights: &Path) -> Result<Option<Self>> {
        let Some(path) = weights.parent().map(|d| d.join("config.json")) else {
            return Ok(None);
        };
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = read_limited(&path, MAX_JSON_BYTES)?;
        let is_timm = serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|v| v.get("pretrained_cfg").is_some_and(|c| c.is_object()));
        if !is_timm {
            return Ok(None);
        }
        Self::from_file(&path).map(Some)
    }

    /// Parses the text of a `config.json`; `path` names it in errors.
    pub fn parse(text: &str, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let bad = |reason: String| Error::BadFile {
            path: path.clone(),
            what: "timm config",
            reason,
        };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| bad(format!("it is not a timm model configuration ({e})")))?;
        let Value::Object(top) = value else {
            return Err(bad(
                "it is not a timm model configuration (a JSON object)".into()
            ));
        };
        // The data settings are under `pretrained_cfg` (timm ≥ 0.9) or at the top (older).
        let data = match top.get("pretrained_cfg") {
            Some(Value::Object(cfg)) => DataConfig::of(cfg),
            Some(_) => Err("its `pretrained_cfg` is not an object".to_string()),
            None => DataConfig::of(&top),
        }
        .map_err(bad)?;
        let label_names = match top.get("label_names") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| bad("its `label_names` is not a list of strings".into()))?,
            ),
            Some(_) => return Err(bad("its `label_names` is not a list of strings".into())),
        };
        if data == DataConfig::default() {
            return Err(Error::BadFile {
                path,
                what: "timm config",
                reason: "it has no `pretrained_cfg` (input size, mean, std, crop_pct, \
                         interpolation)"
                    .into(),
            });
        }
        Ok(TimmConfig {
            architecture: top
                .get("architecture")
                .and_then(Value::as_str)
                .map(String::from),
            path,
            data,
            label_names,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// timm's architecture name (`resnet50`), if given.
    pub fn architecture(&self) -> Option<&str> {
        self.architecture.as_deref()
    }

    /// The class names, in output order, if given.
    pub fn label_names(&self) -> Option<&[String]> {
        self.label_names.as_deref()
    }

    /// timm's eval transform for this configuration, as fmv's [`Preprocess`]: with the
    /// default `crop_mode` (`center`), `Resize(floor(size / crop_pct))` on the shorter side and
    /// `CenterCrop(size)` (crop_pct 0.875 when absent, as timm); with `squash`, a resize to the
    /// input size. Settings equal to [`Preprocess::torchvision`]'s are not repeated in its
    /// name.
    pub fn preprocess(&self) -> Result<Preprocess> {
        let bad = |reason: String| Error::BadFile {
            path: self.path.clone(),
            what: "timm config",
            reason,
        };
        let d = &self.data;
        let (h, w) = match d.input_size.as_deref() {
            None => (224, 224),
            Some([3, h, w]) if *h > 0 && *w > 0 => (*h, *w),
            Some(other) => {
                return Err(bad(format!(
                    "its input_size {other:?} is not [3, height, width]"
                )));
            }
        };
        let interpolation = match d.interpolation.as_deref() {
            None => Interpolation::Bilinear,
            Some(name) => Interpolation::from_name(name).ok_or_else(|| {
                bad(format!(
                    "its interpolation `{name}` is not one fmv reproduces (bilinear, bicubic); \
                     set the interpolation"
                ))
            })?,
        };
        let triple = |v: &Option<Vec<f32>>, what: &str, default: [f32; 3]| match v.as_deref() {
            None => Ok(default),
            Some([a, b, c]) => Ok([*a, *b, *c]),
            Some(other) => Err(bad(format!("its {what} {other:?} is not three numbers"))),
        };
        let mean = triple(&d.mean, "mean", IMAGENET_MEAN)?;
        let std = triple(&d.std, "std", IMAGENET_STD)?;
        let crop_pct = d.crop_pct.unwrap_or(0.875);
        if !(crop_pct.is_finite() && crop_pct > 0.0 && crop_pct <= 1.0) {
            return Err(bad(format!("its crop_pct {crop_pct} is not in (0, 1]")));
        }
        let mut p = match d.crop_mode.as_deref().unwrap_or("center") {
            "center" => {
                if h != w {
                    return Err(bad(format!(
                        "its input size {w}x{h} is not square, for which timm keeps the aspect \
                         ratio in a way fmv does not reproduce; set the resize and crop"
                    )));
                }
                let resize = (h as f64 / crop_pct).floor() as usize;
                let mut p = Preprocess::torchvision();
                if resize != 256 {
                    p = p.with_resize(resize);
                }
                if (w, h) != (224, 224) {
                    p = p.with_crop(w, h);
                }
                p
            }
            "squash" => Preprocess::imagenet().with_size(w, h),
            other => {
                return Err(bad(format!(
                    "its crop_mode `{other}` is not one fmv reproduces (center, squash)"
                )));
            }
        };
        if interpolation != p.interpolation() {
            p = p.with_interpolation(interpolation);
        }
        if mean != p.mean() {
            p = p.with_mean(mean);
        }
        if std != p.std() {
            p = p.with_std(std);
        }
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<Preprocess> {
        TimmConfig::parse(json, "config.json")?.preprocess()
    }

    #[test]
    fn timms_defaults_are_torchvisions_eval_transform() {
        assert_eq!(
            cfg(r#"{"pretrained_cfg": {"input_size": [3, 224, 224]}}"#)
                .unwrap()
                .name(),
            "torchvision"
        );
        let p = cfg(
            r#"{"pretrained_cfg": {"input_size": [3, 288, 288], "crop_pct": 1.0,
            "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}"#,
        )
        .unwrap();
        assert_eq!(
            p.name(),
            "torchvision,resize=288,crop=288x288,interpolation=bicubic,mean=0.5,0.5,0.5,std=0.5,0.5,0.5"
        );
        // Older files keep the settings at the top.
        let p = cfg(r#"{"architecture": "vgg16", "crop_pct": 0.9, "input_size": [3, 224, 224]}"#)
            .unwrap();
        assert_eq!(p.resize_to(), Some(248));
    }

    #[test]
    fn what_fmv_cannot_reproduce_is_named() {
        for (json, needle) in [
            (
                r#"{"pretrained_cfg": {"interpolation": "lanczos"}}"#,
                "lanczos",
            ),
            (
                r#"{"pretrained_cfg": {"input_size": [3, 224, 256]}}"#,
                "not square",
            ),
            (r#"{"pretrained_cfg": {"crop_mode": "border"}}"#, "border"),
            (r#"{"pretrained_cfg": {"crop_pct": 0}}"#, "crop_pct"),
            (r#"{"pretrained_cfg": {"mean": [0.5]}}"#, "mean"),
            (r#"{"epochs": 3}"#, "no `pretrained_cfg`"),
            ("[1, 2]", "not a timm model configuration"),
        ] {
            let e = cfg(json).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("config.json"),
                "{json}: {e}"
            );
        }
    }
}
