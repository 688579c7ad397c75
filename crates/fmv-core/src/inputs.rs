//! Which files an analysis reads: files given by name, and the image files of a folder
//! (sorted by name, recognised by content).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::observer::{Event, Observer};

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

/// The most bytes fmv reads from one image file (512 MiB): a larger file is refused before it
/// is read. Decoding is bounded apart, by [`crate::pixels::MAX_PIXELS`].
pub const MAX_IMAGE_FILE_BYTES: u64 = 512 << 20;

/// The most bytes fmv reads from a JSON file it is given (256 MiB: a ranking's state for 1000
/// classes of 2048 maps takes about 60 MB).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// The first (up to) 64 bytes of a file, enough to recognise an image format.
fn head(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut head = Vec::with_capacity(64);
    file.take(64)
        .read_to_end(&mut head)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head)
}

/// Whether the first bytes of a file are those of an image format fmv reads.
pub fn looks_like_image(path: &Path) -> Result<bool> {
    Ok(image::guess_format(&head(path)?).is_ok())
}

/// A regular file's bytes, refusing other files (devices, pipes, folders) and files larger
/// than `limit` bytes before reading them; the read itself stops at `limit` too.
///
/// ```
/// use fmv_core::files::read_limited;
/// let err = read_limited(std::path::Path::new("/dev/zero"), 1024).unwrap_err();
/// assert!(err.to_string().contains("not a regular file"), "{err}");
/// ```
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let too_large = |size| Error::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    let file = std::fs::File::open(path).map_err(io)?;
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    // The file grew while it was read.
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// An image file's bytes: refused as not an image from its first bytes, or as too large
/// ([`MAX_IMAGE_FILE_BYTES`]) from its size, before the rest is read.
pub(crate) fn read_image_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if image::guess_format(&head(path)?).is_err() {
        return Err(Error::NotAnImage {
            path: path.to_path_buf(),
        });
    }
    read_limited(path, MAX_IMAGE_FILE_BYTES)
}

/// Why a folder entry that is a symbolic link cannot be followed, or `None` when it can.
fn broken_link(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some("a dangling symbolic link (its target does not exist)".into())
        }
        // ELOOP: the link leads, through links, back to itself.
        Err(e) if e.raw_os_error() == Some(40) => Some("a symbolic link loop".into()),
        Err(e) => Some(format!("cannot follow the symbolic link: {e}")),
    }
}

/// The image files of a folder, sorted by name (byte order of the file name), and the entries
/// left out with the reason: files that are not images (recognised by content), files that
/// cannot be read, devices, pipes and sockets, and symbolic links that lead nowhere.
/// Sub-folders are not entered.
pub fn image_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Skipped>)> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        entries.push(entry.map_err(io)?.path());
    }
    entries.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    for path in entries {
        let is_link = std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if is_link && let Some(reason) = broken_link(&path) {
            skipped.push(Skipped { path, reason });
            continue;
        }
        if path.is_dir() {
            continue;
        }
        if !path.is_file() {
            skipped.push(Skipped {
                path,
                reason: "not a regular file (a device, pipe or socket)".into(),
            });
            continue;
        }
        match looks_like_image(&path) {
            Ok(true) => files.push(path),
            Ok(false) => skipped.push(Skipped {
                path,
                reason: "not an image".into(),
            }),
            // Unreadable (permissions, a read error): left out with the reason, as a file that
            // cannot be decoded is.
            Err(e) => skipped.push(Skipped {
                reason: format!(
                    "cannot read it: {}",
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
                ),
                path,
            }),
        }
    }
    Ok((files, skipped))
}

/// Expands the command line's `IMAGE_OR_DIR...`: a file stands for itself, a folder for its
/// image files sorted by name. Files of a folder that are not images are returned as skipped.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Skipped>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let (f, s) = image_files(input)?;
            files.extend(f);
            skipped.extend(s);
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

/// The error a strict run turns a skipped file into.
pub(crate) fn strict_error(s: &Skipped) -> Error {
    Error::Unusable {
        path: s.path.clone(),
        reason: s.reason.clone(),
    }
}

/// A file an analysis could not use: the error of a strict run; else the observer hears of it
/// and it joins `skipped`.
pub(crate) fn skip(
    s: Skipped,
    strict: bool,
    observer: &mut dyn Observer,
    skipped: &mut Vec<Skipped>,
) -> Result<()> {
    if strict {
        return Err(strict_error(&s));
    }
    observer.on_event(&Event::Skipped(&s));
    skipped.push(s);
    Ok(())
}

/// The files a listing left out, before an analysis starts: the error of a strict run for the
/// first; else the observer hears of each.
pub(crate) fn report_listed(
    skipped: &[Skipped],
    strict: bool,
    observer: &mut dyn Observer,
) -> Result<()> {
    for s in skipped {
        if strict {
            return Err(strict_error(s));
        }
        observer.on_event(&Event::Skipped(s));
    }
    Ok(())
}
