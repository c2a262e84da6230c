"""The original GAN (Goodfellow et al., 2014): G and D are multilayer perceptrons; the
conditional GAN (Mirza & Osindero, 2014) when labels are given.

A generator G maps noise z ~ p(z) to data; a discriminator D tells data from G's samples:

    the game      min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]  (Eq. 1)
    D's step      maximise V: minimise BCE(D(x), 1) + BCE(D(G(z)), 0), on logits
    G's step      saturating, Eq. 1 as written: minimise E[log(1 - D(G(z)))]; on the logit
                  l, log(1 - sigmoid(l)) = -softplus(l), so minimise -softplus(l)
                  non-saturating (the default, Section 3): maximise E[log D(G(z))], i.e.
                  minimise BCE(D(G(z)), 1) = softplus(-l)
    why           both move G the same way and share the fixed point; at D = 1/2 both have
                  d loss/dl = -1/2. Early on D rejects the fakes with confidence (l << 0):
                  the saturating gradient is -sigmoid(l), near 0, the non-saturating
                  -sigmoid(-l), near -1. G learns from its worst samples only under the
                  second
    optimum       for a fixed G, D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Proposition 1);
                  at p_g = p_data, D* = 1/2 and D's loss is 2 log 2

Beyond the lecture's game, as options of the same class, and the helpers at the end of the
file (dcgan.py and pix2pix.py use them too):

    WGAN          D is the critic f, its output a score, not a logit; it estimates the
                  Wasserstein distance max_f E[f(x)] - E[f(G(z))] over 1-Lipschitz f: D's
                  loss E[f(G(z))] - E[f(x)], G's loss -E[f(G(z))]; n_critic = 5 D steps
                  per G step, RMSprop at lr 5e-5, and after each D step D's weights
                  clipped to [-c, c], c = 0.01 (Arjovsky et al., 2017, Algorithm 1)
    WGAN-GP       no clipping: + lambda E[(||grad f(x_hat)|| - 1)^2], x_hat on lines
                  between x and G(z), lambda = 10 (Gulrajani et al., 2017, Eq. 3)
    stabilisers   the lab's: n_critic D steps per G step and dropout in D, for any loss;
                  for BCE, soft labels (D's targets ~ U(0.7, 1.0) for real and U(0.0, 0.3)
                  for fake) and flipped labels (each target swapped with probability p)

The hand-off: train.py calls d_loss and then g_loss on the same batch. d_loss draws the
fakes G(z) and keeps them, with their graph, in self.fake; g_loss scores those same fakes,
so G runs once.

Images are flattened, so any size and channel count works, and so do plain vectors: a
cloud of 2-D points is data of 2 channels at image size 1, shape (B, 2) or (B, 2, 1, 1).

    python train.py gan --data ./mnist --image-size 32
    python train.py gan --g-loss saturating                       # Eq. 1 as written: G stalls
    python train.py gan --loss wgan                               # Algorithm 1 of Arjovsky et al.
    python train.py gan --loss wgan-gp --lr 1e-4 --beta1 0 --beta2 0.9   # WGAN-GP, its paper's Adam
    python train.py gan --n-critic 3 --soft-labels --flip-labels 0.05 --d-dropout 0.3   # the lab's
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(sizes, out=None, dropout=0.0):
    """Linear layers with LeakyReLU(0.2) between them (and dropout, when asked), `out`
    after."""
    layers = [nn.Linear(sizes[0], sizes[1])]
    for a, b in zip(sizes[1:], sizes[2:]):
        layers += [nn.LeakyReLU(0.2), *([nn.Dropout(dropout)] if dropout else []), nn.Linear(a, b)]
    return nn.Sequential(*layers, *([out] if out else []))


class GAN(nn.Module):
    batch_size = 64
    # what sample.py --compile compiles
    sampling_networks = ("G",)
    # the lecture's game, one D step per
    loss_type = "bce"
    n_critic = 1                                        # G step; game() sets them
    # keywords that act only beside another setting: keyword -> {setting: the value it needs,
    # or a tuple of them}; train.py refuses one given where it has no effect
    needs = {"g_loss": {"loss": "bce"}, "soft_labels": {"loss": "bce"},
             "flip_labels": {"loss": "bce"}, "gp_lambda": {"loss": "wgan-gp"},
             "clip": {"loss": "wgan"}, "beta1": {"loss": ("bce", "wgan-gp")},
             "beta2": {"loss": ("bce", "wgan-gp")}}              # wgan: RMSprop

    def __init__(self, image_size=28, channels=1, num_classes=0, *, z_dim=100, hidden=256,
                 loss="bce", g_loss="non-saturating", gp_lambda=10.0, clip=0.01, n_critic=None,
                 soft_labels=False, flip_labels=0.0, d_dropout=0.0, lr=None, beta1=0.5,
                 beta2=0.999):
        """The networks and their optimisers' settings; each keyword is a train.py flag.

        z_dim: length of the latent z ~ N(0, I)
        hidden: width h of the MLPs: G is z -> h -> 2h -> 4h -> x, D is x -> 4h -> 2h -> h -> 1
        loss: bce (Goodfellow et al.'s game), wgan (Arjovsky et al.) or wgan-gp (Gulrajani et al.)
        g_loss: bce: G's loss, saturating (Eq. 1's log(1 - D)) or non-saturating (-log D)
        gp_lambda: wgan-gp: the weight lambda of the gradient penalty (paper: 10)
        clip: wgan: D's weights clipped to [-clip, clip] after each D step (paper: 0.01)
        n_critic: D steps per G step (default: the loss's paper: 1 for bce, 5 for the WGANs)
        soft_labels: bce: D's targets ~ U(0.7, 1.0) for real, U(0.0, 0.3) for fake (the lab's)
        flip_labels: bce: the probability that each of D's targets is swapped (the lab's)
        d_dropout: dropout after each of D's hidden layers (the lab's)
        lr: learning rate (default: the optimizer's paper: Adam 2e-4, RMSprop 5e-5 for wgan)
        beta1: Adam's beta1, DCGAN's (WGAN-GP's paper: 0)
        beta2: Adam's beta2 (WGAN-GP's paper: 0.9)
        """
        super().__init__()
        # cGAN: one-hot (or multi-hot) y joins z, x
        k = num_classes
        self.shape = (channels, image_size, image_size)
        data_dim = channels * image_size**2
        self.G = mlp([z_dim + k, hidden, 2 * hidden, 4 * hidden, data_dim], nn.Tanh())
        self.D = mlp([data_dim + k, 4 * hidden, 2 * hidden, hidden, 1], dropout=d_dropout)
        self.game(loss, n_critic, gp_lambda, clip, soft_labels, flip_labels, lr, (beta1, beta2),
                  g_loss)
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.fake = None                                # d_loss -> g_loss

    def game(self, loss, n_critic, gp_lambda, clip, soft, flip, lr, betas, g_loss=None):
        """The game's settings, checked here (dcgan.py's DCGANLab plays it too): None is
        the paper's value for the loss, n_critic 1 for bce, 5 for the WGANs; lr Adam's
        2e-4 or WGAN's RMSprop 5e-5."""
        if loss not in ("bce", "wgan", "wgan-gp"):
            raise ValueError(f"loss is bce, wgan or wgan-gp (got {loss})")
        if g_loss not in (None, "saturating", "non-saturating"):
            raise ValueError(f"g_loss is saturating or non-saturating (got {g_loss})")
        if loss != "bce" and g_loss == "saturating":
            raise ValueError(f"g_loss is a choice of the bce game; the {loss} G's loss is "
                             f"-E[f(G(z))]: drop --g-loss")
        if loss != "bce" and (soft or flip):
            raise ValueError(f"soft and flipped labels are targets of the bce loss; "
                             f"the {loss} critic has none")
        self.loss_type = loss
        self.saturating = g_loss == "saturating"
        # a G step every n_critic steps
        self.n_critic = n_critic or (1 if loss == "bce" else 5)
        self.gp_lambda = gp_lambda
        self.clip = clip
        self.targets = dict(soft=soft, flip=flip)
        self.lr = lr or (5e-5 if loss == "wgan" else 2e-4)
        self.betas = betas

    def onehot(self, y):
        """Class ids (B,) -> one-hot (B, K), class c the vector e_c; a multi-hot set (B,
        K) kept."""
        return F.one_hot(y, self.num_classes).float() if y.dim() == 1 else y.float()

    def generate(self, z, y=None):
        """G(z | y): (n, z_dim) -> (n, C, H, W) in [-1, 1]."""
        h = z if y is None else torch.cat([z, self.onehot(y)], 1)
        return self.G(h).view(-1, *self.shape)

    def logits(self, x, y=None):
        """D(x | y) as a logit (under WGAN the critic's score f(x)): (B, ...) -> (B,)."""
        h = x.reshape(len(x), -1)
        h = h if y is None else torch.cat([h, self.onehot(y)], 1)
        return self.D(h).squeeze(1)

    def d_loss(self, x, y=None):
        """D's step, Eq. 1: maximise E[log D(x)] + E[log(1 - D(G(z)))]. Draws the fakes
        G(z) and keeps them, with their graph, in self.fake for the g_loss that follows on
        this batch."""
        z = torch.randn(x.shape[0], self.z_dim, device=x.device)     # z ~ N(0, I)
        self.fake = self.generate(z, y).view_as(x)
        self.y = y
        # D's step does not reach G
        fake = self.fake.detach()
        # D(x) = sigmoid(real_logit)
        real_logit = self.logits(x, y)
        fake_logit = self.logits(fake, y)
        return self.d_terms(real_logit, fake_logit, x, fake, y)

    def d_terms(self, real_logit, fake_logit, x, fake, y):
        """D's loss: BCE against its targets, 1 and 0 (Eq. 1), or the lab's soft and
        flipped ones; under WGAN the critic's, + WGAN-GP's penalty on lines between x and
        fake."""
        if self.loss_type == "bce":
            t_real, t_fake = d_targets(x.shape[0], x.device, **self.targets)
            return bce_terms(real_logit, fake_logit, t_real, t_fake)
        terms = critic_loss(real_logit, fake_logit)                  # WGAN: f(x), f(G(z))
        if self.loss_type == "wgan-gp":
            terms["gp"] = self.gp_lambda * gradient_penalty(self.logits, x, fake, y)
        return terms

    def g_loss(self, x, y=None):
        """G's step, on the fakes the d_loss before it drew (self.fake): x and y are not
        read again."""
        return self.g_terms(self.logits(self.fakes(), self.y))

    def fakes(self):
        """The fakes d_loss drew from this batch, for the g_loss that follows it."""
        if self.fake is None:
            raise RuntimeError("g_loss scores the fakes that d_loss drew from this batch: "
                               "call d_loss first")
        return self.fake

    def g_terms(self, fake_logit):
        """G's loss. Saturating: minimise E[log(1 - D(G(z)))], which gives G almost no
        gradient early on, when D rejects its samples with confidence; non-saturating:
        maximise E[log D(G(z))]; under WGAN minimise -E[f(G(z))]."""
        if self.loss_type != "bce":
            return {"wgan": -fake_logit.float().mean()}
        if self.saturating:
            return {"gan": -F.softplus(fake_logit).mean()}           # E[log(1 - D(G(z)))]
        target = torch.ones_like(fake_logit)
        # -E[log D(G(z))]
        return {"gan": F.binary_cross_entropy_with_logits(fake_logit, target)}

    def configure_optimizers(self):
        """(D's, G's), D's for every D* network: Adam, or for wgan RMSprop (Arjovsky et
        al.: momentum is unstable with a clipped critic), whose D step clips D's weights
        after it."""
        d_params = [p for name, p in self.named_parameters() if name.startswith("D")]
        g_params = [p for name, p in self.named_parameters() if not name.startswith("D")]
        if self.loss_type == "wgan":
            d_opt = torch.optim.RMSprop(d_params, lr=self.lr)
            g_opt = torch.optim.RMSprop(g_params, lr=self.lr)
            d_opt.register_step_post_hook(lambda opt, args, kwargs: clip_weights(opt, self.clip))
            return d_opt, g_opt
        # fused Adam: on CUDA only
        fused = d_params[0].is_cuda
        return adam(d_params, g_params, self.lr, self.betas, fused)

    def labels_for(self, n, y):
        """y as given; for a conditional model without y, every class in turn."""
        if y is None and self.num_classes:
            y = torch.arange(n, device=next(self.parameters()).device) % self.num_classes
        return y

    @torch.no_grad()
    def sample(self, n, y=None):
        """z ~ N(0, I), x = G(z | y). Returns (n, C, H, W) in [-1, 1]."""
        z = torch.randn(n, self.z_dim, device=next(self.parameters()).device)
        return self.generate(z, self.labels_for(n, y))

    @torch.no_grad()
    def animate(self, n, y=None, *, frames=48):
        """A walk through z, from z_a to z_b and back, for each of n samples: (frames, n,
        C, H, W).

        frames: the number of frames of the walk
        """
        z_a, z_b = torch.randn(2, n, self.z_dim, device=next(self.parameters()).device)
        # 0 -> 1 -> 0
        ease = (1 - torch.cos(torch.arange(frames) * 2 * torch.pi / frames)) / 2
        y = self.labels_for(n, y)
        return torch.stack([self.generate(torch.lerp(z_a, z_b, float(t)), y) for t in ease])


# ---- The helpers of the games, here once: dcgan.py and pix2pix.py import them ------------------

def adam(d_params, g_params, lr, betas, fused):
    """(D's, G's) Adam, as every GAN here steps them (fused: CUDA's one-kernel step)."""
    d_opt = torch.optim.Adam(d_params, lr=lr, betas=betas, fused=fused)
    g_opt = torch.optim.Adam(g_params, lr=lr, betas=betas, fused=fused)
    return d_opt, g_opt


def bce_terms(real_logit, fake_logit, t_real, t_fake):
    """D's BCE against its targets (Eq. 1), on logits: log-sigmoid without overflow; and
    D's mean beliefs D(x), D(G(z)), detached: logged only."""
    bce = F.binary_cross_entropy_with_logits
    return {"real": bce(real_logit, t_real),                         # -E[log D(x)]
            # -E[log(1 - D(G(z)))]
            "fake": bce(fake_logit, t_fake),
            "D(x)": real_logit.detach().sigmoid().mean(),
            "D(G(z))": fake_logit.detach().sigmoid().mean()}


def d_targets(n, device, soft=False, flip=0.0):
    """D's BCE targets for n real and n fake samples: 1 and 0 (Eq. 1). The lab's
    stabilisers: soft labels draw them from U(0.7, 1.0) and U(0.0, 0.3); flipped labels
    give each one the other side's target with probability flip."""
    # (2n,): n real, then n fake
    real = torch.arange(2 * n, device=device) < n
    real ^= torch.rand(2 * n, device=device) < flip                 # flipped labels
    u = torch.zeros(2 * n, device=device)
    if soft:
        # soft labels: U(0, 0.3)
        u = 0.3 * torch.rand(2 * n, device=device)
    # 1 - u for real, u for fake
    return torch.where(real, 1 - u, u).split(n)


def critic_loss(real_f, fake_f):
    """WGAN's D step: minimise E[f(G(z))] - E[f(x)], minus the estimate of W(p_data,
    p_g)."""
    return {"real": -real_f.float().mean(),                          # -E[f(x)]
            "fake": fake_f.float().mean()}                           # E[f(G(z))]


def gradient_penalty(critic, x, fake, *cond):
    """WGAN-GP: (||grad f(x_hat)|| - 1)^2 at random points x_hat on lines between x and
    G(z)."""
    u = torch.rand(x.shape[0], *[1] * (x.dim() - 1), device=x.device)
    x_hat = (u * x + (1 - u) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat, *cond).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def clip_weights(opt, c):
    """WGAN (Algorithm 1): clip every weight D's optimizer steps to [-c, c], a crude way
    of keeping f K-Lipschitz. Registered as the optimizer's post-step hook, so it follows
    each D step."""
    with torch.no_grad():
        for group in opt.param_groups:
            for p in group["params"]:
                p.clamp_(-c, c)
