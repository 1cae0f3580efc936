#!/usr/bin/env python3
"""Isomap in numpy, written from the paper (Tenenbaum, de Silva, Langford 2000), to check
runtime/report/isomap.c: the k-nearest-neighbour graph (an edge where either point is among the
other's k nearest), geodesic distances by Floyd-Warshall over it, classical MDS by
numpy.linalg.eigh. Usage: isomap_check.py DRIVER WORKDIR. Checks a swiss roll (the maps agree,
and the first axis follows the angle along the roll) and a graph in two pieces (refused,
naming both sizes)."""
import os
import subprocess
import sys

import numpy as np


def reference(x, k):
    n = len(x)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    g = np.full((n, n), np.inf)
    near = np.argsort(d + np.diag(np.full(n, np.inf)), axis=1)[:, :k]
    for i in range(n):
        g[i, near[i]] = d[i, near[i]]
    g = np.minimum(g, g.T)
    np.fill_diagonal(g, 0)
    for m in range(n):   # Floyd-Warshall
        g = np.minimum(g, g[:, m:m + 1] + g[m:m + 1, :])
    sq = g ** 2
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ sq @ j
    w, v = np.linalg.eigh(b)
    return v[:, [-1, -2]] * np.sqrt(w[[-1, -2]])


def run(driver, work, x, k):
    src, dst = os.path.join(work, "points.f32"), os.path.join(work, "map.f32")
    x.astype(np.float32).tofile(src)
    p = subprocess.run([driver, src, str(len(x)), str(x.shape[1]), str(k), dst],
                       capture_output=True, text=True)
    return p, (np.fromfile(dst, dtype=np.float32).reshape(-1, 2) if p.returncode == 0 else None)


def main():
    driver, work = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(5)
    n, k = 1000, 8
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    roll = np.stack([t * np.cos(t), 20 * rng.random(n), t * np.sin(t)], axis=1)
    roll = roll.astype(np.float32).astype(np.float64)   # the points the driver sees
    p, got = run(driver, work, roll, k)
    if p.returncode != 0:
        sys.exit("FAIL: isomap of the swiss roll failed: " + p.stderr)
    want = reference(roll, k)
    worst = 0.0
    for a in range(2):   # an eigenvector's sign is arbitrary
        s = np.sign(got[:, a] @ want[:, a])
        worst = max(worst, np.abs(s * got[:, a] - want[:, a]).max() / np.abs(want[:, a]).max())
    if worst > 1e-4:
        sys.exit("FAIL: isomap differs from the numpy reference by %.2e of the axis range" % worst)
    arc = 0.5 * (t * np.sqrt(1 + t * t) + np.arcsinh(t))   # length along the spiral
    r = abs(np.corrcoef(got[:, 0], arc)[0, 1])
    if r < 0.99:
        sys.exit("FAIL: isomap's first axis does not follow the length along the roll (correlation %.4f)" % r)
    print("isomap: a %d-point swiss roll, k=%d: agrees with the numpy reference to %.1e of the "
          "axis range; first axis vs the length along the roll: correlation %.4f" % (n, k, worst, r))
    two = np.concatenate([rng.random((25, 3)), rng.random((15, 3)) + 100])
    p, _ = run(driver, work, two, 5)
    if p.returncode != 1 or "2 components, of 25 and 15 points" not in p.stderr:
        sys.exit("FAIL: a graph in two pieces was not refused with their sizes: rc %d, %s"
                 % (p.returncode, p.stderr))
    print("isomap: a graph in two pieces refused: " + p.stderr.strip())


if __name__ == "__main__":
    main()
