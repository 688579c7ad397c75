//! Which files an analysis reads: files given by name, and the image files of a folder
//! (sorted by name, recognised by content).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file left out of an analysis, and why. Analyses return these as data; the caller
/// decides whether to warn or fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// Whether the first bytes of a file are those of an image format fmv reads.
pub fn looks_like_image(path: &Path) -> Result<bool> {
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    Ok(image::guess_format(&head[..n]).is_ok())
}

/// The entries of a folder that are files, sorted by name (byte order of the file name).
pub fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Expands the command line's `IMAGE_OR_DIR...`: a file stands for itself, a folder for its
/// image files sorted by name. Files of a folder that are not images are returned as skipped.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Skipped>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        if input.is_dir() {
            for f in sorted_files(input)? {
                if looks_like_image(&f)? {
                    files.push(f);
                } else {
                    skipped.push(Skipped {
                        path: f,
                        reason: "not an image".into(),
                    });
                }
            }
        } else if input.exists() {
            files.push(input.clone());
        } else {
            return Err(Error::Io {
                path: input.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
    }
    if files.is_empty() {
        return Err(Error::NoImages {
            reason: format!(
                "{} contain(s) no image files",
                inputs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok((files, skipped))
}
