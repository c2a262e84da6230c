"""support/guidance.py's mistakes: the noisy classifier's log p, its gradient hook, the loss hook
on x0_hat and the colour loss (its training objective is classifier.py's fit, and so its mistake).
ddpm.py's side (the eps_hat term) is in tests/mistakes/ddpm.py."""
from tests.mistakes import Mistake

F = "support/guidance.py"
T = "tests/test_guidance.py"

MISTAKES = [
    Mistake(F, "the log softmax taken over the batch, not over the classes",
            "F.log_softmax(logits, 1).gather(1, y[:, None])[:, 0]",
            "F.log_softmax(logits, 0).gather(1, y[:, None])[:, 0]", tests=T,
            shows="(predicted) the gradient steers each sample against the others in its batch: "
                  "guided classes barely change, and change with the batch size"),
    Mistake(F, "a set's log p summed over the objects not asked for",
            "(F.logsigmoid(logits) * y).sum(1)",
            "(F.logsigmoid(logits) * (1 - y)).sum(1)", tests=T,
            shows="(predicted) guidance on the lab's sets draws every object but the asked ones: "
                  "the lab accuracy falls below the unguided"),
    Mistake(F, "the classifier hook's log p averaged over the batch, not summed",
            "return torch.autograd.grad(log_p(net(x, t), y).sum(), x)[0]",
            "return torch.autograd.grad(log_p(net(x, t), y).mean(), x)[0]", tests=T,
            shows="(predicted) each sample's gradient divided by the batch size: "
                  "--classifier-scale 3 acts as 3 / 256 with sample.py's batches"),
    Mistake(F, "the loss hook with x0_hat's eps held fixed (detached)",
            "x0_hat = (x - (1 - ab).sqrt() * model.eps_theta(x, t, y)) / ab.sqrt()",
            "x0_hat = (x - (1 - ab).sqrt() * model.eps_theta(x, t, y).detach()) / ab.sqrt()",
            tests=T,
            shows="(predicted) the gradient is 1 / sqrt(alpha_bar_t) times the loss's, "
                  "enormous near t = T: early steps are thrown off the data, samples saturate"),
    Mistake(F, "the loss hook's sign: +grad L, the loss climbed",
            "return -torch.autograd.grad(loss(x0_hat).sum(), x)[0]",
            "return torch.autograd.grad(loss(x0_hat).sum(), x)[0]", tests=T,
            shows="(predicted) --target-colour pushes the mean colour away from the target"),
    Mistake(F, "the colour loss without its pixel count H W",
            "return H * W * (mean - target.to(mean)).pow(2).sum(1)",
            "return (mean - target.to(mean)).pow(2).sum(1)", tests=T,
            shows="(predicted) each pixel's pull shrinks as 1 / (H W): at 64x64 the target "
                  "colour needs a scale 4,096 times larger"),
    Mistake(F, "an unconditional DDPM's classifier checked against the DDPM's classes",
            "    if K and same != (K, bool((ck.get(\"args\") or {}).get(\"labels\")), names):",
            "    if same != (K, bool((ck.get(\"args\") or {}).get(\"labels\")), names):",
            tests=T,
            shows="(predicted) a noisy classifier is refused for every unconditional DDPM"),
    Mistake(F, "the data's check left out: the data decoded and trained on as it comes",
            '    learnable(args, "--data", args.data, use["image_size"], device, drawn=True)\n',
            "", tests=T,
            shows="one class trains to accuracy 1.0; one image, or --batch-size 10^8, stops on "
                  "a traceback after decoding"),
    Mistake(F, "the noisy classifier's batch taken as at most the images, as evaluate.py's",
            "device, drawn=True)",
            "device)", tests=T,
            shows="--batch-size 10^8 of 24 images passes the check and fails on the allocation"),
]
