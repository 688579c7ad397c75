"""fmv: see what the feature maps of a CNN image classifier (ResNet, VGG) respond to.

A Python API over fmv's Rust library::

    import fmv
    model = fmv.Model.load("resnet50.safetensors")          # or a state_dict(), or Model.demo()
    viz = fmv.Visualizer(model, preprocess="imagenet")
    ranking = viz.rank("data/train", layer="layer4.1")
    ranking["classes"]["cat"]                               # the maps unique to the class
    pattern = viz.patterns("layer4.1", [113])[0]
    pattern.image                                           # numpy uint8, height x width x 3

Every analysis returns a :class:`Result`: a ``dict`` in the shape of the matching CLI
command's JSON (``fmv rank --json``, ...), numeric lists as numpy arrays; ``result.document``
is that JSON exactly as the command prints it. Errors are :class:`FmvError` subclasses with
fmv's messages; Ctrl-C stops a run and raises ``KeyboardInterrupt``. Every analysis takes
``progress=callback`` (called as ``callback(done, total)``).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _fmv
from ._fmv import BadCheckpoint, BadConfig, BadInput, FmvError, OutOfMemory

__version__ = _fmv.__version__
__all__ = [
    "Model",
    "Visualizer",
    "Result",
    "Pattern",
    "ImageMaps",
    "resize_map",
    "tqdm_progress",
    "FmvError",
    "BadCheckpoint",
    "BadInput",
    "BadConfig",
    "OutOfMemory",
]

PathLike = Union[str, "os.PathLike[str]"]
Layer = Union[str, int]
Progress = Optional[Callable[[int, int], Any]]


class Result(Dict[str, Any]):
    """An analysis's result: a dict in the shape of the CLI command's JSON, its numeric lists
    as numpy arrays. ``document`` holds the JSON document exactly as the command prints it."""

    def __init__(self, document: Dict[str, Any], converted: Dict[str, Any]) -> None:
        super().__init__(converted)
        self.document = document


def _arrays(doc: Any, keys: Sequence[str], dtype: Any) -> Any:
    """``doc`` with the values under ``keys`` (per class or per entry) as arrays."""
    out = dict(doc)
    for key in keys:
        value = out.get(key)
        if isinstance(value, dict):
            out[key] = {k: np.asarray(v, dtype=dtype) for k, v in value.items()}
        elif isinstance(value, list):
            out[key] = np.asarray(value, dtype=dtype)
    return out


def _list(items: Optional[Sequence[Any]]) -> Optional[List[Any]]:
    """An optional sequence as the compiled half takes it: a list, or ``None``."""
    return list(items) if items is not None else None


def _class_maps(top_maps: Mapping[str, Sequence[int]]) -> List[Tuple[str, List[int]]]:
    """``{class: maps}`` as the compiled half takes it, in the mapping's order."""
    return [(str(c), [int(m) for m in maps]) for c, maps in top_maps.items()]


def _paths(items: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    if isinstance(items, (str, os.PathLike)):
        return [os.fspath(items)]
    return [os.fspath(p) for p in items]


def _tensor_bytes(name: str, value: Any) -> Tuple[str, str, List[int], bytes]:
    """``(name, dtype, shape, little-endian bytes)`` of a numpy array or a torch tensor."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            raw = value.view(dtype=__import__("torch").int16).numpy()
            return name, "bfloat16", list(raw.shape), np.ascontiguousarray(raw).astype("<i2").tobytes()
        value = value.numpy()
    arr = np.asarray(value)
    kinds = {"f4": "float32", "f8": "float64", "f2": "float16", "i8": "int64", "u1": "uint8"}
    key = arr.dtype.str[1:]
    if key not in kinds:
        raise BadCheckpoint(
            f"tensor `{name}` has dtype {arr.dtype}, which fmv does not read "
            "(float32, float64, float16, int64)"
        )
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return name, kinds[key], list(arr.shape), np.ascontiguousarray(little).tobytes()


class Model:
    """A loaded ResNet or VGG (torchvision's or timm's layout, any depth and width)."""

    def __init__(self, inner: "_fmv.Model"):
        self._inner = inner

    @classmethod
    def load(
        cls,
        source: Union[PathLike, Mapping[str, Any]],
        *,
        arch: Optional[str] = None,
        head: Optional[str] = None,
        state_key: Optional[str] = None,
        device: str = "cpu",
    ) -> "Model":
        """Loads a network from a weights file (safetensors or ``.pth``), or from a
        ``state_dict()`` (a mapping of names to numpy arrays or torch tensors): a live torch
        model works without writing a file. ``arch`` forces the architecture (``resnet50``),
        ``head`` states the classifier's layout (``linear,relu,linear``), ``state_key`` picks the
        state dict inside a training checkpoint, ``device`` is ``cpu``, ``cuda`` or ``cuda:N``."""
        if isinstance(source, Mapping):
            if state_key is not None:
                raise BadConfig("state_key applies to a checkpoint file, not a state_dict")
            tensors = [_tensor_bytes(str(k), v) for k, v in source.items()]
            return cls(
                _fmv.Model.from_tensors(tensors, arch=arch, head=head, device=device)
            )
        return cls(
            _fmv.Model.from_file(
                os.fspath(source), arch=arch, head=head, state_key=state_key, device=device
            )
        )

    @classmethod
    def demo(cls, net: str = "resnet") -> "Model":
        """The embedded demo network (``resnet`` or ``vgg``), trained on generated pictures of
        blobs, checkerboards, rings and stripes."""
        return cls(_fmv.Model.demo(net))

    @property
    def arch(self) -> str:
        """The architecture's name (``resnet50``, ``vgg16_bn``)."""
        return self._inner.arch

    @property
    def sha256(self) -> str:
        """The sha256 of the weights (results record it)."""
        return self._inner.sha256

    @property
    def layers(self) -> List[Tuple[str, str, int]]:
        """Every tap as ``(name, kind, channels)``, in forward order."""
        return list(self._inner.layers)

    def __repr__(self) -> str:
        return f"fmv.Model(arch={self.arch!r})"


@dataclass
class Pattern:
    """An image that maximises one map's activation: ``image`` in 8 bits, ``image_float`` the
    float32 values in [0, 1] (height x width x 3)."""

    layer: str
    filter: int
    mode: str
    seed: int
    steps: int
    activation_trace: np.ndarray
    final_activation: float
    interrupted: bool
    image: np.ndarray
    image_float: np.ndarray
    document: Dict[str, Any]

    def to_pil(self) -> Any:
        """The image as a PIL image (needs Pillow)."""
        from PIL import Image

        return Image.fromarray(self.image)


@dataclass
class ImageMaps:
    """One image's maps of some filters."""

    path: str
    mean: float
    maps: np.ndarray
    input: np.ndarray


def resize_map(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D float map resized to ``height x width`` as OpenCV's ``INTER_LINEAR`` does (the
    original's overlays' resize; half-pixel centres, edges clamped), float32."""
    arr = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
    if arr.ndim != 2:
        raise BadConfig(f"a map is height x width; this one has shape {arr.shape}")
    out = _fmv.resize_map(arr.tobytes(), arr.shape[0], arr.shape[1], height, width)
    return np.frombuffer(bytes(out), dtype="<f4").reshape(height, width).copy()


def tqdm_progress(**bar: Any) -> Callable[[int, int], None]:
    """A progress callback that draws a tqdm bar (needs tqdm; ``bar`` goes to ``tqdm``, e.g.
    ``desc="rank"``): ``viz.rank(..., progress=fmv.tqdm_progress(desc="rank"))``. A run that
    restarts its count (patterns: one count of steps per map) starts a new bar."""
    tqdm: Any = importlib.import_module("tqdm.auto").tqdm
    current: List[Any] = []

    def update(done: int, total: int) -> None:
        if not current or current[0].total != total or done < current[0].n:
            if current:
                current.pop().close()
            current.append(tqdm(total=total, **bar))
        current[0].update(done - current[0].n)
        if done >= total:
            current.pop().close()

    return update


def _image(pixels: Tuple[bytes, int, int]) -> np.ndarray:
    data, height, width = pixels
    return np.frombuffer(bytes(data), dtype=np.uint8).reshape(height, width, 3).copy()


class Visualizer:
    """A network and the way images become its inputs, with one method per analysis.

    ``preprocess``: ``imagenet`` (the default: squash to 224x224, ImageNet normalisation),
    ``original`` (FeatureMapVisualizer's: no normalisation) or ``torchvision`` (the eval
    transform: resize 256, centre crop 224); ``size`` ``(width, height)``; ``batch_size`` images
    per forward pass (results do not depend on it)."""

    def __init__(
        self,
        model: Model,
        *,
        preprocess: str = "imagenet",
        size: Optional[Sequence[int]] = None,
        batch_size: Optional[int] = None,
    ):
        self.model = model
        self._inner = _fmv.Visualizer(
            model._inner,
            preprocess=preprocess,
            size=(int(size[0]), int(size[1])) if size is not None else None,
            batch_size=batch_size,
        )

    @property
    def preprocess(self) -> str:
        """The preprocessing's name, as results record it."""
        return self._inner.preprocess

    def rank(
        self,
        train_dir: PathLike,
        layer: Layer,
        *,
        n_each_img: int = 25,
        n_each_class: int = 25,
        classes: Optional[Sequence[str]] = None,
        strict: bool = False,
        progress: Progress = None,
    ) -> Result:
        """Per class of a training ImageFolder, the maps unique to it (``fmv rank --json``);
        ``counts`` and ``mean_activation`` per class as arrays."""
        doc = json.loads(
            self._inner.rank(
                os.fspath(train_dir),
                layer,
                n_each_img=n_each_img,
                n_each_class=n_each_class,
                classes=_list(classes),
                strict=strict,
                progress=progress,
            )
        )
        out = _arrays(doc, ["counts"], np.uint32)
        out = _arrays(out, ["mean_activation"], np.float32)
        return Result(doc, out)

    def activations(
        self,
        images: Union[PathLike, Sequence[PathLike]],
        layer: Layer,
        *,
        top: int = 25,
        progress: Progress = None,
    ) -> Result:
        """Each channel's mean activation and the most active channels, per image
        (``fmv activations --json``); each image's ``mean`` as an array."""
        doc = json.loads(self._inner.activations(_paths(images), layer, top=top, progress=progress))
        out = dict(doc)
        out["images"] = [
            {**img, "mean": np.asarray(img["mean"], dtype=np.float32)} for img in doc["images"]
        ]
        return Result(doc, out)

    def filter_maps(
        self,
        images: Union[PathLike, Sequence[PathLike]],
        layer: Layer,
        filters: Sequence[int],
        *,
        progress: Progress = None,
    ) -> List[ImageMaps]:
        """The maps of ``filters`` over images: per image an :class:`ImageMaps` (``maps``:
        filters x height x width, float32; ``input``: the image as the network saw it)."""
        out = []
        for path, mean, maps, height, width, pixels in self._inner.filter_maps(
            _paths(images), layer, list(filters), progress=progress
        ):
            stack = np.stack(
                [np.frombuffer(bytes(m), dtype="<f4").reshape(height, width) for m in maps]
            )
            out.append(ImageMaps(path=path, mean=mean, maps=stack, input=_image(pixels)))
        return out

    def batch_means(self, batch: Any, layer: Layer) -> np.ndarray:
        """Each channel's spatial mean at ``layer`` for a batch already preprocessed
        (``n x 3 x height x width``, a numpy array or a torch tensor, e.g. a DataLoader's):
        an ``n x channels`` float32 array."""
        return self._batch(batch, layer, None)[0]

    def batch_maps(
        self, batch: Any, layer: Layer, filters: Sequence[int]
    ) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`batch_means`, and the maps of ``filters``: ``n x len(filters) x height x
        width`` float32."""
        means, maps = self._batch(batch, layer, [int(f) for f in filters])
        assert maps is not None
        return means, maps

    def _batch(
        self, batch: Any, layer: Layer, filters: Optional[List[int]]
    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        if hasattr(batch, "detach") and hasattr(batch, "cpu"):
            batch = batch.detach().cpu().numpy()
        arr = np.ascontiguousarray(np.asarray(batch, dtype="<f4"))
        if arr.ndim != 4:
            raise BadConfig(f"a batch is n x 3 x height x width; this one has shape {arr.shape}")
        shape = (arr.shape[0], arr.shape[1], arr.shape[2], arr.shape[3])
        rows, maps, height, width = self._inner.batch_means(arr.tobytes(), shape, layer, filters)
        means = np.stack([np.frombuffer(bytes(r), dtype="<f4") for r in rows])
        if filters is None:
            return means, None
        size = (arr.shape[0], len(filters), height, width)
        return means, np.frombuffer(bytes(maps), dtype="<f4").reshape(size).copy()

    def class_sums(
        self,
        test_dir: PathLike,
        layer: Layer,
        top_maps: Mapping[str, Sequence[int]],
        *,
        strict: bool = False,
        progress: Progress = None,
    ) -> Result:
        """Per test image, the summed activation of each class's maps
        (``fmv class-sums --json``); the sums as arrays."""
        maps = _class_maps(top_maps)
        doc = json.loads(
            self._inner.class_sums(os.fspath(test_dir), layer, maps, strict=strict, progress=progress)
        )
        out = dict(doc)
        out["sums"] = {
            k: {c: np.asarray(v, dtype=np.float32) for c, v in by.items()}
            for k, by in doc["sums"].items()
        }
        return Result(doc, out)

    def patterns(
        self,
        layer: Layer,
        filters: Sequence[int],
        *,
        mode: str = "robust",
        steps: Optional[int] = None,
        lr: Optional[float] = None,
        seed: int = 0,
        progress: Progress = None,
    ) -> List[Pattern]:
        """Activation maximisation (``robust``, the field's, or ``compat``, the original's):
        one :class:`Pattern` per filter, its ``image`` a uint8 height x width x 3 array."""
        return self._patterns(layer, filters, mode=mode, steps=steps, lr=lr, seed=seed, progress=progress)

    def _patterns(
        self, layer: Layer, filters: Sequence[int], *, compat: Any = None, **kwargs: Any
    ) -> List[Pattern]:
        out = []
        for text, pixels, floats in self._inner.patterns(layer, list(filters), compat=compat, **kwargs):
            doc = json.loads(text)
            out.append(
                Pattern(
                    layer=doc["layer"],
                    filter=doc["filter"],
                    mode=doc["mode"],
                    seed=doc["seed"],
                    steps=doc["steps"],
                    activation_trace=np.asarray(doc["activation_trace"], dtype=np.float64),
                    final_activation=doc["final_activation"],
                    interrupted=doc["interrupted"],
                    image=_image(pixels),
                    image_float=np.frombuffer(bytes(floats), dtype="<f4")
                    .reshape(doc["height"], doc["width"], 3)
                    .copy(),
                    document=doc,
                )
            )
        return out

    def exemplars(
        self,
        images: Union[PathLike, Sequence[PathLike]],
        layer: Layer,
        *,
        filters: Optional[Sequence[int]] = None,
        k: int = 9,
        by: str = "mean",
        strict: bool = False,
        progress: Progress = None,
    ) -> Result:
        """For each map (``filters``, or every map), the ``k`` images where it is most active
        (``fmv exemplars --json``)."""
        doc = json.loads(
            self._inner.exemplars(
                _paths(images),
                layer,
                filters=_list(filters),
                k=k,
                by=by,
                strict=strict,
                progress=progress,
            )
        )
        return Result(doc, dict(doc))

    def ablate(
        self,
        test_dir: PathLike,
        layer: Layer,
        *,
        top_maps: Optional[Mapping[str, Sequence[int]]] = None,
        filters: Optional[Sequence[int]] = None,
        each: bool = False,
        random_sets: int = 20,
        seed: int = 0,
        labels: Optional[Sequence[str]] = None,
        strict: bool = False,
        progress: Progress = None,
    ) -> Result:
        """Zero each class's maps (``top_maps``, e.g. ``ranking["classes"]``, or the same
        ``filters`` for every class) and watch its logit, against random sets of as many maps
        (``fmv ablate --json``)."""
        maps = _class_maps(top_maps) if top_maps is not None else None
        doc = json.loads(
            self._inner.ablate(
                os.fspath(test_dir),
                layer,
                top_maps=maps,
                filters=_list(filters),
                each=each,
                random_sets=random_sets,
                seed=seed,
                labels=_list(labels),
                strict=strict,
                progress=progress,
            )
        )
        return Result(doc, dict(doc))

    def report(
        self,
        out_dir: PathLike,
        *,
        train_dir: Optional[PathLike] = None,
        test_dir: Optional[PathLike] = None,
        layer: Optional[Layer] = None,
        pattern_steps: Optional[int] = None,
        seed: int = 0,
        progress: Progress = None,
    ) -> str:
        """The whole pipeline as one static HTML report in ``out_dir`` (on the embedded demo's
        generated images when no folders are given); returns the page's path."""
        return self._inner.report(
            os.fspath(out_dir),
            train_dir=os.fspath(train_dir) if train_dir is not None else None,
            test_dir=os.fspath(test_dir) if test_dir is not None else None,
            layer=layer,
            pattern_steps=pattern_steps,
            seed=seed,
            progress=progress,
        )
