"""Generative adversarial networks (Goodfellow et al., 2014), with multilayer perceptrons; the
conditional GAN (Mirza & Osindero, 2014) when labels are given; WGAN-GP (Gulrajani et al., 2017)
as a loss option.

A generator G maps noise z ~ p(z) to data, a discriminator D tells data from G's samples:

    1. the game      min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]            (Eq. 1)
    2. D's step      maximise V: minimise BCE(D(x), 1) + BCE(D(G(z)), 0), on logits
    3. G's step      non-saturating: maximise log D(G(z)), i.e. minimise BCE(D(G(z)), 1)
    4. optimum       for a fixed G, D*(x) = p_data(x) / (p_data(x) + p_g(x)); at p_g = p_data,
                     D* = 1/2 and D's loss is 2 log 2
    5. WGAN-GP       critic: E[f(G(z))] - E[f(x)] + lambda E[(||grad f(x_hat)|| - 1)^2], x_hat between
                     x and G(z); generator: -E[f(G(z))]; n_critic critic steps per generator step

Images are flattened, so any size and channel count works, and so do plain vectors: a cloud of
2-D points is data of 2 channels at image size 1, shape (B, 2) or (B, 2, 1, 1).

    python train.py gan --data ./mnist --image-size 32
    python train.py gan --loss wgan-gp --lr 1e-4 --beta1 0 --beta2 0.9   # WGAN-GP with its paper's Adam
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(sizes, out=None):
    """Linear layers with LeakyReLU(0.2) between them, and `out` after the last."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers, *([out] if out else []))


def gradient_penalty(critic, x, fake, *cond):
    """WGAN-GP: (||grad_x_hat f(x_hat)|| - 1)^2 at random points x_hat on lines between x and G(z)."""
    u = torch.rand(x.shape[0], *[1] * (x.dim() - 1), device=x.device)
    x_hat = (u * x + (1 - u) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat, *cond).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


class GAN(nn.Module):
    batch_size = 64

    def __init__(self, image_size=28, channels=1, num_classes=0, *, nz=100, hidden=256, loss="bce",
                 gp_lambda=10.0, n_critic=5, lr=2e-4, beta1=0.5, beta2=0.999):
        super().__init__()
        if loss not in ("bce", "wgan-gp"):
            raise ValueError(f"loss is bce or wgan-gp (got {loss})")
        self.shape = (channels, image_size, image_size)
        self.data_dim = channels * image_size * image_size
        self.nz, self.num_classes, self.loss_type, self.gp_lambda = nz, num_classes, loss, gp_lambda
        self.n_critic = n_critic if loss == "wgan-gp" else 1              # train.py: G steps every n_critic steps
        self.lr, self.betas = lr, (beta1, beta2)
        k = num_classes                                                   # cGAN: one-hot y joins z and x
        self.G = mlp([nz + k, hidden, 2 * hidden, 4 * hidden, self.data_dim], nn.Tanh())
        self.D = mlp([self.data_dim + k, 4 * hidden, 2 * hidden, hidden, 1])

    def onehot(self, y):
        return F.one_hot(y, self.num_classes).float() if self.num_classes else None

    def generate(self, z, y=None):
        """G(z | y): (n, nz) -> (n, C, H, W) in [-1, 1]."""
        h = z if y is None else torch.cat([z, self.onehot(y)], 1)
        return self.G(h).view(-1, *self.shape)

    def critic(self, x, y=None):
        """D(x | y) as a logit (or the WGAN critic's value): (B, ...) -> (B,)."""
        h = x.reshape(x.shape[0], -1)
        h = h if y is None else torch.cat([h, self.onehot(y)], 1)
        return self.D(h).squeeze(1)

    def d_loss(self, x, y=None):
        z = torch.randn(x.shape[0], self.nz, device=x.device)
        self.fake = self.generate(z, y)                    # kept, with its graph, for the g_loss that follows
        self.y = y
        real_logit = self.critic(x, y).float()
        fake_logit = self.critic(self.fake.detach().view_as(x), y).float()
        if self.loss_type == "wgan-gp":                    # 5. the critic's Wasserstein estimate, and the penalty
            gp = gradient_penalty(self.critic, x, self.fake.detach().view_as(x), y).float()
            return {"real": -real_logit.mean(), "fake": fake_logit.mean(), "gp": self.gp_lambda * gp}
        # Eq. 1 for D: -log D(x) - log(1 - D(G(z))). BCEWithLogits is log-sigmoid without overflow.
        return {"real": F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)),
                "fake": F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)),
                "D(x)": real_logit.detach().sigmoid().mean(), "D(G(z))": fake_logit.detach().sigmoid().mean()}

    def g_loss(self, x, y=None):
        fake_logit = self.critic(self.fake, self.y).float()
        if self.loss_type == "wgan-gp":
            return {"wgan": -fake_logit.mean()}
        # Non-saturating: maximise log D(G(z)). The minimax form, minimise log(1 - D(G(z))), gives G
        # almost no gradient early on, when D rejects its samples with confidence.
        return {"gan": F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))}

    def configure_optimizers(self):
        d_opt = torch.optim.Adam(self.D.parameters(), lr=self.lr, betas=self.betas, fused=True)
        g_opt = torch.optim.Adam(self.G.parameters(), lr=self.lr, betas=self.betas, fused=True)
        return d_opt, g_opt

    def labels_for(self, n, y):
        if y is None and self.num_classes:
            y = torch.arange(n, device=self.G[0].weight.device) % self.num_classes   # every class in turn
        return y

    @torch.no_grad()
    def sample(self, n, y=None):
        """z ~ N(0, I), x = G(z | y). Returns (n, C, H, W) in [-1, 1]."""
        return self.generate(torch.randn(n, self.nz, device=self.G[0].weight.device), self.labels_for(n, y))

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48):
        """A walk through z: from z_a to z_b and back, for each of n samples. (frames, n, C, H, W)."""
        z_a, z_b = torch.randn(2, n, self.nz, device=self.G[0].weight.device)
        w = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2
        return torch.stack([self.generate(torch.lerp(z_a, z_b, float(t)), self.labels_for(n, y)) for t in w])
