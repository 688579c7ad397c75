//! Weights files mutated at random, on stable Rust, as CI runs it (the nightly fuzz targets in
//! `fuzz/` search far longer; this keeps what they guard from regressing): every mutant of
//! the `.pth` and safetensors fixtures, and of the `.pth`'s pickle repacked into a valid
//! archive, is opened, every tensor read and the model built. The outcome is a model or an
//! error with a message, never a panic, and memory stays within a stated bound, measured by a
//! counting allocator (this binary's own: it counts every test here).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device};
use fmv_models::{Checkpoint, LoadOptions, Model};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new) };
        if !q.is_null() {
            if new >= layout.size() {
                let live =
                    LIVE.fetch_add(new - layout.size(), Ordering::Relaxed) + new - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bound: what one file may cost above what was live before it, as a multiple of its size
/// plus a constant (the pickle's values, candle's buffers, BN folding's copies).
const BOUND_PER_FILE_BYTE: usize = 8;
const BOUND_CONSTANT: usize = 96 << 20;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// SplitMix64: the same mutants on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four of libFuzzer's kinds of mutation: a bit flipped, a byte set to a boundary
/// value, an integer field overwritten with an extreme, a chunk erased, duplicated or moved,
/// the tail cut.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(0);
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)],
            2 => {
                let v: [u8; 8] =
                    [i64::MAX, i64::MIN, -1, 1 << 62, u32::MAX as i64][rng.below(5)].to_le_bytes();
                let n = [1, 2, 4, 8][rng.below(4)].min(b.len() - at);
                b[at..at + n].copy_from_slice(&v[..n]);
            }
            3 => {
                let n = rng.below(64).min(b.len() - at);
                b.drain(at..at + n);
            }
            4 => {
                let n = rng.below(64).min(b.len() - at);
                let chunk = b[at..at + n].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, chunk);
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// How far a mutant got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Refused when opened.
    Refused,
    /// Opened, but no model.
    NoModel,
    /// A model.
    Model,
}

/// Opens the file, reads every tensor and builds the model; returns how far it got and the
/// peak memory above what was live before, and panics (failing the test) only if fmv did.
fn exercise(path: &Path) -> (Outcome, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let outcome = match Checkpoint::open(path) {
        Ok(ck) => {
            let names: Vec<String> = ck.entries().keys().cloned().collect();
            for name in &names {
                if let Err(e) = ck.load(name, &Device::Cpu, DType::F32) {
                    assert!(!e.to_string().is_empty());
                }
            }
            match Model::from_checkpoint(ck, &LoadOptions::new()) {
                Ok(_) => Outcome::Model,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    Outcome::NoModel
                }
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            Outcome::Refused
        }
    };
    (outcome, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}

/// The members of a zip, in order.
fn members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().into_owned(), data)
        })
        .collect()
}

/// A zip of stored members, as `torch.save` writes it.
fn pack(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in members {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fmv-mutations-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `n` mutants made by `make`, asserting the memory bound for each.
fn run(name: &str, n: usize, make: impl Fn(&mut Rng) -> Vec<u8>) {
    let dir = scratch(name);
    let path = dir.join("mutant");
    let mut rng = Rng(0x5eed ^ name.len() as u64);
    let mut worst = 0;
    let mut outcomes = std::collections::BTreeMap::new();
    for i in 0..n {
        let bytes = make(&mut rng);
        std::fs::write(&path, &bytes).unwrap();
        let (outcome, used) = exercise(&path);
        *outcomes.entry(outcome).or_insert(0) += 1;
        let bound = BOUND_PER_FILE_BYTE * bytes.len() + BOUND_CONSTANT;
        assert!(
            used <= bound,
            "{name} mutant {i} used {used} bytes, more than the bound {bound}"
        );
        worst = worst.max(used);
    }
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "{name}: {n} mutants, {outcomes:?}, worst {:.1} MiB",
        worst as f64 / (1 << 20) as f64
    );
    // The mutants reach past the first check (else the test would prove little).
    assert!(outcomes.len() >= 2, "{name}: {outcomes:?}");
}

/// One test, so that no other test's allocations count in its measurements.
#[test]
fn mutated_weights_end_in_a_model_or_a_named_error_within_the_memory_bound() {
    pth_files();
    pickles_in_valid_archives();
    safetensors();
}

fn pth_files() {
    let pth = std::fs::read(testdata().join("torch/vgg_features_wrapped.pth")).unwrap();
    run("pth", 300, |rng| mutate(&pth, rng));
}

fn pickles_in_valid_archives() {
    let pth = std::fs::read(testdata().join("torch/vgg_features_wrapped.pth")).unwrap();
    let original = members(&pth);
    let pickle = original
        .iter()
        .position(|(n, _)| n.ends_with("data.pkl"))
        .unwrap();
    run("pickle", 400, |rng| {
        let mut m = original.clone();
        m[pickle].1 = mutate(&m[pickle].1, rng);
        pack(&m)
    });
}

fn safetensors() {
    for net in ["narrow_vgg11_bn", "narrow_resnet18"] {
        let st = std::fs::read(testdata().join(format!("torch/{net}.safetensors"))).unwrap();
        safetensors_of(net, &st);
    }
}

fn safetensors_of(net: &str, st: &[u8]) {
    // Mutations in the JSON header (its first few kB) matter most; half of them land there.
    let header = 8 + u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    run(net, 300, |rng| {
        if rng.below(2) == 0 {
            let mut head = mutate(&st[..header], rng);
            head.extend_from_slice(&st[header..]);
            head
        } else {
            mutate(st, rng)
        }
    });
}
