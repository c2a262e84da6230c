"""StyleGAN (Karras, Laine & Aila, 2019), built on ProGAN (progan.py: equalised lr, pixel
norm, minibatch std, D, growing): a generator that maps z to an intermediate latent w and
injects w as a style at every layer; StyleGAN2's modulated convolution and a conditional
model as options.

    1. mapping f      z ~ N(0, I) -> pixel norm z / sqrt(mean(z^2) + eps) -> 8 FC +
                      LeakyReLU(0.2) -> w, its learning rate x 0.01 (lr multiplier)
    2. styles         y = (y_s, y_b) = A(w): a learned affine map per layer, y_s from 1
    3. AdaIN          AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i
                      (Eq. 1, channel i)
       --demod        StyleGAN2 (Karras et al., 2020, Sec. 2.2) instead: s = A(w) per
                      input channel i, w'_ijk = s_i w_ijk (Eq. 1),
                      w''_ijk = w'_ijk / sqrt(sum_i,k w'_ijk^2 + eps) (Eq. 3), per sample;
                      no instance norm (its droplets)
    4. noise          x + B_i * N(0, 1): one noise image per layer, a learned scale B_i
                      per channel
    5. synthesis g    a learned 4x4 constant -> per resolution two 3x3 convs, each
                      followed by noise, LeakyReLU and AdaIN; bilinear x2 upsampling up to
                      image_size; a 1x1 conv to RGB (with --demod the constant goes through
                      a conv too)
    6. D              ProGAN's (progan.py 5.), its score a logit
    7. growing        --progressive: ProGAN's schedule and fade-in (progan.py 6.-8.), as
                      StyleGAN trained; off, a network of fixed size, as StyleGAN2's
    8. loss           the GAN game of gan.py on logits, non-saturating: D minimises
                      softplus(D(G(z))) + softplus(-D(x)) + gamma/2 E[||grad_x D(x)||^2]
                      (R1, Mescheder et al., 2018); G minimises softplus(-D(G(z)))
    9. style mixing   two z's per fake; layers before a random crossover take w_1, the
                      rest w_2
   10. truncation     w' = w_avg + psi (w - w_avg), w_avg the moving average of f(z)
   11. condition      f's input [z, pixel norm(embed(y))] (StyleGAN2-ADA, Karras et al.,
                      2020); D's logit the projection <phi(x), pixel norm(embed_D(y))> /
                      sqrt(c4) (Miyato & Koyama, 2018, in ADA's form); y: class ids or a
                      multi-hot set

Left out: the blur after resampling, StyleGAN2's modulated toRGB, skips and path length
penalty, lazy R1 (a step counter in d_loss: torch.compile would recompile). Defaults are the
paper's but the widths, small for a CPU (--ch, --max-ch, --z-dim, --w-dim); gamma = 10 is
for 1024x1024 faces.

    python train.py stylegan --data ./fashion-mnist --image-size 32 --demod --classes
    python sample.py runs/stylegan/ckpt.pt --psi 0.7 --mix 4   # truncation; a mixing table
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
# ProGAN's pieces, which StyleGAN keeps
from progan import Equalized, adam, discriminator, features, minibatch_std, pixel_norm
from progan import reals, resolutions, schedule, to_image


def adain(x, y_s, y_b, eps=1e-8):
    """3. Eq. 1, AdaIN(x_i, y), mu and sigma over each channel's pixels."""
    mu = x.mean((2, 3), keepdim=True)                                   # (B, C, 1, 1)
    sigma = (x.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return y_s[:, :, None, None] * (x - mu) / sigma + y_b[:, :, None, None]


def modulated_conv(x, conv, s, eps=1e-8):
    """3. StyleGAN2's modulated convolution: each sample's styles s (B, I) scale conv's
    weights, which are then demodulated; one grouped conv runs all samples.
    (B, I, H, W) -> (B, O, H, W)."""
    B, I, H, W = x.shape
    weight = conv.weight * conv.scale                                   # (O, I, k, k)
    # Eq. 1: w'_ijk = s_i w_ijk; Eq. 3: demodulated over i and k
    w1 = s[:, None, :, None, None] * weight
    w2 = w1 * torch.rsqrt(w1.pow(2).sum((2, 3, 4), keepdim=True) + eps)
    O, k = weight.shape[0], weight.shape[-1]
    h = F.conv2d(x.reshape(1, B * I, H, W), w2.reshape(B * O, I, k, k), padding=k // 2,
                 groups=B)
    return h.reshape(B, O, H, W) + conv.bias.view(1, -1, 1, 1)


class StyleLayer(nn.Module):
    """5. One layer of g: [x2 upsampling, 3x3 conv] -> + B * noise (4.) -> LeakyReLU ->
    AdaIN with y = A(w) (2., 3.); with demod, a conv modulated by s = A(w), no AdaIN."""

    def __init__(self, c_in, c_out, w_dim, conv=True, up=False, demod=False):
        super().__init__()
        self.conv = Equalized(c_in, c_out, 3) if conv or demod else None
        self.up = up
        self.demod = demod
        # the noise scales, 0 at first
        self.B = nn.Parameter(torch.zeros(c_out))
        # y = A(w): s_i, or (y_s, y_b); s or y_s start near 1
        scales = c_in if demod else c_out
        self.A = Equalized(w_dim, scales if demod else 2 * c_out, gain=1.0)
        with torch.no_grad():
            self.A.bias[:scales] = 1.0

    def forward(self, h, w, noise=None):
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        if self.demod:
            h = modulated_conv(h, self.conv, self.A(w))
        elif self.conv is not None:
            h = self.conv(h)
        if noise is None:
            # (B, 1, H, W): one image for all channels
            noise = torch.randn_like(h[:, :1])
        h = F.leaky_relu(h + self.B.view(1, -1, 1, 1) * noise, 0.2)
        if self.demod:
            return h
        y_s, y_b = self.A(w).chunk(2, 1)
        return adain(h, y_s, y_b)


class StyleGAN(nn.Module):
    batch_size = 32
    sampling_networks = ("synthesis",)   # what sample.py --compile compiles
    ema_decay = 0.999                    # G's moving average, the paper's G-bar
    # the growing schedule's (settings.py's needs)
    needs = {"fade_images": {"progressive": True}, "stable_images": {"progressive": True}}

    def __init__(self, image_size=32, channels=3, num_classes=0, *, z_dim=128, w_dim=128,
                 n_mlp=8, ch=32, max_ch=128, mapping_lr_mul=0.01, mixing=0.9, gamma=10.0,
                 w_avg_beta=0.995, mbstd_group=4, demod=False, progressive=False,
                 fade_images=60_000, stable_images=60_000, lr=1e-3, beta1=0.0,
                 beta2=0.99):
        """The networks and their optimisers' settings; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I) (paper: 512)
        w_dim: length of the intermediate latent w = f(z) (paper: 512)
        n_mlp: fully connected layers of the mapping network f (paper: 8)
        ch: channels at the full image size, doubled per halving up to max_ch (paper: 512)
        max_ch: the most channels of any layer (paper: 512)
        mapping_lr_mul: the mapping network f's learning rate multiplier (paper: 0.01)
        mixing: the fraction of fakes drawn with style mixing (paper: 0.9)
        gamma: the weight of R1, gamma/2 E[||grad_x D(x)||^2] (paper: 10, for 1024x1024)
        w_avg_beta: decay of w_avg, the mean w truncation pulls to (paper: 0.995, its code)
        mbstd_group: samples per group of the minibatch standard deviation
        demod: StyleGAN2's modulated, demodulated convolutions instead of AdaIN
        progressive: grow from 4x4 with ProGAN's fade-in, as StyleGAN (StyleGAN2: off)
        fade_images: --progressive: images seen while a resolution fades in (paper: 600k)
        stable_images: --progressive: images seen at each resolution once in (paper: 600k)
        lr: Adam's learning rate
        beta1: Adam's beta1 (paper: 0)
        beta2: Adam's beta2 (paper: 0.99)
        """
        super().__init__()
        # 4, ..., S; each one's width
        res, c = resolutions(image_size, ch, max_ch)
        # 1. f: z -> w, n_mlp FC layers, lr x 0.01; 11. y's embedding joins z
        self.embed = Equalized(num_classes, w_dim, gain=1.0) if num_classes else None
        f = []
        for i in range(n_mlp):
            c_in = w_dim if i else z_dim + (w_dim if num_classes else 0)
            f += [Equalized(c_in, w_dim, lr_mul=mapping_lr_mul), nn.LeakyReLU(0.2)]
        self.f = nn.Sequential(*f)
        # 5. g: const (c4, 4, 4) -> two layers at 4x4 -> two per resolution up to S -> RGB
        self.const = nn.Parameter(torch.ones(1, c[4], 4, 4))
        self.g = nn.ModuleList([StyleLayer(c[4], c[4], w_dim, conv=False, demod=demod),
                                StyleLayer(c[4], c[4], w_dim, demod=demod)])
        for r in res[1:]:
            self.g.append(StyleLayer(c[r // 2], c[r], w_dim, up=True, demod=demod))
            self.g.append(StyleLayer(c[r], c[r], w_dim, demod=demod))
        self.to_rgb = nn.ModuleList(Equalized(c[r], channels, 1, gain=1.0)
                                    for r in (res if progressive else res[-1:]))
        # 6. D: ProGAN's, (C, S, S) -> fromRGB -> ... -> (c4, 4, 4) -> mbstd -> a logit
        self.D_rgb, self.D, self.D_out = discriminator(channels, c, res, progressive,
                                                       out=c[4] if num_classes else 1)
        self.D_embed = Equalized(num_classes, c[4], gain=1.0) if num_classes else None
        # 10. for truncation; 7. the images seen
        self.register_buffer("w_avg", torch.zeros(w_dim))
        if progressive:
            self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.levels = len(res)
        # two styles per resolution
        self.num_layers = 2 * len(res)
        self.image_size = image_size
        self.num_classes = num_classes
        self.z_dim = z_dim
        self.mixing = mixing
        self.gamma = gamma
        self.w_avg_beta = w_avg_beta
        self.group = mbstd_group
        self.progressive = progressive
        self.phases = (fade_images, stable_images)
        self.lr = lr
        self.betas = (beta1, beta2)

    def phase(self):
        """7. (level, alpha) of this step, from the images seen; not growing, full size."""
        if not self.progressive:
            return self.levels - 1, 1.0
        return schedule(int(self.seen), self.levels, *self.phases)

    def embedded(self, embed, n, y):
        """11. pixel norm(embed(y)), y's class ids one-hot (or multi-hot sets) repeated up
        to n; no y: every class in turn."""
        y = torch.arange(n, device=self.const.device) if y is None else y
        y = y[torch.arange(n, device=y.device) % len(y)]
        onehot = F.one_hot(y % self.num_classes, self.num_classes) if y.dim() == 1 else y
        return pixel_norm(embed(onehot.float()))

    def mapping(self, z, y=None):
        """1. w = f(z), or f(z, y) (11.; no y: every class in turn): (B, w_dim)."""
        z = pixel_norm(z)
        if self.embed is not None:
            # 11. [z, e]
            z = torch.cat([z, self.embedded(self.embed, len(z), y).to(z.dtype)], 1)
        return self.f(z)

    def noises(self, n):
        """4. One fixed set of noise images, (n, 1, r, r) per layer, for synthesis."""
        device = self.const.device
        return [torch.randn(n, 1, 4 << i // 2, 4 << i // 2, device=device)
                for i in range(self.num_layers)]

    def synthesis(self, ws, noise=None):
        """5. x = g(w): (B, L, w_dim), a w per layer -> (B, C, S, S). Fresh noise unless
        given. Growing (7.): the phase's layers, the image upsampled from r to S."""
        level, alpha = self.phase()
        h = self.const.expand(ws.shape[0], -1, -1, -1)                   # (B, c4, 4, 4)
        # each resolution's h
        hs = []
        for i, layer in enumerate(self.g[:2 * level + 2]):
            h = layer(h, ws[:, i], None if noise is None else noise[i])
            if i % 2:
                hs.append(h)
        # linear, as the paper's; r -> S (nearest)
        x = to_image(self.to_rgb, hs, alpha, self.levels)
        return F.interpolate(x, size=self.image_size)

    def logits(self, x, y=None):
        """6. D(x | y) as a logit: (B, C, r, r) at the phase's size r (or more) -> (B,)."""
        h = features(self.D_rgb, self.D, x, *self.phase())
        h = self.D_out(minibatch_std(h, self.group))
        if self.D_embed is None:
            return h.flatten()
        # 11. the class's direction: <phi(x), e> / sqrt(c4)
        e = self.embedded(self.D_embed, len(h), y).to(h.dtype)
        return (h * e).sum(1) / math.sqrt(h.shape[1])

    def d_loss(self, x, y=None):
        """8. D's step: minimise softplus(D(G(z))) + softplus(-D(x)), the game of gan.py
        on logits, + R1 on the data. The fakes (9., 10.) are kept, with their graph, for
        g_loss."""
        self.fake = self.draw_fakes(x.shape[0], x.device, y)
        # 7. at r (S fixed)
        x = reals(x, *self.phase()).detach().requires_grad_(self.gamma > 0)
        real = self.logits(x, y).float()
        # D's step does not reach G
        fake = self.logits(self.fake.detach(), y).float()
        # -log sigmoid(D(x)), -log(1 - sigmoid(D(G(z))))
        terms = {"real": F.softplus(-real).mean(),
                 "fake": F.softplus(fake).mean(),
                 "D(x)": real.detach().sigmoid().mean(),
                 "D(G(z))": fake.detach().sigmoid().mean()}
        if self.gamma > 0:
            # R1: gamma/2 E[||grad_x D(x)||^2]; D trains on it
            grad, = torch.autograd.grad(real.sum(), x, create_graph=True)
            terms["r1"] = self.gamma / 2 * grad.float().pow(2).flatten(1).sum(1).mean()
        return terms

    def g_loss(self, x, y=None):
        """8. G's step on d_loss's fakes: the non-saturating softplus(-D(G(z))) =
        -log sigmoid(D(G(z))); then 7. counts."""
        fake = self.logits(self.fake, y).float()
        if self.progressive:
            self.seen += len(self.fake)
        return {"gan": F.softplus(-fake).mean()}

    def configure_optimizers(self):
        """(D's, G's): Adam for D_rgb, D, D_out, D_embed; for embed, f, const, g, to_rgb."""
        return adam(self, self.lr, self.betas)

    @torch.no_grad()
    def sample(self, n, y=None, *, psi=1.0, mix=0):
        """z ~ N(0, I), w = f(z), w' = truncate(w, psi), x = g(w'): (n, C, S, S).

        psi: truncation, w' = w_avg + psi (w - w_avg); 1 = off (the paper shows 0.7)
        mix: K > 0: the paper's style-mixing table (Fig. 3) at crossover layer K; 0 = off
        With mix, sample.py's square grid is the table: row r's w gives the layers before
        K (the coarse styles), column c's the rest."""
        if not 0 <= mix < self.num_layers:
            raise ValueError(f"--mix is a crossover layer, 1..{self.num_layers - 1} "
                             f"(0 = no mixing; got {mix})")
        if not mix:
            z = torch.randn(n, self.z_dim, device=self.const.device)
            w = self.truncate(self.mapping(z, y), psi)
            # the same w at every layer
            return self.synthesis(w[:, None].expand(-1, self.num_layers, -1)).clamp(-1, 1)
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        z = torch.randn(rows + cols, self.z_dim, device=self.const.device)
        w = self.truncate(self.mapping(z, y), psi)
        i = torch.arange(n, device=w.device)
        ws = self.styles(w[i // cols], w[rows + i % cols], torch.full((n,), mix, device=w.device))
        return self.synthesis(ws).clamp(-1, 1)

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48, psi=1.0):
        """A walk through W, from w_a to w_b and back, the noise held fixed:
        (frames, n, C, S, S).

        frames: the number of frames of the walk
        psi: truncation, w' = w_avg + psi (w - w_avg); 1 = off (the paper shows 0.7)
        """
        z = torch.randn(2 * n, self.z_dim, device=self.const.device)
        w_a, w_b = self.truncate(self.mapping(z, y), psi).chunk(2)
        noise = self.noises(n)
        # 0 -> 1 -> 0
        ease = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2
        images = []
        for t in ease:
            w = torch.lerp(w_a, w_b, float(t))
            ws = w[:, None].expand(-1, self.num_layers, -1)
            images.append(self.synthesis(ws, noise))
        return torch.stack(images).clamp(-1, 1)

    # -----------------------------------------------------------------------------------
    # The tricks around the loss: style mixing (9.), truncation (10.) and its w_avg

    def draw_fakes(self, B, device, y=None):
        """G(z) for D's step: two z's per fake; a fraction `mixing` of the fakes cross
        from w_1 to w_2 at a random layer (9.); w_avg follows the batch's mean w_1 (10.)."""
        w1, w2 = self.mapping(torch.randn(2 * B, self.z_dim, device=device), y).chunk(2)
        # 10. w_avg <- lerp to the mean w
        with torch.no_grad():
            self.w_avg.lerp_(w1.float().mean(0), 1 - self.w_avg_beta)
        # 9. per sample, no host sync; crossover L: w_1 only
        mix = torch.rand(B, device=device) < self.mixing
        layer = torch.randint(1, self.num_layers, (B,), device=device)
        crossover = torch.where(mix, layer, self.num_layers)
        return self.synthesis(self.styles(w1, w2, crossover))

    def styles(self, w1, w2, crossover):
        """9. Style mixing: layer l takes w1 where l < crossover, else w2.
        (B, w_dim) x 2, (B,) -> (B, L, w_dim)."""
        l = torch.arange(self.num_layers, device=w1.device)
        first = (l[None, :] < crossover[:, None])[..., None]
        return torch.where(first, w1[:, None], w2[:, None])

    def truncate(self, w, psi):
        """10. The truncation trick: w' = w_avg + psi (w - w_avg). psi = 1: w itself;
        psi = 0: the average w."""
        w_avg = self.w_avg.to(w.dtype)
        return w_avg + psi * (w - w_avg)
