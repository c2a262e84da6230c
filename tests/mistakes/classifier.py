"""support/classifier.py's mistakes: the training loop's loss (shared with guidance.py's noisy
classifier) and the modes the classifier is scored in. The blur's window is SSIM's: its mistakes
are evaluate.py's."""
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
            "logits = out[1] if isinstance(out, tuple) else out",
            "logits = out[0] if isinstance(out, tuple) else out",
            tests=T,
            shows="the head is never trained: held-out accuracy at chance, the conditional "
                  "accuracy meaningless"),
    Mistake(F, "sets trained with cross entropy, classes with binary cross entropy",
            "F.binary_cross_entropy_with_logits if y.dim() == 2 else F.cross_entropy",
            "F.cross_entropy if y.dim() == 2 else F.binary_cross_entropy_with_logits",
            tests=T,
            shows="training class ids stops at once with a shape error, for evaluate.py's "
                  "classifier and guidance's noisy one alike"),
    Mistake(F, "one class let through: at least 1 asked for, not 2",
            "    if len(names) < 2:\n        found",
            "    if len(names) < 1:\n        found",
            tests=f"{T} tests/test_guidance.py",
            shows="a classifier of one class trains to accuracy 1.0 and guides nowhere"),
    Mistake(F, "the classes checked on all the images, the held-out ones included",
            "trained = y[torch.arange(len(y)) % 10 != 0]",
            "trained = y",
            tests=f"{T} tests/test_guidance.py",
            shows="a class whose only image is held out is never trained on; the noisy "
                  "classifier's one-image run stops on a traceback"),
    Mistake(F, "an empty class's count read as present",
            "for n, c in zip(names, per.tolist()) if c == 0]",
            "for n, c in zip(names, per.tolist()) if c < 0]",
            tests=f"{T} tests/test_guidance.py",
            shows="an empty class folder, or a lab object no image shows, becomes a class the "
                  "classifier never sees: its guidance and accuracy mean nothing"),
    Mistake(F, "the step's memory without the batch",
            "step = batch * size * size * (3 + args.width) * 4",
            "step = size * size * (3 + args.width) * 4",
            tests=f"{T} tests/test_guidance.py",
            shows="--batch-size 10^8 passes the check and fails on the allocation, a traceback"),
    Mistake(F, "a classifier's --out checked as if it were not a checkpoint",
            'writable("--out", path, kind=kind)',
            'writable("--out", path)',
            tests="tests/test_outputs.py",
            shows="evaluate.py --train-classifier DIR --out clf.pt cannot retrain into its "
                  "own classifier: refused as a checkpoint"),
]
