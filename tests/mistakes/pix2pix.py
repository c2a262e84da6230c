"""pix2pix.py's mistakes: the conditional pairs D sees, the L1 term and its lambda, D's targets
and its halving, the PatchGAN's window, the U-Net's skips, G's dropout at test time. Those of D's
targets, which pix2pix.py takes from gan.py, are gan.py's, run with tests/test_pix2pix.py too."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("pix2pix.py", "D's real pair stacked as (x, y) while its fake pair is (y, G(y))",
            "real = self.logits(y, x)",
            "real = self.logits(x, y)",
            shows="D tells real from fake by which half of its channels holds the input: D wins "
                  "at once, G gets no useful signal and leans on the L1 term alone (blurry)"),
    Mistake("pix2pix.py", "D's fake pair stacked as (G(y), y)",
            "fake = self.logits(y, self.fake.detach())",
            "fake = self.logits(self.fake.detach(), y)",
            shows="the same give-away channel order: D's loss falls to 0 within a few hundred "
                  "steps, the outputs as blurry as with L1 alone"),
    Mistake("pix2pix.py", "G(y) not detached in D's step",
            "self.logits(y, self.fake.detach())",
            "self.logits(y, self.fake)",
            shows="D's backward frees G's graph: the G step that follows crashes with 'Trying "
                  "to backward through the graph a second time'"),
    Mistake("pix2pix.py", "G's adversarial term computed on a detached G(y)",
            "fake = self.logits(y, self.fake)",
            "fake = self.logits(y, self.fake.detach())",
            shows="only the L1 term trains G: outputs the blurry average of the plausible "
                  "targets, as in the paper's L1-only column (Fig. 4)"),
    Mistake("pix2pix.py", "G's L1 term computed on a detached G(y)",
            "l1 = (x - self.fake).abs().mean()",
            "l1 = (x - self.fake.detach()).abs().mean()",
            shows="the L1 figure is logged but trains nothing: outputs sharp but unrelated in "
                  "colour and layout to the target, the cGAN-only column of Fig. 4"),
    Mistake("pix2pix.py", "the L1 term without its weight lambda",
            '"l1": self.lambda_l1 * l1}',
            '"l1": l1}',
            shows="the L1 term is 100 times too weak: the GAN term dominates, outputs drift "
                  "from their targets with artefacts, as with cGAN alone"),
    Mistake("pix2pix.py", "the L1 term measured against the input y, not the target x",
            "(x - self.fake).abs()",
            "(y - self.fake).abs()",
            shows="G is pulled towards copying its input: outputs look like the input image "
                  "(a label map, an edge map), not the target"),
    Mistake("pix2pix.py", "L2, the squared error, where Eq. 3 has the L1 distance",
            "self.fake).abs().mean()",
            "self.fake).pow(2).mean()",
            shows="the term is smaller for errors under 1 and blurs more (Isola et al., Sec. "
                  "3.1): outputs the mean of the plausible targets"),
    Mistake("pix2pix.py", "D's real term not halved",
            '"real": 0.5 * bce(',
            '"real": bce(',
            shows="D weighs its real pairs twice as much as its fakes and leans towards "
                  "calling every pair real: the logged D(A,B) and D(A,G(A)) both drift up"),
    Mistake("pix2pix.py", "G's adversarial target 0 (fake), not 1",
            "F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))",
            "F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))",
            shows="G helps D tell its outputs apart: D(A,G(A)) falls to 0 and the outputs "
                  "carry an obvious fake texture"),
    Mistake("pix2pix.py", "every PatchGAN conv with stride 2, the last one's too",
            "stride = 2 if i < n_layers else 1",
            "stride = 2",
            shows="each logit sees a 94x94 window on a coarser grid: 15x15 logits at 256x256 "
                  "instead of 30x30, D judges larger structures and less local texture"),
    Mistake("pix2pix.py", "the PatchGAN's last conv 1x1 instead of 4x4",
            "nn.Conv2d(c, 1, 4, 1, 1))",
            "nn.Conv2d(c, 1, 1))",
            shows="each logit sees a 46x46 window, not 70x70: D judges finer texture only"),
    Mistake("pix2pix.py", "the skip connection concatenates d_i with itself, not with e_i",
            "h = torch.cat([h, skips.pop()], 1)",
            "h = torch.cat([h, h], 1)",
            shows="an encoder-decoder without skips: every detail goes through the 1x1 "
                  "bottleneck, outputs lose the input's edges (Fig. 5)"),
    Mistake("pix2pix.py", "G's dropout in the three outermost decoder blocks",
            "if i >= levels - 3 else []",
            "if i <= 3 else []",
            shows="the full-resolution features are dropped at random: outputs speckled, "
                  "training slower"),
    Mistake("pix2pix.py", "G's dropout turned off at test time, against the paper",
            "dropout=True, batch_stats",
            "dropout=False, batch_stats",
            shows="a deterministic translation: two samples of one input identical, not the "
                  "paper's protocol (Sec. 3.3)"),
    Mistake("pix2pix.py", "test-time BatchNorm with training's running averages by default",
            "batch_stats=True):",
            "batch_stats=False):",
            shows="G runs a function it was never trained as: outputs washed out, contrast "
                  "off, unlike the paper's (which normalises with the test batch)"),
    Mistake("pix2pix.py", "BatchNorm on the first encoder level, which the paper leaves out",
            "*([] if i == 0 or last else [Norm(widths[i])])",
            "*([] if last else [Norm(widths[i])])",
            shows="the input's absolute colours are normalised away at the first layer: "
                  "outputs' global colour drifts with the batch"),
    Mistake("pix2pix.py", "BatchNorm's scales initialised around 0, not 1",
            "nn.init.normal_(m.weight, 1.0, 0.02)",
            "nn.init.normal_(m.weight, 0.0, 0.02)",
            shows="every normalised feature starts near 0: G's and D's signals vanish, the "
                  "losses sit at their start for hundreds of steps"),
    Mistake("pix2pix.py", "lambda's default 10, not the paper's 100",
            "lambda_l1=100.0,",
            "lambda_l1=10.0,",
            tests="tests/test_holes.py",
            shows="the L1 term weighs a tenth of the paper's: outputs sharper but wander from "
                  "the target, more artefacts (the paper's cGAN-heavy columns)"),
]
