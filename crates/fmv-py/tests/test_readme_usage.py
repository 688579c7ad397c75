"""The original package's README usage, line for line, with `from fmv.compat import visualizer`
in place of `from FeatureMapVisualizer import visualizer`: live torch modules (the reference
networks built from torchvision's classes), torchvision's transforms, ImageFolder and
DataLoader, and plot=True. The results are the original's goldens, within the reference
README's tolerances (section 6). Needs torch and torchvision (skips without them); matplotlib
is optional (the plots are drawn headless when it is there)."""

import numpy as np
import pytest

from test_compat import REF, data, golden
from test_fmv import read_safetensors

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402
from torchvision.models import resnet as tvr, vgg as tvv  # noqa: E402

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


def state(name):
    return {k: torch.from_numpy(v.copy()) for k, v in read_safetensors(REF / "weights" / f"{name}.safetensors").items()}


def small_resnet50():
    """The reference small ResNet-50 (base width 8), torchvision's own classes."""
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes, m.dilation, m.groups, m.base_width = 8, 1, 1, 64
    m.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(8)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(tvr.Bottleneck, 8, 3)
    m.layer2 = m._make_layer(tvr.Bottleneck, 16, 4, stride=2)
    m.layer3 = m._make_layer(tvr.Bottleneck, 32, 6, stride=2)
    m.layer4 = m._make_layer(tvr.Bottleneck, 64, 3, stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(256, 2)
    m.load_state_dict(state("resnet50_small_seed1"))
    return m


def small_vgg16():
    cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
    m = tvv.VGG(tvv.make_layers(cfg), num_classes=3)
    m.classifier = nn.Sequential(nn.Linear(64 * 49, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 3))
    m.load_state_dict(state("vgg16_small_seed1"))
    return m


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
