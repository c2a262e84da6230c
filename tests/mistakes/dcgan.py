"""dcgan.py's mistakes: D's targets, G's loss, where the fakes are detached, the labels D and G
see, ACGAN's class loss, the prior of z, the paper's initialisation; dcgan-lab's penalty line,
norm, learned map and g_steps. Two more are in taught.py (docs/mistakes.md measures them): G's
target 0, a Sigmoid at G's output. The helpers dcgan.py takes from gan.py (WGAN's signs and
clipping, the penalty, D's targets, the optimisers, the prior of z at sampling) are gan.py's
mistakes, run with tests/test_dcgan.py too."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("dcgan.py", "D's real and fake targets swapped where d_loss unpacks them",
            "t_real, t_fake = d_targets(",
            "t_fake, t_real = d_targets(",
            shows="D learns to call the data fake: G is pushed away from the data, the samples "
                  "stay noise while every loss looks healthy"),
    Mistake("dcgan.py", "G's loss the saturating minimax form: minimise log(1 - D(G(z)))",
            '{"gan": F.binary_cross_entropy_with_logits(fake_logit, target)}',
            '{"gan": -F.binary_cross_entropy_with_logits(fake_logit, 1 - target)}',
            shows="early on D rejects the fakes with confidence and G's gradient vanishes: "
                  "D(G(z)) near 0, the samples barely move"),
    Mistake("dcgan.py", "the fakes not detached in D's step",
            "fake = self.fake.detach()\n        # D(x)",
            "fake = self.fake\n        # D(x)",
            shows="the first G step fails: 'Trying to backward through the graph a second "
                  "time' (D's backward freed G's graph); with retain_graph to silence it, "
                  "G's gradient gets D's added, pulling it away from the data"),
    Mistake("dcgan.py", "G's loss computed on detached fakes",
            "h = self.features(self.fake, self.y_fake)",
            "h = self.features(self.fake.detach(), self.y_fake)",
            shows="no gradient reaches G: D wins within a hundred steps and the samples stay "
                  "the untrained G's blobs"),
    Mistake("dcgan.py", "the penalty's line drawn to another label's fake (perm for its inverse)",
            "x, fake[perm.argsort()], y)",
            "x, fake[perm], y)",
            shows="conditional WGAN-GP: x_hat mixes two classes, the critic is held to "
                  "1-Lipschitz between classes it never compares"),
    Mistake("dcgan.py", "ACGAN's D scores the fakes' class against the data's labels",
            "self.class_loss(h_fake, self.y_fake)",
            "self.class_loss(h_fake, y)",
            shows="D's classifier learns that fakes show some other class: G's class loss "
                  "fights it, samples ignore their label"),
    Mistake("dcgan.py", "ACGAN's G loss on the batch's labels, not those G drew with",
            'terms["aux"] = self.class_loss(h, self.y_fake)',
            'terms["aux"] = self.class_loss(h, y)',
            shows="G is asked for class y_i while drawing class c_i: samples ignore their "
                  "label"),
    Mistake("dcgan.py", "ACGAN's D class loss on real images only",
            "self.class_loss(h_real, y) + self.class_loss(h_fake, self.y_fake)",
            "self.class_loss(h_real, y)",
            shows="the paper's L_C counts fakes too; without them G's class loss is judged by "
                  "a classifier that never learned from fakes"),
    Mistake("dcgan.py", "ACGAN's G maximises the class loss (L_C's sign read as D's L_S - L_C)",
            "self.class_loss(h, self.y_fake)",
            "-self.class_loss(h, self.y_fake)",
            shows="G learns to draw any class but the one asked for: the class-conditional "
                  "grid is shuffled"),
    Mistake("dcgan.py", "the multi-label class loss averaged over the K labels, not summed",
            "return bce.sum(1).mean()",
            "return bce.mean()",
            shows="L_C weighs 1/K of the paper's: with 24 objects class control barely "
                  "trains, samples ignore their labels"),
    Mistake("dcgan.py", "the conditional D shown the fakes with the data's labels",
            "fake_logit = self.logits(fake, self.y_fake)",
            "fake_logit = self.logits(fake, y)",
            shows="D learns that the label and the picture disagree on fakes; G is judged by "
                  "a label it was not given: samples ignore their label"),
    Mistake("dcgan.py", "G's condition looked up as an index, which a set of labels is not",
            "self.onehot(y) @ self.embed.weight",
            "self.embed(y)",
            shows="class ids work; multi-hot labels (the lab's i-CLEVR sets) crash"),
    Mistake("dcgan.py", "normal_(w, 0.02): mean 0.02 and std 1, not N(0, 0.02)",
            "nn.init.normal_(m.weight, 0.0, 0.02)",
            "nn.init.normal_(m.weight, 0.02)",
            shows="weights 50 times too wide and all shifted positive: G starts saturated "
                  "(pure black and white) and D's logits huge"),
    Mistake("dcgan.py", "the layer norm given to WGAN's critic, BatchNorm to WGAN-GP's",
            'if loss == "wgan-gp" else nn.BatchNorm2d',
            'if loss == "wgan" else nn.BatchNorm2d',
            shows="WGAN-GP's penalty per sample meets a norm that mixes the batch: the "
                  "penalty no longer constrains f, training unstable"),
    Mistake("dcgan.py", "z drawn from U(0, 1) (rand) in training, N(0, I) at sampling",
            "z = torch.randn(x.shape[0], self.z_dim, device=x.device)",
            "z = torch.rand(x.shape[0], self.z_dim, device=x.device)",
            shows="G learns on [0, 1]^d, a corner of z-space: every grid, drawn by sample() "
                  "from N(0, I), shows broken samples while the losses look normal"),
    Mistake("dcgan.py", "the learned condition map detached: D_embed never learns",
            "maps = self.D_embed(y).view(-1, 1, *x.shape[2:]).to(x.dtype)",
            "maps = self.D_embed(y).view(-1, 1, *x.shape[2:]).detach().to(x.dtype)",
            shows="(predicted) --y-embed's map stays its random init: D reads the condition "
                  "through a fixed random projection, G's samples follow their sets less"),
    Mistake("dcgan.py", "the learned map shown to D as K one-hot maps (the test inverted)",
            "if self.D_embed is None:",
            "if self.D_embed is not None:",
            shows="--y-embed crashes at the first step (D's first conv expects C + 1 channels)"),
    Mistake("dcgan.py", "the learned map read from the wrong side of Linear: y W, W (S^2, K)",
            "self.D_embed(y).view(",
            "(y @ self.D_embed.weight.T).view(",
            shows="(predicted) the map loses its bias: a set of no objects gives D an all-zero "
                  "map; barely visible in training"),
    Mistake("dcgan.py", "g_loss's 'fakes used' mark not reset by d_loss",
            "        self.g_done = False",
            "        pass",
            shows="the first G step fails ('DCGAN' object has no attribute 'g_done'); set once "
                  "in __init__ instead, every later G step would redraw d_loss's fakes"),
    Mistake("dcgan.py", "a further G step (g_steps) draws its new fakes but scores the old ones",
            "            self.fake = self.generate(z, self.y_fake)",
            "            self.generate(z, self.y_fake)",
            shows="--g-steps 2 crashes: 'Trying to backward through the graph a second time'"),
    Mistake("dcgan.py", "a further G step draws its fakes for the batch's labels, not c",
            "self.fake = self.generate(z, self.y_fake)\n        self.g_done = True",
            "self.fake = self.generate(z, y)\n        self.g_done = True",
            shows="(predicted) G's extra steps are judged by labels it was not given in D's "
                  "step: conditioning weakens as --g-steps grows"),
]
