#!/usr/bin/env python3
"""tests/mpi: compares two training runs of data-parallel tests.

  compare.py losses A.csv B.csv REL     train_loss of every epoch within REL (relative)
  compare.py params A.safetensors B.safetensors ABS   every parameter within ABS
Prints the largest difference; exits 1 (naming the epoch or tensor) when one is too large."""
import array, csv, json, struct, sys


def losses(a, b, tol):
    ra, rb = list(csv.DictReader(open(a))), list(csv.DictReader(open(b)))
    if len(ra) != len(rb) or not ra:
        sys.exit(f"{a} has {len(ra)} epochs, {b} has {len(rb)}")
    worst = 0.0
    for x, y in zip(ra, rb):
        la, lb = float(x["train_loss"]), float(y["train_loss"])
        rel = abs(la - lb) / max(abs(la), 1e-30)
        worst = max(worst, rel)
        if rel > tol:
            sys.exit(f"epoch {x['epoch']}: train loss {la} ({a}) and {lb} ({b}) differ by {rel:.3g} relative")
        for k in ("val_pixel_accuracy", "val_mean_iou"):
            if k in x and x[k] != y[k]:
                sys.exit(f"epoch {x['epoch']}: {k} {x[k]} ({a}) and {y[k]} ({b}) differ")
    print(f"largest relative train-loss difference {worst:.3g}")


def tensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        out[name] = array.array("f", data[8 + n + lo:8 + n + hi])
    return out


def params(a, b, tol):
    ta, tb = tensors(a), tensors(b)
    if ta.keys() != tb.keys() or not ta:
        sys.exit(f"{a} and {b} hold other tensors")
    worst = 0.0
    for name in ta:
        d = max(abs(x - y) for x, y in zip(ta[name], tb[name]))
        worst = max(worst, d)
        if d > tol:
            sys.exit(f"parameter {name} differs by {d:.3g} between {a} and {b}")
    print(f"largest parameter difference {worst:.3g}")


if __name__ == "__main__":
    {"losses": losses, "params": params}[sys.argv[1]](sys.argv[2], sys.argv[3], float(sys.argv[4]))
