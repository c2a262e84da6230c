"""Deep convolutional GAN (Radford et al., 2015): the GAN game of gan.py, played by
convolutional networks; conditional when labels are given (y's learned embedding joined to
z, y as one-hot maps joined to D's input; a set of labels as a multi-hot vector, of which
a class id c is the case e_c).

    G             z (z_dim, 1, 1) -> ConvTranspose 4x4 stride 2 + BatchNorm + ReLU,
                  doubling the size each time -> Tanh: (C, S, S) in [-1, 1]
    D             (C, S, S) -> Conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2), halving it
                  -> logit; no pooling, no bias before BatchNorm, weights ~ N(0, 0.02)
    the game      min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]        (Goodfellow et al.,
                  Eq. 1)
    D's step      minimise BCE(D(x), 1) + BCE(D(G(z)), 0)
    G's step      non-saturating: maximise E[log D(G(z))], i.e. minimise BCE(D(G(z)), 1)

The hand-off: train.py calls d_loss and then g_loss on the same batch. d_loss draws the
fakes and their labels and keeps them, with their graph, in self.fake and self.y_fake;
g_loss scores those.

Beyond the lecture's game, the model dcgan-lab (the class DCGANLab at the end of the
file):

    ACGAN         D also names the class (Odena et al., 2017): D maximises L_S + L_C, G
                  L_C - L_S, the log-likelihoods of the right source (real or fake) and
                  class; as losses, CE(class(x), y) + CE(class(G(z, c)), c) for D,
                  CE(class(G(z, c)), c) for G; for sets of labels (multi-hot c), BCE on
                  each of the K logits, summed over them
    WGAN          D is the critic f: D's loss f(G(z)) - f(x), G's -f(G(z)); 5 D steps per
                  G step, RMSprop at lr 5e-5, D's weights clipped to [-0.01, 0.01] after
                  each D step (Arjovsky et al., 2017, Algorithm 1)
    WGAN-GP       no clipping: + lambda (||grad f(x_hat)|| - 1)^2 (Gulrajani et al., 2017,
                  Eq. 3), x_hat between a real x and a fake of the same condition
    stabilisers   the lab's: n_critic D steps per G step, soft and flipped labels, dropout
                  in D; the report's D:G ratios: d_repeats D steps on one batch, g_steps G
                  steps per D's; the report's D input: y as one learned S x S map
                  (y_embed)

    python train.py dcgan --data ./celeba                  # 64x64
    python train.py dcgan-lab --data ./fashion-mnist --classes --image-size 32 --acgan
    python train.py dcgan-lab --data ./fashion-mnist --image-size 32 --loss wgan
    python train.py dcgan-lab --data ./fashion-mnist --classes --image-size 32 --acgan \\
        --n-critic 3 --soft-labels --flip-labels 0.05 --d-dropout 0.3   # the lab's ACGAN
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from gan import GAN, bce_terms, d_targets


def up(c_in, c_out, first=False):
    """ConvTranspose 4x4 + BatchNorm + ReLU: (c_in, 1, 1) -> (c_out, 4, 4) when first,
    else doubling H and W."""
    stride, padding = (1, 0) if first else (2, 1)
    conv = nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(True))


def down(c_in, c_out, norm, dropout=0.0):
    """Conv 4x4 stride 2 (+ norm) + LeakyReLU(0.2): (c_in, H, W) -> (c_out, H/2, W/2);
    then dropout if asked (the lab's)."""
    conv = nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)
    normed = [norm(c_out)] if norm else []
    dropped = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(conv, *normed, nn.LeakyReLU(0.2, True), *dropped)


def levels_of(image_size):
    """The stride-2 levels between 4x4 and S x S: 4 for S = 64."""
    levels = image_size.bit_length() - 3
    if image_size < 8 or image_size != 4 << levels:
        raise ValueError(f"image size must be a power of two, at least 8 (got {image_size})")
    return levels


def generator(z_in, channels, ngf, levels):
    """G: (z_in, 1, 1) -> (C, S, S); the state sizes written for S = 64."""
    # 8 ngf, 4 ngf, 2 ngf, ngf
    widths = [ngf * 2 ** i for i in reversed(range(levels))]
    return nn.Sequential(
        # state size: (8 ngf, 4, 4)
        up(z_in, widths[0], first=True),
        # (4 ngf, 8, 8) .. (ngf, 32, 32)
        *[up(a, b) for a, b in zip(widths, widths[1:])],
        nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False),   # (C, 64, 64)
        nn.Tanh())


def discriminator(c_in, ndf, levels, bn_first, norm=nn.BatchNorm2d, dropout=0.0):
    """D's convolutions: (c_in, S, S) -> (8 ndf, 4, 4); the state sizes written for S =
    64."""
    # ndf, 2 ndf, 4 ndf, 8 ndf
    widths = [ndf * 2 ** i for i in range(levels)]
    return nn.Sequential(
        # state size: (ndf, 32, 32)
        down(c_in, widths[0], norm if bn_first else None, dropout),
        # .. (8 ndf, 4, 4)
        *[down(a, b, norm, dropout) for a, b in zip(widths, widths[1:])])


def init_weights(model):
    """The paper's initialisation: conv weights ~ N(0, 0.02), BatchNorm's scales ~ N(1,
    0.02)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGAN(GAN):
    """The lecture's DCGAN: gan.py's game (and its sampling), on convolutional G and D."""
    # the paper's, as are Adam's lr and betas
    batch_size = 128
    # every keyword acts (gan.py's needs are of the game's options)
    needs = {}

    def __init__(self, image_size=64, channels=3, num_classes=0, *, z_dim=128, ngf=64, ndf=64,
                 bn_first=True, lr=2e-4, betas=(0.5, 0.999)):
        """The networks and their optimisers' settings; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I) (paper: 100)
        ngf: G's width: channels of its last hidden layer, doubled per level towards z (paper: 128)
        ndf: D's width: channels of its first layer, doubled per level deeper
        bn_first: BatchNorm after D's first conv too, as the lecture's table (paper: none there)
        lr: Adam's learning rate (paper: 2e-4)
        betas: Adam's beta1, beta2 (the paper's beta1 0.5)
        """
        levels = levels_of(image_size)
        # gan.py's methods; networks of its own
        nn.Module.__init__(self)
        k = num_classes
        # conditional G: [z, y W], W a row per label
        self.embed = nn.Embedding(k, z_dim) if k else None
        self.G = generator(z_dim * (2 if k else 1), channels, ngf, levels)
        # conditional D: [x, K maps]
        self.D = discriminator(channels + k, ndf, levels, bn_first)
        # (8 ndf, 4, 4) -> 1
        self.D_out = nn.Conv2d(ndf << levels - 1, 1, 4, 1, 0, bias=False)
        init_weights(self)
        self.z_dim = z_dim
        self.num_classes = k
        self.lr = lr
        self.betas = betas
        self.fake = None                                # d_loss -> g_loss

    def generate(self, z, y=None):
        """G(z | y): (n, z_dim) -> (n, C, S, S) in [-1, 1]. y's embedding y W: for e_c W's
        row c, the Embedding lookup; for a set the sum of its labels' rows."""
        if self.embed is not None:
            z = torch.cat([z, self.onehot(y) @ self.embed.weight], 1)   # (n, 2 z_dim)
        return self.G(z[:, :, None, None])

    def features(self, x, y=None):
        """D's convolutions on [x, y as K constant one-hot maps]: (B, C, S, S) -> (B, 8
        ndf, 4, 4)."""
        if self.num_classes:
            maps = self.onehot(y).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, maps], 1)
        return self.D(x)

    def logits(self, x, y=None):
        """D(x | y) as a logit (under WGAN the critic's score f(x)): (B, C, S, S) ->
        (B,)."""
        return self.D_out(self.features(x, y)).flatten()

    def draw(self, x, y=None):
        """G(z | c) for a batch x, c its labels y shuffled: kept, with its graph, in
        self.fake and c in self.y_fake for g_loss. Returns the shuffle."""
        z = torch.randn(x.shape[0], self.z_dim, device=x.device)     # z ~ N(0, I)
        perm = torch.randperm(x.shape[0], device=x.device)
        # c ~ p(c), the data's own mix
        self.y_fake = None if y is None else y[perm]
        self.fake = self.generate(z, self.y_fake)
        return perm

    def d_loss(self, x, y=None):
        """D's step, Eq. 1: maximise E[log D(x)] + E[log(1 - D(G(z | c)))], on fakes drawn
        now."""
        self.draw(x, y)
        # D's step does not reach G
        fake = self.fake.detach()
        # D(x) = sigmoid(real_logit)
        real_logit = self.logits(x, y)
        fake_logit = self.logits(fake, self.y_fake)
        t_real, t_fake = d_targets(x.shape[0], x.device)             # 1 and 0
        return bce_terms(real_logit, fake_logit, t_real, t_fake)

    def g_loss(self, x, y=None):
        """G's step on the fakes d_loss drew (self.fake, self.y_fake; x, y unread).
        Non-saturating: maximise E[log D(G(z))]; log(1 - D(G(z))) stalls (gan.py)."""
        fake_logit = self.logits(self.fakes(), self.y_fake)
        target = torch.ones_like(fake_logit)
        # -log D(G(z))
        return {"gan": F.binary_cross_entropy_with_logits(fake_logit, target)}


# ---- Beyond the lecture's game: ACGAN, WGAN, WGAN-GP, the lab's stabilisers and the report's
# options (the model dcgan-lab). The same G; D with the lab's input, norm, dropout and heads.

class DCGANLab(DCGAN):
    """DCGAN with ACGAN's class head (Odena et al., 2017), WGAN's critic (Arjovsky et al.,
    2017) or WGAN-GP's penalty (Gulrajani et al., 2017), the lab's stabilisers and the
    report's D:G ratios and D input."""
    # gan.py's needs, Adam's betas in one; ACGAN's D reads x alone
    needs = {"soft_labels": {"loss": "bce"}, "flip_labels": {"loss": "bce"},
             "gp_lambda": {"loss": "wgan-gp"}, "clip": {"loss": "wgan"},
             "betas": {"loss": ("bce", "wgan-gp")}, "y_embed": {"acgan": False}}

    def __init__(self, image_size=64, channels=3, num_classes=0, *, z_dim=128, ngf=64, ndf=64,
                 bn_first=True, acgan=False, y_embed=False, loss="bce", gp_lambda=10.0,
                 clip=0.01, n_critic=None, d_repeats=1, g_steps=1, soft_labels=False,
                 flip_labels=0.0, d_dropout=0.0, lr=None, betas=(0.5, 0.999)):
        """The networks and their optimisers' settings; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I) (paper: 100)
        ngf: G's width: channels of its last hidden layer, doubled per level towards z (paper: 128)
        ndf: D's width: channels of its first layer, doubled per level deeper
        bn_first: BatchNorm after D's first conv too, as the lecture's table (paper: none there)
        acgan: D also classifies its input, an auxiliary classifier GAN (Odena et al.)
        y_embed: D reads y as the lab report's learned S x S map, Linear(K, S^2), not K one-hot maps
        loss: bce (Goodfellow et al.'s game), wgan (Arjovsky et al.) or wgan-gp (Gulrajani et al.)
        gp_lambda: wgan-gp: the weight lambda of the gradient penalty (paper: 10)
        clip: wgan: D's weights clipped to [-clip, clip] after each D step (paper: 0.01)
        n_critic: D steps per G step (default: the loss's paper: 1 for bce, 5 for the WGANs)
        d_repeats: D steps on each batch, all on the same images, before G's (the lab report's)
        g_steps: G steps each time G steps, each on new z (the lab report's G:D ratios above 1)
        soft_labels: bce: D's targets ~ U(0.7, 1.0) for real, U(0.0, 0.3) for fake (the lab's)
        flip_labels: bce: the probability that each of D's targets is swapped (the lab's)
        d_dropout: dropout after each of D's conv blocks (the lab's)
        lr: learning rate (default: the optimizer's paper: Adam 2e-4, RMSprop 5e-5 for wgan)
        betas: Adam's beta1, beta2 (WGAN-GP's paper: 0, 0.9)
        """
        levels = levels_of(image_size)
        if (acgan or y_embed) and not num_classes:
            raise ValueError("an ACGAN needs class labels (num_classes > 0), and so does y_embed")
        nn.Module.__init__(self)                        # DCGAN's G, the lab's D
        k = num_classes
        width = ndf << levels - 1                       # D's last: (8 ndf, 4, 4) at 64x64
        self.embed = nn.Embedding(k, z_dim) if k else None
        self.D_embed = nn.Linear(k, image_size**2) if y_embed else None   # y -> S x S
        self.G = generator(z_dim * (2 if k else 1), channels, ngf, levels)
        # WGAN-GP's D has no BatchNorm, which mixes a batch's samples while the penalty is per
        # sample: layer norm over (C, H, W), GroupNorm(1, c). WGAN's keeps it, as Arjovsky et al.'s.
        norm = (lambda c: nn.GroupNorm(1, c)) if loss == "wgan-gp" else nn.BatchNorm2d
        maps = 0 if acgan else 1 if y_embed else k      # ACGAN's D reads x alone
        self.D = discriminator(channels + maps, ndf, levels, bn_first, norm, d_dropout)
        self.D_out = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        self.D_aux = nn.Conv2d(width, k, 4, 1, 0) if acgan else None   # K class logits
        init_weights(self)
        self.game(loss, n_critic, gp_lambda, clip, soft_labels, flip_labels, lr, betas)
        self.z_dim = z_dim
        self.num_classes = k
        self.acgan = acgan
        # read by train.py's step, as n_critic
        self.d_repeats = d_repeats
        self.g_steps = g_steps
        self.fake = None

    def features(self, x, y=None):
        """D's convolutions on x alone (ACGAN), [x, K one-hot maps], or with y_embed [x,
        the report's one learned map, Linear(K, S^2) of y]."""
        if self.acgan:
            return self.D(x)
        if self.D_embed is None:
            return super().features(x, y)
        y = self.onehot(y).to(x.dtype)
        maps = self.D_embed(y).view(-1, 1, *x.shape[2:]).to(x.dtype)   # (B, 1, S, S)
        return self.D(torch.cat([x, maps], 1))

    def d_loss(self, x, y=None):
        """DCGAN's D step, with the lab's targets, or as WGAN's critic, + ACGAN's class
        loss."""
        perm = self.draw(x, y)
        # g_loss: self.fake unused
        self.g_done = False
        fake = self.fake.detach()
        h_real = self.features(x, y)
        h_fake = self.features(fake, self.y_fake)
        real_logit = self.D_out(h_real).flatten()
        fake_logit = self.D_out(h_fake).flatten()
        # WGAN-GP: fake[perm.argsort()][i] is the fake drawn for y_i, so each line x_hat joins
        # two samples of one condition
        terms = self.d_terms(real_logit, fake_logit, x, fake[perm.argsort()], y)
        if self.acgan:
            terms["aux"] = self.class_loss(h_real, y) + self.class_loss(h_fake, self.y_fake)
        return terms

    def g_loss(self, x, y=None):
        """G's step on the fakes d_loss drew, or on new z for the same c (g_steps);
        ACGAN's G also minimises the class loss of its fakes."""
        fake = self.fakes()
        # g_steps: z ~ N(0, I) anew
        if self.g_done:
            z = torch.randn(fake.shape[0], self.z_dim, device=fake.device)
            self.fake = self.generate(z, self.y_fake)
        self.g_done = True
        h = self.features(self.fake, self.y_fake)
        terms = self.g_terms(self.D_out(h).flatten())
        if self.acgan:
            terms["aux"] = self.class_loss(h, self.y_fake)
        return terms

    def class_loss(self, h, c):
        """ACGAN's -L_C = -log P(C = c | X) from the head's K logits l, per image, mean
        over the
        batch: D minimises it on real and fake images, G on its fakes. For a set c, each label
        present or not: -sum_k [c_k log sigma(l_k) + (1 - c_k) log(1 - sigma(l_k))]."""
        l = self.D_aux(h).flatten(1)                                 # (B, K)
        if c.dim() == 1:                                             # one class of K
            return F.cross_entropy(l, c)                             # -log softmax(l)_c
        # (B, K)
        bce = F.binary_cross_entropy_with_logits(l, c.float(), reduction="none")
        # a mean over k would weigh L_C by 1/K
        return bce.sum(1).mean()
