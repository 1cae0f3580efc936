#!/usr/bin/python3
"""Times PyTorch training steps of the four pinned example models, to set beside
bench/aec_step.c: forward, loss, backward and Adam on a fixed random batch, after 3
warm-up steps; prints one JSON line (median ms per step, images/s, peak RSS).

PyTorch gets its best setting: torch.set_num_threads(THREADS), and run.sh starts it with
OPENBLAS_NUM_THREADS=1 so OpenBLAS threads do not fight its OpenMP threads; --layout
channels_last converts the conv models and their inputs to that memory format; --compile
(PyTorch 2.x: bench/run.sh runs it with build/torch2, scripts/torch2-venv.sh) runs the model
through torch.compile, whose compilation happens in the warm-up steps and is not timed.

Usage: /usr/bin/python3 bench/torch_step.py --model conv_ae|dense_ae|vae|unet_landcover
           --batch N [--steps 20] [--threads 2] [--layout nchw|channels_last] [--compile]
"""
import argparse, json, resource, statistics, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_reference import ConvAE, DenseAE, VAE, losses, he  # noqa: E402


def double_conv(i, o):
    return nn.Sequential(he(nn.Conv2d(i, o, 3, padding=1)), nn.ReLU(), he(nn.Conv2d(o, o, 3, padding=1)), nn.ReLU())


class UNet(nn.Module):
    """specs/unet_landcover.ae: 256x256x24 -> 6 classes, 1,965,734 parameters."""
    def __init__(self):
        super().__init__()
        f = [16, 32, 64, 128]
        self.down = nn.ModuleList([double_conv(i, o) for i, o in zip([24] + f[:-1], f)])
        self.bottom = double_conv(128, 256)
        self.up = nn.ModuleList([double_conv(i + o, o) for i, o in zip([256, 128, 64, 32], f[::-1])])
        self.head = nn.Conv2d(16, 6, 1)

    def forward(self, x):
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for u, s in zip(self.up, skips[::-1]):
            x = u(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), s], 1))
        return self.head(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, choices=["conv_ae", "dense_ae", "vae", "unet_landcover"])
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layout", default="nchw", choices=["nchw", "channels_last"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2.x)")
    a = p.parse_args()
    if a.compile and not hasattr(torch, "compile"):
        sys.exit(f"torch_step.py: --compile needs PyTorch 2.x, this is {torch.__version__}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = {"conv_ae": ConvAE, "dense_ae": DenseAE, "vae": VAE, "unet_landcover": UNet}[a.model]()
    if a.model == "unet_landcover":
        x = torch.rand(a.batch, 24, 256, 256)
        t = torch.randint(0, 6, (a.batch, 256, 256))
        if a.layout == "channels_last":
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        net = torch.compile(model) if a.compile else model
        step_loss = lambda: F.cross_entropy(net(x), t, ignore_index=15)
    else:
        x = torch.rand(a.batch, 784)
        if a.layout == "channels_last" and a.model == "conv_ae":
            model = model.to(memory_format=torch.channels_last)

        net = torch.compile(model) if a.compile else model

        def step_loss():
            y, extra = net(x)
            return losses(a.model, y, x, extra)[0]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(3 + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step_loss().backward()
        opt.step()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"side": "torch", "model": a.model, "batch": a.batch, "threads": a.threads, "layout": a.layout,
                      "compiled": a.compile, "steps": a.steps, "median_ms": round(med, 2), "images_per_s": round(a.batch / med * 1e3, 1),
                      "peak_rss_mb": round(rss, 1), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
