"""Deep convolutional GAN (Radford et al., 2015): the GAN game of gan.py, played by convolutional
networks; conditional when labels are given (y's learned embedding joined to z; one-hot maps, or
with y_embed the lab report's learned map, joined to D's input; a set of labels as a multi-hot
vector, of which a class id c is the case e_c).

    G             z (z_dim, 1, 1) -> ConvTranspose 4x4 stride 2 + BatchNorm + ReLU, doubling the
                  size each time -> Tanh: (C, S, S) in [-1, 1]
    D             (C, S, S) -> Conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2), halving it -> logit;
                  no pooling, no bias before BatchNorm, weights ~ N(0, 0.02)
    the game      min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]        (Goodfellow et al., Eq. 1)
    D's step      minimise BCE(D(x), 1) + BCE(D(G(z)), 0)
    G's step      non-saturating: maximise E[log D(G(z))], i.e. minimise BCE(D(G(z)), 1)

Beyond the lecture's game, in one block at the end of the file:

    ACGAN         D also names the class (Odena et al., 2017): D maximises L_S + L_C, G L_C - L_S,
                  the log-likelihoods of the right source (real or fake) and class; as losses,
                  CE(class(x), y) + CE(class(G(z, c)), c) for D, CE(class(G(z, c)), c) for G; for
                  sets of labels (multi-hot c), BCE on each of the K logits, summed over them
    WGAN          D is the critic f: D's loss f(G(z)) - f(x), G's -f(G(z)); 5 D steps per G step,
                  RMSprop at lr 5e-5, D's weights clipped to [-0.01, 0.01] after each D step
                  (Arjovsky et al., 2017, Algorithm 1)
    WGAN-GP       no clipping: + lambda (||grad f(x_hat)|| - 1)^2 (Gulrajani et al., 2017, Eq. 3),
                  x_hat between a real x and a fake of the same condition
    stabilisers   the lab's: n_critic D steps per G step, soft and flipped labels, dropout in D;
                  the report's D:G ratios: d_repeats D steps on one batch, g_steps G steps per D's

The hand-off: train.py calls d_loss and then g_loss on the same batch. d_loss draws the fakes and
their labels and keeps them, with their graph, in self.fake and self.y_fake; g_loss scores those.

    python train.py dcgan --data ./celeba                  # 64x64
    python train.py dcgan --data ./fashion-mnist --classes --image-size 32 --acgan
    python train.py dcgan --data ./fashion-mnist --image-size 32 --loss wgan
    python train.py dcgan --data ./fashion-mnist --classes --image-size 32 --acgan --n-critic 3 \\
        --soft-labels --flip-labels 0.05 --d-dropout 0.3   # the lab's ACGAN
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def up(c_in, c_out, first=False):
    """ConvTranspose 4x4: (c_in, 1, 1) -> (c_out, 4, 4) when first, else doubling H and W."""
    stride = 1 if first else 2
    padding = 0 if first else 1
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(True))


def down(c_in, c_out, norm, dropout=0.0):
    """Conv 4x4 stride 2: (c_in, H, W) -> (c_out, H/2, W/2), then dropout if asked (the lab's)."""
    normed = [norm(c_out)] if norm else []
    dropped = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), *normed,
                         nn.LeakyReLU(0.2, True), *dropped)


class DCGAN(nn.Module):
    batch_size = 128                                    # the paper's, as are Adam's lr and betas
    sampling_networks = ("G",)                          # what sample.py --compile compiles

    def __init__(self, image_size=64, channels=3, num_classes=0, *, z_dim=128, ngf=64, ndf=64,
                 bn_first=True, acgan=False, y_embed=False, loss="bce", gp_lambda=10.0, clip=0.01,
                 n_critic=0, d_repeats=1, g_steps=1, soft_labels=False, flip_labels=0.0,
                 d_dropout=0.0, lr=0.0, beta1=0.5, beta2=0.999):
        """The networks and their optimisers' settings; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I) (paper: 100)
        ngf: G's width: channels of its last hidden layer, doubled per level towards z (paper: 128)
        ndf: D's width: channels of its first layer, doubled per level deeper
        bn_first: BatchNorm after D's first conv too, as the lecture's table (paper: none there)
        acgan: D also classifies its input, an auxiliary classifier GAN (Odena et al.)
        y_embed: D reads y as the lab report's learned S x S map, Linear(K, S^2), not K one-hot maps
        loss: bce (Goodfellow et al.'s game), wgan (Arjovsky et al.) or wgan-gp (Gulrajani et al.)
        gp_lambda: wgan-gp: the weight lambda of the gradient penalty
        clip: wgan: D's weights are clipped to [-clip, clip] after each D step
        n_critic: D steps per G step; 0 = the loss's paper: 1 for bce, 5 for wgan and wgan-gp
        d_repeats: D steps on each batch, all on the same images, before G's (the lab report's)
        g_steps: G steps each time G steps, each on new z (the lab report's G:D ratios above 1)
        soft_labels: bce: D's targets ~ U(0.7, 1.0) for real, U(0.0, 0.3) for fake (the lab's)
        flip_labels: bce: the probability that each of D's targets is swapped (the lab's)
        d_dropout: dropout after each of D's conv blocks (the lab's)
        lr: learning rate; 0 = the optimizer's paper: Adam 2e-4 (DCGAN), RMSprop 5e-5 (WGAN)
        beta1: Adam's beta1, DCGAN's (WGAN-GP's paper: 0)
        beta2: Adam's beta2 (WGAN-GP's paper: 0.9)
        """
        super().__init__()
        levels = image_size.bit_length() - 3            # stride-2 blocks between 4x4 and S x S
        if image_size < 8 or image_size != 4 << levels:
            raise ValueError(f"image size must be a power of two, at least 8 (got {image_size})")
        if loss not in ("bce", "wgan", "wgan-gp"):
            raise ValueError(f"loss is bce, wgan or wgan-gp (got {loss})")
        if (acgan or y_embed) and not num_classes:
            raise ValueError("an ACGAN needs class labels (num_classes > 0), and so does y_embed")
        if loss != "bce" and (soft_labels or flip_labels):
            raise ValueError(f"soft and flipped labels are targets of the bce loss; "
                             f"the {loss} critic has none")
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.acgan = acgan
        self.loss_type = loss
        self.gp_lambda = gp_lambda
        self.clip = clip
        self.soft_labels = soft_labels
        self.flip_labels = flip_labels
        self.n_critic = n_critic or (1 if loss == "bce" else 5)  # a G step every n_critic steps
        self.d_repeats = d_repeats                      # read by train.py's step, as n_critic
        self.g_steps = g_steps
        self.lr = lr or (5e-5 if loss == "wgan" else 2e-4)
        self.betas = (beta1, beta2)
        emb = z_dim if num_classes else 0               # conditional G: [z, embed(y)]
        self.embed = nn.Embedding(num_classes, emb) if num_classes else None   # W: a row per label
        self.D_embed = nn.Linear(num_classes, image_size**2) if y_embed else None   # y -> S x S
        d_in = channels + ((1 if y_embed else num_classes) if num_classes and not acgan else 0)
        # G: (z_dim, 1, 1) -> (ngf * 2^(levels-1), 4, 4) -> ... -> (ngf, S/2, S/2) -> (C, S, S);
        # 64x64: (z_dim,1,1) -> (8ngf,4,4) -> (4ngf,8,8) -> (2ngf,16,16) -> (ngf,32,32) -> (C,64,64)
        widths = [ngf * 2 ** i for i in reversed(range(levels))]
        self.G = nn.Sequential(up(z_dim + emb, widths[0], first=True),
                               *[up(a, b) for a, b in zip(widths, widths[1:])],
                               nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False),
                               nn.Tanh())
        # D: (C, S, S) -> (ndf, S/2, S/2) -> ... -> (ndf * 2^(levels-1), 4, 4) -> 1 logit.
        # WGAN-GP's D has no BatchNorm, which mixes a batch's samples while the penalty is per
        # sample: layer norm over (C, H, W), GroupNorm(1, c). WGAN's keeps it, as Arjovsky et al.'s.
        norm = (lambda c: nn.GroupNorm(1, c)) if loss == "wgan-gp" else nn.BatchNorm2d
        widths = [ndf * 2 ** i for i in range(levels)]
        self.D = nn.Sequential(down(d_in, widths[0], norm if bn_first else None, d_dropout),
                               *[down(a, b, norm, d_dropout) for a, b in zip(widths, widths[1:])])
        self.D_out = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)   # (.., 4, 4) -> (1, 1, 1)
        self.D_aux = nn.Conv2d(widths[-1], num_classes, 4, 1, 0) if acgan else None  # class logits
        for m in self.modules():                        # the paper's initialisation
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        self.fake = self.y_fake = None                  # d_loss -> g_loss

    def onehot(self, y):
        """Class ids (B,) -> one-hot (B, K), class c the vector e_c; a multi-hot set (B, K) kept."""
        return F.one_hot(y, self.num_classes).float() if y.dim() == 1 else y.float()

    def generate(self, z, y=None):
        """G(z | y): (n, z_dim) -> (n, C, S, S) in [-1, 1]. y's embedding y W: for e_c W's row c,
        the Embedding lookup; for a set the sum of its labels' rows."""
        h = z
        if self.embed is not None:
            h = torch.cat([z, self.onehot(y) @ self.embed.weight], 1)   # (n, 2 z_dim)
        return self.G(h[:, :, None, None])

    def features(self, x, y=None):
        """D's convolutions: (B, C, S, S) -> (B, ndf * 2^(levels-1), 4, 4)."""
        if self.num_classes and not self.acgan:         # conditional D: y as maps
            y = self.onehot(y).to(x.dtype)
            maps = y[:, :, None, None].expand(-1, -1, *x.shape[2:])   # K constant maps, one-hot
            if self.D_embed is not None:                # the report's: one map, Linear(K, S^2) of y
                maps = self.D_embed(y).view(-1, 1, *x.shape[2:]).to(x.dtype)
            x = torch.cat([x, maps], 1)
        return self.D(x)

    def critic(self, x, y=None):
        """D(x | y) as a logit (under WGAN the critic's score f(x)): (B, C, S, S) -> (B,)."""
        return self.D_out(self.features(x, y)).flatten()

    def d_loss(self, x, y=None):
        """D's step, Eq. 1: maximise E[log D(x)] + E[log(1 - D(G(z | c)))], c the batch's labels
        shuffled; keeps G(z | c), with its graph, in self.fake and c in self.y_fake for g_loss."""
        z = torch.randn(x.shape[0], self.z_dim, device=x.device)     # z ~ N(0, I)
        perm = torch.randperm(x.shape[0], device=x.device)
        self.y_fake = None if y is None else y[perm]                 # c ~ p(c), the data's own mix
        self.g_done = False                                          # g_loss: self.fake unused
        self.fake = self.generate(z, self.y_fake)
        fake = self.fake.detach()                                    # D's step does not reach G
        h_real = self.features(x, y)
        h_fake = self.features(fake, self.y_fake)
        real_logit = self.D_out(h_real).flatten()                    # D(x) = sigmoid(real_logit)
        fake_logit = self.D_out(h_fake).flatten()
        if self.loss_type == "bce":
            t_real, t_fake = d_targets(x.shape[0], x.device, self.soft_labels, self.flip_labels)
            bce = F.binary_cross_entropy_with_logits                 # log-sigmoid, no overflow
            terms = {"real": bce(real_logit, t_real),                # -E[log D(x)]
                     "fake": bce(fake_logit, t_fake),                # -E[log(1 - D(G(z)))]
                     "D(x)": real_logit.detach().sigmoid().mean(),
                     "D(G(z))": fake_logit.detach().sigmoid().mean()}
        else:                                                        # WGAN: the block below
            terms = self.wgan_d_loss(x, y, fake[perm.argsort()], real_logit, fake_logit)
        if self.acgan:                                               # ACGAN: the block below
            terms["aux"] = self.class_loss(h_real, y) + self.class_loss(h_fake, self.y_fake)
        return terms

    def g_loss(self, x, y=None):
        """G's step on the fakes d_loss drew (self.fake, self.y_fake; x, y unread), or on new z for
        the same c (g_steps). Non-saturating: maximise E[log D(G(z))]; log(1 - D(G(z))) stalls."""
        if self.fake is None:
            raise RuntimeError("g_loss scores the fakes that d_loss drew from this batch: "
                               "call d_loss first")
        if self.g_done:                                              # g_steps: z ~ N(0, I) anew
            z = torch.randn(self.fake.shape[0], self.z_dim, device=self.fake.device)
            self.fake = self.generate(z, self.y_fake)
        self.g_done = True
        h = self.features(self.fake, self.y_fake)
        fake_logit = self.D_out(h).flatten()
        if self.loss_type == "bce":
            target = torch.ones_like(fake_logit)
            terms = {"gan": F.binary_cross_entropy_with_logits(fake_logit, target)}  # -log D(G(z))
        else:                                                        # WGAN's: -E[f(G(z))]
            terms = {"wgan": -fake_logit.float().mean()}
        if self.acgan:                                               # ACGAN: the block below
            terms["aux"] = self.class_loss(h, self.y_fake)
        return terms

    def configure_optimizers(self):
        """(D's, G's): D, D_embed, D_out, D_aux; G and its embedding. Adam; for wgan RMSprop
        (Arjovsky et al.: momentum is unstable with a clipped critic), D's clipping D's weights."""
        d_params = [p for name, p in self.named_parameters() if name.startswith("D")]
        g_params = [p for name, p in self.named_parameters() if not name.startswith("D")]
        if self.loss_type == "wgan":
            d_opt = torch.optim.RMSprop(d_params, lr=self.lr)
            d_opt.register_step_post_hook(lambda opt, args, kwargs: clip_weights(opt, self.clip))
            return d_opt, torch.optim.RMSprop(g_params, lr=self.lr)
        fused = d_params[0].is_cuda                                  # fused Adam: on CUDA only
        d_opt = torch.optim.Adam(d_params, lr=self.lr, betas=self.betas, fused=fused)
        g_opt = torch.optim.Adam(g_params, lr=self.lr, betas=self.betas, fused=fused)
        return d_opt, g_opt

    def labels_for(self, n, y):
        """y as given; for a conditional model without y, every class in turn."""
        if y is None and self.num_classes:
            y = torch.arange(n, device=next(self.parameters()).device) % self.num_classes
        return y

    @torch.no_grad()
    def sample(self, n, y=None):
        """z ~ N(0, I), x = G(z | y). Returns (n, C, S, S) in [-1, 1]."""
        z = torch.randn(n, self.z_dim, device=next(self.parameters()).device)
        return self.generate(z, self.labels_for(n, y))

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48):
        """A walk through z, from z_a to z_b and back, for each of n samples: (frames, n, C, S, S).

        frames: the number of frames of the walk
        """
        z_a, z_b = torch.randn(2, n, self.z_dim, device=next(self.parameters()).device)
        ease = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2   # 0 -> 1 -> 0
        y = self.labels_for(n, y)
        return torch.stack([self.generate(torch.lerp(z_a, z_b, float(t)), y) for t in ease])

    # ---------------------------------------------------------------------------------------------
    # Beyond the lecture's game: ACGAN's class loss (Odena et al., 2017); WGAN's critic f, a score,
    # not a logit (Arjovsky et al., 2017), and WGAN-GP's penalty (Gulrajani et al., 2017).

    def class_loss(self, h, c):
        """ACGAN's -L_C = -log P(C = c | X) from the head's K logits l, per image, mean over the
        batch: D minimises it on real and fake images, G on its fakes. For a set c, each label
        present or not: -sum_k [c_k log sigma(l_k) + (1 - c_k) log(1 - sigma(l_k))]."""
        l = self.D_aux(h).flatten(1)                                 # (B, K)
        if c.dim() == 1:                                             # one class of K
            return F.cross_entropy(l, c)                             # -log softmax(l)_c
        bce = F.binary_cross_entropy_with_logits(l, c.float(), reduction="none")   # (B, K)
        return bce.sum(1).mean()                        # a mean over k would weigh L_C by 1/K

    def wgan_d_loss(self, x, y, fake, real_f, fake_f):
        """WGAN's D step: minimise E[f(G(z))] - E[f(x)], minus the estimate of W(p_data, p_g);
        WGAN-GP adds lambda E[(||grad f(x_hat)|| - 1)^2] (Gulrajani et al., Eq. 3). fake[i] is the
        fake drawn for label y_i, so each line x_hat runs between two samples of one condition."""
        terms = {"real": -real_f.float().mean(),                     # -E[f(x)]
                 "fake": fake_f.float().mean()}                      # E[f(G(z))]
        if self.loss_type == "wgan-gp":
            terms["gp"] = self.gp_lambda * gradient_penalty(self.critic, x, fake, y)
        return terms


def d_targets(n, device, soft=False, flip=0.0):
    """D's BCE targets for n real and n fake samples: 1 and 0 (Eq. 1). The lab's stabilisers: soft
    labels draw them from U(0.7, 1.0) and U(0.0, 0.3); flipped labels give each one the other
    side's target with probability flip."""
    real = torch.arange(2 * n, device=device) < n                   # (2n,): n real, then n fake
    real ^= torch.rand(2 * n, device=device) < flip                 # flipped labels
    u = torch.zeros(2 * n, device=device)
    if soft:
        u = 0.3 * torch.rand(2 * n, device=device)                  # soft labels: U(0, 0.3)
    return torch.where(real, 1 - u, u).split(n)                     # 1 - u for real, u for fake


def gradient_penalty(critic, x, fake, *cond):
    """WGAN-GP: (||grad f(x_hat)|| - 1)^2 at random points x_hat on lines between x and G(z)."""
    u = torch.rand(x.shape[0], *[1] * (x.dim() - 1), device=x.device)
    x_hat = (u * x + (1 - u) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat, *cond).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def clip_weights(opt, c):
    """WGAN (Algorithm 1): clip every weight D's optimizer steps to [-c, c], a crude way of keeping
    f K-Lipschitz. Registered as the optimizer's post-step hook, so it follows each D step."""
    with torch.no_grad():
        for group in opt.param_groups:
            for p in group["params"]:
                p.clamp_(-c, c)
