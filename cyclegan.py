"""CycleGAN (Zhu et al., 2017): image-to-image translation without pairs.

Two generators, G: A -> B and F: B -> A, each judged by a discriminator on the domain it
writes into, D_B and D_A. No a has a known partner b, so nothing says what G(a) should be,
only that it should look like B; what ties it to a is that F must be able to bring it
back, F(G(a)) = a. A and B are the paper's X and Y (the folders A/ and B/), a and b its x
and y.

    1. the games  L_GAN(G, D_B, A, B) = E_b[log D_B(b)] + E_a[log(1 - D_B(G(a)))]
                  (Eq. 1) and L_GAN(F, D_A, B, A) likewise, played as least squares (Sec.
                  4, Mao et al.): D_B minimises (D_B(b) - 1)^2 + D_B(G(a))^2, halved; G
                  minimises (D_B(G(a)) - 1)^2
    2. cycle      L_cyc(G, F) = E_a ||F(G(a)) - a||_1 + E_b ||G(F(b)) - b||_1  (Eq. 2)
    3. objective  L = L_GAN(G, D_B, A, B) + L_GAN(F, D_A, B, A) + lambda L_cyc(G, F),
                  lambda = 10 (Eq. 3)
    4. identity   L_id = E_b ||G(b) - b||_1 + E_a ||F(a) - a||_1, weighted 0.5 lambda
                  (Sec. 5.2)
    5. G, F       ResNet generator (Johnson et al., 2016): c7s1-64, d128, d256, N residual
                  blocks R256, u128, u64, c7s1-C; reflection padding, InstanceNorm, ReLU,
                  Tanh out. N = 9 at 256x256 and above, 6 below (Sec. 4 and appendix 7.2)
    6. D_A, D_B   pix2pix's 70x70 PatchGAN with InstanceNorm, on one image:
                  C64-C128-C256-C512, then a score for each overlapping 70x70 patch (30x30
                  of them at 256x256)
    7. history    each D is shown fakes from a buffer of the 50 last ones (Shrivastava et
                  al.; Sec. 4), saved in the checkpoint with the weights

Adam, lr 2e-4, beta1 0.5, batch 1, as the paper. Left out: its linear decay of the
learning rate to 0 over the second 100 epochs (train.py keeps the rate constant).

The order of the two steps. Zhu et al.'s code updates G and F first, then D_A and D_B on
the same fakes. train.py's loop, like the lecture's GAN algorithm (k steps of D, then one
of G), calls d_loss and then g_loss on the same batch, so here d_loss makes G(a) and F(b)
once, trains the Ds on them (through the history), and keeps them for g_loss, which scores
them with the just-updated Ds. Both orders alternate one step of each; they differ only in
whether G meets D before or after D's step.

Data: x is a batch b of domain B, y (the condition) an unrelated batch a of domain A, in
pix2pix's order: target, input.

    python train.py cyclegan --ngf 16 --ndf 16 --batch-size 4     # built in: circles <-> squares
    python train.py cyclegan --data ./horse2zebra --image-size 256  # A/ and B/, or trainA/, trainB/
    python sample.py runs/cyclegan/ckpt.pt --input ./horse2zebra/testA   # input | G(a) | F(G(a))
"""
import torch
import torch.nn as nn
# step 6: pix2pix's PatchGAN, which Zhu et al. use unchanged; its N(0, 0.02) initialisation
from pix2pix import init_weights, patchgan
from gan import adam


class CycleGAN(nn.Module):
    batch_size = 1                   # the paper's
    sampling_networks = ("G", "F")   # what sample.py --compile compiles
    # train.py: batches (b, a) of domains B and A, drawn independently
    unpaired = True
    # the identity loss is weighted lambda_identity * lambda_cyc (settings.py's needs)
    needs = {"lambda_identity": {"lambda_cyc": bool}}

    def __init__(self, image_size=256, channels=3, num_classes=0, *, ngf=64, ndf=64,
                 n_blocks=0, n_layers=3, lambda_cyc=10.0, lambda_identity=0.5, history=50,
                 lr=2e-4, beta1=0.5, beta2=0.999):
        """The two generators and two discriminators; each keyword is a train.py flag.

        ngf: the generators' width at full resolution (the paper's 64)
        ndf: the PatchGANs' width at their first layer (the paper's 64)
        n_blocks: residual blocks in G and F; 0 picks the paper's: 9 at 256 and above, 6 below
        n_layers: the PatchGANs' stride-2 layers: 3 is the 70x70 PatchGAN (the paper's)
        lambda_cyc: the weight lambda of the cycle loss (the paper's 10)
        lambda_identity: the identity loss's weight as a fraction of lambda (the paper's 0.5)
        history: the size of the buffer of past fakes each D is shown; 0: none (the paper's 50)
        lr: Adam's learning rate (the paper's 2e-4)
        beta1: Adam's beta1 (the paper's 0.5)
        beta2: Adam's beta2 (the paper's 0.999)
        """
        super().__init__()
        if image_size < 8 or image_size % 4:
            raise ValueError(f"image size must be a multiple of 4, at least 8 "
                             f"(G halves it twice; got {image_size})")
        if image_size >> n_layers < 4:
            raise ValueError(f"a {n_layers}-layer PatchGAN needs images of at least "
                             f"{4 << n_layers} pixels: lower --n-layers")
        n_blocks = n_blocks or (9 if image_size >= 256 else 6)
        self.lambda_cyc = lambda_cyc
        self.lambda_identity = lambda_identity
        self.lr = lr
        self.betas = (beta1, beta2)
        self.G = resnet_generator(channels, ngf, n_blocks)             # G: A -> B
        self.F = resnet_generator(channels, ngf, n_blocks)             # F: B -> A
        self.D_A = patchgan(channels, ndf, n_layers, "instance")       # real a or F(b)?
        self.D_B = patchgan(channels, ndf, n_layers, "instance")       # real b or G(a)?
        # past F(b), for D_A
        self.history_a = History(history)
        # past G(a), for D_B
        self.history_b = History(history)
        init_weights(self)                          # as in the paper's code

    def d_loss(self, b, a):
        """Eq. 1 as least squares, the Ds' side. b: (B, C, S, S) of domain B; a: as many
        of domain A, unrelated to them. Makes G(a) and F(b) and keeps them, with their
        graphs, for g_loss."""
        self.fake_b = self.G(a)                                         # G(a)
        self.fake_a = self.F(b)                                         # F(b)
        real_b = self.D_B(b).float()                                    # (B, 1, P, P)
        fake_b = self.D_B(self.history_b(self.fake_b)).float()
        real_a = self.D_A(a).float()
        fake_a = self.D_A(self.history_a(self.fake_a)).float()
        # (D(real) - 1)^2 + D(fake)^2, means over patches; halved, as in the paper's code, so D
        # learns more slowly than G (pix2pix does the same)
        return {"real_B": 0.5 * ((real_b - 1) ** 2).mean(),
                "fake_B": 0.5 * (fake_b ** 2).mean(),
                "real_A": 0.5 * ((real_a - 1) ** 2).mean(),
                "fake_A": 0.5 * (fake_a ** 2).mean()}

    def g_loss(self, b, a):
        """Eq. 3, the generators' side, + the identity loss: on the G(a), F(b) of
        d_loss."""
        fake_b = self.fake_b                                            # G(a)
        fake_a = self.fake_a                                            # F(b)
        lam = self.lambda_cyc
        # Eq. 1: D_B(G(a)) -> 1
        terms = {"gan_G": ((self.D_B(fake_b).float() - 1) ** 2).mean(),
                 # and D_A(F(b)) -> 1
                 "gan_F": ((self.D_A(fake_a).float() - 1) ** 2).mean(),
                 # Eq. 2: F(G(a)) = a
                 "cyc_A": lam * (self.F(fake_b).float() - a).abs().mean(),
                 # and G(F(b)) = b
                 "cyc_B": lam * (self.G(fake_a).float() - b).abs().mean()}
        # Sec. 5.2: G leaves what is already B alone
        if self.lambda_identity:
            w = self.lambda_identity * lam
            # ||G(b) - b||_1
            terms["idt_G"] = w * (self.G(b).float() - b).abs().mean()
            # ||F(a) - a||_1
            terms["idt_F"] = w * (self.F(a).float() - a).abs().mean()
        return terms

    def configure_optimizers(self):
        D = [*self.D_A.parameters(), *self.D_B.parameters()]
        G = [*self.G.parameters(), *self.F.parameters()]
        return adam(D, G, self.lr, self.betas, fused=True)

    @torch.no_grad()
    def sample(self, n, y, *, direction="AtoB"):
        """G(a) for n inputs a = y (n, C, S, S); with direction BtoA, F(b) for inputs b =
        y.

        direction: AtoB translates with G, BtoA with F
        """
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction is AtoB or BtoA (got {direction})")
        net = self.G if direction == "AtoB" else self.F
        return net(y[:n])


# ---- The networks (step 5; the PatchGAN of step 6 is pix2pix's) and the history (step 7) -------

class ResidualBlock(nn.Module):
    """R256: x + [pad, conv 3x3, IN, ReLU, pad, conv 3x3, IN](x), (c, H, W) -> (c, H,
    W)."""

    def __init__(self, c):
        super().__init__()
        self.f = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x):
        # the block learns a change to x
        return x + self.f(x)


def resnet_generator(channels, ngf=64, n_blocks=9):
    """G or F, in Johnson et al.'s names: c7s1-k a 7x7 conv with stride 1, dk a 3x3 conv
    with stride 2, Rk a residual block, uk a 3x3 conv with stride 1/2; each conv but the
    last followed by IN and ReLU. InstanceNorm has no affine parameters here, so every
    conv keeps its bias (the counts of the paper's code: 11,378,179 for
    resnet_9blocks)."""
    # affine=False: per image, per channel
    IN = nn.InstanceNorm2d

    # uk: ConvTranspose, stride 1/2
    def u(c_in, c_out):
        return nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1)

    return nn.Sequential(
        nn.ReflectionPad2d(3),
        # c7s1-64: (64, S, S)
        nn.Conv2d(channels, ngf, 7), IN(ngf), nn.ReLU(True),
        # d128: S/2
        nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), IN(2 * ngf), nn.ReLU(True),
        # d256: S/4
        nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1), IN(4 * ngf), nn.ReLU(True),
        *[ResidualBlock(4 * ngf) for _ in range(n_blocks)],                     # R256 x N
        # u128: S/2
        u(4 * ngf, 2 * ngf), IN(2 * ngf), nn.ReLU(True),
        u(2 * ngf, ngf), IN(ngf), nn.ReLU(True),                                # u64: S
        nn.ReflectionPad2d(3),
        # c7s1-C: (C, S, S)
        nn.Conv2d(ngf, channels, 7), nn.Tanh())


class History(nn.Module):
    """Step 7, the buffer of past fakes: once it holds `size` of them, each new fake is
    shown to D as it is with probability 1/2, and otherwise swapped for a random stored
    one, which it replaces. D so keeps seeing what G did a while ago and cannot simply
    chase G's latest move. Unlike the paper's code, it is saved in checkpoints with the
    weights (its extra state), so a resumed run shows D the very fakes an uninterrupted
    one would. Size 0: no buffer."""

    def __init__(self, size=50):
        super().__init__()
        self.size = size
        self.n = 0                                          # how many are stored
        self.images = None

    # in state_dict(): the checkpoint's
    def get_extra_state(self):
        return {"n": self.n, "images": self.images}

    def set_extra_state(self, state):                       # refused: another --history
        if state["images"] is not None and len(state["images"]) != self.size:
            raise ValueError(f"a history of {len(state['images'])} fakes, not {self.size}")
        self.n = state["n"]
        self.images = state["images"]

    # train.py --compile: its host-side count stays out of the
    @torch.compiler.disable
    def forward(self, fake):        # graph, so no recompiling as it fills
        fake = fake.detach()                                # (B, C, S, S); D's step only
        if self.size == 0:
            return fake
        if self.images is None:
            self.images = fake.new_zeros(self.size, *fake.shape[1:])
        # a resumed run's: loaded on the CPU
        self.images = self.images.to(fake)
        # still filling: store, show the new
        if self.n < self.size:
            k = min(len(fake), self.size - self.n)
            self.images[self.n:self.n + k] = fake[:k]
            # a count on the host: no GPU sync
            self.n += k
            return fake
        B = len(fake)
        # heads: a past fake
        heads = torch.rand(B, device=fake.device) < 0.5
        past = heads.view(B, *[1] * (fake.dim() - 1))
        i = torch.arange(B, device=fake.device) % self.size
        # distinct slots, one each
        slot = torch.randperm(self.size, device=fake.device)[i]
        old = self.images[slot]
        # a past fake shown is replaced
        self.images[slot] = torch.where(past, fake, old)
        return torch.where(past, old, fake)
