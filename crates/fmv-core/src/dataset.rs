//! The ImageFolder layout: `root/<class>/<image>`, classes and files in sorted name order,
//! images recognised by content.

use std::path::{Path, PathBuf};

use crate::error::{Error, Field, Problem, Result};
use crate::inputs::{Skipped, image_files};

/// One class of an [`ImageFolder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFolder {
    /// The class name (the sub-folder's name).
    pub name: String,
    /// The sub-folder.
    pub dir: PathBuf,
    /// Its image files, sorted by name.
    pub files: Vec<PathBuf>,
}

/// A folder with one sub-folder per class.
///
/// Files that are not images (by content: `notes.txt`, `.DS_Store`) are left out and listed in
/// [`ImageFolder::skipped`]; a class without any image, a missing root and a root without
/// class folders are errors that name the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// The root folder.
    pub root: PathBuf,
    /// The classes, in sorted name order (or the order asked for).
    pub classes: Vec<ClassFolder>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

impl ImageFolder {
    /// Reads the layout of `root`: every class, or only `only` (in that order; a class named
    /// twice is an error) if given.
    pub fn open(root: impl AsRef<Path>, only: Option<&[String]>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::NoImages {
                reason: format!(
                    "{} is not a folder; expected one sub-folder per class (root/<class>/<image>)",
                    root.display()
                ),
            });
        }
        let dirs = sub_folders(&root)?;
        let name_of = |p: &Path| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        if dirs.is_empty() {
            return Err(Error::NoImages {
                reason: format!(
                    "{} has no class sub-folders; expected root/<class>/<image>",
                    root.display()
                ),
            });
        }
        let dirs = match only {
            None => dirs,
            Some(names) => {
                if let Some(n) = crate::lists::first_repeated(names) {
                    // Its maps would count as shared with itself, and none could be unique.
                    return Err(Error::invalid(
                        Field::Classes,
                        Problem::ClassTwice(n.clone()),
                    ));
                }
                let mut picked = Vec::new();
                for n in names {
                    match dirs.iter().find(|d| &name_of(d) == n) {
                        Some(d) => picked.push(d.clone()),
                        None => {
                            return Err(Error::invalid(
                                Field::Classes,
                                Problem::UnknownClass {
                                    name: n.clone(),
                                    root: root.clone(),
                                    available: dirs.iter().map(|d| name_of(d)).collect(),
                                },
                            ));
                        }
                    }
                }
                picked
            }
        };
        let mut classes = Vec::new();
        let mut skipped = Vec::new();
        for dir in dirs {
            let (files, left_out) = image_files(&dir)?;
            skipped.extend(left_out);
            if files.is_empty() {
                return Err(Error::NoImages {
                    reason: format!("class folder {} contains no image files", dir.display()),
                });
            }
            classes.push(ClassFolder {
                name: name_of(&dir),
                dir,
                files,
            });
        }
        Ok(ImageFolder {
            root,
            classes,
            skipped,
        })
    }

    /// The class names, in order.
    pub fn class_names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }

    /// The number of image files over all classes.
    pub fn n_files(&self) -> usize {
        self.classes.iter().map(|c| c.files.len()).sum()
    }
}

/// The sub-folders of `dir`, sorted by name.
fn sub_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(dirs)
}

/// The images of several files and folders, in one fixed order: the analyses over "any
/// images" ([`crate::Visualizer::exemplars`]) read this list, and its order decides ties.
///
/// A file stands for itself. A folder stands for its own image files (sorted by name), then
/// those of each sub-folder (sorted by folder name, then file name), so that an ImageFolder
/// (`root/<class>/<image>`) and a plain folder both work. Deeper folders are not entered.
/// Entries that are not images are left out and listed in [`ImageList::skipped`]; no image
/// at all is an error that names the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageList {
    /// The image files, in order.
    pub files: Vec<PathBuf>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

impl ImageList {
    /// Lists the images of `inputs` (files and folders), in the order given.
    pub fn open(inputs: &[PathBuf]) -> Result<Self> {
        let (mut files, mut skipped) = (Vec::new(), Vec::new());
        for input in inputs {
            if input.is_dir() {
                let (own, left_out) = image_files(input)?;
                files.extend(own);
                skipped.extend(left_out);
                for dir in sub_folders(input)? {
                    let (own, left_out) = image_files(&dir)?;
                    files.extend(own);
                    skipped.extend(left_out);
                }
            } else if input.exists() {
                files.push(input.clone());
            } else {
                return Err(Error::Io {
                    path: input.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such file or folder",
                    ),
                });
            }
        }
        if files.is_empty() {
            let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::NoImages {
                reason: format!(
                    "{} contain(s) no image files, directly or in sub-folders",
                    names.join(", ")
                ),
            });
        }
        Ok(ImageList { files, skipped })
    }
}
