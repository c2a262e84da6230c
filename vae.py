"""Variational autoencoder (Kingma & Welling, 2014), and the conditional VAE (Sohn et al.,
2015).

An encoder q_phi(z | x) and a decoder p_theta(x | z), trained together by maximising the
evidence lower bound (ELBO); here its negative is minimised. The steps, in the lecture's
order (the code names them "step N"; "Eq. N" is always the paper's equation N):

    1. encoder       q_phi(z | x) = N(mu, diag(sigma^2)); the network outputs mu and
                     logvar = log sigma^2
    2. reparam.      z = mu + sigma * eps, eps ~ N(0, I): a sample gradients flow through
    3. decoder       p_theta(x | z) = N(x_hat, s^2 I), x_hat = decoder(z)
    4. ELBO          log p(x) >= E_q[log p(x | z)] - KL(q(z | x) || p(z))
    5. loss          L = recon + beta * KL, recon = ||x - x_hat||^2 / (2 s^2) (the
                     Gaussian NLL without its constant), KL in closed form (Appendix
                     B); summed over pixels and latent dimensions, averaged over the
                     batch
    6. sampling      z ~ p(z) = N(0, I), x = decoder(z)

Conditional (CVAE): a condition y enters both q(z | x, y) and p(x | z, y), as its embedding
y W: a class id c as its one-hot vector e_c (W's row c), a set of labels as a multi-hot
vector (the sum of their rows).

    python train.py vae                          # the built-in shapes, 32x32
    python train.py vae --data ./celeba          # a folder of images, 64x64
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def down(c_in, c_out):
    """Conv 4x4 stride 2 halves the resolution: (c_in, H, W) -> (c_out, H/2, W/2)."""
    conv = nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def up(c_in, c_out):
    """ConvTranspose 4x4 stride 2 doubles it: (c_in, H, W) -> (c_out, 2H, 2W)."""
    conv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


class VAE(nn.Module):
    batch_size = 64                     # train.py's default for this model
    sampling_networks = ("decoder",)    # what sample.py --compile compiles

    def __init__(self, image_size=32, channels=3, num_classes=0, *,
                 z_dim=32, ch=32, beta=1.0, sigma=0.5, lr=1e-3):
        """The encoder and decoder; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I) (paper: 2 to 200)
        ch: channels of the first encoder level, doubled at each halving up to 512
        beta: weight of the KL term; 1 is the ELBO (beta > 1: Higgins et al.'s beta-VAE)
        sigma: the decoder's fixed std s in p(x | z) = N(x_hat, s^2 I) (paper: learned)
        lr: Adam's learning rate (paper: Adagrad, step size 0.01 to 0.1)
        """
        super().__init__()
        # halvings from image_size to 4x4
        levels = image_size.bit_length() - 3
        if image_size < 8 or image_size != 4 << levels:
            raise ValueError(f"image size must be a power of two, at least 8 (got "
                             f"{image_size})")
        # e.g. 32, 64, 128 for 32x32
        widths = [min(ch << i, 512) for i in range(levels)]
        emb = 16 if num_classes else 0
        # CVAE: W, a row per label
        self.embed = nn.Embedding(num_classes, emb) if num_classes else None
        # encoder: (C, S, S) -> (w0, S/2, S/2) -> ... -> (w_last, 4, 4) -> (mu, logvar)
        blocks = [down(c_in, c_out) for c_in, c_out in zip([channels] + widths, widths)]
        self.encoder = nn.Sequential(*blocks, nn.Flatten())
        self.to_stats = nn.Linear(widths[-1] * 16 + emb, 2 * z_dim)
        # decoder: z -> (w_last, 4, 4) -> ... -> (w0, S/2, S/2) -> (C, S, S)
        self.from_z = nn.Linear(z_dim + emb, widths[-1] * 16)
        rev = widths[::-1]
        blocks = [up(c_in, c_out) for c_in, c_out in zip(rev, rev[1:])]
        out = nn.ConvTranspose2d(widths[0], channels, 4, 2, 1)
        self.decoder = nn.Sequential(*blocks, out, nn.Tanh())
        self.feat = (widths[-1], 4, 4)
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.beta = beta
        self.sigma = sigma
        self.lr = lr

    def loss(self, x, y=None):
        """Steps 4 and 5: the negative ELBO per image, L = recon + beta * KL.
        One sample of z estimates E_q[log p(x | z)]; the KL term is exact."""
        # step 1
        mu, logvar = self.encode(x, y)
        # step 2: z = mu + sigma * eps
        z = self.reparameterize(mu, logvar)
        # step 3
        x_hat = self.decode(z, y)
        # ||x - x_hat||^2, (B,)
        se = ((x - x_hat) ** 2).sum((1, 2, 3))
        # -log p(x | z) + const
        recon = se.mean() / (2 * self.sigma**2)
        # KL(q(z|x) || N(0, I)), Appendix B
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1).mean()
        return {"recon": recon, "kl": self.beta * kl}

    def encode(self, x, y=None):
        """Step 1: q_phi(z | x, y) = N(mu, diag(exp(logvar)))."""
        h = self.condition(self.encoder(x), y)                  # (B, w_last * 16 [+ 16])
        mu, logvar = self.to_stats(h).chunk(2, dim=1)           # (B, z_dim) each
        return mu, logvar

    def reparameterize(self, mu, logvar):
        """Step 2: z = mu + sigma * eps, a differentiable function of (mu, sigma)."""
        eps = torch.randn_like(mu)
        return mu + (0.5 * logvar).exp() * eps                  # sigma = exp(logvar / 2)

    def decode(self, z, y=None):
        """Step 3: the mean x_hat of p_theta(x | z, y), in [-1, 1]."""
        h = self.from_z(self.condition(z, y)).view(-1, *self.feat)  # (B, w_last, 4, 4)
        return self.decoder(h)                                       # (B, C, S, S)

    def onehot(self, y):
        """Class ids (B,) -> one-hot (B, K): class c is the vector e_c, so a class id and
        a set of labels, multi-hot (B, K), go one path."""
        return F.one_hot(y, self.num_classes).float() if y.dim() == 1 else y.float()

    def condition(self, h, y):
        """CVAE: append y's embedding y W (B, 16) to the features (encoder) or to z
        (decoder); for e_c it is W's row c, the Embedding lookup, for a set the sum of its
        labels' rows."""
        if self.embed is None:
            return h
        return torch.cat([h, self.onehot(y) @ self.embed.weight], 1)

    def configure_optimizers(self):
        # fused Adam: on CUDA only
        fused = self.from_z.weight.is_cuda
        return torch.optim.Adam(self.parameters(), lr=self.lr, fused=fused)

    def labels_for(self, n, y):
        """The labels to decode with: the given ones, or every class in turn (CVAE)."""
        if y is None and self.num_classes:
            y = torch.arange(n, device=self.from_z.weight.device) % self.num_classes
        return y

    @torch.no_grad()
    def sample(self, n, y=None, *, temperature=1.0):
        """Step 6: z ~ N(0, temperature^2 I), x = decoder(z): (n, C, H, W) in [-1, 1].

        temperature: the std of z; 1 draws from the prior p(z), below 1 nearer its mean
        """
        z = temperature * torch.randn(n, self.z_dim, device=self.from_z.weight.device)
        return self.decode(z, self.labels_for(n, y))

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48, temperature=1.0):
        """A walk through latent space: from z_a to z_b and back for each of n samples.
        Returns (frames, n, C, H, W).

        frames: the number of frames in the loop
        temperature: the std of z_a and z_b, as in sample
        """
        device = self.from_z.weight.device
        z_a, z_b = temperature * torch.randn(2, n, self.z_dim, device=device)
        y = self.labels_for(n, y)
        # 0 -> 1 -> back, eased; it loops
        ease = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2
        return torch.stack([self.decode(torch.lerp(z_a, z_b, float(s)), y) for s in ease])
