//! Reading weights: safetensors (memory-mapped) and zip-format PyTorch files, with key names
//! normalised to torchvision's scheme.
//!
//! A [`Checkpoint`] knows every tensor's name and shape from the file's header alone; tensor
//! data is read only when [`Checkpoint::load`] asks for it, so a classifier that is never used
//! is never read.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{BackendContext, Error, Result, plain};
use crate::identity::{Provenance, WeightsId};

/// How the file names its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScheme {
    /// torchvision's names (`conv1`, `layer1.0.conv1`, `features.0`, `classifier.0`); also
    /// what timm uses for ResNet.
    Torchvision,
    /// timm's VGG: `pre_logits.fc1`/`fc2` as convolutions and `head.fc`; renamed and reshaped
    /// to torchvision's `classifier.0/3/6` on load.
    TimmVgg,
}

impl KeyScheme {
    /// The scheme's name, as shown in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScheme::Torchvision => "torchvision",
            KeyScheme::TimmVgg => "timm",
        }
    }
}

/// One tensor of a checkpoint, under its canonical (torchvision) name.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key as written in the file.
    pub file_key: String,
    /// The shape under the canonical name (timm's 4-D classifier convolutions appear 2-D).
    pub shape: Vec<usize>,
    /// The dtype in the file.
    pub dtype: DType,
}

enum Source {
    Safetensors(candle_core::safetensors::MmapedSafetensors),
    Pth(crate::pth::Pth),
    Memory(HashMap<String, Tensor>),
}

/// An opened weights file.
pub struct Checkpoint {
    path: PathBuf,
    source: Source,
    scheme: KeyScheme,
    /// The prefix removed from every key (`module.`), or empty.
    prefix: String,
    entries: BTreeMap<String, Entry>,
    /// The weights' identity, computed on first use (hashing a large file takes a while).
    id: std::sync::OnceLock<WeightsId>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("scheme", &self.scheme)
            .field("n_tensors", &self.entries.len())
            .finish()
    }
}

const SAFETENSORS: &str = "safetensors";
const PYTORCH: &str = "PyTorch";

impl Checkpoint {
    /// Opens a weights file, recognised by its content: safetensors, or a zip-format PyTorch
    /// checkpoint (`torch.save` since torch 1.6) holding a state dict, possibly wrapped in a
    /// dict under `state_dict`, `model`, `model_state_dict`, `net` or `network` (Lightning's
    /// `.ckpt`, most training scripts). A prefix that every key shares and that training code
    /// adds (`module.` from DataParallel, `model.` from Lightning, `_orig_mod.` from
    /// `torch.compile`, `net.`, `network.`) is removed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// [`Checkpoint::open`], reading the state dict under the top-level key `state_key` of a
    /// `.pth` (an EMA copy: `state_dict_ema`, `model_ema`) instead of the preferred one.
    pub fn open_with(path: impl AsRef<Path>, state_key: Option<&str>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut head = [0u8; 16];
        let n = std::fs::File::open(&path)
            .and_then(|mut f| read_up_to(&mut f, &mut head))
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        let head = &head[..n];
        if head.starts_with(b"PK\x03\x04") {
            Self::open_pth(path, state_key)
        } else if let Some(key) = state_key {
            Err(Error::BadCheckpoint {
                path,
                format: SAFETENSORS,
                reason: format!(
                    "a state key (`{key}`) chooses among the state dicts of a `.pth` file, \
                     and a safetensors file holds one"
                ),
            })
        } else if head.len() >= 9 && head[8] == b'{' {
            Self::open_safetensors(path)
        } else {
            let reason = if head.first() == Some(&0x80) {
                "this is a legacy (non-zip) pickle; re-save it with a current torch: `torch.save(torch.load(f), g)`".to_string()
            } else if head.is_empty() {
                "the file is empty".to_string()
            } else {
                "the file starts with neither a safetensors header nor a zip signature".to_string()
            };
            Err(Error::BadCheckpoint {
                path,
                format: "weights",
                reason,
            })
        }
    }

    fn open_safetensors(path: PathBuf) -> Result<Self> {
        // SAFETY: the map is read-only; like every memory-mapped reader, results are undefined if
        // another process truncates the file while it is open. This is the crate's only mmap.
        let st =
            unsafe { candle_core::safetensors::MmapedSafetensors::new(&path) }.map_err(|e| {
                Error::BadCheckpoint {
                    path: path.clone(),
                    format: SAFETENSORS,
                    reason: plain(e).to_string(),
                }
            })?;
        let mut raw = Vec::new();
        for (name, view) in st.tensors() {
            let dtype = st_dtype(view.dtype());
            raw.push((name, view.shape().to_vec(), dtype));
        }
        Self::from_raw(path, Source::Safetensors(st), raw)
    }

    /// Asks the kernel to reclaim the resident pages of a memory-mapped file once its tensors
    /// have been copied out (`MADV_PAGEOUT`, a hint: the mapping and its contents stay as they
    /// are, and a later read, such as the lazily loaded classifier's, faults them back in).
    /// The model keeps the file mapped for that classifier, and its pages otherwise stay in the
    /// process's resident memory (92 MB for ResNet50). Does nothing for other formats or off
    /// Linux.
    pub(crate) fn release_pages(&self) {
        #[cfg(target_os = "linux")]
        if let Source::Safetensors(st) = &self.source {
            let views = st.tensors();
            let spans = views.iter().map(|(_, v)| v.data().as_ptr_range());
            let Some((start, end)) = spans.fold(None, |acc: Option<(usize, usize)>, r| {
                let (s, e) = (r.start as usize, r.end as usize);
                Some(acc.map_or((s, e), |(a, b)| (a.min(s), b.max(e))))
            }) else {
                return;
            };
            // The mapping starts at the file's first byte, on a page boundary, so rounding the
            // start down to a page stays inside it.
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
            let base = start - start % page;
            // SAFETY: [base, end) lies inside the live read-only mapping `st` owns; MADV_PAGEOUT
            // changes no contents, only where they reside. A failure leaves the pages resident.
            unsafe {
                libc::madvise(base as *mut libc::c_void, end - base, libc::MADV_PAGEOUT);
            }
        }
    }

    fn open_pth(path: PathBuf, state_key: Option<&str>) -> Result<Self> {
        let pth = crate::pth::Pth::open(&path, state_key)?;
        let raw = pth
            .tensors
            .iter()
            .map(|(name, t)| (name.clone(), t.shape.clone(), Some(t.dtype)))
            .collect();
        Self::from_raw(path, Source::Pth(pth), raw)
    }

    /// The top-level key of a `.pth` whose state dict was read (`state_dict`, `model_ema`),
    /// or `None` where the file is a state dict.
    pub fn state_key(&self) -> Option<&str> {
        match &self.source {
            Source::Pth(p) => p.state.key.as_deref(),
            _ => None,
        }
    }

    /// The file's other top-level keys that hold weights (EMA copies), which `--state-key`
    /// can choose instead.
    pub fn other_state_keys(&self) -> &[String] {
        match &self.source {
            Source::Pth(p) => &p.state.others,
            _ => &[],
        }
    }

    /// The prefix removed from every key (`module.`, `model.`), if any.
    pub fn removed_prefix(&self) -> Option<&str> {
        (!self.prefix.is_empty()).then_some(self.prefix.as_str())
    }

    /// Wraps tensors already in memory, e.g. for tests or weights made by a program. `label`
    /// stands in for the file path in error messages.
    pub fn from_tensors(
        label: impl Into<PathBuf>,
        tensors: HashMap<String, Tensor>,
    ) -> Result<Self> {
        let raw = tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec(), Some(t.dtype())))
            .collect();
        Self::from_raw(label.into(), Source::Memory(tensors), raw)
    }

    /// Reads a safetensors file already in memory (an embedded network, say); `label` stands in
    /// for the file path in error messages and provenance, and the bytes' sha256 is the
    /// weights' identity, as that of the same file on disk would be.
    pub fn from_safetensors_bytes(label: impl Into<PathBuf>, bytes: &[u8]) -> Result<Self> {
        let path = label.into();
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
            Error::BadCheckpoint {
                path: path.clone(),
                format: SAFETENSORS,
                reason: plain(e).to_string(),
            }
        })?;
        let ck = Self::from_tensors(path, tensors)?;
        let _ = ck.id.set(WeightsId::of_bytes(bytes));
        Ok(ck)
    }

    /// The weights' identity: the sha256 of the file (or bytes) they were read from, or of the
    /// tensors given ([`WeightsId`]); computed once, on first use.
    pub fn weights_id(&self) -> Result<WeightsId> {
        if let Some(id) = self.id.get() {
            return Ok(id.clone());
        }
        let id = match &self.source {
            Source::Safetensors(_) | Source::Pth(_) => WeightsId::of_file(&self.path)?,
            Source::Memory(tensors) => {
                let mut names: Vec<&String> = tensors.keys().collect();
                names.sort();
                let mut hasher = WeightsId::hasher();
                for name in names {
                    hasher.add(name, &tensors[name])?;
                }
                hasher.finish()
            }
        };
        Ok(self.id.get_or_init(|| id).clone())
    }

    /// Where the weights came from: [`Checkpoint::path`] and [`Checkpoint::weights_id`].
    pub fn provenance(&self) -> Result<Provenance> {
        Ok(Provenance {
            file: self.path.display().to_string(),
            id: self.weights_id()?,
        })
    }

    fn from_raw(
        path: PathBuf,
        source: Source,
        raw: Vec<(String, Vec<usize>, Option<DType>)>,
    ) -> Result<Self> {
        let prefix = wrapper_prefix(raw.iter().map(|(k, _, _)| k.as_str()));
        let unwrapped = |k: &str| k[prefix.len()..].to_string();
        let timm_vgg = raw.iter().any(|(k, _, _)| {
            let k = unwrapped(k);
            k.starts_with("pre_logits.") || k.starts_with("head.fc.")
        }) && raw
            .iter()
            .any(|(k, _, _)| unwrapped(k).starts_with("features."));
        let scheme = if timm_vgg {
            KeyScheme::TimmVgg
        } else {
            KeyScheme::Torchvision
        };
        let mut entries = BTreeMap::new();
        for (file_key, shape, dtype) in raw {
            let Some(dtype) = dtype else {
                return Err(Error::UnsupportedDtype {
                    path,
                    key: file_key,
                    dtype: "an unknown safetensors dtype".into(),
                });
            };
            let key = unwrapped(&file_key);
            let (name, shape) = match scheme {
                KeyScheme::TimmVgg => timm_vgg_to_torchvision(&key, shape),
                KeyScheme::Torchvision => (key, shape),
            };
            entries.insert(
                name,
                Entry {
                    file_key,
                    shape,
                    dtype,
                },
            );
        }
        Ok(Checkpoint {
            path,
            source,
            scheme,
            prefix,
            entries,
            id: std::sync::OnceLock::new(),
        })
    }

    /// The file this checkpoint was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key scheme detected in the file.
    pub fn scheme(&self) -> KeyScheme {
        self.scheme
    }

    /// Every tensor, by canonical (torchvision) name, sorted by name.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// The canonical shape of a tensor, if the checkpoint has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Reads one tensor by canonical name onto `device` as `dtype` (a float type), in its
    /// canonical shape, and refuses NaN or infinite values.
    pub fn load(&self, name: &str, device: &Device, dtype: DType) -> Result<Tensor> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| Error::MissingTensors {
                path: self.path.clone(),
                arch: "this network".into(),
                scheme: self.scheme.as_str(),
                missing: vec![(name.to_string(), vec![])],
                unexpected: Vec::new(),
            })?;
        if !entry.dtype.is_float() {
            return Err(Error::UnsupportedDtype {
                path: self.path.clone(),
                key: entry.file_key.clone(),
                dtype: format!("{:?}", entry.dtype),
            });
        }
        let bad = |e: candle_core::Error| Error::BadCheckpoint {
            path: self.path.clone(),
            format: match self.source {
                Source::Pth(_) => PYTORCH,
                _ => SAFETENSORS,
            },
            reason: format!("tensor `{}`: {}", entry.file_key, plain(e)),
        };
        let t = match &self.source {
            Source::Safetensors(st) => st.load(&entry.file_key, &Device::Cpu).map_err(bad)?,
            Source::Pth(p) => p.read(&entry.file_key)?,
            Source::Memory(m) => m[&entry.file_key]
                .to_device(&Device::Cpu)
                .op("copy a tensor")?,
        };
        let t = t
            .to_dtype(dtype)
            .op("convert weights")?
            .reshape(entry.shape.as_slice())
            .op("reshape weights")?;
        // `0·t` is zero everywhere unless a value is NaN or infinite: one cheap pass.
        let all_finite = t
            .affine(0.0, 0.0)
            .and_then(|d| d.sum_all())
            .and_then(|d| d.to_dtype(DType::F64))
            .and_then(|d| d.to_scalar::<f64>())
            .op("check weights")?
            == 0.0;
        if !all_finite {
            let values = t
                .to_dtype(DType::F64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .op("read weights")?;
            let n_nan = values.iter().filter(|v| v.is_nan()).count();
            let n_inf = values.iter().filter(|v| v.is_infinite()).count();
            return Err(Error::NonFiniteWeights {
                path: self.path.clone(),
                key: entry.file_key.clone(),
                kind: if n_nan > 0 { "NaN" } else { "inf" },
                count: n_nan + n_inf,
            });
        }
        t.to_device(device).op("move weights to the device")
    }

    /// Reads a tensor as `f64` values on the host (for BatchNorm folding and similar).
    pub fn load_f64(&self, name: &str) -> Result<Vec<f64>> {
        self.load(name, &Device::Cpu, DType::F64)?
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .op("read weights")
    }
}

/// The prefixes training code puts before every key of a network: DataParallel's `module.`,
/// Lightning's `model.` (the attribute holding the network), `torch.compile`'s `_orig_mod.`,
/// and the common attribute names `net.` and `network.`.
const WRAPPER_PREFIXES: &[&str] = &["module.", "model.", "_orig_mod.", "net.", "network."];

/// The wrapper prefixes every key shares, outermost first (`model.module.`), or empty.
fn wrapper_prefix<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut prefix = String::new();
    if keys.clone().next().is_none() {
        return prefix;
    }
    while let Some(p) = WRAPPER_PREFIXES.iter().find(|p| {
        keys.clone().all(|k| {
            k.strip_prefix(prefix.as_str())
                .is_some_and(|r| r.starts_with(*p))
        })
    }) {
        prefix.push_str(p);
    }
    prefix
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn st_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::BOOL | S::U8 => DType::U8,
        S::U32 => DType::U32,
        S::I16 => DType::I16,
        S::I32 => DType::I32,
        S::I64 => DType::I64,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F32 => DType::F32,
        S::F64 => DType::F64,
        _ => return None,
    })
}

/// timm's VGG classifier as torchvision's: `pre_logits.fc1` (a 7×7 convolution) is
/// `classifier.0` (a linear layer over the C·7·7 flattened features, same element order),
/// `pre_logits.fc2` (1×1) is `classifier.3`, `head.fc` is `classifier.6`.
fn timm_vgg_to_torchvision(key: &str, shape: Vec<usize>) -> (String, Vec<usize>) {
    let renamed = [
        ("pre_logits.fc1.", "classifier.0."),
        ("pre_logits.fc2.", "classifier.3."),
        ("head.fc.", "classifier.6."),
    ]
    .iter()
    .find_map(|(from, to)| key.strip_prefix(from).map(|rest| format!("{to}{rest}")));
    match renamed {
        Some(name) => {
            let shape = if shape.len() == 4 {
                // Saturating: a file may claim `[0, huge, huge, huge]`; the shape check names it.
                vec![
                    shape[0],
                    shape[1].saturating_mul(shape[2]).saturating_mul(shape[3]),
                ]
            } else {
                shape
            };
            (name, shape)
        }
        None => (key.to_string(), shape),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handing a memory-mapped file's pages back changes nothing that is read afterwards: the
    /// pages fault back in with the file's contents (the lazily read classifier relies on it).
    #[test]
    fn released_pages_read_back_the_same() {
        let dir = std::env::temp_dir().join(format!("fmv-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        // Several pages of data, so that whole pages are released.
        let values: Vec<f32> = (0..50_000).map(|i| (i as f32).sin()).collect();
        let t = Tensor::from_vec(values.clone(), (50, 1000), &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("fc.weight".to_string(), t)]), &path)
            .unwrap();
        let ck = Checkpoint::open(&path).unwrap();
        let read = |ck: &Checkpoint| -> Vec<f32> {
            let t = ck.load("fc.weight", &Device::Cpu, DType::F32).unwrap();
            t.flatten_all().unwrap().to_vec1().unwrap()
        };
        assert_eq!(read(&ck), values);
        ck.release_pages();
        assert_eq!(read(&ck), values);
        drop(ck);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
