"""StyleGAN (Karras, Laine & Aila, 2019), with the tricks it keeps from ProGAN (Karras et al.,
2018): a generator that maps z to an intermediate latent w and injects w as a style at every layer.

    1. mapping f      z ~ N(0, I) -> pixel norm z / sqrt(mean(z^2) + eps) -> 8 FC + LeakyReLU(0.2)
                      -> w, its learning rate x 0.01 (lr multiplier)
    2. styles         y = (y_s, y_b) = A(w): a learned affine map per layer, y_s starting at 1
    3. AdaIN          AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i  (Eq. 1, channel i)
    4. noise          x + B_i * N(0, 1): one noise image per layer, a learned scale B_i per channel
    5. synthesis g    a learned 4x4 constant -> per resolution two 3x3 convs, each followed by
                      noise, LeakyReLU and AdaIN; bilinear x2 upsampling up to image_size; a 1x1
                      conv to RGB
    6. equal lr       weights stored ~ N(0, 1), scaled at run time by He's constant sqrt(2 / fan_in)
                      (ProGAN 4.1), in G and D, so Adam's step is the same size for every layer
    7. D              from RGB -> per resolution two 3x3 convs, 2x2 average pool -> at 4x4 the
                      minibatch standard deviation (ProGAN 3) as one more feature map -> conv, FC,
                      FC -> a logit
    8. loss           the GAN game of gan.py on logits, non-saturating: D minimises
                      softplus(D(G(z))) + softplus(-D(x)) + gamma/2 E[||grad_x D(x)||^2] (R1,
                      Mescheder et al., 2018); G minimises softplus(-D(G(z)))
    9. style mixing   two z's per fake; layers before a random crossover take w_1, the rest w_2
   10. truncation     w' = w_avg + psi (w - w_avg), w_avg the moving average of f(z) in training

The class reads in that order: the networks, the loss (8), sampling; then the tricks (9, 10) in
one marked block at its end.

Left out: progressive growing with fade-in (StyleGAN 2019 grows as ProGAN did; StyleGAN2, Karras
et al., 2020, dropped it for a network of fixed size, as here), the blur after each up- and
downsampling (bilinear upsampling and average pooling filter instead), lazy R1 (a Python step
counter in d_loss would make torch.compile recompile every step) and conditioning. Defaults are
the paper's except the widths, small for a CPU (--ch, --max-ch, --z-dim, --w-dim). gamma = 10 is
the paper's for 1024x1024 faces; small images want less (--gamma 0.1).

    python train.py stylegan --image-size 16                         # the built-in shapes
    python train.py stylegan --data ./fashion-mnist --image-size 32
    python sample.py runs/stylegan/ckpt.pt --psi 0.7 --mix 4         # truncation; a mixing table
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


class Equalized(nn.Module):
    """6. A linear layer (k = 0) or a k x k conv with the equalised learning rate: w ~ N(0, 1)
    stored, w * c used, c = gain * lr_mul / sqrt(fan_in). With lr_mul < 1 the stored weights start
    at std 1 / lr_mul, so Adam's steps of fixed size move the used weights lr_mul times as far (the
    mapping network's 0.01)."""

    def __init__(self, c_in, c_out, k=0, gain=2**0.5, lr_mul=1.0):
        super().__init__()
        shape = (c_out, c_in, k, k) if k else (c_out, c_in)
        self.weight = nn.Parameter(torch.randn(shape) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain * lr_mul / math.sqrt(c_in * max(k, 1) ** 2)   # He: sqrt(2 / fan_in)
        self.lr_mul = lr_mul

    def forward(self, x):
        w = self.weight * self.scale
        b = self.bias * self.lr_mul
        if self.weight.dim() == 2:
            return F.linear(x, w, b)
        return F.conv2d(x, w, b, padding=self.weight.shape[-1] // 2)


def pixel_norm(z, eps=1e-8):
    """1. Each sample to unit mean square: z / sqrt(mean_j z_j^2 + eps)."""
    return z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + eps)


def adain(x, y_s, y_b, eps=1e-8):
    """3. Eq. 1: AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i, mu and sigma over
    each channel's pixels."""
    mu = x.mean((2, 3), keepdim=True)                                # (B, C, 1, 1)
    sigma = (x.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return y_s[:, :, None, None] * (x - mu) / sigma + y_b[:, :, None, None]


def minibatch_std(h, group=4, eps=1e-8):
    """7. ProGAN 3: the std of each feature at each position over a group of samples, averaged over
    features and positions: one number per group, appended as a constant feature map.
    (B, C, H, W) -> (B, C + 1, H, W)."""
    B, C, H, W = h.shape
    g = math.gcd(B, group)                                           # groups of g samples in a row
    var = h.float().reshape(-1, g, C, H, W).var(1, unbiased=False)   # (B/g, C, H, W): each group's
    sigma = (var + eps).sqrt()
    s = sigma.mean((1, 2, 3)).to(h.dtype).repeat_interleave(g)      # (B,): each sample its group's
    return torch.cat([h, s.view(B, 1, 1, 1).expand(B, 1, H, W)], 1)


class StyleLayer(nn.Module):
    """5. One layer of g: [x2 upsampling, 3x3 conv] -> + B * noise (4.) -> LeakyReLU -> AdaIN with
    y = A(w) (2., 3.)."""

    def __init__(self, c_in, c_out, w_dim, conv=True, up=False):
        super().__init__()
        self.conv = Equalized(c_in, c_out, 3) if conv else None
        self.up = up
        self.B = nn.Parameter(torch.zeros(c_out))                     # noise scales, 0 at first
        self.A = Equalized(w_dim, 2 * c_out, gain=1.0)                # y = (y_s, y_b) = A(w)
        with torch.no_grad():
            self.A.bias[:c_out] = 1.0                                 # y_s = 1 + ...: around 1

    def forward(self, h, w, noise=None):
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        if self.conv is not None:
            h = self.conv(h)
        if noise is None:
            noise = torch.randn_like(h[:, :1])                        # (B, 1, H, W): all channels
        h = F.leaky_relu(h + self.B.view(1, -1, 1, 1) * noise, 0.2)
        y_s, y_b = self.A(w).chunk(2, 1)                              # (B, C) each
        return adain(h, y_s, y_b)


class StyleGAN(nn.Module):
    batch_size = 32
    sampling_networks = ("synthesis",)   # what sample.py --compile compiles
    ema_decay = 0.999                    # sample.py uses G's moving average, the paper's G-bar

    def __init__(self, image_size=32, channels=3, num_classes=0, *, z_dim=128, w_dim=128,
                 n_mlp=8, ch=32, max_ch=128, mapping_lr_mul=0.01, mixing=0.9, gamma=10.0,
                 w_avg_beta=0.995, mbstd_group=4, lr=1e-3, beta1=0.0, beta2=0.99):
        """The networks and their optimisers' settings; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I) (paper: 512)
        w_dim: length of the intermediate latent w = f(z) (paper: 512)
        n_mlp: fully connected layers of the mapping network f
        ch: channels at the full image size, doubled per halving up to max_ch (paper: 512 at 32x32)
        max_ch: the most channels of any layer (paper: 512)
        mapping_lr_mul: the learning rate multiplier of the mapping network f
        mixing: the fraction of fakes drawn with style mixing
        gamma: the weight of R1, gamma/2 E[||grad_x D(x)||^2] (paper: 10, for 1024x1024 faces)
        w_avg_beta: decay of w_avg, the moving average of w that truncation pulls towards
        mbstd_group: samples per group of the minibatch standard deviation
        lr: Adam's learning rate
        beta1: Adam's beta1
        beta2: Adam's beta2
        """
        super().__init__()
        n = image_size.bit_length() - 1                               # image_size = 2^n
        if image_size < 4 or image_size != 1 << n:
            raise ValueError(f"image size must be a power of two, at least 4 (got {image_size})")
        if num_classes:
            raise ValueError(f"this StyleGAN is unconditional: num_classes must be 0 "
                             f"(got {num_classes}); drop --classes")
        self.z_dim = z_dim
        self.mixing = mixing
        self.gamma = gamma
        self.w_avg_beta = w_avg_beta
        self.group = mbstd_group
        self.lr = lr
        self.betas = (beta1, beta2)
        res = [4 << i for i in range(n - 1)]                          # 4, 8, ..., image_size
        c = {r: min(max_ch, ch * image_size // r) for r in res}       # ch at full size, doubling
        self.num_layers = 2 * len(res)                                # two styles per resolution
        self.layer_res = [r for r in res for _ in (0, 1)]             # each layer's (for noise)

        # 1. f: z -> w, n_mlp FC layers, lr x 0.01
        f = []
        for i in range(n_mlp):
            f += [Equalized(z_dim if i == 0 else w_dim, w_dim, lr_mul=mapping_lr_mul),
                  nn.LeakyReLU(0.2)]
        self.f = nn.Sequential(*f)
        self.register_buffer("w_avg", torch.zeros(w_dim))             # 10. for truncation
        # 5. g: const (c4, 4, 4) -> two layers at 4x4 -> two per resolution to (c_S, S, S) -> RGB
        self.const = nn.Parameter(torch.ones(1, c[4], 4, 4))
        self.g = nn.ModuleList([StyleLayer(c[4], c[4], w_dim, conv=False),
                                StyleLayer(c[4], c[4], w_dim)])
        for r in res[1:]:
            self.g.append(StyleLayer(c[r // 2], c[r], w_dim, up=True))
            self.g.append(StyleLayer(c[r], c[r], w_dim))
        self.to_rgb = Equalized(c[image_size], channels, 1, gain=1.0)

        # 7. D: (C, S, S) -> from RGB (c_S, S, S) -> ... -> (c4, 4, 4) -> minibatch std -> a logit
        from_rgb = Equalized(channels, c[image_size], 1)
        blocks = [nn.Sequential(Equalized(c[r], c[r], 3), nn.LeakyReLU(0.2),
                                Equalized(c[r], c[r // 2], 3), nn.LeakyReLU(0.2),
                                nn.AvgPool2d(2))              # (c_r, r, r) -> (c_r/2, r/2, r/2)
                  for r in reversed(res[1:])]
        self.D = nn.Sequential(from_rgb, nn.LeakyReLU(0.2), *blocks)
        self.D_out = nn.Sequential(Equalized(c[4] + 1, c[4], 3), nn.LeakyReLU(0.2), nn.Flatten(),
                                   Equalized(c[4] * 16, c[4]), nn.LeakyReLU(0.2),
                                   Equalized(c[4], 1, gain=1.0))

    def mapping(self, z):
        """1. w = f(z): (B, z_dim) -> (B, w_dim)."""
        return self.f(pixel_norm(z))

    def noises(self, n):
        """4. One fixed set of noise images, (n, 1, r, r) per layer, for synthesis(ws, noise)."""
        return [torch.randn(n, 1, r, r, device=self.const.device) for r in self.layer_res]

    def synthesis(self, ws, noise=None):
        """5. x = g(w): (B, L, w_dim), a w per layer -> (B, C, S, S). Fresh noise unless given."""
        h = self.const.expand(ws.shape[0], -1, -1, -1)                # (B, c4, 4, 4)
        for i, layer in enumerate(self.g):
            h = layer(h, ws[:, i], None if noise is None else noise[i])
        return self.to_rgb(h)                                         # linear, as the paper's

    def critic(self, x, y=None):
        """7. D(x) as a logit: (B, C, S, S) -> (B,)."""
        return self.D_out(minibatch_std(self.D(x), self.group)).flatten()

    def d_loss(self, x, y=None):
        """8. D's step: minimise softplus(D(G(z))) + softplus(-D(x)), the game of gan.py on logits,
        + R1 on the data. The fakes (9., 10.: the block below) are kept, with their graph, in
        self.fake for g_loss."""
        self.fake = self.draw_fakes(x.shape[0], x.device)
        x = x.detach().requires_grad_(self.gamma > 0)
        real = self.critic(x).float()                                 # D(x), a logit
        fake = self.critic(self.fake.detach()).float()                # D's step does not reach G
        terms = {"real": F.softplus(-real).mean(),                    # -log sigmoid(D(x))
                 "fake": F.softplus(fake).mean(),                     # -log(1 - sigmoid(D(G(z))))
                 "D(x)": real.detach().sigmoid().mean(),
                 "D(G(z))": fake.detach().sigmoid().mean()}
        if self.gamma > 0:                                     # R1: gamma/2 E[||grad_x D(x)||^2]
            grad, = torch.autograd.grad(real.sum(), x, create_graph=True)   # D trains on it
            terms["r1"] = self.gamma / 2 * grad.float().pow(2).flatten(1).sum(1).mean()
        return terms

    def g_loss(self, x, y=None):
        """8. G's step, on the fakes d_loss drew: the non-saturating softplus(-D(G(z)))."""
        fake = self.critic(self.fake).float()
        return {"gan": F.softplus(-fake).mean()}                      # -log sigmoid(D(G(z)))

    def configure_optimizers(self):
        """(D's, G's): Adam for D and D_out; for f, const, g and to_rgb."""
        d_params = [p for name, p in self.named_parameters() if name.startswith("D")]
        g_params = [p for name, p in self.named_parameters() if not name.startswith("D")]
        d_opt = torch.optim.Adam(d_params, lr=self.lr, betas=self.betas, eps=1e-8, fused=True)
        g_opt = torch.optim.Adam(g_params, lr=self.lr, betas=self.betas, eps=1e-8, fused=True)
        return d_opt, g_opt

    @torch.no_grad()
    def sample(self, n, y=None, *, psi=1.0, mix=0):
        """z ~ N(0, I), w = f(z), w' = truncate(w, psi), x = g(w'): (n, C, S, S) in [-1, 1].

        psi: truncation, w' = w_avg + psi (w - w_avg); 1 = off (the paper shows 0.7)
        mix: K > 0: the paper's style-mixing table (Fig. 3) at crossover layer K; 0 = off
        With mix, sample.py's square grid is the table: the sample in row r and column c takes
        the layers before K (the coarse styles) from row r's w, the rest from column c's."""
        if not 0 <= mix < self.num_layers:
            raise ValueError(f"--mix is a crossover layer, 1..{self.num_layers - 1} "
                             f"(0 = no mixing; got {mix})")
        if not mix:
            z = torch.randn(n, self.z_dim, device=self.const.device)
            w = self.truncate(self.mapping(z), psi)
            ws = w[:, None].expand(-1, self.num_layers, -1)          # the same w at every layer
            return self.synthesis(ws).clamp(-1, 1)
        cols = math.ceil(math.sqrt(n))                                # the grid's columns
        rows = math.ceil(n / cols)
        z = torch.randn(rows + cols, self.z_dim, device=self.const.device)
        w = self.truncate(self.mapping(z), psi)
        i = torch.arange(n, device=w.device)
        ws = self.styles(w[i // cols], w[rows + i % cols], torch.full((n,), mix, device=w.device))
        return self.synthesis(ws).clamp(-1, 1)

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48, psi=1.0):
        """A walk through W, from w_a to w_b and back, the noise held fixed: (frames, n, C, S, S).

        frames: the number of frames of the walk
        psi: truncation, w' = w_avg + psi (w - w_avg); 1 = off (the paper shows 0.7)
        """
        z = torch.randn(2 * n, self.z_dim, device=self.const.device)
        w_a, w_b = self.truncate(self.mapping(z), psi).chunk(2)
        noise = self.noises(n)
        ease = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2   # 0 -> 1 -> 0
        images = []
        for t in ease:
            w = torch.lerp(w_a, w_b, float(t))
            images.append(self.synthesis(w[:, None].expand(-1, self.num_layers, -1), noise))
        return torch.stack(images).clamp(-1, 1)

    # ---------------------------------------------------------------------------------------------
    # The tricks around the loss: style mixing (9.), and truncation (10.) with the moving average
    # w_avg that it pulls towards, kept up in training.

    def draw_fakes(self, B, device):
        """G(z) for D's step: two z's per fake; a fraction `mixing` of the fakes cross from w_1 to
        w_2 at a random layer (9.); w_avg follows the batch's mean w_1 (10.)."""
        w1, w2 = self.mapping(torch.randn(2 * B, self.z_dim, device=device)).chunk(2)
        with torch.no_grad():                                         # 10. w_avg <- lerp to mean w
            self.w_avg.lerp_(w1.float().mean(0), 1 - self.w_avg_beta)
        mix = torch.rand(B, device=device) < self.mixing              # 9. per sample, no host sync
        layer = torch.randint(1, self.num_layers, (B,), device=device)
        crossover = torch.where(mix, layer, self.num_layers)          # L: no crossover, w_1 only
        return self.synthesis(self.styles(w1, w2, crossover))

    def styles(self, w1, w2, crossover):
        """9. Style mixing: layer l takes w1 where l < crossover, else w2.
        (B, w_dim) x 2, (B,) -> (B, L, w_dim)."""
        l = torch.arange(self.num_layers, device=w1.device)
        return torch.where((l[None, :] < crossover[:, None])[..., None], w1[:, None], w2[:, None])

    def truncate(self, w, psi):
        """10. The truncation trick: w' = w_avg + psi (w - w_avg). psi = 1: w itself; psi = 0: the
        average w."""
        w_avg = self.w_avg.to(w.dtype)
        return w_avg + psi * (w - w_avg)
