"""support/processes.py's mistakes: the gradient averaging of data parallel training, the
agreement between processes, and each process's own random numbers."""
from tests.mistakes import Mistake

FILE = "support/processes.py"
TESTS = "tests/test_distributed.py"

MISTAKES = [
    Mistake(FILE, "ldm's latent moments summed over the processes, not averaged",
            "return moments / proc.world",
            "return moments",
            tests=TESTS,
            shows="under torchrun the scale is 1 / std of a doubled mean and second moment: "
                  "the latents the diffusion learns are not of unit variance"),
    Mistake(FILE, "each process keeps its own latents' moments",
            "        dist.all_reduce(moments)\n",
            "",
            tests=TESTS,
            shows="each process scales its latents by its own slice's std: the copies of the "
                  "model disagree on z and drift apart"),
    Mistake(FILE, "the gradients summed over the processes, not averaged",
            "g.copy_(f.view_as(g) / world)",
            "g.copy_(f.view_as(g))",
            tests=TESTS,
            shows="under torchrun the learning rate is multiplied by the number of processes: "
                  "a run that trains on one GPU diverges on eight"),
    Mistake(FILE, "the average added to the process's own gradient instead of replacing it",
            "        g.copy_(",
            "        g.add_(",
            tests=TESTS,
            shows="each process keeps its own half-batch's pull: the copies of the model drift "
                  "apart"),
    Mistake(FILE, "the processes agree on the smallest value, not the largest",
            "dist.ReduceOp.MAX",
            "dist.ReduceOp.MIN",
            tests=TESTS,
            shows="a Ctrl-C or a NaN seen by one process is ignored: no checkpoint, or the others "
                  "wait forever"),
    Mistake(FILE, "every process seeded alike: the rank left out of the seed",
            "torch.manual_seed(seed + 1000 * proc.rank + step)",
            "torch.manual_seed(seed + step)",
            tests=TESTS,
            shows="process 1 draws the very numbers the weights were drawn with: its noise and "
                  "flips are no longer independent"),
    Mistake(FILE, "on resume, process 0's random numbers restored in every process",
            "torch.set_rng_state(states[proc.rank][\"cpu\"])",
            "torch.set_rng_state(states[0][\"cpu\"])",
            tests=f"{TESTS} tests/test_resume.py",
            shows="after --resume both processes draw the same noise: half the batch is wasted"),
    Mistake(FILE, "on resume, processes other than 0 re-seeded rather than restored",
            "if states and proc.rank < len(states):",
            "if states and proc.rank == 0:",
            tests=f"{TESTS} tests/test_resume.py",
            shows="a resumed torchrun run drifts from the uninterrupted one (issue 30's bug)"),
    Mistake(FILE, "the checkpoint given process 0's random numbers for every process",
            "    return every\n",
            "    return [mine] * proc.world\n",
            tests=TESTS,
            shows="after --resume the processes draw alike, as above"),
]
