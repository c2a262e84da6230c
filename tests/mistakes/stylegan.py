"""stylegan.py's mistakes: equalised lr and the mapping's lr multiplier, pixel norm, AdaIN and its
styles, the noise inputs, the minibatch std, the loss and R1, style mixing, truncation and w_avg."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stylegan.py", "the mapping network's layers without the lr multiplier 0.01",
            "w_dim, lr_mul=mapping_lr_mul)",
            "w_dim)",
            shows="f learns as fast as g: w wanders, the styles shift under the synthesis "
                  "network each step and training is less stable (Karras et al., Sec. 2)"),
    Mistake("stylegan.py", "equalised lr's stored weights ~ N(0, 1) whatever lr_mul",
            "torch.randn(shape) / lr_mul)",
            "torch.randn(shape))",
            shows="f's used weights start 100 times too small: w = f(z) starts near the "
                  "biases, every z maps to almost the same w, the samples all alike"),
    Mistake("stylegan.py", "equalised lr's bias not scaled by lr_mul",
            "b = self.bias * self.lr_mul",
            "b = self.bias",
            shows="f's biases learn 100 times faster than its weights: w drifts as a whole, "
                  "w_avg never settles, truncation pulls towards a moving target"),
    Mistake("stylegan.py", "He's constant c = gain / fan_in, its square root missing",
            "gain * lr_mul / math.sqrt(c_in * max(k, 1) ** 2)",
            "gain * lr_mul / (c_in * max(k, 1) ** 2)",
            shows="each layer shrinks its signal by sqrt(fan_in): activations vanish through "
                  "the depth, samples flat grey and D's logits all 0"),
    Mistake("stylegan.py", "equalised lr's fan_in without the kernel's k x k",
            "math.sqrt(c_in * max(k, 1) ** 2)",
            "math.sqrt(c_in)",
            shows="each 3x3 conv amplifies by 3: G's AdaIN renormalises it, but D's "
                  "activations grow threefold per conv, its first logits huge, its loss spiky"),
    Mistake("stylegan.py", "equalised lr's runtime constant without lr_mul",
            "self.scale = gain * lr_mul /",
            "self.scale = gain /",
            shows="f's used weights 100 times too large: w explodes through 8 layers, the "
                  "styles saturate, samples NaN or blown out"),
    Mistake("stylegan.py", "pixel norm dividing by the root of the sum of squares, not the mean",
            "z.pow(2).mean(1, keepdim=True)",
            "z.pow(2).sum(1, keepdim=True)",
            shows="z scaled to unit length, not unit mean square: its entries 1/sqrt(z_dim) "
                  "too small, so at the start w is nearly the same for every z, samples alike"),
    Mistake("stylegan.py", "AdaIN divides by the variance, not the standard deviation",
            "(x.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()",
            "(x.var((2, 3), keepdim=True, unbiased=False) + eps)",
            shows="a feature map's scale is not removed: the style no longer sets it, and "
                  "strong maps are crushed, weak ones blown up"),
    Mistake("stylegan.py", "AdaIN's mean taken over all channels, not per channel",
            "mu = x.mean((2, 3), keepdim=True)",
            "mu = x.mean((1, 2, 3), keepdim=True)",
            shows="each channel keeps its own offset: y_b no longer sets it, the previous "
                  "layer's style leaks through, style mixing mixes less cleanly"),
    Mistake("stylegan.py", "the 1 added to y_b's half of A's bias, not y_s's",
            "self.A.bias[:c_out] = 1.0",
            "self.A.bias[c_out:] = 1.0",
            shows="y_s starts around 0: every AdaIN multiplies its normalised features by ~0, "
                  "the first samples a flat colour and training slow to start"),
    Mistake("stylegan.py", "the styles unpacked as (y_b, y_s)",
            "y_s, y_b = self.A(w).chunk(2, 1)",
            "y_b, y_s = self.A(w).chunk(2, 1)",
            shows="the scale starts at 0 and the shift at 1: features wiped out at every "
                  "layer, samples one flat colour at first"),
    Mistake("stylegan.py", "a noise image per channel instead of one per layer",
            "noise = torch.randn_like(h[:, :1])",
            "noise = torch.randn_like(h)",
            shows="each channel gets its own noise: the stochastic detail (hair, freckles) "
                  "turns to colour speckle, since B cannot align it across channels"),
    Mistake("stylegan.py", "one noise image for the whole batch",
            "torch.randn_like(h[:, :1])",
            "torch.randn_like(h[:1, :1])",
            shows="every sample of a batch shares its stochastic detail: the same speckle "
                  "pattern sits on every image of a grid"),
    Mistake("stylegan.py", "minibatch std's groups strided through the batch",
            "reshape(-1, g, C, H, W).var(1, unbiased=False)",
            "reshape(g, -1, C, H, W).var(0, unbiased=False)",
            shows="samples grouped i, i + B/g, ...: D still sees a spread, but not the one "
                  "of the group each sample is appended to; a subtle loss of mode coverage"),
    Mistake("stylegan.py", "minibatch std's feature the mean variance, its square root missing",
            "s = sigma.mean((1, 2, 3))",
            "s = var.mean((1, 2, 3))",
            shows="D's diversity feature grows with the square of the spread: small spreads "
                  "vanish, so D is blind to a partial mode collapse"),
    Mistake("stylegan.py", "minibatch std's group values tiled, not each repeated g times",
            ".repeat_interleave(g)",
            ".repeat(g)",
            shows="each sample is shown another group's spread: D's diversity feature is "
                  "noise, mode collapse goes unpunished"),
    Mistake("stylegan.py", "D's real term softplus(D(x)), its sign flipped",
            '"real": F.softplus(-real).mean()',
            '"real": F.softplus(real).mean()',
            shows="D pushes real and fake logits down together: no game, G gets no signal, "
                  "the samples stay noise"),
    Mistake("stylegan.py", "G's loss the saturating -softplus(D(G(z)))",
            'return {"gan": F.softplus(-fake).mean()}',
            'return {"gan": -F.softplus(fake).mean()}',
            shows="G's gradient vanishes once D wins early: G's loss flat, the samples stuck "
                  "in their first blobs"),
    Mistake("stylegan.py", "G(z) not detached in D's step",
            "fake = self.critic(self.fake.detach()).float()",
            "fake = self.critic(self.fake).float()",
            shows="D's backward frees G's graph: the G step that follows crashes with 'Trying "
                  "to backward through the graph a second time'"),
    Mistake("stylegan.py", "R1 weighted gamma, not gamma/2",
            "self.gamma / 2 * grad",
            "self.gamma * grad",
            shows="the penalty twice as strong: D smoother and slower to learn, the samples "
                  "blurrier for the same gamma"),
    Mistake("stylegan.py", "R1's gradient taken without create_graph",
            "create_graph=True)",
            "create_graph=False)",
            shows="the logged r1 has no graph to D: the penalty trains nothing, D's gradients "
                  "on the data grow and training oscillates"),
    Mistake("stylegan.py", "R1 summed over the batch instead of averaged",
            ".pow(2).flatten(1).sum(1).mean()",
            ".pow(2).flatten(1).sum(1).sum()",
            shows="the penalty grows with the batch size: at --batch-size 32 it is 32 times "
                  "gamma's, D is flattened and the samples blur"),
    Mistake("stylegan.py", "style mixing's crossover drawn from 0, not 1",
            "torch.randint(1, self.num_layers, (B,)",
            "torch.randint(0, self.num_layers, (B,)",
            shows="one 'mixed' fake in L takes w_2 at every layer: fewer fakes mixed than "
                  "--mixing says, a regulariser slightly weaker; barely visible in training"),
    Mistake("stylegan.py", "style mixing's layer test l <= crossover, off by one",
            "(l[None, :] < crossover[:, None])",
            "(l[None, :] <= crossover[:, None])",
            shows="the mixing table's rows take one more layer than --mix says: K = 1 takes "
                  "two coarse styles from the row's w, not one"),
    Mistake("stylegan.py", "style mixing applied to a fraction 1 - mixing of the fakes",
            "torch.rand(B, device=device) < self.mixing",
            "torch.rand(B, device=device) > self.mixing",
            shows="--mixing 0.9 mixes 10% of the fakes and --mixing 0 mixes them all: the "
                  "regulariser the paper measures (Table 2) at the strength not asked for"),
    Mistake("stylegan.py", "the mixing table's rows and columns swapped",
            "w[i // cols], w[rows + i % cols]",
            "w[i % cols], w[rows + i // cols]",
            shows="sample.py --mix draws the table transposed: each column shares the coarse "
                  "styles, against the paper's Fig. 3"),
    Mistake("stylegan.py", "truncation towards w = 0, not w_avg",
            "return w_avg + psi * (w - w_avg)",
            "return psi * w",
            shows="--psi 0.7 pulls every sample towards the image of w = 0, not the average "
                  "image: samples off-colour and odd, psi = 0 not the mean face"),
    Mistake("stylegan.py", "w_avg moved by beta, not 1 - beta, towards the batch's mean w",
            "w1.float().mean(0), 1 - self.w_avg_beta)",
            "w1.float().mean(0), self.w_avg_beta)",
            shows="w_avg is the last batch's mean w, not the long average: truncated samples "
                  "change from one checkpoint to the next"),
]
