#!/usr/bin/python3
"""PyTorch reference trainer for aec's specs/conv_ae.ae, dense_ae.ae and vae.ae.

Trains the same architecture the same way aec's generated trainer does, so that
aec's test loss can be compared against PyTorch's (the target: within 2%).

How it matches aec:
  * Models: layer for layer as in the specs; parameter counts are asserted.
    aec is channels-last (NHWC), so conv_ae's flatten permutes NCHW->NHWC first and
    its reshape([7,7,64]) reads the 3136 dense outputs as (H,W,C) then permutes to NCHW.
    Stride-2 3x3 convs use symmetric padding 1; upsample is nearest x2.
  * Init: He normal (std sqrt(2/fan_in)) for a conv/dense followed by relu, Glorot
    uniform for every other weight (fans k*k*in / k*k*out for convs), zero biases.
  * Data: Fashion-MNIST IDX images scaled by 1/255. aec holds out the LAST fraction of
    the 60000 training images (before shuffling) as validation: 0.1 when the spec says
    `validation 0.1` and also when it says nothing (compiler/sema.c defaults to 0.1),
    so the default here is 0.1 for all three models (--validation to change).
  * Each epoch: fresh random permutation, batches of the spec's size, last partial
    batch dropped; Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, constant lr.
  * Loss: conv_ae/dense_ae mean BCE per pixel; vae per-image summed BCE + KL(N(mu,
    exp(logvar)) || N(0,1)) summed over latent dims, averaged over the batch; BCE logs
    clamped at -100 (F.binary_cross_entropy). Evaluation uses z = mu for the vae.

Usage: /usr/bin/python3 bench/torch_reference.py --model conv_ae|dense_ae|vae
           [--epochs N] [--seed S] [--limit N] [--validation F]
"""
import argparse, gzip, json, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
SPEC = {"conv_ae": dict(batch=128, epochs=5, params=324545),
        "dense_ae": dict(batch=256, epochs=10, params=439728),
        "vae": dict(batch=256, epochs=10, params=474672)}


def load_idx_images(name):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h * w).astype(np.float32) / 255.0


def he(layer):        # followed by relu
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    nn.init.zeros_(layer.bias)
    return layer


def glorot(layer):    # linear / sigmoid / heads
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ConvAE(nn.Module):
    def __init__(self):
        super().__init__()
        conv = lambda i, o, s=1: nn.Conv2d(i, o, 3, stride=s, padding=1)
        self.enc = nn.Sequential(he(conv(1, 32)), nn.ReLU(), he(conv(32, 32, 2)), nn.ReLU(),
                                 he(conv(32, 64)), nn.ReLU(), he(conv(64, 64, 2)), nn.ReLU())
        self.latent = glorot(nn.Linear(7 * 7 * 64, 32))
        self.expand = he(nn.Linear(32, 7 * 7 * 64))
        self.dec = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), he(conv(64, 64)), nn.ReLU(),
                                 nn.Upsample(scale_factor=2, mode="nearest"), he(conv(64, 32)), nn.ReLU(),
                                 glorot(conv(32, 1)), nn.Sigmoid())

    def forward(self, x):                                   # x: (N, 784), HWC order with C=1
        h2 = self.enc(x.view(-1, 1, 28, 28))
        z = self.latent(h2.permute(0, 2, 3, 1).flatten(1))  # flatten in NHWC order, as aec
        d = F.relu(self.expand(z)).view(-1, 7, 7, 64).permute(0, 3, 1, 2)
        return self.dec(d).flatten(1), None


def mlp(sizes, last_sigmoid):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        layers += [glorot(nn.Linear(a, b))] if last else [he(nn.Linear(a, b)), nn.ReLU()]
    return nn.Sequential(*layers, *([nn.Sigmoid()] if last_sigmoid else []))


class DenseAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = mlp([784, 256, 64, 32], False)
        self.dec = mlp([32, 64, 256, 784], True)

    def forward(self, x):
        return self.dec(self.enc(x)), None


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(he(nn.Linear(784, 256)), nn.ReLU(), he(nn.Linear(256, 128)), nn.ReLU())
        self.mu, self.logvar = glorot(nn.Linear(128, 16)), glorot(nn.Linear(128, 16))
        self.dec = mlp([16, 128, 256, 784], True)

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(logvar / 2) * torch.randn_like(mu) if self.training else mu
        return self.dec(z), (mu, logvar)


def losses(model_name, y, x, extra):
    """(loss, [terms]) as the spec defines the loss."""
    if model_name != "vae":
        l = F.binary_cross_entropy(y, x)
        return l, [l]
    mu, logvar = extra
    rec = F.binary_cross_entropy(y, x, reduction="sum") / x.shape[0]
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    return rec + kl, [rec, kl]


@torch.no_grad()
def evaluate(args, model, x):
    model.eval()
    tot, terms, sq, n = 0.0, None, 0.0, x.shape[0]
    for s in range(0, n, 1000):
        xb = x[s:s + 1000]
        y, extra = model(xb)
        l, t = losses(args.model, y, xb, extra)
        k = xb.shape[0]
        tot += l.item() * k
        terms = [a + b.item() * k for a, b in zip(terms or [0.0] * len(t), t)]
        sq += ((y - xb) ** 2).sum().item()
    model.train()
    return tot / n, [t / n for t in terms], sq / (n * x.shape[1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, choices=SPEC)
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, help="use only the first N training and test images")
    p.add_argument("--validation", type=float, default=0.1, help="held-out fraction (aec: 0.1)")
    args = p.parse_args()
    spec = SPEC[args.model]
    epochs = args.epochs or spec["epochs"]
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)

    train = load_idx_images("train-images-idx3-ubyte.gz")
    test = load_idx_images("t10k-images-idx3-ubyte.gz")
    if args.limit:
        train, test = train[:args.limit], test[:args.limit]
    nval = int(len(train) * args.validation)
    train, val = torch.from_numpy(train[:len(train) - nval]), torch.from_numpy(train[len(train) - nval:])
    test = torch.from_numpy(test)

    model = {"conv_ae": ConvAE, "dense_ae": DenseAE, "vae": VAE}[args.model]()
    nparams = sum(q.numel() for q in model.parameters())
    assert nparams == spec["params"], (nparams, spec["params"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    B = spec["batch"]
    print(f"# {args.model}: {nparams} params, train {len(train)}, val {len(val)}, test {len(test)}, "
          f"batch {B}, epochs {epochs}, seed {args.seed}, torch {torch.__version__}", flush=True)

    t0 = time.time()
    for epoch in range(epochs):
        te = time.time()
        order = torch.randperm(len(train))
        nb = len(train) // B                     # last partial batch dropped
        tot, terms = 0.0, None
        for b in range(nb):
            xb = train[order[b * B:(b + 1) * B]]
            y, extra = model(xb)
            loss, t = losses(args.model, y, xb, extra)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
            terms = [a + c.item() for a, c in zip(terms or [0.0] * len(t), t)]
        line = f"epoch {epoch + 1} train_loss {tot / nb:.6f}"
        if args.model == "vae":
            line += f" (bce {terms[0] / nb:.4f} kl {terms[1] / nb:.4f})"
        if len(val):
            line += f" val_loss {evaluate(args, model, val)[0]:.6f}"
        print(line + f" {time.time() - te:.1f}s", flush=True)

    test_loss, test_terms, test_mse = evaluate(args, model, test)
    seconds = time.time() - t0
    out = {"model": args.model, "epochs": epochs, "test_loss": round(test_loss, 6),
           "test_mse": round(test_mse, 6), "seconds": round(seconds, 1),
           "torch": torch.__version__, "threads": 2}
    if args.model == "vae":
        out["test_bce"], out["test_kl"] = round(test_terms[0], 4), round(test_terms[1], 4)
    out.update(seed=args.seed, train=len(train), validation=len(val))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
