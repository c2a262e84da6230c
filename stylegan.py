"""StyleGAN (Karras, Laine & Aila, 2019), with the tricks it keeps from ProGAN (Karras et al., 2018):
a generator that maps z to an intermediate latent w and injects w as a style at every layer.

    1. mapping f      z ~ N(0, I) -> pixel norm z / sqrt(mean(z^2) + eps) -> 8 FC + LeakyReLU(0.2) -> w,
                      its learning rate x 0.01 (lr multiplier)
    2. styles         y = (y_s, y_b) = A(w): a learned affine map per layer, y_s starting at 1
    3. AdaIN          AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i   (Eq. 1, each channel i)
    4. noise          x + B_i * N(0, 1): one noise image per layer, a learned scale B_i per channel
    5. synthesis g    a learned 4x4 constant -> per resolution two 3x3 convs, each followed by noise,
                      LeakyReLU and AdaIN; bilinear x2 upsampling up to image_size; a 1x1 conv to RGB
    6. equal lr       weights stored ~ N(0, 1), scaled at run time by He's constant sqrt(2 / fan_in)
                      (ProGAN 4.1), in G and D, so Adam's step is the same size for every layer
    7. D              from RGB -> per resolution two 3x3 convs, 2x2 average pool -> at 4x4 the minibatch
                      standard deviation (ProGAN 3) as one more feature map -> conv, FC, FC -> a logit
    8. loss           D: softplus(D(G(z))) + softplus(-D(x)) + gamma/2 E[||grad_x D(x)||^2]   (R1, Mescheder
                      et al., 2018); G: softplus(-D(G(z))), the non-saturating loss (gan.py)
    9. style mixing   two z's per fake; layers before a random crossover take w_1, the rest w_2
   10. truncation     w' = w_avg + psi (w - w_avg), w_avg the moving average of f(z) seen in training

Left out: progressive growing with fade-in (StyleGAN 2019 grows as ProGAN did; StyleGAN2, Karras et al.,
2020, dropped it for a network of fixed size, as here), the blur after each up- and downsampling (bilinear
upsampling and average pooling filter instead), lazy R1 (a Python step counter in d_loss would make
torch.compile recompile every step) and conditioning. Defaults are the paper's except the widths, small
for a CPU (--ch, --max-ch, --z-dim, --w-dim; the paper's are 512 at every resolution up to 32x32, and
512 for z and w). gamma = 10 is the paper's for 1024x1024 faces; small images want less (--gamma 0.1).

    python train.py stylegan --image-size 16                         # the built-in shapes
    python train.py stylegan --data ./fashion-mnist --image-size 32
    python sample.py runs/stylegan/ckpt.pt --psi 0.7 --mix 4         # truncation; a style-mixing table
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


class Equalized(nn.Module):
    """6. A linear layer (k = 0) or a k x k conv with the equalised learning rate: w ~ N(0, 1) stored, w * c used,
    c = gain * lr_mul / sqrt(fan_in). With lr_mul < 1 the stored weights start at std 1 / lr_mul, so Adam's
    steps of fixed size move the used weights lr_mul times as far (the mapping network's 0.01)."""

    def __init__(self, c_in, c_out, k=0, gain=2**0.5, lr_mul=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn((c_out, c_in, k, k) if k else (c_out, c_in)) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale, self.lr_mul = gain * lr_mul / math.sqrt(c_in * max(k, 1) ** 2), lr_mul   # He: sqrt(2 / fan_in)

    def forward(self, x):
        w, b = self.weight * self.scale, self.bias * self.lr_mul
        return F.linear(x, w, b) if self.weight.dim() == 2 else F.conv2d(x, w, b, padding=self.weight.shape[-1] // 2)


def pixel_norm(z, eps=1e-8):
    """1. Each sample to unit mean square: z / sqrt(mean_j z_j^2 + eps)."""
    return z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + eps)


def adain(x, y_s, y_b, eps=1e-8):
    """3. Eq. 1: AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i, mu and sigma over each channel's pixels."""
    mu = x.mean((2, 3), keepdim=True)                                         # (B, C, 1, 1)
    sigma = (x.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return y_s[:, :, None, None] * (x - mu) / sigma + y_b[:, :, None, None]


def minibatch_std(h, group=4, eps=1e-8):
    """7. ProGAN 3: the std of each feature at each position over a group of samples, averaged over features and
    positions: one number per group, appended as a constant feature map. (B, C, H, W) -> (B, C + 1, H, W)."""
    B, C, H, W = h.shape
    g = math.gcd(B, group)                                                    # groups of g consecutive samples
    sigma = (h.float().reshape(-1, g, C, H, W).var(1, unbiased=False) + eps).sqrt()   # (B/g, C, H, W): over each group
    s = sigma.mean((1, 2, 3)).to(h.dtype).repeat_interleave(g)               # (B,): each sample gets its group's
    return torch.cat([h, s.view(B, 1, 1, 1).expand(B, 1, H, W)], 1)


class StyleLayer(nn.Module):
    """5. One layer of g: [x2 upsampling, 3x3 conv] -> + B * noise (4.) -> LeakyReLU -> AdaIN with y = A(w) (2., 3.)."""

    def __init__(self, c_in, c_out, w_dim, conv=True, up=False):
        super().__init__()
        self.conv, self.up = Equalized(c_in, c_out, 3) if conv else None, up
        self.B = nn.Parameter(torch.zeros(c_out))                               # noise scales, 0 at first
        self.A = Equalized(w_dim, 2 * c_out, gain=1.0)                          # y = (y_s, y_b) = A(w)
        with torch.no_grad():
            self.A.bias[:c_out] = 1.0                                           # y_s = 1 + ...: scales around 1, not 0

    def forward(self, h, w, noise=None):
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        if self.conv is not None:
            h = self.conv(h)
        noise = torch.randn_like(h[:, :1]) if noise is None else noise        # (B, 1, H, W): one image, all channels
        h = F.leaky_relu(h + self.B.view(1, -1, 1, 1) * noise, 0.2)
        y_s, y_b = self.A(w).chunk(2, 1)                                        # (B, C) each
        return adain(h, y_s, y_b)


class StyleGAN(nn.Module):
    batch_size = 32
    sampling_networks = ("synthesis",)   # what sample.py --compile compiles
    ema_decay = 0.999              # sample.py draws with the moving average of G's weights, as the paper's G-bar

    def __init__(self, image_size=32, channels=3, num_classes=0, *, z_dim=128, w_dim=128, n_mlp=8, ch=32,
                 max_ch=128, mapping_lr_mul=0.01, mixing=0.9, gamma=10.0, w_avg_beta=0.995, mbstd_group=4,
                 lr=1e-3, beta1=0.0, beta2=0.99):
        super().__init__()
        n = image_size.bit_length() - 1                                         # image_size = 2^n
        if image_size < 4 or image_size != 1 << n:
            raise ValueError(f"image size must be a power of two, at least 4 (got {image_size})")
        if num_classes:
            raise ValueError(f"this StyleGAN is unconditional: num_classes must be 0 (got {num_classes}); drop --classes")
        self.z_dim, self.mixing, self.gamma, self.w_avg_beta, self.group = z_dim, mixing, gamma, w_avg_beta, mbstd_group
        self.lr, self.betas = lr, (beta1, beta2)
        res = [4 << i for i in range(n - 1)]                                      # 4, 8, ..., image_size
        c = {r: min(max_ch, ch * image_size // r) for r in res}                 # widths: ch at full size, doubling down
        self.num_layers = 2 * len(res)                                          # two styles per resolution
        self.layer_res = [r for r in res for _ in (0, 1)]                       # each layer's resolution (for noise)

        # 1. f: z -> w, 8 FC layers, lr x 0.01
        self.f = nn.Sequential(*[m for i in range(n_mlp) for m in
                                 (Equalized(z_dim if i == 0 else w_dim, w_dim, lr_mul=mapping_lr_mul), nn.LeakyReLU(0.2))])
        self.register_buffer("w_avg", torch.zeros(w_dim))                       # 10. for truncation
        # 5. g: const (c4, 4, 4) -> two layers at 4x4 -> two per resolution up to (c_S, S, S) -> 1x1 to RGB
        self.const = nn.Parameter(torch.ones(1, c[4], 4, 4))
        self.g = nn.ModuleList([StyleLayer(c[4], c[4], w_dim, conv=False), StyleLayer(c[4], c[4], w_dim)])
        for r in res[1:]:
            self.g.extend([StyleLayer(c[r // 2], c[r], w_dim, up=True), StyleLayer(c[r], c[r], w_dim)])
        self.to_rgb = Equalized(c[image_size], channels, 1, gain=1.0)

        # 7. D: (C, S, S) -> from RGB (c_S, S, S) -> ... -> (c4, 4, 4) -> minibatch std -> conv, FC, FC -> a logit
        self.D = nn.Sequential(Equalized(channels, c[image_size], 1), nn.LeakyReLU(0.2), *[nn.Sequential(
            Equalized(c[r], c[r], 3), nn.LeakyReLU(0.2), Equalized(c[r], c[r // 2], 3), nn.LeakyReLU(0.2),
            nn.AvgPool2d(2)) for r in reversed(res[1:])])                      # (c_r, r, r) -> (c_r/2, r/2, r/2)
        self.D_out = nn.Sequential(Equalized(c[4] + 1, c[4], 3), nn.LeakyReLU(0.2), nn.Flatten(),
                                   Equalized(c[4] * 16, c[4]), nn.LeakyReLU(0.2), Equalized(c[4], 1, gain=1.0))

    def mapping(self, z):
        """1. w = f(z): (B, z_dim) -> (B, w_dim)."""
        return self.f(pixel_norm(z))

    def truncate(self, w, psi):
        """10. The truncation trick: w' = w_avg + psi (w - w_avg). psi = 1: w itself; psi = 0: the average w."""
        return self.w_avg.to(w.dtype) + psi * (w - self.w_avg.to(w.dtype))

    def styles(self, w1, w2, crossover):
        """9. Style mixing: layer l takes w1 where l < crossover, else w2. (B, w_dim) x 2, (B,) -> (B, L, w_dim)."""
        l = torch.arange(self.num_layers, device=w1.device)
        return torch.where((l[None, :] < crossover[:, None])[..., None], w1[:, None], w2[:, None])

    def noises(self, n):
        """4. One fixed set of noise images, (n, 1, r, r) per layer, for synthesis(..., noise=...)."""
        return [torch.randn(n, 1, r, r, device=self.const.device) for r in self.layer_res]

    def synthesis(self, ws, noise=None):
        """5. x = g(w): (B, L, w_dim), a w per layer -> (B, C, S, S). Fresh noise unless `noise` is given."""
        h = self.const.expand(ws.shape[0], -1, -1, -1)                           # (B, c4, 4, 4)
        for i, layer in enumerate(self.g):
            h = layer(h, ws[:, i], None if noise is None else noise[i])
        return self.to_rgb(h)                                                    # linear output, as the paper's

    def critic(self, x, y=None):
        """7. D(x) as a logit: (B, C, S, S) -> (B,)."""
        return self.D_out(minibatch_std(self.D(x), self.group)).flatten()

    def d_loss(self, x, y=None):
        B = x.shape[0]
        w1, w2 = self.mapping(torch.randn(2 * B, self.z_dim, device=x.device)).chunk(2)
        with torch.no_grad():                                                   # 10. w_avg <- lerp to the batch mean of w
            self.w_avg.lerp_(w1.float().mean(0), 1 - self.w_avg_beta)
        mix = torch.rand(B, device=x.device) < self.mixing                      # 9. per sample, no host sync
        crossover = torch.where(mix, torch.randint(1, self.num_layers, (B,), device=x.device), self.num_layers)
        self.fake = self.synthesis(self.styles(w1, w2, crossover))             # kept, with its graph, for g_loss
        x = x.detach().requires_grad_(self.gamma > 0)
        real, fake = self.critic(x).float(), self.critic(self.fake.detach()).float()
        # 8. D's logistic loss: -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))) = softplus(-D(x)) + softplus(D(G(z)))
        terms = {"real": F.softplus(-real).mean(), "fake": F.softplus(fake).mean(),
                 "D(x)": real.detach().sigmoid().mean(), "D(G(z))": fake.detach().sigmoid().mean()}
        if self.gamma > 0:                                                       # 8. R1: gamma/2 E ||grad_x D(x)||^2 on data
            grad, = torch.autograd.grad(real.sum(), x, create_graph=True)       # create_graph: D trains on it
            terms["r1"] = self.gamma / 2 * grad.float().pow(2).flatten(1).sum(1).mean()
        return terms

    def g_loss(self, x, y=None):
        fake = self.critic(self.fake).float()
        return {"gan": F.softplus(-fake).mean()}                                 # 8. non-saturating: -log sigmoid(D(G(z)))

    def configure_optimizers(self):
        d_params = [p for name, p in self.named_parameters() if name.startswith("D")]
        g_params = [p for name, p in self.named_parameters() if not name.startswith("D")]   # f, const, g, to_rgb
        return (torch.optim.Adam(d_params, lr=self.lr, betas=self.betas, eps=1e-8, fused=True),
                torch.optim.Adam(g_params, lr=self.lr, betas=self.betas, eps=1e-8, fused=True))

    @torch.no_grad()
    def sample(self, n, y=None, *, psi=1.0, mix=0):
        """z ~ N(0, I), w = f(z), w' = truncate(w, psi), x = g(w'). Returns (n, C, S, S), clamped to [-1, 1].
        mix = K > 0: the paper's style-mixing table (Fig. 3) as sample.py's square grid: the sample in row r and
        column c takes the layers before K (the coarse styles) from row r's w, the rest from column c's."""
        if not 0 <= mix < self.num_layers:
            raise ValueError(f"--mix is a crossover layer, 1..{self.num_layers - 1} (0 = no mixing; got {mix})")
        if not mix:
            w = self.truncate(self.mapping(torch.randn(n, self.z_dim, device=self.const.device)), psi)
            return self.synthesis(w[:, None].expand(-1, self.num_layers, -1)).clamp(-1, 1)   # the same w at every layer
        cols = math.ceil(math.sqrt(n))                                           # data.grid's columns
        rows = math.ceil(n / cols)
        w = self.truncate(self.mapping(torch.randn(rows + cols, self.z_dim, device=self.const.device)), psi)
        i = torch.arange(n, device=w.device)
        ws = self.styles(w[i // cols], w[rows + i % cols], torch.full((n,), mix, device=w.device))
        return self.synthesis(ws).clamp(-1, 1)

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48, psi=1.0):
        """A walk through W, from w_a to w_b and back, the noise held fixed. (frames, n, C, S, S)."""
        w_a, w_b = self.truncate(self.mapping(torch.randn(2 * n, self.z_dim, device=self.const.device)), psi).chunk(2)
        noise, t = self.noises(n), (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2
        return torch.stack([self.synthesis(torch.lerp(w_a, w_b, float(s))[:, None].expand(-1, self.num_layers, -1),
                                           noise).clamp(-1, 1) for s in t])
