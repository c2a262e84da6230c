"""Progressive growing of GANs (Karras, Aila, Laine & Lehtinen, 2018): G and D start at
4x4 and grow a resolution at a time up to image_size, each new block faded in; and the
paper's three tricks, which StyleGAN (stylegan.py) keeps.

    1. equal lr       weights stored ~ N(0, 1), scaled at run time by He's constant
                      c = sqrt(2 / fan_in) (Sec. 4.1): Adam's step the same for every layer
    2. pixel norm     b = a / sqrt(mean_j a_j^2 + eps) over each pixel's channels, after
                      every conv of G, and on z (Sec. 4.2)
    3. minibatch std  the std of each feature over a group of samples, averaged to one
                      number per group: one more feature map at D's 4x4 (Sec. 3)
    4. G              z -> 4x4 (dense, 3x3 conv) -> per resolution x2 nearest upsampling
                      and two 3x3 convs, each LeakyReLU(0.2) and pixel norm; a 1x1 toRGB
                      at every resolution
    5. D              a 1x1 fromRGB at every resolution -> per resolution two 3x3 convs
                      and a 2x2 average pool -> at 4x4 minibatch std, conv, FC, FC -> a score
    6. fade-in        while the block of resolution r fades in, alpha goes 0 -> 1 (Fig. 2):
                      G: x = (1 - alpha) up(toRGB_{r/2}(h_{r/2})) + alpha toRGB_r(h_r)
                      D: h = (1 - alpha) fromRGB_{r/2}(pool(x))
                             + alpha block_r(fromRGB_r(x))
    7. schedule       4x4 for `stable_images` images, then per resolution `fade_images`
                      images of fade-in and `stable_images` stable; (level, alpha) follow
                      from the images seen, a buffer, so a checkpoint resumes mid-phase
    8. the reals      average-pooled to r, and while block r fades in blended as G's
                      output is: (1 - alpha) up(pool(x_r)) + alpha x_r (Sec. 2)
    9. loss           WGAN-GP (Gulrajani et al., 2017), as the paper: D minimises
                      D(G(z)) - D(x) + lambda (||grad D(x^)||_2 - 1)^2 + eps_drift D(x)^2;
                      G minimises -D(G(z))

Every block exists from the start (only which ones run changes), so the optimizers' state
stays valid across a phase switch. The samples are drawn at the current resolution and
upsampled to image_size (nearest). Left out: the paper's widths (512, small here for a
CPU: --ch, --max-ch), its batch sizes per resolution and its 800k images per phase.

    python train.py progan --image-size 16                      # the built-in shapes
    python train.py progan --data ./fashion-mnist --image-size 32 --fade-images 20000
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


class Equalized(nn.Module):
    """1. A linear layer (k = 0) or a k x k conv with the equalised learning rate:
    w ~ N(0, 1) stored, w * c used, c = gain * lr_mul / sqrt(fan_in). With lr_mul < 1 the
    stored weights start at std 1 / lr_mul, so Adam's steps of fixed size move the used
    weights lr_mul times as far (the mapping network's 0.01 in stylegan.py)."""

    def __init__(self, c_in, c_out, k=0, gain=2**0.5, lr_mul=1.0):
        super().__init__()
        shape = (c_out, c_in, k, k) if k else (c_out, c_in)
        self.weight = nn.Parameter(torch.randn(shape) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(c_out))
        # He: sqrt(2 / fan_in)
        self.scale = gain * lr_mul / math.sqrt(c_in * max(k, 1) ** 2)
        self.lr_mul = lr_mul

    def forward(self, x):
        w = self.weight * self.scale
        b = self.bias * self.lr_mul
        if self.weight.dim() == 2:
            return F.linear(x, w, b)
        return F.conv2d(x, w, b, padding=self.weight.shape[-1] // 2)


def pixel_norm(a, eps=1e-8):
    """2. Each pixel's (or sample's) channels to unit mean square."""
    return a * torch.rsqrt(a.pow(2).mean(1, keepdim=True) + eps)


class PixelNorm(nn.Module):
    """2. pixel_norm as a layer of nn.Sequential."""

    def forward(self, a):
        return pixel_norm(a)


def minibatch_std(h, group=4, eps=1e-8):
    """3. The std of each feature at each position over a group of samples, averaged over
    features and positions: one number per group, appended as a constant feature map.
    (B, C, H, W) -> (B, C + 1, H, W)."""
    B, C, H, W = h.shape
    # groups of g samples in a row; var: (B/g, C, H, W), each group's
    g = math.gcd(B, group)
    var = h.float().reshape(-1, g, C, H, W).var(1, unbiased=False)
    sigma = (var + eps).sqrt()
    # (B,): each sample its group's
    s = sigma.mean((1, 2, 3)).to(h.dtype).repeat_interleave(g)
    return torch.cat([h, s.view(B, 1, 1, 1).expand(B, 1, H, W)], 1)


def resolutions(image_size, ch, max_ch):
    """G's and D's resolutions 4, 8, ..., image_size, and the width c[r] of each: ch at
    the full size, doubled per halving up to max_ch."""
    n = image_size.bit_length() - 1
    if image_size < 4 or image_size != 1 << n:
        raise ValueError(f"image size must be a power of two, at least 4 (got "
                         f"{image_size})")
    res = [4 << i for i in range(n - 1)]
    return res, {r: min(max_ch, ch * image_size // r) for r in res}


def schedule(seen, levels, fade, stable):
    """7. (level, alpha) after `seen` images: level 0 is 4x4, level k is 4 * 2^k; 4x4
    stable for `stable` images, then per level `fade` images of fade-in (alpha 0 -> 1) and
    `stable` at 1."""
    if seen < stable:
        return 0, 1.0
    level, into = divmod(seen - stable, fade + stable)
    # the level fading in now
    level += 1
    if level >= levels:
        return levels - 1, 1.0
    return level, min(1.0, into / fade)


def fade_in(old, new, alpha):
    """6. Fig. 2: a new block's output faded in over the old path's."""
    return (1 - alpha) * old + alpha * new


def to_image(to_rgb, hs, alpha, levels):
    """6. G's image at the resolution of its last features hs[-1] (level k = len(hs) - 1),
    faded in over the upsampled image of hs[-2]. to_rgb: one toRGB per resolution, counted
    from the full size's at the end (a fixed-size network has that one only)."""
    k = len(hs) - 1
    # toRGB_r(h_r)
    new = to_rgb[k - levels](hs[-1])
    if alpha == 1:
        return new
    # up(toRGB_{r/2}(h_{r/2}))
    old = F.interpolate(to_rgb[k - 1 - levels](hs[-2]), scale_factor=2)
    return fade_in(old, new, alpha)


def reals(x, level, alpha):
    """8. The real batch as D sees it at level k: pooled to r = 4 * 2^k, and while block r
    fades in, (1 - alpha) up(pool(x_r)) + alpha x_r, as G's output is made."""
    x_r = F.avg_pool2d(x, x.shape[-1] // (4 << level))                   # (B, C, r, r)
    if alpha == 1:
        return x_r
    return fade_in(F.interpolate(F.avg_pool2d(x_r, 2), scale_factor=2), x_r, alpha)


def discriminator(channels, c, res, growing, out=1):
    """5. D's layers: fromRGB per resolution (the full size's only, without growing), a
    block per halving from image_size down to 4x4, the head at 4x4 (`out` features; 1: a
    score). c: the width at each resolution r."""
    act = nn.LeakyReLU(0.2)
    from_rgb = nn.ModuleList(nn.Sequential(Equalized(channels, c[r], 1), act)
                             for r in (res if growing else res[-1:]))
    # (c_r, r, r) -> (c_r/2, r/2, r/2)
    blocks = nn.ModuleList(nn.Sequential(Equalized(c[r], c[r], 3), act,
                                         Equalized(c[r], c[r // 2], 3), act,
                                         nn.AvgPool2d(2))
                           for r in res[1:])
    head = nn.Sequential(Equalized(c[4] + 1, c[4], 3), act, nn.Flatten(),
                         Equalized(c[4] * 16, c[4]), act, Equalized(c[4], out, gain=1.0))
    return from_rgb, blocks, head


def features(from_rgb, blocks, x, level, alpha):
    """5., 6. D from its input to 4x4: x (at r or larger) pooled to r = 4 * 2^level,
    fromRGB_r, the blocks r -> 4; while block r fades in, its output blended with
    fromRGB_{r/2}(pool(x))."""
    levels = len(blocks) + 1
    # a fake made at r: unchanged
    x = F.avg_pool2d(x, x.shape[-1] // (4 << level))
    h = from_rgb[level - levels](x)
    for k in range(level, 0, -1):
        h = blocks[k - 1](h)
        if k == level and alpha < 1:
            h = fade_in(from_rgb[k - 1 - levels](F.avg_pool2d(x, 2)), h, alpha)
    return h


def adam(model, lr, betas):
    """(D's, G's) Adam, the paper's (beta1 0, beta2 0.99, eps 1e-8): D's for the
    parameters whose names start with D, G's for the rest."""
    d = [p for name, p in model.named_parameters() if name.startswith("D")]
    g = [p for name, p in model.named_parameters() if not name.startswith("D")]
    return (torch.optim.Adam(d, lr=lr, betas=betas, fused=True),
            torch.optim.Adam(g, lr=lr, betas=betas, fused=True))


class ProGAN(nn.Module):
    batch_size = 16                      # the paper's at the small resolutions
    sampling_networks = ("generate",)    # what sample.py --compile compiles
    ema_decay = 0.999                    # the paper's moving average of G's weights
    normalises_z = True                  # 2. on z: sample.py --invert starts off z = 0

    def __init__(self, image_size=32, channels=3, num_classes=0, *, z_dim=128, ch=32,
                 max_ch=128, fade_images=60_000, stable_images=60_000, gp_lambda=10.0,
                 eps_drift=1e-3, mbstd_group=4, lr=1e-3, beta1=0.0, beta2=0.99):
        """The networks and their optimisers' settings; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I) (paper: 512)
        ch: channels at the full image size, doubled per halving up to max_ch (paper: 16)
        max_ch: the most channels of any layer (paper: 512)
        fade_images: images seen while each new resolution fades in (paper: 800,000)
        stable_images: images seen at each resolution once faded in (paper: 800,000)
        gp_lambda: the weight lambda of WGAN-GP's gradient penalty (paper: 10)
        eps_drift: the weight of eps_drift D(x)^2, keeping D's scores near 0 (paper: 0.001)
        mbstd_group: samples per group of the minibatch standard deviation
        lr: Adam's learning rate (paper: 0.001)
        beta1: Adam's beta1 (paper: 0)
        beta2: Adam's beta2 (paper: 0.99)
        """
        super().__init__()
        if num_classes:
            raise ValueError(f"ProGAN is unconditional: num_classes must be 0 (got "
                             f"{num_classes})")
        # 4, ..., S; each one's width
        res, c = resolutions(image_size, ch, max_ch)
        # 4. G: z -> (c4, 4, 4) -> a block per doubling up to (c_S, S, S); toRGB each size
        act = (nn.LeakyReLU(0.2), PixelNorm())
        first = nn.Sequential(Equalized(z_dim, c[4] * 16), nn.Unflatten(1, (c[4], 4, 4)),
                              *act, Equalized(c[4], c[4], 3), *act)
        self.G = nn.ModuleList([first])
        for r in res[1:]:
            # (c_r/2, r/2, r/2) -> (c_r, r, r)
            self.G.append(nn.Sequential(nn.Upsample(scale_factor=2),
                                        Equalized(c[r // 2], c[r], 3), *act,
                                        Equalized(c[r], c[r], 3), *act))
        self.to_rgb = nn.ModuleList(Equalized(c[r], channels, 1, gain=1.0) for r in res)
        # 5. D: fromRGB_r -> blocks r -> 4 -> minibatch std, conv, FC, FC -> a score
        self.D_rgb, self.D, self.D_out = discriminator(channels, c, res, growing=True)
        # 7. images seen
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.levels = len(res)
        self.image_size = image_size
        self.z_dim = z_dim
        self.fade_images = fade_images
        self.stable_images = stable_images
        self.gp_lambda = gp_lambda
        self.eps_drift = eps_drift
        self.group = mbstd_group
        self.lr = lr
        self.betas = (beta1, beta2)

    def phase(self):
        """7. (level, alpha) of this step, from the images seen."""
        return schedule(int(self.seen), self.levels, self.fade_images, self.stable_images)

    def generate(self, z, y=None):
        """4., 6. G(z) at the phase's resolution r: (B, z_dim) -> (B, C, r, r). y: unused
        (ProGAN is unconditional), as in gan.py's generate(z, y)."""
        level, alpha = self.phase()
        # 2. on z
        h = pixel_norm(z)
        hs = []
        for block in self.G[:level + 1]:
            h = block(h)
            hs.append(h)
        return to_image(self.to_rgb, hs, alpha, self.levels)

    def critic(self, x, y=None):
        """5. D(x), a score: (B, C, r, r) at the phase's resolution (or more) -> (B,)."""
        h = features(self.D_rgb, self.D, x, *self.phase())
        return self.D_out(minibatch_std(h, self.group)).flatten()

    def d_loss(self, x, y=None):
        """9. D's step: D(G(z)) - D(x) + lambda GP + eps_drift D(x)^2, on the reals pooled
        to the phase's resolution (8.). The fakes are kept, with their graph, for g_loss."""
        x = reals(x, *self.phase())
        self.fake = self.generate(torch.randn(x.shape[0], self.z_dim, device=x.device))
        # D's step does not reach G
        fake_x = self.fake.detach()
        real = self.critic(x).float()
        fake = self.critic(fake_x).float()
        # x^ on lines from real to fake; ||grad D(x^)||_2
        eps = torch.rand(x.shape[0], 1, 1, 1, device=x.device)
        x_hat = (eps * x + (1 - eps) * fake_x).requires_grad_(True)
        grad, = torch.autograd.grad(self.critic(x_hat).sum(), x_hat, create_graph=True)
        norm = grad.float().flatten(1).norm(dim=1)
        return {"wasserstein": fake.mean() - real.mean(),
                "gp": self.gp_lambda * (norm - 1).pow(2).mean(),
                "drift": self.eps_drift * real.pow(2).mean()}

    def g_loss(self, x, y=None):
        """9. G's step on the fakes d_loss drew: -D(G(z)); then the batch is counted (7.)."""
        terms = {"gan": -self.critic(self.fake).float().mean()}
        self.seen += self.fake.shape[0]
        return terms

    def configure_optimizers(self):
        """(D's, G's): Adam for D_rgb, D and D_out; for G and to_rgb."""
        return adam(self, self.lr, self.betas)

    @torch.no_grad()
    def sample(self, n, y=None):
        """z ~ N(0, I), x = G(z) at the phase's resolution r, upsampled (nearest) to
        image_size: (n, C, S, S) in [-1, 1]."""
        x = self.generate(torch.randn(n, self.z_dim, device=self.seen.device))
        return F.interpolate(x, size=self.image_size).clamp(-1, 1)
