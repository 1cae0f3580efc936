#!/usr/bin/python3
"""Checks what tests/export/run.sh wrote under DIR for each MODEL:

  layouts   MODEL.npz and MODEL.safetensors (aec's layout) hold the same arrays, and
            MODEL.torch.npz and MODEL.torch.safetensors (PyTorch's) hold exactly the
            conversions of docs/weights.md of them, bit for bit;
  pytorch   the PyTorch twin (tests/torch/twins.py) run on the torch-layout export gives
            aec's own outputs (predict) within TOL;
  torch-made writes DIR/MODEL/from_torch.npz: the torch-layout weights changed in PyTorch
            (what a run elsewhere brings back), and the twin's outputs on them,
            from_torch_out.npy, for run.sh to compare with aec's after `import`.

usage: check.py DIR MODEL... ; exits 1 on any failure."""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import twins  # noqa: E402

TOL = 1e-5
SHOWN = 64  # test images through the twin
failures = []


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (path, k, v["dtype"])
        lo, hi = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype="<f4").reshape(v["shape"])
    return out, head.get("__metadata__", {})


def to_torch(name, w):
    """docs/weights.md: aec name and layout -> PyTorch's, knowing the layer of each weight."""
    stem, role = name.rsplit(".", 1)
    new = {"w": "weight", "b": "bias", "gamma": "weight", "beta": "bias", "mean": "running_mean",
           "var": "running_var"}[role]
    if role == "w" and w.ndim == 2:
        w = w.T
    elif role == "w" and w.ndim == 4:
        w = w.transpose(0, 3, 1, 2) if w.shape[1] == w.shape[2] and w.shape[0] != w.shape[1] else w.transpose(3, 2, 0, 1)
    return stem + "." + new, np.ascontiguousarray(w)


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def check_layouts(d, model):
    aec_npz = dict(np.load(os.path.join(d, model + ".npz")))
    aec_st, meta = read_safetensors(os.path.join(d, model + ".safetensors"))
    t_npz = dict(np.load(os.path.join(d, model + ".torch.npz")))
    t_st, tmeta = read_safetensors(os.path.join(d, model + ".torch.safetensors"))
    if meta.get("aec_layout") != "aec" or tmeta.get("aec_layout") != "torch" or meta.get("aec_model") != model:
        failures.append(f"{model}: safetensors metadata {meta} / {tmeta}")
    if list(aec_npz) != list(aec_st) or not all(same_bits(aec_npz[k], aec_st[k]) for k in aec_npz):
        failures.append(f"{model}: the aec-layout npz and safetensors differ")
    if list(t_npz) != list(t_st) or not all(same_bits(t_npz[k], t_st[k]) for k in t_npz):
        failures.append(f"{model}: the torch-layout npz and safetensors differ")
    converted = dict(to_torch(k, v) for k, v in aec_npz.items())
    if list(converted) != list(t_npz) or not all(same_bits(converted[k], t_npz[k]) for k in t_npz):
        bad = [k for k in t_npz if k not in converted or not same_bits(converted[k], t_npz[k])]
        failures.append(f"{model}: the torch layout is not docs/weights.md's conversion: {bad}")
    print(f"  {model}: {len(t_npz)} tensors; npz = safetensors and torch = docs/weights.md's "
          f"conversion of aec, bit for bit")
    return t_npz


def test_images(n):
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[:n * 784]
    return raw.astype(np.float32).reshape(n, 784) * np.float32(1.0 / 255.0)


def twin_output(model, weights, x):
    p = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in weights.items()}
    zeros = lambda op, k, n: torch.zeros(n)  # noqa: E731  eval: no noise, z = mu
    net = twins.Net(p, x.shape[0], zeros, layout="torch")
    t = torch.zeros(x.shape[0], 64 * 64) if model.startswith("unet") else None  # labels: unused here
    with torch.no_grad():
        out, _, _, _ = twins.EXPORT_TWINS[model](net, torch.from_numpy(x.astype(np.float64)), t)
    return out.numpy()


def compare(model, what, aec, ref):
    err = float(np.max(np.abs(aec.astype(np.float64) - ref)))
    print(f"  {model}: {what}: max |aec - PyTorch| = {err:.2e} over {aec.size} values")
    if not err <= TOL:
        failures.append(f"{model}: {what} differs by {err:.3g} > {TOL}")


def main():
    d, models = sys.argv[1], sys.argv[2:]
    x = test_images(SHOWN)
    for model in models:
        md = os.path.join(d, model)
        weights = check_layouts(md, model)
        aec = np.load(os.path.join(md, "predictions.npy"))[:SHOWN]
        compare(model, "outputs of the exported weights", aec, twin_output(model, weights, x))
        rng = np.random.default_rng(7)  # weights "trained elsewhere": changed in PyTorch
        changed = {k: (v * np.float32(0.9) + np.float32(0.01) * rng.standard_normal(v.shape, dtype=np.float32))
                   for k, v in weights.items()}
        np.savez(os.path.join(md, "from_torch.npz"), **changed)
        np.save(os.path.join(md, "from_torch_out.npy"), twin_output(model, changed, x))
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "compare":
    a, b = np.load(sys.argv[3])[:SHOWN], np.load(sys.argv[4])
    compare(sys.argv[2], "outputs after import of PyTorch-made weights", a, b)
    sys.exit(1 if failures else 0)
elif __name__ == "__main__":
    sys.exit(main())
