"""`fmv.compat.FeatureMapVisualizer` against the original package's goldens
(`testdata/reference/golden/`, made by running FeatureMapVisualizer 1.0.6), with the tolerances
of the reference README (section 6)."""

import json
from pathlib import Path

import numpy as np
import pytest

from fmv import BadConfig
from fmv.compat import FeatureMapVisualizer

ROOT = Path(__file__).resolve().parents[3]
REF = ROOT / "testdata" / "reference"
NETS = {"resnet": "resnet50_small_seed1", "vgg": "vgg16_small_seed1"}


def golden(net):
    return json.loads((REF / "golden" / f"{NETS[net]}__dsA.json").read_text())


def visualizer(net):
    return FeatureMapVisualizer(str(REF / "weights" / f"{NETS[net]}.safetensors"), model_type=net)


def data(path):
    """A golden's `data/dsA/...` path in this repository."""
    return str(REF / path)


@pytest.mark.parametrize("net", ["resnet", "vgg"])
def test_find_unique_filters_gives_the_originals_maps_under_the_tie_rule(net):
    g, fmv_ = golden(net), visualizer(net)
    runs = g["find_unique_filters"]
    assert runs
    for run in runs:
        call = run["call"]
        got = fmv_.find_unique_filters(
            call["layer"],
            data(call["train_dir"]),
            call["classes"],
            call["n_imgs_dict"],
            n_each_img=call["n_each_img"],
            n_each_class=call["n_each_class"],
        )
        want = run["replica_other_tie_orders"]["desc_then_index"]["unique"]
        assert list(got) == call["classes"]
        assert got == {c: want[c] for c in call["classes"]}, call


@pytest.mark.parametrize("net", ["resnet", "vgg"])
def test_mean_activations_and_class_sums_match_the_original(net):
    g, fmv_ = golden(net), visualizer(net)
    for path, image in list(g["images"].items())[:6]:
        for layer, want in image["mean_activations"].items():
            got = fmv_.one_image_N_top_feature_maps(int(layer), data(path), plot=False)
            want = np.asarray(want, dtype=np.float32)
            assert isinstance(got, np.ndarray) and got.dtype == np.float32
            assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)), (path, layer)
    for run in g["sum_top_feature_maps_by_class"]:
        call = run["call"]
        maps = call["top_feature_maps_dict"]
        got = fmv_.sum_top_feature_maps_by_class(
            call["layer"], None, data(call["img_dir"]), maps, plot=False
        )
        assert list(got) == list(run["output"])
        for test_class, by in run["output"].items():
            for k, want in by.items():
                scale = 1e-4 * max(len(maps[k]), 1) * max(abs(v) for v in want)
                assert np.max(np.abs(np.asarray(got[test_class][k]) - want)) <= scale


def test_the_originals_defects_are_refused_or_fixed():
    fmv_ = visualizer("vgg")
    with pytest.raises(BadConfig, match="model_type is 'resnet'"):
        FeatureMapVisualizer(str(REF / "weights" / "vgg16_small_seed1.safetensors"), model_type="resnet")
    # One class: `{}`, as the original; no trailing `/` needed.
    assert fmv_.find_unique_filters(12, data("data/dsA/train"), ["cat"], None) == {}
    both = fmv_.find_unique_filters(12, data("data/dsA/train"), ["cat", "coffee"], None, 5, 5)
    assert set(both) == {"cat", "coffee"}


@pytest.mark.parametrize("net", ["resnet", "vgg"])
def test_one_feature_map_over_a_dataloader_matches_the_original(net):
    import fmv

    g, compat = golden(net), visualizer(net)
    viz = fmv.Visualizer(compat.model, preprocess="original")
    for run in g["one_feature_map_N_images"]:
        call = run["call"]
        files = [data(f) for f in run["files_order"]]
        # The DataLoader's batches, preprocessed as the original's Resize((224, 224)) +
        # ToTensor(): fmv's own `original` preprocessing, which equals Pillow's bit for bit.
        tensors = [
            m.input.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            for m in viz.filter_maps(files, call["layer"], [0])
        ]
        size = call["batch_size"]
        loader = [
            (np.stack(tensors[i : i + size]), None) for i in range(0, len(tensors), size)
        ]
        got = compat.one_feature_map_N_images(call["layer"], loader, call["filter_idx"], plot=False)
        want = np.asarray(run["output"], dtype=np.float32)
        assert len(got) == len(want)
        assert np.max(np.abs(np.asarray(got) - want)) <= 1e-4 * np.max(np.abs(want)), call


@pytest.mark.parametrize("net", ["resnet", "vgg"])
def test_visualize_patterns_follows_the_original_from_its_start(net, tmp_path, monkeypatch):
    g, compat = golden(net), visualizer(net)
    run = g["visualize_patterns"]
    call = run["call"]
    init = np.asarray(run["init_image_uint8_hwc"], dtype=np.uint8).reshape(run["init_shape"])
    monkeypatch.chdir(tmp_path)
    img, name = compat.visualize_patterns(
        call["layer"],
        call["filter_n"],
        init_size=call["init_size"],
        lr=call["lr"],
        opt_steps=call["opt_steps"],
        upscaling_steps=call["upscaling_steps"],
        upscaling_factor=call["upscaling_factor"],
        init_image=init,
    )
    assert name == f"layer_{call['layer']}_filter_{call['filter_n']}.jpg"
    assert img.dtype == np.float32 and list(img.shape) == run["final_shape"]
    assert img.min() >= 0 and img.max() <= 1
    # The first step's activation, from the same start, is the original's (later steps are
    # chaotic at rounding level, see the reference README; the Rust tests check them).
    pattern = compat._viz._patterns(
        call["layer"], [call["filter_n"]], mode="compat", lr=call["lr"],
        compat=(call["init_size"], call["opt_steps"], call["upscaling_steps"],
                call["upscaling_factor"], (init.tobytes(), init.shape[0], init.shape[1])),
    )[0]
    first, want = pattern.activation_trace[0], run["per_step_activation_f64"][0]
    assert abs(first - want) <= 1e-4 * max(abs(want), 1e-3), (first, want)
    assert len(pattern.activation_trace) == run["n_steps"]


def test_a_torch_module_is_read_through_its_state_dict():
    """With torch installed (not in CI's venv): the original's usage, a live `nn.Module`."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from torch_nets import small_vgg16

    from_module = FeatureMapVisualizer(small_vgg16(), model_type="vgg")
    from_path = visualizer("vgg")
    image = data("data/dsA/test/cat/cat_0.jpg")
    a = from_module.one_image_N_top_feature_maps(12, image, plot=False)
    b = from_path.one_image_N_top_feature_maps(12, image, plot=False)
    assert isinstance(a, torch.Tensor) and isinstance(b, np.ndarray)
    np.testing.assert_array_equal(a.numpy(), b)
