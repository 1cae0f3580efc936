#!/usr/bin/python3
"""Reads what tests/torch/dump.c wrote under DIR (default build/torch) and checks it against
the PyTorch twins of tests/torch/twins.py:

  op specs (tests/torch/specs/*.ae): outputs, latent, every loss term and the total, every
  parameter gradient and the batch-norm running statistics, with the twin in float64 on the
  same weights, inputs and random draws; then the parameters after one and two steps of
  torch.optim.SGD (momentum, plain and Nesterov), Adam and AdamW in float32, fed aec's own gradients;
  example specs: ten Adam steps from the same initial weights on the same batches, the
  losses step by step.

A value passes when |aec - torch| <= TOL * max(|torch|, FLOOR * max|tensor|). Prints the
worst relative error per tensor group and exits 1 when any exceeds TOL. A gradient that is
zero in exact arithmetic must stay below ZERO_TOL * the model's largest gradient.
-v: every tensor."""
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twins  # noqa: E402

TOL, FLOOR, ZERO_TOL = 1e-4, 1e-3, 1e-5
VERBOSE = "-v" in sys.argv
failures = []

# ---- aec's counter-based random numbers (runtime/aert.h, runtime/core/init.c) in numpy
U64 = np.uint64


def hash64(x):
    x = np.asarray(x, dtype=U64)
    with np.errstate(over="ignore"):
        x = x + U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
    return x ^ (x >> U64(31))


def uniform(seed, i):
    h = hash64(U64(seed) ^ hash64(i))
    return ((h >> U64(40)).astype(np.float64) + 0.5).astype(np.float32) * np.float32(1.0 / 16777216.0)


def normal(seed, n):  # aert_normal: Box-Muller in float
    i = np.arange(n, dtype=U64)
    u1, u2 = uniform(seed, U64(2) * i), uniform(seed, U64(2) * i + U64(1))
    r = np.sqrt(np.float32(-2.0) * np.log(u1.astype(np.float64)).astype(np.float32))
    a = np.float32(6.28318530717958647692) * u2
    return r * np.cos(a.astype(np.float64)).astype(np.float32)


def kernel_seeds(model_c):
    """For each random op, the constant K of its kernel seed aert_hash64(seed + K), in order."""
    seeds = {"noise": [], "dropout": [], "sample": []}
    # aert_noise_forward(..., aert_hash64(r->seed + K), r->first * N): drawn by global example
    # index, which starts at 0 in one process
    for op, k in re.findall(r"aert_(noise|dropout|sample)_forward\(.*aert_hash64\(r->seed \+ (\d+)\), r->first", model_c):
        seeds[op].append(int(k))
    return seeds


def make_rng(run_seed, seeds):
    def rng(op, k, n):
        s = int(hash64((run_seed + seeds[op][k]) & 0xFFFFFFFFFFFFFFFF))
        v = uniform(s, np.arange(n, dtype=U64)) if op == "dropout" else normal(s, n)
        return torch.from_numpy(v)
    return rng


# ---- the dump
def load(d):
    meta = {"params": [], "step_seed": []}
    for line in open(os.path.join(d, "meta.txt")):
        f = line.split()
        if f[0] == "param":
            meta["params"].append((f[1], int(f[2]), int(f[3]), int(f[4]), tuple(int(v) for v in f[5:])))
        elif f[0] == "step_seed":
            meta["step_seed"].append(int(f[1]))
        elif f[0] == "terms":
            meta["terms"] = f[1:]
        else:
            meta[f[0]] = f[1] if f[0] == "model" else float(f[1]) if f[0] == "lr" else int(f[1])
    meta["model_c"] = open(os.path.join(d, "src", "model.c")).read()
    return meta


def npy(d, name):
    return np.load(os.path.join(d, name + ".npy"))


def split(meta, arena):
    """The parameter arena as {name: array in aec's shape}."""
    arena = arena.reshape(-1)
    return {n: arena[off:off + size].reshape(shape) for n, off, size, frozen, shape in meta["params"]}


def trainable(meta):
    return [n for n, off, size, frozen, shape in meta["params"] if not frozen]


# ---- comparison
def rel_err(a, b):
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    scale = np.maximum(np.abs(b), max(FLOOR * np.abs(b).max(), 1e-30))
    return float((np.abs(a - b) / scale).max())


class Group:
    """The worst relative error over a group of tensors (one line of the report)."""

    def __init__(self, spec, label, tol=TOL):
        self.spec, self.label, self.tol, self.n = spec, label, tol, 0
        self.worst, self.where, self.bad, self.excused = 0.0, "", [], []

    def add(self, name, aec, ref, err=None, ref32=None):
        """ref32: the twin in float32. Where PyTorch's own float32 result is further than TOL
        from float64 (an ill-conditioned value), aec may be up to twice as far."""
        e = rel_err(aec, ref) if err is None else err
        allow, e32 = self.tol, None
        if ref32 is not None:
            e32 = rel_err(ref32, ref)
            allow = max(allow, 2 * e32)
        self.n += 1
        if VERBOSE:
            print(f"    {self.spec:22} {self.label:12} {name:24} {e:.2e}" + (f"  (torch float32 {e32:.2e})" if e32 is not None else ""))
        if not e <= self.worst:
            self.worst, self.where = e, name
        if not e <= allow:
            self.bad.append(name)
        elif e > self.tol:
            self.excused.append(f"{name} {e:.2e} (torch float32 {e32:.2e})")
        return self

    def report(self):
        print(f"  {self.spec:22} {self.label:14} {self.worst:9.2e}  worst of {self.n:3}: {self.where}"
              + ("   FAIL" if self.bad else ""))
        for ex in self.excused:
            print(f"  {'':22} {'':14} above {self.tol:g} as PyTorch's float32 is: {ex}")
        if self.bad:
            failures.append(f"{self.spec} {self.label} " + " ".join(self.bad))


def to_torch(meta, arena, dtype, grad=True):
    train = set(trainable(meta))
    return {n: torch.tensor(v, dtype=dtype, requires_grad=grad and n in train)
            for n, v in split(meta, arena).items()}


def check_ops(d, name):
    meta = load(d)
    B = meta["batch"]
    P0, G = npy(d, "P0"), npy(d, "G")
    x = torch.tensor(npy(d, "X"), dtype=torch.float64)
    t = torch.tensor(npy(d, "T"), dtype=torch.float64)
    rng = make_rng(meta["seed"], kernel_seeds(meta["model_c"]))
    twin = {}  # float64: the reference; float32: how well conditioned each value is
    for dt in (torch.float64, torch.float32):
        p = to_torch(meta, P0, dt)
        net = twins.Net(p, B, rng)
        out, latent, terms, total = twins.TWINS[name](net, x.to(dt), t)
        total.backward()
        twin[dt] = {"out": out.detach().double().numpy(), "terms": [v.item() for v in terms],
                    "total": total.item(), "grad": {n: p[n].grad.double().numpy() for n in trainable(meta)},
                    "running": {k: v.double().numpy() for k, v in net.running.items()},
                    "latent": None if latent is None else latent.detach().double().numpy()}
    r, r32 = twin[torch.float64], twin[torch.float32]

    fwd = Group(name, "forward").add("out", npy(d, "out"), r["out"], ref32=r32["out"])
    if r["latent"] is not None:
        fwd.add("latent", npy(d, "latent"), r["latent"], ref32=r32["latent"])
    losses = npy(d, "losses")[0]
    for i, term in enumerate(meta["terms"]):
        fwd.add("loss " + term, losses[1 + i], r["terms"][i], ref32=r32["terms"][i])
    fwd.add("loss total", losses[0], r["total"], ref32=r32["total"])
    fwd.report()

    # A gradient that is zero in exact arithmetic (a bias before batch norm) is float noise in
    # both: it is checked against the model's largest gradient instead, to ZERO_TOL.
    grads, zeros = Group(name, "gradients"), Group(name, "zero grads", ZERO_TOL)
    aec_g = split(meta, G)
    scale = max(np.abs(g).max() for g in r["grad"].values())
    for n in trainable(meta):
        ref = r["grad"][n]
        if np.abs(ref).max() <= 1e-12 * scale:
            zeros.add(n, None, None, float(np.abs(aec_g[n]).max() / scale))
        else:
            grads.add(n, aec_g[n], ref, ref32=r32["grad"][n])
    grads.report()
    if zeros.n:
        zeros.report()
    if r["running"]:
        run = Group(name, "bn running")
        aec_p = split(meta, npy(d, "Pfwd"))
        for n, v in r["running"].items():
            run.add(n, aec_p[n], v, ref32=r32["running"][n])
        run.report()

    # The optimizers in float32 from the parameters after the forward, fed aec's gradients.
    make = {"sgd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
            "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
            "adam": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.01),
            "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)}
    for opt, build in make.items():
        q = to_torch(meta, npy(d, "Pfwd"), torch.float32)
        ps = [q[n] for n in trainable(meta)]
        o = build(ps)
        g = Group(name, opt + " x2")
        for k in (1, 2):
            for n in trainable(meta):
                q[n].grad = torch.tensor(aec_g[n], dtype=torch.float32)
            o.step()
            aec_after = split(meta, npy(d, f"P_{opt}_{k}"))
            for n in trainable(meta):
                g.add(f"{n} step {k}", aec_after[n], q[n].detach().numpy())
        g.report()


def check_training(d, name):
    meta = load(d)
    B, steps = meta["batch"], meta["steps"]
    seeds = kernel_seeds(meta["model_c"])
    p = to_torch(meta, npy(d, "P0"), torch.float64)
    kind, lr = twins.MODEL_OPTIM[name]
    assert kind == "adam" and abs(lr - meta["lr"]) < 1e-6 * lr
    o = torch.optim.Adam([p[n] for n in trainable(meta)], lr=lr)
    losses = npy(d, "losses")
    g = Group(name, f"{steps} steps")
    for k in range(steps):
        x = torch.tensor(npy(d, f"X_{k}"), dtype=torch.float64)
        t = torch.tensor(npy(d, f"T_{k}"), dtype=torch.float64)
        net = twins.Net(p, B, make_rng(meta["step_seed"][k], seeds))
        o.zero_grad()
        out, latent, terms, total = twins.TWINS[name](net, x, t)
        total.backward()
        o.step()
        g.add(f"loss at step {k}", losses[k, 0], total.item())
        if VERBOSE or k in (0, steps - 1):
            print(f"    {name:22} step {k}: aec {losses[k, 0]:.7g}  torch {total.item():.7g}")
    g.report()
    # Not a pass criterion: Adam turns float noise in a near-zero gradient into a full-size
    # step (m / sqrt(v) is about +-1 whatever the size), so single weights can differ by lr.
    end = Group(name, "params (info)", tol=float("inf"))
    aec_end = split(meta, npy(d, "P_end"))
    for n in trainable(meta):
        end.add(n, aec_end[n], p[n].detach().numpy())
    end.report()


def main():
    root = next((a for a in sys.argv[1:] if not a.startswith("-")), "build/torch")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    print(f"PyTorch {torch.__version__} cross-check, tolerance {TOL:g} relative "
          f"(floor {FLOOR:g} * max|tensor|)")
    for name in twins.TWINS:
        d = os.path.join(root, name)
        if not os.path.exists(os.path.join(d, "meta.txt")):
            print(f"  {name}: no dump in {d}")
            failures.append(name + " missing")
            continue
        (check_training if load(d)["steps"] else check_ops)(d, name)
    print("torch cross-check: " + ("all agree" if not failures else f"{len(failures)} FAILED: " + ", ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
