#!/usr/bin/python3
"""Carries an aec checkpoint (docs/runtime.md, format version 1) to and from .npy files.

  ckpt_npy.py export CKPT DIR   one float32 .npy per tensor, in aec's layout and shape:
                                DIR/<param>.npy for parameters (DIR/enc1.w.npy), and
                                DIR/<state>/<param>.npy for optimizer state named
                                <param>/<state> (DIR/adam_m/enc1.w.npy); DIR/header.json
                                keeps the rest (model, spec hash, run state, tensor order)
  ckpt_npy.py import DIR CKPT   the checkpoint back from DIR: byte for byte the one exported
                                when nothing changed; edited .npy files must keep their shape

The layouts (NHWC, conv HWIO, ...) and their PyTorch equivalents are in docs/weights.md."""
import json
import os
import struct
import sys
import zlib

import numpy as np

MAGIC, VERSION = b"AECCKPT1", 1
OPT_KINDS = ["sgd", "adam", "adamw"]


class Reader:
    def __init__(self, buf, path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n):
        if self.pos + n > len(self.buf):
            sys.exit(f"ckpt_npy: {self.path}: the tensor table does not parse (truncated at byte {24 + self.pos})")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def str(self):
        return self.take(self.u32()).decode("utf-8")


def read_ckpt(path):
    data = open(path, "rb").read()
    if len(data) < 24 or data[:8] != MAGIC:
        sys.exit(f"ckpt_npy: {path}: not an aec checkpoint (bad magic)")
    version, crc, length = struct.unpack("<IIQ", data[8:24])
    if version != VERSION:
        sys.exit(f"ckpt_npy: {path}: format version {version}, this tool reads {VERSION}")
    if len(data) != 24 + length:
        sys.exit(f"ckpt_npy: {path}: {len(data)} bytes, the header says {24 + length} (truncated?)")
    payload = data[24:]
    if zlib.crc32(payload) != crc:
        sys.exit(f"ckpt_npy: {path}: CRC mismatch (corrupted)")
    r = Reader(payload, path)
    head = {"model": r.str(), "spec_hash": r.str(), "seed": r.u64(), "step": r.u64(),
            "epoch": r.u32(), "epochs": r.u32()}
    bits = r.u32()
    head["best_val"] = float(np.array([bits], "<u4").view("<f4")[0])
    head["best_val_bits"] = bits  # exact, NaN payloads included
    head["since_best"] = r.u32()
    kind = r.u32()
    head["optimizer"] = OPT_KINDS[kind] if kind < len(OPT_KINDS) else kind
    head["optimizer_step"] = r.u64()
    tensors = []
    for _ in range(r.u32()):
        name = r.str()
        shape = tuple(r.u32() for _ in range(r.u32()))
        count = int(np.prod(shape, dtype=np.int64))
        tensors.append((name, np.frombuffer(r.take(4 * count), "<f4").reshape(shape)))
    if r.pos != len(payload):
        sys.exit(f"ckpt_npy: {path}: {len(payload) - r.pos} bytes after the tensor table")
    return head, tensors


def npy_file(name):
    """enc1.w -> enc1.w.npy; enc1.w/adam_m -> adam_m/enc1.w.npy"""
    param, _, state = name.partition("/")
    return os.path.join(state, param + ".npy") if state else param + ".npy"


def export(ckpt, out):
    head, tensors = read_ckpt(ckpt)
    head["tensors"] = [{"name": n, "file": npy_file(n), "shape": list(t.shape)} for n, t in tensors]
    for n, t in tensors:
        path = os.path.join(out, npy_file(n))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, t)
    with open(os.path.join(out, "header.json"), "w") as f:
        json.dump(head, f, indent=1)
        f.write("\n")
    print(f"{ckpt}: model {head['model']}, {len(tensors)} tensors -> {out}")


def import_(src, ckpt):
    head = json.load(open(os.path.join(src, "header.json")))

    def s(v):
        b = v.encode("utf-8")
        return struct.pack("<I", len(b)) + b

    kind = OPT_KINDS.index(head["optimizer"]) if isinstance(head["optimizer"], str) else head["optimizer"]
    parts = [s(head["model"]), s(head["spec_hash"]),
             struct.pack("<QQIIIIIQI", head["seed"], head["step"], head["epoch"], head["epochs"],
                         head["best_val_bits"], head["since_best"], kind, head["optimizer_step"],
                         len(head["tensors"]))]
    for t in head["tensors"]:
        a = np.load(os.path.join(src, t["file"]))
        if list(a.shape) != t["shape"]:
            sys.exit(f"ckpt_npy: {t['file']}: shape {list(a.shape)}, the checkpoint had {t['shape']}")
        parts += [s(t["name"]), struct.pack("<I", a.ndim), struct.pack(f"<{a.ndim}I", *a.shape),
                  np.ascontiguousarray(a, "<f4").tobytes()]
    payload = b"".join(parts)
    tmp = ckpt + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<IIQ", VERSION, zlib.crc32(payload), len(payload)) + payload)
    os.replace(tmp, ckpt)
    print(f"{src} -> {ckpt}: model {head['model']}, {len(head['tensors'])} tensors")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("export", "import"):
        sys.exit(__doc__.split("\n\n")[1])
    (export if sys.argv[1] == "export" else import_)(sys.argv[2], sys.argv[3])
