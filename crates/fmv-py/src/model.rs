//! `fmv._fmv.Model`: a loaded network, from a weights file, from tensors held in memory (a
//! `state_dict()`), or the embedded demo.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use fmv::models::demo::DemoNet;
use fmv::models::{Checkpoint, DType, Device, HeadLayout, Tensor, parse_device};
use fmv::{Backbone, LoadOptions, Model};
use pyo3::prelude::*;

use crate::errors::{BadCheckpoint, BadConfig, ToPyResult};

/// A loaded ResNet or VGG.
#[pyclass(name = "Model", module = "fmv._fmv", frozen)]
pub struct PyModel {
    pub(crate) model: Arc<Model>,
}

/// The load options from the keyword arguments.
fn options(
    arch: Option<String>,
    head: Option<String>,
    state_key: Option<String>,
    device: &str,
) -> PyResult<LoadOptions> {
    let mut opts = LoadOptions::new().with_device(parse_device(device).py_err()?);
    if let Some(a) = arch {
        opts = opts.with_arch(a);
    }
    if let Some(h) = head {
        let layout: HeadLayout = h
            .parse()
            .map_err(|e: String| BadConfig::new_err(format!("head: {e}")))?;
        opts = opts.with_head(layout);
    }
    if let Some(k) = state_key {
        opts = opts.with_state_key(k);
    }
    Ok(opts)
}

/// A tensor from its little-endian bytes, as numpy's `tobytes()` writes them.
fn tensor(name: &str, dtype: &str, shape: &[usize], bytes: &[u8]) -> PyResult<Tensor> {
    let dtype = match dtype {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "float16" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" => DType::I64,
        "uint8" => DType::U8,
        "uint32" => DType::U32,
        other => {
            return Err(BadCheckpoint::new_err(format!(
                "tensor `{name}` has dtype {other}, which fmv does not read (float32, float64, \
                 float16, bfloat16, int64)"
            )));
        }
    };
    let n: usize = shape.iter().product();
    if bytes.len() != n * dtype.size_in_bytes() {
        return Err(BadCheckpoint::new_err(format!(
            "tensor `{name}`: {} bytes for shape {shape:?} of {dtype:?}",
            bytes.len()
        )));
    }
    Tensor::from_raw_buffer(bytes, dtype, shape, &Device::Cpu)
        .map_err(|e| BadCheckpoint::new_err(format!("tensor `{name}`: {e}")))
}

/// Checks that this build can run on `device` (`cpu`, `cuda`, `cuda:N`, `metal`) here: raises
/// `BadConfig` with the reason when it cannot.
#[pyfunction]
pub fn check_device(device: &str) -> PyResult<()> {
    parse_device(device).py_err().map(drop)
}

#[pymethods]
impl PyModel {
    /// Loads a weights file (safetensors, or a `.pth` as `torch.save` writes it).
    #[staticmethod]
    #[pyo3(signature = (path, *, arch=None, head=None, state_key=None, device="cpu"))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        arch: Option<String>,
        head: Option<String>,
        state_key: Option<String>,
        device: &str,
    ) -> PyResult<Self> {
        let opts = options(arch, head, state_key, device)?;
        let model = py.detach(|| Model::load(&path, &opts).py_err())?;
        Ok(PyModel {
            model: Arc::new(model),
        })
    }

    /// Builds the network from tensors in memory: `(name, dtype, shape, bytes)` each, the
    /// bytes little-endian and C-ordered. `label` names them in messages.
    #[staticmethod]
    #[pyo3(signature = (tensors, *, label="state_dict", arch=None, head=None, device="cpu"))]
    fn from_tensors(
        py: Python<'_>,
        tensors: Vec<(String, String, Vec<usize>, Vec<u8>)>,
        label: &str,
        arch: Option<String>,
        head: Option<String>,
        device: &str,
    ) -> PyResult<Self> {
        let opts = options(arch, head, None, device)?;
        let mut map = HashMap::with_capacity(tensors.len());
        for (name, dtype, shape, bytes) in &tensors {
            map.insert(name.clone(), tensor(name, dtype, shape, bytes)?);
        }
        drop(tensors);
        let model = py.detach(|| {
            let ck = Checkpoint::from_tensors(label, map).py_err()?;
            Model::from_checkpoint(ck, &opts).py_err()
        })?;
        Ok(PyModel {
            model: Arc::new(model),
        })
    }

    /// The embedded demo network: `resnet` or `vgg`.
    #[staticmethod]
    #[pyo3(signature = (net="resnet"))]
    fn demo(net: &str) -> PyResult<Self> {
        let which = DemoNet::from_name(net).ok_or_else(|| {
            BadConfig::new_err(format!("no demo network `{net}`; choose resnet or vgg"))
        })?;
        Ok(PyModel {
            model: Arc::new(which.load(&LoadOptions::new()).py_err()?),
        })
    }

    /// The architecture's name (`resnet50`, `vgg16_bn`).
    #[getter]
    fn arch(&self) -> String {
        self.model.arch_name()
    }

    /// The sha256 of the weights.
    #[getter]
    fn sha256(&self) -> PyResult<String> {
        Ok(self.model.provenance().py_err()?.id.as_str().to_string())
    }

    /// Every tap: `(name, kind, channels)`, in forward order.
    #[getter]
    fn layers(&self) -> Vec<(String, String, usize)> {
        self.model
            .layers()
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    format!("{:?}", l.kind).to_lowercase(),
                    l.channels,
                )
            })
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Model(arch={:?})", self.model.arch_name())
    }
}
