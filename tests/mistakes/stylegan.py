"""stylegan.py's mistakes: the mapping's lr multiplier, AdaIN and its styles, StyleGAN2's
modulation and demodulation, the noise inputs, the conditional mapping and projection D, growing,
the loss and R1, style mixing, truncation and w_avg. ProGAN's pieces: tests/mistakes/progan.py."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stylegan.py", "the mapping network's layers without the lr multiplier 0.01",
            "lr_mul=mapping_lr_mul), nn.LeakyReLU(0.2)]",
            "lr_mul=1.0), nn.LeakyReLU(0.2)]",
            shows="f learns as fast as g: w wanders, the styles shift under the synthesis "
                  "network each step and training is less stable (Karras et al., Sec. 2)"),
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
            "self.A.bias[:scales] = 1.0",
            "self.A.bias[scales:] = 1.0",
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
            "fake = self.logits(self.fake.detach(), y).float()",
            "fake = self.logits(self.fake, y).float()",
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
    Mistake("stylegan.py", "demodulation summed over the output channels, not the input's",
            "w1.pow(2).sum((2, 3, 4), keepdim=True)",
            "w1.pow(2).sum((1, 3, 4), keepdim=True)",
            shows="(predicted) each output channel is no longer brought to unit variance: its "
                  "scale follows the ratio of input to output widths, activations grow or "
                  "shrink layer by layer and the styles' scale leaks back in"),
    Mistake("stylegan.py", "demodulation dividing by the sum of squares, its square root missing",
            "w1 * torch.rsqrt(w1.pow(2)",
            "w1 * torch.reciprocal(w1.pow(2)",
            shows="(predicted) outputs scale as 1 / (s |w|): a large style shrinks its "
                  "features, a small one blows them up, the droplet-like blobs AdaIN caused "
                  "come back in another form"),
    Mistake("stylegan.py", "modulation without its demodulation (StyleGAN2's Eq. 3 left out)",
            "w2 = w1 * torch.rsqrt(w1.pow(2).sum((2, 3, 4), keepdim=True) + eps)",
            "w2 = w1",
            shows="(predicted) nothing normalises the features any more: their scale grows "
                  "with each layer's styles, the samples saturate to black and white"),
    Mistake("stylegan.py", "the conditional mapping network ignoring y",
            "self.embedded(self.embed, len(z), y)",
            "self.embedded(self.embed, len(z), None)",
            shows="(predicted) G draws its classes in turn whatever y asks for: --label picks "
                  "nothing, the class accuracy is chance (10%) while D still asks for y"),
    Mistake("stylegan.py", "the class embedding not normalised before joining z",
            "return pixel_norm(embed(onehot.float()))",
            "return embed(onehot.float())",
            shows="(predicted) the embedding starts 1/sqrt(K) the scale of z and D's "
                  "projection vector as small: the condition barely reaches w or D's logit, "
                  "samples ignore y for longer"),
    Mistake("stylegan.py", "the projection logit without its 1 / sqrt(c4)",
            "(h * e).sum(1) / math.sqrt(h.shape[1])",
            "(h * e).sum(1)",
            shows="(predicted) D's logits sqrt(c4) times larger: the sigmoid saturates at the "
                  "start, D wins at once and G's gradient is small"),
    Mistake("stylegan.py", "growing: each resolution's features taken after the first layer",
            "            if i % 2:",
            "            if i % 2 == 0:",
            shows="(predicted) toRGB reads the features after the upsampling conv, before the "
                  "resolution's second layer: half of each new block never reaches the image"),
    Mistake("stylegan.py", "growing: steps counted instead of images",
            "self.seen += len(self.fake)",
            "self.seen += 1",
            shows="(predicted) --fade-images and --stable-images act as step counts: the "
                  "schedule runs batch-size times slower, the run ends at 4x4 or 8x8"),
    Mistake("stylegan.py", "the growing schedule's flags let through without --progressive",
            'needs = {"fade_images": {"progressive": True}, "stable_images":',
            'needs = {"stable_images":',
            tests="tests/test_flags.py",
            shows="stylegan --fade-images 1000 trains a network of fixed size as without it"),
    Mistake("stylegan.py", "w_avg_beta's default 1 - beta: 0.005, not 0.995",
            "w_avg_beta=0.995,",
            "w_avg_beta=0.005,",
            tests="tests/test_holes.py",
            shows="w_avg is the last batch's mean w, not a long average: truncation pulls "
                  "towards a point that jumps from step to step"),
    Mistake("stylegan.py", "the mixing probability's default 0.5, not the paper's 0.9",
            "mixing=0.9,",
            "mixing=0.5,",
            tests="tests/test_holes.py",
            shows="half as many fakes mixed: adjacent styles stay more entangled, the mixing "
                  "table's columns change less cleanly"),
]
