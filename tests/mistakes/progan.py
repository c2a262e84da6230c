"""progan.py's mistakes: equalised lr, pixel norm, minibatch std, the growing schedule, the
fade-in of G, D and the reals, WGAN-GP with its drift term."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("progan.py", "equalised lr's stored weights ~ N(0, 1) whatever lr_mul",
            "torch.randn(shape) / lr_mul)",
            "torch.randn(shape))",
            shows="f's used weights start 100 times too small: w = f(z) starts near the "
                  "biases, every z maps to almost the same w, the samples all alike"),
    Mistake("progan.py", "equalised lr's bias not scaled by lr_mul",
            "b = self.bias * self.lr_mul",
            "b = self.bias",
            shows="f's biases learn 100 times faster than its weights: w drifts as a whole, "
                  "w_avg never settles, truncation pulls towards a moving target"),
    Mistake("progan.py", "He's constant c = gain / fan_in, its square root missing",
            "gain * lr_mul / math.sqrt(c_in * max(k, 1) ** 2)",
            "gain * lr_mul / (c_in * max(k, 1) ** 2)",
            shows="each layer shrinks its signal by sqrt(fan_in): activations vanish through "
                  "the depth, samples flat grey and D's logits all 0"),
    Mistake("progan.py", "equalised lr's fan_in without the kernel's k x k",
            "math.sqrt(c_in * max(k, 1) ** 2)",
            "math.sqrt(c_in)",
            shows="each 3x3 conv amplifies by 3: G's AdaIN renormalises it, but D's "
                  "activations grow threefold per conv, its first logits huge, its loss spiky"),
    Mistake("progan.py", "equalised lr's runtime constant without lr_mul",
            "self.scale = gain * lr_mul /",
            "self.scale = gain /",
            shows="f's used weights 100 times too large: w explodes through 8 layers, the "
                  "styles saturate, samples NaN or blown out"),
    Mistake("progan.py", "pixel norm dividing by the root of the sum of squares, not the mean",
            "a.pow(2).mean(1, keepdim=True)",
            "a.pow(2).sum(1, keepdim=True)",
            shows="z scaled to unit length, not unit mean square: its entries 1/sqrt(z_dim) "
                  "too small, so at the start w is nearly the same for every z, samples alike"),
    Mistake("progan.py", "minibatch std's groups strided through the batch",
            "reshape(-1, g, C, H, W).var(1, unbiased=False)",
            "reshape(g, -1, C, H, W).var(0, unbiased=False)",
            shows="samples grouped i, i + B/g, ...: D still sees a spread, but not the one "
                  "of the group each sample is appended to; a subtle loss of mode coverage"),
    Mistake("progan.py", "minibatch std's feature the mean variance, its square root missing",
            "s = sigma.mean((1, 2, 3))",
            "s = var.mean((1, 2, 3))",
            shows="D's diversity feature grows with the square of the spread: small spreads "
                  "vanish, so D is blind to a partial mode collapse"),
    Mistake("progan.py", "minibatch std's group values tiled, not each repeated g times",
            ".repeat_interleave(g)",
            ".repeat(g)",
            shows="each sample is shown another group's spread: D's diversity feature is "
                  "noise, mode collapse goes unpunished"),
    Mistake("progan.py", "the schedule's first phase one image too long (seen <= stable)",
            "if seen < stable:",
            "if seen <= stable:",
            shows="(predicted) a switch lands one batch late; harmless in training, but the "
                  "phase the docs state for a number of images is not the one the run is in"),
    Mistake("progan.py", "alpha computed over the stable phase's length",
            "min(1.0, into / fade)",
            "min(1.0, into / stable)",
            shows="(predicted) with --fade-images larger than --stable-images the new block "
                  "snaps in too fast: a jump in D's loss and blotchy samples at each switch"),
    Mistake("progan.py", "the fade-in's weights swapped: alpha on the old path",
            "return (1 - alpha) * old + alpha * new",
            "return alpha * old + (1 - alpha) * new",
            shows="(predicted) each switch throws the old path away at once (alpha = 0 is the "
                  "untrained block) and fades it back in: the samples turn to noise at every "
                  "new resolution"),
    Mistake("progan.py", "the old toRGB applied to the new block's features",
            "to_rgb[k - 1 - levels](hs[-2])",
            "to_rgb[k - 1 - levels](hs[-1])",
            shows="(predicted) at alpha = 0 the image is already the untrained new block's, "
                  "through the wrong toRGB: a visible jolt at each switch, or a shape error "
                  "where the widths differ"),
    Mistake("progan.py", "D's old path through the new resolution's fromRGB",
            "h = fade_in(from_rgb[k - 1 - levels]",
            "h = fade_in(from_rgb[k - levels]",
            shows="(predicted) D's old path loses the fromRGB it learned: its scores jump at "
                  "each switch, G receives a gradient from a D that forgot"),
    Mistake("progan.py", "the reals not blended while a block fades in",
            "fade_in(F.interpolate(F.avg_pool2d(x_r, 2), scale_factor=2), x_r, alpha)",
            "x_r",
            shows="(predicted) D sees sharp reals against G's blurred blend: it tells them "
                  "apart by sharpness alone during each fade-in, and G is pushed to sharpen "
                  "with a block that is not yet trained"),
    Mistake("progan.py", "the reals pooled to half the phase's resolution",
            "x_r = F.avg_pool2d(x, x.shape[-1] // (4 << level))",
            "x_r = F.avg_pool2d(x, x.shape[-1] // (2 << level))",
            shows="(predicted) a shape error at the first step: the reals come out at r / 2"),
    Mistake("progan.py", "the gradient penalty ||grad||^2, not (||grad|| - 1)^2",
            "(norm - 1).pow(2).mean()",
            "norm.pow(2).mean()",
            shows="(predicted) D is pushed towards a flat function: no longer 1-Lipschitz, "
                  "its critic too weak to teach G, the samples blur"),
    Mistake("progan.py", "the drift term on the fakes' scores",
            "self.eps_drift * real.pow(2).mean()",
            "self.eps_drift * fake.pow(2).mean()",
            shows="(predicted) barely visible: the real scores may drift away from 0 over a long "
                  "run, the paper's reason for the term"),
    Mistake("progan.py", "the Wasserstein term's sign flipped",
            "fake.mean() - real.mean()",
            "real.mean() - fake.mean()",
            shows="(predicted) D scores fakes above reals: G follows it away from the data, "
                  "the samples diverge"),
    Mistake("progan.py", "G(z) not detached in D's step",
            "fake_x = self.fake.detach()",
            "fake_x = self.fake",
            shows="(predicted) D's backward runs through G and frees its graph: the G step "
                  "that follows crashes"),
    Mistake("progan.py", "G's loss +D(G(z))",
            '{"gan": -self.critic(self.fake).float().mean()}',
            '{"gan": self.critic(self.fake).float().mean()}',
            shows="(predicted) G minimises its score: it walks away from the data, the "
                  "samples diverge"),
    Mistake("progan.py", "steps counted instead of images",
            "self.seen += self.fake.shape[0]",
            "self.seen += 1",
            shows="(predicted) the schedule runs batch-size times slower: the run never "
                  "leaves the small resolutions"),
    Mistake("progan.py", "G(z) without gan.py's y: generate(z)",
            "def generate(self, z, y=None):",
            "def generate(self, z):",
            tests="tests/test_invert.py",
            shows="sample.py --invert on a progan: a TypeError traceback (issue 42)"),
]
