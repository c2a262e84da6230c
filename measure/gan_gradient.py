"""Why WGAN, measured on 1-D Gaussians: a discriminator trained to optimality saturates, and
the gradient it hands G vanishes where G's samples are; a WGAN critic's stays useful there
(the lecture's figure, after Arjovsky et al., 2017, Figure 2).

    python -m measure.gan_gradient --out docs/gan_gradient.png

1. data      p_data = N(2, 0.5^2), p_g = N(-2, 0.5^2): far apart, G held fixed
2. D         an MLP trained with Eq. 1's BCE (gan.py: bce_terms): D(x) -> 1 on p_data,
             0 on p_g; log(1 - D(x)) = log sigmoid(-logit), without overflow
3. critic    the same MLP trained as WGAN-GP's critic (gan.py: critic_loss,
             gradient_penalty): min E f(G(z)) - E f(x) + lambda (||grad f(x_hat)|| - 1)^2
4. gradient  the push each gives a fake sample at x, positive towards p_data: the minimax
             G loss log(1 - D(x)) gives -d/dx log(1 - D(x)); WGAN's -f(x) gives d/dx f(x)
"""
import argparse
import sys
import torch
import torch.nn as nn
import torch.nn.functional as F
from gan import bce_terms, critic_loss, gradient_penalty
from measure.curves import draw
from support.cli import COUNT, SEED, Parser, command
from support.outputs import writable

# the two Gaussians: means and their standard deviation
REAL = 2.0
FAKE = -2.0
STD = 0.5


def mlp(width=64):
    """x (B, 1) -> a score (B, 1): D's logit, or the critic's f(x)."""
    return nn.Sequential(nn.Linear(1, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, 1))


def d_step(D, x, fake):
    """Eq. 1's D step: -E[log D(x)] - E[log(1 - D(G(z)))]."""
    n = len(x)
    t = bce_terms(D(x), D(fake), torch.ones(n, 1), torch.zeros(n, 1))
    return t["real"] + t["fake"]


def critic_step(f, x, fake, gp_lambda=10.0):
    """WGAN-GP's critic step: E f(G(z)) - E f(x) + lambda (||grad f(x_hat)|| - 1)^2."""
    t = critic_loss(f(x), f(fake))
    return t["real"] + t["fake"] + gp_lambda * gradient_penalty(f, x, fake)


def train(step, steps, batch=256, seed=0):
    """A fresh MLP trained on p_data against p_g by step(net, x, fake) -> the net."""
    torch.manual_seed(seed)
    net = mlp()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(steps):
        x = REAL + STD * torch.randn(batch, 1)
        fake = FAKE + STD * torch.randn(batch, 1)
        opt.zero_grad()
        step(net, x, fake).backward()
        opt.step()
    return net


def pushes(D, f, xs):
    """At each x (N,): D(x), f(x), and the push each gives a fake sample there,
    -d/dx log(1 - D(x)) (the minimax G loss) and d/dx f(x) (WGAN's G loss, -f)."""
    x = xs[:, None].clone().requires_grad_(True)
    logit = D(x)
    # log(1 - D(x)), summed: each x its own sample
    g_loss = F.logsigmoid(-logit).sum()
    push_d, = torch.autograd.grad(-g_loss, x)
    fx = f(x)
    push_f, = torch.autograd.grad(fx.sum(), x)
    return (logit.detach().sigmoid()[:, 0], fx.detach()[:, 0],
            push_d[:, 0], push_f[:, 0])


def main(argv):
    p = Parser(prog="python -m measure.gan_gradient", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gan_gradient.png", help="the figure (PNG) to write")
    p.add_argument("--steps", type=COUNT, default=2000,
                   help="training steps of D and of the critic. default: 2000")
    p.add_argument("--seed", type=SEED, default=0, help="the random seed. default: 0")
    args = p.parse_args(argv)
    writable("--out", args.out)
    D = train(d_step, args.steps, seed=args.seed)
    f = train(critic_step, args.steps, seed=args.seed)
    xs = torch.linspace(-5, 5, 201)
    d, fx, push_d, push_f = pushes(D, f, xs)
    density = lambda mu: torch.exp(-0.5 * ((xs - mu) / STD) ** 2)          # peak 1
    line = lambda v: list(zip(xs.tolist(), v.tolist()))
    panels = {"D(x) after BCE training, with p_data and p_g (peak 1)":
              {"D(x)": line(d), "p_data": line(density(REAL)), "p_g": line(density(FAKE))},
              "f(x), the WGAN-GP critic": {"f(x)": line(fx)},
              "the push on a fake sample at x (> 0: towards p_data)":
              {"minimax GAN: -d/dx log(1 - D(x))": line(push_d),
               "WGAN: d/dx f(x)": line(push_f)}}
    draw(panels, xlabel="x").save(args.out)
    print("x      D(x)        minimax push  WGAN push")
    for x in (FAKE - 1, FAKE, 0.0, REAL):
        i = int(torch.argmin((xs - x).abs()))
        print(f"{x:5.1f}  {d[i]:.3e}   {push_d[i]:.3e}     {push_f[i]:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(command(main, sys.argv[1:]))
