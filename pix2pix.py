"""pix2pix (Isola et al., 2017): image-to-image translation with a conditional GAN.

G, a U-Net, maps an input image y to an output G(y); D, a PatchGAN, looks at the pair (y,
x) and says, for every overlapping 70x70 patch, whether x is the real target. The paper
writes x for the input and y for the target; here, as in every model file, y is the
condition (the input image, domain A) and x the image modelled (the target, domain B),
both (B, C, S, S) in [-1, 1].

    1. the game    L_cGAN(G, D) = E[log D(y, x)] + E[log(1 - D(y, G(y)))]
                   (Eq. 1)
    2. L1          L_L1(G) = E ||x - G(y)||_1
                   (Eq. 3)
    3. objective   G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), lambda = 100
                   (Eq. 4) D's side is halved, so D learns more slowly than G (Sec. 3.3);
                   G's side is non-saturating, max log D(y, G(y)), as in gan.py
    4. G           U-Net: Conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2) down to 1x1,
                   ConvTranspose 4x4 stride 2 + BatchNorm + ReLU up, each level joined to
                   its mirror by a skip connection; dropout 0.5 in the three innermost
                   decoder blocks is G's only noise z
    5. D           the 70x70 PatchGAN on [y, x] (6 channels): 30x30 logits for 256x256
                   input
    6. test time   G runs as in training: dropout on, BatchNorm with the test batch's
                   statistics (Sec. 3.3)

The lab's stabilisers, as in gan.py, not in the paper and off by default: n_critic D steps
per G step, soft and flipped labels (gan.py's d_targets), dropout in D (patchgan's).

The hand-off: train.py calls d_loss and then g_loss on the same batch. d_loss runs G(y)
and keeps it, with its graph, in self.fake; g_loss scores that same G(y), so G runs once
per step.

    python train.py pix2pix --data ./facades/train --image-size 256     # side-by-side A|B files
    python sample.py runs/pix2pix/ckpt.pt --input ./facades/val          # input | output | target
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
# D's targets, as gan.py's: 1 and 0, or the lab's; Adam for D and G
from gan import adam, d_targets


class Pix2Pix(nn.Module):
    # the paper trains with batch 1 to 10; 16 keeps BatchNorm's statistics
    batch_size = 16
    sampling_networks = ("G",)      # what sample.py --compile compiles
    paired = True                   # train.py: data are (B, A) pairs, given as (x, y)

    def __init__(self, image_size=256, channels=3, num_classes=0, *, ngf=64, ndf=64,
                 n_layers=3, norm="batch", dropout=0.5, lambda_l1=100.0, n_critic=1,
                 soft_labels=False, flip_labels=0.0, d_dropout=0.0,
                 lr=2e-4, beta1=0.5, beta2=0.999):
        """G and D and their optimisers' settings; each keyword is a train.py flag.

        ngf: G's width at the outermost level (the paper's 64)
        ndf: D's width at its first layer (the paper's 64)
        n_layers: D's stride-2 layers: 3 is the 70x70 PatchGAN, 1 the 16x16 one
        norm: batch (the paper) or instance
        dropout: dropout in G's three innermost decoder blocks (the paper's 0.5)
        lambda_l1: the weight lambda of the L1 term (the paper's 100)
        n_critic: the lab's stabiliser: D steps per G step (paper: 1)
        soft_labels: the lab's stabiliser: D's targets from U(0.7, 1) and U(0, 0.3) (paper: off)
        flip_labels: the lab's stabiliser: the chance each D target is flipped (paper: 0)
        d_dropout: the lab's stabiliser: dropout after each of D's LeakyReLUs (paper: 0)
        lr: Adam's learning rate (the paper's 2e-4)
        beta1: Adam's beta1 (the paper's 0.5)
        beta2: Adam's beta2 (the paper's 0.999)
        """
        super().__init__()
        if image_size < 16 or image_size & (image_size - 1):
            raise ValueError(f"image size must be a power of two, at least 16 (got {image_size})")
        if image_size >> n_layers < 4:
            raise ValueError(f"a {n_layers}-layer PatchGAN needs images of at least "
                             f"{4 << n_layers} pixels: lower n_layers")
        self.G = UNet(channels, image_size, ngf, norm, dropout)
        # conditional: on [y, x]
        self.D = patchgan(2 * channels, ndf, n_layers, norm, d_dropout)
        init_weights(self)
        self.lambda_l1 = lambda_l1
        self.lr = lr
        self.betas = (beta1, beta2)
        # the lab's: train.py's G step every n_critic
        self.n_critic = n_critic
        # the lab's: gan.py's d_targets
        self.targets = dict(soft=soft_labels, flip=flip_labels)
        self.fake = None                            # d_loss -> g_loss

    def logits(self, y, x):
        """D(y, x): D sees the pair stacked on channels; a logit per patch, (B, 1, P,
        P)."""
        return self.D(torch.cat([y, x], 1))

    def d_loss(self, x, y):
        """Eq. 1, D's side: maximise log D(y, x) + log(1 - D(y, G(y))), as the BCE of D's
        logits against 1 and 0, halved (Sec. 3.3). x is the target, y the input. Runs G(y)
        and keeps it, with its graph, in self.fake for the g_loss that follows on this
        batch."""
        self.fake = self.G(y)                                       # G(y): (B, C, S, S)
        # D(y, x): (B, 1, P, P)
        real = self.logits(y, x)
        # D's step does not reach G
        fake = self.logits(y, self.fake.detach())
        t_real, t_fake = d_targets(len(x), x.device, **self.targets)   # one per pair
        # log-sigmoid without overflow
        bce = F.binary_cross_entropy_with_logits
        # each target (n,) stands for all its pair's patches: (n, 1, P, P)
        t_real = t_real.view(-1, 1, 1, 1).expand_as(real)
        t_fake = t_fake.view(-1, 1, 1, 1).expand_as(fake)
        # -log D(y, x), patch mean
        return {"real": 0.5 * bce(real, t_real),
                "fake": 0.5 * bce(fake, t_fake),                   # -log(1 - D(y, G(y)))
                # logged: D's belief, A = y
                "D(A,B)": real.detach().sigmoid().mean(),
                "D(A,G(A))": fake.detach().sigmoid().mean()}        # and B = x

    def g_loss(self, x, y):
        """Eq. 4, G's side: L_cGAN, non-saturating (gan.py says why), + lambda L_L1 (Eq.
        3), on the G(y) the d_loss before it made (self.fake); x is read for the L1
        term."""
        if self.fake is None:
            raise RuntimeError("g_loss scores the G(y) that d_loss made from this batch: "
                               "call d_loss first")
        fake = self.logits(y, self.fake)
        # -log D(y, G(y))
        gan = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        # Eq. 3, a mean over pixels
        l1 = (x - self.fake).abs().mean()
        return {"gan": gan, "l1": self.lambda_l1 * l1}              # Eq. 4: + lambda L_L1

    def configure_optimizers(self):
        # fused Adam: on CUDA only
        fused = next(self.parameters()).is_cuda
        return adam(self.D.parameters(), self.G.parameters(), self.lr, self.betas, fused)

    @torch.no_grad()
    def sample(self, n, y, *, dropout=True, batch_stats=True):
        """G(y) for n inputs y (n, C, S, S). By default G runs exactly as in training, as
        Isola et al. run it at test time (Sec. 3.3): dropout on, and BatchNorm with the
        statistics of this batch. Off, dropout gives the deterministic translation, and
        batch_stats the running averages of training (the usual protocol), so that each
        output depends on its own input alone. The model's mode and running averages are
        left as found.

        dropout: keep G's dropout, its only noise, on at test time (the paper)
        batch_stats: normalise with this batch's statistics (the paper), not training's averages
        """
        modes = [(m, m.training) for m in self.G.modules()]
        # sampling must not move these
        running = [b.clone() for b in self.G.buffers()]
        for m in self.G.modules():
            if isinstance(m, nn.Dropout):
                m.train(dropout)
            elif isinstance(m, nn.BatchNorm2d):
                m.train(batch_stats)
        out = self.G(y[:n])
        for m, mode in modes:
            m.train(mode)
        for b, saved in zip(self.G.buffers(), running):
            b.copy_(saved)
        return out


# ---- The networks: G, the U-Net (step 4), and D, the PatchGAN (step 5) ------------------------

def norm_layer(kind):
    """BatchNorm (the paper), or InstanceNorm, which is what BatchNorm of batch size 1
    amounts to. A conv followed by a norm with a learned shift needs no bias of its
    own."""
    if kind == "batch":
        return nn.BatchNorm2d, False
    if kind == "instance":
        # affine=False: the conv keeps its bias
        return nn.InstanceNorm2d, True
    raise ValueError(f"norm is batch or instance (got {kind})")


class UNet(nn.Module):
    """G: (C, S, S) -> (C, S, S). log2(S) stride-2 levels down to 1x1 (8 for the paper's
    unet_256); widths ngf, 2 ngf, 4 ngf, then 8 ngf all the way down."""

    def __init__(self, channels, image_size, ngf=64, norm="batch", dropout=0.5):
        super().__init__()
        Norm, bias = norm_layer(norm)
        # 256 -> 8, 64 -> 6
        levels = image_size.bit_length() - 1
        widths = [min(ngf * 2 ** i, ngf * 8) for i in range(levels)]     # outermost first
        # encoder: e_0 = LReLU(conv(y)), e_i = LReLU(BN(conv(e_{i-1}))), innermost
        # e_{L-1} = ReLU(conv(.)): no norm on the first level (the paper) nor on the 1x1
        # bottleneck (one value per channel); like the paper's reference code, these two convs
        # have no bias either with BatchNorm (the parameter counts match it)
        self.down = nn.ModuleList()
        for i in range(levels):
            c_in = channels if i == 0 else widths[i - 1]
            last = i == levels - 1
            self.down.append(nn.Sequential(
                # (c_in, H, W) -> (w_i, H/2, W/2)
                nn.Conv2d(c_in, widths[i], 4, 2, 1, bias=bias),
                *([] if i == 0 or last else [Norm(widths[i])]),
                nn.ReLU(True) if last else nn.LeakyReLU(0.2, True)))
        # decoder: d_{L-1} from e_{L-1} alone, then d_i = ReLU(BN(convT([d_{i+1}, e_i]))) upwards
        self.up = nn.ModuleList()
        for i in reversed(range(1, levels)):
            # the skip doubles it
            c_in = widths[i] if i == levels - 1 else 2 * widths[i]
            self.up.append(nn.Sequential(
                # -> (w_{i-1}, 2H, 2W)
                nn.ConvTranspose2d(c_in, widths[i - 1], 4, 2, 1, bias=bias),
                Norm(widths[i - 1]),
                # the three innermost
                *([nn.Dropout(dropout)] if i >= levels - 3 else []),
                nn.ReLU(True)))
        self.out = nn.Sequential(nn.ConvTranspose2d(2 * widths[0], channels, 4, 2, 1), nn.Tanh())

    def forward(self, y):
        skips = []
        h = y
        # (C, S, S) -> ... -> (8 ngf, 1, 1)
        for block in self.down:
            h = block(h)
            skips.append(h)
        # the bottleneck has no mirror
        skips.pop()
        for block in self.up:
            h = block(h)
            # skip connection: [d_i, e_i]
            h = torch.cat([h, skips.pop()], 1)
        # (2 ngf, S/2, S/2) -> (C, S, S)
        return self.out(h)


def init_weights(model):
    """Conv weights ~ N(0, 0.02) and biases 0, BatchNorm's scales ~ N(1, 0.02), as
    DCGAN."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def patchgan(c_in, ndf=64, n_layers=3, norm="batch", dropout=0.0):
    """D: the PatchGAN. Three stride-2 4x4 convs (ndf, 2 ndf, 4 ndf), one stride-1 (8
    ndf), one to a logit per patch. For 256x256 input: 128, 64, 32, 31, 30; each logit
    sees a 70x70 window. Dropout after each LeakyReLU when asked (the lab's stabiliser;
    not in the paper)."""
    drop = [nn.Dropout(dropout)] if dropout else []
    Norm, bias = norm_layer(norm)
    # C64, no norm
    layers = [nn.Conv2d(c_in, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True), *drop]
    c = ndf
    for i in range(1, n_layers + 1):
        c_out = ndf * min(2 ** i, 8)
        stride = 2 if i < n_layers else 1
        conv = nn.Conv2d(c, c_out, 4, stride, 1, bias=bias)
        layers += [conv, Norm(c_out), nn.LeakyReLU(0.2, True), *drop]
        c = c_out
    # (8 ndf, P+1, P+1) -> (1, P, P)
    return nn.Sequential(*layers, nn.Conv2d(c, 1, 4, 1, 1))
