"""Denoising diffusion probabilistic models (Ho et al., 2020): the schedule, q(x_t | x_0),
Algorithm 1 (DDPM.loss) and Algorithm 2 (DDPM.algorithm_2) first, then the full sampler
(DDPM.sample), which takes the same step and adds DDIM (Song et al., 2021),
classifier-free guidance (Ho & Salimans, 2022), classifier guidance (Dhariwal & Nichol,
2021), img2img by SDEdit (Meng et al., 2022) and inpainting; the U-Net eps_theta last.

    1. schedule    beta_t from 1e-4 to 0.02 linearly, t = 1..T (index t - 1 in the code),
                   T = 1000; alpha_t = 1 - beta_t, alpha_bar_t = prod_{s <= t} alpha_s
    2. forward     q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)   (Eq. 4)
    3. training    L_simple = ||eps - eps_theta(x_t, t)||^2, t ~ U{1..T}, eps ~ N(0, I),
                   x_t by Eq. 4; a mean over pixels: eps_theta = 0 scores 1
                   (Eq. 14, Algorithm 1)
                   min-SNR-gamma (Hang et al., 2023): each image's error weighted by
                   min(SNR(t), gamma) / SNR(t), SNR(t) = alpha_bar_t / (1 - alpha_bar_t)
    4. posterior   q(x_{t-1} | x_t, x_0) = N(mu~_t(x_t, x_0), beta~_t I),
                   beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t   (Eq. 6, 7)
    5. sampling    x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps)
                   + sigma_t z, sigma_t^2 = beta_t or beta~_t, eps = eps_theta(x_t, t);
                   on S < T steps, respaced (Eq. 11)
    6. DDIM        x_t' = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t' - sigma^2) eps
                   + sigma z, on S of the T steps; eta = 0 is deterministic (Song, Eq. 12)
    7. guidance    eps = eps_uncond + s (eps_cond - eps_uncond), s the guidance scale; the
                   condition is dropped with p_uncond in training: the network learns
                   eps_uncond
    8. condition   y a class id or a multi-hot set (B, K): c = emb(y) = y W (class k: row k
                   of W), zeros the null condition; c is added to the step's embedding, or
                   (cond=multiply, the lab report's U-Net) 8'. h = h (1 + gamma(c)) in each
                   ResBlock, the step added
    9. classifier  eps_hat = eps - s sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(y | x_t, t),
                   the gradient a hook: support/guidance.py (Dhariwal & Nichol, Alg. 2)

    python train.py ddpm --ch 128 --ch-mult 1,2,2,2 --dropout 0.1 --data ./cifar10
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


# -------------------------------------------------------------- the diffusion process

class DDPM(nn.Module):
    batch_size = 128
    # what sample.py --compile compiles
    sampling_networks = ("net",)
    # the paper's EMA; train.py warms it up for short runs
    ema_decay = 0.9999
    # sample.py: these sample() keywords are image files
    image_knobs = ("init", "mask")
    # train.py's grids: measured closest to 1,000 steps
    preview = dict(sampler="ddpm", steps=50)
    # the condition's keywords (settings.py's needs)
    needs = {"p_uncond": {"conditional": True}, "cond": {"conditional": True}}

    def __init__(self, image_size=32, channels=3, num_classes=0, *, T=1000, beta_1=1e-4,
                 beta_T=0.02, ch=64, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_res=(16,),
                 dropout=0.1, p_uncond=0.1, cond="add", min_snr_gamma=None, lr=2e-4):
        """The network eps_theta and the noise schedule; each keyword is a train.py flag.

        T: the number of diffusion steps, t = 1..T (paper: 1000)
        beta_1: the first step's noise variance, beta_t linear up to beta_T (paper: 1e-4)
        beta_T: the noise variance of the last step (paper: 0.02)
        ch: the U-Net's width at full resolution (paper: 128 for CIFAR-10)
        ch_mult: each level's width as a multiple of ch; each level after the first halves
        num_res_blocks: residual blocks per level (paper: 2)
        attn_res: the resolutions that get self-attention (paper: 16, for 32x32 images)
        dropout: dropout in each residual block (paper: 0.1 on CIFAR-10)
        p_uncond: how often the condition is dropped in training, for guidance
        cond: c = emb(y) added to the step's embedding, or multiply: h (1 + gamma(c))
        min_snr_gamma: min-SNR-gamma loss weighting (Hang et al., 2023; paper: 5); default off
        lr: Adam's learning rate (paper: 2e-4)
        """
        super().__init__()
        if image_size % 2 ** (len(ch_mult) - 1):
            raise ValueError(f"image size {image_size} does not halve {len(ch_mult) - 1}x")
        if cond not in ("add", "multiply"):
            raise ValueError(f"cond is add or multiply (got {cond})")
        self.net = UNet(image_size, channels, num_classes, ch, ch_mult, num_res_blocks,
                        attn_res, dropout, cond=cond)
        self.T = T
        self.num_classes = num_classes
        self.p_uncond = p_uncond
        self.min_snr_gamma = min_snr_gamma
        self.lr = lr
        self.shape = (channels, image_size, image_size)
        # 1. the schedule, in float64 (see posterior)
        beta = torch.linspace(beta_1, beta_T, T, dtype=torch.float64)   # t = 1..T
        alpha = 1 - beta
        alpha_bar = torch.cumprod(alpha, 0)
        alpha_bar_prev = F.pad(alpha_bar[:-1], (1, 0), value=1.0)        # alpha_bar_0 = 1
        beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta       # Eq. 7
        buffers = dict(beta=beta, alpha=alpha, alpha_bar=alpha_bar,
                       alpha_bar_prev=alpha_bar_prev, beta_tilde=beta_tilde)
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)

    def eps_theta(self, x_t, t, y=None):
        return self.net(x_t, t, y)

    def q_sample(self, x_0, t, eps):
        """Eq. 4: draw x_t ~ q(x_t | x_0) in one shot instead of t small steps."""
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        return ab.sqrt().float() * x_0 + (1 - ab).sqrt().float() * eps

    def loss(self, x, y=None):
        """Algorithm 1 (training), one pass of its loop; train.py takes the gradient step.

            1: repeat
            2:   x_0 ~ q(x_0)
            3:   t ~ Uniform({1, ..., T})
            4:   eps ~ N(0, I)
            5:   take a gradient descent step on grad_theta of
                   ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2
            6: until converged"""
        x_0 = x                                                              # 2
        t = torch.randint(0, self.T, (len(x_0),), device=x_0.device)  # 3: as index t - 1
        eps = torch.randn_like(x_0)                                          # 4
        if y is not None:
            # 7. guidance learns p(x) too: the condition dropped as zeros (a caption: PAD)
            y = onehot(y, self.num_classes)  # (B, K) or (B, L)
            drop = torch.rand(len(y), device=y.device) < self.p_uncond       # (B,)
            y = y.masked_fill(drop.view(-1, *[1] * (y.dim() - 1)), 0)
        x_t = self.q_sample(x_0, t, eps)                                     # 5: Eq. 4
        if self.min_snr_gamma is None:
            return {"mse": F.mse_loss(self.eps_theta(x_t, t, y), eps)}       # 5: Eq. 14
        # min-SNR-gamma (Hang et al., 2023): min(SNR(t), gamma) / SNR(t) weighs each image
        err = (self.eps_theta(x_t, t, y) - eps).pow(2).mean(dim=(1, 2, 3))   # (B,)
        snr = self.alpha_bar[t] / (1 - self.alpha_bar[t])                    # SNR(t)
        w = snr.clamp(max=self.min_snr_gamma) / snr
        return {"mse": (w.float() * err).mean()}

    @torch.no_grad()
    def algorithm_2(self, n, y=None):
        """Algorithm 2 (sampling) as printed, sigma_t^2 = beta_t: sample() with knobs off.

            1: x_T ~ N(0, I)
            2: for t = T, ..., 1 do
            3:   z ~ N(0, I) if t > 1, else z = 0
            4:   x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t))
                           + sigma_t z
            5: end for
            6: return x_0"""
        x = torch.randn(n, *self.shape, device=self.beta.device)             # 1: x_T
        # 2: the paper's t = T..1 is the index i = t - 1
        for i in reversed(range(self.T)):
            z = torch.randn_like(x) if i > 0 else torch.zeros_like(x)        # 3: t > 1
            eps = self.eps_theta(x, torch.full((n,), i, device=x.device), y)
            beta = self.beta[i]
            alpha = self.alpha[i]
            ab = self.alpha_bar[i]
            mean = (x - beta / (1 - ab).sqrt() * eps) / alpha.sqrt()
            x = mean + beta.sqrt() * z  # 4: sigma_t^2 = beta_t
        return x                                                             # 6: x_0

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.0,
                                 fused=self.beta.is_cuda)

    # ---------------------------------------------------------- the full sampler

    def guided_eps(self, x_t, t, y, guidance):
        """7. eps = eps_uncond + s (eps_cond - eps_uncond), both in one network call. s = 1 is
        the conditional model alone, s = 0 the unconditional: y = 0 (a caption: all PAD)."""
        if y is None or guidance == 1:
            return self.eps_theta(x_t, t, y)
        y = onehot(y, self.num_classes)  # (B, K) or (B, L)
        both = torch.cat([y, torch.zeros_like(y)])                           # cond | null
        eps = self.eps_theta(x_t.repeat(2, 1, 1, 1), t.repeat(2), both)
        e_cond, e_uncond = eps.chunk(2)
        return e_uncond + guidance * (e_cond - e_uncond)

    def classifier_eps(self, eps, x_t, t, y, classifier, classifier_scale):
        """9. eps_hat = eps - s sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(y | x_t, t), with
        the gradient from the hook classifier(x_t, t, y) (support/guidance.py)."""
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)
        return eps - classifier_scale * (1 - ab).sqrt().float() * classifier(x_t, t, y)

    def posterior(self, x_0, x_t, t, t_prev=None):
        """Eq. 6, 7: the mean and variance of q(x_{t-1} | x_t, x_0), or with t_prev (-1: x_0)
        of the respaced chain's q(x_t' | x_t, x_0). In float64: at t = 1 x_0's weight is 1."""
        t_prev = t - 1 if t_prev is None else t_prev
        ab = self.alpha_bar[t]
        ab_prev = self.alpha_bar_prev[t_prev + 1]  # alpha_bar at t_prev; 1 at -1
        beta = 1 - ab / ab_prev  # beta_t of the respaced chain
        c_0 = ab_prev.sqrt() * beta / (1 - ab)  # Eq. 7: mu~ = c_0 x_0 + c_t x_t
        c_t = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
        beta_tilde = (1 - ab_prev) / (1 - ab) * beta              # Eq. 7
        mean = c_0.float().view(-1, 1, 1, 1) * x_0 + c_t.float().view(-1, 1, 1, 1) * x_t
        return mean, beta_tilde.float().view(-1, 1, 1, 1)

    def timesteps(self, steps, strength=1.0):
        """The `steps` descending indices the reverse process visits, evenly spaced from
        start - 1 to 0, start = strength * T (SDEdit; 1.0: pure noise) (Lin et al., 2024's
        "linspace")."""
        start = round(strength * self.T)
        return torch.linspace(start - 1, 0, min(steps, start)).round().long().tolist()

    def start(self, n, y, ts, sampler, variance, init, mask):
        """The knobs checked; y every class in turn if none is given; x_T ~ N(0, I), or
        for img2img (SDEdit) init noised to t = ts[0] by Eq. 4."""
        if sampler not in ("ddpm", "ddim") or variance not in ("beta", "posterior"):
            raise ValueError("sampler is ddpm or ddim, variance beta or posterior")
        if mask is not None and init is None:
            raise ValueError("inpainting needs the known image as init, not a mask alone")
        if y is None and self.num_classes:
            y = torch.arange(n, device=self.beta.device) % self.num_classes
        x = torch.randn(n, *self.shape, device=self.beta.device)
        if init is not None and ts and ts[0] < self.T - 1:
            x = self.q_sample(init, torch.full((n,), ts[0], device=x.device), x)
        return x, y

    def inpaint(self, x, init, mask, t_prev):
        """Inpainting: the known pixels (mask white) put back as init noised to t_prev by
        Eq. 4; at t_prev = -1, init itself."""
        ab_prev = self.alpha_bar_prev[t_prev + 1]
        noise = torch.randn_like(x)
        known = ab_prev.sqrt().float() * init + (1 - ab_prev).sqrt().float() * noise
        return torch.where(mask > 0, known, x)

    def reverse(self, n, y, ts, sampler="ddpm", eta=0.0, guidance=1.0,
                variance="posterior", init=None, mask=None, clip=True, classifier=None,
                classifier_scale=0.0):
        """The reverse process over the indices ts, from x_T (or init noised to ts[0]) to
        x_0, yielding each x_t: guidance, x0_hat, a DDPM or DDIM step, the known pixels."""
        x, y = self.start(n, y, ts, sampler, variance, init, mask)
        for t, t_prev in zip(ts, ts[1:] + [-1]):  # t_prev = -1: x_0
            t_n = torch.full((n,), t, device=x.device)  # t for each sample
            eps = self.guided_eps(x, t_n, y, guidance)
            if classifier is not None and classifier_scale:
                eps = self.classifier_eps(eps, x, t_n, y, classifier, classifier_scale)
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar_prev[t_prev + 1]  # alpha_bar at t_prev
            x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()  # Eq. 4 for x_0
            if clip:
                # to the data's range; then Eq. 4 holds again for eps
                x0_hat = x0_hat.clamp(-1, 1)
                eps = (x - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
            mean, beta_tilde = self.posterior(x0_hat, x, t, t_prev)  # Eq. 7 at x0_hat
            # no noise on the last step, to x_0
            z = torch.randn_like(x) if t_prev >= 0 else torch.zeros_like(x)
            if sampler == "ddpm":
                # Eq. 11, as Eq. 7's mean at x0_hat, + sigma z: sigma_t^2 beta~ or beta
                beta = (1 - ab / ab_prev).float()                      # the respaced beta_t
                sigma2 = beta_tilde if variance == "posterior" else beta
                x = mean + sigma2.sqrt() * z
            else:
                # DDIM (Song et al., Eq. 12; sigma: Eq. 16)
                sigma = eta * beta_tilde.sqrt()
                x = ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma**2).sqrt() * eps
                x = x + sigma * z
            if mask is not None:
                x = self.inpaint(x, init, mask, t_prev)
            yield x

    @torch.no_grad()
    def sample(self, n, y=None, progress=None, decode=None, *, sampler="ddpm", steps=1000,
               eta=0.0, guidance=1.0, variance="posterior", init=None, strength=0.8, mask=None,
               clip=True, classifier=None, classifier_scale=1.0):
        """Algorithm 2 and its extensions: x_T ~ N(0, I), the reverse process -> (n, C, H, W).
        progress(xs, total), if given, shows the loop; decode(x_0) is the image (ldm.py's
        decoder), else x_0 clamped to [-1, 1].

        sampler: ddpm (Algorithm 2's step, respaced when steps < T) or ddim (Song et al., 2021)
        steps: how many of the T steps to visit, evenly spaced from t = T to t = 1
        eta: DDIM's noise, sigma = eta sqrt(beta~_t); 0 is deterministic (Song et al.)
        guidance: the classifier-free guidance scale s; 1 is the conditional model alone
        variance: the DDPM step's sigma_t^2: posterior, beta~_t (measured best), or beta, beta_t
        init: an image to start from: img2img (SDEdit), or with mask, the image to inpaint
        strength: img2img: init is noised to t = strength * T; 1.0 ignores it, 0.0 returns it
        mask: inpainting: its white pixels are kept from init, the rest is sampled
        clip: x0_hat clipped to [-1, 1] at every step, as in Ho et al.'s code (--no-clip: Eq. 11)
        classifier: a noisy classifier (python -m support.guidance): classifier guidance (its hook)
        classifier_scale: classifier guidance's s (Dhariwal & Nichol, 2021); 0 is off
        """
        ts = self.timesteps(steps, strength if init is not None and mask is None else 1.0)
        x = None if init is None else init.expand(n, -1, -1, -1)  # strength 0: no steps
        xs = self.reverse(n, y, ts, sampler, eta, guidance, variance, init, mask, clip,
                          classifier, classifier_scale)
        for x in progress(xs, len(ts)) if progress else xs:  # the last x_t is x_0
            pass
        return x.clamp(-1, 1) if decode is None else decode(x)

    @torch.no_grad()
    def animate(self, n, y=None, progress=None, decode=None, *, frames=40, sampler="ddpm",
                steps=1000, eta=0.0, guidance=1.0, clip=True):
        """The denoising process: x_t at `frames` evenly spaced steps to x_0: (frames, n, C, H, W).

        frames: how many of the steps to show, evenly spaced, the last one x_0
        sampler: ddpm (Algorithm 2's step, respaced when steps < T) or ddim (Song et al., 2021)
        steps: how many of the T steps to visit, evenly spaced from t = T to t = 1
        eta: DDIM's noise, sigma = eta sqrt(beta~_t); 0 is deterministic (Song et al.)
        guidance: the classifier-free guidance scale s; 1 is the conditional model alone
        clip: x0_hat clipped to [-1, 1] at every step, as in Ho et al.'s code (--no-clip: Eq. 11)
        """
        ts = self.timesteps(steps)
        picks = set(torch.linspace(0, len(ts) - 1, min(frames, len(ts))).round().long().tolist())
        xs = self.reverse(n, y, ts, sampler, eta, guidance, clip=clip)
        xs = progress(xs, len(ts)) if progress else xs
        return torch.stack([x.clamp(-1, 1) if decode is None else decode(x)
                            for i, x in enumerate(xs) if i in picks])


# -------------------------------------------------------------- the network eps_theta(x_t, t, y)

def zero(layer):
    """Zeros for each residual branch's last layer and the output (Ho et al.): eps_theta = 0."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def onehot(y, num_classes):
    """Class ids (B,) -> one-hot e_c (B, K): a class and a set go one path; tokens (B, L) pass."""
    if y is None or not num_classes:
        return y
    return F.one_hot(y, num_classes).float() if y.dim() == 1 else y.float()


def timestep_embedding(t, dim):
    """Sinusoidal embedding of the step, as the Transformer's positions: (B,) -> (B, dim)."""
    freqs = torch.exp(-math.log(10_000) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv, (times 1 + gamma(c)), plus the step; GroupNorm, SiLU, dropout, conv"""

    def __init__(self, c_in, c_out, emb_dim, dropout, cond="add"):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        # 8'. gamma starts at zero: 1 + gamma(c) = 1
        self.gamma = zero(nn.Linear(emb_dim, c_out)) if cond == "multiply" else None
        self.norm2 = nn.GroupNorm(32, c_out)
        self.conv2 = zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb, context=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.gamma is not None:
            # 8'. emb = [step | c]: h (1 + gamma(c)) first
            emb, c = emb.chunk(2, dim=1)
            h = h * (1 + self.gamma(c)[:, :, None, None])
        h = h + self.emb(F.silu(emb))[:, :, None, None]           # the step (and label)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over the H * W positions, one head, as in the DDPM network. With
    context_dim, cross-attention follows (ldm.py): queries from the image, keys and values from
    a caption."""

    def __init__(self, c, context_dim=0):
        super().__init__()
        self.norm = nn.GroupNorm(32, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = zero(nn.Conv2d(c, c, 1))
        if context_dim:
            self.norm_x = nn.GroupNorm(32, c)
            self.q = nn.Conv2d(c, c, 1)
            self.kv = nn.Linear(context_dim, 2 * c)
            self.proj_x = zero(nn.Conv2d(c, c, 1))

    def forward(self, x, emb=None, context=None):
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).flatten(2).transpose(1, 2)[:, None]  # (B, 1, HW, 3C)
        q, k, v = qkv.chunk(3, dim=-1)  # (B, 1, HW, C)
        h = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C)) v
        x = x + self.proj(h[:, 0].transpose(1, 2).reshape(B, C, H, W))
        if context is None:
            return x
        # each pixel reads the caption: q from the image (B, 1, HW, C), k, v from the tokens
        q = self.q(self.norm_x(x)).flatten(2).transpose(1, 2)[:, None]
        k, v = self.kv(context)[:, None].chunk(2, dim=-1)                   # (B, 1, L, C)
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_x(h[:, 0].transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    """eps_theta(x_t, t, y): a U-Net whose levels halve the resolution, ResBlocks taking the
    step embedding, self-attention at the resolutions in attn_res, skip connections across."""

    def __init__(self, image_size, channels, num_classes, ch, ch_mult, num_res_blocks, attn_res,
                 dropout, context_dim=0, cond="add"):
        super().__init__()
        emb_dim = 4 * ch

        def level(c_in, c_out, res):
            blocks = [ResBlock(c_in, c_out, emb_dim, dropout, cond)]
            if res in attn_res:
                blocks.append(Attention(c_out, context_dim))
            return nn.ModuleList(blocks)

        self.ch = ch
        self.cond = cond
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(),
                                      nn.Linear(emb_dim, emb_dim))
        self.num_classes = num_classes
        # W (K, 4 ch)
        self.label = nn.Embedding(num_classes, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d(channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [ch]
        c = ch
        res = image_size
        for i, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                self.down.append(level(c, ch * mult, res))
                c = ch * mult
                skips.append(c)
            if i < len(ch_mult) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))   # r -> r/2
                skips.append(c)
                res //= 2
        mid = [ResBlock(c, c, emb_dim, dropout, cond), Attention(c, context_dim)]
        self.mid = nn.ModuleList(mid + [ResBlock(c, c, emb_dim, dropout, cond)])
        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(level(c + skips.pop(), ch * mult, res))
                c = ch * mult
            if i > 0:
                upsample = nn.Upsample(scale_factor=2, mode="nearest")      # r -> 2r
                self.up.append(nn.Sequential(upsample, nn.Conv2d(c, c, 3, padding=1)))
                res *= 2
        self.out = nn.Sequential(nn.GroupNorm(32, c), nn.SiLU(),
                                 zero(nn.Conv2d(c, channels, 3, padding=1)))

    def forward(self, x, t, y=None, context=None):
        emb = self.time_mlp(timestep_embedding(t, self.ch))                   # (B, 4 ch)
        # 8. emb(y) = y W, (B, K) @ (K, 4 ch): e_c W is row c. No y: 0
        c = torch.zeros_like(emb)
        if self.label is not None and y is not None:
            c = onehot(y, self.num_classes) @ self.label.weight
        emb = torch.cat([emb, c], 1) if self.cond == "multiply" else emb + c   # 8' or 8
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = through(layer, h, emb, context)
            hs.append(h)
        h = through(self.mid, h, emb, context)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = torch.cat([h, hs.pop()], 1)  # the skip connection
            h = through(layer, h, emb, context)
        return self.out(h)


def through(layer, h, emb, context):
    if not isinstance(layer, nn.ModuleList):
        return layer(h)  # resampling
    for block in layer:
        h = block(h, emb, context)
    return h
