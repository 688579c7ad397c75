"""The original package's README usage, line for line, with `from fmv.compat import visualizer`
in place of `from FeatureMapVisualizer import visualizer`: live torch modules (the reference
networks built from torchvision's classes), torchvision's transforms, ImageFolder and
DataLoader, and plot=True. The results are the original's goldens, within the reference
README's tolerances (section 6). Needs torch and torchvision (skips without them); matplotlib
is optional (the plots are drawn headless when it is there)."""

import numpy as np
import pytest

from test_compat import data, golden

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torch.utils.data import DataLoader, Subset  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from torch_nets import small_resnet50, small_vgg16  # noqa: E402

from fmv.compat import visualizer  # noqa: E402  (the only changed line of the usage)


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda: plt.close("all"))


def close(got, want, tol=1e-4):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= tol * np.max(np.abs(want)), (got, want)


@pytest.mark.parametrize("net,model_type", [("resnet", "resnet"), ("vgg", "vgg")])
def test_the_originals_readme_usage_gives_the_originals_results(net, model_type, tmp_path, monkeypatch):
    g = golden(net)
    model = small_resnet50() if net == "resnet" else small_vgg16()
    layer = -2 if net == "resnet" else 12
    train_dir = data("data/dsA/train") + "/"
    test_dir = data("data/dsA/test")
    monkeypatch.chdir(tmp_path)

    FV = visualizer.FeatureMapVisualizer(model, model_type=model_type)

    # [Pre-Viz] (the README passes n_imgs_dict as a list; it never mattered)
    top_feature_map_dict = FV.find_unique_filters(
        layer=layer, train_dir=train_dir, classes=["cat", "coffee"],
        n_imgs_dict=[{"cat": 12, "coffee": 12}], n_each_img=25, n_each_class=25,
    )
    (run,) = [r for r in g["find_unique_filters"]
              if r["call"]["layer"] == layer and r["call"]["n_each_img"] == 25]
    assert top_feature_map_dict == run["replica_other_tie_orders"]["desc_then_index"]["unique"]

    # Viz 1, with the golden's schedule (the defaults' 400 steps up to 986 px take minutes)
    call = g["visualize_patterns"]["call"]
    img, img_name = FV.visualize_patterns(
        layer=layer, filter_n=call["filter_n"], init_size=call["init_size"], lr=call["lr"],
        opt_steps=call["opt_steps"], upscaling_steps=call["upscaling_steps"],
        upscaling_factor=call["upscaling_factor"], print_loss=False, plot=True,
    )
    assert list(img.shape) == g["visualize_patterns"]["final_shape"]
    assert img_name == f"layer_{layer}_filter_{call['filter_n']}.jpg"

    # Viz 2: a torch tensor, as the original returns
    path = "data/dsA/test/cat/cat_0.jpg"
    activations_list_cat = FV.one_image_N_top_feature_maps(
        layer, img_path=data(path), n=60, n_plots_horiz=6, n_plots_vert=10, plot_w=50, plot_h=30,
    )
    assert isinstance(activations_list_cat, torch.Tensor)
    close(activations_list_cat.numpy(), g["images"][path]["mean_activations"][str(layer)])

    # Viz 3 and 4 over torchvision's DataLoader, as the goldens' (one class of the test set)
    transform = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor()])
    folder = datasets.ImageFolder(test_dir, transform)
    for run in [r for r in g["one_feature_map_N_images"] if r["call"]["batch_size"] == 4]:
        cls = run["files_order"][0].split("/")[-2]
        indices = [i for i, (_, label) in enumerate(folder.samples) if folder.classes[label] == cls]
        loader = DataLoader(Subset(folder, indices), batch_size=4, shuffle=False)
        got = FV.one_feature_map_N_images(
            layer=layer, dataloader=loader, filter_idx=run["call"]["filter_idx"], plot=True,
            max_n_imgs_to_plot=100, plot_overlay=True, normalize=True,
            folder=str(tmp_path / "viz3" / cls), class_name=cls,
        )
        close(got, run["output"])
        maps = top_feature_map_dict[cls]
        summed = FV.M_feature_map_N_images(
            layer=layer, dataloader=loader, filter_idxs=maps, plot=True,
            max_n_imgs_to_plot=100, plot_overlay=True,
        )
        means = [g["images"][f]["mean_activations"][str(layer)] for f in run["files_order"]]
        close(summed, [sum(float(v[m]) for m in maps) for v in means], tol=1e-4 * len(maps))

    # Viz 5
    for run in g["sum_top_feature_maps_by_class"]:
        maps = run["call"]["top_feature_maps_dict"]
        sum_dicts = FV.sum_top_feature_maps_by_class(
            layer=layer, transform=transform, img_dir=test_dir, top_feature_maps_dict=maps, plot=True,
        )
        assert list(sum_dicts) == list(run["output"])
        for test_class, by in run["output"].items():
            for k, want in by.items():
                close(sum_dicts[test_class][k], want, tol=1e-4 * max(len(maps[k]), 1))
