"""Crafted bad inputs for fmv's tests (python testdata/hostile/make_hostile.py; Python 3 alone).

negative_shape.pth: a `torch.save`-layout zip whose one tensor, `conv1.weight`, claims the shape
(-64, 3): written by hand (pickle protocol 2, as torch writes it), since torch refuses to make it.
"""

import struct
import zipfile
from pathlib import Path


def long(v):
    return b"\x8a\x08" + struct.pack("<q", v)


def text(s):
    return b"X" + struct.pack("<I", len(s)) + s.encode()


def pth(path, shape, stride, numel=12):
    p = (
        b"\x80\x02ccollections\nOrderedDict\n)Rq\x00("
        + text("conv1.weight")
        + b"ctorch._utils\n_rebuild_tensor_v2\n(("
        + text("storage")
        + b"ctorch\nFloatStorage\n"
        + text("0")
        + text("cpu")
        + long(numel)
        + b"tQ"
        + long(0)
        + b"("
        + b"".join(long(d) for d in shape)
        + b"t("
        + b"".join(long(d) for d in stride)
        + b"t\x89ccollections\nOrderedDict\n)RtRu."
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in [
            ("archive/data.pkl", p),
            ("archive/data/0", struct.pack("<12f", *range(12))),
            ("archive/byteorder", b"little"),
        ]:
            # A fixed date: the same bytes on every run.
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


here = Path(__file__).parent
pth(here / "negative_shape.pth", [-64, 3], [3, 1])
