"""stargan.py's mistakes: which label each domain term uses (real on reals, target on fakes,
original on the way back), the targets' shuffle, the Wasserstein signs, the gradient penalty, the
detach for D's step, the weights, the label maps, the networks' shapes."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stargan.py", "D's domain term on reals uses the target label c, not the real c'",
            "domain_loss(cls_real, y)",
            "domain_loss(cls_real, self.c)",
            shows="D_cls learns random labels (c is y shuffled): it never tells domains apart, "
                  "so G gets no signal about the target domain and its outputs barely change "
                  "(predicted)"),
    Mistake("stargan.py", "G's domain term on fakes uses the input's own label, not the target",
            "domain_loss(cls_fake, self.c)",
            "domain_loss(cls_fake, y)",
            shows="G is rewarded for keeping each image in its own domain: the translations "
                  "come back as near copies of the input in every column (predicted)"),
    Mistake("stargan.py", "the reconstruction goes to the target c again, not back to c'",
            "self.G(self.fake, y)",
            "self.G(self.fake, self.c)",
            shows="G(G(x, c), c) = x asks G to undo itself in the same domain: G learns to "
                  "change little, the domain edits are weak (predicted)"),
    Mistake("stargan.py", "no shuffle: the target of each image is its own label",
            "y[torch.randperm(len(y), device=y.device)]",
            "y",
            shows="G is only ever asked for the domain x is already in: it learns the identity "
                  "and every translation column repeats the input (predicted)"),
    Mistake("stargan.py", "D's step not detached from G",
            "fake = self.fake.detach()",
            "fake = self.fake",
            shows="D's backward frees G's graph, so the G step that follows fails with 'Trying "
                  "to backward through the graph a second time' (predicted)"),
    Mistake("stargan.py", "the sign of D's real term flipped",
            '"real": -src_real.float().mean()',
            '"real": src_real.float().mean()',
            shows="D pushes real and fake scores the same way: the critic no longer separates "
                  "them, G's adversarial term carries no information (predicted)"),
    Mistake("stargan.py", "G maximises -D_src(G(x, c)): the sign of its adversarial term flipped",
            '"adv": -src_fake.float().mean()',
            '"adv": src_fake.float().mean()',
            shows="G makes its outputs look fake: the translations drift to blotches that D "
                  "scores lowest (predicted)"),
    Mistake("stargan.py", "the reconstruction term without its weight lambda_rec",
            "self.lambda_rec * (x - x_rec.float())",
            "(x - x_rec.float())",
            shows="the way back 10 times too weak: translations lose the input's shape and "
                  "position (predicted)"),
    Mistake("stargan.py", "the domain term without its weight lambda_cls",
            '"cls": self.lambda_cls * domain_loss(cls_real, y)',
            '"cls": domain_loss(cls_real, y)',
            tests="tests/test_stargan.py",
            shows="none at the paper's lambda_cls = 1; with another --lambda-cls, D's domain "
                  "term keeps weight 1 while G's moves (predicted)"),
    Mistake("stargan.py", "the penalty's norm squared: no square root",
            "grad.flatten(1).norm(dim=1) - 1",
            "(grad.flatten(1) ** 2).sum(1) - 1",
            shows="the critic is pushed to gradient norm 1 by a penalty of the wrong shape: "
                  "stiffer away from 1, training slower and less stable (predicted)"),
    Mistake("stargan.py", "x^ not on the line between x and G(x, c)",
            "x_hat = (u * x + (1 - u) * fake)",
            "x_hat = (u * x + u * fake)",
            shows="the penalty is taken at points off the line between the two distributions: "
                  "D's gradient is unconstrained where it matters (predicted)"),
    Mistake("stargan.py", "attributes' binary cross-entropies averaged, not summed",
            'reduction="sum")',
            'reduction="mean")',
            shows="with K attributes the domain term is K times weaker than the paper's: "
                  "attribute edits fade (predicted)"),
    Mistake("stargan.py", "D_cls a 1x1 conv: one set of logits per patch, not per image",
            "nn.Conv2d(c, K, P, bias=False)",
            "nn.Conv2d(c, K, 1, bias=False)",
            shows="D_cls returns P*P*K numbers an image: the cross-entropy fails on its shape "
                  "at the first step (predicted)"),
    Mistake("stargan.py", "the residual block drops its skip connection",
            "return x + self.f(x)",
            "return self.f(x)",
            shows="a plain deep stack: G trains slower and loses the input's detail "
                  "(predicted)"),
    Mistake("stargan.py", "G without its Tanh",
            "nn.Conv2d(ngf, channels, 7, 1, 3, bias=False), nn.Tanh())",
            "nn.Conv2d(ngf, channels, 7, 1, 3, bias=False))",
            shows="G's outputs leave [-1, 1]: saved images clip, colours saturate (predicted)"),
    Mistake("stargan.py", "lambda_rec's default 1, not the paper's 10",
            "lambda_rec=10.0,",
            "lambda_rec=1.0,",
            tests="tests/test_holes.py",
            shows="the reconstruction weighs as little as the domain term: G changes more than "
                  "the domain, the person's identity drifts"),
    Mistake("stargan.py", "create_graph dropped from the penalty's autograd.grad",
            "x_hat, create_graph=True)",
            "x_hat)",
            shows="the penalty is a constant to D: its gp figure is logged but never trains D, "
                  "which is then an unconstrained critic (WGAN without its Lipschitz term)"),
    Mistake("stargan.py", "the reconstruction run on a detached G(x, c)",
            "x_rec = self.G(self.fake, y)",
            "x_rec = self.G(self.fake.detach(), y)",
            shows="L_rec trains G's way back only, not the translation it undoes: G(x, c) is "
                  "free to lose the input's identity"),
]
