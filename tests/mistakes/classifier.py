"""support/classifier.py's mistakes: the training blur, its loss, and the modes it is scored
in."""
from tests.mistakes import Mistake

F = "support/classifier.py"
T = "tests/test_evaluate.py"

MISTAKES = [
    Mistake(F, "a loaded classifier left in training mode",
            "return net.eval(), ck",
            "return net, ck",
            tests=T,
            shows="batch norm uses each batch's statistics: FD, IS and the accuracy change with "
                  "the batch size"),
    Mistake(F, "the held-out images scored with the network still in training mode",
            "    net.eval()\n    if len(x) == 0:",
            "    if len(x) == 0:",
            tests=T,
            shows="the held-out accuracy depends on the held-out batch, and scoring it moves the "
                  "batch norm's running statistics"),
    Mistake(F, "the held-out accuracy counting the least likely class as the prediction",
            "return float((out.argmax(1) == y).float().mean())",
            "return float((out.argmin(1) == y).float().mean())",
            tests=T,
            shows="a classifier that is always right reports 0 held-out accuracy"),
    Mistake(F, "the loss computed on the features instead of the head's logits",
            "loss = objective(net(xb)[1], y[idx])",
            "loss = objective(net(xb)[0], y[idx])",
            tests=T,
            shows="the head is never trained: held-out accuracy at chance, the conditional "
                  "accuracy meaningless"),
    Mistake(F, "the blur window not normalised to sum 1",
            "w = np.outer(g, g) / np.outer(g, g).sum()",
            "w = np.outer(g, g)",
            tests=T,
            shows="the 'blurred' training images are 14 times too bright: the classifier learns "
                  "on images unlike any sample"),
    Mistake(F, "the blur's Gaussian with exp(-i^2 / sigma^2), the 2 dropped",
            "/ (2 * 1.5**2))",
            "/ (1.5**2))",
            tests=T,
            shows="a narrower blur than SSIM's window: samples blurrier than the training "
                  "augmentation are misnamed"),
]
