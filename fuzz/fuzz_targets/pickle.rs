//! A `.pth`'s `data.pkl` of any bytes (inside a real archive the zip's checksums would reject
//! almost every mutation before the unpickler saw it): unpickled, and its tensors checked
//! against ten 1 MiB storages.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = fmv_models::fuzzing::state_dict(bytes);
});
