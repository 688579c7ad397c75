//! Where a model's weights came from, as every result that depends on them records it: a
//! [`WeightsId`] (a sha256) and the file it names.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The identity of a network's weights: the sha256, in hex, of the file or bytes they were read
/// from, or, for tensors built in memory, of their names, types, shapes and values. Results
/// made by one set of weights are merged or resumed only with results of the same identity.
///
/// ```
/// use fmv_models::WeightsId;
/// let id = WeightsId::of_bytes(b"abc");
/// assert_eq!(id.as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct WeightsId(String);

impl WeightsId {
    /// The sha256 of some bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        WeightsId(hex(&Sha256::digest(bytes)))
    }

    /// The sha256 of a file's contents, read in chunks.
    pub fn of_file(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        Ok(WeightsId(hex(&hash.finalize())))
    }

    /// An identity read back from a saved result (a sha256 in hex, as [`WeightsId::as_str`]
    /// gives it).
    pub fn from_hex(hex: impl Into<String>) -> Self {
        WeightsId(hex.into())
    }

    /// The sha256 in hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A hasher of named tensors' contents, for weights that have no file.
    pub(crate) fn hasher() -> TensorHasher {
        TensorHasher(Sha256::new())
    }
}

impl std::fmt::Display for WeightsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hashes tensors one at a time, each with its name, type and shape.
pub(crate) struct TensorHasher(Sha256);

impl TensorHasher {
    /// Adds one tensor (its values as little-endian f64, exact for every float type candle has).
    pub fn add(&mut self, name: &str, t: &candle_core::Tensor) -> Result<()> {
        let h = &mut self.0;
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(t.dtype().as_str().as_bytes());
        h.update((t.rank() as u64).to_le_bytes());
        for &d in t.dims() {
            h.update((d as u64).to_le_bytes());
        }
        let values: Vec<f64> = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_vec1()?;
        for v in values {
            h.update(v.to_le_bytes());
        }
        Ok(())
    }

    /// The identity of everything added.
    pub fn finish(self) -> WeightsId {
        WeightsId(hex(&self.0.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a model's weights came from: the file as given (or the label of weights that have
/// none) and their identity. The report's manifest records both.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Provenance {
    /// The weights file as given, or the label of weights held in memory.
    pub file: String,
    /// Their identity.
    #[cfg_attr(feature = "serde", serde(rename = "sha256"))]
    pub id: WeightsId,
}
