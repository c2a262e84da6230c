"""SRGAN (Ledig et al., 2017): 4x super-resolution, a residual G trained against a D on a
perceptual loss; SRResNet, the same G trained on pixel MSE alone, is the baseline it beats.

x is the high-resolution image I^HR, (B, C, S, S) in [-1, 1]; its low-resolution input I^LR is
made from it inside the loss, so any folder of images trains it and train.py's loop is unchanged.

    1. I^LR       bicubic 4x downsampling of I^HR (antialiased), (B, C, S/4, S/4)
    2. G          SRResNet: 9x9 conv + PReLU, B = 16 residual blocks (conv-BN-PReLU-conv-BN, + x),
                  conv-BN + the skip from the first PReLU, two x2 sub-pixel blocks (conv to 4C
                  channels, periodic shuffle, PReLU), 9x9 conv to C channels       (Fig. 4)
    3. shuffle    PS(T)[c, r h + i, r w + j] = T[r^2 c + r i + j, h, w], r = 2   (Shi et al., 2016)
    4. MSE        l_MSE = 1/(r^2 W H) sum (I^HR - G(I^LR))^2                          (Eq. 4)
    5. content    l_VGG/5,4 = 1/(W H) sum (phi_5,4(I^HR) - phi_5,4(G(I^LR)))^2,
                  phi_5,4 VGG19's 4th conv (after ReLU) before the 5th max-pool        (Eq. 5);
                  the feature maps divided by 12.75 as the paper does, so the loss is about
                  0.006 x Eq. 5 and on the MSE's scale; means over channels too
    6. adversarial l_Gen = sum -log D(G(I^LR))                                          (Eq. 6)
    7. perceptual l^SR = l_content + 10^-3 l_Gen                                        (Eq. 3)
    8. D          8 3x3 convs, 64 to 512 channels, stride 2 every other, BN (not the first),
                  LeakyReLU(0.2), dense 1024, LeakyReLU, dense 1 (a logit); BCE against 1 and 0

--content mse is SRResNet: configure_optimizers returns G's optimizer alone, so train.py calls
loss (Eq. 4) and no D is built or stepped. Without a VGG19 file the perceptual loss reads the
project's own classifier (python evaluate.py --train-classifier): a random VGG's features are not
perceptual. The feature network is built here from the file's state dict (torch only, no
torchvision), frozen, and saved in the checkpoint with the rest; the file is read again whenever
the model is built (train.py, sample.py), so keep it where it was.

    python train.py srgan --data ./photos --image-size 96 --vgg-weights vgg19.pth
    python train.py srgan --data ./fashion --image-size 32 --features clf.pt
    python train.py srgan --data ./fashion --image-size 32 --content mse      # SRResNet
    python sample.py runs/srgan/ckpt.pt --input ./held_out --out sr.png     # bicubic | G | I^HR
"""
import os
import torch
import torch.nn as nn
import torch.nn.functional as F

VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512)                  # torchvision's cfg "E", cut after conv 5_4
IMAGENET_MEAN = (0.485, 0.456, 0.406)         # the normalisation VGG19's weights were trained with
IMAGENET_STD = (0.229, 0.224, 0.225)


class SRGAN(nn.Module):
    batch_size = 16                     # the paper's
    sampling_networks = ("G",)          # what sample.py --compile compiles
    upscales = True                     # sample.py: --input images are upsampled (support/upscale)

    def __init__(self, image_size=96, channels=3, num_classes=0, *, content="perceptual",
                 vgg_weights=None, features=None, B=16, ngf=64, ndf=64, adv_weight=1e-3,
                 lr=1e-4, beta1=0.9, beta2=0.999):
        """G, D and the content loss's feature network; each keyword is a train.py flag.

        content: perceptual (SRGAN: features + adversarial) or mse (SRResNet: pixels, no D)
        vgg_weights: torchvision's vgg19 state dict: the content loss on phi_5,4 (the paper)
        features: else a classifier of evaluate.py: the content loss on its last conv features
        B: residual blocks in G (the paper's 16)
        ngf: G's channels (the paper's 64)
        ndf: D's first width, doubled every other conv up to 8 ndf (the paper's 64)
        adv_weight: the weight of l_Gen in the perceptual loss (the paper's 10^-3)
        lr: Adam's learning rate (the paper's 10^-4)
        beta1: Adam's beta1 (the paper's 0.9)
        beta2: Adam's beta2 (the paper's 0.999)
        """
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image size {image_size} is not a multiple of 4: G upsamples 4x")
        if content not in ("perceptual", "mse"):
            raise ValueError(f"content is perceptual or mse (got {content})")
        if content == "perceptual" and bool(vgg_weights) == bool(features):
            raise ValueError("the perceptual loss needs one feature network: --vgg-weights PATH "
                             "(torchvision's vgg19) or --features PATH (a classifier of "
                             "evaluate.py); --content mse trains SRResNet without one")
        self.image_size = image_size
        self.content = content
        self.adv_weight = adv_weight
        self.lr = lr
        self.betas = (beta1, beta2)
        self.G = SRResNet(channels, ngf, B)
        self.D = None
        self.phi = None
        if content == "perceptual":
            self.D = discriminator(channels, image_size, ndf)
            self.phi = vgg19(vgg_weights, channels) if vgg_weights else classifier(features,
                                                                                   channels)
            self.phi.requires_grad_(False)
        self.fake = None                                            # d_loss -> g_loss
        self.x_lr = None                                            # the last batch's I^LR

    def train(self, mode=True):
        """The feature network stays frozen in eval mode (its BatchNorm's statistics fixed)."""
        super().train(mode)
        if self.phi is not None:
            self.phi.eval()
        return self

    def downsample(self, x):
        """Step 1: I^HR (B, C, S, S) -> I^LR (B, C, S/4, S/4), bicubic with antialiasing."""
        s = x.shape[-1] // 4
        lr = F.interpolate(x.float(), size=(s, s), mode="bicubic", antialias=True)
        return lr.clamp(-1, 1)                                      # bicubic overshoots a little

    def upsample(self, x):
        """G(I^LR) for the batch I^HR: step 1, then step 2; keeps I^LR for train.py's grids."""
        self.x_lr = self.downsample(x).detach()
        return self.G(self.x_lr)

    def loss(self, x, y=None):
        """SRResNet (--content mse): Eq. 4, the pixel MSE, a mean over pixels and channels."""
        return {"mse": F.mse_loss(self.upsample(x).float(), x.float())}         # l_MSE

    def d_loss(self, x, y=None):
        """D's side: maximise log D(I^HR) + log(1 - D(G(I^LR))), as BCE on D's logits against 1
        and 0. Runs G and keeps G(I^LR), with its graph, in self.fake for g_loss."""
        self.fake = self.upsample(x)                                # G(I^LR): (B, C, S, S)
        real = self.D(x)                                            # D(I^HR): (B, 1) logits
        fake = self.D(self.fake.detach())                           # D's step does not reach G
        bce = F.binary_cross_entropy_with_logits                    # log-sigmoid without overflow
        return {"real": bce(real, torch.ones_like(real)),           # -log D(I^HR)
                "fake": bce(fake, torch.zeros_like(fake)),          # -log(1 - D(G(I^LR)))
                "D(HR)": real.detach().sigmoid().mean(),            # logged: D's belief
                "D(SR)": fake.detach().sigmoid().mean()}

    def g_loss(self, x, y=None):
        """Eq. 3: l^SR = l_content (Eq. 5) + 10^-3 l_Gen (Eq. 6), on the G(I^LR) of d_loss."""
        if self.fake is None:
            raise RuntimeError("g_loss scores the G(I^LR) that d_loss made from this batch: "
                               "call d_loss first")
        fake = self.D(self.fake)
        gen = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))  # Eq. 6: -log D(G)
        return {"content": self.content_loss(self.fake, x),                    # Eq. 5
                "adversarial": self.adv_weight * gen}                          # Eq. 3: 10^-3 l_Gen

    def content_loss(self, sr, hr):
        """Eq. 5: the MSE of the feature maps phi of G(I^LR) and I^HR (a mean over positions and
        channels); phi of I^HR is a fixed target."""
        with torch.no_grad():
            target = self.phi(hr.float())
        return F.mse_loss(self.phi(sr.float()), target)

    def configure_optimizers(self):
        fused = next(self.parameters()).is_cuda                     # fused Adam: on CUDA only
        g_opt = torch.optim.Adam(self.G.parameters(), lr=self.lr, betas=self.betas, fused=fused)
        if self.D is None:                                          # SRResNet: train.py calls loss
            return g_opt
        d_opt = torch.optim.Adam(self.D.parameters(), lr=self.lr, betas=self.betas, fused=fused)
        return d_opt, g_opt

    @torch.no_grad()
    def sample(self, n, y=None):
        """G's 4x upsampling of n images y, clamped to [-1, 1]: y of the model's size S is first
        downsampled (step 1, so the output compares with y), a smaller y is upsampled as it is.
        Without y (train.py's grids), the last training batch's I^LR, cycled to n images."""
        if y is None:
            if self.x_lr is None:
                raise RuntimeError("sample upsamples y, or the last training batch's inputs")
            y = self.x_lr[torch.arange(n, device=self.x_lr.device) % len(self.x_lr)]
        elif y.shape[-1] == self.image_size:
            y = self.downsample(y[:n])
        return self.G(y[:n]).clamp(-1, 1)


# ---- G: SRResNet (steps 2 and 3) --------------------------------------------------------------

def shuffle(T, r=2):
    """Step 3, the periodic shuffle: (B, r^2 C, H, W) -> (B, C, r H, r W); channel r^2 c + r i + j
    lands at pixel (r h + i, r w + j) of channel c, as nn.PixelShuffle(r) does."""
    B, Cr2, H, W = T.shape
    C = Cr2 // (r * r)
    T = T.reshape(B, C, r, r, H, W)                                 # [b, c, i, j, h, w]
    return T.permute(0, 1, 4, 2, 5, 3).reshape(B, C, r * H, r * W)  # [b, c, (h, i), (w, j)]


class Residual(nn.Module):
    """k3n64s1 conv - BN - PReLU - conv - BN, + the block's input."""

    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c), nn.PReLU(c),
                                  nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c))

    def forward(self, h):
        return h + self.body(h)


class Upsample(nn.Module):
    """x2 sub-pixel convolution: k3n256s1 conv to 4C channels, the shuffle, PReLU."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, 4 * c, 3, 1, 1)
        self.act = nn.PReLU(c)

    def forward(self, h):
        return self.act(shuffle(self.conv(h), 2))                  # (4c, H, W) -> (c, 2H, 2W)


class SRResNet(nn.Module):
    """G: (C, s, s) -> (C, 4s, 4s). No output non-linearity, as in the paper (its MSE is on the
    [-1, 1] scale); sample clamps."""

    def __init__(self, channels=3, c=64, B=16):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(channels, c, 9, 1, 4), nn.PReLU(c))     # k9n64s1
        self.blocks = nn.Sequential(*[Residual(c) for _ in range(B)])
        self.post = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c))
        self.up = nn.Sequential(Upsample(c), Upsample(c))                           # x2 x2 = x4
        self.tail = nn.Conv2d(c, channels, 9, 1, 4)                                 # k9n3s1

    def forward(self, x_lr):
        h = self.head(x_lr)                                         # (c, s, s)
        h = h + self.post(self.blocks(h))                           # the skip over the B blocks
        return self.tail(self.up(h))                                # (c, 4s, 4s) -> (C, 4s, 4s)


# ---- D (step 8) -------------------------------------------------------------------------------

def discriminator(channels, image_size, ndf=64):
    """D: (C, S, S) -> a logit. Conv k3 s1 then (k3 s2, k3 s1) pairs doubling the width: 64, 64,
    128, 128, 256, 256, 512, 512; four stride-2 convs leave ceil(S / 16) on a side."""
    layers = [nn.Conv2d(channels, ndf, 3, 1, 1), nn.LeakyReLU(0.2, True)]
    c = ndf
    s = image_size
    for i in range(1, 8):
        c_out = ndf * 2 ** (i // 2)
        stride = 2 if i % 2 else 1
        layers += [nn.Conv2d(c, c_out, 3, stride, 1), nn.BatchNorm2d(c_out),
                   nn.LeakyReLU(0.2, True)]
        c = c_out
        s = (s + 1) // 2 if stride == 2 else s
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(c * s * s, 1024), nn.LeakyReLU(0.2, True),      # dense 1024
                         nn.Linear(1024, 1))                                       # dense 1


# ---- The content loss's feature networks phi (step 5) -----------------------------------------

def state_dict_of(path, flag):
    """A weights file, as plain data, or ValueError naming the flag."""
    if not os.path.isfile(path):
        raise ValueError(f"no file at --{flag} {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"--{flag} {path} is not a readable weights file ({type(e).__name__})")


class VGGFeatures(nn.Module):
    """VGG19's features[:36], phi_5,4 (conv 5_4 after its ReLU), with torchvision's names
    (features.0.weight, ...); grey images are repeated to RGB, then ImageNet-normalised."""

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
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, x):
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = ((x + 1) / 2 - self.mean) / self.std                    # [-1, 1] -> ImageNet's scale
        return self.features(x) / 12.75                             # the paper's rescaling


def vgg19(path, channels):
    """phi_5,4 from torchvision's vgg19 state dict: its features.* keys, loaded strictly."""
    net = VGGFeatures()
    sd = state_dict_of(path, "vgg-weights")
    kept = {k: v for k, v in sd.items() if k.startswith("features.")} if isinstance(sd, dict) else {}
    try:
        net.load_state_dict(kept)
    except RuntimeError:
        raise ValueError(f"--vgg-weights {path} is not torchvision's vgg19 state dict "
                         "(features.0.weight ... features.34.bias)")
    if channels not in (1, 3):
        raise ValueError(f"VGG19 reads grey or RGB images, not {channels} channels")
    return net


class ClassifierFeatures(nn.Module):
    """evaluate.py's classifier (support/classifier.py), its layers under the same names so its
    weights load; phi is its third conv block after ReLU, (4 width, S/4, S/4): the deepest
    features that keep their layout, as phi_5,4 is VGG19's. BatchNorm keeps them near unit scale,
    so they are not rescaled. It reads [0, 1] images as 2 x - 1: our x itself."""

    def __init__(self, channels, num_classes, width):
        super().__init__()
        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                 nn.ReLU())
        self.net = nn.Sequential(
            block(channels, width), nn.MaxPool2d(2),
            block(width, 2 * width), nn.MaxPool2d(2),
            block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(64 * width, 4 * width), nn.ReLU())
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.net[:5](x)                                      # up to the third block's ReLU


def classifier(path, channels):
    """phi from a classifier file of python evaluate.py --train-classifier, loaded strictly."""
    ck = state_dict_of(path, "features")
    if not isinstance(ck, dict) or ck.get("model") != "classifier":
        raise ValueError(f"--features {path} is not a classifier of evaluate.py: make one with "
                         "python evaluate.py --train-classifier DIR --out clf.pt")
    if ck["config"]["channels"] != channels:
        raise ValueError(f"--features {path} reads {ck['config']['channels']}-channel images, "
                         f"the data have {channels}")
    net = ClassifierFeatures(**ck["config"])
    net.load_state_dict(ck["weights"])
    return net
