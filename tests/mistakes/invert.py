"""support/invert.py's mistakes: where the gradient reaches the latent, what the loss compares,
the start, each batch's noise, the edits, PSNR."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("support/invert.py", "the latent detached inside the loss: G(latent.detach())",
            "L = (G(latent) - x)",
            "L = (G(latent.detach()) - x)",
            shows="sample.py --invert stops at its first step: no gradient reaches the latent "
                  "(predicted)"),
    Mistake("support/invert.py", "the loss compares the start's image, not the target",
            "invert(lambda v, lo=lo: G(v, lo), xb, start, args.invert_steps)",
            "invert(lambda v, lo=lo: G(v, lo), G(start, lo), start, args.invert_steps)",
            tests="tests/test_invert.py",
            shows="the latent never moves from w_avg (or z = 0): every reconstruction is the "
                  "same average image, PSNR low for every input (predicted)"),
    Mistake("support/invert.py", "the search starts from w = 0, not from w_avg",
            "return self.model.w_avg.expand(n, *self.shape).clone()",
            "return torch.zeros(n, *self.shape, device=self.model.w_avg.device)",
            shows="StyleGAN's inversion starts off the manifold of f(z): slower, and stuck in "
                  "worse reconstructions (predicted)"),
    Mistake("support/invert.py", "a G that normalises z started at z = 0 too",
            "            return self.random(n)",
            "            return torch.zeros(n, *self.shape, device=self.device)",
            shows="a ProGAN's inversion stalls after its first step: the pixel norm's gradient "
                  "at z = 0, 1 / sqrt(eps), fills Adam's second moment"),
    Mistake("support/invert.py", "a growing G's image compared at its phase's size",
            "return x if self.size is None else torch.nn.functional.interpolate(x, size=self.size)",
            "return x",
            tests="tests/test_invert.py tests/test_modes.py",
            shows="sample.py --invert on a ProGAN still growing: a 4x4 image against an 8x8 "
                  "one, a RuntimeError traceback"),
    Mistake("support/invert.py", "each batch takes the first images' noise, not its own",
            "noise = [e[lo:lo + n] for e in self.noise]",
            "noise = [e[:n] for e in self.noise]",
            shows="with more images than --batch-size, a StyleGAN's later batches are fitted "
                  "under other noise than the one they are shown with: their PSNR drops "
                  "(predicted)"),
    Mistake("support/invert.py", "style mixing takes the coarse styles from the other w",
            "mixed = torch.cat([ws[:, :k], self.ws(other)[:, k:]], 1)",
            "mixed = torch.cat([self.ws(other)[:, :k], ws[:, k:]], 1)",
            shows="the mixed column keeps the image's colours and texture but the other "
                  "image's pose and shape, the opposite of the label (predicted)"),
    Mistake("support/invert.py", "the interpolation's ends swapped",
            "torch.lerp(found, other, t)",
            "torch.lerp(other, found, t)",
            shows="the strip runs from the other image back towards this one: t = 1/4 looks "
                  "like the other image (predicted)"),
    Mistake("support/invert.py", "truncation at psi = 2, away from w_avg",
            "self.model.truncate(ws, 0.5)",
            "self.model.truncate(ws, 2.0)",
            shows="the truncated column exaggerates the image instead of averaging it "
                  "(predicted)"),
    Mistake("support/invert.py", "PSNR on the [-1, 1] scale: the 1/2 dropped",
            "mse = ((a - b) / 2).pow(2)",
            "mse = (a - b).pow(2)",
            shows="every PSNR 6.02 dB too low, out of line with evaluate.py's (predicted)"),
    Mistake("support/invert.py", "a reconstruction may take the name of the edits or the plot",
            'stems = names(files, "--invert", taken=("edits", "loss"))',
            'stems = names(files, "--invert")',
            tests="tests/test_outputs.py",
            shows="an image named loss.png in --invert DIR --out OUT/: its reconstruction is "
                  "written, then replaced by the loss curve"),
    Mistake("support/invert.py", "--out DIR/'s reconstructions not among the files checked",
            'destination(out, named(args, "out"), recons + [strip, plot])',
            'destination(out, named(args, "out"), [strip, plot])',
            tests="tests/test_outputs.py",
            shows="sample.py --invert DIR --out DIR/ writes each reconstruction over the image "
                  "it inverted"),
    Mistake("support/invert.py", "a StyleGAN inverted in w by default, not the paper's w+",
            'space = args.space or ("w+" if style else "z")',
            'space = args.space or ("w" if style else "z")',
            shows="one w for every layer: reconstructions far worse than the paper's extended "
                  "space gives, PSNR several dB lower (predicted)"),
]
