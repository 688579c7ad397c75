"""The compiled half of `fmv` (Rust, PyO3). Use the wrappers of `fmv` instead: they decode
these JSON strings and bytes into dicts and numpy arrays."""

from typing import Any, Callable, Optional, Sequence, Union, final

__version__: str
__all__ = [
    "FmvError",
    "BadCheckpoint",
    "BadInput",
    "BadConfig",
    "OutOfMemory",
    "Model",
    "Visualizer",
    "resize_map",
    "check_device",
    "__version__",
]

class FmvError(Exception): ...
class BadCheckpoint(FmvError): ...
class BadInput(FmvError): ...
class BadConfig(FmvError): ...
class OutOfMemory(FmvError): ...

_Progress = Optional[Callable[[int, int], Any]]
_Layer = Union[str, int]
_Pixels = tuple[bytes, int, int]

def check_device(device: str) -> None: ...
def resize_map(map: bytes, height: int, width: int, out_height: int, out_width: int) -> bytes: ...

@final
class Model:
    @staticmethod
    def from_file(
        path: str,
        *,
        arch: Optional[str] = None,
        head: Optional[str] = None,
        state_key: Optional[str] = None,
        device: str = "cpu",
    ) -> "Model": ...
    @staticmethod
    def from_tensors(
        tensors: Sequence[tuple[str, str, Sequence[int], bytes]],
        *,
        label: str = "state_dict",
        arch: Optional[str] = None,
        head: Optional[str] = None,
        device: str = "cpu",
    ) -> "Model": ...
    @staticmethod
    def demo(net: str = "resnet") -> "Model": ...
    @property
    def arch(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def layers(self) -> list[tuple[str, str, int]]: ...

@final
class Visualizer:
    def __new__(
        cls,
        model: Model,
        *,
        preprocess: str = "imagenet",
        size: Optional[tuple[int, int]] = None,
        batch_size: Optional[int] = None,
    ) -> "Visualizer": ...
    @property
    def preprocess(self) -> str: ...
    def rank(
        self,
        train_dir: str,
        layer: _Layer,
        *,
        n_each_img: int = 25,
        n_each_class: int = 25,
        classes: Optional[Sequence[str]] = None,
        strict: bool = False,
        progress: _Progress = None,
    ) -> str: ...
    def activations(
        self, images: Sequence[str], layer: _Layer, *, top: int = 25, progress: _Progress = None
    ) -> str: ...
    def filter_maps(
        self, images: Sequence[str], layer: _Layer, filters: Sequence[int], *, progress: _Progress = None
    ) -> list[tuple[str, float, list[bytes], int, int, _Pixels]]: ...
    def batch_means(
        self,
        data: bytes,
        shape: tuple[int, int, int, int],
        layer: _Layer,
        filters: Optional[Sequence[int]] = None,
    ) -> tuple[list[bytes], bytes, int, int]: ...
    def class_sums(
        self,
        test_dir: str,
        layer: _Layer,
        top_maps: Sequence[tuple[str, Sequence[int]]],
        *,
        strict: bool = False,
        progress: _Progress = None,
    ) -> str: ...
    def patterns(
        self,
        layer: _Layer,
        filters: Sequence[int],
        *,
        mode: str = "robust",
        steps: Optional[int] = None,
        lr: Optional[float] = None,
        seed: int = 0,
        compat: Optional[tuple[int, int, int, float, Optional[_Pixels]]] = None,
        progress: _Progress = None,
    ) -> list[tuple[str, _Pixels, bytes]]: ...
    def exemplars(
        self,
        images: Sequence[str],
        layer: _Layer,
        *,
        filters: Optional[Sequence[int]] = None,
        k: int = 9,
        by: str = "mean",
        strict: bool = False,
        progress: _Progress = None,
    ) -> str: ...
    def ablate(
        self,
        test_dir: str,
        layer: _Layer,
        *,
        top_maps: Optional[Sequence[tuple[str, Sequence[int]]]] = None,
        filters: Optional[Sequence[int]] = None,
        each: bool = False,
        random_sets: int = 20,
        seed: int = 0,
        labels: Optional[Sequence[str]] = None,
        strict: bool = False,
        progress: _Progress = None,
    ) -> str: ...
    def report(
        self,
        out_dir: str,
        *,
        train_dir: Optional[str] = None,
        test_dir: Optional[str] = None,
        layer: Optional[_Layer] = None,
        pattern_steps: Optional[int] = None,
        seed: int = 0,
        progress: _Progress = None,
    ) -> str: ...
