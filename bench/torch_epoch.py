#!/usr/bin/python3
"""One epoch of a plain PyTorch training loop on the data and model of an aec trainer, to
set beside `bin/<model> train --epochs 1` (bench/epoch.sh): what a PyTorch user would
write, not a copy of aec's runtime.

  conv_ae               Fashion-MNIST IDX images scaled by 1/255, the first --limit of the
                        training set with its last 10% (rounded down) held out for
                        validation (as aec's --limit and `validation 0.1`); a fresh permutation, batches of 128
                        (last partial batch dropped), BCE, Adam 1e-3.
  unet_landcover_small  the synthetic land-cover tiles the aec trainer wrote (train/ folder,
                        NAIP 4 bands + lc labels, read with GDAL into memory at start-up):
                        the last ceil(10%) of the tiles by name are validation, read on the
                        8x8 grid of 64-pixel patches; each epoch draws 64 random patches per
                        training tile, random horizontal / vertical flips and a rotation by
                        a multiple of 90 degrees, scales by 1/255, softmax cross-entropy with
                        inverse-frequency class weights (label 15 and unnamed labels
                        ignored), Adam 2e-3, batch 16; validation loss, pixel accuracy and
                        mean IoU.

The epoch (the loop over the batches with their data and augmentation, validation, and
best and last checkpoints written with torch.save) is timed as aec's train.csv `seconds`
column times its own. Prints one JSON line: epoch seconds, steps, examples, peak RSS.
The models come from bench/torch_reference.py (conv_ae) and bench/torch_step.py's
double_conv (the U-Net), so the layers are those the step benchmark checks.

Usage: /usr/bin/python3 bench/torch_epoch.py --model conv_ae|unet_landcover_small
           --data DIR --out DIR [--limit N] [--threads 2] [--layout nchw|channels_last]
"""
import argparse, glob, json, math, os, resource, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_reference import ConvAE, load_idx_images  # noqa: E402
from torch_step import double_conv  # noqa: E402


class SmallUNet(nn.Module):
    """specs/unet_landcover_small.ae: 64x64x4 -> 6 classes, 29,878 parameters."""
    def __init__(self):
        super().__init__()
        self.e1, self.e2, self.b = double_conv(4, 8), double_conv(8, 16), double_conv(16, 32)
        self.d2, self.d1 = double_conv(32 + 16, 16), double_conv(16 + 8, 8)
        self.head = nn.Conv2d(8, 6, 1)

    def forward(self, x):
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        b = self.b(F.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([up(b), e2], 1))
        return self.head(self.d1(torch.cat([up(d2), e1], 1)))


def conv_ae_data(a):
    x = torch.from_numpy(load_idx_images("train-images-idx3-ubyte.gz"))[:a.limit or None]
    nv = int(0.1 * len(x))
    return x[:len(x) - nv], x[len(x) - nv:]


def read_tiles(folder):
    from osgeo import gdal
    images, labels = [], []
    for path in sorted(glob.glob(f"{folder}/*_naip-new.tif")):
        images.append(gdal.Open(path).ReadAsArray())                           # 4 x H x W uint8
        labels.append(gdal.Open(path.replace("_naip-new.tif", "_lc.tif")).ReadAsArray())
    return np.stack(images), np.stack(labels)


def classes_of(lab):
    """Label values 1..6 are the classes water .. road; everything else is ignored (-1)."""
    lab = lab.astype(np.int64) - 1
    lab[(lab < 0) | (lab > 5)] = -1
    return lab


def train_conv_ae(a, model, opt, data, layout):
    xt, xv = data
    model.train()
    for idx in torch.randperm(len(xt)).split(128):
        if len(idx) < 128:
            break
        x = xt[idx]
        y, _ = model(x)
        loss = F.binary_cross_entropy(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x in xv.split(128):
            total += F.binary_cross_entropy(model(x)[0], x, reduction="sum").item()
    return total / xv.numel()


def train_unet(a, model, opt, data, layout):
    img, lab, weights, ntrain, p = data
    model.train()
    h, w = img.shape[2], img.shape[3]
    k = np.repeat(np.arange(ntrain), 64)
    np.random.shuffle(k)
    x0, y0 = np.random.randint(0, w - p + 1, len(k)), np.random.randint(0, h - p + 1, len(k))
    for s in range(0, len(k) - 15, 16):
        xs, ts = [], []
        for j in range(s, s + 16):
            x = torch.from_numpy(img[k[j], :, y0[j]:y0[j] + p, x0[j]:x0[j] + p].astype(np.float32) / 255)
            t = torch.from_numpy(lab[k[j], y0[j]:y0[j] + p, x0[j]:x0[j] + p])
            flips = [d for d, on in ((-1, np.random.rand() < 0.5), (-2, np.random.rand() < 0.5)) if on]
            r = np.random.randint(4)
            x, t = torch.rot90(torch.flip(x, flips), r, (1, 2)), torch.rot90(torch.flip(t, [d + 1 for d in flips]), r, (0, 1))
            xs.append(x)
            ts.append(t)
        x = torch.stack(xs).contiguous(memory_format=layout)
        loss = F.cross_entropy(model(x), torch.stack(ts), weight=weights, ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    conf = torch.zeros(6, 6, dtype=torch.long)
    total, n = 0.0, 0
    with torch.no_grad():
        patches = [(t, gy * p, gx * p) for t in range(ntrain, len(img)) for gy in range(h // p) for gx in range(w // p)]
        for s in range(0, len(patches), 16):
            part = patches[s:s + 16]
            x = torch.stack([torch.from_numpy(img[t, :, y:y + p, xx:xx + p].astype(np.float32) / 255) for t, y, xx in part])
            t = torch.stack([torch.from_numpy(lab[t, y:y + p, xx:xx + p]) for t, y, xx in part])
            logits = model(x.contiguous(memory_format=layout))
            total += F.cross_entropy(logits, t, weight=weights, ignore_index=-1).item() * len(part)
            n += len(part)
            keep = t >= 0
            conf += torch.bincount(t[keep] * 6 + logits.argmax(1)[keep], minlength=36).view(6, 6)
    inter = conf.diag().double()
    iou = inter / (conf.sum(0) + conf.sum(1) - conf.diag()).double().clamp(min=1)
    return total / n, (inter.sum() / conf.sum()).item(), iou.mean().item()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, choices=["conv_ae", "unet_landcover_small"])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layout", default="nchw", choices=["nchw", "channels_last"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    np.random.seed(1)
    layout = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format
    if a.model == "conv_ae":
        model, lr, data, step = ConvAE(), 1e-3, conv_ae_data(a), train_conv_ae
        examples, steps = len(data[0]), len(data[0]) // 128
    else:
        model, lr, step = SmallUNet(), 2e-3, train_unet
        img, lab = read_tiles(f"{a.data}/train")
        lab = classes_of(lab)
        ntrain = len(img) - math.ceil(0.1 * len(img))
        counts = np.bincount(lab[:ntrain][lab[:ntrain] >= 0], minlength=6).astype(np.float64)
        weights = torch.tensor(counts.sum() / (6 * np.maximum(counts, 1)), dtype=torch.float32)
        data = (img, lab, weights, ntrain, 64)
        examples = ntrain * 64
        if a.limit:
            raise SystemExit("torch_epoch.py: --limit is for conv_ae")
        steps = examples // 16
    assert sum(t.numel() for t in model.parameters()) == {"conv_ae": 324545, "unet_landcover_small": 29878}[a.model]
    model = model.to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.perf_counter()
    val = step(a, model, opt, data, layout)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    torch.save(state, f"{a.out}/best.pt")   # the first epoch always improves
    torch.save(state, f"{a.out}/last.pt")
    seconds = time.perf_counter() - t0
    print(json.dumps({"side": "epoch", "trainer": "torch", "model": a.model, "examples": examples, "steps": steps,
                      "limit": a.limit, "threads": a.threads, "layout": a.layout, "epoch_s": round(seconds, 3),
                      "val": val, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
