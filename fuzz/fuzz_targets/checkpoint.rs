//! A weights file of any bytes, through everything `fmv` does with one: the format is
//! recognised (safetensors or a zip `.pth`), every tensor is read, the architecture is matched
//! and built, and a small image is run to every tap. Any outcome but a panic, an abort or a
//! sanitizer report is a pass.

#![no_main]

use std::io::Write;

use candle_core::{DType, Device, Tensor};
use fmv_models::{Backbone, Checkpoint, LayerId, LoadOptions, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The readers take a path, as users give one; a file per process, rewritten each run.
    let path = std::env::temp_dir().join(format!("fmv-fuzz-checkpoint-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("temp file");
    file.write_all(bytes).expect("temp file");
    drop(file);
    let Ok(checkpoint) = Checkpoint::open(&path) else {
        return;
    };
    let names: Vec<String> = checkpoint.entries().keys().cloned().collect();
    for name in &names {
        let _ = checkpoint.load(name, &Device::Cpu, DType::F32);
    }
    let Ok(model) = Model::from_checkpoint(checkpoint, &LoadOptions::new()) else {
        return;
    };
    let taps: Vec<LayerId> = (0..model.layers().len()).map(LayerId).collect();
    let x = Tensor::ones((1, 3, 32, 32), DType::F32, &Device::Cpu).expect("input");
    let _ = model.forward_taps(&x, &taps);
});
