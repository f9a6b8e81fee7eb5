#!/usr/bin/env python3
"""PyTorch's side of the ResNet WGAN-GP step peer comparison: the work of nash_step_bench's BM_ResNetStep, float32.

The networks of `nash fmnist --arch resnet` (nn::resnet_generator / nn::resnet_discriminator, Gulrajani et al.'s
CIFAR ResNet in SN-GAN's block layout) at --width (every block that many channels), z 128, batch 64, 32x32x1:
  G: linear z -> (w, 4, 4), three up blocks (BN, ReLU, 2x nearest, 3x3 conv, BN, ReLU, 3x3 conv; shortcut 2x
     nearest then 1x1 conv), BN, ReLU, 3x3 conv to 1 channel, tanh.
  D: a first block (3x3 conv, ReLU, 3x3 conv, 2x2 mean pool; shortcut mean pool then 1x1 conv), a down block
     (ReLU, 3x3 conv, ReLU, 3x3 conv, mean pool; shortcut 1x1 conv then mean pool), two blocks at 8x8 (identity
     shortcut), ReLU, the spatial mean, linear to 1.
--attention 16 adds a self-attention block (nn::SelfAttention2d: bias-free 1x1 query and key convs to w/8 channels,
value to w/2, the output conv back to w, softmax over the keys, a learned gain gamma on the residual) to G after the
up block that reaches 16x16 and to D after the first block.
ONE step is one critic update (Wasserstein loss + gradient penalty 10, a double backward through D) and one
generator update, Adam (2e-4, 0, 0.9), as in wgan_gp_step.py.
Prints one line: `resnet_step_ms <median> <device> torch <version> threads <n>`. Used by bench/peers/compare."""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_timing import add_timing_args, setup
from wgan_gp_step import time_steps


def conv(cin, cout, k, gain):
    c = nn.Conv2d(cin, cout, k, 1, k // 2, bias=True)
    nn.init.xavier_uniform_(c.weight, gain)
    nn.init.zeros_(c.bias)
    return c


class Up(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(w), nn.BatchNorm2d(w)
        self.conv1, self.conv2 = conv(w, w, 3, 2 ** 0.5), conv(w, w, 3, 2 ** 0.5)
        self.shortcut = conv(w, w, 1, 1.0)

    def forward(self, x):
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class Down(nn.Module):
    def __init__(self, cin, cout, down, first):
        super().__init__()
        self.down, self.first = down, first
        self.conv1, self.conv2 = conv(cin, cout, 3, 2 ** 0.5), conv(cout, cout, 3, 2 ** 0.5)
        self.shortcut = conv(cin, cout, 1, 1.0) if down or cin != cout else None

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.shortcut is not None:
            if self.first:
                s = self.shortcut(F.avg_pool2d(x, 2))
            else:
                s = self.shortcut(x)
                s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class Attention(nn.Module):
    def __init__(self, w):
        super().__init__()

        def pointwise(cin, cout):
            c = nn.Conv2d(cin, cout, 1, bias=False)
            nn.init.xavier_uniform_(c.weight)
            return c

        self.query, self.key = pointwise(w, w // 8), pointwise(w, w // 8)
        self.value, self.out = pointwise(w, w // 2), pointwise(w // 2, w)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, c, h, w = x.shape
        q, k = self.query(x).flatten(2), self.key(x).flatten(2)  # (N, C/8, L)
        v = self.value(x).flatten(2)  # (N, C/2, L)
        beta = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=2)  # (N, L, L)
        o = torch.bmm(v, beta.transpose(1, 2)).view(n, c // 2, h, w)
        return x + self.gamma * self.out(o)


def generator(w, z_dim=128, attention=0):
    lin = nn.Linear(z_dim, 16 * w)
    nn.init.xavier_uniform_(lin.weight)
    nn.init.zeros_(lin.bias)
    ups = [Up(w), Up(w)] + ([Attention(w)] if attention == 16 else []) + [Up(w)]
    return nn.Sequential(lin, nn.Unflatten(1, (w, 4, 4)), *ups, nn.BatchNorm2d(w), nn.ReLU(),
                         conv(w, 1, 3, 1.0), nn.Tanh())


class Critic(nn.Module):
    def __init__(self, w, attention=0):
        super().__init__()
        self.blocks = nn.Sequential(Down(1, w, True, True), *([Attention(w)] if attention == 16 else []),
                                    Down(w, w, True, False), Down(w, w, False, False), Down(w, w, False, False))
        self.out = nn.Linear(w, 1)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        return self.out(F.relu(self.blocks(x)).mean(dim=(2, 3)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_timing_args(ap, warmup=2, steps=5)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--attention", type=int, default=0, choices=[0, 16])
    a = ap.parse_args()
    dev = setup(a)
    g, d = generator(a.width, attention=a.attention).to(dev), Critic(a.width, a.attention).to(dev)
    ms = time_steps(g, d, dev, a, 2e-4, (0.0, 0.9), 128)
    print(f"resnet_step_ms {ms:.2f} {a.device} torch {torch.__version__} threads {a.threads}")


if __name__ == "__main__":
    main()
