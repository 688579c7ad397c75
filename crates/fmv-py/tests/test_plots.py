"""`plot=True` in `fmv.compat`: what the original draws (reference README section 2.9), checked
against overlays computed here from the maps with an independent numpy resize. Needs matplotlib
(CI's venv has it); without it, plotting warns and changes no result (tested by hiding it)."""

import sys

import numpy as np
import pytest

import fmv
from fmv import BadConfig
from fmv.compat import FeatureMapVisualizer

from test_compat import NETS, REF, data

IMAGE = data("data/dsA/test/cat/cat_0.jpg")


def cv2_linear(fmap, height, width):
    """OpenCV's INTER_LINEAR as the reference README section 2.8 states it, in float64."""
    def axis(n_in, n_out):
        taps = []
        for o in range(n_out):
            src = np.float32((o + 0.5) * (n_in / n_out) - 0.5)
            x0 = int(np.floor(src))
            t = float(src - x0)
            if x0 < 0:
                x0, t = 0, 0.0
            if x0 >= n_in - 1:
                x0, t = n_in - 1, 0.0
            taps.append((x0, min(x0 + 1, n_in - 1), t))
        return taps

    rows = np.array([[(1 - t) * fmap[y, x0] + t * fmap[y, x1] for x0, x1, t in axis(fmap.shape[1], width)]
                     for y in range(fmap.shape[0])])
    return np.array([(1 - t) * rows[y0] + t * rows[y1] for y0, y1, t in axis(fmap.shape[0], height)])


@pytest.fixture
def shown(monkeypatch):
    """matplotlib (headless), with `plt.show` recording each figure's images, titles and lines."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    figures = []

    def show():
        fig = plt.gcf()
        figures.append([
            {
                "title": ax.get_title(),
                "images": [im.get_array().data for im in ax.get_images()],
                "lines": [line.get_ydata() for line in ax.get_lines()],
                "legend": [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [],
            }
            for ax in fig.axes
        ])
        plt.close(fig)

    monkeypatch.setattr(plt, "show", show)
    return figures


def compat(net):
    return FeatureMapVisualizer(str(REF / "weights" / f"{NETS[net]}.safetensors"), model_type=net)


def test_resize_map_is_opencvs_linear():
    assert np.array_equal(fmv.resize_map(np.array([[0.0, 1.0]]), 1, 4), [[0.0, 0.25, 0.75, 1.0]])
    rng = np.random.default_rng(3)
    for h, w, out_h, out_w in [(7, 7, 224, 224), (5, 9, 33, 20), (14, 14, 7, 7)]:
        fmap = rng.random((h, w), dtype=np.float32) * 3
        want = cv2_linear(fmap, out_h, out_w)
        assert np.max(np.abs(fmv.resize_map(fmap, out_h, out_w) - want)) <= 1e-6 * np.max(want)
    with pytest.raises(BadConfig, match="map is height x width"):
        fmv.resize_map(np.zeros(3), 2, 2)


def test_one_image_draws_its_top_maps_over_it(shown):
    resnet = compat("resnet")
    means = resnet.one_image_N_top_feature_maps(-2, IMAGE, n=6, n_plots_horiz=2, n_plots_vert=3)
    top = np.argsort(-means, kind="stable")[:6]
    assert len(shown) == 3  # the image, the maps over it, the line of means
    (picture,) = shown[0][0]["images"]
    maps = fmv.Visualizer(resnet.model, preprocess="original").filter_maps([IMAGE], -2, list(top))[0]
    assert np.array_equal(picture, maps.input / np.float32(255))
    grid = shown[1]
    assert [ax["title"] for ax in grid] == [f"layer -2 filter {c}" for c in top]
    for ax, fmap in zip(grid, maps.maps):
        want = np.clip(picture * (2 * cv2_linear(fmap, 224, 224))[..., None], 0, 1)  # ResNet: x2
        assert np.max(np.abs(ax["images"][0] - want)) <= 1e-5
    assert np.array_equal(shown[2][0]["lines"][0], means)
    with pytest.raises(BadConfig, match="must equal n"):
        resnet.one_image_N_top_feature_maps(-2, IMAGE, n=6)


def test_one_map_over_a_loader_normalises_vgg_maps_by_their_maximum(shown, tmp_path):
    vgg = compat("vgg")
    viz = fmv.Visualizer(vgg.model, preprocess="original")
    files = [data(f"data/dsA/test/cat/{n}") for n in ("cat_0.jpg", "cat_1.png", "cat_2.jpg")]
    inputs = [m.input.transpose(2, 0, 1) / np.float32(255) for m in viz.filter_maps(files, 12, [59])]
    loader = [(np.stack(inputs[:2]), None), (np.stack(inputs[2:]), None)]
    got = vgg.one_feature_map_N_images(12, loader, 59, max_n_imgs_to_plot=2,
                                       folder=str(tmp_path / "viz3"), class_name="cat")
    assert len(got) == 3  # every image counted, only 2 drawn
    (grid,) = shown
    assert len(grid) == 4
    maps = viz.filter_maps(files[:2], 12, [59])
    for i, m in enumerate(maps):
        picture = inputs[i].transpose(1, 2, 0)
        assert np.array_equal(grid[2 * i]["images"][0], picture)
        assert grid[2 * i + 1]["title"] == str(got[i])
        mask = cv2_linear(m.maps[0], 224, 224)
        want = np.clip(picture * (mask / mask.max())[..., None], 0, 1)
        assert np.max(np.abs(grid[2 * i + 1]["images"][0] - want)) <= 1e-5
    assert sorted(p.name for p in (tmp_path / "viz3").iterdir()) == ["masked_cat_1.jpg", "masked_cat_2.jpg"]
    # A dead map is drawn black, not NaN (the original divided by its zero maximum).
    black = np.zeros((1, 3, 224, 224), dtype=np.float32)
    vgg.one_feature_map_N_images(12, [(black, None)], 59)
    assert np.all(np.isfinite(shown[-1][1]["images"][0]))


def test_several_maps_are_summed_into_one_clipped_mask(shown):
    resnet = compat("resnet")
    viz = fmv.Visualizer(resnet.model, preprocess="original")
    shown_maps = viz.filter_maps([IMAGE], -2, [113, 87])[0]
    picture = shown_maps.input / np.float32(255)
    batch = picture.transpose(2, 0, 1)[None]
    (total,) = resnet.M_feature_map_N_images(-2, [(batch, None)], [113, 87])
    means = viz.batch_means(batch, -2)[0]
    assert total == float(means[113]) + float(means[87])
    mask = sum(cv2_linear(m, 224, 224) for m in shown_maps.maps)
    want = np.clip(picture * np.clip(mask, 0, 1)[..., None], 0, 1)
    assert np.max(np.abs(shown[0][1]["images"][0] - want)) <= 1e-5


def test_class_sums_draw_one_line_per_test_class(shown):
    vgg = compat("vgg")
    top = {"cat": [59, 8, 33], "coffee": [0, 36]}
    sums = vgg.sum_top_feature_maps_by_class(12, None, data("data/dsA/test"), top)
    assert [fig[0]["title"] for fig in shown] == ["cat activations", "coffee activations"]
    for fig, k in zip(shown, top):
        (ax,) = fig
        assert ax["legend"] == ["cat", "coffee"]
        assert [list(y) for y in ax["lines"]] == [sums["cat"][k], sums["coffee"][k]]


def test_patterns_plot_their_image(shown, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    img, name = compat("vgg").visualize_patterns(12, 59, opt_steps=2, upscaling_steps=2, plot=True)
    assert np.array_equal(shown[0][0]["images"][0], img)
    assert (tmp_path / name).is_file()


def test_without_matplotlib_plots_warn_and_change_nothing(monkeypatch):
    vgg = compat("vgg")
    plain = vgg.one_image_N_top_feature_maps(12, IMAGE, plot=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.warns(UserWarning, match="pip install matplotlib"):
        drawn = vgg.one_image_N_top_feature_maps(12, IMAGE)
    assert np.array_equal(plain, drawn)
