#!/usr/bin/env python3
"""specgen.py - differential testing of the compiler with random valid specs.

Each case is a spec that is shape-correct by construction (the generator keeps its own
copy of the shape rules of docs/language.md), tiny (batch 2-4, images up to 16x16), and
run through every stage: `aec check`, `aec build`, the forward pass against the reference
interpreter in double (tests/reference), the gradients against finite differences in double
and the float build with the trainer's flags and -Werror against them (tests/gradcheck,
whose model.o the trainer links: one -O3 compile a spec), three training steps and an
evaluation by the real trainer on random IDX data (finite losses). A failing case is
minimised (layers dropped, sizes shrunk, settings removed while the same stage still fails)
and written to tests/specs/found/, which every run checks again. Mutants of valid specs
(one size, name or argument changed) must be accepted and then pass as above, or refused
with a located error: never a crash. A spec whose training step passes HEAVY_FLOPS (a
mutant's huge size) skips the double-precision stages, which would outlast their timeout.

  specgen.py --seed S --count N [--mutants M] [--jobs J]     a fixed set (make test)
  specgen.py --minutes T [--jobs J]                          fresh seeds for T minutes (make fuzz-specs)
  specgen.py --print SEED                                    show one generated spec
  specgen.py --found                                         re-run tests/specs/found/*.ae
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AEC = os.path.join(ROOT, "bin", "aec")
FOUND = os.path.join(ROOT, "tests", "specs", "found")
WORK = os.path.join(ROOT, "build", "specgen")
OBJ = os.path.join(WORK, "obj")   # the harness objects every spec links (harness_objects)
STEP_TIMEOUT = 120
# A training step above this many FLOPs (a mutant's 65537 channels: 25 GFLOP) would keep the
# double-precision stages (the reference, the finite differences) past STEP_TIMEOUT: such a
# spec is built with the trainer's flags and trains and evaluates, without them.
HEAVY_FLOPS = 2e9

# ---- the language's layers: positional argument order and defaults (docs/language.md) ----
ARGS = {
    "dense": ["units", "bias"], "conv": ["filters", "k", "stride", "padding", "bias"],
    "conv_transpose": ["filters", "k", "stride", "padding", "bias"], "maxpool": ["size", "stride"],
    "avgpool": ["size", "stride"], "upsample": ["factor", "mode"], "flatten": [],
    "reshape": ["shape"], "dropout": ["rate"], "batchnorm": ["momentum", "eps"],
    "gaussian_noise": ["stddev", "min", "max"], "leaky_relu": ["alpha"], "elu": ["alpha"],
    "relu": [], "sigmoid": [], "tanh": [], "softmax": [], "linear": [],
    "concat": [], "add": [], "sample": [],
}
DEFAULTS = {
    "dense": {"bias": "true"},
    "conv": {"k": 3, "stride": 1, "padding": "same", "bias": "true"},
    "conv_transpose": {"k": 3, "stride": 2, "padding": "same", "bias": "true"},
    "upsample": {"factor": 2, "mode": "nearest"},
    "batchnorm": {"momentum": 0.1, "eps": 1e-5},
    "gaussian_noise": {"min": 0, "max": 1},
    "leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0},
}
ACTIVATIONS = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "linear"]
PARAMETERISED = {"dense", "conv", "conv_transpose", "batchnorm", "import"}
CLASS_LOSSES = ("softmax_xent", "focal", "dice", "jaccard")   # logits against the class target
MAX_SIDE, MAX_CH, MAX_VEC = 32, 40, 8192


def prod(s):
    p = 1
    for d in s:
        p *= d
    return p


def infer(op, shapes, a):
    """The output shape of a layer, or None where the compiler must refuse it."""
    x = shapes[0] if shapes else None
    img = x is not None and len(x) == 3
    if op == "dense":
        return (a["units"],) if len(x) == 1 else None
    if op in ("conv", "conv_transpose"):
        if not img:
            return None
        k, s, same = a["k"], a["stride"], a["padding"] == "same"
        out = []
        for d in x[:2]:
            if op == "conv":
                if same:
                    if k % 2 == 0 or d % s:
                        return None
                    out.append(d // s)
                else:
                    if d < k or (d - k) % s:
                        return None
                    out.append((d - k) // s + 1)
            else:
                if same and k % 2 == 0:
                    return None
                out.append(d * s if same else (d - 1) * s + k)
        return (out[0], out[1], a["filters"])
    if op in ("maxpool", "avgpool"):
        if not img:
            return None
        size, st = a["size"], a.get("stride", a["size"])
        if any(d < size or (d - size) % st for d in x[:2]):
            return None
        return ((x[0] - size) // st + 1, (x[1] - size) // st + 1, x[2])
    if op == "upsample":
        return (x[0] * a["factor"], x[1] * a["factor"], x[2]) if img else None
    if op == "flatten":
        return (prod(x),)
    if op == "reshape":
        return tuple(a["shape"]) if prod(a["shape"]) == prod(x) else None
    if op == "concat":
        if all(len(s) == 1 for s in shapes):   # vectors, end to end
            return (sum(s[0] for s in shapes),)
        if any(len(s) != 3 or s[:2] != x[:2] for s in shapes):
            return None
        return (x[0], x[1], sum(s[2] for s in shapes))
    if op in ("add", "sample"):
        return x if all(s == x for s in shapes) else None
    if op == "import":
        return a["shape"] if x == a["in_shape"] else None
    return x   # activations, dropout, batchnorm, noise


class Node:
    def __init__(self, nid, op, ins, a, shape):
        self.id, self.op, self.ins, self.a, self.shape = nid, op, ins, a, shape


class Graph:
    """Nodes in topological order; losses as (weight, kind, [nodes], {settings})."""

    def __init__(self):
        self.nodes, self.losses, self.latent = [], [], None

    def add(self, op, ins, **a):
        shape = infer(op, [i.shape for i in ins], a) if ins else a["shape"]
        if shape is None or not fits(shape):
            return None
        n = Node(len(self.nodes), op, list(ins), a, shape)
        self.nodes.append(n)
        return n

    def uses(self):
        u = {n.id: 0 for n in self.nodes}
        for n in self.nodes:
            for i in n.ins:
                u[i.id] += 1
        for _, _, args, _ in self.losses:
            for i in args:
                u[i.id] += 1
        return u


def fits(shape):
    if len(shape) == 3:
        return shape[0] <= MAX_SIDE and shape[1] <= MAX_SIDE and shape[2] <= MAX_CH and prod(shape) <= 8192
    return prod(shape) <= MAX_VEC if len(shape) == 1 else prod(shape) <= 4096


# ---- the generator ------------------------------------------------------------------
class Spec:
    """A generated model: the graph plus everything the spec text says around it."""

    def __init__(self, name):
        self.name, self.g = name, Graph()
        self.target = None          # None, ("image", shape), ("classes", shape, labels, ignore)
        self.in_type, self.batch, self.optimizer, self.data = "f32", 2, "", {}
        self.steering = []          # lines: warmup, clip, accumulate, stop
        self.blocks = []            # chains rendered as blocks: dict(name, nodes, form, inner, fparam)
        self.imports = []           # (block, file, weights, mode)
        self.numbers = {}           # value -> name of a number binding
        self.tiles = False          # the data: synthetic GeoTIFF tiles, not IDX files


def pick(rng, pool, pred=lambda n: True, recent=0.7):
    cands = [n for n in pool if pred(n)]
    if not cands:
        return None
    tail = cands[-3:]
    return rng.choice(tail) if rng.random() < recent else rng.choice(cands)


def image(n):
    return len(n.shape) == 3


def param_free_from_input(n):
    return n.op == "input" or (n.op not in PARAMETERISED and n.ins and all(param_free_from_input(i) for i in n.ins))


def trains(n, frozen_import, memo=None):
    """n depends on a trainable parameter: aec refuses a loss term that reaches none."""
    memo = {} if memo is None else memo
    if n.id not in memo:
        own = n.op in PARAMETERISED and not (n.op == "import" and frozen_import)
        memo[n.id] = own or any(trains(i, frozen_import, memo) for i in n.ins)
    return memo[n.id]


def data_view(n):
    """The input or target that n only renames (linear, flatten, reshape), or None."""
    while n.op in ("linear", "flatten", "reshape"):
        n = n.ins[0]
    return n if n.op in ("input", "target") else None


def add_act(rng, g, n, choices=None):
    # softmax over one channel is the constant 1: what it feeds is constant, and a batch norm
    # of a constant channel has a derivative of rounding noise that the finite differences
    # took for a wrong gradient (seed 539)
    one = n.shape[-1] == 1
    act = rng.choice([a for a in (choices or ACTIVATIONS) if not (one and a == "softmax")])
    a = {}
    if act == "leaky_relu" and rng.random() < 0.5:
        a["alpha"] = rng.choice([0.1, 0.2, 0.05])
    if act == "elu" and rng.random() < 0.5:
        a["alpha"] = rng.choice([0.5, 1.5])
    return g.add(act, [n], **a)


def no_bias(rng):
    """bias=false on some dense, conv and conv_transpose layers, now and then said explicitly true."""
    r = rng.random()
    return {"bias": "false"} if r < 0.2 else {"bias": "true"} if r < 0.25 else {}


def conv_layer(rng, g, t):
    for _ in range(8):
        f = rng.choice([1, 2, 3, 4, 5, 8, 12, 15, 16, 17, 24])
        k = rng.choice([1, 3, 3, 5, 2])
        s = rng.choice([1, 1, 1, 2])
        pad = rng.choice(["same", "same", "valid"])
        n = g.add("conv", [t], filters=f, k=k, stride=s, padding=pad, **no_bias(rng))
        if n:
            return n
    return None


def conv_t_layer(rng, g, t):
    for _ in range(6):
        n = g.add("conv_transpose", [t], filters=rng.choice([1, 2, 4, 8, 16]), k=rng.choice([1, 2, 3, 4]),
                  stride=rng.choice([1, 2]), padding=rng.choice(["same", "valid"]), **no_bias(rng))
        if n:
            return n
    return None


def pool_layer(rng, g, t):
    size = rng.choice([2, 2, 3])
    a = {"size": size}
    if rng.random() < 0.3:
        a["stride"] = rng.choice([1, size])
    return g.add(rng.choice(["maxpool", "avgpool"]), [t], **a)


def same_size(pool, t):
    return [n for n in pool if image(n) and n.shape[:2] == t.shape[:2] and n is not t]


def resize_free(rng, g, src, hw):
    """src brought to h x w by layers without parameters (pool, upsample), or None."""
    h, w = src.shape[:2]
    if (h, w) == hw:
        return src
    if hw[0] % h == 0 and hw[1] % w == 0 and hw[0] // h == hw[1] // w and hw[0] // h <= 4:
        return g.add("upsample", [src], factor=hw[0] // h, **({"mode": "bilinear"} if rng.random() < 0.3 else {}))
    if h % hw[0] == 0 and w % hw[1] == 0 and h // hw[0] == w // hw[1]:
        return g.add(rng.choice(["maxpool", "avgpool"]), [src], size=h // hw[0])
    return None


def concat_layer(rng, g, pool, t):
    others = same_size(pool, t)
    x = g.nodes[0]
    if image(x) and rng.random() < 0.5:   # the input, or a parameter-free path from it
        src = x if rng.random() < 0.5 or x.shape[:2] != t.shape[:2] else (
            g.add("maxpool", [x], size=2) if x.shape[0] % 2 == 0 and x.shape[1] % 2 == 0 else None)
        if src is not None:
            src = resize_free(rng, g, src, t.shape[:2])
        if src is not None:
            others.append(src)
    if not others:
        others = [t] if rng.random() < 0.3 else []
    if not others:
        return None
    parts = [t] + rng.sample(others, min(len(others), rng.choice([1, 1, 2])))
    rng.shuffle(parts)
    return g.add("concat", parts)


def vector_concat(rng, g, pool, t):
    others = [n for n in pool if len(n.shape) == 1 and n is not t and n.op != "target"]
    if not others:
        return None
    parts = [t] + rng.sample(others, min(len(others), rng.choice([1, 1, 2])))
    rng.shuffle(parts)
    return g.add("concat", parts)


def add_layer(rng, g, pool, t):
    same = [n for n in pool if n.shape == t.shape and n is not t]
    if same and rng.random() < 0.6:
        return g.add("add", [t] + rng.sample(same, min(len(same), rng.choice([1, 2]))))
    if image(t):
        r = g.add("conv", [t], filters=t.shape[2], k=3, stride=1, padding="same")
    else:
        r = g.add("dense", [t], units=t.shape[0])
    if r is None:
        return None
    if rng.random() < 0.5:
        r = add_act(rng, g, r, ["relu", "tanh"])
    return g.add("add", [r, t] if rng.random() < 0.5 else [t, r])


def vector_of(rng, g, t):
    if image(t):
        return g.add("flatten", [t])
    return t


def reshape_layer(rng, g, t):
    n = prod(t.shape)
    opts = [(h, w, n // (h * w)) for h in range(1, 9) for w in range(1, 9)
            if n % (h * w) == 0 and n // (h * w) <= MAX_CH and h * w > 1]
    if not opts:
        return None
    return g.add("reshape", [t], shape=list(rng.choice(opts)))


def random_layer(rng, g, pool):
    t = pick(rng, pool)
    if image(t):
        kind = rng.choices(["conv", "conv_t", "pool", "upsample", "concat", "add", "act", "bn", "dropout",
                            "noise", "flatten", "softmax"], [8, 2, 3, 2, 4, 2, 3, 1, 1, 1, 1, 1])[0]
    else:
        kind = rng.choices(["dense", "act", "bn", "dropout", "noise", "reshape", "add", "sample", "softmax", "vconcat"],
                           [8, 3, 1, 1, 1, 2, 1, 2, 1, 4])[0]
    n = None
    if kind == "conv":
        n = conv_layer(rng, g, t)
        if n and rng.random() < 0.25:
            n = g.add("batchnorm", [n]) or n
        if n and rng.random() < 0.75:
            n = add_act(rng, g, n)
    elif kind == "conv_t":
        n = conv_t_layer(rng, g, t)
    elif kind == "pool":
        n = pool_layer(rng, g, t)
    elif kind == "upsample":
        r = rng.random()
        n = g.add("upsample", [t], factor=rng.choice([2, 2, 3]),
                  **({"mode": "nearest"} if r < 0.2 else {"mode": "bilinear"} if r < 0.5 else {}))
    elif kind == "concat":
        n = concat_layer(rng, g, pool, t)
    elif kind == "vconcat":
        n = vector_concat(rng, g, pool, t)
    elif kind == "add":
        n = add_layer(rng, g, pool, t)
    elif kind == "act":
        n = add_act(rng, g, t)
    elif kind == "softmax":
        n = g.add("softmax", [t]) if t.shape[-1] > 1 else None   # over one channel: the constant 1
    elif kind == "bn":
        a = {}
        if rng.random() < 0.4:
            a = {"momentum": rng.choice([0.2, 0.5]), "eps": rng.choice([1e-3, 1e-4])}
        n = g.add("batchnorm", [t], **a)
    elif kind == "dropout":
        n = g.add("dropout", [t], rate=rng.choice([0.1, 0.25, 0.5]))
    elif kind == "noise":
        a = {"stddev": rng.choice([0.05, 0.1, 0.3])}
        if rng.random() < 0.5:
            a.update({"min": rng.choice([-1, 0]), "max": rng.choice([1, 2])})
        n = g.add("gaussian_noise", [t], **a)
    elif kind == "flatten":
        n = g.add("flatten", [t])
    elif kind == "dense":
        n = g.add("dense", [t], units=rng.choice([1, 2, 4, 7, 8, 16, 32]), **no_bias(rng))
        if n and rng.random() < 0.6:
            n = add_act(rng, g, n)
    elif kind == "reshape":
        n = reshape_layer(rng, g, t)
    elif kind == "sample":
        mu = g.add("dense", [t], units=rng.choice([2, 4, 8]))
        lv = g.add("dense", [t], units=mu.shape[0]) if mu else None
        n = g.add("sample", [mu, lv]) if lv else None
        if n:
            g.losses.append((rng.choice([1, 0.5, 0.1]), "kl_normal", [mu, lv], {}))
    if n is not None:
        pool.append(n)
    return n


def head(rng, g, t, shape, final):
    """Layers from t to a tensor of shape, ending in the activation final (or none)."""
    if len(shape) == 3:
        if image(t):
            r = resize_free(rng, g, t, shape[:2]) if rng.random() < 0.7 else None
            if r is None and t.shape[0] * 2 == shape[0] and t.shape[1] * 2 == shape[1]:
                r = g.add("conv_transpose", [t], filters=rng.choice([4, 8]), k=3, stride=2, padding="same")
            if r is not None and r.shape[:2] == shape[:2]:
                n = g.add("conv", [r], filters=shape[2], k=rng.choice([1, 3, 5]), stride=1, padding="same")
                return g.add(final, [n]) if final else n
        t = vector_of(rng, g, t)
        if rng.random() < 0.5:
            t = add_act(rng, g, g.add("dense", [t], units=rng.choice([8, 16])), ["relu", "tanh", "elu"])
        n = g.add("dense", [t], units=prod(shape))
        n = g.add("reshape", [n], shape=list(shape))
        return g.add(final, [n]) if final else n
    t = vector_of(rng, g, t)
    n = g.add("dense", [t], units=shape[0])
    return g.add(final, [n]) if final else n


def gen_input(rng, spec):
    if rng.random() < 0.75:
        h = rng.choice([4, 6, 8, 8, 12, 16])
        w = h if rng.random() < 0.75 else rng.choice([4, 8, 12])
        shape = (h, w, rng.choice([1, 1, 2, 3, 4]))
    else:
        shape = (rng.choice([6, 12, 16, 24, 49]),)
    spec.in_type = rng.choice(["f32", "f32", "u8", "u16", "i16"])
    return spec.g.add("input", [], shape=shape)


def gen_target(rng, spec, x):
    kind = rng.choices(["none", "image", "classes", "classmap"], [4, 2, 2, 2 if image(x) else 0])[0]
    if kind == "image":
        shape = x.shape if len(x.shape) == 1 or rng.random() < 0.5 else x.shape[:2] + (rng.choice([1, 2, 3]),)
        spec.target = ("image", shape)
    elif kind in ("classes", "classmap"):
        k = rng.choice([2, 3, 5])
        labels = sorted(rng.sample(range(0, 20), k))
        if kind == "classmap" and x.shape[0] == x.shape[1] >= 8 and rng.random() < 0.5:
            spec.tiles = True     # synthetic land-cover tiles: labels 1-6, 15 no data
            labels = sorted(rng.sample(range(1, 7), min(k, 6)))
        ignore = rng.choice([None, 255, 15]) if 15 not in labels else rng.choice([None, 255])
        shape = x.shape[:2] if kind == "classmap" else ()
        spec.target = ("classes", shape, labels, ignore)
    if spec.target:
        return spec.g.add("target", [], shape=spec.target[1] if spec.target[0] == "image" else spec.target[1] or (1,))
    return None


def gen_losses(rng, spec, x, tgt, pool):
    g = spec.g
    trunk = pick(rng, pool, recent=0.9)
    reduce = rng.choice([{}, {}, {"reduce": "sum"}, {"reduce": "mean"}])
    if spec.target and spec.target[0] == "classes":
        k = len(spec.target[2])
        out = head(rng, g, trunk, tuple(spec.target[1]) + (k,), None)
        kind = rng.choice(["softmax_xent", "softmax_xent", "softmax_xent", "focal", "dice", "jaccard"])
        a = dict(reduce) if kind in ("softmax_xent", "focal") else {}
        w = rng.random()
        if w < 0.2:
            a["weights"] = [rng.choice([0.5, 1, 2]) for _ in range(k)]
        elif w < 0.3:
            a["weights"] = "auto"
        if kind == "focal" and rng.random() < 0.5:
            a["gamma"] = rng.choice([0, 0.5, 1, 3])
        if kind in ("dice", "jaccard") and rng.random() < 0.5:
            a["smooth"] = rng.choice([0.5, 1])
        g.losses.insert(0, (1, kind, [out, tgt], a))
    else:
        ref = tgt if tgt else x
        kind = rng.choice(["mse", "bce"])
        final = "sigmoid" if kind == "bce" else rng.choice([None, "sigmoid", "tanh", "relu"])
        out = head(rng, g, trunk, ref.shape, final)
        g.losses.insert(0, (1, kind, [out, ref], reduce))
    used = g.uses()
    frozen = any(mode == "frozen" for _, _, _, mode in spec.imports)
    for n in g.nodes:   # every value that trains reaches the loss: a dangling one gets an l1 term
        if used[n.id] == 0 and n.op not in ("input", "target") and n is not out and trains(n, frozen):
            g.losses.append((rng.choice([0.01, 0.1, -0.01]), "l1", [n], {}))
    if rng.random() < 0.25:
        sig = [n for n in g.nodes if n.op == "sigmoid" and len(n.shape) == 1 and trains(n, frozen)]
        if sig:
            g.losses.append((rng.choice([0.1, 0.5]), "kl_sparsity", [rng.choice(sig)],
                             {"rho": rng.choice([0.05, 0.2])} if rng.random() < 0.5 else {}))
    if rng.random() < 0.2:
        g.losses.append((rng.choice([1e-4, 1e-3]), "l2", [], {}))


def gen_optimizer(rng):
    kind = rng.choice(["sgd", "adam", "adamw"])
    args = []
    if kind == "sgd":
        if rng.random() < 0.2:
            return "sgd"
        lr = rng.choice([0.01, 0.005])
        args = [str(lr)] if rng.random() < 0.5 else [f"lr = {lr}"]
        momentum = rng.choice([None, 0, 0.5, 0.9])
        if momentum is not None:
            args.append(f"momentum = {momentum}")
        if momentum != 0 and rng.random() < 0.3:
            args.append(f"nesterov = {rng.choice(['true', 'true', 'false'])}")
    else:
        args = [f"lr = {rng.choice(['1e-3', '2e-3', '0.0005'])}"]
        if rng.random() < 0.3:
            args.append(f"beta1 = {rng.choice([0.8, 0.9])}, beta2 = {rng.choice([0.99, 0.999])}")
        if rng.random() < 0.2:
            args.append("eps = 1e-6")
    if rng.random() < 0.3:
        args.append(f"weight_decay = {rng.choice([0, 0.01, 0.1])}")
    sched = rng.choice(["", "constant", "step(every = 1, gamma = 0.5)", "step(2, 0.9)", "exponential(0.9)",
                        "exponential(gamma = 0.95)", "cosine", "cosine(min_lr = 1e-5)", "cosine(1e-6)",
                        "plateau", "plateau(0.5, 1)", "plateau(factor = 0.2, patience = 0)"])
    if sched:
        args.append(f"schedule = {sched}")
    return f"{kind}({', '.join(args)})"


def gen_steering(rng):
    """The settings that steer a run: warm-up, clipping, accumulation, early stopping."""
    lines = []
    if rng.random() < 0.15:
        lines.append(rng.choice(["warmup 2", "warmup epochs = 1", "warmup steps = 1, epochs = 1"]))
    if rng.random() < 0.15:
        lines.append(rng.choice(["clip 1.0", "clip norm = 0.01"]))
    if rng.random() < 0.15:
        lines.append(rng.choice(["accumulate 2", "accumulate 3", "accumulate batches = 2"]))
    if rng.random() < 0.1:
        lines.append(rng.choice(["stop patience = 2", "stop 1, 0.01"]))
    return lines


# The synthetic tile layers and their bands, to stack into an input of c channels.
def tile_layers(rng, c):
    if c == 4 and rng.random() < 0.5:
        return ["naip-new"] if rng.random() < 0.5 else []       # [] is the default, naip-new
    if c <= 4:
        return [f"naip-old:1-{c}" if c > 1 else "naip-old:2-2"]
    return ["naip-new", f"landsat-leaf-off:1-{c - 4}"]


def gen_data(rng, spec, x):
    if spec.tiles:
        return {"source": "synthetic_landcover", "layers": tile_layers(rng, x.shape[2]),
                "augment": rng.sample(["flip(both)", "rotate(90)", "flip(vertical)"], rng.choice([0, 1, 2])),
                "normalize": rng.choice(["", "standardize"]), "patch": x.shape[0] if rng.random() < 0.5 else None}
    d = {"source": "image_pairs" if spec.target and spec.target[0] == "image" else "idx"}
    if not spec.target and image(x) and x.shape[2] in (1, 3) and rng.random() < 0.3:
        d["source"] = "images"   # a folder of PNG images, each its own target
    aug = []
    if image(x) and rng.random() < 0.4:
        choices = ["shift(1)", "rotate(10)", "zoom(0.1)", "flip(horizontal)", "flip(vertical)", "flip(both)", "flip"]
        aug = rng.sample(choices, rng.choice([1, 2]))
    d["augment"] = aug
    bce_on_input = any(k == "bce" for _, k, _, _ in spec.g.losses)
    d["normalize"] = "scale(1 / 255)" if bce_on_input else rng.choice(["", "scale(1 / 255)", "standardize",
                                                                        "scale(2 / 255, -1)"])
    return d


def chains(g, used, fixed):
    """Maximal runs of one-input layers that a block can hold: each inner value used once."""
    out, seen = [], set()
    for n in reversed(g.nodes):
        if n.id in seen or len(n.ins) != 1 or n.op in ("input", "target", "import"):
            continue
        chain = [n]
        while True:
            p = chain[0].ins[0]
            if len(p.ins) == 1 and used[p.id] == 1 and p.id not in fixed and p.op not in ("import",):
                chain.insert(0, p)
            else:
                break
        seen.update(c.id for c in chain)
        out.append(chain)
    return out


def choose_blocks(rng, spec, fixed, force=None):
    """Turns some chains into blocks (single-expression, multi-statement, nested)."""
    g = spec.g
    used = g.uses()
    for chain in chains(g, used, fixed):
        if force is not None:
            if chain[-1] is not force:
                continue
        elif rng.random() > 0.3:
            continue
        if len(chain) > 4:
            chain = chain[-4:]
        fnode = None if force is not None else next((c for c in chain if c.op in ("conv", "dense", "conv_transpose")), None)
        b = {"name": force and "encoder" or f"blk{len(spec.blocks)}", "nodes": chain,
             "form": rng.choice(["expr", "body"]), "fparam": fnode, "fdefault": rng.random() < 0.5, "inner": None}
        if len(chain) >= 2 and rng.random() < 0.4 and force is None:
            j = rng.randint(1, len(chain) - 1)
            inner = {"name": f"blk{len(spec.blocks)}i", "nodes": chain[:j], "form": rng.choice(["expr", "body"]),
                     "fparam": None, "fdefault": False, "inner": None}
            b["inner"] = inner
            if fnode is not None and fnode in chain[:j]:
                b["fparam"] = None
        spec.blocks.append(b)


def generate(seed, name=None, parent=None):
    """One random valid spec (and, for an import case, the parent it imports from)."""
    rng = random.Random(seed)
    spec = Spec(name or f"g{seed}")
    spec.batch = rng.choice([2, 3, 4])
    g = spec.g
    if parent is not None:
        x = g.add("input", [], shape=parent.g.nodes[0].shape)
        spec.in_type = parent.in_type
    else:
        x = gen_input(rng, spec)
    tgt = gen_target(rng, spec, x)
    pool = [x]
    enc = None
    if parent is not None:
        blk = parent.blocks[0]
        enc = g.add("import", [x], block="encoder", shape=blk["nodes"][-1].shape, in_shape=x.shape)
        pool.append(enc)
        w = rng.choice(["weights", "frozen", "none"])
        spec.imports.append(("encoder", parent.name + ".ae", f"{parent.name}_run/best.ckpt" if w != "none" else None,
                             "frozen" if w == "frozen" else rng.choice(["", "trainable"]) if w == "weights" else ""))
    if rng.random() < 0.25 and image(x):   # a skip of the input through layers without parameters
        p = resize_free(rng, g, g.add("maxpool", [x], size=2) or x, x.shape[:2]) if x.shape[0] % 2 == 0 else None
        if p is not None and p is not x:
            pool.append(p)
    for _ in range(rng.randint(1, 6)):
        random_layer(rng, g, pool)
    if parent is None and name and name.endswith("_parent"):
        # the block that children import: a chain from x, called once
        t = conv_layer(rng, g, x) if image(x) else g.add("dense", [x], units=rng.choice([4, 8]))
        t = add_act(rng, g, t, ["relu", "sigmoid", "tanh"])
        pool.append(t)
        enc = t
    if enc is not None:
        pool = [n for n in pool if n is x or n.id >= enc.id] + [enc]
    gen_losses(rng, spec, x, tgt, pool)
    lat = [n for n in g.nodes if n.op not in ("input", "target") and n.id != g.losses[0][2][0].id and not data_view(n)]
    if lat and rng.random() < 0.5:
        g.latent = rng.choice(lat)
    fixed = {n.id for _, _, args, _ in g.losses for n in args}
    if g.latent:
        fixed.add(g.latent.id)
    if name and name.endswith("_parent"):
        choose_blocks(rng, spec, fixed - {enc.id}, force=enc)
        if not spec.blocks or spec.blocks[0]["nodes"][0].ins[0] is not x:
            return None
    else:
        choose_blocks(rng, spec, fixed)
    spec.optimizer = gen_optimizer(rng) if rng.random() < 0.9 else ""   # "" is adam's default
    spec.steering = gen_steering(rng)
    spec.data = gen_data(rng, spec, x)
    if rng.random() < 0.3:
        convs = [n.a["filters"] for n in g.nodes if n.op == "conv"]
        if convs:
            spec.numbers[rng.choice(convs)] = "nf"
    return spec


# ---- rendering: the graph as spec text ----------------------------------------------
def fmt(v):
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return "[" + ", ".join(fmt(i) for i in v) + "]"
    if isinstance(v, float) and v == int(v) and abs(v) < 1e6:
        return str(int(v)) if v != 1.0 else "1.0"
    return repr(v)


class Renderer:
    def __init__(self, spec):
        self.s, self.rng = spec, random.Random(spec.name)
        self.g = spec.g
        self.in_block = False
        self.call_of = {}           # last node of a block chain -> the block
        for b in spec.blocks:
            self.call_of[b["nodes"][-1].id] = b
            if b["inner"]:
                self.call_of[b["inner"]["nodes"][-1].id] = b["inner"]

    def value(self, n, key, v, fparam):
        if fparam is not None and n is fparam and key in ("filters", "units"):
            return "f"
        if self.in_block:    # a block sees only its parameters, not the model's numbers
            return fmt(v)
        if key in ("filters", "units") and v in self.s.numbers:
            return self.s.numbers[v]
        if key in ("filters", "units") and v * 2 in self.s.numbers:
            return f"{self.s.numbers[v * 2]} / 2"
        return fmt(v)

    def args(self, n, fparam):
        order, dflt = ARGS[n.op], DEFAULTS.get(n.op, {})
        parts, positional = [], True
        for key in order:
            if key not in n.a:
                positional = False
                continue
            v = n.a[key]
            if key in dflt and dflt[key] == v and self.rng.random() < 0.5:
                positional = False
                continue
            text = self.value(n, key, v, fparam)
            if positional and self.rng.random() < 0.6:
                parts.append(text)
            else:
                positional = False
                parts.append(f"{key} = {text}" if self.rng.random() < 0.5 else f"{key}={text}")
        return parts

    def expr(self, n, env, scope_f=None, inside=None):
        """n as an expression: a bound name, a block call, or the layer call itself. Inside
        a block body (inside set) the nested block's call comes in through env."""
        if n.id in env:
            return env[n.id]
        b = self.call_of.get(n.id)
        if b is not None and inside is None:
            first = b["nodes"][0].ins[0]
            src = self.expr(first, env, scope_f, inside)
            extra = []
            if b["fparam"] is not None and not (b["fdefault"] and b["fparam"].a.get("filters", b["fparam"].a.get("units")) == 8):
                extra.append(fmt(b["fparam"].a.get("filters", b["fparam"].a.get("units"))))
            if self.rng.random() < 0.2:    # by keyword
                return f"{b['name']}({', '.join([f'in = {src}'] + [f'f = {v}' for v in extra])})"
            return self.call(b["name"], src, extra)
        if n.op == "import":
            return self.call("encoder", self.expr(n.ins[0], env, scope_f, inside), [])
        if n.op in ("concat", "add", "sample"):
            return f"{n.op}({', '.join(self.expr(i, env, scope_f, inside) for i in n.ins)})"
        return self.call(n.op, self.expr(n.ins[0], env, scope_f, inside), self.args(n, scope_f))

    def call(self, fn, src, args):
        if self.rng.random() < 0.6:
            return f"{src} |> {fn}({', '.join(args)})" if args or self.rng.random() < 0.5 else f"{src} |> {fn}"
        return f"{fn}({', '.join([src] + args)})"

    def block(self, b):
        self.in_block = True
        try:
            return self.block_lines(b)
        finally:
            self.in_block = False

    def block_lines(self, b):
        lines = []
        if b["inner"]:
            lines += self.block_lines(b["inner"])
        first = b["nodes"][0].ins[0]
        env = {first.id: "in"}
        params = "in"
        if b["fparam"] is not None:
            params += ", f = 8" if b["fdefault"] else ", f"
        if b["inner"]:
            inner = b["inner"]
            last = inner["nodes"][-1]
            extra = []
            if inner["fparam"] is not None:
                extra.append(fmt(inner["fparam"].a.get("filters", inner["fparam"].a.get("units"))))
            env[last.id] = self.call(inner["name"], "in", extra) if b["form"] == "expr" else "a0"
        nodes = b["nodes"][len(b["inner"]["nodes"]):] if b["inner"] else b["nodes"]
        ctx = {"inner_of": b["inner"]}
        if b["form"] == "expr":
            lines.append(f"block {b['name']}({params}) = {self.expr(nodes[-1], env, b['fparam'], ctx)}")
        else:
            lines.append(f"block {b['name']}({params}) {{")
            if b["inner"]:
                lines.append(f"  a0 = {self.call(b['inner']['name'], 'in', [fmt(b['inner']['fparam'].a.get('filters', b['inner']['fparam'].a.get('units')))] if b['inner']['fparam'] is not None else [])}")
            for i, n in enumerate(nodes[:-1]):
                if self.rng.random() < 0.5:
                    lines.append(f"  a{i + 1} = {self.expr(n, env, b['fparam'], ctx)}")
                    env[n.id] = f"a{i + 1}"
            lines.append(f"  return {self.expr(nodes[-1], env, b['fparam'], ctx)}")
            lines.append("}")
        return lines

    def render(self):
        s, g = self.s, self.g
        used = g.uses()
        inside = {c.id for b in s.blocks for c in b["nodes"][:-1]}
        if any(b["inner"] for b in s.blocks):
            inside |= {b["inner"]["nodes"][-1].id for b in s.blocks if b["inner"]}
        named = {n.id for _, _, args, _ in g.losses for n in args}
        if g.latent:
            named.add(g.latent.id)
        env = {}
        body = []
        for n in g.nodes:
            if n.op == "input":
                env[n.id] = "x"
            elif n.op == "target":
                env[n.id] = "t"
        for n in g.nodes:
            if n.op in ("input", "target") or n.id in inside:
                continue
            bind = used[n.id] != 1 or n.id in named or self.rng.random() < 0.35 or len(n.ins) > 1 and self.rng.random() < 0.5
            if bind:
                text = self.expr(n, env)
                nm = f"v{n.id}"
                body.append(("latent " if n is g.latent else "") + f"{nm} = {text}")
                env[n.id] = nm
        out = ["# generated by tests/specgen/specgen.py"]
        for blk, file, weights, mode in s.imports:
            line = f'import {blk} from "{file}"'
            if weights:
                line += f' weights "{weights}"'
            if mode:
                line += f" {mode}"
            out.append(line)
        out.append(f"model {s.name} {{")
        for v, nm in s.numbers.items():
            out.append(f"  {nm} = {v}")
        x = g.nodes[0]
        out.append(f"  input x: {s.in_type}[{', '.join(str(d) for d in x.shape)}]")
        if s.target:
            if s.target[0] == "image":
                out.append(f"  target t: f32[{', '.join(str(d) for d in s.target[1])}]")
            else:
                _, shape, labels, ignore = s.target
                dims = f"[{', '.join(str(d) for d in shape)}]" if shape else ""
                cls = ", ".join(f"{lab} c{lab}" for lab in labels)
                out.append(f"  target t: classes{dims} {{ {cls} }}" + (f" ignore {ignore}" if ignore is not None else ""))
        out.append(f"  batch {s.batch}")
        out.append("  epochs 1")
        for b in s.blocks:
            out += ["  " + line for line in self.block(b)]
        out += ["  " + line for line in body]
        out.append("  loss " + self.loss(env))
        if s.optimizer:
            out.append(f"  optimizer {s.optimizer}")
        out += ["  " + line for line in s.steering]
        out += self.data()
        out.append("}")
        return "\n".join(out) + "\n"

    def loss(self, env):
        terms = []
        text = ""
        for w, kind, args, a in self.g.losses:
            call = f"{kind}({', '.join([env[n.id] for n in args] + [f'{k} = {fmt(v)}' for k, v in a.items()])})"
            term = call if abs(w) == 1 else f"{fmt(abs(w))} * {call}"
            text += (" - " if w < 0 else " + ") + term if text else ("-" if w < 0 else "") + term
        if self.rng.random() < 0.1 and len(terms) > 1:
            text = f"({text}) / 2"
        return text

    def data(self):
        d = self.s.data
        names = 'train = "train-x.idx", train_labels = "train-y.idx", test = "test-x.idx", test_labels = "test-y.idx"'
        if d["source"] == "synthetic_landcover":   # four tiles: one for validation, three give three steps
            names = f"tiles = 4, tile_size = 16, patches_per_tile = {self.s.batch}"
            if d["layers"]:
                names += ", layers = [" + ", ".join(f'"{v}"' for v in d["layers"]) + "]"
            if d["patch"]:
                names += f", patch = {d['patch']}"
        if d["source"] == "images":
            names = 'train = "train-x", test = "test-x"'
        out = ["  data {", f"    source {d['source']}({names})"]
        if d.get("augment"):
            out.append(f"    augment {', '.join(d['augment'])}")
        if d.get("normalize"):
            out.append(f"    normalize {d['normalize']}")
        out.append("    validation 0.25")
        out.append("  }")
        return out


def render(spec):
    return Renderer(spec).render()


# ---- running one spec through every stage -------------------------------------------
class Failure(Exception):
    def __init__(self, stage, message):
        super().__init__(f"{stage}: {message}")
        self.stage, self.message = stage, message


def sh(args, cwd, stage, env=None, ok=(0,)):
    e = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    e.update(env or {})
    try:
        r = subprocess.run(args, cwd=cwd, env=e, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure(stage, f"timed out after {STEP_TIMEOUT} s: {' '.join(args)}")
    if r.returncode not in ok:
        how = f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
        raise Failure(stage, f"{how}: {' '.join(args)}\n{(r.stdout + r.stderr)[-3000:]}")
    return r


def descriptor(model_c):
    """The data shapes the compiler decided, read from the generated descriptor."""
    text = open(model_c).read()

    def ints(field):
        m = re.search(r"\." + field + r" = \{([^}]*)\}", text)
        return [int(v) for v in m.group(1).split(",") if v.strip()] if m else []

    def one(field):
        m = re.search(r"\." + field + r" = (-?\w+)", text)
        return m.group(1) if m else None
    return {"batch": int(one("batch")), "in_rank": int(one("in_rank")), "in_shape": ints("in_shape"),
            "in_size": int(one("in_size")), "target": one("target_kind"),
            "target_rank": int(one("target_rank") or 0), "target_shape": ints("target_shape"),
            "target_size": int(one("target_size") or 0), "classes": ints("class_ids"),
            "ignore": int(one("ignore_label") or -1), "source": one("kind")}


def write_idx(path, dims, values):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, len(dims)))
        f.write(struct.pack(">" + "i" * len(dims), *dims))
        f.write(bytes(values))


def write_png(path, h, w, c, values):
    """An 8-bit grey (c 1) or RGB (c 3) PNG on zlib alone."""
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
    row = w * c
    raw = b"".join(b"\0" + bytes(values[y * row:(y + 1) * row]) for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def random_bytes(rng, n):
    """n random bytes; a million and more at once (a mutant's 65537 channels: a value at a time
    took a minute)."""
    return rng.randbytes(n) if n >= 1 << 20 else [rng.randrange(256) for _ in range(n)]


def write_data(d, folder, n, rng):
    ins = d["in_shape"][:d["in_rank"]]
    if d["source"] == "AERT_DATA_IMAGES":   # folders train-x/ and test-x/ of PNG images
        for split in ("train", "test"):
            os.makedirs(os.path.join(folder, f"{split}-x"), exist_ok=True)
            for i in range(n):
                write_png(os.path.join(folder, f"{split}-x", f"{i:04d}.png"), ins[0], ins[1], ins[2],
                          [rng.randrange(256) for _ in range(d["in_size"])])
        return
    for split in ("train", "test"):
        write_idx(os.path.join(folder, f"{split}-x.idx"), [n] + ins, random_bytes(rng, n * d["in_size"]))
        if d["target"] == "AERT_TARGET_IMAGE":
            ts = d["target_shape"][:d["target_rank"]]
            vals = random_bytes(rng, n * d["target_size"])
            write_idx(os.path.join(folder, f"{split}-y.idx"), [n] + ts, vals)
        elif d["target"] == "AERT_TARGET_CLASSES":
            ts = d["target_shape"][:d["target_rank"]]
            pool = d["classes"] + ([d["ignore"]] if d["ignore"] >= 0 else [])
            vals = [rng.choice(pool) if rng.random() < 0.95 else 77 for _ in range(n * d["target_size"])]
            write_idx(os.path.join(folder, f"{split}-y.idx"), [n] + ts, vals)
        else:
            write_idx(os.path.join(folder, f"{split}-y.idx"), [n], [rng.randrange(10) for _ in range(n)])


def finite_log(csv):
    """None when every logged loss is finite. Metrics (accuracy, IoU) are NaN by design where
    they are undefined: a validation split whose labels are all ignored counts nothing."""
    lines = [line.split(",") for line in open(csv).read().split("\n") if line]
    if len(lines) < 2:
        return "no epoch was logged"
    losses = [i for i, h in enumerate(lines[0]) if i >= 2 and "accuracy" not in h and "iou" not in h]
    for r in lines[1:]:
        for i in losses:
            if not math.isfinite(float(r[i])):
                return f"the logged {lines[0][i]} is {r[i]}: {','.join(r)}"
    return None


def run_spec(path, folder, allow_divergence=False):
    """Every stage for the spec at path (its imports beside it). Raises Failure."""
    m = re.search(r"^model (\w+)", open(path).read(), re.M)
    name = m.group(1) if m else os.path.splitext(os.path.basename(path))[0]
    sh([AEC, "check", path], folder, "check")
    gen = os.path.join(folder, "gen")
    sh([AEC, "build", "--no-compile", "--out", gen, path], folder, "build")
    summary = json.loads(sh([AEC, "summary", "--json", path], folder, "check").stdout)
    if summary["totals"]["flops_train_step"] > HEAVY_FLOPS:
        model_o = os.path.join(gen, "model.o")   # the flags tests/gradcheck/run.sh gives model.o
        sh([os.environ.get("CC", "cc"), "-O3", "-march=native", "-fopenmp", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
            "-DAEC_NO_MAIN", "-I" + os.path.join(ROOT, "runtime"), "-I" + gen, "-c", "-o", model_o,
            os.path.join(gen, "model.c")], folder, "build")
    else:
        sh([os.path.join(ROOT, "tests/reference/run.sh"), path], ROOT, "reference",
           {"AEC_CHECK_OUT": os.path.join(folder, "ref")})
        grad = os.path.join(folder, "grad")
        sh([os.path.join(ROOT, "tests/gradcheck/run.sh"), path], ROOT, "gradcheck",
           {"AEC_CHECK_OUT": grad, "AEC_GRADCHECK_F32_O": os.path.join(OBJ, "gradcheck_f32.o"),
            "AEC_GRADCHECK_OPT": "-O0"})
        # the model.o the gradient check compiled with the trainer's flags (-Werror, -O3
        # -march=native: a build failure after a passing check fails the gradcheck stage)
        model_o = os.path.join(grad, os.path.splitext(os.path.basename(path))[0], "model.o")
    # The trainer: model.o linked as `aec build` links it, around the main that model.c has
    # without AEC_NO_MAIN.
    trainer = os.path.join(folder, "bin", name)
    os.makedirs(os.path.dirname(trainer), exist_ok=True)
    sh([os.environ.get("CC", "cc"), "-fopenmp", "-o", trainer, os.path.join(OBJ, "trainer_main.o"), model_o,
        os.path.join(ROOT, "build/libaert.a"), "-lopenblas", "-ltiff", "-lpng", "-lz", "-lpthread", "-lm"], folder, "build")
    d = descriptor(os.path.join(gen, "model.c"))
    write_data(d, folder, 4 * d["batch"], random.Random(name))
    run = os.path.join(folder, name + "_run")
    common = ["--data", folder, "--out", run, "--quiet", "--threads", "1"]
    try:
        sh([trainer, "train", "--epochs", "1", "--limit", str(4 * d["batch"])] + common, folder, "train")
    except Failure as f:
        if allow_divergence and "non-finite" in f.message:
            return
        raise
    bad = finite_log(os.path.join(run, "train.csv"))
    if bad:
        raise Failure("train", bad)
    sh([trainer, "eval"] + common, folder, "eval")


# ---- cases: a seed gives a spec (and maybe a parent), checked, minimised on failure ----
def case_specs(seed):
    """The specs of one case, parents first: [(name, Spec)]."""
    rng = random.Random(seed ^ 0x5EED)
    if rng.random() < 0.15:
        for tries in range(20):
            parent = generate(seed * 31 + tries, f"g{seed}_parent")
            if parent is not None:
                break
        if parent is not None:
            child = generate(seed, f"g{seed}", parent=parent)
            return [parent, child]
    return [generate(seed)]


def check_case(specs, folder, allow_divergence=False):
    """Runs the specs of a case in order (parents first); a Failure says which failed."""
    os.makedirs(folder, exist_ok=True)
    for i, s in enumerate(specs):
        path = os.path.join(folder, s.name + ".ae")
        with open(path, "w") as f:
            f.write(render(s))
        try:
            run_spec(path, folder, allow_divergence)
        except Failure as f:
            f.index = i
            raise


def minimise(specs, folder, stage):
    """Drops layers, loss terms, blocks and settings, and shrinks sizes, while the same
    stage still fails. Returns the smallest failing child spec found."""
    best = specs[-1]
    attempts = 0

    def fails(cand):
        nonlocal attempts
        attempts += 1
        tmp = os.path.join(folder, f"min{attempts}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            check_case(specs[:-1] + [cand], tmp)
        except Failure as f:
            return f.stage == stage and f.index == len(specs) - 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return False

    changed = True
    while changed and attempts < 80:
        changed = False
        for cand in shrink_candidates(best):
            if attempts >= 80:
                break
            if fails(cand):
                best, changed = cand, True
                break
    return best


def rebuild(spec):
    """Recomputes every shape; None when a rule no longer holds."""
    for n in spec.g.nodes:
        if n.ins:
            n.shape = infer(n.op, [i.shape for i in n.ins], n.a)
            if n.shape is None:
                return None
    for _, kind, args, _ in spec.g.losses:
        if kind in ("mse", "bce", "kl_normal") and args[0].shape != args[1].shape:
            return None
        if kind in CLASS_LOSSES and tuple(args[0].shape) != tuple(spec.target[1]) + (len(spec.target[2]),):
            return None
    return spec


def shrink_candidates(spec):
    import copy
    g = spec.g
    # 1. without blocks, numbers, augmentation, schedules, steering: the plain form first
    if spec.blocks or spec.numbers or spec.data.get("augment") or "schedule" in spec.optimizer or spec.steering:
        c = copy.deepcopy(spec)
        c.blocks, c.numbers, c.data["augment"], c.steering = [], {}, [], []
        c.optimizer = re.sub(r",?\s*schedule = [a-z]+(\([^)]*\))?", "", c.optimizer)
        yield c
    # 2. one loss term less (never the first)
    for i in range(1, len(g.losses)):
        c = copy.deepcopy(spec)
        del c.g.losses[i]
        yield from valid(c)
    # 3. one layer bypassed: its users read its first input instead
    for n in reversed(g.nodes):
        if not n.ins or n.op in ("import",):
            continue
        for src in n.ins:
            c = copy.deepcopy(spec)
            cn = c.g.nodes[n.id]
            csrc = c.g.nodes[src.id]
            for m in c.g.nodes:
                m.ins = [csrc if i is cn else i for i in m.ins]
            c.g.losses = [(w, k, [csrc if i is cn else i for i in args], a) for w, k, args, a in c.g.losses]
            if c.g.latent is cn:
                c.g.latent = None
            c.blocks = []
            yield from valid(c)
    # 4. smaller sizes: filters and units halved, batch 2
    for n in g.nodes:
        for key in ("filters", "units"):
            if key in n.a and n.a[key] > 1:
                c = copy.deepcopy(spec)
                c.g.nodes[n.id].a[key] = max(1, n.a[key] // 2)
                c.blocks = []
                yield from valid(c)
    if spec.batch > 2:
        c = copy.deepcopy(spec)
        c.batch = 2
        yield c


def chain_intact(b, used, named, nodes):
    """A block still holds a chain: its layers present, each inner value read once, by the next."""
    chain = b["nodes"]
    if any(n not in nodes for n in chain):
        return False
    for p, n in zip(chain, chain[1:]):
        if n.ins != [p] or used[p.id] != 1 or p.id in named:
            return False
    return b["inner"] is None or chain_intact(b["inner"], used, named, nodes)


def valid(c):
    """c without the values nothing reads any more, if its shapes still hold."""
    used = c.g.uses()
    keep = [n for n in c.g.nodes if n.op in ("input", "target") or used[n.id] > 0]
    while len(keep) != len(c.g.nodes):
        c.g.nodes = keep
        used = c.g.uses()
        keep = [n for n in c.g.nodes if n.op in ("input", "target") or used[n.id] > 0]
    for i, n in enumerate(c.g.nodes):
        n.id = i
    if c.g.latent is not None and c.g.latent not in c.g.nodes:
        c.g.latent = None
    used = c.g.uses()
    named = {n.id for _, _, args, _ in c.g.losses for n in args} | ({c.g.latent.id} if c.g.latent else set())
    c.blocks = [b for b in c.blocks if chain_intact(b, used, named, c.g.nodes)]
    if rebuild(c) is not None and all(fits(n.shape) for n in c.g.nodes):
        yield c


def save_found(text, stage, message, seed):
    """Keeps a failing spec in tests/specs/found/ (a parent it imports under its own name)."""
    os.makedirs(FOUND, exist_ok=True)
    if stage is None:
        name = re.search(r"^model (\w+)", text, re.M).group(1)
        with open(os.path.join(FOUND, name + ".ae"), "w") as f:
            f.write(text)
        return
    first = message.strip().split("\n")[0][:300]
    path = os.path.join(FOUND, f"{stage}_{seed}.ae")
    head = "".join(f"# {line}\n" for line in [f"found by tests/specgen/specgen.py (seed {seed}): the {stage} stage failed",
                                                first])
    with open(path, "w") as f:
        f.write(head + text)
    return path


def run_seed(seed, keep=False):
    """One case. Returns a result dict; a failure is minimised and saved."""
    folder = os.path.join(WORK, f"case{seed}")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        specs = case_specs(seed)
    except Exception as e:   # a bug of the generator is a failure too, not a crash of the run
        return {"seed": seed, "ok": False, "stage": "generator", "message": repr(e), "stats": {}}
    if any(s is None for s in specs):
        return {"seed": seed, "ok": True, "skipped": True, "stats": {}}
    stats = coverage(specs[-1])
    try:
        check_case(specs, folder)
    except Failure as f:
        specs = specs[:f.index + 1]       # a parent that fails is minimised on its own
        small = minimise(specs, os.path.join(WORK, f"min{seed}"), f.stage)
        for parent in specs[:-1]:
            save_found(render(parent), None, None, None)
        saved = save_found(render(small), f.stage, f.message, seed)
        return {"seed": seed, "ok": False, "stage": f.stage, "message": f.message, "saved": saved, "stats": stats}
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return {"seed": seed, "ok": True, "stats": stats}


# ---- mutants: one change to a valid spec; refused with a located error, or valid --------
LOCATED = re.compile(r"^\S+\.ae:\d+:\d+: error: ", re.M)


def mutate(text, rng):
    lines = text.split("\n")
    body = [i for i, line in enumerate(lines) if line.startswith("  ") and "source" not in line and
            not line.strip().startswith(("train", "#", "data", "}", "optimizer", "validation"))]
    i = rng.choice(body)
    line = lines[i]
    kinds = ["number", "name", "keyword", "drop"]
    rng.shuffle(kinds)
    for kind in kinds:
        if kind == "number":
            nums = list(re.finditer(r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?", line))
            if nums:
                m = rng.choice(nums)
                new = rng.choice(["0", "1", "2", "3", "7", "16", "-1", "0.5", "100", "1e-3", "65537"])
                lines[i] = line[:m.start()] + new + line[m.end():]
                return "\n".join(lines), f"line {i + 1}: number {m.group(0)} -> {new}"
        if kind == "name":
            ids = list(re.finditer(r"\b(v\d+|x|t|in|f|blk\d+i?|nf|a\d+)\b", line))
            if ids:
                m = rng.choice(ids)
                new = rng.choice(["x", "t", "v0", "v999", "in", m.group(0) + "_", "relu", "conv"])
                lines[i] = line[:m.start()] + new + line[m.end():]
                return "\n".join(lines), f"line {i + 1}: name {m.group(0)} -> {new}"
        if kind == "keyword":
            kws = list(re.finditer(r"\b(k|stride|padding|size|factor|rate|alpha|momentum|eps|stddev|min|max|units|filters|reduce|rho|weights)\s*=", line))
            if kws:
                m = rng.choice(kws)
                new = rng.choice(["k", "stride", "padding", "size", "kk", "rate", "units"])
                lines[i] = line[:m.start()] + new + " =" + line[m.end():]
                return "\n".join(lines), f"line {i + 1}: keyword {m.group(1)} -> {new}"
        if kind == "drop":
            args = list(re.finditer(r",\s*[^,()]+(?=[,)])", line))
            if args:
                m = rng.choice(args)
                lines[i] = line[:m.start()] + line[m.end():]
                return "\n".join(lines), f"line {i + 1}: dropped '{m.group(0).strip(', ')}'"
    return None, None


def run_mutant(seed):
    rng = random.Random(seed * 977 + 3)
    specs = case_specs(seed)
    if any(s is None for s in specs) or len(specs) > 1:
        return {"seed": seed, "ok": True, "skipped": True}
    text, what = mutate(render(specs[0]), rng)
    if text is None:
        return {"seed": seed, "ok": True, "skipped": True}
    folder = os.path.join(WORK, f"mut{seed}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, specs[0].name + ".ae")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([AEC, "check", path], capture_output=True, text=True, timeout=STEP_TIMEOUT)
    res = {"seed": seed, "ok": True, "mutation": what, "accepted": r.returncode == 0}
    if r.returncode == 1 and LOCATED.search(r.stderr) and "internal" not in r.stderr:
        shutil.rmtree(folder, ignore_errors=True)
        return res
    if r.returncode != 0:
        res.update(ok=False, stage="check-mutant",
                   message=f"{what}: exit status {r.returncode} without a located error\n{r.stderr[-2000:]}")
    else:
        try:
            run_spec(path, folder, allow_divergence=True)
        except Failure as f:
            res.update(ok=False, stage=f.stage + "-mutant", message=f"{what}: {f.message}")
    if not res["ok"]:
        res["saved"] = save_found(text, res["stage"], res["message"], f"m{seed}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return res


# ---- coverage: op pairs and skip patterns ------------------------------------------
def op_name(n):
    return {"input": "input", "target": "target"}.get(n.op, n.op)


def coverage(spec):
    pairs, skips, ops = set(), set(), set()
    for n in spec.g.nodes:
        ops.add(n.op)
        for i in n.ins:
            pairs.add(f"{op_name(i)}>{n.op}")
        if n.op in ("concat", "add"):
            kinds = sorted({"input" if i.op == "input" else "param-free from input" if param_free_from_input(i)
                            else "upsampled" if i.op == "upsample" else "same twice" if n.ins.count(i) > 1
                            else "computed" for i in n.ins})
            skips.add(f"{n.op}({', '.join(kinds)})")
    for w, kind, args, a in spec.g.losses:
        ops.add(f"loss {kind}" + (f" {a.get('reduce')}" if a.get("reduce") else "") + (" weighted" if w != 1 else ""))
        if "weights" in a:
            ops.add(f"{kind} weights=" + ("auto" if a["weights"] == "auto" else "list"))
    ops.add("optimizer " + spec.optimizer.split("(")[0])
    m = re.search(r"schedule = ([a-z]+)", spec.optimizer)
    ops.add("schedule " + (m.group(1) if m else "none"))
    ops.update(f"block {b['form']}" + (" nested" if b["inner"] else "") for b in spec.blocks)
    ops.update(f"import {mode or 'default'}{' weights' if w else ''}" for _, _, w, mode in spec.imports)
    if spec.target:
        ops.add(f"target {spec.target[0]}{' map' if spec.target[0] == 'classes' and spec.target[1] else ''}"
                f"{' ignore' if spec.target[0] == 'classes' and spec.target[3] is not None else ''}")
    ops.update(f"augment {a.split('(')[0]}" for a in spec.data.get("augment", []))
    ops.add("source " + spec.data["source"])
    if spec.data.get("normalize"):
        ops.add("normalize " + spec.data["normalize"].split("(")[0])
    return {"pairs": sorted(pairs), "skips": sorted(skips), "features": sorted(ops)}


# ---- the driver ---------------------------------------------------------------------
def report(results, mutants, seconds):
    pairs, skips, feats = set(), set(), set()
    for r in results:
        st = r.get("stats") or {}
        pairs.update(st.get("pairs", []))
        skips.update(st.get("skips", []))
        feats.update(st.get("features", []))
    checked = [r for r in results if not r.get("skipped")]
    bad = [r for r in results + mutants if not r["ok"]]
    acc = sum(1 for m in mutants if m.get("accepted"))
    refused = sum(1 for m in mutants if not m.get("skipped") and not m.get("accepted"))
    rate = len(checked) / seconds * 60 if seconds else 0
    print(f"specgen: {len(checked)} specs in {seconds:.0f} s ({rate:.0f} a minute), {len(pairs)} distinct op pairs, "
          f"{len(skips)} skip patterns, {len(feats)} features")
    print(f"specgen: skip patterns: {'; '.join(sorted(skips))}")
    if mutants:
        print(f"specgen: {len(mutants)} mutants: {refused} refused with a located error, {acc} accepted and run")
    for r in bad:
        print(f"FAIL seed {r['seed']}: {r['stage']}: {r['message'][:1500]}\n  minimised: {r.get('saved')}")
    return 1 if bad else 0


def found_one(p):
    """Every stage again for one kept spec (its parent first): None, or what failed."""
    folder = os.path.join(WORK, "found", os.path.basename(p)[:-3])
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    shutil.copy(p, folder)
    try:
        for dep in re.findall(r'^import \w+ from "([^"]+)"', open(p).read(), re.M):
            shutil.copy(os.path.join(FOUND, dep), folder)
            run_spec(os.path.join(folder, dep), folder)
        run_spec(os.path.join(folder, os.path.basename(p)), folder, allow_divergence="mutant" in p)
    except Failure as f:
        return str(f)
    return None


def run_found(jobs):
    paths = sorted(os.path.join(FOUND, f) for f in os.listdir(FOUND) if f.endswith(".ae") and
                   not f.endswith("_parent.ae")) if os.path.isdir(FOUND) else []
    with ProcessPoolExecutor(jobs) as ex:
        failures = list(ex.map(found_one, paths))
    for p, f in zip(paths, failures):
        if f:
            print(f"FAIL {p}: {f}")
    bad = sum(1 for f in failures if f)
    print(f"specgen: {len(paths)} kept specs of tests/specs/found/ pass again" if not bad else f"specgen: {bad} kept specs fail")
    return 1 if bad else 0


def harness_objects():
    """Compiles once what every spec's float gradient check and trainer link around its
    model.o: tests/gradcheck/gradcheck_f32.c and tests/specgen/trainer_main.c (neither
    depends on the model; each reaches it through its descriptor, aec_model)."""
    os.makedirs(OBJ, exist_ok=True)
    cc = os.environ.get("CC", "cc").split()
    for src, flags in (("tests/gradcheck/gradcheck_f32.c", ["-O2", "-Wno-unused-function"]),
                       ("tests/specgen/trainer_main.c", [])):
        obj = os.path.join(OBJ, os.path.basename(src)[:-2] + ".o")
        r = subprocess.run(cc + flags + ["-fopenmp", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                                         "-I" + os.path.join(ROOT, "runtime"), "-c", "-o", obj, os.path.join(ROOT, src)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"specgen: {src} did not compile:\n{r.stderr}", file=sys.stderr)
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--mutants", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--print", type=int, metavar="SEED")
    ap.add_argument("--keep", action="store_true", help="keep the folders of passing cases under build/specgen")
    ap.add_argument("--found", action="store_true")
    o = ap.parse_args()
    if o.print is not None:
        for s in case_specs(o.print):
            print(render(s) if s else "(no spec for this seed)")
        return 0
    if not os.access(AEC, os.X_OK):
        print(f"specgen: {AEC} is missing: run 'make all' first", file=sys.stderr)
        return 2
    os.makedirs(WORK, exist_ok=True)
    if not harness_objects():
        return 2
    if o.found:
        return run_found(o.jobs)
    start = time.time()
    results, mutants = [], []
    with ProcessPoolExecutor(o.jobs) as ex:
        if o.minutes:
            seed = int(time.time()) % 1000000 * 1000
            print(f"specgen: fresh seeds from {seed} for {o.minutes} minutes")
            while time.time() - start < o.minutes * 60:
                batch = list(range(seed, seed + 4 * o.jobs))
                seed += len(batch)
                results += ex.map(run_seed, batch)
                mutants += ex.map(run_mutant, batch[: len(batch) // 2])
        else:
            results = list(ex.map(run_seed, range(o.seed, o.seed + o.count), [o.keep] * o.count))
            mutants = list(ex.map(run_mutant, range(o.seed, o.seed + o.mutants)))
    return report(results, mutants, time.time() - start)


if __name__ == "__main__":
    sys.exit(main())
