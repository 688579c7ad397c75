//! PyTorch zip checkpoints written by `torch.save` (see `testdata/torch/make_fixtures.py`).

use fmv_models::{Backbone, LayerRef, LoadOptions, Model};

use crate::{means, reference_weights, test_input, testdata};

#[test]
fn a_pth_state_dict_gives_the_same_numbers_as_safetensors() {
    let st = Model::load(
        reference_weights("resnet50_small_seed1"),
        &LoadOptions::new(),
    )
    .unwrap();
    let pth = Model::load(
        testdata().join("torch/resnet50_small_seed1.pth"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(pth.arch(), st.arch());
    let x = test_input(2, 224, 224);
    for layer in ["layer4.1", "logits"] {
        let l = st.resolve(&LayerRef::Name(layer.into())).unwrap();
        let a = means(&st.forward_taps(&x, &[l]).unwrap()[0]);
        let b = means(&pth.forward_taps(&x, &[l]).unwrap()[0]);
        assert_eq!(a, b, "{layer}");
    }
}

#[test]
fn a_wrapped_dataparallel_headless_pth_loads() {
    // {"state_dict": {"module.features.0.weight": ...}, "epoch": 3}, features only.
    let pth = Model::load(
        testdata().join("torch/vgg_features_wrapped.pth"),
        &LoadOptions::new(),
    )
    .unwrap();
    let st = Model::load(
        testdata().join("torch/narrow_vgg11_bn.safetensors"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(pth.arch_name(), "vgg11_bn");
    assert!(
        pth.layers().iter().all(|l| l.name != "logits"),
        "a headless checkpoint has no logits tap"
    );
    let x = test_input(1, 224, 224);
    let l = st.resolve(&LayerRef::Compat(-1)).unwrap();
    assert_eq!(
        means(&pth.forward_taps(&x, &[l]).unwrap()[0]),
        means(&st.forward_taps(&x, &[l]).unwrap()[0])
    );
}

/// A one-tensor `.pth` as `torch.save` lays it out (protocol-2 pickle in `archive/data.pkl`,
/// storage in `archive/data/0`), with the numbers of the rebuild call chosen by the test.
mod crafted {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// A fresh folder for one test's file.
    pub fn dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fmv-pth-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `LONG1` with 8 bytes: any `i64`.
    fn int(p: &mut Vec<u8>, v: i64) {
        p.extend_from_slice(b"\x8a\x08");
        p.extend_from_slice(&v.to_le_bytes());
    }

    fn text(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }

    fn tuple(p: &mut Vec<u8>, items: &[i64]) {
        p.push(b'(');
        for &i in items {
            int(p, i);
        }
        p.push(b't');
    }

    /// The pickle of `{"w": _rebuild_tensor_v2(storage(numel), offset, shape, stride, ...)}`.
    fn pickle(numel: i64, offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
        let mut p = b"\x80\x02ccollections\nOrderedDict\n)Rq\x00(".to_vec();
        text(&mut p, "w");
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        text(&mut p, "storage");
        p.extend_from_slice(b"ctorch\nFloatStorage\n");
        text(&mut p, "0");
        text(&mut p, "cpu");
        int(&mut p, numel);
        p.extend_from_slice(b"tQ");
        int(&mut p, offset);
        tuple(&mut p, shape);
        tuple(&mut p, stride);
        p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtRu.");
        p
    }

    /// Writes the `.pth` with `stored` f32 values 0, 1, 2, … as the storage.
    pub fn pth(
        dir: &Path,
        numel: i64,
        offset: i64,
        shape: &[i64],
        stride: &[i64],
        stored: usize,
    ) -> PathBuf {
        let path = dir.join("crafted.pth");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", options).unwrap();
        zip.write_all(&pickle(numel, offset, shape, stride))
            .unwrap();
        zip.start_file("archive/data/0", options).unwrap();
        let data: Vec<u8> = (0..stored).flat_map(|i| (i as f32).to_le_bytes()).collect();
        zip.write_all(&data).unwrap();
        zip.start_file("archive/byteorder", options).unwrap();
        zip.write_all(b"little").unwrap();
        zip.finish().unwrap();
        path
    }
}

/// The crafted file is read right (so the refusals below are of the numbers, not the
/// crafting): an offset into the storage, and column-major strides read as a transpose.
#[test]
fn a_crafted_pth_reads_its_offset_and_strides() {
    use candle_core::{DType, Device};
    let dir = crafted::dir("reads");
    let path = crafted::pth(&dir, 8, 2, &[2, 2], &[2, 1], 8);
    let ck = fmv_models::Checkpoint::open(&path).unwrap();
    let w = ck.load("w", &Device::Cpu, DType::F32).unwrap();
    assert_eq!(w.to_vec2::<f32>().unwrap(), [[2., 3.], [4., 5.]]);
    let path = crafted::pth(&dir, 8, 0, &[2, 3], &[1, 2], 8);
    let ck = fmv_models::Checkpoint::open(&path).unwrap();
    let w = ck.load("w", &Device::Cpu, DType::F32).unwrap();
    assert_eq!(w.to_vec2::<f32>().unwrap(), [[0., 2., 4.], [1., 3., 5.]]);
}

/// Numbers that would wrap or go negative are refused when the file is opened, naming the
/// tensor: an offset of 2^62 elements (×4 bytes wraps to 0 in unchecked arithmetic), a
/// negative dimension, a shape whose product overflows, a storage shorter than it claims.
#[test]
fn a_pth_with_impossible_numbers_names_the_tensor() {
    let dir = crafted::dir("refused");
    /// Storage size, offset, shape, strides, what the error says.
    type Case<'a> = (i64, i64, &'a [i64], &'a [i64], &'a str);
    let cases: [Case; 5] = [
        (
            1 << 62 | 16,
            1 << 62,
            &[4],
            &[1],
            "holds 64 bytes, fewer than",
        ),
        (16, 0, &[-64, 3], &[3, 1], "its shape's dimension is -64"),
        (
            16,
            0,
            &[1 << 40, 1 << 40],
            &[1 << 40, 1],
            "more elements than fit",
        ),
        (
            16,
            0,
            &[4, 8],
            &[8, 1],
            "reaches past its storage: 32 elements",
        ),
        (64, 0, &[4, 4], &[8, 1], "neither row- nor column-major"),
    ];
    for (numel, offset, shape, stride, says) in cases {
        let path = crafted::pth(&dir, numel, offset, shape, stride, 16);
        let err = fmv_models::Checkpoint::open(&path).unwrap_err().to_string();
        assert!(err.contains("tensor `w` cannot be read"), "{err}");
        assert!(err.contains(says), "{shape:?}: {err}");
    }
}

/// A storage damaged after it was saved (one bit of a weight flipped) fails its CRC-32: the
/// tensor is refused, not read as another number.
#[test]
fn a_damaged_storage_is_refused() {
    use candle_core::{DType, Device};
    let dir = crafted::dir("damaged");
    let path = crafted::pth(&dir, 8, 0, &[8], &[1], 8);
    let mut bytes = std::fs::read(&path).unwrap();
    // The storage holds 0.0, 1.0, … 7.0; flip a bit of 5.0.
    let five = 5.0f32.to_le_bytes();
    let at = bytes.windows(4).position(|w| w == five).unwrap();
    bytes[at + 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let ck = fmv_models::Checkpoint::open(&path).unwrap();
    let err = ck
        .load("w", &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor `w`") && err.contains("damaged"),
        "{err}"
    );
}

/// The tiny VGG (`features.0`, `features.1`) of `testdata/torch/wrapped/`, as training code
/// saves it, reads as the same weights as the state dict it came from.
mod wrapped {
    use candle_core::{DType, Device, Tensor};
    use fmv_models::{Checkpoint, LoadOptions, Model};

    use crate::{tensors_of, testdata};

    fn file(name: &str) -> std::path::PathBuf {
        testdata().join("torch/wrapped").join(name)
    }

    /// `features.0.weight` of the checkpoint, as read.
    fn conv_weight(ck: &Checkpoint) -> Vec<f32> {
        let t: Tensor = ck
            .load("features.0.weight", &Device::Cpu, DType::F32)
            .unwrap();
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn original() -> Vec<f32> {
        tensors_of(&testdata().join("torch/narrow_vgg11_bn.safetensors"))["features.0.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn lightning_dataparallel_and_compiled_checkpoints_load_unwrapped() {
        for (name, prefix, key) in [
            ("lightning.ckpt", "model.", Some("state_dict")),
            ("data_parallel.pth", "module.", None),
            ("compiled.pth", "_orig_mod.", None),
        ] {
            let ck = Checkpoint::open(file(name)).unwrap();
            assert_eq!(ck.removed_prefix(), Some(prefix), "{name}");
            assert_eq!(ck.state_key(), key, "{name}");
            assert_eq!(conv_weight(&ck), original(), "{name}");
            let model = Model::from_checkpoint(ck, &LoadOptions::new()).unwrap();
            assert_eq!(model.arch().name(), "vgg-custom_bn", "{name}");
        }
    }

    /// The trained weights are read by default; `--state-key` picks the EMA copy (the
    /// fixture's EMA weights are half the trained ones).
    #[test]
    fn ema_copies_are_chosen_with_the_state_key() {
        let half: Vec<f32> = original().iter().map(|v| v * 0.5).collect();
        for (name, trained, ema) in [
            ("timm_ema.pth.tar", "state_dict", "state_dict_ema"),
            ("model_ema.pth", "model", "model_ema"),
        ] {
            let ck = Checkpoint::open(file(name)).unwrap();
            assert_eq!(ck.state_key(), Some(trained), "{name}");
            assert_eq!(ck.other_state_keys(), [ema.to_string()], "{name}");
            assert_eq!(conv_weight(&ck), original(), "{name}");
            let ck = Checkpoint::open_with(file(name), Some(ema)).unwrap();
            assert_eq!(ck.state_key(), Some(ema));
            assert_eq!(conv_weight(&ck), half, "{name}");
            let model = Model::load(file(name), &LoadOptions::new().with_state_key(ema)).unwrap();
            assert_eq!(model.checkpoint().state_key(), Some(ema));
        }
        let err = Checkpoint::open_with(file("model_ema.pth"), Some("ema"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("state key `ema`") && err.contains("`model`, `model_ema`"),
            "{err}"
        );
    }

    /// `torch.save(model)` pickles the module's class, which only Python can rebuild: one line
    /// that says how to save a state dict instead.
    #[test]
    fn a_whole_pickled_module_is_refused_with_the_fix() {
        let err = Checkpoint::open(file("whole_module.pth"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("whole pickled model (`torch.nn.modules.container.Sequential`)")
                && err.contains("torch.save(model.state_dict()"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
