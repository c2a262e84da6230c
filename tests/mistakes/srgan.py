"""srgan.py's mistakes: the periodic shuffle's order, the bicubic input, the weight of l_Gen, D's
targets and its detach, the content loss on pixels, phi's layer, scale and normalisation, the
frozen phi, G's global skip, D's strides."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("srgan.py", "the periodic shuffle interleaves the sub-pixel index and the pixel "
            "index the wrong way round",
            "T.permute(0, 1, 4, 2, 5, 3)",
            "T.permute(0, 1, 2, 4, 3, 5)",
            shows="each 2x2 block of output pixels is scattered over the image: outputs look like "
                  "four tiled, shrunken copies of the image until G learns to undo it "
                  "(predicted)"),
    Mistake("srgan.py", "the low-resolution input without antialiasing",
            'mode="bicubic", antialias=True)',
            'mode="bicubic", antialias=False)',
            shows="I^LR is aliased (moire on fine stripes), unlike a real camera's: G learns to "
                  "undo that aliasing and upsamples real low-resolution photos worse "
                  "(predicted)"),
    Mistake("srgan.py", "the adversarial term without its weight 10^-3",
            '"adversarial": self.adv_weight * gen}',
            '"adversarial": gen}',
            shows="l_Gen 1000 times too strong: G chases D and drifts from the content, "
                  "textures appear that the HR image does not have (predicted)"),
    Mistake("srgan.py", "the weight of l_Gen written as 10^-2",
            "adv_weight=1e-3,",
            "adv_weight=1e-2,",
            shows="the adversarial term ten times the paper's: more hallucinated texture, PSNR "
                  "lower still (predicted)"),
    Mistake("srgan.py", "G(I^LR) not detached in D's step",
            "fake = self.D(self.fake.detach())",
            "fake = self.D(self.fake)",
            shows="D's backward frees G's graph: the G step that follows crashes with 'Trying "
                  "to backward through the graph a second time'"),
    Mistake("srgan.py", "D's target for real images is 0",
            '"real": bce(real, torch.ones_like(real))',
            '"real": bce(real, torch.zeros_like(real))',
            shows="D is taught that everything is fake: D(HR) and D(SR) both fall to 0, l_Gen "
                  "grows without limit and gives G no useful direction (predicted)"),
    Mistake("srgan.py", "G's adversarial term against the fake target (minimax sign lost)",
            "gen = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))",
            "gen = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))",
            tests="tests/test_srgan.py",
            shows="G helps D: the adversarial term pushes outputs to look more fake, adding "
                  "artefacts on top of the content loss's result (predicted)"),
    Mistake("srgan.py", "the content loss on pixels, not on features",
            "return F.mse_loss(self.phi(sr.float()), self.phi(hr.float()))",
            "return F.mse_loss(sr.float(), hr.float())",
            shows="SRGAN becomes SRGAN-MSE: outputs as smooth as SRResNet's, with a little "
                  "adversarial noise on top (predicted)"),
    Mistake("srgan.py", "VGG19's feature maps not divided by 12.75",
            "return self.features(x) / 12.75",
            "return self.features(x)",
            shows="the VGG loss 163 times the paper's, so the 10^-3 adversarial term is "
                  "negligible beside it: outputs as from SRResNet-VGG54 (predicted)"),
    Mistake("srgan.py", "VGG19 fed [0, 1] images without ImageNet's normalisation",
            "x = ((x + 1) / 2 - self.mean) / self.std",
            "x = (x + 1) / 2",
            shows="VGG19's filters see inputs off the scale they were trained on: weaker, less "
                  "perceptual features; faint colour casts in the outputs (predicted)"),
    Mistake("srgan.py", "phi read from the classifier's second block, before its third",
            "block(width, 2 * width), nn.MaxPool2d(2),      # (2w, S/4, S/4)\n"
            "                                 block(2 * width, 4 * width))",
            "block(width, 2 * width), nn.MaxPool2d(2))",
            shows="phi is the shallower, pooled second block: a content loss nearer a blurred "
                  "pixel loss, outputs smoother (predicted)"),
    Mistake("srgan.py", "phi left in training mode when train.py calls model.train()",
            "self.phi.eval()",
            "self.phi.train(mode)",
            shows="the classifier's BatchNorm normalises with each batch's statistics and "
                  "overwrites its running averages: the content loss measures the batch, not the "
                  "image, and the checkpoint's phi drifts (predicted)"),
    Mistake("srgan.py", "phi built in training mode (nn.Module's default) and never set to eval",
            "self.phi.requires_grad_(False).eval()",
            "self.phi.requires_grad_(False)",
            shows="measured (Fashion-MNIST 32px, 200 steps): phi's BatchNorm uses each batch's "
                  "statistics, the content loss ignores overall brightness, G paints the black "
                  "background grey (0.40 for 0.04): PSNR 9.6 dB against bicubic's 17.3"),
    Mistake("srgan.py", "G's skip over the residual blocks dropped",
            "h = h + self.post(self.blocks(h))",
            "h = self.post(self.blocks(h))",
            shows="the low-frequency content must pass through all 16 blocks: training starts "
                  "slower and colours drift early on (predicted)"),
    Mistake("srgan.py", "D's stride-2 convs at the wrong places (the 2nd, 4th, ... from zero)",
            "stride = 2 if i % 2 else 1",
            "stride = 2 if i % 2 == 0 else 1",
            shows="D halves three times, not four: its dense layer gets 4 times the inputs it "
                  "was built for, and the first D step crashes with a shape error"),
    Mistake("srgan.py", "--ndf let through for SRResNet, which has no D",
            'for k in ("vgg_weights", "features", "ndf",',
            'for k in ("vgg_weights", "features",',
            tests="tests/test_flags.py",
            shows="srgan --content mse --ndf 8 is accepted and has no effect"),
]
