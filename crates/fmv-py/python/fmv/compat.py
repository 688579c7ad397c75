"""The original FeatureMapVisualizer's API, on fmv (work in progress: no plots yet).

Replace ``from FeatureMapVisualizer.visualizer import FeatureMapVisualizer`` with
``from fmv.compat import FeatureMapVisualizer``. The numbers are the original's (its
preprocessing: Pillow's squash to 224x224, no normalisation; its layer integers), with its
defects fixed rather than copied (``../shared/reference/README.md`` section 7): ties go to the
lower channel (so results do not depend on the machine), folders are read in sorted order, a
missing trailing ``/`` on ``train_dir`` is fine, a stray file is skipped instead of crashing,
``n_imgs_dict`` is accepted and unused (it never changed the result), and no hook leaks.

torch is never imported unless a ``torch.nn.Module`` is passed; then the per-image mean
activations come back as torch tensors, as the original returns them, else as numpy arrays.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional, Sequence

import numpy as np

from . import BadConfig, Model, Visualizer

__all__ = ["FeatureMapVisualizer"]


def _is_torch_module(obj: Any) -> bool:
    return hasattr(obj, "state_dict") and callable(obj.state_dict)


class FeatureMapVisualizer:
    """``FeatureMapVisualizer(model, model_type='resnet'|'vgg', ec=False, use_cuda=True)``.

    ``model``: a torch ``nn.Module`` (its ``state_dict()`` is read), a weights path, or an
    :class:`fmv.Model`. ``use_cuda`` runs on the GPU where this build of fmv has CUDA, else on
    the CPU (the original crashed without a GPU)."""

    def __init__(self, model: Any, model_type: str = "resnet", ec: bool = False, use_cuda: bool = True):
        if model_type not in ("resnet", "vgg"):
            raise BadConfig(f"model_type `{model_type}`: choose resnet or vgg")
        if ec:
            raise BadConfig("ec=True (encoder-only models) is not supported by fmv")
        self._torch = _is_torch_module(model)
        if isinstance(model, Model):
            loaded = model
        elif self._torch:
            loaded = Model.load(model.state_dict())
        else:
            loaded = Model.load(os.fspath(model))
        family = "vgg" if loaded.arch.startswith("vgg") else "resnet"
        if family != model_type:
            raise BadConfig(f"model_type is {model_type!r}, and the weights hold a {loaded.arch}")
        self.model = loaded
        self.model_type = model_type
        self._viz = Visualizer(loaded, preprocess="original")

    def _vector(self, values):
        arr = np.asarray(values, dtype=np.float32)
        if self._torch:
            import torch

            return torch.from_numpy(arr.copy())
        return arr

    def find_unique_filters(
        self,
        layer: int,
        train_dir: str,
        classes: Sequence[str],
        n_imgs_dict: Optional[Mapping[str, int]] = None,
        n_each_img: int = 25,
        n_each_class: int = 25,
    ) -> dict:
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

    def one_image_N_top_feature_maps(self, layer: int, img_path: str, plot: bool = False, n: int = 25):
        """Every channel's mean activation for one image (a torch tensor when a module was
        passed, else a numpy float32 array)."""
        if plot:
            raise BadConfig("plot=True is not built yet in fmv.compat; use `fmv report` or plot the returned means")
        acts = self._viz.activations([os.fspath(img_path)], layer, top=n)
        return self._vector(acts.document["images"][0]["mean"])

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
    ) -> list:
        """The mean activation of one map for every image of a DataLoader (any iterable of
        ``(images, labels)`` batches, images ``n x 3 x h x w`` preprocessed as the original's
        ``Resize((224, 224))`` and ``ToTensor()``), in order, as floats. Plotting is not built
        yet: ``plot`` and its options are ignored (the original crashed with ``plot=True``)."""
        del plot, max_n_imgs_to_plot, plot_overlay, normalize, folder, class_name
        out = []
        for batch in dataloader:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            means = self._viz.batch_means(images, layer)
            if not 0 <= filter_idx < means.shape[1]:
                raise BadConfig(
                    f"filter_idx {filter_idx} is not a channel of layer {layer} "
                    f"({means.shape[1]} channels)"
                )
            out.extend(float(v) for v in means[:, filter_idx])
        return out

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
    ):
        """The original's activation maximisation (its schedule, Adam and bicubic upscaling):
        returns ``(img, img_name)``, ``img`` the float32 height x width x 3 image in [0, 1].
        Fixed: the name is ``layer_{layer}_filter_{filter_n}.jpg`` (the original named it after
        Python's ``filter``), the start is seeded (``seed``, or ``init_image``, a uint8
        height x width x 3 array), and the file is written (into the current folder, as the
        original) only when Pillow is installed; ``plot`` is not built yet."""
        del plot
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
            from PIL import Image
        except ImportError:
            pass
        else:
            Image.fromarray(pattern.image).save(name)
        return pattern.image_float, name

    def sum_top_feature_maps_by_class(
        self,
        layer: int,
        transform: Any,
        img_dir: str,
        top_feature_maps_dict: Optional[Mapping[str, Sequence[int]]] = None,
        training_imgs_dir: Optional[str] = None,
        classes: Optional[Sequence[str]] = None,
        n_imgs_dict: Optional[Mapping[str, int]] = None,
        plot: bool = True,
    ) -> dict:
        """Per test class, per class's maps: the summed mean activation of those maps on each
        test image (float32, accumulated left to right; an empty list sums to 0.0). ``transform``
        is accepted and unused, as in the original. Plotting is not built yet: ``plot`` is
        ignored."""
        del transform, plot
        if top_feature_maps_dict is None:
            if training_imgs_dir is None or classes is None:
                raise BadConfig("give top_feature_maps_dict, or training_imgs_dir and classes")
            top_feature_maps_dict = self.find_unique_filters(
                layer, training_imgs_dir, classes, n_imgs_dict
            )
        sums = self._viz.class_sums(os.fspath(img_dir), layer, top_feature_maps_dict)
        return {
            test: {k: [float(v) for v in values] for k, values in by.items()}
            for test, by in sums.document["sums"].items()
        }
