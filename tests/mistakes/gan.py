"""gan.py's mistakes: D's targets, G's loss, where the fakes are detached, the optimisers, the
prior of z; WGAN's signs and clipping, the gradient penalty; the lab's soft and flipped labels and
dropout; and those of the helpers dcgan.py and pix2pix.py take from here, run with their tests
too. Three more are in taught.py (docs/mistakes.md measures them): D's targets swapped in
d_targets, G's loss on detached fakes, the sign of WGAN's E[f(x)]."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("gan.py", "D's real and fake targets swapped where d_loss unpacks them",
            "t_real, t_fake = d_targets(",
            "t_fake, t_real = d_targets(",
            shows="D learns to call the data fake: G is pushed away from the data, the samples "
                  "stay noise while every loss looks healthy"),
    Mistake("gan.py", "the non-saturating option written as the saturating form, "
            "-BCE(D(G(z)), 0) = log(1 - D(G(z)))",
            '{"gan": F.binary_cross_entropy_with_logits(fake_logit, target)}',
            '{"gan": -F.binary_cross_entropy_with_logits(fake_logit, 1 - target)}',
            shows="the default G loss saturates: early on D rejects the fakes with confidence "
                  "and G's gradient vanishes: D(G(z)) near 0, G's loss flat near 0, the samples "
                  "barely move (predicted)"),
    Mistake("gan.py", "the two G losses' branches swapped",
            "if self.saturating:",
            "if not self.saturating:",
            shows="--g-loss saturating trains with the non-saturating loss and the default "
                  "with the saturating one: the lecture's comparison comes out backwards "
                  "(predicted)"),
    Mistake("gan.py", "the saturating loss with the sign inside log(1 - D) flipped: "
            "-softplus(-l) = log D(G(z))",
            '-F.softplus(fake_logit).mean()}',
            '-F.softplus(-fake_logit).mean()}',
            shows="G minimises log D(G(z)): it helps D reject its samples, D(G(z)) falls to 0 "
                  "and the samples move away from the data (predicted)"),
    Mistake("gan.py", "the saturating loss's outer sign dropped: softplus(l) = -log(1 - D)",
            '{"gan": -F.softplus(fake_logit)',
            '{"gan": F.softplus(fake_logit)',
            shows="G maximises log(1 - D(G(z))), D's own objective: D(G(z)) goes to 0 and the "
                  "samples never approach the data (predicted)"),
    Mistake("gan.py", "--g-loss's default the saturating loss, not the lecture's practical one",
            'g_loss="non-saturating", gp_lambda',
            'g_loss="saturating", gp_lambda',
            shows="every run without --g-loss starts with a vanishing G gradient: D(G(z)) near "
                  "0 for hundreds of steps, the samples barely move (predicted)"),
    Mistake("gan.py", "G's target set to 0 (fake), not 1 (real)",
            "target = torch.ones_like(fake_logit)",
            "target = torch.zeros_like(fake_logit)",
            shows="G helps D tell its samples apart: D(G(z)) falls to 0 within a few steps, "
                  "the samples never approach the data"),
    Mistake("gan.py", "the fakes not detached in D's step",
            "fake = self.fake.detach()\n        # D(x)",
            "fake = self.fake\n        # D(x)",
            shows="the first G step fails: 'Trying to backward through the graph a second "
                  "time' (D's backward freed G's graph); with retain_graph to silence it, "
                  "G's gradient gets D's added, pulling it away from the data"),
    Mistake("gan.py", "the fakes kept for g_loss without their graph",
            "self.fake = self.generate(z, y).view_as(x)",
            "self.fake = self.generate(z, y).view_as(x).detach()",
            shows="G's step has no gradient: G never changes, D wins at once"),
    Mistake("gan.py", "WGAN's critic loss with the sign of E[f(G(z))] flipped",
            '"fake": fake_f.float().mean()}',
            '"fake": -fake_f.float().mean()}',
            shows="the critic pushes all scores up together and measures no distance: the "
                  "scores diverge, G gets no useful signal"),
    Mistake("gan.py", "WGAN's G loss +E[f(G(z))], the critic's sign, not its opposite",
            '{"wgan": -fake_logit.float().mean()}',
            '{"wgan": fake_logit.float().mean()}', tests="tests/test_gan.py tests/test_dcgan.py",
            shows="G moves its samples to where the critic scores them lowest: away from the "
                  "data, the Wasserstein estimate grows"),
    Mistake("gan.py", "WGAN's clip hooked on G's optimizer instead of D's",
            "d_opt.register_step_post_hook",
            "g_opt.register_step_post_hook",
            shows="the critic is unconstrained and its scores explode, while G is held to "
                  "weights in [-0.01, 0.01] and outputs grey"),
    Mistake("gan.py", "WGAN clips the gradients, not the weights",
            "p.clamp_(-c, c)",
            "p.grad.clamp_(-c, c)", tests="tests/test_gan.py tests/test_dcgan.py",
            shows="the critic's weights grow without bound: the Wasserstein estimate diverges"),
    Mistake("gan.py", "the gradient penalty's norm taken over the whole batch, not per image",
            "grad.flatten(1).norm(dim=1)",
            "grad.norm()",
            shows="the penalty pushes the critic's gradient to 1/sqrt(B) per image: a critic "
                  "far too flat, G learns slowly"),
    Mistake("gan.py", "the penalty on the squared norm, its square root missing",
            "norm(dim=1) - 1) ** 2",
            "pow(2).sum(1) - 1) ** 2",
            shows="a quartic penalty: weak near norm 1, harsh away from it, training less stable"),
    Mistake("gan.py", "create_graph dropped from the penalty's autograd.grad",
            "x_hat, create_graph=True)",
            "x_hat)",
            shows="the penalty is logged but is a constant to the optimiser: the critic is "
                  "unconstrained and its scores drift apart"),
    Mistake("gan.py", "the penalty's interpolation weight drawn per pixel, not per image",
            "u = torch.rand(x.shape[0], *[1] * (x.dim() - 1), device=x.device)",
            "u = torch.rand_like(x)",
            shows="x_hat is a patchwork off the lines between x and G(z): the gradient is "
                  "held to 1 in the wrong places, a weaker critic"),
    Mistake("gan.py", "WGAN-GP's lambda dropped",
            "self.gp_lambda * gradient_penalty",
            "gradient_penalty", tests="tests/test_gan.py tests/test_dcgan.py",
            shows="--gp-lambda does nothing; at lambda = 1 the critic drifts from 1-Lipschitz"),
    Mistake("gan.py", "n_critic's defaults swapped: 5 D steps per G step for BCE, 1 for WGAN",
            '(1 if loss == "bce" else 5)',
            '(5 if loss == "bce" else 1)', tests="tests/test_gan.py tests/test_dcgan.py",
            shows="the BCE D wins (D(x) near 1, D(G(z)) near 0); the WGAN critic is too far "
                  "from optimal to estimate the distance"),
    Mistake("gan.py", "soft labels added to 1 instead of taken from it",
            "torch.where(real, 1 - u, u)",
            "torch.where(real, 1 + u, u)",
            shows="real targets in [1, 1.3]: D's BCE has no minimum, its logits on real data "
                  "run away"),
    Mistake("gan.py", "labels flipped with probability 1 - p, not p",
            "< flip",
            "> flip", tests="tests/test_gan.py tests/test_pix2pix.py",
            shows="with --flip-labels 0.05 D is trained on 95% wrong labels: it calls the data "
                  "fake and G is pushed from it"),
    Mistake("gan.py", "one soft-label draw for the whole batch",
            "u = 0.3 * torch.rand(2 * n, device=device)",
            "u = 0.3 * torch.rand(1, device=device)",
            shows="all targets of a step move together: soft labels smooth no single sample"),
    Mistake("gan.py", "z drawn from U(0, 1) (rand) in training, N(0, I) at sampling",
            "z = torch.randn(x.shape[0], self.z_dim, device=x.device)",
            "z = torch.rand(x.shape[0], self.z_dim, device=x.device)",
            shows="G learns on [0, 1]^d, a corner of z-space: every grid, drawn by sample() "
                  "from N(0, I), shows broken samples while the losses look normal"),
    Mistake("gan.py", "z drawn from U(0, 1) (rand) at sampling",
            "torch.randn(n, self.z_dim",
            "torch.rand(n, self.z_dim", tests="tests/test_gan.py tests/test_dcgan.py",
            shows="samples from a corner of z-space G never trained on: broken, all alike"),
    Mistake("gan.py", "D's Adam given G's parameters",
            "return adam(d_params, g_params,",
            "return adam(g_params, g_params,",
            shows="D never learns (its loss stays near its initial 1.39) and G chases a fixed "
                  "random D: the samples go nowhere"),
    Mistake("gan.py", "the lab's dropout put in G too",
            "nn.Tanh())",
            "nn.Tanh(), dropout=d_dropout)",
            shows="G's outputs carry dropout noise in training; in eval mode sample() draws "
                  "from a G that D never judged"),
    Mistake("gan.py", "G's Adam given every parameter, D's too",
            'g_params = [p for name, p in self.named_parameters() if not name.startswith("D")]',
            "g_params = list(self.parameters())", tests="tests/test_dcgan.py",
            shows="G's step also moves D to help G: D's loss creeps up and the game is "
                  "no longer played"),
    Mistake("gan.py", "soft labels drawn from U(0, 0.7) instead of U(0, 0.3)",
            "0.3 * torch.rand(",
            "0.7 * torch.rand(", tests="tests/test_pix2pix.py",
            shows="with --soft-labels the real and fake targets overlap (0.3 to 1 and 0 to "
                  "0.7): D cannot separate them and gives G a weak, noisy signal"),
    Mistake("gan.py", "--gp-lambda's need written as WGAN's, not WGAN-GP's",
            '"gp_lambda": {"loss": "wgan-gp"}', '"gp_lambda": {"loss": "wgan"}',
            tests="tests/test_flags.py",
            shows="--loss wgan --gp-lambda 5 is accepted and has no effect"),
    Mistake("gan.py", "WGAN-GP's lambda defaulting to 1, not the paper's 10",
            "gp_lambda=10.0,",
            "gp_lambda=1.0,",
            tests="tests/test_holes.py",
            shows="a weaker penalty: the critic's gradient norm strays from 1, WGAN-GP's "
                  "training less stable"),
]
