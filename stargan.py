"""StarGAN (Choi et al., 2018): one generator that translates an image into any of K
domains.

pix2pix and CycleGAN learn one mapping per pair of domains; StarGAN learns G(x, c) once for
all of them, told the target domain c as an input. D has two heads on one trunk: D_src, real
or fake for each patch, and D_cls, which domain an image is in. A domain is a class (c a
one-hot of K, e.g. Fashion-MNIST's garments) or a set of attributes (c multi-hot, as
CelebA's hair colour, gender, age, or the lab's sets). y, the condition of every batch, is
the domain label c' of x.

    1. L_adv   = E_x[D_src(x)] - E_{x,c}[D_src(G(x, c))]
                 - lambda_gp E_x^[(||grad D_src(x^)||_2 - 1)^2]     (Sec. 4, WGAN-GP)
    2. L_cls^r = E_{x,c'}[-log D_cls(c' | x)]: D learns the REAL label c' of real x
                                                                      (Eq. 2)
       L_cls^f = E_{x,c}[-log D_cls(c | G(x, c))]: G is judged on the TARGET c
                                                                      (Eq. 3)
       -log D_cls is a cross-entropy over K classes, or, for attributes, a binary
       cross-entropy per attribute summed over them (the paper's code)
    3. L_rec   = E_{x,c,c'}[||x - G(G(x, c), c')||_1], back to the ORIGINAL c'
                                                                      (Eq. 4)
    4. L_D = -L_adv + lambda_cls L_cls^r
       L_G = L_adv + lambda_cls L_cls^f + lambda_rec L_rec
       lambda_cls = 1, lambda_rec = 10, lambda_gp = 10                (Eq. 5)
    5. the target c of each image: the batch's own labels in a random order (the
       paper's code)
    6. G     c as constant maps beside x: (C + K, S, S); conv 7x7, two stride-2 convs
             down, N residual blocks (6), two stride-2 transposed convs up, conv 7x7,
             Tanh; InstanceNorm and ReLU after every conv but the last (Table 4)
    7. D     a PatchGAN with no norm: n stride-2 4x4 convs from ndf channels, each
             doubling them, LeakyReLU(0.01); then D_src, a 3x3 conv to one logit per
             patch, and D_cls, a conv as large as the last map, to K logits (Table 5)

Adam, lr 1e-4, betas (0.5, 0.999), batch 16, five D steps per G step (n_critic), as the
paper; left out: its linear decay of the rates to 0 over the last half of training.

The hand-off: train.py calls d_loss, then (every n_critic steps) g_loss on the same batch.
d_loss draws the targets c and makes G(x, c) once, keeping both for g_loss.

    python train.py stargan --data shapes --classes    # 12 domains: 4 colours x 3 shapes
    python train.py stargan --data ./fashion-mnist --classes --image-size 32
    python sample.py runs/stargan/ckpt.pt --input ./photos   # input, then every domain
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class StarGAN(nn.Module):
    batch_size = 16                 # the paper's
    sampling_networks = ("G",)      # what sample.py --compile compiles
    domains = True                  # sample.py: --input images, translated to every domain

    def __init__(self, image_size=128, channels=3, num_classes=5, *, ngf=64, ndf=64,
                 n_blocks=6, n_layers=None, lambda_cls=1.0, lambda_rec=10.0, gp_lambda=10.0,
                 n_critic=5, lr=1e-4, beta1=0.5, beta2=0.999):
        """G and D and their optimisers' settings; each keyword is a train.py flag.

        ngf: G's width at full resolution (the paper's 64)
        ndf: D's width at its first layer (the paper's 64)
        n_blocks: residual blocks in G (the paper's 6)
        n_layers: D's stride-2 convs (default: down to 2x2, log2(size) - 1; the paper's 6)
        lambda_cls: the weight of the domain classification terms (the paper's 1)
        lambda_rec: the weight of the reconstruction term (the paper's 10)
        gp_lambda: the weight of WGAN-GP's gradient penalty (the paper's 10)
        n_critic: D steps per G step (the paper's 5)
        lr: Adam's learning rate for G and D (the paper's 1e-4)
        beta1: Adam's beta1 (the paper's 0.5)
        beta2: Adam's beta2 (the paper's 0.999)
        """
        super().__init__()
        if n_layers is None:
            # down to 2x2: 128 -> 6, 32 -> 4
            n_layers = image_size.bit_length() - 2
        if num_classes < 2:
            raise ValueError(f"a StarGAN translates between domains: it needs labelled data "
                             f"with at least 2 of them (--classes; got {num_classes})")
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image size must be a power of two, at least 8 (got "
                             f"{image_size})")
        if image_size >> n_layers < 1:
            raise ValueError(f"{n_layers} stride-2 layers in D need images of at least "
                             f"{1 << n_layers} pixels: lower --n-layers")
        self.G = Generator(channels, num_classes, ngf, n_blocks)
        self.D = Discriminator(channels, num_classes, image_size, ndf, n_layers)
        # the real images that sample() translates: the first of the latest batch D saw,
        # kept in the checkpoint so a grid drawn from it shows inputs of the training data
        self.register_buffer("x_ref", torch.zeros(8, channels, image_size, image_size))
        self.K = num_classes
        self.lambda_cls = lambda_cls
        self.lambda_rec = lambda_rec
        self.gp_lambda = gp_lambda
        # train.py: a G step every n_critic steps
        self.n_critic = n_critic
        self.lr = lr
        self.betas = (beta1, beta2)

    def d_loss(self, x, y):
        """Eq. 5, D's side: -L_adv + lambda_cls L_cls^r. x: (B, C, S, S); y: its domains c',
        class ids (B,) or multi-hot (B, K). Draws the targets c and G(x, c), kept for
        g_loss."""
        # step 5: the targets c
        self.c = y[torch.randperm(len(y), device=y.device)]
        self.fake = self.G(x, self.c)
        with torch.no_grad():
            self.x_ref.copy_(x[torch.arange(len(self.x_ref), device=x.device) % len(x)])
        # D's step does not reach G
        fake = self.fake.detach()
        src_real, cls_real = self.D(x)
        src_fake, _ = self.D(fake)
        # Sec. 4: the penalty at x^
        gp = gradient_penalty(self.D_src, x, fake)
        # -E[D_src(x)] + E[D_src(G(x, c))]; Eq. 2: the real label c'
        return {"real": -src_real.float().mean(),
                "fake": src_fake.float().mean(),
                "gp": self.gp_lambda * gp,
                "cls": self.lambda_cls * domain_loss(cls_real, y)}

    def g_loss(self, x, y):
        """Eq. 5, G's side: L_adv + lambda_cls L_cls^f + lambda_rec L_rec, on the G(x, c)
        that the d_loss before it made; y, the original domains c', is where the cycle
        goes back to."""
        src_fake, cls_fake = self.D(self.fake)
        # G(G(x, c), c')
        x_rec = self.G(self.fake, y)
        # -E[D_src(G(x, c))]; Eq. 3: the target c; Eq. 4
        return {"adv": -src_fake.float().mean(),
                "cls": self.lambda_cls * domain_loss(cls_fake, self.c),
                "rec": self.lambda_rec * (x - x_rec.float()).abs().mean()}

    def D_src(self, x):
        """D's real/fake head alone: one logit per patch, (B, 1, P, P)."""
        return self.D(x)[0]

    def configure_optimizers(self):
        # fused Adam: on CUDA only
        fused = self.x_ref.is_cuda
        d_opt = torch.optim.Adam(self.D.parameters(), lr=self.lr, betas=self.betas, fused=fused)
        g_opt = torch.optim.Adam(self.G.parameters(), lr=self.lr, betas=self.betas, fused=fused)
        return d_opt, g_opt

    @torch.no_grad()
    def sample(self, n, y):
        """G(x_i, c_i) for n target domains c = y: no image comes from noise, so the inputs
        x_i are the real images kept from training (x_ref), input i // K in sample i, so a
        grid K wide shows each of them in every domain. sample.py translates the user's
        images instead."""
        if y is None:
            raise ValueError("a StarGAN translates to a domain: give the target domains y")
        i = torch.arange(n, device=self.x_ref.device)
        x = self.x_ref[i // self.K % len(self.x_ref)]                   # (n, C, S, S)
        return self.G(x, y[:n])


def domain_loss(logits, c):
    """-log D_cls(c | x) (Eqs. 2 and 3), a mean over the batch: a cross-entropy over K
    classes for class ids (B,), a binary cross-entropy per attribute, summed, for multi-hot
    c (B, K)."""
    logits = logits.float()
    if c.dim() == 1:
        return F.cross_entropy(logits, c)
    return F.binary_cross_entropy_with_logits(logits, c.float(), reduction="sum") / len(c)


def gradient_penalty(critic, x, fake):
    """WGAN-GP: (||grad D_src(x^)||_2 - 1)^2 at random points x^ on lines between x and
    G(x, c)."""
    u = torch.rand(x.shape[0], *[1] * (x.dim() - 1), device=x.device)
    x_hat = (u * x + (1 - u) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).float().sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# ---- The networks: G (step 6) and D (step 7), as the paper's appendix lists them --------

def norm_relu(c):
    """InstanceNorm with a learned scale and shift, per image, then ReLU."""
    return [nn.InstanceNorm2d(c, affine=True), nn.ReLU(True)]


class ResidualBlock(nn.Module):
    """x + [conv 3x3, IN, ReLU, conv 3x3, IN](x), (c, H, W) -> (c, H, W)."""

    def __init__(self, c):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), *norm_relu(c),
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.InstanceNorm2d(c, affine=True))

    def forward(self, x):
        # the block learns a change to x
        return x + self.f(x)


class Generator(nn.Module):
    """G(x, c): (C, S, S) and c -> (C, S, S). The convs have no bias: each is followed by
    InstanceNorm's own shift (the last, before Tanh, has none either, as the paper's code)."""

    def __init__(self, channels, K, ngf=64, n_blocks=6):
        super().__init__()
        self.K = K
        self.net = nn.Sequential(
            nn.Conv2d(channels + K, ngf, 7, 1, 3, bias=False), *norm_relu(ngf),      # S
            nn.Conv2d(ngf, 2 * ngf, 4, 2, 1, bias=False), *norm_relu(2 * ngf),       # S/2
            nn.Conv2d(2 * ngf, 4 * ngf, 4, 2, 1, bias=False), *norm_relu(4 * ngf),   # S/4
            *[ResidualBlock(4 * ngf) for _ in range(n_blocks)],
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False), *norm_relu(2 * ngf),
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False), *norm_relu(ngf),  # S
            nn.Conv2d(ngf, channels, 7, 1, 3, bias=False), nn.Tanh())

    def forward(self, x, c):
        # class ids -> one-hot (B, K); c as constant maps beside x, (B, K, S, S)
        if c.dim() == 1:
            c = F.one_hot(c, self.K)
        maps = c.to(x.dtype).view(*c.shape, 1, 1).expand(-1, -1, *x.shape[2:])
        return self.net(torch.cat([x, maps], 1))


class Discriminator(nn.Module):
    """D(x) -> (D_src (B, 1, P, P), D_cls (B, K)), P = S / 2^n: a trunk of n stride-2 4x4
    convs, ndf, 2 ndf, ..., 2^(n-1) ndf wide, each with its bias and LeakyReLU(0.01), no
    norm (WGAN-GP penalises each image's own gradient, which a batch norm would mix)."""

    def __init__(self, channels, K, image_size, ndf=64, n_layers=6):
        super().__init__()
        layers = []
        c = channels
        for i in range(n_layers):
            layers += [nn.Conv2d(c, ndf << i, 4, 2, 1), nn.LeakyReLU(0.01)]     # S / 2^(i+1)
            c = ndf << i
        self.trunk = nn.Sequential(*layers)
        P = image_size >> n_layers
        # D_src: (1, P, P); D_cls: (K, 1, 1), it sees all of the map
        self.src = nn.Conv2d(c, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(c, K, P, bias=False)

    def forward(self, x):
        h = self.trunk(x)
        return self.src(h), self.cls(h).flatten(1)
