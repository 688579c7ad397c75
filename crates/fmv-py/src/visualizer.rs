//! `fmv._fmv.Visualizer`: a network and its preprocessing, with one method per analysis. Each
//! returns the JSON document of the matching CLI command (decoded by the Python half), or raw
//! bytes for images and maps.

use std::path::{Path, PathBuf};

use fmv::core::files::expand_inputs;
use fmv::models::demo::DemoNet;
use fmv::report::documents::{
    AblationDocument, ActivationsDocument, ClassSumsDocument, ExemplarsDocument, RankDocument,
};
use fmv::report::{Folders, demo};
use fmv::{
    AblationConfig, ActivationsConfig, ClassSumsConfig, CompatConfig, Event, ExemplarStat,
    ExemplarsConfig, FilterMapsConfig, ImageFolder, ImageList, LayerRef, PatternAlgorithm,
    PatternConfig, Preprocess, RankConfig, RobustConfig, Visualizer,
};
use pyo3::prelude::*;
use serde::Serialize;

use crate::errors::{BadConfig, ToPyResult};
use crate::model::PyModel;
use crate::observer::PyObserver;

/// A network, the way images become its inputs, and the analyses.
#[pyclass(name = "Visualizer", module = "fmv._fmv", frozen)]
pub struct PyVisualizer {
    viz: Visualizer,
}

/// A layer: a name (`layer4.1`) or the original's integer (`-2`).
fn layer(py_layer: &Bound<'_, PyAny>) -> PyResult<LayerRef> {
    if let Ok(i) = py_layer.extract::<i64>() {
        return Ok(LayerRef::Compat(i));
    }
    let name: String = py_layer.extract()?;
    Ok(name.parse().unwrap_or(LayerRef::Name(name)))
}

/// Serialises a document for the Python half.
fn json(doc: &impl Serialize) -> PyResult<String> {
    serde_json::to_string(doc).py_err()
}

/// An image's pixels for the Python half: `(rgb bytes, height, width)`.
type Pixels = (Vec<u8>, usize, usize);

/// The compat schedule: `(init_size, opt_steps, upscaling_steps, upscaling_factor, start
/// image)`.
type CompatSchedule = (usize, usize, usize, f64, Option<Pixels>);

/// A batch's means per image, and the maps of some filters with their height and width.
type BatchMaps = (Vec<Vec<u8>>, Vec<u8>, usize, usize);

/// One image's maps: `(path, mean, maps as f32 little-endian bytes, height, width, input)`.
type ShownMaps = (String, f32, Vec<Vec<u8>>, usize, usize, Pixels);

/// A tensor operation's failure (not the caller's input) as `FmvError`.
fn tensor_err(e: impl std::fmt::Display) -> PyErr {
    crate::errors::FmvError::new_err(e.to_string())
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl PyVisualizer {
    /// Runs `work` without the GIL, with progress and Ctrl-C through the observer.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        progress: Option<Py<PyAny>>,
        work: impl FnOnce(&Visualizer, &mut PyObserver) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        let mut observer = PyObserver::new(progress);
        let result = py.detach(|| work(&self.viz, &mut observer));
        observer.finish(result)
    }
}

#[pymethods]
impl PyVisualizer {
    /// `model` with the preprocessing `preprocess` (`imagenet`, `original` or `torchvision`),
    /// at `size` `(width, height)` if given, `batch_size` images per forward pass.
    #[new]
    #[pyo3(signature = (model, *, preprocess="imagenet", size=None, batch_size=None))]
    fn new(
        model: &PyModel,
        preprocess: &str,
        size: Option<(usize, usize)>,
        batch_size: Option<usize>,
    ) -> PyResult<Self> {
        let mut p = Preprocess::from_preset(preprocess).py_err()?;
        if let Some((w, h)) = size {
            p = p.with_size(w, h);
        }
        p.validate().py_err()?;
        let mut viz = Visualizer::from_shared(model.model.clone()).with_preprocess(p);
        if let Some(b) = batch_size {
            if b == 0 {
                return Err(BadConfig::new_err("batch_size must be at least 1"));
            }
            viz = viz.with_batch_size(b);
        }
        Ok(PyVisualizer { viz })
    }

    /// The preprocessing's name.
    #[getter]
    fn preprocess(&self) -> String {
        self.viz.preprocess().name()
    }

    /// `fmv rank --json`.
    #[pyo3(signature = (train_dir, layer, *, n_each_img=25, n_each_class=25, classes=None, strict=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn rank(
        &self,
        py: Python<'_>,
        train_dir: PathBuf,
        layer: &Bound<'_, PyAny>,
        n_each_img: usize,
        n_each_class: usize,
        classes: Option<Vec<String>>,
        strict: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg = RankConfig::new(self::layer(layer)?)
            .with_n_each_img(n_each_img)
            .with_n_each_class(n_each_class)
            .with_strict(strict);
        self.run(py, progress, |viz, obs| {
            let folder = ImageFolder::open(&train_dir, classes.as_deref()).py_err()?;
            json(&RankDocument::from(&viz.rank(&folder, &cfg, obs).py_err()?))
        })
    }

    /// `fmv activations --json` (files, or folders whose images are taken in name order).
    #[pyo3(signature = (images, layer, *, top=25, progress=None))]
    fn activations(
        &self,
        py: Python<'_>,
        images: Vec<PathBuf>,
        layer: &Bound<'_, PyAny>,
        top: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg = ActivationsConfig::new(self::layer(layer)?).with_top(top);
        self.run(py, progress, |viz, obs| {
            let (files, skipped) = expand_inputs(&images).py_err()?;
            let acts = viz.activations(&files, &cfg, obs).py_err()?;
            json(&ActivationsDocument::new(&acts, None, &skipped))
        })
    }

    /// The maps of `filters` over images: per image `(path, mean, [map bytes], height, width,
    /// (input rgb, height, width))`.
    #[pyo3(signature = (images, layer, filters, *, progress=None))]
    fn filter_maps(
        &self,
        py: Python<'_>,
        images: Vec<PathBuf>,
        layer: &Bound<'_, PyAny>,
        filters: Vec<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<ShownMaps>> {
        let cfg = FilterMapsConfig::new(self::layer(layer)?, filters);
        self.run(py, progress, |viz, obs| {
            let (files, _) = expand_inputs(&images).py_err()?;
            let mut shown = Vec::new();
            let mut keep = Keep {
                shown: &mut shown,
                inner: obs,
            };
            viz.filter_maps(&files, &cfg, &mut keep).py_err()?;
            Ok(shown)
        })
    }

    /// Each channel's spatial mean at `layer` for a batch already preprocessed: `data` holds
    /// `shape` = `(n, 3, height, width)` float32 values, little-endian, C order (a DataLoader's
    /// batch). Returns `n` rows of float32 bytes and, for `filters`, their maps: `n` x
    /// `filters` x map height x map width float32 bytes, with the map's height and width.
    #[pyo3(signature = (data, shape, layer, filters=None))]
    fn batch_means(
        &self,
        py: Python<'_>,
        data: Vec<u8>,
        shape: (usize, usize, usize, usize),
        layer: &Bound<'_, PyAny>,
        filters: Option<Vec<usize>>,
    ) -> PyResult<BatchMaps> {
        let layer = self::layer(layer)?;
        let (n, c, h, w) = shape;
        if data.len() != n * c * h * w * 4 {
            return Err(BadConfig::new_err(format!(
                "{} bytes for a float32 batch of shape {shape:?}",
                data.len()
            )));
        }
        py.detach(|| {
            let viz = &self.viz;
            let id = viz.resolve(&layer).py_err()?;
            let net = viz.backbone();
            let x = fmv::models::Tensor::from_raw_buffer(
                &data,
                fmv::models::DType::F32,
                &[n, c, h, w],
                net.device(),
            )
            .and_then(|t| t.to_dtype(net.dtype()))
            .map_err(|e| BadConfig::new_err(e.to_string()))?;
            let t = net.forward_taps(&x, &[id]).py_err()?.remove(0);
            let t = t.to_dtype(fmv::models::DType::F32).map_err(tensor_err)?;
            let means = if t.rank() == 4 {
                t.mean((2, 3))
            } else {
                Ok(t.clone())
            };
            let rows: Vec<Vec<f32>> = means.and_then(|m| m.to_vec2()).map_err(tensor_err)?;
            let rows = rows.iter().map(|r| f32_bytes(r)).collect();
            let Some(filters) = filters else {
                return Ok((rows, Vec::new(), 0, 0));
            };
            if t.rank() != 4 {
                return Err(BadConfig::new_err(format!(
                    "`{layer}` has no maps (its values are {:?}); choose a convolutional layer",
                    t.dims()
                )));
            }
            let (_, channels, mh, mw) = t.dims4().map_err(tensor_err)?;
            if let Some(&bad) = filters.iter().find(|&&f| f >= channels) {
                return Err(BadConfig::new_err(format!(
                    "filter {bad} is not a channel of `{layer}` ({channels} channels, 0 to {})",
                    channels - 1
                )));
            }
            let index: Vec<u32> = filters.iter().map(|&f| f as u32).collect();
            let index =
                fmv::models::Tensor::new(index.as_slice(), t.device()).map_err(tensor_err)?;
            let maps: Vec<f32> = t
                .index_select(&index, 1)
                .and_then(|m| m.flatten_all())
                .and_then(|m| m.to_vec1())
                .map_err(tensor_err)?;
            Ok((rows, f32_bytes(&maps), mh, mw))
        })
    }

    /// `fmv class-sums --json`, with each class's maps given.
    #[pyo3(signature = (test_dir, layer, top_maps, *, strict=false, progress=None))]
    fn class_sums(
        &self,
        py: Python<'_>,
        test_dir: PathBuf,
        layer: &Bound<'_, PyAny>,
        top_maps: Vec<(String, Vec<usize>)>,
        strict: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg = ClassSumsConfig::new(self::layer(layer)?, top_maps).with_strict(strict);
        self.run(py, progress, |viz, obs| {
            let test = ImageFolder::open(&test_dir, None).py_err()?;
            json(&ClassSumsDocument::from(
                &viz.class_sums(&test, &cfg, obs).py_err()?,
            ))
        })
    }

    /// Activation maximisation: per filter `(document, (rgb, height, width), float image)`,
    /// the document the shape of `fmv patterns --json` without the output file, the float
    /// image `height · width · 3` f32 values in `[0, 1]`, little-endian. Compat mode takes the
    /// original's schedule (`compat`: `init_size`, `opt_steps`, `upscaling_steps`,
    /// `upscaling_factor`, and optionally the start image as `(rgb, height, width)`).
    #[pyo3(signature = (layer, filters, *, mode="robust", steps=None, lr=None, seed=0, compat=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn patterns(
        &self,
        py: Python<'_>,
        layer: &Bound<'_, PyAny>,
        filters: Vec<usize>,
        mode: &str,
        steps: Option<usize>,
        lr: Option<f64>,
        seed: u64,
        compat: Option<CompatSchedule>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<(String, Pixels, Vec<u8>)>> {
        let algorithm: PatternAlgorithm = match mode {
            "robust" => {
                let mut r = RobustConfig::new();
                if let Some(s) = steps {
                    r = r.with_steps(s);
                }
                if let Some(v) = lr {
                    r = r.with_lr(v);
                }
                r.into()
            }
            "compat" => {
                if steps.is_some() {
                    return Err(BadConfig::new_err(
                        "steps applies to mode robust; compat runs the original's schedule",
                    ));
                }
                let mut c = CompatConfig::new();
                if let Some(v) = lr {
                    c = c.with_lr(v);
                }
                if let Some((init_size, opt_steps, upscaling_steps, factor, init)) = compat {
                    c = c
                        .with_init_size(init_size)
                        .with_opt_steps(opt_steps)
                        .with_upscaling_steps(upscaling_steps)
                        .with_upscaling_factor(factor);
                    if let Some((pixels, height, width)) = init {
                        if pixels.len() != height * width * 3 {
                            return Err(BadConfig::new_err(format!(
                                "init image: {} bytes for {height}x{width} RGB",
                                pixels.len()
                            )));
                        }
                        c = c.with_init_image(Some(fmv::RgbImage {
                            width,
                            height,
                            pixels,
                        }));
                    }
                }
                c.into()
            }
            other => {
                return Err(BadConfig::new_err(format!(
                    "mode `{other}`: choose robust or compat"
                )));
            }
        };
        let cfg = PatternConfig::new(self::layer(layer)?, filters, algorithm).with_seed(seed);
        self.run(py, progress, |viz, obs| {
            let patterns = viz.maximize(&cfg, obs).py_err()?;
            patterns
                .iter()
                .map(|p| {
                    let doc = serde_json::json!({
                        "layer": p.layer,
                        "filter": p.filter,
                        "mode": p.mode,
                        "seed": p.seed,
                        "steps": p.steps(),
                        "activation_trace": p.activation_trace,
                        "final_activation": p.final_activation,
                        "width": p.width,
                        "height": p.height,
                        "interrupted": p.interrupted,
                    });
                    let img = p.to_rgb8();
                    Ok((
                        json(&doc)?,
                        (img.pixels, img.height, img.width),
                        f32_bytes(&p.image),
                    ))
                })
                .collect()
        })
    }

    /// `fmv exemplars --json`.
    #[pyo3(signature = (images, layer, *, filters=None, k=9, by="mean", strict=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn exemplars(
        &self,
        py: Python<'_>,
        images: Vec<PathBuf>,
        layer: &Bound<'_, PyAny>,
        filters: Option<Vec<usize>>,
        k: usize,
        by: &str,
        strict: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let by: ExemplarStat = by.parse().map_err(BadConfig::new_err)?;
        let cfg = ExemplarsConfig::new(self::layer(layer)?)
            .with_filters(filters)
            .with_k(k)
            .with_by(by)
            .with_strict(strict);
        self.run(py, progress, |viz, obs| {
            let list = ImageList::open(&images).py_err()?;
            json(&ExemplarsDocument::from(
                &viz.exemplars(&list, &cfg, obs).py_err()?,
            ))
        })
    }

    /// `fmv ablate --json`: each class's maps (`top_maps`), or the same `filters` for every
    /// class.
    #[pyo3(signature = (test_dir, layer, *, top_maps=None, filters=None, each=false, random_sets=20, seed=0, labels=None, strict=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn ablate(
        &self,
        py: Python<'_>,
        test_dir: PathBuf,
        layer: &Bound<'_, PyAny>,
        top_maps: Option<Vec<(String, Vec<usize>)>>,
        filters: Option<Vec<usize>>,
        each: bool,
        random_sets: usize,
        seed: u64,
        labels: Option<Vec<String>>,
        strict: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let layer = self::layer(layer)?;
        let cfg = match (top_maps, filters) {
            (Some(m), None) => AblationConfig::new(layer, m),
            (None, Some(f)) => AblationConfig::same_maps(layer, f),
            _ => {
                return Err(BadConfig::new_err(
                    "give each class's maps (top_maps) or the same filters for every class",
                ));
            }
        }
        .with_each(each)
        .with_random_sets(random_sets)
        .with_seed(seed)
        .with_labels(labels)
        .with_strict(strict);
        self.run(py, progress, |viz, obs| {
            let test = ImageFolder::open(&test_dir, None).py_err()?;
            json(&AblationDocument::new(
                &viz.ablate(&test, &cfg, obs).py_err()?,
                each,
            ))
        })
    }

    /// The HTML report into `out_dir` (the embedded demo, with the demo network's settings,
    /// when `train_dir` and `test_dir` are not given); returns the page's path.
    #[pyo3(signature = (out_dir, *, train_dir=None, test_dir=None, layer=None, pattern_steps=None, seed=0, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        py: Python<'_>,
        out_dir: PathBuf,
        train_dir: Option<PathBuf>,
        test_dir: Option<PathBuf>,
        layer: Option<&Bound<'_, PyAny>>,
        pattern_steps: Option<usize>,
        seed: u64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let layer = layer.map(self::layer).transpose()?;
        self.run(py, progress, |viz, obs| {
            let (train, test, mut cfg) = match (train_dir, test_dir) {
                (Some(t), Some(s)) => (
                    t,
                    s,
                    fmv::ReportConfig::new(layer.clone().unwrap_or(LayerRef::Compat(-2))),
                ),
                (None, None) => {
                    let (t, s) = demo::write_folders(&out_dir.join("data")).py_err()?;
                    (t, s, demo::config(DemoNet::ResNet))
                }
                _ => {
                    return Err(BadConfig::new_err(
                        "give train_dir and test_dir together (or neither, for the demo)",
                    ));
                }
            };
            if let Some(l) = layer {
                cfg = cfg.with_layer(l);
            }
            if let Some(s) = pattern_steps {
                cfg = cfg.with_pattern_steps(s);
            }
            cfg = cfg.with_seed(seed);
            let train = ImageFolder::open(&train, None).py_err()?;
            let test = ImageFolder::open(&test, None).py_err()?;
            let folders = Folders {
                train: &train,
                test: &test,
            };
            let mut forward = Forward(obs);
            let report = fmv::report::report(viz, folders, &cfg, &mut forward).py_err()?;
            write_report(&out_dir, &report)
        })
    }
}

/// Writes every file of a report under `dir`.
fn write_report(dir: &Path, report: &fmv::Report) -> PyResult<String> {
    let io = |e: std::io::Error, p: &Path| {
        crate::errors::BadInput::new_err(format!("cannot write {}: {e}", p.display()))
    };
    for file in report.files().py_err()? {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
        }
        std::fs::write(&path, &file.bytes).map_err(|e| io(e, &path))?;
    }
    Ok(dir.join("index.html").display().to_string())
}

/// The report's events to a run's observer.
struct Forward<'a>(&'a mut PyObserver);

impl fmv::report::ReportObserver for Forward<'_> {
    fn on_event(&mut self, event: &fmv::report::ReportEvent<'_>) {
        if let fmv::report::ReportEvent::Analysis(e) = event {
            fmv::core::Observer::on_event(self.0, e);
        }
    }

    fn should_stop(&mut self) -> bool {
        fmv::core::Observer::should_stop(self.0)
    }
}

/// Keeps each image's maps as they stream in, and passes every event on.
struct Keep<'a> {
    shown: &'a mut Vec<ShownMaps>,
    inner: &'a mut PyObserver,
}

impl fmv::core::Observer for Keep<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Event::Maps(m) = event {
            self.shown.push((
                m.path.display().to_string(),
                m.mean,
                m.maps.iter().map(|v| f32_bytes(v)).collect(),
                m.height,
                m.width,
                (m.input.pixels.clone(), m.input.height, m.input.width),
            ));
        }
        self.inner.on_event(event);
    }

    fn should_stop(&mut self) -> bool {
        self.inner.should_stop()
    }
}
