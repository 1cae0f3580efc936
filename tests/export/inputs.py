#!/usr/bin/python3
"""Inputs and checks for `predict --input` / `encode --input` (tests/export/run.sh):

  write DIR       DIR/png/ten test images as PNG files (grey, 8 bit), DIR/ten.npy (the same
                  raw bytes as float32 [10, 28, 28, 1]), DIR/rgba/ three random 64 x 64 RGBA
                  PNG images and DIR/rgba.npy (the same values, [3, 64, 64, 4]),
                  DIR/small.png (27 x 28), DIR/empty/ and DIR/notes/ (a text file only);
  check MODEL DIR OUT
                  OUT/predictions.npy from the PNG folder against the PyTorch twin on the
                  torch-layout export in DIR/../MODEL (within TOL); every
                  OUT/predictions/<name>.png is the prediction on the data's 0..255 scale
                  (image outputs) or the class map of label values (class maps)."""
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402

TOL = 1e-5


def write_png(path, a):
    h, w = a.shape[:2]
    kind = {1: 0, 3: 2, 4: 6}[1 if a.ndim == 2 else a.shape[2]]
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, kind, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def read_png(path):
    """8-bit grey or RGB, any of the five filters."""
    b = open(path, "rb").read()
    pos, idat, head = 8, b"", None
    while pos < len(b):
        n, t = struct.unpack(">I4s", b[pos:pos + 8])
        if t == b"IHDR":
            head = struct.unpack(">IIBBBBB", b[pos + 8:pos + 21])
        elif t == b"IDAT":
            idat += b[pos + 8:pos + 8 + n]
        pos += 12 + n
    w, h, depth, kind = head[:4]
    assert depth == 8 and kind in (0, 2), head
    ch = 1 if kind == 0 else 3
    raw, out = zlib.decompress(idat), np.zeros((h, w * ch), np.int32)
    stride = w * ch + 1
    for y in range(h):
        f, line = raw[y * stride], np.frombuffer(raw[y * stride + 1:(y + 1) * stride], np.uint8).astype(np.int32)
        prev = out[y - 1] if y else np.zeros(w * ch, np.int32)
        cur = np.zeros(w * ch, np.int32)
        for x in range(w * ch):
            a = cur[x - ch] if x >= ch else 0
            c = prev[x - ch] if x >= ch else 0
            up = prev[x]
            if f == 0: v = line[x]
            elif f == 1: v = line[x] + a
            elif f == 2: v = line[x] + up
            elif f == 3: v = line[x] + (a + up) // 2
            else:
                p = a + up - c
                pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                v = line[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)
            cur[x] = v & 255
        out[y] = cur
    return out.reshape(h, w, ch).astype(np.uint8)


def write(d):
    os.makedirs(d + "/png", exist_ok=True)
    os.makedirs(d + "/rgba", exist_ok=True)
    os.makedirs(d + "/empty", exist_ok=True)
    os.makedirs(d + "/notes", exist_ok=True)
    x = np.round(check.test_images(10) * 255).astype(np.uint8).reshape(10, 28, 28)
    for i in range(10):
        write_png(f"{d}/png/img{i:02d}.png", x[i])
    np.save(d + "/ten.npy", x.reshape(10, 28, 28, 1).astype(np.float32))
    r = np.random.default_rng(5).integers(0, 256, (3, 64, 64, 4), dtype=np.uint8)
    for i in range(3):
        write_png(f"{d}/rgba/tile{i}.png", r[i])
    np.save(d + "/rgba.npy", r.astype(np.float32))
    write_png(d + "/small.png", np.zeros((28, 27), np.uint8))
    open(d + "/notes/readme.txt", "w").write("no images here\n")


def check_model(model, d, out):
    weights = dict(np.load(os.path.join(d, "..", model, model + ".torch.npz")))
    aec = np.load(out + "/predictions.npy")
    seg = model.startswith("unet")
    if seg:
        x = np.load(d + "/rgba.npy").reshape(3, -1) * np.float32(1 / 255)
        names = [f"tile{i}" for i in range(3)]
    else:
        x = np.load(d + "/ten.npy").reshape(10, -1) * np.float32(1 / 255)
        names = [f"img{i:02d}" for i in range(10)]
    ref = check.twin_output(model, weights, x).reshape(aec.shape)
    check.compare(model, "predict --input (PNG folder)", aec, ref)
    for i, name in enumerate(names):
        png = read_png(f"{out}/predictions/{name}.png")
        if seg:
            want = np.array([1, 2, 3, 4, 5, 6], np.uint8)[aec[i].argmax(-1)]  # class_ids
        else:
            want = np.clip(np.floor(aec[i] * 255 + 0.5), 0, 255).astype(np.uint8)
        if png.shape[:2] != want.shape[:2] or not np.array_equal(png[..., 0], want.reshape(png.shape[:2])):
            check.failures.append(f"{model}: {name}.png is not the prediction")
    print(f"  {model}: {len(names)} PNG outputs match predictions.npy {list(aec.shape)}")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        check_model(sys.argv[2], sys.argv[3], sys.argv[4])
    for f in check.failures:
        print("FAIL:", f)
    sys.exit(1 if check.failures else 0)
