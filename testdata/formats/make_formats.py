"""Makes the decoding fixtures in this folder with Pillow, and records what Pillow's
`Image.open(f).convert('RGB')` gives for each (sha256 of the RGB bytes).

    python testdata/formats/make_formats.py     # Pillow 13 (any Pillow with the same decoders)
"""
import hashlib, io, json, os
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
src = Image.open(os.path.join(HERE, "..", "reference", "data", "dsA", "test", "cat", "cat_1.png")).convert("RGB")
base = src.crop((10, 10, 58, 42))  # 48×32
rgb = np.asarray(base)
files = {}

def save(name, img, **kw):
    path = os.path.join(HERE, name)
    img.save(path, **kw)
    files[name] = None

save("rgb.bmp", base)
save("rgb_lzw.tif", base, compression="tiff_lzw")
save("rgb_lossless.webp", base, lossless=True)
save("palette.gif", base.convert("P", palette=Image.ADAPTIVE, colors=32))
pal = base.convert("P", palette=Image.ADAPTIVE, colors=16)
save("palette_trns.png", pal, transparency=3)
la = base.convert("LA"); save("grey_alpha.png", la)
save("progressive_420.jpg", base, quality=85, progressive=True, subsampling=2)
save("baseline_422.jpg", base, quality=90, subsampling=1)
save("cmyk_adobe.jpg", base.convert("CMYK"), quality=90)
# 16-bit: Pillow writes I;16 PNGs for grey; colour 16-bit written with numpy via PNG 'RGB;16B'
g16 = (np.asarray(base.convert("L")).astype(np.uint16) * 3 + 7)  # values up to 772: some clip at 255 in Pillow
Image.fromarray(g16.astype(np.uint16)).save(os.path.join(HERE, "grey16.png")); files["grey16.png"] = None

def write_png16_rgb(path, arr):
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    import struct, zlib
    h, w, _ = arr.shape
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
write_png16_rgb(os.path.join(HERE, "rgb16.png"), rgb.astype(np.uint16) * 257 + 100)
files["rgb16.png"] = None

out = {}
for name in sorted(files):
    im = Image.open(os.path.join(HERE, name))
    mode = im.mode
    px = np.asarray(im.convert("RGB"))
    out[name] = {"mode": mode, "size": list(im.size), "rgb_sha256": hashlib.sha256(px.tobytes()).hexdigest()}
with open(os.path.join(HERE, "pillow.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
print(json.dumps(out, indent=1))
