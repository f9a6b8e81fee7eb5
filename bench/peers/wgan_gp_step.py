#!/usr/bin/env python3
"""PyTorch's side of the WGAN-GP-step peer comparison: the work of nash_step_bench's BM_WganGpStep, float32.

The models of `nash fmnist --arch wgan-gp` at width 64: DCGAN's generator and DCGAN's discriminator without batch
norm (biases in its hidden convs), DCGAN's initialisation, batch 64, 32x32x1. ONE step here is one critic update
and one generator update (the app runs 5 critic updates per generator update):
  critic:    fake = G(z) without history; loss = mean(D(fake)) - mean(D(real)) + 10 * mean((||grad_x D(x)|| - 1)^2)
             at x = fake + eps * (real - fake), eps ~ U(0, 1) per sample (the penalty's gradient is itself
             differentiated: a double backward through D); Adam (1e-4, 0.5, 0.9).
  generator: loss = -mean(D(G(z))); Adam (1e-4, 0.5, 0.9).
Prints one line: `wgan_gp_step_ms <median> <device> torch <version> threads <n>` over the timed steps (at least
--steps and --min-time seconds) after --warmup steps. Used by bench/peers/compare; runs alone too."""
import argparse

import torch

from dcgan_step import dcgan_init, discriminator, generator, update
from peer_timing import add_timing_args, median_ms, setup


def gradient_penalty(d, real, fake, lam=10.0):
    eps = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x = (fake + eps * (real - fake)).requires_grad_()
    (g,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return lam * ((g.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def time_steps(g, d, dev, a, lr, betas, z_dim):
    """The median ms of one critic update with the penalty and one G update of g and d (Adam (lr, betas) for both,
    batch 64, 32x32x1), as timed by peer_timing.median_ms."""
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=betas)
    reals = [torch.randn(64, 1, 32, 32, device=dev).clamp(-1, 1) for _ in range(3)]
    zs = [torch.randn(64, z_dim, device=dev) for _ in range(3)]

    def step(i):
        k = i % 3
        with torch.no_grad():
            fake = g(zs[k])
        update(opt_d, d(fake).mean() - d(reals[k]).mean() + gradient_penalty(d, reals[k], fake))
        update(opt_g, -d(g(zs[k])).mean())

    ms, _ = median_ms(step, dev, a)
    return ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_timing_args(ap, warmup=2, steps=5)
    a = ap.parse_args()
    dev = setup(a)
    g, d = generator().to(dev), discriminator(batch_norm=False).to(dev)
    dcgan_init(g, d)
    ms = time_steps(g, d, dev, a, 1e-4, (0.5, 0.9), 100)
    print(f"wgan_gp_step_ms {ms:.2f} {a.device} torch {torch.__version__} threads {a.threads}")


if __name__ == "__main__":
    main()
