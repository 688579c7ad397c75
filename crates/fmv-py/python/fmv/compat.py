"""The original FeatureMapVisualizer's API, on fmv.

Replace ``from FeatureMapVisualizer import visualizer`` with ``from fmv.compat import
visualizer`` (or import :class:`FeatureMapVisualizer` from here). The numbers are the
original's (its preprocessing: Pillow's squash to 224x224, no normalisation; its layer
integers), with its defects fixed rather than copied (``../shared/reference/README.md`` section
7): ties go to the lower channel (so results do not depend on the machine), folders are read in
sorted order, a missing trailing ``/`` on ``train_dir`` is fine, a stray file is skipped instead
of crashing, ``n_imgs_dict`` is accepted and unused (it never changed the result), no hook leaks,
every batch of a DataLoader is used, and nothing is written to hard-coded folders.

``plot=True`` draws with matplotlib, as the original does, when matplotlib is installed (else
it warns and draws nothing; the results are the same). torch is never imported unless a
``torch.nn.Module`` is passed; then the per-image mean activations come back as torch tensors,
as the original returns them, else as numpy arrays.
"""

from __future__ import annotations

import importlib
import math
import os
import types
import warnings
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from . import BadConfig, Model, Visualizer, _fmv, resize_map

__all__ = ["FeatureMapVisualizer", "visualizer"]

# The colours of the original's class-sum plots (matplotlib's Tableau palette).
TABLEAU = [
    "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
    "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan",
]


def _is_torch_module(obj: Any) -> bool:
    return hasattr(obj, "state_dict") and callable(obj.state_dict)


def _pyplot() -> Any:
    """matplotlib's pyplot, or ``None`` (with a warning) where it is not installed."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "plot=True draws with matplotlib, which is not installed (pip install matplotlib): "
            "nothing was drawn; the returned values are the same",
            stacklevel=3,
        )
        return None
    return plt


def _overlay(image: np.ndarray, fmap: np.ndarray, scale: Optional[str]) -> np.ndarray:
    """The original's overlay (reference README section 2.9): ``fmap`` resized bilinearly to
    the float ``image`` (height x width x 3, in [0, 1]), doubled (``"double"``, ResNet) or
    divided by its maximum (``"max"``, VGG's ``normalize``; an all-zero map stays zero instead
    of becoming NaN), multiplied onto each channel, clipped to [0, 1]."""
    mask = resize_map(fmap, image.shape[0], image.shape[1])
    if scale == "double":
        mask = mask * np.float32(2)
    elif scale == "max":
        peak = mask.max()
        mask = mask / peak if peak > 0 else np.zeros_like(mask)
    clipped: np.ndarray = np.clip(image * mask[..., None], 0, 1)
    return clipped


def _batches(dataloader: Iterable[Any]) -> Iterable[np.ndarray]:
    """A DataLoader's image batches (any iterable of ``(images, labels)`` or of images) as
    float32 ``n x 3 x h x w`` arrays."""
    for batch in dataloader:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        if hasattr(images, "detach") and hasattr(images, "cpu"):
            images = images.detach().cpu().numpy()
        yield np.asarray(images, dtype=np.float32)


def _save(path: str, image: np.ndarray) -> None:
    """Writes a float height x width x 3 image in [0, 1] (Pillow, else matplotlib)."""
    pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    try:
        from PIL import Image
    except ImportError:
        plt = _pyplot()
        if plt is None:
            raise BadConfig(f"writing {path} needs Pillow or matplotlib (pip install pillow)")
        plt.imsave(path, pixels)
        return
    Image.fromarray(pixels).save(path)


class FeatureMapVisualizer:
    """``FeatureMapVisualizer(model, model_type='resnet'|'vgg', ec=False, use_cuda=True)``.

    ``model``: a torch ``nn.Module`` (its ``state_dict()`` is read), a weights path, or an
    :class:`fmv.Model`. ``use_cuda`` runs on the GPU where this build of fmv has CUDA and a GPU
    is present, else on the CPU (the original crashed without a GPU); ``self.device`` says
    which."""

    def __init__(self, model: Any, model_type: str = "resnet", ec: bool = False, use_cuda: bool = True):
        if model_type not in ("resnet", "vgg"):
            raise BadConfig(f"model_type `{model_type}`: choose resnet or vgg")
        if ec:
            raise BadConfig("ec=True (encoder-only models) is not supported by fmv")
        self.device = "cpu"
        if use_cuda and not isinstance(model, Model):
            try:
                _fmv.check_device("cuda")
                self.device = "cuda"
            except BadConfig:
                pass
        self._torch = _is_torch_module(model)
        if isinstance(model, Model):
            loaded = model
        elif self._torch:
            loaded = Model.load(model.state_dict(), device=self.device)
        else:
            loaded = Model.load(os.fspath(model), device=self.device)
        family = "vgg" if loaded.arch.startswith("vgg") else "resnet"
        if family != model_type:
            raise BadConfig(f"model_type is {model_type!r}, and the weights hold a {loaded.arch}")
        self.model = loaded
        self.model_type = model_type
        self._viz = Visualizer(loaded, preprocess="original")

    def _vector(self, values: Any) -> Any:
        arr = np.asarray(values, dtype=np.float32)
        if self._torch:
            torch: Any = importlib.import_module("torch")
            return torch.from_numpy(arr.copy())
        return arr

    def find_unique_filters(
        self,
        layer: int,
        train_dir: str,
        classes: Sequence[str],
        n_imgs_dict: Any = None,
        n_each_img: int = 25,
        n_each_class: int = 25,
    ) -> Dict[str, List[int]]:
        """Per class, the maps unique to it: ``{class: [channel indices]}`` in ``classes``'
        order (one class: ``{}``, as the original)."""
        del n_imgs_dict  # it only divided the counts by a constant
        if len(classes) < 2:
            return {}
        ranking = self._viz.rank(
            os.fspath(train_dir),
            layer,
            n_each_img=n_each_img,
            n_each_class=n_each_class,
            classes=list(classes),
        )
        return {c: list(ranking.document["classes"][c]) for c in classes}

    def one_image_N_top_feature_maps(
        self,
        layer: int,
        img_path: str,
        plot: bool = True,
        n: int = 100,
        n_plots_horiz: int = 10,
        n_plots_vert: int = 10,
        plot_h: float = 50,
        plot_w: float = 50,
        print_logits: bool = False,
        imagenet: bool = False,
        plot_overlay: bool = True,
        n_top_classes: int = 5,
    ) -> Any:
        """Every channel's mean activation for one image (a torch tensor when a module was
        passed, else a numpy float32 array). ``plot``: the image, then its ``n`` most active
        maps over it in an ``n_plots_horiz`` x ``n_plots_vert`` grid (or the maps alone without
        ``plot_overlay``), then the line of every channel's mean. ``print_logits`` prints the
        network's outputs; with ``imagenet``, the ``n_top_classes`` most probable output
        indices (fmv does not download the original's 300 MB file for their names)."""
        if plot and n_plots_horiz * n_plots_vert != n:
            raise BadConfig(
                f"n_plots_horiz * n_plots_vert ({n_plots_horiz} * {n_plots_vert}) must equal n ({n})"
            )
        path = os.fspath(img_path)
        acts = self._viz.activations([path], layer, top=n)
        image = acts.document["images"][0]
        means = self._vector(image["mean"])
        if print_logits:
            self._print_logits(path, imagenet, n_top_classes)
        if plot:
            plt = _pyplot()
            if plt is not None:
                top = list(image["top"])[:n]
                shown = self._viz.filter_maps([path], layer, top)[0]
                picture = shown.input.astype(np.float32) / np.float32(255)
                plt.figure()
                plt.imshow(picture)
                plt.title("original image")
                plt.show()
                plt.figure(figsize=(plot_w, plot_h))
                scale = "double" if self.model_type == "resnet" else None
                for i, (channel, fmap) in enumerate(zip(top, shown.maps)):
                    plt.subplot(n_plots_horiz, n_plots_vert, i + 1)
                    plt.title(f"layer {layer} filter {channel}")
                    if plot_overlay:
                        plt.imshow(_overlay(picture, fmap, scale))
                    else:
                        plt.imshow(fmap, cmap="gray")
                plt.show()
                plt.figure()
                plt.plot(np.asarray(image["mean"], dtype=np.float32))
                plt.xlabel(f"filter in layer {layer}")
                plt.ylabel("mean activation")
                plt.show()
        return means

    def _print_logits(self, path: str, imagenet: bool, n_top_classes: int) -> None:
        logits = np.asarray(
            self._viz.activations([path], "logits").document["images"][0]["mean"], dtype=np.float64
        )
        if not imagenet:
            print("prediction: ", logits)
            return
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        for idx in np.argsort(-probs, kind="stable")[:n_top_classes]:
            print(f"{probs[idx]:.5f} : output {idx}")

    def one_feature_map_N_images(
        self,
        layer: int,
        dataloader: Any,
        filter_idx: int,
        plot: bool = True,
        max_n_imgs_to_plot: int = 100,
        plot_overlay: bool = True,
        normalize: bool = True,
        folder: str = "",
        class_name: str = "",
    ) -> List[float]:
        """The mean activation of one map for every image of a DataLoader (any iterable of
        ``(images, labels)`` batches, images ``n x 3 x h x w`` preprocessed as the original's
        ``Resize((224, 224))`` and ``ToTensor()``), in order, as floats. ``plot``: each of the
        first ``max_n_imgs_to_plot`` images beside its map over it (ResNet: doubled; VGG:
        divided by its maximum when ``normalize``), titled with its mean; ``folder``: those
        overlays are also written as ``folder/masked_{class_name}_{i}.jpg`` (``i`` from 1).
        Unlike the original, every batch is used and non-square images are drawn right."""
        out: List[float] = []
        kept: List[Tuple[np.ndarray, np.ndarray, float]] = []
        for images in _batches(dataloader):
            means, maps = self._viz.batch_maps(images, layer, [filter_idx])
            out.extend(float(v) for v in means[:, filter_idx])
            for image, fmap, mean in zip(images, maps, means[:, filter_idx]):
                if len(kept) < max_n_imgs_to_plot:
                    kept.append((image.transpose(1, 2, 0), fmap[0], float(mean)))
        if self.model_type == "resnet":
            scale: Optional[str] = "double"
        else:
            scale = "max" if normalize else None
        self._plot_pairs(kept, scale, plot, plot_overlay, folder, class_name)
        return out

    def M_feature_maps_N_images(
        self,
        layer: int,
        dataloader: Any,
        filter_idxs: Sequence[int],
        plot: bool = True,
        max_n_imgs_to_plot: int = 100,
        plot_overlay: bool = True,
        folder: str = "",
        class_name: str = "",
    ) -> List[float]:
        """The summed mean activation of several maps for every image of a DataLoader, summed
        as Python floats in ``filter_idxs``' order, as the original. ``plot``: each of the
        first ``max_n_imgs_to_plot`` images beside it masked by the sum of the maps (resized,
        clipped to [0, 1]); ``folder`` writes those as ``one_feature_map_N_images`` does (the
        original wrote into hard-coded folders, transposed)."""
        filters = [int(f) for f in filter_idxs]
        out: List[float] = []
        kept: List[Tuple[np.ndarray, np.ndarray, float]] = []
        for images in _batches(dataloader):
            means, maps = self._viz.batch_maps(images, layer, filters)
            for i, image in enumerate(images):
                total = 0.0
                for f in filters:
                    total += float(means[i, f])
                out.append(total)
                if len(kept) < max_n_imgs_to_plot:
                    picture = image.transpose(1, 2, 0)
                    mask = np.zeros(picture.shape[:2], dtype=np.float64)
                    for fmap in maps[i]:
                        mask += resize_map(fmap, picture.shape[0], picture.shape[1])
                    kept.append((picture, mask, total))
        self._plot_pairs(kept, "sum", plot, plot_overlay, folder, class_name)
        return out

    #: The name the original's README uses for :meth:`M_feature_maps_N_images`.
    M_feature_map_N_images = M_feature_maps_N_images

    def _plot_pairs(
        self,
        kept: List[Tuple[np.ndarray, np.ndarray, float]],
        scale: Optional[str],
        plot: bool,
        plot_overlay: bool,
        folder: str,
        class_name: str,
    ) -> None:
        """Draws (and with ``folder`` writes) each kept ``(image, map, mean)``: the image, then
        the map over it. ``scale == "sum"``: ``map`` is already a summed, resized mask."""
        def masked(picture: np.ndarray, fmap: np.ndarray) -> np.ndarray:
            if scale == "sum":
                summed: np.ndarray = np.clip(picture * np.clip(fmap, 0, 1)[..., None], 0, 1)
                return summed
            return _overlay(picture, fmap, scale)

        if folder and plot_overlay:
            os.makedirs(folder, exist_ok=True)
            for i, (picture, fmap, _) in enumerate(kept, start=1):
                _save(os.path.join(folder, f"masked_{class_name}_{i}.jpg"), masked(picture, fmap))
        if not plot or not kept:
            return
        plt = _pyplot()
        if plt is None:
            return
        rows = max(1, math.ceil(2 * len(kept) / 10))
        plt.figure(figsize=(50, 5 * rows + 1))
        for i, (picture, fmap, mean) in enumerate(kept):
            plt.subplot(rows, 10, 2 * i + 1)
            plt.imshow(np.clip(picture, 0, 1))
            plt.subplot(rows, 10, 2 * i + 2)
            plt.title(str(mean), fontdict={"fontsize": 20})
            plt.axis("off")
            if plot_overlay:
                plt.imshow(masked(picture, fmap))
            else:
                plt.imshow(fmap, cmap="gray")
        plt.show()

    def visualize_patterns(
        self,
        layer: int,
        filter_n: int,
        init_size: int = 33,
        lr: float = 0.2,
        opt_steps: int = 20,
        upscaling_steps: int = 20,
        upscaling_factor: float = 1.2,
        print_loss: bool = False,
        plot: bool = False,
        *,
        seed: int = 0,
        init_image: Optional[np.ndarray] = None,
    ) -> Tuple[np.ndarray, str]:
        """The original's activation maximisation (its schedule, Adam and bicubic upscaling):
        returns ``(img, img_name)``, ``img`` the float32 height x width x 3 image in [0, 1].
        Fixed: the name is ``layer_{layer}_filter_{filter_n}.jpg`` (the original named it after
        Python's ``filter``), the start is seeded (``seed``, or ``init_image``, a uint8
        height x width x 3 array), and the file is written (into the current folder, as the
        original) only when Pillow or matplotlib is installed. ``plot`` shows the final image
        (the original showed the hooked map at each of the 400 steps)."""
        init = None
        if init_image is not None:
            arr = np.ascontiguousarray(np.asarray(init_image, dtype=np.uint8))
            if arr.ndim != 3 or arr.shape[2] != 3:
                raise BadConfig(f"init_image is height x width x 3 uint8; got shape {arr.shape}")
            init = (arr.tobytes(), arr.shape[0], arr.shape[1])
        schedule = (init_size, opt_steps, upscaling_steps, float(upscaling_factor), init)
        pattern = self._viz._patterns(
            layer, [filter_n], mode="compat", lr=lr, seed=seed, compat=schedule
        )[0]
        if print_loss:
            for a in pattern.activation_trace:
                print(f"activation: {a}")
        name = f"layer_{layer}_filter_{filter_n}.jpg"
        try:
            _save(name, pattern.image_float)
        except BadConfig:
            pass
        if plot:
            plt = _pyplot()
            if plt is not None:
                plt.figure()
                plt.imshow(pattern.image_float)
                plt.title(f"layer {layer} filter {filter_n}")
                plt.show()
        return pattern.image_float, name

    def sum_top_feature_maps_by_class(
        self,
        layer: int,
        transform: Any,
        img_dir: str,
        top_feature_maps_dict: Optional[Mapping[str, Sequence[int]]] = None,
        training_imgs_dir: Optional[str] = None,
        classes: Optional[Sequence[str]] = None,
        n_imgs_dict: Any = None,
        plot: bool = True,
        colours: Optional[Sequence[str]] = None,
    ) -> Dict[str, Dict[str, List[float]]]:
        """Per test class, per class's maps: the summed mean activation of those maps on each
        test image (float32, accumulated left to right; an empty list sums to 0.0). ``transform``
        is accepted and unused, as in the original. ``plot``: per class's maps, one line per
        test class over its images (``colours``, matplotlib's Tableau palette by default)."""
        del transform
        if top_feature_maps_dict is None:
            if training_imgs_dir is None or classes is None:
                raise BadConfig("give top_feature_maps_dict, or training_imgs_dir and classes")
            top_feature_maps_dict = self.find_unique_filters(
                layer, training_imgs_dir, classes, n_imgs_dict
            )
        sums = self._viz.class_sums(os.fspath(img_dir), layer, top_feature_maps_dict)
        out = {
            test: {k: [float(v) for v in values] for k, values in by.items()}
            for test, by in sums.document["sums"].items()
        }
        if plot:
            plt = _pyplot()
            if plt is not None:
                palette = list(colours) if colours else TABLEAU
                tests = list(out)
                for k in top_feature_maps_dict:
                    plt.figure(figsize=(10, 7))
                    for i, test in enumerate(tests):
                        plt.plot(out[test][str(k)], marker=".", color=palette[i % len(palette)])
                    plt.title(f"{k} activations")
                    plt.legend(tests)
                    plt.show()
        return out


#: ``from fmv.compat import visualizer``, then ``visualizer.FeatureMapVisualizer(...)``: the
#: original's ``from FeatureMapVisualizer import visualizer`` with one word changed.
visualizer = types.SimpleNamespace(FeatureMapVisualizer=FeatureMapVisualizer)
