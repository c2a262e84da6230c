"""Deep convolutional GAN (Radford et al., 2015): the GAN game of gan.py, played by convolutional
networks. Conditional when labels are given (class embedding joined to z, one-hot maps joined to
D's input), or ACGAN-style (Odena et al., 2017) with an auxiliary classifier head; WGAN-GP
(Gulrajani et al., 2017) as a loss option.

    1. G          z (nz, 1, 1) -> ConvTranspose 4x4 stride 2 + BatchNorm + ReLU, doubling the size
                  each time -> Tanh: (C, S, S) in [-1, 1]
    2. D          (C, S, S) -> Conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2), halving it -> one logit
                  no pooling, no bias before BatchNorm, weights ~ N(0, 0.02)
    3. D's step   minimise BCE(D(x), 1) + BCE(D(G(z)), 0)      (gan.py, Eq. 1)
    4. G's step   minimise BCE(D(G(z)), 1), the non-saturating loss
    5. ACGAN      D also predicts the class: + CE(class(x), y) for D and + CE(class(G(z, y)), y) for both
    6. WGAN-GP    critic loss f(G(z)) - f(x) + lambda (||grad f(x_hat)|| - 1)^2, generator loss -f(G(z))

Defaults are the paper's: Adam lr 2e-4, betas (0.5, 0.999), batch 128.

    python train.py dcgan --data ./celeba                  # 64x64
    python train.py dcgan --data ./fashion-mnist --classes --image-size 32 --acgan
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def up(c_in, c_out, first=False):
    """ConvTranspose 4x4: (c_in, 1, 1) -> (c_out, 4, 4) when first, else (c_in, H, W) -> (c_out, 2H, 2W)."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 1 if first else 2, 0 if first else 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(True))


def down(c_in, c_out, norm):
    """Conv 4x4 stride 2: (c_in, H, W) -> (c_out, H/2, W/2)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                         *([norm(c_out)] if norm else []), nn.LeakyReLU(0.2, True))


def gradient_penalty(critic, x, fake, *cond):
    """WGAN-GP: (||grad_x_hat f(x_hat)|| - 1)^2 at random points x_hat on lines between x and G(z)."""
    u = torch.rand(x.shape[0], *[1] * (x.dim() - 1), device=x.device)
    x_hat = (u * x + (1 - u) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat, *cond).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


class DCGAN(nn.Module):
    batch_size = 128

    def __init__(self, image_size=64, channels=3, num_classes=0, *, nz=128, ngf=64, ndf=64, bn_first=True,
                 acgan=False, loss="bce", gp_lambda=10.0, n_critic=5, lr=2e-4, beta1=0.5, beta2=0.999):
        super().__init__()
        n = image_size.bit_length() - 3                                 # stride-2 blocks between 4x4 and S x S
        if image_size < 8 or image_size != 4 << n:
            raise ValueError(f"image size must be a power of two, at least 8 (got {image_size})")
        if loss not in ("bce", "wgan-gp"):
            raise ValueError(f"loss is bce or wgan-gp (got {loss})")
        if acgan and not num_classes:
            raise ValueError("--acgan needs labelled data: add --classes")
        self.nz, self.num_classes, self.acgan, self.loss_type, self.gp_lambda = nz, num_classes, acgan, loss, gp_lambda
        self.n_critic = n_critic if loss == "wgan-gp" else 1              # train.py: G steps every n_critic steps
        self.lr, self.betas = lr, (beta1, beta2)
        emb = nz if num_classes else 0                                  # conditional G: [z, embed(y)]
        self.embed = nn.Embedding(num_classes, emb) if num_classes else None
        d_in = channels + (num_classes if num_classes and not acgan else 0)   # conditional D: one-hot maps

        # G: (nz, 1, 1) -> (ngf * 2^(n-1), 4, 4) -> ... -> (ngf, S/2, S/2) -> (C, S, S); for 64x64:
        # (nz,1,1) -> (ngf*8,4,4) -> (ngf*4,8,8) -> (ngf*2,16,16) -> (ngf,32,32) -> (C,64,64)
        widths = [ngf * 2 ** i for i in reversed(range(n))]
        self.G = nn.Sequential(up(nz + emb, widths[0], first=True),
                               *[up(a, b) for a, b in zip(widths, widths[1:])],
                               nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh())
        # D: (C, S, S) -> (ndf, S/2, S/2) -> ... -> (ndf * 2^(n-1), 4, 4) -> 1 logit. BatchNorm after every
        # conv, the first included, as in the lecture's table; the DCGAN paper has none after the first
        # (--no-bn-first). A WGAN-GP critic has no BatchNorm: it would mix the samples of a batch, and the
        # penalty is per sample; it uses layer norm over (C, H, W), GroupNorm(1, c), instead.
        norm = (lambda c: nn.GroupNorm(1, c)) if loss == "wgan-gp" else nn.BatchNorm2d
        widths = [ndf * 2 ** i for i in range(n)]
        self.D = nn.Sequential(down(d_in, widths[0], norm if bn_first else None),
                               *[down(a, b, norm) for a, b in zip(widths, widths[1:])])
        self.D_out = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)       # (w, 4, 4) -> (1, 1, 1)
        self.D_aux = nn.Conv2d(widths[-1], num_classes, 4, 1, 0) if acgan else None   # ACGAN: class logits
        for m in self.modules():                                         # the paper's initialisation
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def generate(self, z, y=None):
        """G(z | y): (n, nz) -> (n, C, S, S) in [-1, 1]."""
        h = z if self.embed is None else torch.cat([z, self.embed(y)], 1)
        return self.G(h[:, :, None, None])

    def features(self, x, y=None):
        if self.num_classes and not self.acgan:                          # conditional D: y as constant maps
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, maps], 1)
        return self.D(x)

    def critic(self, x, y=None):
        """D(x | y) as a logit, or the WGAN critic's value: (B, C, S, S) -> (B,)."""
        return self.D_out(self.features(x, y)).flatten()

    def d_loss(self, x, y=None):
        z = torch.randn(x.shape[0], self.nz, device=x.device)
        self.y_fake = y if y is None else y[torch.randperm(len(y), device=y.device)]   # labels for G: the data's mix
        self.fake = self.generate(z, self.y_fake)          # kept, with its graph, for the g_loss that follows
        h_real, h_fake = self.features(x, y), self.features(self.fake.detach(), self.y_fake)
        real, fake = self.D_out(h_real).flatten().float(), self.D_out(h_fake).flatten().float()
        if self.loss_type == "wgan-gp":                                 # 6. the critic's loss and the penalty
            gp = gradient_penalty(self.critic, x, self.fake.detach(), y).float()
            terms = {"real": -real.mean(), "fake": fake.mean(), "gp": self.gp_lambda * gp}
        else:                                                           # 3. BCEWithLogits: log-sigmoid without overflow
            terms = {"real": F.binary_cross_entropy_with_logits(real, torch.ones_like(real)),
                     "fake": F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)),
                     "D(x)": real.detach().sigmoid().mean(), "D(G(z))": fake.detach().sigmoid().mean()}
        if self.acgan:                                                  # 5. D learns the classes of real and fake
            terms["aux"] = F.cross_entropy(self.D_aux(h_real).flatten(1).float(), y) + \
                F.cross_entropy(self.D_aux(h_fake).flatten(1).float(), self.y_fake)
        return terms

    def g_loss(self, x, y=None):
        h = self.features(self.fake, self.y_fake)
        fake = self.D_out(h).flatten().float()
        # 4. non-saturating: maximise log D(G(z)); log(1 - D(G(z))) would stall G while D wins
        terms = {"wgan": -fake.mean()} if self.loss_type == "wgan-gp" else \
            {"gan": F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))}
        if self.acgan:                                                  # 5. G makes samples D classifies as y
            terms["aux"] = F.cross_entropy(self.D_aux(h).flatten(1).float(), self.y_fake)
        return terms

    def configure_optimizers(self):
        d_params = [p for name, p in self.named_parameters() if name.startswith("D")]
        g_params = [p for name, p in self.named_parameters() if not name.startswith("D")]   # G and the embedding
        return (torch.optim.Adam(d_params, lr=self.lr, betas=self.betas, fused=True),
                torch.optim.Adam(g_params, lr=self.lr, betas=self.betas, fused=True))

    def labels_for(self, n, y):
        if y is None and self.num_classes:
            y = torch.arange(n, device=self.D_out.weight.device) % self.num_classes   # every class in turn
        return y

    @torch.no_grad()
    def sample(self, n, y=None):
        """z ~ N(0, I), x = G(z | y). Returns (n, C, S, S) in [-1, 1]."""
        return self.generate(torch.randn(n, self.nz, device=self.D_out.weight.device), self.labels_for(n, y))

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48):
        """A walk through z: from z_a to z_b and back, for each of n samples. (frames, n, C, S, S)."""
        z_a, z_b = torch.randn(2, n, self.nz, device=self.D_out.weight.device)
        w = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2
        return torch.stack([self.generate(torch.lerp(z_a, z_b, float(t)), self.labels_for(n, y)) for t in w])
