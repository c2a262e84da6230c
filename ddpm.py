"""Denoising diffusion probabilistic models (Ho et al., 2020), sampled by Algorithm 2 or by DDIM
(Song et al., 2021); class-conditional with classifier-free guidance (Ho & Salimans, 2022);
img2img by SDEdit (Meng et al., 2022) and inpainting.

    1. schedule    beta_t from 1e-4 to 0.02 linearly, t = 1..T, T = 1000;
                   alpha_t = 1 - beta_t, alpha_bar_t = prod_{s <= t} alpha_s
    2. forward     q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)                    (Eq. 4)
    3. training    t ~ U{1..T}, eps ~ N(0, I),
                   L_simple = || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2   (Eq. 14)
                   as a mean over pixels: a network that predicts 0 scores 1
    4. posterior   q(x_{t-1} | x_t, x_0) = N(mu~_t(x_t, x_0), beta~_t I),
                   beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t                        (Eq. 6, 7)
    5. sampling    x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) + sigma_t z,
                   sigma_t^2 = beta_t or beta~_t                                                  (Eq. 11, Algorithm 2)
                   by default x0_hat (Eq. 4 solved for x_0) is clipped to [-1, 1] first, as in Ho et al.'s code
    6. DDIM        x_{t'} = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t' - sigma^2) eps_theta + sigma z
                   on a subsequence of S steps; eta = 0 is deterministic                          (Song et al., Eq. 12)
                   the S steps spaced as in Lin et al., 2024 (linspace, leading, trailing) or in log-SNR;
                   x0_hat clipped, or dynamically thresholded at a per-sample percentile (Saharia et al., 2022)
    7. guidance    eps = eps_uncond + s (eps_cond - eps_uncond), s the guidance scale; the condition is dropped
                   with p_uncond in training so that the network learns eps_uncond too
    8. condition   y a class id c, or a set of labels as a multi-hot vector (B, K), embedded linearly:
                   emb(y) = y W, the sum of the present labels' rows of W; a class id is its one-hot
                   vector e_c (the same maths); the all-zero vector, emb = 0, is the null condition

Index convention: the buffers are indexed 0..T-1 and entry i holds step t = i + 1.

    python train.py ddpm                                   # the built-in shapes, 32x32
    python train.py ddpm --data ./celeba                   # a folder of images, 64x64
    python train.py ddpm --ch 128 --ch-mult 1,2,2,2 --dropout 0.1 --data ./cifar10   # the paper's CIFAR-10 network
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- the network eps_theta(x_t, t, y)

def zero(layer):
    """Zeros for the last layer of each residual branch and of the output, as in Ho et al.'s released
    network: every block starts as its skip connection, and the network as eps_theta = 0 (loss 1)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def onehot(y, num_classes):
    """The condition as the network reads it: class ids (B,) -> one-hot (B, K). Class c is exactly the
    vector e_c, so a class id and a set of labels go one path; a multi-hot (B, K) set passes as float.
    With no classes (num_classes = 0) y is passed as it is: a caption's token ids (B, L), for ldm.py."""
    if y is None or not num_classes:
        return y
    return F.one_hot(y, num_classes).float() if y.dim() == 1 else y.float()


def timestep_embedding(t, dim):
    """Sinusoidal embedding of the step, as the Transformer's positions: (B,) -> (B, dim), in float32."""
    freqs = torch.exp(-math.log(10_000) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv; plus the step embedding; GroupNorm, SiLU, dropout, conv; plus the input."""

    def __init__(self, c_in, c_out, emb_dim, dropout):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(32, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(32, c_out), zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb, context=None):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]                        # the step (and label) enters here
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over the H * W positions, one head, as in the DDPM network. With context_dim,
    cross-attention follows (ldm.py): queries from the image, keys and values from a caption's tokens."""

    def __init__(self, c, context_dim=0):
        super().__init__()
        self.norm, self.qkv, self.proj = nn.GroupNorm(32, c), nn.Conv2d(c, 3 * c, 1), zero(nn.Conv2d(c, c, 1))
        if context_dim:
            self.norm_x, self.q = nn.GroupNorm(32, c), nn.Conv2d(c, c, 1)
            self.kv, self.proj_x = nn.Linear(context_dim, 2 * c), zero(nn.Conv2d(c, c, 1))

    def forward(self, x, emb=None, context=None):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2)[:, None].chunk(3, dim=-1)   # (B, 1, HW, C) each
        h = F.scaled_dot_product_attention(q, k, v)                             # softmax(q k^T / sqrt(C)) v
        x = x + self.proj(h[:, 0].transpose(1, 2).reshape(B, C, H, W))
        if context is None:
            return x
        q = self.q(self.norm_x(x)).flatten(2).transpose(1, 2)[:, None]           # (B, 1, HW, C): from the image
        k, v = self.kv(context)[:, None].chunk(2, dim=-1)                       # (B, 1, L, C): from the tokens
        h = F.scaled_dot_product_attention(q, k, v)                             # each pixel reads the caption
        return x + self.proj_x(h[:, 0].transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    """eps_theta(x_t, t, y): a U-Net whose levels halve the resolution, ResBlocks taking the step
    embedding, self-attention at the resolutions in attn_res, and skip connections across."""

    def __init__(self, image_size, channels, num_classes, ch, ch_mult, num_res_blocks, attn_res, dropout,
                 context_dim=0):
        super().__init__()
        emb_dim = 4 * ch
        self.ch = ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.num_classes = num_classes
        self.label = nn.Embedding(num_classes, emb_dim) if num_classes else None   # W: a row per class (label)
        self.conv_in = nn.Conv2d(channels, ch, 3, padding=1)
        self.down, skips, c, res = nn.ModuleList(), [ch], ch, image_size
        for i, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                self.down.append(nn.ModuleList([ResBlock(c, ch * mult, emb_dim, dropout)] +
                                               ([Attention(ch * mult, context_dim)] if res in attn_res else [])))
                c = ch * mult
                skips.append(c)
            if i < len(ch_mult) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))       # (c, res, res) -> (c, res/2, res/2)
                skips.append(c)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, dropout), Attention(c, context_dim),
                                  ResBlock(c, c, emb_dim, dropout)])
        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(nn.ModuleList([ResBlock(c + skips.pop(), ch * mult, emb_dim, dropout)] +
                                             ([Attention(ch * mult, context_dim)] if res in attn_res else [])))
                c = ch * mult
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
                res *= 2
        self.out = nn.Sequential(nn.GroupNorm(32, c), nn.SiLU(), zero(nn.Conv2d(c, channels, 3, padding=1)))

    def forward(self, x, t, y=None, context=None):
        emb = self.time_mlp(timestep_embedding(t, self.ch))                    # (B, 4 ch)
        if self.label is not None:                                              # 8. emb(y) = y W: (B, K) @ (K, 4 ch);
            emb = emb + onehot(y, self.num_classes) @ self.label.weight         # e_c W is row c, the Embedding lookup
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h) if isinstance(layer, nn.Conv2d) else through(layer, h, emb, context)
            hs.append(h)
        h = through(self.mid, h, emb, context)
        for layer in self.up:
            h = layer(h) if isinstance(layer, nn.Sequential) else through(layer, torch.cat([h, hs.pop()], 1), emb, context)
        return self.out(h)


def through(blocks, h, emb, context):
    """h through a level's blocks (a ResBlock, perhaps an Attention), each given the embedding and context."""
    for block in blocks:
        h = block(h, emb, context)
    return h


# ----------------------------------------------------------------------------- the diffusion process

class DDPM(nn.Module):
    batch_size = 128
    sampling_networks = ("net",)   # what sample.py --compile compiles
    ema_decay = 0.9999       # the paper's EMA; train.py warms it up so short runs are usable
    image_knobs = ("init", "mask")   # sample.py: these sample() keywords are image files, read for the model
    preview = dict(sampler="ddpm", steps=50)   # train.py's grids: the respaced chain, measured closest to 1,000 steps (README)

    def __init__(self, image_size=32, channels=3, num_classes=0, *, T=1000, beta_1=1e-4, beta_T=0.02,
                 ch=64, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_res=(16,), dropout=0.1,
                 p_uncond=0.1, lr=2e-4):
        super().__init__()
        if image_size % 2 ** (len(ch_mult) - 1):
            raise ValueError(f"image size {image_size} does not halve {len(ch_mult) - 1} times (ch_mult {ch_mult})")
        self.T, self.num_classes, self.p_uncond, self.lr = T, num_classes, p_uncond, lr
        self.shape = (channels, image_size, image_size)
        self.net = UNet(image_size, channels, num_classes, ch, ch_mult, num_res_blocks, attn_res, dropout)
        beta = torch.linspace(beta_1, beta_T, T, dtype=torch.float64)             # 1. linear schedule, t = 1..T
        alpha = 1 - beta
        alpha_bar = torch.cumprod(alpha, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])   # alpha_bar_0 = 1
        for name, value in dict(beta=beta, alpha=alpha, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
                                beta_tilde=(1 - alpha_bar_prev) / (1 - alpha_bar) * beta).items():   # Eq. 7
            self.register_buffer(name, value, persistent=False)                 # float64: see posterior

    def eps_theta(self, x_t, t, y=None):
        return self.net(x_t, t, y)

    def q_sample(self, x0, t, eps):
        """Eq. 4: draw x_t ~ q(x_t | x_0) in one shot instead of t small steps."""
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)                                # (B, 1, 1, 1)
        return ab.sqrt().float() * x0 + (1 - ab).sqrt().float() * eps

    def alpha_bar_at(self, t):
        """alpha_bar at the indices t, where t = -1 is step 0: alpha_bar_0 = 1, x_0 itself."""
        t = torch.as_tensor(t, device=self.alpha_bar.device)
        return torch.where(t >= 0, self.alpha_bar[t.clamp(min=0)], 1.0)

    def posterior(self, x0, x_t, t, t_prev=None):
        """Eq. 6, 7: the mean and variance of q(x_{t-1} | x_t, x_0). With t_prev (a respaced chain; -1 for
        x_0), of q(x_t' | x_t, x_0), whose beta is 1 - alpha_bar_t / alpha_bar_t'. The coefficients are
        taken in float64: at t = 1 the weight of x_0 is exactly 1 (0.99983 in float32)."""
        t = torch.as_tensor(t, device=self.alpha_bar.device)
        ab, ab_prev = self.alpha_bar_at(t), self.alpha_bar_at(t - 1 if t_prev is None else t_prev)
        beta = 1 - ab / ab_prev                                                 # beta_t (of the respaced chain)
        c0 = ab_prev.sqrt() * beta / (1 - ab)                                   # Eq. 7: mu~ = c0 x_0 + c_t x_t
        c_t = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
        beta_tilde = (1 - ab_prev) / (1 - ab) * beta                            # Eq. 7
        c0, c_t, beta_tilde = (c.float().view(-1, 1, 1, 1) for c in (c0, c_t, beta_tilde))
        return c0 * x0 + c_t * x_t, beta_tilde

    def loss(self, x0, y=None):
        """Eq. 14, the simplified objective: predict the noise that was added."""
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)        # t ~ U{1..T}, as an index
        eps = torch.randn_like(x0)
        if y is not None:                                                       # CFG: learn p(x) too, as condition 0
            y = onehot(y, self.num_classes)                                     # (B, K), or a caption's tokens (B, L)
            drop = torch.rand(y.shape[0], device=y.device) < self.p_uncond     # (B,): a whole set, or caption
            y = y.masked_fill(drop.view(-1, *[1] * (y.dim() - 1)), 0)          # null: the zero vector (all PAD tokens)
        return {"mse": F.mse_loss(self.eps_theta(self.q_sample(x0, t, eps), t, y), eps)}

    def configure_optimizers(self):
        fused = self.beta.is_cuda                                               # the fused kernel where there is one
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.0, fused=fused)

    def guided_eps(self, x_t, t, y, guidance):
        """7. eps = eps_uncond + s (eps_cond - eps_uncond), s the guidance scale: both branches in one
        batch, one network call. s = 1 is the conditional model alone, s = 0 the unconditional one: the
        null condition, the zero vector (for a caption, all PAD tokens: the empty caption)."""
        if y is None or guidance == 1:
            return self.eps_theta(x_t, t, y)
        y = onehot(y, self.num_classes)                                         # (B, K), or a caption's tokens (B, L)
        e_cond, e_uncond = self.eps_theta(x_t.repeat(2, 1, 1, 1), t.repeat(2),
                                          torch.cat([y, torch.zeros_like(y)])).chunk(2)   # (cond | null) in one batch
        return e_uncond + guidance * (e_cond - e_uncond)

    def timesteps(self, steps, strength=1.0, spacing="linspace"):
        """The descending indices the reverse process visits: `steps` of them (at most start) within
        [0, start - 1], start = strength * T (SDEdit starts part way; 1.0 is pure noise). spacing, as in
        Lin et al., 2024, Table 2 (in steps t = index + 1): "linspace" round(linspace(start, 1, S)), both
        ends; "leading" 1 + k floor(start / S), which never starts at t = start (901 .. 1 for 10 of 1000);
        "trailing" round(start - k start / S), which never ends at t = 1 (1000 .. 100); "snr" evenly spaced
        in log-SNR = log(alpha_bar / (1 - alpha_bar)) from t = start to t = 1, the nearest index to each."""
        if spacing not in ("linspace", "leading", "trailing", "snr"):
            raise ValueError(f"spacing is linspace, leading, trailing or snr (got {spacing})")
        start = round(strength * self.T)
        S, k = min(steps, start), torch.arange(min(steps, start))                # k = 0 .. S-1
        if spacing == "linspace" or not S:
            return torch.linspace(start - 1, 0, S).round().long().tolist()
        if spacing == "leading":
            return (k * (start // S)).flip(0).tolist()
        if spacing == "trailing":
            return ((start - k * start / S).round() - 1).long().tolist()
        ab = self.alpha_bar[:start].cpu()                                        # snr
        log_snr = (ab / (1 - ab)).log()                                          # decreasing in t
        want = torch.linspace(log_snr[0].item(), log_snr[-1].item(), S, dtype=torch.float64)   # from t = 1 up
        i = (log_snr[None] - want[:, None]).abs().argmin(1)                     # ascending, with repeats near t = 1
        i = ((i - k).cummax(0).values + k).minimum(start - S + k)               # strictly ascending, within range
        return i.flip(0).tolist()

    def predict_x0(self, x_t, eps, t, clip, threshold=0.0):
        """Eq. 4 solved for x_0. clip: x0_hat kept in [-1, 1], the data's range, as in Ho et al.'s released
        sampler. threshold p > 0 replaces it with dynamic thresholding (Saharia et al., 2022, Imagen):
        s = max(1, the p-quantile of |x0_hat|) per sample, x0_hat clamped to [-s, s] and divided by s.
        Either way eps is re-derived, so that x_t, x0_hat and eps still satisfy Eq. 4."""
        ab = self.alpha_bar_at(t)
        x0_hat = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        if threshold:
            s = x0_hat.float().abs().flatten(1).quantile(threshold, dim=1).clamp(min=1).view(-1, 1, 1, 1)   # (B, 1, 1, 1)
            x0_hat = x0_hat.clamp(-s, s) / s                                    # Imagen: clip to [-s, s], rescale by s
        elif clip:
            x0_hat = x0_hat.clamp(-1, 1)
        if threshold or clip:
            eps = (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
        return x0_hat, eps

    def ddpm_step(self, x_t, eps, t, t_prev, variance="beta", clip=True, threshold=0.0):
        """Algorithm 2, line 4: x_{t-1} = mu~_t(x_t, x0_hat) + sigma_t z. Eq. 11's mean is Eq. 7's posterior
        mean at x0_hat, written so here so that x0_hat can be clipped first. sigma_t^2 = beta_t, or beta~_t."""
        x0_hat, _ = self.predict_x0(x_t, eps, t, clip, threshold)
        mean, beta_tilde = self.posterior(x0_hat, x_t, t, t_prev)
        sigma2 = beta_tilde if variance == "posterior" else (1 - self.alpha_bar_at(t) / self.alpha_bar_at(t_prev)).float()
        z = torch.randn_like(x_t) if t_prev >= 0 else torch.zeros_like(x_t)    # no noise on the last step
        return mean + sigma2.sqrt() * z

    def ddim_step(self, x_t, eps, t, t_prev, eta=0.0, clip=True, threshold=0.0):
        """DDIM (Song et al., Eq. 12): x_t' = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t' - sigma^2) eps
        + sigma z, with sigma = eta sqrt(beta~) of the step t -> t' (their Eq. 16); eta = 0 is deterministic."""
        ab, ab_prev = self.alpha_bar_at(t), self.alpha_bar_at(t_prev)
        x0_hat, eps = self.predict_x0(x_t, eps, t, clip, threshold)
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        z = torch.randn_like(x_t) if t_prev >= 0 else torch.zeros_like(x_t)
        return ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma**2).sqrt() * eps + sigma * z

    def reverse(self, n, y, ts, sampler="ddpm", eta=0.0, guidance=1.0, variance="beta", init=None, mask=None,
                clip=False, threshold=0.0):
        """The reverse process over the indices ts, from x_T (or from init noised to ts[0]) to x_0, yielding
        each x_t: guidance, then a DDPM or DDIM step, then (inpainting) the known pixels put back. With
        sampler="ddpm" and all T indices this is Algorithm 2; with fewer, the same step on the respaced chain."""
        if sampler not in ("ddpm", "ddim") or variance not in ("beta", "posterior"):
            raise ValueError(f"sampler is ddpm or ddim, variance beta or posterior (got {sampler}, {variance})")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold is a quantile in [0, 1], 0 for off (got {threshold})")
        if mask is not None and init is None:
            raise ValueError("inpainting needs the known image as init as well as the mask")
        device = self.beta.device
        if y is None and self.num_classes:
            y = torch.arange(n, device=device) % self.num_classes               # every class in turn
        x = torch.randn(n, *self.shape, device=device)                          # x_T ~ N(0, I)
        if init is not None:
            init = init.to(device).expand(n, -1, -1, -1)
            if ts and ts[0] < self.T - 1:                                       # SDEdit: x_t ~ q(x_t | init)
                x = self.q_sample(init, torch.full((n,), ts[0], device=device), x)
        keep = None if mask is None else (mask.to(device) > 0).expand_as(x)    # white in the mask: known pixels
        for t, t_prev in zip(ts, ts[1:] + [-1]):                                # t_prev = -1: x_0
            eps = self.guided_eps(x, torch.full((n,), t, device=device), y, guidance)
            if sampler == "ddpm":
                x = self.ddpm_step(x, eps, t, t_prev, variance, clip, threshold)
            else:
                x = self.ddim_step(x, eps, t, t_prev, eta, clip, threshold)
            if keep is not None:                                                # inpainting: the known pixels at t_prev
                known = self.q_sample(init, torch.full((n,), t_prev, device=device), torch.randn_like(x)) \
                    if t_prev >= 0 else init
                x = torch.where(keep, known, x)
            yield x

    @torch.no_grad()
    def sample(self, n, y=None, progress=None, *, sampler="ddpm", steps=1000, eta=0.0, guidance=1.0, variance="beta",
               init: torch.Tensor | None = None, strength=0.8, mask: torch.Tensor | None = None, clip=True,
               spacing="linspace", threshold=0.0):
        """x_T ~ N(0, I), then the reverse process. --init alone: img2img from t = strength * T;
        --init with --mask: inpaint (white = keep); --no-clip: x0_hat unclipped, Eq. 11 as printed;
        --spacing: which `steps` of the T (Lin et al., 2024: linspace, leading, trailing; or snr);
        --threshold 0.995: Imagen's dynamic thresholding (Saharia et al., 2022) instead of clipping.
        progress(steps, total), if given, wraps the loop to show it. Returns (n, C, H, W) in [-1, 1]."""
        ts = self.timesteps(steps, strength if init is not None and mask is None else 1.0, spacing)
        x = init.expand(n, -1, -1, -1) if init is not None else None           # strength 0: nothing to undo
        xs = self.reverse(n, y, ts, sampler, eta, guidance, variance, init, mask, clip, threshold)
        for x in progress(xs, len(ts)) if progress else xs:
            pass
        return x.clamp(-1, 1)

    @torch.no_grad()
    def animate(self, n, y=None, progress=None, *, frames=40, sampler="ddpm", steps=1000, eta=0.0, guidance=1.0, clip=True,
                spacing="linspace", threshold=0.0):
        """The denoising process: x_t at `frames` evenly spaced steps, ending with x_0. (F, n, C, H, W)."""
        ts = self.timesteps(steps, spacing=spacing)
        picks = set(torch.linspace(0, len(ts) - 1, min(frames, len(ts))).round().long().tolist())
        xs = self.reverse(n, y, ts, sampler, eta, guidance, clip=clip, threshold=threshold)
        xs = progress(xs, len(ts)) if progress else xs
        return torch.stack([x.clamp(-1, 1) for i, x in enumerate(xs) if i in picks])
