"""Latent diffusion (Rombach et al., 2022): the diffusion of ddpm.py, run in the latent
space of an autoencoder instead of on pixels; conditioned on a class or on a caption read
through cross-attention, as in Stable Diffusion, at small scale.

    1. first stage  E(x) -> mu, log sigma^2 of z (C x H/f x W/f), z = mu + sigma eps,
                    x_hat = D(z), L_AE = ||x - x_hat||_1 + w_KL KL(q(z|x) || N(0, I)),
                    w_KL = 1e-6 (tiny: z keeps its detail)
       or VQ        (van den Oord et al., 2017; --reg vq) z_e = E(x), z_q = the nearest of
                    K codes e_k, x_hat = D(z_e + sg(z_q - z_e)) (straight-through),
                    L_AE = ||x - x_hat||_1 + ||sg(z_e) - e||^2 + beta ||z_e - sg(e)||^2,
                    beta = 0.25. The diffusion runs on z_e, before quantisation; D
                    quantises
    2. scaling      z <- z / std(z), the std measured on the first batch of the diffusion
    3. second stage ddpm.py's Algorithm 1 on z, E frozen:
                    L_LDM = ||eps - eps_theta(z_t, t, c)||^2 (Eq. 2; with tau(y), Eq. 3);
                    beta_t linear from 0.00085 to 0.012 (Stable Diffusion's end points,
                    which it spaces linearly in sqrt(beta); here linear in beta, as in
                    ddpm.py): alpha_bar_T = 0.0016, not ddpm.py's 4e-5. Latents have no
                    range to clip x0_hat to, and near t = T the reverse process multiplies
                    the network's error by 1 / sqrt(alpha_bar_t): 25 here, 157 there
    4. condition c  a class label (added to the step embedding, as in ddpm.py), or a
                    caption: words -> tokens -> a small Transformer tau(y) -> (L, d), which
                    every attention block of the U-Net reads by cross-attention:
                    softmax(Q K^T / sqrt(C)) V, Q from the image, K and V from tau(y), all
                    of the block's C channels
    5. guidance     the empty caption (or the zero label vector): CFG's unconditional one
    6. sampling     z_T ~ N(0, I) -> DDPM or DDIM in latent space -> x = D(z_0 * std)
    7. editing      img2img: z_0 = E(x) / std noised to t = strength * T, then the reverse
                    process (SDEdit); inpainting: the known region's latents, noised to
                    each t, put back

One command trains both stages: --ae-steps steps of the autoencoder, then diffusion.

    python train.py ldm --captions    # the built-in shapes, captioned "red circle"
    python sample.py runs/ldm/ckpt.pt --prompt "blue square" --guidance 4
    python train.py ldm --ae runs/ldm/ckpt.pt --out runs/ldm2    # its autoencoder
    python sample.py runs/ldm/ckpt.pt --init photo.png --strength 0.5 --prompt "red"
"""
import math
from collections import Counter
import torch
import torch.nn as nn
import torch.nn.functional as F
from ddpm import DDPM, UNet


# ---------------------------------------------------------- first stage: the autoencoder

class Block(nn.Module):
    """GroupNorm, SiLU, conv, twice, plus the input: ddpm.py's ResBlock without a step."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.f = nn.Sequential(nn.GroupNorm(32, c_in), nn.SiLU(),
                               nn.Conv2d(c_in, c_out, 3, padding=1),
                               nn.GroupNorm(32, c_out), nn.SiLU(),
                               nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.f(x)


class Autoencoder(nn.Module):
    """The encoder E: (C, S, S) -> mu, logvar of (z_channels, S/f, S/f); the decoder D:
    back. log2(f) stride-2 levels. (Named encoder and decoder in the code: D is the
    discriminator in the GAN files.) With a codebook (codebook_size K > 0): E(x) = z_e
    alone, and K codes e_k."""

    def __init__(self, channels, f, z_channels, ch, codebook_size=0):
        super().__init__()
        n = int(math.log2(f))
        w = [ch * min(2 ** i, 4) for i in range(n + 1)]      # widths, outermost first
        encoder = [nn.Conv2d(channels, w[0], 3, padding=1)]
        for i in range(n):
            # S -> S/2
            encoder += [Block(w[i], w[i + 1]), nn.Conv2d(w[i + 1], w[i + 1], 3, 2, 1)]
        out = z_channels if codebook_size else 2 * z_channels   # z_e, or [mu, logvar]
        encoder += [Block(w[n], w[n]), nn.GroupNorm(32, w[n]), nn.SiLU(),
                    nn.Conv2d(w[n], out, 3, padding=1)]
        self.encoder = nn.Sequential(*encoder)
        decoder = [nn.Conv2d(z_channels, w[n], 3, padding=1), Block(w[n], w[n])]
        for i in reversed(range(n)):
            decoder += [nn.Upsample(scale_factor=2.0), Block(w[i + 1], w[i])]   # S/2 -> S
        decoder += [nn.GroupNorm(32, w[0]), nn.SiLU(),
                    nn.Conv2d(w[0], channels, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)
        self.codebook = None
        if codebook_size:
            self.codebook = nn.Parameter(torch.randn(codebook_size, z_channels))   # (K, d)

    def encode(self, x):
        """KL: mu, logvar; VQ: z_e, None. Each (B, z_channels, S/f, S/f)."""
        if self.codebook is not None:
            return self.encoder(x), None
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def quantize(self, z_e):
        """The nearest code at every position: z_q (B, d, h, w), made of codebook rows, and
        its index k (B, h, w). In fp32."""
        e = self.codebook.float()                                 # (K, d)
        z = z_e.float().permute(0, 2, 3, 1)                       # (B, h, w, d)
        dist = torch.cdist(z.flatten(0, 2), e)             # ||z_e - e_k||, (B h w, K)
        k = dist.argmin(-1).view(z.shape[:3])                     # argmin_j, (B, h, w)
        return e[k].permute(0, 3, 1, 2), k

    def decode(self, z):
        return self.decoder(z)


# ---------------------------------------------------------- captions: tokens and tau(y)

# token ids; words are 2.. in the order of the vocabulary
PAD, UNK = 0, 1


def words(caption):
    return "".join(c if c.isalnum() else " " for c in caption.lower()).split()


class TextEncoder(nn.Module):
    """tau(y): token ids (B, L) -> (B, L, d). Embeddings plus learned positions, then
    pre-norm Transformer layers (self-attention over the caption, an MLP). Padding is a
    token like any other, so the empty caption has an encoding too: guidance's
    unconditional branch."""

    def __init__(self, vocab_size, d, layers, max_len, heads=4):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(vocab_size, d)
        self.pos = nn.Parameter(torch.randn(max_len, d) * 0.02)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            layer = dict(norm1=nn.LayerNorm(d), qkv=nn.Linear(d, 3 * d),
                         proj=nn.Linear(d, d), norm2=nn.LayerNorm(d), mlp=mlp)
            self.layers.append(nn.ModuleDict(layer))
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens):
        B, L = tokens.shape
        h = self.tok(tokens) + self.pos[:L]                                # (B, L, d)
        for layer in self.layers:
            qkv = layer.qkv(layer.norm1(h)).view(B, L, 3, self.heads, -1)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)                  # (B, heads, L, d / heads)
            # every word reads every word
            a = F.scaled_dot_product_attention(q, k, v)
            h = h + layer.proj(a.transpose(1, 2).reshape(B, L, -1))
            h = h + layer.mlp(layer.norm2(h))
        return self.norm(h)


class CaptionUNet(nn.Module):
    """eps_theta(z_t, t, tau(y)) with y a caption: tau(y) is the context of ddpm.py's U-Net."""

    def __init__(self, tau, unet):
        super().__init__()
        self.tau = tau
        self.unet = unet

    def forward(self, z_t, t, y=None):
        if y is None:
            # no prompt: the empty caption
            y = torch.full((len(z_t), self.tau.pos.shape[0]), PAD, device=z_t.device)
        return self.unet(z_t, t, context=self.tau(y))


# ---------------------------------------------------------- the two stages together

class LDM(nn.Module):
    batch_size = 64
    # what sample.py --compile compiles
    sampling_networks = ("diffusion.net",)
    ema_decay = 0.9999
    # train.py --compile: each stage's loss, not loss
    compiled = ("ae_loss", "diffusion_loss")
    # train.py --captions: y may be captions' token ids
    captions = True
    # sample.py: these sample() keywords are image files
    image_knobs = ("init", "mask")
    # train.py's grids: measured as good as T DDPM steps
    preview = dict(sampler="ddim", steps=50)
    # settings.py's needs: the condition's, each regulariser's, stage 1's (skipped with ae),
    # the text encoder's
    needs = {"p_uncond": {"conditional": True}, "kl_weight": {"reg": "kl", "ae": None},
             "codebook_size": {"reg": "vq"}, "commitment": {"reg": "vq", "ae": None},
             "ae_steps": {"ae": None}, "ae_lr": {"ae": None}, "max_len": {"captions": True},
             "text_dim": {"captions": True}, "text_layers": {"captions": True}}

    def __init__(self, image_size=64, channels=3, num_classes=0, *, f=4, z_channels=4,
                 ae_ch=64, kl_weight=1e-6, reg="kl", codebook_size=256, commitment=0.25,
                 ae_steps=5000, ae_lr=1e-4, ae=None, T=1000, beta_1=0.00085, beta_T=0.012,
                 ch=64, ch_mult=(1, 2, 2), num_res_blocks=2, attn_res=(8, 4), dropout=0.1,
                 p_uncond=0.1, min_snr_gamma=None, lr=2e-4, vocab="", max_len=8, text_dim=128,
                 text_layers=2):
        """The autoencoder, the diffusion on its latents, the caption encoder; each keyword
        is a train.py flag.

        f: the autoencoder's downsampling factor: latents (z_channels, S/f, S/f) (paper: 4)
        z_channels: channels of the latent z (Stable Diffusion: 4, at f = 8)
        ae_ch: the autoencoder's width at full resolution
        kl_weight: w_KL, the weight of the KL term in the autoencoder's loss (paper: 1e-6)
        reg: the latent's regulariser: kl (a VAE's KL to N(0, I)) or vq (a codebook)
        codebook_size: K, the number of codes e_k when reg is vq
        commitment: beta, the commitment term's weight when reg is vq (van den Oord: 0.25)
        ae_steps: training steps of the autoencoder (stage 1) before the diffusion (--ae: none)
        ae_lr: the autoencoder's Adam learning rate
        ae: another ldm checkpoint whose autoencoder to reuse: stage 1 is skipped
        T: the number of diffusion steps, t = 1..T
        beta_1: the noise variance of the first step (Stable Diffusion: 0.00085)
        beta_T: the noise variance of the last step (Stable Diffusion: 0.012)
        ch: the U-Net's width at the latent's resolution
        ch_mult: each U-Net level's width as a multiple of ch; each after the first halves
        num_res_blocks: residual blocks per U-Net level
        attn_res: the latent resolutions that get attention (and cross-attention to captions)
        dropout: dropout in each residual block of the U-Net
        p_uncond: how often the condition is dropped in training, for guidance
        min_snr_gamma: ddpm.py's min-SNR-gamma loss weighting (paper: 5); off if not given
        lr: the diffusion's Adam learning rate
        vocab: the caption words, space-separated (train.py --captions fills it in)
        max_len: the most words of a caption the text encoder reads
        text_dim: d, the width of the text encoder tau(y)
        text_layers: Transformer layers of the text encoder tau(y)
        """
        super().__init__()
        if f not in (1, 2, 4, 8, 16) or image_size % f:
            raise ValueError(f"f is a power of two that divides the image size (got {f})")
        if reg not in ("kl", "vq"):
            raise ValueError(f"reg is kl or vq (got {reg})")
        K = codebook_size if reg == "vq" else 0
        self.autoencoder = Autoencoder(channels, f, z_channels, ae_ch, K)
        s = image_size // f  # the latent's size
        self.diffusion = DDPM(s, z_channels, num_classes, T=T, beta_1=beta_1, beta_T=beta_T,
                              ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
                              attn_res=attn_res, dropout=dropout, p_uncond=p_uncond,
                              min_snr_gamma=min_snr_gamma, lr=lr)
        self.vocab = vocab.split()
        if self.vocab:
            # text: the same U-Net, with cross-attention
            tau = TextEncoder(len(self.vocab) + 2, text_dim, text_layers, max_len)
            unet = UNet(s, z_channels, 0, ch, ch_mult, num_res_blocks, attn_res, dropout,
                        context_dim=text_dim)
            self.diffusion.net = CaptionUNet(tau, unet)
        self.register_buffer("scale", torch.zeros(()))  # 1 / std(z); 0 until measured
        self.scale_measured = False
        self.ae_steps = ae_steps
        self.ae_steps_done = 0  # saved with the weights
        self.ae_lr = ae_lr
        self.lr = lr
        self.kl_weight = kl_weight
        self.reg = reg
        self.commitment = commitment
        self.max_len = max_len

    # the stage counter is plain Python (no GPU sync to read it), saved by these two
    def get_extra_state(self):
        return {"ae_steps_done": self.ae_steps_done}

    # called after the buffers are loaded
    def set_extra_state(self, state):
        self.ae_steps_done = state["ae_steps_done"]
        self.scale_measured = bool(self.scale > 0)

    @staticmethod
    def vocabulary(captions):
        """The training captions' words, most frequent first: the tokenizer's vocabulary."""
        counts = Counter(w for c in captions for w in words(c))
        return " ".join(sorted(counts, key=lambda w: (-counts[w], w)))

    def tokenize(self, captions):
        """Captions -> (N, max_len) token ids: a word's place in the vocabulary + 2, UNK if
        unknown, PAD after."""
        ids = {w: i + 2 for i, w in enumerate(self.vocab)}
        rows = [[ids.get(w, UNK) for w in words(c)][:self.max_len] for c in captions]
        rows = [r + [PAD] * (self.max_len - len(r)) for r in rows]
        return torch.tensor(rows, dtype=torch.long)

    def detokenize(self, tokens):
        return [" ".join(self.vocab[i - 2] if i >= 2 else "?" for i in row if i != PAD)
                for row in tokens.tolist()]

    def loss(self, x, y=None):
        if self.ae_steps_done < self.ae_steps:  # stage 1: the autoencoder
            self.ae_steps_done += 1
            return self.ae_loss(x)
        return self.diffusion_loss(x, y)  # stage 2: on its latents

    def ae_loss(self, x):
        """1. L1 reconstruction + the KL to N(0, I) in closed form, or + the VQ terms; sums
        over pixels and latents, mean over the batch. VQ also logs the perplexity of the codes
        used (detached: not trained on)."""
        def per_image(v):
            return v.flatten(1).sum(1).mean()

        if self.reg == "kl":
            mu, logvar = self.autoencoder.encode(x)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # reparameterization
            x_hat = self.autoencoder.decode(z)
            # KL(q(z|x) || N(0, I))
            kl = -0.5 * per_image(1 + logvar - mu**2 - logvar.exp())
            return {"recon": per_image((x_hat - x).abs()), "kl": self.kl_weight * kl}
        # ---------------------------------------------------------- VQ (--reg vq)
        z_e, _ = self.autoencoder.encode(x)
        z_q, k = self.autoencoder.quantize(z_e)
        x_hat = self.autoencoder.decode(z_e + (z_q - z_e).detach())   # straight-through
        # the codebook term ||sg(z_e) - e||^2, the commitment term beta ||z_e - sg(e)||^2
        codebook = per_image((z_e.detach() - z_q) ** 2)
        commit = self.commitment * per_image((z_e - z_q.detach()) ** 2)
        perplexity = self.perplexity(k, len(self.autoencoder.codebook)).detach()
        return {"recon": per_image((x_hat - x).abs()), "codebook": codebook,
                "commit": commit, "perplexity": perplexity}

    @staticmethod
    def perplexity(k, K):
        """exp(-sum_k p_k log p_k), p_k the share of positions given code k: K if all are
        used alike, 1 if one is. (Not bincount: it reads max(k), a sync.)"""
        k = k.flatten()
        ones = torch.ones(len(k), device=k.device)
        counts = torch.zeros(K, device=k.device).index_add_(0, k, ones)
        p = counts / len(k)                                                # (K,)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())     # 0 log 0 = 0

    def latent(self, x, sample=True):
        """z for the diffusion: z ~ q(z|x) (KL; its mean mu if not sample), or z_e (VQ)."""
        mu, logvar = self.autoencoder.encode(x)
        if logvar is None or not sample:
            return mu
        return mu + (0.5 * logvar).exp() * torch.randn_like(mu)

    def measure_scale(self, z):
        """E[z] and E[z^2] over this process's latents; a run of several processes averages
        them (train.py)."""
        return torch.stack([z.mean(), (z**2).mean()])

    def diffusion_loss(self, x, y=None):
        """2, 3: z from the frozen encoder, scaled to unit std (measured once, no host sync),
        then ddpm.py's Algorithm 1 on it (Eq. 2, 3)."""
        with torch.no_grad():
            z = self.latent(x)
            if not self.scale_measured:  # 2. scale-by-std, first batch
                moments = self.measure_scale(z)
                self.scale.copy_((moments[1] - moments[0] ** 2).rsqrt())     # 1 / std(z)
                self.scale_measured = True
        return self.diffusion.loss(z * self.scale, y)

    def configure_optimizers(self):
        # each stage updates only its part: the other has no gradient
        groups = [{"params": self.autoencoder.parameters(), "lr": self.ae_lr},
                  {"params": self.diffusion.parameters(), "lr": self.lr}]
        return torch.optim.AdamW(groups, weight_decay=0.0, fused=self.scale.is_cuda)

    def load_autoencoder(self, ck):
        """Reuse the autoencoder of another ldm checkpoint: stage 1 is done."""
        weights = ck["ema"] or ck["weights"]
        self.autoencoder.load_state_dict({k.removeprefix("autoencoder."): v
                                          for k, v in weights.items()
                                          if k.startswith("autoencoder.")})
        self.ae_steps_done = self.ae_steps

    def condition(self, n, y, prompt):
        if not prompt:
            return y
        if not self.vocab:
            raise ValueError("a prompt, but this ldm was trained without captions")
        if not any(w in self.vocab for w in words(prompt)):
            vocab = " ".join(self.vocab)
            raise ValueError(f"no word of '{prompt}' is in the vocabulary: {vocab}")
        return self.tokenize([prompt] * n).to(self.scale.device)

    def decode(self, z):
        z = z / self.scale.clamp_min(1e-8)
        if self.reg == "vq":  # the decoder quantises
            z = self.autoencoder.quantize(z)[0]
        return self.autoencoder.decode(z).clamp(-1, 1)

    @torch.no_grad()
    def sample(self, n, y=None, progress=None, *, prompt="", sampler="ddpm", steps=1000,
               eta=0.0, guidance=1.0, init=None, strength=0.8, mask=None):
        """6. z_T ~ N(0, I) -> ddpm.py's reverse process -> D(z_0 / scale): (n, C, S, S) in
        [-1, 1]. 7. init alone: img2img from z_0 = E(init) * scale noised to t = strength * T;
        init with mask: inpainting, the mask taken to the latent grid (a cell is known if most
        of its pixels are). Latents are not clipped. progress(zs, total) shows the loop.

        prompt: the caption to draw (a model trained with --captions), in the vocabulary's words
        sampler: ddpm (Algorithm 2's step, respaced when steps < T) or ddim (Song et al., 2021)
        steps: how many of the T steps to visit, evenly spaced from t = T to t = 1
        eta: DDIM's noise, sigma = eta sqrt(beta~_t); 0 is deterministic (Song et al.)
        guidance: the classifier-free guidance scale s; 1 is the conditional model alone
        init: an image to start from: img2img (SDEdit), or with mask, the image to inpaint
        strength: img2img: init is noised to t = strength * T; 1.0 ignores it, 0.0 returns it
        mask: inpainting: its white pixels are kept from init, the rest is sampled
        """
        if init is not None:
            # (1, z_channels, S/f, S/f)
            init = self.latent(init, sample=False) * self.scale
        if mask is not None:
            known = (mask > 0).float().amin(1, keepdim=True)  # known in every channel
            mask = F.interpolate(known, self.diffusion.shape[1:], mode="area") > 0.5
        c = self.condition(n, y, prompt)
        return self.diffusion.sample(n, c, progress, self.decode, sampler=sampler,
                                     steps=steps, eta=eta, guidance=guidance, init=init,
                                     strength=strength, mask=mask, clip=False)

    @torch.no_grad()
    def animate(self, n, y=None, progress=None, *, prompt="", frames=40, sampler="ddpm",
                steps=1000, guidance=1.0):
        """The denoising process, z_t decoded at `frames` evenly spaced steps:
        (frames, n, C, S, S).

        prompt: the caption to draw (a model trained with --captions), in the vocabulary's words
        frames: how many of the steps to show, evenly spaced, the last one x_0
        sampler: ddpm (Algorithm 2's step, respaced when steps < T) or ddim (Song et al., 2021)
        steps: how many of the T steps to visit, evenly spaced from t = T to t = 1
        guidance: the classifier-free guidance scale s; 1 is the conditional model alone
        """
        c = self.condition(n, y, prompt)
        return self.diffusion.animate(n, c, progress, self.decode, frames=frames,
                                      sampler=sampler, steps=steps, guidance=guidance,
                                      clip=False)
