#!/usr/bin/python3
"""PyTorch twins of every example spec, only as far as their parameters go: prints
the parameter count torch reports for each. tests/compiler/test_specs.c keeps these
numbers; rerun this (with Debian's python3-torch) when a spec changes."""
import torch.nn as nn

C = nn.Conv2d
CT = nn.ConvTranspose2d
L = nn.Linear


def count(*mods):
    return sum(p.numel() for m in mods for p in m.parameters())


def dc(i, o):  # double_conv
    return [C(i, o, 3, padding=1), C(o, o, 3, padding=1)]


models = {
    "conv_ae": count(C(1, 32, 3), C(32, 32, 3), C(32, 64, 3), C(64, 64, 3), L(3136, 32), L(32, 3136),
                     C(64, 64, 3), C(64, 32, 3), C(32, 1, 3)),
    "conv_ae_1x1": count(C(1, 32, 3), C(32, 64, 3), C(64, 64, 7), CT(64, 64, 7), C(64, 32, 3), C(32, 16, 3),
                         C(16, 1, 3)),
    "conv_ae_transpose": count(C(1, 32, 3), C(32, 64, 3), L(3136, 32), L(32, 3136), CT(64, 64, 3), CT(64, 32, 3),
                               C(32, 1, 3)),
    "conv_vae": count(C(1, 32, 3), C(32, 64, 3), L(3136, 16), L(3136, 16), L(16, 3136), C(64, 64, 3), C(64, 32, 3),
                      C(32, 1, 3)),
    "deep_ae": count(L(784, 512), L(512, 256), L(256, 128), L(128, 64), L(64, 16), L(16, 64), L(64, 128),
                     L(128, 256), L(256, 512), L(512, 784)),
    "denoising_ae": count(C(1, 32, 3), C(32, 32, 3), C(32, 32, 3), C(32, 32, 3), C(32, 1, 3)),
    "denoising_skip": count(C(1, 16, 3), C(16, 32, 3), C(32 + 16 + 1, 15, 3), C(15 + 1, 1, 3)),
    "dense_ae": count(L(784, 256), L(256, 64), L(64, 32), L(32, 64), L(64, 256), L(256, 784)),
    "grow_stage1": count(L(784, 256), L(256, 784)),
    "grow_stage2": count(L(256, 64), L(64, 16), L(16, 64), L(64, 256), L(256, 784)),  # + frozen L(784, 256)
    "grow_stage3": count(L(16, 16), L(16, 8), L(8, 16), L(16, 64), L(64, 256), L(256, 784)),  # + frozen stages 1-2
    "img2img": count(*dc(1, 16), *dc(16, 32), *dc(32, 64), *dc(64 + 32, 32), *dc(32 + 16, 16), C(16, 1, 1)),
    "latent_classifier": count(L(32, 64), L(64, 10)),  # + frozen conv_ae encoder
    "sparse_kl_ae": count(L(784, 256), L(256, 128), L(128, 256), L(256, 784)),
    "sparse_l1_ae": count(L(784, 256), L(256, 128), L(128, 256), L(256, 784)),
    "sparse_none_ae": count(L(784, 256), L(256, 128), L(128, 256), L(256, 784)),
    "unet_landcover": count(*dc(24, 16), *dc(16, 32), *dc(32, 64), *dc(64, 128), *dc(128, 256),
                            *dc(256 + 128, 128), *dc(128 + 64, 64), *dc(64 + 32, 32), *dc(32 + 16, 16), C(16, 6, 1)),
    "unet_landcover_small": count(*dc(4, 8), *dc(8, 16), *dc(16, 32), *dc(32 + 16, 16), *dc(16 + 8, 8), C(8, 6, 1)),
    "vae": count(L(784, 256), L(256, 128), L(128, 16), L(128, 16), L(16, 128), L(128, 256), L(256, 784)),
    "vae2": count(L(784, 512), L(512, 256), L(256, 2), L(256, 2), L(2, 256), L(256, 512), L(512, 784)),
}
frozen = {"grow_stage2": count(L(784, 256)),
          "grow_stage3": count(L(784, 256), L(256, 64), L(64, 16)),
          "latent_classifier": count(C(1, 32, 3), C(32, 32, 3), C(32, 64, 3), C(64, 64, 3), L(3136, 32))}
for name, n in models.items():
    print(f'{{"{name}", {n}, {frozen.get(name, 0)}}},')
