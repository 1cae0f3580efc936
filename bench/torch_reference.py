#!/usr/bin/python3
"""PyTorch reference trainer for aec's specs/conv_ae.ae, dense_ae.ae, vae.ae,
denoising_ae.ae and latent_classifier.ae.

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
    `validation 0.1` and also when it says nothing (compiler/sema/sema.c defaults to 0.1),
    so the default here is 0.1 for all three models (--validation to change).
  * Each epoch: fresh random permutation, batches of the spec's size, last partial
    batch dropped; Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, constant lr.
  * Loss: conv_ae/dense_ae mean BCE per pixel; vae per-image summed BCE + KL(N(mu,
    exp(logvar)) || N(0,1)) summed over latent dims, averaged over the batch; BCE logs
    clamped at -100 (F.binary_cross_entropy). Evaluation uses z = mu for the vae.
  * denoising_ae: Gaussian noise (stddev 0.3) on the input in training only, clipped to
    [0, 1], the clean image as the BCE target (aec's gaussian_noise is the identity
    outside training, so its eval test loss is the clean reconstruction loss, as here).
    Also reports, like `aec eval`, the PSNR (data range 1) of noisy test images and of
    their reconstructions against the clean ones (different noise draws from aec's).
    Padding 'same' for the stride-1 3x3 convs, maxpool 2, upsample nearest x2.
  * latent_classifier: conv_ae's encoder (trained first here with the conv_ae schedule,
    --encoder-epochs, the same seed), frozen; the head dense 64 relu, dropout 0.2,
    dense 10, softmax cross-entropy on the labels; batch 128, Adam 1e-3, 5 epochs, the
    last 10% of the training set held out. The frozen encoder is deterministic, so its
    latents are computed once. Reports test accuracy.

Usage: /usr/bin/python3 bench/torch_reference.py
           --model conv_ae|dense_ae|vae|denoising_ae|latent_classifier
           [--epochs N] [--seed S] [--limit N] [--validation F] [--encoder-epochs N]
"""
import argparse, gzip, json, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
SPEC = {"conv_ae": dict(batch=128, epochs=5, params=324545),
        "dense_ae": dict(batch=256, epochs=10, params=439728),
        "vae": dict(batch=256, epochs=10, params=474672),
        "denoising_ae": dict(batch=128, epochs=5, params=28353),
        "latent_classifier": dict(batch=128, epochs=5, params=2762, frozen=165376)}


def load_idx_labels(name):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


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


class DenoisingAE(nn.Module):
    NOISE = 0.3

    def __init__(self):
        super().__init__()
        conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1)
        self.enc = nn.Sequential(he(conv(1, 32)), nn.ReLU(), nn.MaxPool2d(2),
                                 he(conv(32, 32)), nn.ReLU(), nn.MaxPool2d(2))          # 7x7x32
        self.dec = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), he(conv(32, 32)), nn.ReLU(),
                                 nn.Upsample(scale_factor=2, mode="nearest"), he(conv(32, 32)), nn.ReLU(),
                                 glorot(conv(32, 1)), nn.Sigmoid())

    def forward(self, x, noisy=None):
        if noisy is None:
            noisy = (x + self.NOISE * torch.randn_like(x)).clamp(0, 1) if self.training else x
        return self.dec(self.enc(noisy.view(-1, 1, 28, 28))).flatten(1), None


class LatentClassifier(nn.Module):
    """The head; the frozen conv_ae encoder is applied once to all images beforehand."""
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(he(nn.Linear(32, 64)), nn.ReLU(), nn.Dropout(0.2), glorot(nn.Linear(64, 10)))

    def forward(self, z):
        return self.head(z), None


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
    if model_name == "latent_classifier":
        l = F.cross_entropy(y, x)
        return l, [l]
    if model_name != "vae":
        l = F.binary_cross_entropy(y, x)
        return l, [l]
    mu, logvar = extra
    rec = F.binary_cross_entropy(y, x, reduction="sum") / x.shape[0]
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    return rec + kl, [rec, kl]


@torch.no_grad()
def evaluate_classifier(model, z, labels):
    model.eval()
    logits, _ = model(z)
    loss = F.cross_entropy(logits, labels).item()
    acc = (logits.argmax(1) == labels).float().mean().item()
    model.train()
    return loss, acc


@torch.no_grad()
def denoise_psnr(model, x, seed):
    """PSNR (range 1) of noisy test images and of their reconstructions vs the clean ones."""
    model.eval()
    g = torch.Generator().manual_seed(seed + 12345)
    nsq, rsq = 0.0, 0.0
    for s in range(0, x.shape[0], 1000):
        xb = x[s:s + 1000]
        noisy = (xb + model.NOISE * torch.randn(xb.shape, generator=g)).clamp(0, 1)
        y, _ = model(xb, noisy)
        nsq += ((noisy - xb) ** 2).sum().item()
        rsq += ((y - xb) ** 2).sum().item()
    model.train()
    n = x.numel()
    return 10 * np.log10(n / nsq), 10 * np.log10(n / rsq)


def train_epochs(args, name, model, train, val, epochs, B, ytrain=None, yval=None):
    """aec's schedule: a fresh permutation per epoch, full batches only, Adam 1e-3."""
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad],
                           lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    for epoch in range(epochs):
        te = time.time()
        order = torch.randperm(len(train))
        nb = len(train) // B                     # last partial batch dropped
        tot, terms = 0.0, None
        for b in range(nb):
            idx = order[b * B:(b + 1) * B]
            xb = train[idx]
            y, extra = model(xb)
            loss, t = losses(name, y, xb if ytrain is None else ytrain[idx], extra)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
            terms = [a + c.item() for a, c in zip(terms or [0.0] * len(t), t)]
        line = f"{name} epoch {epoch + 1} train_loss {tot / nb:.6f}"
        if name == "vae":
            line += f" (bce {terms[0] / nb:.4f} kl {terms[1] / nb:.4f})"
        if len(val):
            if ytrain is None:
                line += f" val_loss {evaluate(name, model, val)[0]:.6f}"
            else:
                vl, va = evaluate_classifier(model, val, yval)
                line += f" val_loss {vl:.6f} val_accuracy {va:.4f}"
        print(line + f" {time.time() - te:.1f}s", flush=True)


@torch.no_grad()
def evaluate(model_name, model, x):
    model.eval()
    tot, terms, sq, n = 0.0, None, 0.0, x.shape[0]
    for s in range(0, n, 1000):
        xb = x[s:s + 1000]
        y, extra = model(xb)
        l, t = losses(model_name, y, xb, extra)
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
    p.add_argument("--encoder-epochs", type=int, help="latent_classifier: conv_ae's epochs (default 5)")
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

    if args.model == "latent_classifier":
        return classifier_main(args, spec, epochs, train, val, test)
    model = {"conv_ae": ConvAE, "dense_ae": DenseAE, "vae": VAE, "denoising_ae": DenoisingAE}[args.model]()
    nparams = sum(q.numel() for q in model.parameters())
    assert nparams == spec["params"], (nparams, spec["params"])
    B = spec["batch"]
    print(f"# {args.model}: {nparams} params, train {len(train)}, val {len(val)}, test {len(test)}, "
          f"batch {B}, epochs {epochs}, seed {args.seed}, torch {torch.__version__}", flush=True)

    t0 = time.time()
    train_epochs(args, args.model, model, train, val, epochs, B)
    test_loss, test_terms, test_mse = evaluate(args.model, model, test)
    seconds = time.time() - t0
    out = {"model": args.model, "epochs": epochs, "test_loss": round(test_loss, 6),
           "test_mse": round(test_mse, 6), "seconds": round(seconds, 1),
           "torch": torch.__version__, "threads": 2}
    if args.model == "vae":
        out["test_bce"], out["test_kl"] = round(test_terms[0], 4), round(test_terms[1], 4)
    if args.model == "denoising_ae":
        out["noisy_psnr"], out["recon_psnr"] = (round(v, 2) for v in denoise_psnr(model, test, args.seed))
    out.update(seed=args.seed, train=len(train), validation=len(val))
    print(json.dumps(out), flush=True)


def classifier_main(args, spec, epochs, train, val, test):
    labels = torch.from_numpy(load_idx_labels("train-labels-idx1-ubyte.gz"))
    test_labels = torch.from_numpy(load_idx_labels("t10k-labels-idx1-ubyte.gz"))
    if args.limit:
        labels, test_labels = labels[:args.limit], test_labels[:args.limit]
    ytrain, yval = labels[:len(train)], labels[len(train):]
    t0 = time.time()
    # Stage 1: conv_ae trained as bench's conv_ae run (same seed, schedule), then frozen.
    ae = ConvAE()
    assert sum(q.numel() for q in ae.parameters()) == SPEC["conv_ae"]["params"]
    enc_epochs = SPEC["conv_ae"]["epochs"] if args.encoder_epochs is None else args.encoder_epochs
    print(f"# latent_classifier: conv_ae encoder, {enc_epochs} epochs, seed {args.seed}", flush=True)
    train_epochs(args, "conv_ae", ae, train, val, enc_epochs, SPEC["conv_ae"]["batch"])
    for q in ae.parameters():
        q.requires_grad_(False)
    ae.eval()
    frozen = sum(q.numel() for m in (ae.enc, ae.latent) for q in m.parameters())
    assert frozen == spec["frozen"], (frozen, spec["frozen"])

    @torch.no_grad()
    def encode(x):
        return torch.cat([ae.latent(ae.enc(x[s:s + 1000].view(-1, 1, 28, 28)).permute(0, 2, 3, 1).flatten(1))
                          for s in range(0, len(x), 1000)])
    ztrain, zval, ztest = encode(train), encode(val), encode(test)
    # Stage 2: the head.
    model = LatentClassifier()
    nparams = sum(q.numel() for q in model.parameters())
    assert nparams == spec["params"], (nparams, spec["params"])
    B = spec["batch"]
    print(f"# latent_classifier: {nparams} trainable + {frozen} frozen params, train {len(train)}, "
          f"val {len(val)}, test {len(test)}, batch {B}, epochs {epochs}", flush=True)
    train_epochs(args, "latent_classifier", model, ztrain, zval, epochs, B, ytrain, yval)
    test_loss, test_acc = evaluate_classifier(model, ztest, test_labels)
    out = {"model": "latent_classifier", "epochs": epochs, "encoder_epochs": enc_epochs,
           "test_loss": round(test_loss, 6), "test_accuracy": round(test_acc, 4),
           "seconds": round(time.time() - t0, 1), "torch": torch.__version__, "threads": 2,
           "seed": args.seed, "train": len(train), "validation": len(val)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
