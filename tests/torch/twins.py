"""PyTorch twins of the cross-check specs (tests/torch/specs/) and of four example specs.

Each twin takes the parameters under their aec names in aec's layouts (dense [in, out],
conv [k, k, in, out], conv_transpose [in, k, k, out]), the batch as aec holds it (one row
per example, NHWC order) and the random draws aec made, and computes the model the PyTorch
way: NCHW images, Conv2d / ConvTranspose2d / Linear weights (converted by the helpers
below, as docs/weights.md describes), torch's own losses. It returns the output and latent
(back in aec's NHWC rows), the loss terms in the spec's order and the weighted total."""
import torch
import torch.nn.functional as F


class Net:
    """The parameters of one twin plus what a forward records (batch-norm statistics).
    layout="torch": p holds PyTorch's names and layouts (`bin/MODEL export --layout torch`:
    NAME.weight [out, in] / [out, in, k, k] / [in, out, k, k], NAME.bias, running_mean ...),
    used as they are."""

    def __init__(self, p, batch, rng, layout="aec"):
        self.p, self.B, self.rng, self.torch = p, batch, rng, layout == "torch"
        self.running = {}  # batch-norm running statistics after the forward, by aec name

    def weight(self, name, to_torch):
        return self.p[name + ".weight"] if self.torch else to_torch(self.p[name + ".w"])

    def bias(self, name):  # None for bias=false
        return self.p.get(name + (".bias" if self.torch else ".b"))

    # ---- layouts: aec rows (NHWC) <-> torch NCHW, aec weights -> torch weights
    def img(self, rows, h, w, c):
        return rows.reshape(self.B, h, w, c).permute(0, 3, 1, 2)

    def rows(self, x):
        return x.permute(0, 2, 3, 1).reshape(self.B, -1) if x.dim() == 4 else x

    def conv(self, name, x, stride=1, same=True):
        w = self.weight(name, lambda w: w.permute(3, 2, 0, 1).contiguous())  # HWIO -> OIHW
        k = w.shape[2]
        return F.conv2d(x, w, self.bias(name), stride, (k - 1) // 2 if same else 0)

    def conv_t(self, name, x, stride=2, same=True):
        w = self.weight(name, lambda w: w.permute(0, 3, 1, 2).contiguous())  # [in, k, k, out] -> [in, out, k, k]
        k = w.shape[2]
        pad, extra = ((k - 1) // 2, stride - 1) if same else (0, 0)
        return F.conv_transpose2d(x, w, self.bias(name), stride, pad, extra)

    def dense(self, name, x):
        return F.linear(x, self.weight(name, lambda w: w.t()), self.bias(name))  # [in, out] -> [out, in]

    def bn(self, name, x, momentum=0.1, eps=1e-5):
        names = (".running_mean", ".running_var", ".weight", ".bias") if self.torch else (".mean", ".var", ".gamma", ".beta")
        rm, rv = self.p[name + names[0]].detach().clone(), self.p[name + names[1]].detach().clone()
        y = F.batch_norm(x, rm, rv, self.p[name + names[2]], self.p[name + names[3]], True, momentum, eps)
        self.running[name + ".mean"], self.running[name + ".var"] = rm, rv
        return y

    def up(self, x, f=2, mode="nearest"):
        if mode == "bilinear":
            return F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=f, mode="nearest")

    def dc(self, name, x):  # double_conv of the U-Nets
        return F.relu(self.conv(name + ".2", F.relu(self.conv(name + ".1", x))))

    # ---- aec's random draws, in its flat (NHWC) order
    def noise(self, rows, stddev, k=0):
        e = self.rng("noise", k, rows.numel()).to(rows.dtype)
        return torch.clamp(rows + stddev * e.reshape(rows.shape), 0, 1)

    def dropout(self, rows, rate, k=0):
        u = self.rng("dropout", k, rows.numel())             # float32, as aec compares it
        keep = (u >= torch.tensor(rate, dtype=torch.float32)).reshape(rows.shape).to(rows.dtype)
        return rows * keep / (1 - rate)

    def sample(self, mu, lv, k=0):
        return mu + torch.exp(0.5 * lv) * self.rng("sample", k, mu.numel()).to(mu.dtype).reshape(mu.shape)

    # ---- losses with aec's reductions
    def bce(self, p, t, reduce="mean"):
        return F.binary_cross_entropy(p, t) if reduce == "mean" else F.binary_cross_entropy(p, t, reduction="sum") / self.B

    def mse(self, a, b, reduce="mean"):
        return F.mse_loss(a, b) if reduce == "mean" else F.mse_loss(a, b, reduction="sum") / self.B

    def xent(self, logits, t, weights=None, reduce="mean"):
        t = t.reshape((self.B,) + tuple(logits.shape[2:])).long()
        w = None if weights is None else torch.tensor(weights, dtype=logits.dtype)
        if reduce == "mean":
            return F.cross_entropy(logits, t, weight=w, ignore_index=-1)
        return F.cross_entropy(logits, t, weight=w, ignore_index=-1, reduction="sum") / self.B

    def focal(self, logits, t, weights=None, gamma=2.0, reduce="mean"):
        """Lin et al.'s focal loss on the softmax: w_t (1 - p_t)^gamma (-log p_t), the
        weighted mean over the pixels that are not ignored (or summed, per example)."""
        t = t.reshape((self.B,) + tuple(logits.shape[2:])).long()
        valid = t >= 0
        logp = F.log_softmax(logits, 1).gather(1, t.clamp(min=0).unsqueeze(1)).squeeze(1)[valid]
        w = torch.ones(logits.shape[1], dtype=logits.dtype) if weights is None else torch.tensor(weights, dtype=logits.dtype)
        wt = w[t[valid]]
        s = -(wt * (1 - logp.exp()) ** gamma * logp).sum()
        return s / wt.sum() if reduce == "mean" else s / self.B

    def overlap(self, logits, t, jaccard, weights=None, smooth=0.0):
        """segmentation_models_pytorch's DiceLoss / JaccardLoss (multiclass, from logits,
        ignore_index), with class weights in the mean over classes."""
        C = logits.shape[1]
        t = t.reshape(self.B, -1).long()
        p = torch.softmax(logits.reshape(self.B, C, -1), 1)
        valid = (t >= 0).unsqueeze(1).to(p.dtype)
        y = F.one_hot(t.clamp(min=0), C).permute(0, 2, 1).to(p.dtype) * valid
        p = p * valid
        inter, card = (p * y).sum((0, 2)), (p + y).sum((0, 2))
        den = card - inter if jaccard else card
        score = ((1 if jaccard else 2) * inter + smooth) / (den + smooth).clamp_min(1e-7)
        w = torch.ones(C, dtype=p.dtype) if weights is None else torch.tensor(weights, dtype=p.dtype)
        return (w * (1 - score) * (y.sum((0, 2)) > 0).to(p.dtype)).sum() / w.sum()

    def l1(self, x):
        return x.abs().sum() / self.B

    def l2(self):
        return sum((v * v).sum() for k, v in self.p.items() if k.endswith(".w") and v.requires_grad)

    def kl_sparsity(self, s, rho):
        m = s.mean(0).clamp(1e-7, 1 - 1e-7)
        return (rho * torch.log(rho / m) + (1 - rho) * torch.log((1 - rho) / (1 - m))).sum()

    def kl_normal(self, mu, lv):
        return -0.5 * (1 + lv - mu * mu - torch.exp(lv)).sum() / self.B


def t_conv(n, x, t):
    h = F.elu(n.conv("h", n.img(x, 6, 6, 2), same=False), 0.7)
    h2 = torch.tanh(n.conv("h2", h, stride=2))
    z = F.leaky_relu(n.dense("z", n.rows(h2)), 0.1)
    d = n.up(n.img(n.dense("d", z), 3, 3, 3))
    y = n.rows(torch.sigmoid(n.conv("y", d)))
    terms = [n.bce(y, x)]
    return y, None, terms, terms[0]


def t_misc(n, x, t):
    noisy = n.noise(x, 0.1, 0)
    b = F.relu(n.bn("b.2", n.conv("b.1", n.img(noisy, 4, 4, 2))))
    tt = torch.sigmoid(n.conv_t("t", b, 2))
    v = n.conv_t("v", b, 1, same=False)
    c = n.dropout(n.rows(torch.cat([F.max_pool2d(tt, 2), n.img(x, 4, 4, 2)], 1)), 0.3, 0)
    s = torch.sigmoid(n.dense("s", c))
    p = torch.softmax(n.dense("p", n.rows(v)), 1)
    y = n.rows(torch.sigmoid(n.img(n.dense("y", s), 4, 4, 2)))
    q = n.rows(n.img(n.dense("q", p), 4, 4, 2))
    terms = [n.bce(y, x, "sum"), n.mse(q, x), n.kl_sparsity(s, 0.2)]
    return y, s, terms, terms[0] + terms[1] + 0.1 * terms[2]


def t_unet(n, x, t):
    e1 = F.relu(n.conv("e1", n.img(x, 8, 8, 3)))
    e2 = F.leaky_relu(n.conv("e2", F.max_pool2d(e1, 2)), 0.2)
    a = n.conv("a", F.avg_pool2d(e1, 2))
    s = F.relu(e2 + a)
    d = F.relu(n.conv("d", torch.cat([n.up(s), e1], 1)))
    m2 = n.up(n.conv("m2", F.max_pool2d(n.up(s), 2)))
    logits = n.conv("logits", torch.cat([d, m2], 1))
    terms = [n.xent(logits, t, [1, 2, 0.5])]
    return n.rows(logits), None, terms, terms[0]


def t_class(n, x, t):
    p = F.avg_pool2d(n.img(x, 4, 4, 2), 2, stride=1)
    c = torch.cat([p, F.relu(n.conv("c", p))], 1)
    e = F.elu(n.conv("e", p))
    f = n.rows(c + e)
    h = F.elu(n.bn("h.2", n.dense("h.1", n.rows(e))), 0.5)
    logits = n.dense("logits.1", h) + n.dense("logits.2", f)
    terms = [n.xent(logits, t, [1, 0.5, 2, 1], "sum")]
    return logits, None, terms, terms[0]


def t_lang(n, x, t):
    e = F.relu(n.bn("e.2", n.conv("e.1", n.img(x, 6, 6, 2))))
    s = F.max_pool2d(e, 2)
    u = F.relu(n.conv("u", n.up(s, 2, "bilinear")))
    w = n.conv_t("w", s, 2)
    a = torch.tanh(n.dense("a", n.rows(s)))
    b = F.relu(n.dense("b", n.rows(w)))
    c = n.img(n.dense("c", torch.cat([a, b], 1)), 6, 6, 1)
    v = n.up(F.max_pool2d(e, 3), 3, "bilinear")
    logits = n.conv("logits", torch.cat([u, w, c, v], 1))
    terms = [n.focal(logits, t, [1, 2, 0.5]), n.overlap(logits, t, False, smooth=1),
             n.overlap(logits, t, True, [2, 1, 1])]
    return n.rows(logits), None, terms, terms[0] + 0.5 * terms[1] + terms[2]


def t_vae(n, x, t):
    h = F.relu(n.dense("h", x))
    mu, lv = n.dense("mu", h), n.dense("logvar", h)
    z = n.sample(mu, lv, 0)
    y = torch.sigmoid(n.dense("y.2", torch.tanh(n.dense("y.1", z))))
    terms = [n.mse(y, x, "sum"), n.kl_normal(mu, lv), n.l1(h), n.l2()]
    return y, z, terms, terms[0] + 0.5 * terms[1] + 0.01 * terms[2] + 0.001 * terms[3]


def dense_ae(n, x, t):
    z = n.dense("z.3", F.relu(n.dense("z.2", F.relu(n.dense("z.1", x)))))
    y = torch.sigmoid(n.dense("y.3", F.relu(n.dense("y.2", F.relu(n.dense("y.1", z))))))
    terms = [n.bce(y, x)]
    return y, z, terms, terms[0]


def conv_ae(n, x, t):
    h = F.relu(n.conv("z.h.2", F.relu(n.conv("z.h.1", n.img(x, 28, 28, 1))), 2))
    h2 = F.relu(n.conv("z.h2.2", F.relu(n.conv("z.h2.1", h)), 2))
    z = n.dense("z", n.rows(h2))
    d = n.img(F.relu(n.dense("d", z)), 7, 7, 64)
    d1 = F.relu(n.conv("d1", n.up(d)))
    d2 = F.relu(n.conv("d2", n.up(d1)))
    y = n.rows(torch.sigmoid(n.conv("y", d2)))
    terms = [n.bce(y, x)]
    return y, z, terms, terms[0]


def conv_ae_transpose(n, x, t):
    e = F.relu(n.conv("e.2", F.relu(n.conv("e.1", n.img(x, 28, 28, 1), 2)), 2))
    z = n.dense("z", n.rows(e))
    d = n.img(F.relu(n.dense("d", z)), 7, 7, 64)
    d2 = F.relu(n.conv_t("d2", F.relu(n.conv_t("d1", d))))
    y = n.rows(torch.sigmoid(n.conv("y", d2)))
    terms = [n.bce(y, x)]
    return y, z, terms, terms[0]


def vae(n, x, t):
    h = F.relu(n.dense("h.2", F.relu(n.dense("h.1", x))))
    mu, lv = n.dense("mu", h), n.dense("logvar", h)
    z = n.sample(mu, lv, 0)
    y = torch.sigmoid(n.dense("y.3", F.relu(n.dense("y.2", F.relu(n.dense("y.1", z))))))
    terms = [n.bce(y, x, "sum"), n.kl_normal(mu, lv)]
    return y, z, terms, terms[0] + terms[1]


def unet_landcover_small(n, x, t):
    e1 = n.dc("e1", n.img(x, 64, 64, 4))
    e2 = n.dc("e2", F.max_pool2d(e1, 2))
    b = n.dc("b", F.max_pool2d(e2, 2))
    d2 = n.dc("d2", torch.cat([n.up(b), e2], 1))
    d1 = n.dc("d1", torch.cat([n.up(d2), e1], 1))
    logits = n.conv("logits", d1)
    terms = [n.xent(logits, t)]
    return n.rows(logits), None, terms, terms[0]


TWINS = {f.__name__: f for f in (t_conv, t_misc, t_unet, t_class, t_lang, t_vae,
                                 dense_ae, conv_ae, vae, unet_landcover_small)}
# Twins that only the export test runs (tests/export/check.py), on exported weights.
EXPORT_TWINS = dict(TWINS, conv_ae_transpose=conv_ae_transpose)
# The optimizer of each example spec, as torch builds it.
MODEL_OPTIM = {"dense_ae": ("adam", 1e-3), "conv_ae": ("adam", 1e-3), "vae": ("adam", 1e-3),
               "unet_landcover_small": ("adam", 2e-3)}
