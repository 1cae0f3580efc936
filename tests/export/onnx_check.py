#!/usr/bin/python3
"""ONNX exports (tests/export/run.sh): for each MODEL, DIR/MODEL/MODEL.onnx passes
onnx.checker (full check) and strict shape inference with the declared output shapes, and
ONNX Runtime on the raw inputs (DIR/MODEL/onnx_in/input.npy) gives aec's `predict --input` (DIR/MODEL/onnx_in/predictions.npy) and, with a latent,
`encode --input` (latent.npy) within TOL x max(1, the largest |value|): 1e-5 absolute for
outputs in [-1, 1], relative for larger ones (the 24-band U-Net's logits reach about 50). DIR/MODEL/MODEL.nhwc.onnx, when present, too.
usage: onnx_check.py DIR MODEL...; exits 1 on any failure."""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOL = 1e-5
failures = []


def check(d, model, path, nhwc):
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    out = os.path.join(d, model, "onnx_in")
    aec = np.load(os.path.join(out, "predictions.npy"))
    x = np.load(os.path.join(out, "input.npy"))
    inp = proto.graph.input[0]
    dims = [v.dim_value for v in inp.type.tensor_type.shape.dim[1:]]
    feed = x.reshape([x.shape[0]] + dims) if nhwc or x.ndim == 2 or len(dims) == 1 else x.transpose(0, 3, 1, 2)
    if len(dims) == 1:
        feed = x.reshape(x.shape[0], -1)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, {"input": np.ascontiguousarray(feed)})))
    worst = 0.0
    for name, want in (("output", aec), ("latent", None)):
        if name not in got:
            continue
        if want is None:
            want = np.load(os.path.join(out, "latent.npy"))
        y = got[name]
        if y.ndim == 4 and not nhwc:
            y = y.transpose(0, 2, 3, 1)
        y = y.reshape(want.shape)
        err = float(np.max(np.abs(y.astype(np.float64) - want)))
        scale = max(1.0, float(np.max(np.abs(want))))
        worst = max(worst, err)
        if not err <= TOL * scale:
            failures.append(f"{model}: ONNX Runtime's {name} differs from aec's by {err:.3g} "
                            f"(more than {TOL} x max(1, max |{name}|) = {TOL * scale:.3g})")
    shapes = {o.name: [v.dim_param or v.dim_value for v in o.type.tensor_type.shape.dim] for o in inferred.graph.output}
    print(f"  {os.path.basename(path)}: checker and strict shape inference pass {shapes}; "
          f"ONNX Runtime vs aec: max {worst:.2e} (largest |output| {float(np.max(np.abs(aec))):.3g})")
    return worst


def main():
    d, models = sys.argv[1], sys.argv[2:]
    print(f"  onnx {onnx.__version__} (opset {onnx.defs.onnx_opset_version()} known), onnxruntime {ort.__version__}")
    for model in models:
        for suffix, nhwc in ((".onnx", False), (".nhwc.onnx", True)):
            path = os.path.join(d, model, model + suffix)
            if os.path.exists(path):
                try:
                    check(d, model, path, nhwc)
                except Exception as e:  # noqa: BLE001  the checker's and the runtime's errors
                    failures.append(f"{model}: {path}: {type(e).__name__}: {e}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
