"""Deep convolutional GAN (Radford et al., 2015): the GAN game of gan.py, played by convolutional
networks. Conditional when labels are given (class embedding joined to z, one-hot maps joined to
D's input; a set of labels as a multi-hot vector, of which a class id c is the case e_c), or
ACGAN-style (Odena et al., 2017) with an auxiliary classifier head; the Wasserstein
GAN (Arjovsky et al., 2017) and WGAN-GP (Gulrajani et al., 2017) as loss options; the lab's
stabilisers for any of them.

    G             z (nz, 1, 1) -> ConvTranspose 4x4 stride 2 + BatchNorm + ReLU, doubling the size
                  each time -> Tanh: (C, S, S) in [-1, 1]
    D             (C, S, S) -> Conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2), halving it -> one logit
                  no pooling, no bias before BatchNorm, weights ~ N(0, 0.02)
    D's step      minimise BCE(D(x), 1) + BCE(D(G(z)), 0)      (Goodfellow et al., Eq. 1; gan.py)
    G's step      minimise BCE(D(G(z)), 1), the non-saturating loss
    ACGAN         D also names the class: D maximises L_S + L_C, G maximises L_C - L_S, where L_S is
                  the log-likelihood of the right source (real or fake) and L_C of the right class:
                  + CE(class(x), y) + CE(class(G(z, c)), c) for D, + CE(class(G(z, c)), c) for G;
                  for sets of labels (multi-hot c) a multi-label head: CE becomes BCE on each of the K
                  logits, summed over them (each label present or not, independently)
    WGAN          critic loss f(G(z)) - f(x), generator loss -f(G(z)); 5 critic steps per G step,
                  RMSprop at lr 5e-5, the critic's weights clipped to [-0.01, 0.01] after each of its
                  steps (Arjovsky et al., Algorithm 1)
    WGAN-GP       no clipping: + lambda (||grad f(x_hat)|| - 1)^2 (Gulrajani et al., Eq. 3), x_hat
                  between a real x and a fake of the same condition
    stabilisers   the lab's: n_critic D steps per G step, soft and flipped labels (gan.py), dropout in D

The hand-off: train.py calls d_loss and then g_loss on the same batch. d_loss draws the fakes and
their labels and keeps them, with their graph, in self.fake and self.y_fake; g_loss scores those.

Defaults are the paper's: Adam lr 2e-4, betas (0.5, 0.999), batch 128.

    python train.py dcgan --data ./celeba                  # 64x64
    python train.py dcgan --data ./fashion-mnist --classes --image-size 32 --acgan
    python train.py dcgan --data ./fashion-mnist --image-size 32 --loss wgan
    python train.py dcgan --data ./fashion-mnist --classes --image-size 32 --acgan --n-critic 3 --soft-labels \\
        --flip-labels 0.05 --d-dropout 0.3                  # the lab's ACGAN
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def up(c_in, c_out, first=False):
    """ConvTranspose 4x4: (c_in, 1, 1) -> (c_out, 4, 4) when first, else (c_in, H, W) -> (c_out, 2H, 2W)."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 1 if first else 2, 0 if first else 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(True))


def down(c_in, c_out, norm, dropout=0.0):
    """Conv 4x4 stride 2: (c_in, H, W) -> (c_out, H/2, W/2); dropout after it when asked (the lab's D)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), *([norm(c_out)] if norm else []),
                         nn.LeakyReLU(0.2, True), *([nn.Dropout(dropout)] if dropout else []))


def d_targets(n, device, soft=False, flip=0.0):
    """D's BCE targets for n real and n fake samples: 1 and 0. The lab's stabilisers: soft labels draw
    them from U(0.7, 1.0) and U(0.0, 0.3); flipped labels give each one the other side's target with
    probability flip."""
    real = torch.arange(2 * n, device=device) < n                       # (2n,): n real, then n fake
    real ^= torch.rand(2 * n, device=device) < flip                     # flipped labels
    u = 0.3 * torch.rand(2 * n, device=device) if soft else torch.zeros(2 * n, device=device)
    return torch.where(real, 1 - u, u).split(n)                         # soft labels: 1 - U(0, 0.3), U(0, 0.3)


def gradient_penalty(critic, x, fake, *cond):
    """WGAN-GP: (||grad_x_hat f(x_hat)|| - 1)^2 at random points x_hat on lines between x and G(z)."""
    u = torch.rand(x.shape[0], *[1] * (x.dim() - 1), device=x.device)
    x_hat = (u * x + (1 - u) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat, *cond).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def clip_weights(opt, c):
    """WGAN (Algorithm 1): clip every weight the critic's optimizer steps to [-c, c], a crude way of
    keeping f K-Lipschitz. Registered as the optimizer's post-step hook, so it follows each critic step."""
    with torch.no_grad():
        for group in opt.param_groups:
            for p in group["params"]:
                p.clamp_(-c, c)


class DCGAN(nn.Module):
    batch_size = 128
    sampling_networks = ("G",)   # what sample.py --compile compiles

    def __init__(self, image_size=64, channels=3, num_classes=0, *, nz=128, ngf=64, ndf=64, bn_first=True,
                 acgan=False, loss="bce", gp_lambda=10.0, clip=0.01, n_critic=0, soft_labels=False,
                 flip_labels=0.0, d_dropout=0.0, lr=0.0, beta1=0.5, beta2=0.999):
        """loss: bce, wgan or wgan-gp. n_critic: D steps per G step, 0 for the loss's paper (1 for bce,
        5 for wgan and wgan-gp). lr: 0 for the optimizer's paper (Adam 2e-4, DCGAN's; RMSprop 5e-5,
        WGAN's). soft_labels and flip_labels are for bce: a Wasserstein critic has no targets."""
        super().__init__()
        levels = image_size.bit_length() - 3                            # stride-2 blocks between 4x4 and S x S
        if image_size < 8 or image_size != 4 << levels:
            raise ValueError(f"image size must be a power of two, at least 8 (got {image_size})")
        if loss not in ("bce", "wgan", "wgan-gp"):
            raise ValueError(f"loss is bce, wgan or wgan-gp (got {loss})")
        if acgan and not num_classes:
            raise ValueError("an ACGAN needs class labels (num_classes > 0)")
        if loss != "bce" and (soft_labels or flip_labels):
            raise ValueError(f"soft and flipped labels are targets of the bce loss; the {loss} critic has none")
        if not (0 <= flip_labels < 1 and 0 <= d_dropout < 1 and n_critic >= 0 and clip > 0):
            raise ValueError("flip_labels and d_dropout are probabilities in [0, 1), n_critic >= 0, clip > 0")
        self.nz, self.num_classes, self.acgan, self.loss_type, self.gp_lambda = nz, num_classes, acgan, loss, gp_lambda
        self.clip, self.soft_labels, self.flip_labels = clip, soft_labels, flip_labels
        self.n_critic = n_critic or (1 if loss == "bce" else 5)          # train.py: a G step every n_critic steps
        self.lr, self.betas = lr or (5e-5 if loss == "wgan" else 2e-4), (beta1, beta2)
        emb = nz if num_classes else 0                                  # conditional G: [z, embed(y)]
        self.embed = nn.Embedding(num_classes, emb) if num_classes else None   # W: a row per class (label)
        d_in = channels + (num_classes if num_classes and not acgan else 0)   # conditional D: one-hot maps

        # G: (nz, 1, 1) -> (ngf * 2^(levels-1), 4, 4) -> ... -> (ngf, S/2, S/2) -> (C, S, S); for 64x64:
        # (nz,1,1) -> (ngf*8,4,4) -> (ngf*4,8,8) -> (ngf*2,16,16) -> (ngf,32,32) -> (C,64,64)
        widths = [ngf * 2 ** i for i in reversed(range(levels))]
        self.G = nn.Sequential(up(nz + emb, widths[0], first=True),
                               *[up(a, b) for a, b in zip(widths, widths[1:])],
                               nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh())
        # D: (C, S, S) -> (ndf, S/2, S/2) -> ... -> (ndf * 2^(levels-1), 4, 4) -> 1 logit. BatchNorm after every
        # conv, the first included, as in the lecture's table; the DCGAN paper has none after the first
        # (bn_first=False). A WGAN-GP critic has no BatchNorm: it would mix the samples of a batch, and the
        # penalty is per sample; it uses layer norm over (C, H, W), GroupNorm(1, c), instead. The WGAN
        # critic keeps BatchNorm, as Arjovsky et al.'s DCGAN critic does.
        norm = (lambda c: nn.GroupNorm(1, c)) if loss == "wgan-gp" else nn.BatchNorm2d
        widths = [ndf * 2 ** i for i in range(levels)]
        self.D = nn.Sequential(down(d_in, widths[0], norm if bn_first else None, d_dropout),
                               *[down(a, b, norm, d_dropout) for a, b in zip(widths, widths[1:])])
        self.D_out = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)       # (ndf * 2^(levels-1), 4, 4) -> (1, 1, 1)
        self.D_aux = nn.Conv2d(widths[-1], num_classes, 4, 1, 0) if acgan else None   # ACGAN: class logits
        for m in self.modules():                                         # the paper's initialisation
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        self.fake = self.y_fake = None                                   # d_loss -> g_loss

    def onehot(self, y):
        """Class ids (B,) -> one-hot (B, K): class c is exactly the vector e_c, so a class id and a set of
        labels, multi-hot (B, K), go one path."""
        return F.one_hot(y, self.num_classes).float() if y.dim() == 1 else y.float()

    def generate(self, z, y=None):
        """G(z | y): (n, nz) -> (n, C, S, S) in [-1, 1]. y's embedding y W: for e_c W's row c, the Embedding
        lookup; for a set the sum of its labels' rows."""
        h = z if self.embed is None else torch.cat([z, self.onehot(y) @ self.embed.weight], 1)   # (n, 2 nz)
        return self.G(h[:, :, None, None])

    def features(self, x, y=None):
        if self.num_classes and not self.acgan:                          # conditional D: y as constant maps
            maps = self.onehot(y).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, maps], 1)
        return self.D(x)

    def critic(self, x, y=None):
        """D(x | y) as a logit, or the WGAN critic's value f(x): (B, C, S, S) -> (B,)."""
        return self.D_out(self.features(x, y)).flatten()

    def d_loss(self, x, y=None):
        """D's step. Draws the fakes G(z | c), c the batch's labels shuffled, and keeps them, with their
        graph, in self.fake (and c in self.y_fake) for the g_loss that follows on this batch."""
        z = torch.randn(x.shape[0], self.nz, device=x.device)
        perm = torch.randperm(x.shape[0], device=x.device)
        self.y_fake = None if y is None else y[perm]                    # ACGAN's c ~ p_c, by the data's own mix
        self.fake = self.generate(z, self.y_fake)
        fake = self.fake.detach()                                       # D's step does not reach G
        h_real, h_fake = self.features(x, y), self.features(fake, self.y_fake)
        real_logit, fake_logit = self.D_out(h_real).flatten(), self.D_out(h_fake).flatten()
        if self.loss_type != "bce":                                     # the critic: minimise f(G(z)) - f(x)
            terms = {"real": -real_logit.float().mean(), "fake": fake_logit.float().mean()}
            if self.loss_type == "wgan-gp":                             # Eq. 3 of Gulrajani et al.: fake[perm^-1][i]
                # was drawn for label y_i, so each line x_hat runs between two samples of one condition
                terms["gp"] = self.gp_lambda * gradient_penalty(self.critic, x, fake[perm.argsort()], y)
        else:                                                           # BCEWithLogits: log-sigmoid without overflow
            t_real, t_fake = d_targets(x.shape[0], x.device, self.soft_labels, self.flip_labels)
            terms = {"real": F.binary_cross_entropy_with_logits(real_logit, t_real),
                     "fake": F.binary_cross_entropy_with_logits(fake_logit, t_fake),
                     "D(x)": real_logit.detach().sigmoid().mean(), "D(G(z))": fake_logit.detach().sigmoid().mean()}
        if self.acgan:                                                  # ACGAN, D: maximise L_C on real and fake
            terms["aux"] = self.class_loss(h_real, y) + self.class_loss(h_fake, self.y_fake)
        return terms

    def class_loss(self, h, c):
        """ACGAN's -L_C = -log P(C = c | X) from the head's K logits l, per image, mean over the batch."""
        l = self.D_aux(h).flatten(1)                                    # (B, K)
        if c.dim() == 1:                                                # one class of K: -log softmax(l)_c
            return F.cross_entropy(l, c)
        # a set, each label present or not, independently: -sum_k [c_k log sigma(l_k) + (1 - c_k) log(1 - sigma(l_k))];
        # BCEWithLogits is log-sigmoid without overflow. (nn.BCELoss's mean over k would weigh L_C by 1/K.)
        return F.binary_cross_entropy_with_logits(l, c.float(), reduction="none").sum(1).mean()

    def g_loss(self, x, y=None):
        """G's step, on the fakes the d_loss before it drew (self.fake, self.y_fake): x and y are not read again."""
        if self.fake is None:
            raise RuntimeError("g_loss scores the fakes that d_loss drew from this batch: call d_loss first")
        h = self.features(self.fake, self.y_fake)
        fake_logit = self.D_out(h).flatten()
        # non-saturating: maximise log D(G(z)); log(1 - D(G(z))) would stall G while D wins
        terms = {"wgan": -fake_logit.float().mean()} if self.loss_type != "bce" else \
            {"gan": F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))}
        if self.acgan:                                                  # ACGAN, G: maximise L_C for its own labels c
            terms["aux"] = self.class_loss(h, self.y_fake)
        return terms

    def configure_optimizers(self):
        """(D's, G's): D, D_out and D_aux; G and the embedding. Adam for bce and wgan-gp; RMSprop for wgan
        (Arjovsky et al. found momentum unstable with a clipped critic), whose D optimizer clips D's
        weights after each of its steps."""
        d_params = [p for name, p in self.named_parameters() if name.startswith("D")]
        g_params = [p for name, p in self.named_parameters() if not name.startswith("D")]
        if self.loss_type == "wgan":
            d_opt, g_opt = torch.optim.RMSprop(d_params, lr=self.lr), torch.optim.RMSprop(g_params, lr=self.lr)
            d_opt.register_step_post_hook(lambda opt, args, kwargs: clip_weights(opt, self.clip))
            return d_opt, g_opt
        fused = d_params[0].is_cuda                                      # fused Adam: on CUDA only
        return (torch.optim.Adam(d_params, lr=self.lr, betas=self.betas, fused=fused),
                torch.optim.Adam(g_params, lr=self.lr, betas=self.betas, fused=fused))

    def labels_for(self, n, y):
        if y is None and self.num_classes:
            y = torch.arange(n, device=next(self.parameters()).device) % self.num_classes   # every class in turn
        return y

    @torch.no_grad()
    def sample(self, n, y=None):
        """z ~ N(0, I), x = G(z | y). Returns (n, C, S, S) in [-1, 1]."""
        return self.generate(torch.randn(n, self.nz, device=next(self.parameters()).device), self.labels_for(n, y))

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48):
        """A walk through z: from z_a to z_b and back, for each of n samples. (frames, n, C, S, S)."""
        z_a, z_b = torch.randn(2, n, self.nz, device=next(self.parameters()).device)
        ease = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2
        return torch.stack([self.generate(torch.lerp(z_a, z_b, float(t)), self.labels_for(n, y)) for t in ease])
