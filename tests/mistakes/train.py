"""train.py's mistakes: the step (zero_grad, backward, the gradient averaging, D then G), and the
EMA of the weights (its decay, its warm-up, its direction, its moment)."""
from tests.mistakes import Mistake

STEPS = '''    for opt, objective, prefix in groups:
        with proc.autocast:
            out_terms = objective(x, y)
        # detached: only logged
        total = sum(v for v in out_terms.values() if v.requires_grad)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if proc.world > 1:
            all_reduce_grads(params, proc.world)
        opt.step()
        nonfinite |= ~torch.isfinite(total.detach())
        terms.update({(prefix if v.requires_grad else "") + k: v.detach()
                      for k, v in out_terms.items()})
'''
EMA = '''    if ema is not None:
        update_ema(ema, model, done, ema_decay)
'''
TESTS = "tests/test_distributed.py"

MISTAKES = [
    # the EMA
    Mistake("train.py", "the EMA's decay and 1 - decay swapped",
            "p_ema.lerp_(p, 1 - decay)",
            "p_ema.lerp_(p, decay)",
            tests=TESTS,
            shows="the EMA is the latest weights, barely averaged: its samples as noisy as the "
                  "model's"),
    Mistake("train.py", "the EMA updated before the optimizer's step, not after it",
            STEPS + EMA,
            EMA + STEPS,
            tests=TESTS,
            shows="the EMA lags one step behind: invisible in a long run, wrong in the first ones"),
    Mistake("train.py", "the warm-up taken with max, not min: the larger decay",
            "min(ema_decay, (1 + done)",
            "max(ema_decay, (1 + done)",
            tests=TESTS,
            shows="no warm-up: a short DDPM run's EMA (decay 0.9999) stays at the random init, "
                  "its samples noise"),
    Mistake("train.py", "the --ema decay ignored: the warm-up's (1 + n) / (10 + n) alone",
            "decay = min(ema_decay, (1 + done) / (10 + done))",
            "decay = (1 + done) / (10 + done)",
            tests=TESTS,
            shows="--ema 0.9 averages like 0.9999 in a long run, --ema has no effect"),
    Mistake("train.py", "the warm-up counted from the step before (step, not step + 1)",
            "        update_ema(ema, model, done, ema_decay)",
            "        update_ema(ema, model, step, ema_decay)",
            tests=TESTS,
            shows="nothing visible: the first decay is 1/10 instead of 2/11"),
    Mistake("train.py", "the EMA's zip with its arguments swapped: the model pulled to the EMA",
            "zip(ema.parameters(), model.parameters())",
            "zip(model.parameters(), ema.parameters())",
            tests=TESTS,
            shows="the model barely learns: each step is undone towards the slow average"),
    Mistake("train.py", "BatchNorm's statistics copied from the EMA into the model",
            "b_ema.copy_(b)",
            "b.copy_(b_ema)",
            tests=TESTS,
            shows="the running statistics never move: eval-mode samples of a BatchNorm model "
                  "washed out"),
    # the step
    Mistake("train.py", "zero_grad after backward: the gradient cleared before the step",
            "        opt.zero_grad(set_to_none=True)\n        total.backward()\n",
            "        total.backward()\n        opt.zero_grad(set_to_none=True)\n",
            tests=TESTS,
            shows="nothing trains: the loss stays where it started"),
    Mistake("train.py", "the gradients averaged over the processes after the step, not before",
            "        if proc.world > 1:\n            all_reduce_grads(params, proc.world)\n"
            "        opt.step()\n",
            "        opt.step()\n        if proc.world > 1:\n"
            "            all_reduce_grads(params, proc.world)\n",
            tests=TESTS,
            shows="each process steps on its own half-batch: the copies of the model drift apart "
                  "under torchrun"),
    Mistake("train.py", "G's step at the first of every n_critic steps (step, not step + 1)",
            "if done % getattr(model, \"n_critic\", 1) == 0:",
            "if step % getattr(model, \"n_critic\", 1) == 0:",
            tests=TESTS,
            shows="WGAN's G steps before its critic has trained: slower start"),
    Mistake("train.py", "D's loss stepped by G's optimizer",
            "groups = [(opts[0], model.d_loss, \"D.\")]",
            "groups = [(opts[1], model.d_loss, \"D.\")]",
            tests=TESTS,
            shows="D never learns (G's optimizer has no D weights): G's loss falls, samples stay "
                  "poor"),
    Mistake("train.py", "the D steps on one batch (d_repeats) not repeated",
            'groups = [(opts[0], model.d_loss, "D.")] * getattr(model, "d_repeats", 1)',
            'groups = [(opts[0], model.d_loss, "D.")]',
            tests="tests/test_dcgan.py",
            shows="--d-repeats does nothing: the report's 3:1 ratio trains as 1:1"),
    Mistake("train.py", "G's steps counted by d_repeats, not g_steps",
            'groups += [(opts[1], model.g_loss, "G.")] * getattr(model, "g_steps", 1)',
            'groups += [(opts[1], model.g_loss, "G.")] * getattr(model, "d_repeats", 1)',
            tests="tests/test_dcgan.py",
            shows="--d-repeats 3 takes three G steps too (1:1 again, three times the work); "
                  "--g-steps does nothing"),
    Mistake("train.py", "the lab's sets not handed to the quality check",
            "quality(model, ema, batches, features, args, step, proc, lab_check)",
            "quality(model, ema, batches, features, args, step, proc)",
            tests="tests/test_lab.py",
            shows="--lab-evaluator is loaded and checked, and then never scored: log.jsonl has "
                  "KID and FD but no lab_acc_test"),
]
