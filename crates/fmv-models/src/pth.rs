//! Zip-format PyTorch checkpoints (`torch.save` since torch 1.6): the state dict's tensors,
//! found in the archive's `data.pkl` by the restricted unpickler (`pickle.rs`) and checked,
//! with checked arithmetic, against the archive entry that holds their data before anything is
//! read. A tensor that cannot be used is named with the reason.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::pickle::{Value, unpickle};

/// The largest `data.pkl` read (64 MiB; a ResNet-152's is about 100 kB).
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Where one tensor's data lies in the archive, checked.
#[derive(Debug, Clone)]
pub(crate) struct TensorRef {
    /// The archive entry holding its storage (`archive/data/0`).
    entry: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Where it starts in the entry, in bytes.
    offset: u64,
    /// Its length in bytes.
    len: u64,
    /// Stored column-major (torch's `t()` of a contiguous tensor, for one).
    fortran: bool,
}

/// An opened `.pth` file: its tensors, by name.
#[derive(Debug)]
pub(crate) struct Pth {
    path: PathBuf,
    pub tensors: BTreeMap<String, TensorRef>,
    /// Which of the file's state dicts was read.
    pub state: StateChoice,
}

/// A tensor that cannot be used, for [`Error::BadTensor`].
struct Problem {
    key: String,
    reason: String,
}

impl Pth {
    /// Reads the archive's directory and its state dict (at the top, under `state_key` if
    /// given, or under `state_dict`, `model`, `model_state_dict`, `net` or `network`); every
    /// tensor is checked against its storage.
    pub fn open(path: &Path, state_key: Option<&str>) -> Result<Pth> {
        let file = |reason: String| Error::BadCheckpoint {
            path: path.to_path_buf(),
            format: "PyTorch",
            reason,
        };
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let reader = BufReader::new(std::fs::File::open(path).map_err(io)?);
        let mut zip = zip::ZipArchive::new(reader).map_err(|e| file(e.to_string()))?;
        let mut sizes = BTreeMap::new();
        for i in 0..zip.len() {
            let entry = zip.by_index(i).map_err(|e| file(e.to_string()))?;
            let name = entry.name().map_err(|e| file(e.to_string()))?.into_owned();
            sizes.insert(name, entry.size());
        }
        let Some(pickle) = sizes.keys().find(|n| n.ends_with("data.pkl")).cloned() else {
            return Err(file("the archive has no data.pkl".into()));
        };
        let dir = pickle
            .strip_suffix("data.pkl")
            .unwrap_or_default()
            .to_string();
        if let Some(order) = sizes
            .keys()
            .find(|n| **n == format!("{dir}byteorder"))
            .cloned()
        {
            let mut text = String::new();
            zip.by_name(&order)
                .map_err(|e| file(e.to_string()))?
                .take(16)
                .read_to_string(&mut text)
                .map_err(io)?;
            if text.trim() != "little" {
                return Err(file(format!(
                    "its tensors are stored {}-endian; fmv reads little-endian ones",
                    text.trim()
                )));
            }
        }
        let mut bytes = Vec::new();
        zip.by_name(&pickle)
            .map_err(|e| file(e.to_string()))?
            .take(MAX_PICKLE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| file(format!("cannot read {pickle}: {e}")))?;
        if bytes.len() as u64 > MAX_PICKLE_BYTES {
            return Err(file(format!(
                "{pickle} is larger than the {} MiB a state dict's pickle may be",
                MAX_PICKLE_BYTES >> 20
            )));
        }
        let pickled = unpickle(&bytes).map_err(|e| file(format!("{pickle}: {e}")))?;
        let (tensors, state) = state_dict(&pickled.root, &dir, &sizes, state_key).map_err(|p| {
            if p.key.is_empty() {
                file(p.reason)
            } else {
                Error::BadTensor {
                    path: path.to_path_buf(),
                    key: p.key,
                    reason: p.reason,
                }
            }
        })?;
        if tensors.is_empty() {
            return Err(file(
                "no tensors found (expected a state dict, or a dict holding one under \
                 `state_dict` or `model`)"
                    .into(),
            ));
        }
        Ok(Pth {
            path: path.to_path_buf(),
            tensors,
            state,
        })
    }

    /// Reads one tensor (the archive is opened again; its entry was checked to hold it).
    pub fn read(&self, name: &str) -> Result<Tensor> {
        let bad = |reason: String| Error::BadTensor {
            path: self.path.clone(),
            key: name.to_string(),
            reason,
        };
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| bad("it is not in the file".into()))?;
        let file = std::fs::File::open(&self.path).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
        let mut entry = zip.by_name(&t.entry).map_err(|e| bad(e.to_string()))?;
        std::io::copy(&mut (&mut entry).take(t.offset), &mut std::io::sink())
            .map_err(|e| bad(e.to_string()))?;
        let mut data = Vec::with_capacity(t.len as usize);
        (&mut entry)
            .take(t.len)
            .read_to_end(&mut data)
            .map_err(|e| bad(e.to_string()))?;
        if data.len() as u64 != t.len {
            return Err(bad(format!(
                "its storage ended after {} of its {} bytes",
                data.len(),
                t.len
            )));
        }
        // Reading the entry to its end checks its CRC-32: a damaged file is refused, not read
        // as other weights. (Usually nothing is left: a state dict's tensors fill their
        // storages.)
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| {
            bad(format!(
                "its storage {} is damaged ({e}); the file is corrupt, save or download it again",
                t.entry
            ))
        })?;
        let bad_candle = |e: candle_core::Error| bad(crate::error::plain(e).to_string());
        if !t.fortran || t.shape.len() < 2 {
            return Tensor::from_raw_buffer(&data, t.dtype, &t.shape, &Device::Cpu)
                .map_err(bad_candle);
        }
        // Column-major: the reversed shape read row-major, then the axes reversed.
        let reversed: Vec<usize> = t.shape.iter().rev().copied().collect();
        let axes: Vec<usize> = (0..t.shape.len()).rev().collect();
        Tensor::from_raw_buffer(&data, t.dtype, &reversed, &Device::Cpu)
            .and_then(|x| x.permute(axes))
            .and_then(|x| x.contiguous())
            .map_err(bad_candle)
    }
}

/// [`crate::fuzzing::state_dict`]: the pickle's tensors against an archive of ten 1 MiB storages.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_state_dict(pickle: &[u8]) -> std::result::Result<usize, String> {
    let sizes = (0..10)
        .map(|i| (format!("archive/data/{i}"), 1 << 20))
        .collect();
    let pickled = unpickle(pickle)?;
    state_dict(&pickled.root, "archive/", &sizes, None)
        .map(|(t, _)| t.len())
        .map_err(|p| format!("{}: {}", p.key, p.reason))
}

/// The keys training code wraps a state dict in, in the order fmv prefers them when a file has
/// several (the trained weights before their EMA copies).
const STATE_KEYS: &[&str] = &["state_dict", "model", "model_state_dict", "net", "network"];

/// Which state dict of a file to read: the one at the top, or under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateChoice {
    /// The top-level key it was under, `None` for a file that is a state dict.
    pub key: Option<String>,
    /// The file's other top-level keys that hold tensors (EMA copies, say).
    pub others: Vec<String>,
}

/// The tensors of the state dict at the top of `root`, or under `wanted` (`--state-key`), or
/// under one of the keys checkpoints wrap it in ([`STATE_KEYS`]).
fn state_dict(
    root: &Value,
    dir: &str,
    sizes: &BTreeMap<String, u64>,
    wanted: Option<&str>,
) -> std::result::Result<(BTreeMap<String, TensorRef>, StateChoice), Problem> {
    let problem = |reason: String| Problem {
        key: String::new(),
        reason,
    };
    if let Value::Call(call) = root
        && let Value::Global(name) = &call.0
    {
        return Err(problem(format!(
            "it holds a whole pickled model (`{}.{}`), as `torch.save(model)` writes, which only \
             Python with that class's code can rebuild; fmv reads state dicts: save one with \
             `torch.save(model.state_dict(), \"weights.pth\")`",
            name.0, name.1
        )));
    }
    let top = tensors_of(root, dir, sizes)?;
    // The top-level entries that hold tensors.
    let mut candidates: Vec<(String, BTreeMap<String, TensorRef>)> = Vec::new();
    for (k, v) in root.entries().into_iter().flatten() {
        if let Some(k) = k.as_str() {
            let tensors = tensors_of(&v, dir, sizes)?;
            if !tensors.is_empty() {
                candidates.push((k.to_string(), tensors));
            }
        }
    }
    let names = |except: &str| -> Vec<String> {
        candidates
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| k != except)
            .collect()
    };
    if let Some(wanted) = wanted {
        let found = candidates.iter().position(|(k, _)| k == wanted);
        return match found {
            Some(i) => {
                let others = names(wanted);
                let (key, tensors) = candidates.swap_remove(i);
                Ok((
                    tensors,
                    StateChoice {
                        key: Some(key),
                        others,
                    },
                ))
            }
            None if candidates.is_empty() => Err(problem(format!(
                "state key `{wanted}`: the file is a state dict itself, with no key holding one"
            ))),
            None => Err(problem(format!(
                "state key `{wanted}`: the file has no such key; its keys holding weights are {}",
                quoted(&names(""))
            ))),
        };
    }
    if !top.is_empty() {
        return Ok((
            top,
            StateChoice {
                key: None,
                others: Vec::new(),
            },
        ));
    }
    let preferred = STATE_KEYS
        .iter()
        .find_map(|s| candidates.iter().position(|(k, _)| k == s));
    let chosen = match (preferred, candidates.len()) {
        (Some(i), _) => i,
        (None, 1) => 0,
        (None, 0) => {
            return Ok((
                BTreeMap::new(),
                StateChoice {
                    key: None,
                    others: Vec::new(),
                },
            ));
        }
        (None, _) => {
            return Err(problem(format!(
                "it holds several sets of weights, under {}; choose one as the state key",
                quoted(&names(""))
            )));
        }
    };
    let others = names(&candidates[chosen].0);
    let (key, tensors) = candidates.swap_remove(chosen);
    Ok((
        tensors,
        StateChoice {
            key: Some(key),
            others,
        },
    ))
}

/// `` `a`, `b` ``.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tensors among a dict's entries (other entries, such as an epoch, are passed over).
fn tensors_of(
    dict: &Value,
    dir: &str,
    sizes: &BTreeMap<String, u64>,
) -> std::result::Result<BTreeMap<String, TensorRef>, Problem> {
    let mut out = BTreeMap::new();
    for (key, value) in dict.entries().into_iter().flatten() {
        let Some(name) = key.as_str() else { continue };
        let Some(args) = rebuild_args(&value, 0) else {
            continue;
        };
        let t = tensor(&args, dir, sizes).map_err(|reason| Problem {
            key: name.into(),
            reason,
        })?;
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// The arguments of `torch._utils._rebuild_tensor_v2` if `value` is a tensor (possibly inside
/// `_rebuild_parameter` or `_rebuild_from_type_v2`, a few levels deep: a hostile pickle's
/// lists may hold themselves).
fn rebuild_args(value: &Value, depth: usize) -> Option<Vec<Value>> {
    let Value::Call(call) = value else {
        return None;
    };
    if depth > 8 {
        return None;
    }
    let (callable, args) = &**call;
    let Value::Global(name) = callable else {
        return None;
    };
    let args = args.items()?;
    match (&*name.0, &*name.1) {
        ("torch._utils", "_rebuild_tensor_v2") => Some(args),
        ("torch._utils", "_rebuild_parameter") => rebuild_args(args.first()?, depth + 1),
        // `_rebuild_from_type_v2(func, type, args, state)`: `func(*args)`.
        ("torch._tensor", "_rebuild_from_type_v2") => {
            let call = Value::Call(std::rc::Rc::new((
                args.first()?.clone(),
                args.get(2)?.clone(),
            )));
            rebuild_args(&call, depth + 1)
        }
        _ => None,
    }
}

/// A non-negative integer that fits in a `usize`.
fn count(v: &Value, what: &str) -> std::result::Result<usize, String> {
    let i = v
        .as_int()
        .ok_or_else(|| format!("its {what} is {}, not an integer", v.kind()))?;
    usize::try_from(i).map_err(|_| format!("its {what} is {i}"))
}

/// A tuple of non-negative integers (a shape, strides): `what` names the tuple, `each` an item.
fn counts(v: &Value, what: &str, each: &str) -> std::result::Result<Vec<usize>, String> {
    v.items()
        .ok_or_else(|| format!("its {what} is not a tuple"))?
        .iter()
        .map(|d| count(d, each))
        .collect()
}

/// The tensor `_rebuild_tensor_v2(storage, offset, size, stride, ...)` describes, checked.
fn tensor(
    args: &[Value],
    dir: &str,
    sizes: &BTreeMap<String, u64>,
) -> std::result::Result<TensorRef, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!("its rebuild has {} arguments, not 6", args.len()));
    };
    let Value::Persistent(pid) = storage else {
        return Err(format!(
            "its storage is {}, not a persistent id",
            storage.kind()
        ));
    };
    let pid = pid
        .items()
        .ok_or_else(|| "its storage id is not a tuple".to_string())?;
    let [_, kind, key, _, numel, ..] = &pid[..] else {
        return Err(format!("its storage id has {} items, not 5", pid.len()));
    };
    let Value::Global(kind) = kind else {
        return Err("its storage has no type".into());
    };
    let dtype = match &*kind.1 {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" | "BoolStorage" => DType::U8,
        "IntStorage" => DType::I32,
        "LongStorage" => DType::I64,
        other => return Err(format!("its storage type {other} is not one fmv reads")),
    };
    let key = key
        .as_str()
        .ok_or_else(|| "its storage key is not a string".to_string())?;
    let numel = count(numel, "storage's size")?;
    let offset = count(offset, "storage offset")?;
    let shape = counts(size, "shape", "shape's dimension")?;
    let strides = counts(stride, "strides", "stride")?;
    if strides.len() != shape.len() {
        return Err(format!(
            "its shape {shape:?} and strides {strides:?} differ in length"
        ));
    }
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("its shape {shape:?} has more elements than fit in memory"))?;
    let contiguous = |order: &mut dyn Iterator<Item = (usize, usize)>| {
        let mut expected = 1usize;
        for (dim, stride) in order {
            if dim > 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(dim);
        }
        true
    };
    let pairs = || shape.iter().copied().zip(strides.iter().copied());
    let fortran = !contiguous(&mut pairs().rev()) && contiguous(&mut pairs());
    if !fortran && !contiguous(&mut pairs().rev()) {
        return Err(format!(
            "its strides {strides:?} are neither row- nor column-major for the shape {shape:?}"
        ));
    }
    let end = offset
        .checked_add(elements)
        .filter(|&end| end <= numel)
        .ok_or_else(|| {
            format!(
                "it reaches past its storage: {elements} elements from offset {offset} in a \
                 storage of {numel}"
            )
        })?;
    let width = dtype.size_in_bytes() as u64;
    let entry = format!("{dir}data/{key}");
    let stored = *sizes
        .get(&entry)
        .ok_or_else(|| format!("its storage {entry} is not in the archive"))?;
    let needed = (end as u64).checked_mul(width);
    if needed.is_none_or(|n| n > stored) {
        return Err(format!(
            "its storage {entry} holds {stored} bytes, fewer than the {end} elements of {width} \
             bytes it needs"
        ));
    }
    Ok(TensorRef {
        entry,
        dtype,
        shape,
        offset: offset as u64 * width,
        len: elements as u64 * width,
        fortran,
    })
}
