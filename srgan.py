"""SRGAN (Ledig et al., 2017): 4x super-resolution, a residual G trained against a D on
a perceptual loss; SRResNet, the same G trained on pixel MSE alone, is the baseline it
beats. x is the high-resolution I^HR, (B, C, S, S) in [-1, 1]; the low-resolution input
I^LR is made from it in the loss, so any folder of images trains it, and train.py's loop
is unchanged.

    1. I^LR       bicubic 4x downsampling of I^HR (antialiased), (B, C, S/4, S/4)
    2. G          SRResNet: 9x9 conv + PReLU, B = 16 residual blocks (conv-BN-PReLU-
                  conv-BN, + x), conv-BN + the skip from the first PReLU, two x2
                  sub-pixel blocks (conv to 4C channels, periodic shuffle, PReLU), 9x9
                  conv to C channels                                          (Fig. 4)
    3. shuffle    PS(T)[c, r h + i, r w + j] = T[r^2 c + r i + j, h, w], r = 2
                                                                   (Shi et al., 2016)
    4. MSE        l_MSE = 1/(r^2 W H) sum (I^HR - G(I^LR))^2                  (Eq. 4)
    5. content    l_VGG/5,4 = 1/(W H) sum (phi_5,4(I^HR) - phi_5,4(G(I^LR)))^2, phi_5,4
                  VGG19's 4th conv (after ReLU) before the 5th max-pool, its maps
                  divided by 12.75 as the paper does (the loss ~0.006, on the MSE's
                  scale)                                                      (Eq. 5)
    6. adversarial l_Gen = sum -log D(G(I^LR))                                  (Eq. 6)
    7. perceptual l^SR = l_content + 10^-3 l_Gen                                (Eq. 3)
    8. D          8 3x3 convs, 64 to 512 channels, stride 2 every other, BN (not the
                  first), LeakyReLU(0.2), dense 1024, LeakyReLU, dense 1 (a logit); BCE
                  against 1 and 0

--content mse is SRResNet: configure_optimizers returns G's optimizer alone, so train.py
calls loss (Eq. 4); no D is built or stepped. Without VGG19's weights phi is the project's
classifier (python evaluate.py --train-classifier): a random VGG's features are not
perceptual. phi is built here from the file (torch only), frozen, and kept in the
checkpoint; the file is read whenever the model is built (train.py, sample.py): keep it
where it was.

    python train.py srgan --data ./photos --image-size 96 --vgg-weights vgg19.pth
    python train.py srgan --data ./fashion --image-size 32 --features clf.pt
    python train.py srgan --data ./fashion --image-size 32 --content mse      # SRResNet
    python sample.py runs/srgan/ckpt.pt --input ./held_out --out sr.png  # bicubic|G|HR
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# torchvision's cfg "E", cut after conv 5_4
VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512)


class SRGAN(nn.Module):
    batch_size = 16                     # the paper's
    sampling_networks = ("G",)          # what sample.py --compile compiles
    upscales = True                     # sample.py: --input images are upsampled
    # SRResNet (--content mse) has no D and no feature network (settings.py's needs)
    needs = {k: {"content": "perceptual"} for k in ("vgg_weights", "features", "ndf",
                                                     "adv_weight")}

    def __init__(self, image_size=96, channels=3, num_classes=0, *, content="perceptual",
                 vgg_weights=None, features=None, B=16, ngf=64, ndf=64, adv_weight=1e-3,
                 lr=1e-4, beta1=0.9, beta2=0.999):
        """G, D and the content loss's feature network; each keyword is a train.py flag.

        content: perceptual (SRGAN: features + adversarial) or mse (SRResNet: no D)
        vgg_weights: torchvision's vgg19 state dict: the content loss on phi_5,4 (paper)
        features: else a classifier of evaluate.py: the content loss on its conv features
        B: residual blocks in G (the paper's 16)
        ngf: G's channels (the paper's 64)
        ndf: D's first width, doubled every other conv up to 8 ndf (the paper's 64)
        adv_weight: the weight of l_Gen in the perceptual loss (the paper's 10^-3)
        lr: Adam's learning rate (the paper's 10^-4)
        beta1: Adam's beta1 (the paper's 0.9)
        beta2: Adam's beta2 (the paper's 0.999)
        """
        super().__init__()
        perceptual = content == "perceptual"
        if image_size % 4:
            raise ValueError(f"image size {image_size} is not a multiple of 4: G upsamples "
                             "4x")
        if content not in ("perceptual", "mse"):
            raise ValueError(f"content is perceptual or mse (got {content})")
        if perceptual and channels not in (1, 3):
            raise ValueError(f"phi reads grey or RGB, not {channels} channels: use "
                             "--content mse")
        if perceptual and bool(vgg_weights) == bool(features):
            raise ValueError("the perceptual loss needs one feature network: "
                             "--vgg-weights PATH (torchvision's vgg19) or --features PATH "
                             "(a classifier of evaluate.py); --content mse trains SRResNet "
                             "without one")
        self.G = SRResNet(channels, ngf, B)
        self.D = discriminator(channels, image_size, ndf) if perceptual else None
        self.phi = None
        if perceptual:
            self.phi = vgg19(vgg_weights) if vgg_weights else classifier(features)
            # frozen: see train
            self.phi.requires_grad_(False).eval()
        # the last batch's I^LR
        self.x_lr = None
        self.image_size = image_size
        self.adv_weight = adv_weight
        self.lr = lr
        self.betas = (beta1, beta2)

    def train(self, mode=True):
        """The feature network stays frozen in eval mode (its BatchNorm's statistics)."""
        super().train(mode)
        if self.phi is not None:
            self.phi.eval()
        return self

    def downsample(self, x):
        """Step 1: I^HR (B, C, S, S) -> I^LR (B, C, S/4, S/4), bicubic, antialiased."""
        s = x.shape[-1] // 4
        lr = F.interpolate(x.float(), size=(s, s), mode="bicubic", antialias=True)
        # bicubic overshoots a little
        return lr.clamp(-1, 1)

    def loss(self, x, y=None):
        """SRResNet (--content mse): Eq. 4, the pixel MSE, a mean over pixels, channels."""
        # I^LR, kept for train.py's grids
        self.x_lr = self.downsample(x).detach()
        return {"mse": F.mse_loss(self.G(self.x_lr).float(), x.float())}

    def d_loss(self, x, y=None):
        """D's side: maximise log D(I^HR) + log(1 - D(G(I^LR))), as BCE on D's logits
        against 1 and 0. Runs G and keeps G(I^LR), with its graph, for g_loss."""
        self.x_lr = self.downsample(x).detach()
        self.fake = self.G(self.x_lr)                                     # (B, C, S, S)
        real = self.D(x)                                                  # (B, 1) logits
        # D's step does not reach G
        fake = self.D(self.fake.detach())
        # BCEWithLogits: log-sigmoid without overflow; -log D(I^HR), -log(1 - D(G(I^LR)))
        bce = F.binary_cross_entropy_with_logits
        return {"real": bce(real, torch.ones_like(real)),
                "fake": bce(fake, torch.zeros_like(fake)),
                "D(HR)": real.detach().sigmoid().mean(),
                "D(SR)": fake.detach().sigmoid().mean()}

    def g_loss(self, x, y=None):
        """Eq. 3: l^SR = l_content (Eq. 5) + 10^-3 l_Gen (Eq. 6), on d_loss's G(I^LR)."""
        fake = self.D(self.fake)
        # Eq. 6: -log D(G(I^LR))
        gen = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        return {"content": self.content_loss(self.fake, x),
                "adversarial": self.adv_weight * gen}

    def content_loss(self, sr, hr):
        """Eq. 5: the MSE of the feature maps phi of G(I^LR) and I^HR (a mean over
        positions and channels); phi is frozen, so phi(I^HR) is a fixed target."""
        return F.mse_loss(self.phi(sr.float()), self.phi(hr.float()))

    def configure_optimizers(self):
        """G's Adam, and D's before it when there is a D (SRResNet: train.py calls loss)."""
        # fused Adam: on CUDA only
        fused = self.G.tail.weight.is_cuda
        adam = lambda net: torch.optim.Adam(net.parameters(), self.lr, self.betas, fused=fused)
        if self.D is None:
            return adam(self.G)
        return adam(self.D), adam(self.G)

    @torch.no_grad()
    def sample(self, n, y=None):
        """G's 4x upsampling of n images y, clamped to [-1, 1]: y of the model's size S
        is first downsampled (step 1, so the output compares with y), a smaller y is
        upsampled as it is. Without y (train.py's grids), the last training batch's I^LR, cycled."""
        if y is None:
            if self.x_lr is None:
                raise RuntimeError("sample upsamples y, or the last training batch's "
                                   "inputs")
            y = self.x_lr[torch.arange(n, device=self.x_lr.device) % len(self.x_lr)]
        elif y.shape[-1] == self.image_size:
            y = self.downsample(y[:n])
        return self.G(y[:n]).clamp(-1, 1)


# ---- G: SRResNet (steps 2 and 3) ------------------------------------------------------

def shuffle(T, r=2):
    """Step 3, the periodic shuffle: (B, r^2 C, H, W) -> (B, C, r H, r W); channel
    r^2 c + r i + j lands at pixel (r h + i, r w + j) of channel c (nn.PixelShuffle(r))."""
    B, Cr2, H, W = T.shape
    C = Cr2 // (r * r)
    T = T.reshape(B, C, r, r, H, W)                                   # [b, c, i, j, h, w]
    # [b, c, (h, i), (w, j)]
    return T.permute(0, 1, 4, 2, 5, 3).reshape(B, C, r * H, r * W)


class Residual(nn.Module):
    """k3n64s1 conv - BN - PReLU - conv - BN, + the block's input."""

    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c),
                                  nn.PReLU(c), nn.Conv2d(c, c, 3, 1, 1),
                                  nn.BatchNorm2d(c))

    def forward(self, h):
        return h + self.body(h)


class Upsample(nn.Module):
    """x2 sub-pixel convolution: k3n256s1 conv to 4C channels, the shuffle, PReLU:
    (c, H, W) -> (c, 2H, 2W)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, 4 * c, 3, 1, 1)
        self.act = nn.PReLU(c)

    def forward(self, h):
        return self.act(shuffle(self.conv(h), 2))


class SRResNet(nn.Module):
    """G: (C, s, s) -> (C, 4s, 4s). No output non-linearity, as in the paper (its MSE is
    on the [-1, 1] scale); sample clamps."""

    def __init__(self, channels=3, c=64, B=16):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(channels, c, 9, 1, 4), nn.PReLU(c))
        self.blocks = nn.Sequential(*[Residual(c) for _ in range(B)])
        self.post = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c))
        self.up = nn.Sequential(Upsample(c), Upsample(c))                         # x4
        self.tail = nn.Conv2d(c, channels, 9, 1, 4)                               # k9n3s1

    def forward(self, x_lr):
        h = self.head(x_lr)                                           # (c, s, s)
        # the skip over the B blocks
        h = h + self.post(self.blocks(h))
        return self.tail(self.up(h))                                  # (C, 4s, 4s)


# ---- D (step 8) ------------------------------------------------------------------------

def discriminator(channels, image_size, ndf=64):
    """D: (C, S, S) -> a logit. Conv k3 s1 then (k3 s2, k3 s1) pairs doubling the width:
    64, 64, 128, 128, 256, 256, 512, 512; four stride-2 convs leave ceil(S / 16)."""
    layers = [nn.Conv2d(channels, ndf, 3, 1, 1), nn.LeakyReLU(0.2, True)]
    c = ndf
    for i in range(1, 8):
        c_out = ndf * 2 ** (i // 2)
        stride = 2 if i % 2 else 1
        layers += [nn.Conv2d(c, c_out, 3, stride, 1), nn.BatchNorm2d(c_out),
                   nn.LeakyReLU(0.2, True)]
        c = c_out
    s = -(-image_size // 16)                                          # ceil(S / 16)
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(c * s * s, 1024), nn.LeakyReLU(0.2, True),
                         nn.Linear(1024, 1))


# ---- The content loss's feature networks phi (step 5) ----------------------------------

def state_dict_of(path, flag):
    """A weights file, as plain data, or ValueError naming the flag (a missing file too)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"--{flag} {path} is not a readable weights file "
                         f"({type(e).__name__})")


def load(net, sd, why):
    """net's layers from the state dict sd, strictly (each key at its shape), the file's
    later ones left out; assign: train.py's check builds the model on the meta device."""
    try:
        kept = {k: v for k, v in sd.items() if k in net.state_dict()}
        net.load_state_dict(kept, assign=True)
    except (RuntimeError, AttributeError):
        # AttributeError: not a dict
        raise ValueError(why)
    return net


class VGGFeatures(nn.Module):
    """VGG19's features[:36], phi_5,4 (conv 5_4 after its ReLU), with torchvision's names
    (features.0.weight, ...); grey images repeated to RGB, then ImageNet-normalised."""

    def __init__(self):
        super().__init__()
        layers = []
        c = 3
        for v in VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, 1, 1), nn.ReLU(True)]
                c = v
        self.features = nn.Sequential(*layers)
        # ImageNet's statistics, which VGG19 was trained on
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, x):
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        # [-1, 1] -> ImageNet's scale; the paper's rescaling
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.features(x) / 12.75


def vgg19(path):
    """phi_5,4 from torchvision's vgg19 state dict (features.0.weight ... 34.bias)."""
    return load(VGGFeatures(), state_dict_of(path, "vgg-weights"),
                f"--vgg-weights {path} is not torchvision's vgg19 state dict")


class ClassifierFeatures(nn.Module):
    """evaluate.py's classifier (support/classifier.py) to its third conv block's ReLU,
    named as there: phi (4 width, S/4, S/4), its deepest features with a layout, as
    phi_5,4 is VGG19's; at BatchNorm's unit scale, not rescaled. It reads [0, 1] images as
    2 x - 1: our x; a grey one reads RGB as the channels' mean."""

    def __init__(self, channels, width):
        super().__init__()
        block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1),
                                                nn.BatchNorm2d(cout), nn.ReLU())
        self.net = nn.Sequential(block(channels, width), nn.MaxPool2d(2),       # (w, S/2, S/2)
                                 block(width, 2 * width), nn.MaxPool2d(2),      # (2w, S/4, S/4)
                                 block(2 * width, 4 * width))                   # (4w, S/4, S/4)
        self.channels = channels

    def forward(self, x):
        # RGB -> grey; grey -> RGB
        x = x.mean(1, keepdim=True) if self.channels < x.shape[1] else x
        return self.net(x.expand(-1, self.channels, -1, -1))


def classifier(path):
    """phi from a classifier file of evaluate.py --train-classifier, loaded strictly."""
    ck = state_dict_of(path, "features")
    if not isinstance(ck, dict) or ck.get("model") != "classifier":
        raise ValueError(f"--features {path} is not a classifier of evaluate.py: make one "
                         "with python evaluate.py --train-classifier DIR --out clf.pt")
    net = ClassifierFeatures(ck["config"]["channels"], ck["config"]["width"])
    return load(net, ck["weights"], f"--features {path}: its weights do not fit its "
                                    "config")
