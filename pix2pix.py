"""pix2pix (Isola et al., 2017): image-to-image translation with a conditional GAN. The generator
is a U-Net that maps an input image A to an output G(A); the discriminator is a PatchGAN that
looks at the pair (A, B) and says, for every overlapping 70x70 patch, whether B is real.

    G             U-Net: Conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2) down to 1x1, ConvTranspose
                  4x4 stride 2 + BatchNorm + ReLU up, each level joined to its mirror by a skip
                  connection; dropout 0.5 in the three innermost decoder blocks is G's only noise
    D             70x70 PatchGAN on [A, B] (6 channels): a 30x30 grid of logits for 256x256 input
    the game      L_cGAN(G, D) = E[log D(A, B)] + E[log(1 - D(A, G(A)))]                     (Eq. 1)
    L1            L_L1(G) = E ||B - G(A)||_1                                                  (Eq. 3)
    objective     G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), lambda = 100            (Eq. 4)
                  D's objective is halved, so D learns more slowly than G (Sec. 3.3)
    test time     G runs as in training: dropout on, BatchNorm with the test batch's statistics (Sec. 3.3)
    stabilisers   the lab's, as in gan.py: n_critic D steps per G step, soft and flipped labels, dropout in D

The hand-off: train.py calls d_loss and then g_loss on the same batch. d_loss runs G(A) and keeps it,
with its graph, in self.fake; g_loss scores that same G(A), so G runs once per step.

Data are pairs: x is the target B, y the input A (both (B, C, S, S) in [-1, 1]).

    python train.py pix2pix --data ./facades/train --image-size 256     # side-by-side A|B files
    python sample.py runs/pix2pix/ckpt.pt --input ./facades/val          # input | output | target
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def norm_layer(kind):
    """BatchNorm (the paper), or InstanceNorm, which is what BatchNorm of batch size 1 amounts to.
    A conv followed by a norm with a learned shift needs no bias of its own."""
    if kind == "batch":
        return nn.BatchNorm2d, False
    if kind == "instance":
        return nn.InstanceNorm2d, True                  # affine=False: the conv keeps its bias
    raise ValueError(f"norm is batch or instance (got {kind})")


class UNet(nn.Module):
    """G: (C, S, S) -> (C, S, S). log2(S) stride-2 levels down to 1x1 (8 for the paper's unet_256);
    widths ngf, 2 ngf, 4 ngf, then 8 ngf all the way down."""

    def __init__(self, channels, image_size, ngf=64, norm="batch", dropout=0.5):
        super().__init__()
        Norm, bias = norm_layer(norm)
        levels = image_size.bit_length() - 1                             # 256 -> 8, 64 -> 6
        widths = [min(ngf * 2 ** i, ngf * 8) for i in range(levels)]     # encoder widths, outermost first
        # encoder: e_0 = LReLU(conv(A)), e_i = LReLU(BN(conv(e_{i-1}))), innermost e_{L-1} = ReLU(conv(.)):
        # no norm on the first level (the paper) nor on the 1x1 bottleneck (one value per channel); like the
        # paper's reference code, these two convs have no bias either with BatchNorm (the counts match it)
        self.down = nn.ModuleList()
        for i in range(levels):
            c_in, first, last = (channels if i == 0 else widths[i - 1]), i == 0, i == levels - 1
            self.down.append(nn.Sequential(
                nn.Conv2d(c_in, widths[i], 4, 2, 1, bias=bias),            # (c_in, H, W) -> (widths[i], H/2, W/2)
                *([] if first or last else [Norm(widths[i])]),
                nn.ReLU(True) if last else nn.LeakyReLU(0.2, True)))
        # decoder: d_{L-1} from e_{L-1} alone, then d_i = ReLU(BN(convT([d_{i+1}, e_i]))) up to the output
        self.up = nn.ModuleList()
        for i in reversed(range(1, levels)):
            c_in = widths[i] if i == levels - 1 else 2 * widths[i]       # [d_{i+1}, e_i]: the skip doubles it
            self.up.append(nn.Sequential(
                nn.ConvTranspose2d(c_in, widths[i - 1], 4, 2, 1, bias=bias),   # (c_in, H, W) -> (widths[i-1], 2H, 2W)
                Norm(widths[i - 1]),
                *([nn.Dropout(dropout)] if i >= levels - 3 else []),     # the three innermost blocks
                nn.ReLU(True)))
        self.out = nn.Sequential(nn.ConvTranspose2d(2 * widths[0], channels, 4, 2, 1), nn.Tanh())

    def forward(self, a):
        skips = []
        h = a
        for block in self.down:                                          # (C, S, S) -> ... -> (8 ngf, 1, 1)
            h = block(h)
            skips.append(h)
        skips.pop()                                                      # the bottleneck has no mirror
        for block in self.up:
            h = block(h)
            h = torch.cat([h, skips.pop()], 1)                           # skip connection: [d_i, e_i]
        return self.out(h)                                               # (2 ngf, S/2, S/2) -> (C, S, S)


def d_targets(n, device, soft=False, flip=0.0):
    """D's BCE targets for n real and n fake pairs: 1 and 0 (Eq. 1). The lab's stabilisers: soft labels
    draw them from U(0.7, 1.0) and U(0.0, 0.3); flipped labels give each one the other side's target
    with probability flip. One target per pair, for all its patches."""
    real = torch.arange(2 * n, device=device) < n                       # (2n,): n real, then n fake
    real ^= torch.rand(2 * n, device=device) < flip                     # flipped labels
    u = 0.3 * torch.rand(2 * n, device=device) if soft else torch.zeros(2 * n, device=device)
    return torch.where(real, 1 - u, u).view(-1, 1, 1, 1).split(n)      # soft labels: 1 - U(0, 0.3), U(0, 0.3)


def patchgan(c_in, ndf=64, n_layers=3, norm="batch", dropout=0.0):
    """D: the PatchGAN. Three stride-2 4x4 convs (ndf, 2 ndf, 4 ndf), one stride-1 (8 ndf), one to a
    logit per patch. For 256x256 input: 128, 64, 32, 31, 30; each logit sees a 70x70 window. Dropout
    after each LeakyReLU when asked (the lab's stabiliser; not in the paper)."""
    drop = [nn.Dropout(dropout)] if dropout else []
    Norm, bias = norm_layer(norm)
    layers = [nn.Conv2d(c_in, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True), *drop]   # C64, no norm (the paper)
    c = ndf
    for i in range(1, n_layers + 1):
        c_out, stride = ndf * min(2 ** i, 8), 2 if i < n_layers else 1
        layers += [nn.Conv2d(c, c_out, 4, stride, 1, bias=bias), Norm(c_out), nn.LeakyReLU(0.2, True), *drop]
        c = c_out
    return nn.Sequential(*layers, nn.Conv2d(c, 1, 4, 1, 1))              # (8 ndf, P+1, P+1) -> (1, P, P)


class Pix2Pix(nn.Module):
    batch_size = 16         # the paper trains with batch 1 to 10; 16 keeps BatchNorm's running statistics
    sampling_networks = ("G",)   # what sample.py --compile compiles
    paired = True           # train.py: data are (B, A) pairs, given as (x, y)

    def __init__(self, image_size=256, channels=3, num_classes=0, *, ngf=64, ndf=64, n_layers=3, norm="batch",
                 dropout=0.5, lambda_l1=100.0, n_critic=1, soft_labels=False, flip_labels=0.0, d_dropout=0.0,
                 lr=2e-4, beta1=0.5, beta2=0.999):
        super().__init__()
        if image_size < 16 or image_size & (image_size - 1):
            raise ValueError(f"image size must be a power of two, at least 16 (got {image_size})")
        if image_size >> n_layers < 4:
            raise ValueError(f"a {n_layers}-layer PatchGAN needs images of at least {4 << n_layers} pixels: "
                             f"lower n_layers")
        if not (0 <= flip_labels < 1 and 0 <= d_dropout < 1 and n_critic >= 1):
            raise ValueError("flip_labels and d_dropout are probabilities in [0, 1), n_critic >= 1")
        self.lambda_l1, self.lr, self.betas = lambda_l1, lr, (beta1, beta2)
        self.n_critic = n_critic                                         # train.py: a G step every n_critic steps
        self.soft_labels, self.flip_labels = soft_labels, flip_labels
        self.G = UNet(channels, image_size, ngf, norm, dropout)
        self.D = patchgan(2 * channels, ndf, n_layers, norm, d_dropout)  # conditional: sees [A, B]
        for m in self.modules():                                         # weights ~ N(0, 0.02), as DCGAN
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        self.fake = None                                                 # d_loss -> g_loss

    def critic(self, a, b):
        """D(A, B): a logit per patch, (B, 1, P, P)."""
        return self.D(torch.cat([a, b], 1))

    def d_loss(self, x, y):
        """D's step; x = B, the target, y = A, the input. Runs G(A) and keeps it, with its graph, in
        self.fake for the g_loss that follows on this batch."""
        self.fake = self.G(y)
        real_logit, fake_logit = self.critic(y, x), self.critic(y, self.fake.detach())   # D's step does not reach G
        t_real, t_fake = d_targets(x.shape[0], x.device, self.soft_labels, self.flip_labels)
        # Eq. 1 as BCEWithLogits (log-sigmoid without overflow), averaged over patches; halved (Sec. 3.3)
        return {"real": 0.5 * F.binary_cross_entropy_with_logits(real_logit, t_real.expand_as(real_logit)),
                "fake": 0.5 * F.binary_cross_entropy_with_logits(fake_logit, t_fake.expand_as(fake_logit)),
                "D(A,B)": real_logit.detach().sigmoid().mean(), "D(A,G(A))": fake_logit.detach().sigmoid().mean()}

    def g_loss(self, x, y):
        """G's step, on the G(A) the d_loss before it made (self.fake); x = B is read for the L1 term."""
        if self.fake is None:
            raise RuntimeError("g_loss scores the G(A) that d_loss made from this batch: call d_loss first")
        fake_logit = self.critic(y, self.fake)
        # non-saturating: maximise log D(A, G(A)) (gan.py says why); Eq. 3 L1, mean over pixels
        return {"gan": F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit)),
                "l1": self.lambda_l1 * (x - self.fake).abs().mean()}

    def configure_optimizers(self):
        fused = next(self.parameters()).is_cuda                          # fused Adam: on CUDA only
        return (torch.optim.Adam(self.D.parameters(), lr=self.lr, betas=self.betas, fused=fused),
                torch.optim.Adam(self.G.parameters(), lr=self.lr, betas=self.betas, fused=fused))

    @torch.no_grad()
    def sample(self, n, y, *, dropout=True, batch_stats=True):
        """G(A) for n inputs A = y (n, C, S, S). By default G runs exactly as in training, as Isola et al.
        run it at test time (Sec. 3.3): dropout on, G's only noise, and BatchNorm with the statistics of
        this batch of inputs. dropout=False gives the deterministic translation; batch_stats=False
        normalises with the running averages of training instead (the usual protocol), so that each
        output depends on its own input alone. The model's mode and running averages are left as found."""
        modes = [(m, m.training) for m in self.G.modules()]
        running = [b.clone() for b in self.G.buffers()]                  # batch statistics must not move these
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
