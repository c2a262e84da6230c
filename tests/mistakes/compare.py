"""measure/compare.py's mistakes: each side's core and thread, the pinning plan, the settings both
sides share, class balance H / log K, the table's images/s and which figure is bold, the runner's
SIGTERM at the deadline. None was run against the peer: each `shows` is predicted."""
from tests.mistakes import Mistake

T = "tests/test_compare.py"

MISTAKES = [
    Mistake("measure/compare.py", "the two sides' cores swapped",
            'cores[side == "peer"]',
            'cores[side == "ours"]',
            tests=T,
            shows="(predicted) ours runs on the peer's core and the peer on ours: the table's "
                  "'ours on core A' line is false, harmless alone, but with --cores chosen to "
                  "keep one side off a busy core, that side lands on it"),
    Mistake("measure/compare.py", "class balance left as the entropy H, without the / log K",
            "return H / math.log(len(p))",
            "return H",
            tests=T,
            shows="(predicted) class balance in nats, up to log 10 = 2.30 for Fashion-MNIST: a "
                  "perfectly balanced sampler shows 2.3, not 1, and no longer reads as a fraction"),
    Mistake("measure/compare.py", "the better side taken the wrong way round (bold on the worse)",
            "better = min if c in LOWER else max",
            "better = max if c in LOWER else min",
            tests=T,
            shows="(predicted) every bold figure is the losing one: the higher FD, the fewer "
                  "steps, the lower accuracy; the table tells the opposite of the run"),
    Mistake("measure/compare.py", "images/s as steps per second, the batch dropped",
            'r["steps"] * r["batch"] / r["seconds"]',
            'r["steps"] / r["seconds"]',
            tests=T,
            shows="(predicted) images/s 64 times too small (0.9 where 56 images went through each "
                  "second), contradicting the caption's steps x batch / time"),
    Mistake("measure/compare.py", "the child not pinned: affinity left to the scheduler",
            "preexec_fn=lambda c=core: os.sched_setaffinity(0, {c}))",
            "preexec_fn=None)",
            tests=T,
            shows="(predicted) both sides roam over every core the shell allows, and on a shared "
                  "machine one side gets more CPU than the other: equal wall time is no longer "
                  "equal compute, the steps column measures luck"),
    Mistake("measure/compare.py", "OMP_NUM_THREADS=1 left out of the children's environment",
            '"OMP_NUM_THREADS": "1", ',
            "",
            tests=T,
            shows="(predicted) each side's torch starts as many threads as the machine's cores, "
                  "all fighting for the one pinned core: both train slower, unevenly, and the "
                  "table's images/s is not what one thread does"),
    Mistake("measure/compare.py", "ours trained with p_uncond 0.1 hard-coded, not --p-uncond",
            "--p-uncond {args.p_uncond}",
            "--p-uncond 0.1",
            tests=T,
            shows="(predicted) --p-uncond 0.2 reaches the peer only: the two sides train "
                  "different unconditional shares and guidance means different things on each"),
    Mistake("measure/compare.py", "the default cores the last two allowed, not the first two",
            "tuple(sorted(allowed)[:2])",
            "tuple(sorted(allowed)[-2:])",
            tests=T,
            shows="(predicted) the run lands on other cores than the help promises and the "
                  "shown taskset lines name: a user who kept the first two free collides with "
                  "the jobs they left on the others"),
    Mistake("measure/compare.py", "the entropy's minus sign dropped",
            "H = -sum(q * math.log(q)",
            "H = sum(q * math.log(q)",
            tests=T,
            shows="(predicted) class balance negative, -1 for a perfectly balanced sampler, and "
                  "the more collapsed side wins the bold"),
    Mistake("measure/compare.py", "log K over the classes seen, not the classes the classifier has",
            "math.log(len(p))",
            "math.log(np.count_nonzero(p))",
            tests=T,
            shows="(predicted) a sampler that never draws four of ten classes scores a balance "
                  "near 1 over the six it draws: mode dropping hides in the table"),
    Mistake("measure/compare.py", "a tie bolded on both sides",
            " and column.count(v) == 1",
            "",
            tests=T,
            shows="(predicted) equal figures (both balances 1.0, both recalls 0) shown bold on "
                  "both rows, as if each side won"),
    Mistake("measure/compare.py", "sampling time counted as better when higher",
            'LOWER = ("sampling s", "FD", "KID", "intra FD")',
            'LOWER = ("FD", "KID", "intra FD")',
            tests=T,
            shows="(predicted) the slower sampler is bold: the side that takes longer to draw "
                  "its samples is shown as winning the column"),
    Mistake("measure/compare.py", "SIGTERM's exit status at the deadline counted as a failure",
            "code == 0 or (stopped and code == 128 + signal.SIGTERM)",
            "code == 0",
            tests=T,
            shows="(predicted) every comparison ends after --minutes with 'ours stopped with "
                  "status 143': the train stage always fails, nothing is sampled or scored"),
    Mistake("measure/compare.py", "attention at S/2 instead of the issue's S/4",
            "--attn-res {S // 4}",
            "--attn-res {S // 2}",
            tests=T,
            shows="(predicted) ours gets attention at 14 x 14 instead of 7 x 7: not the 1.62M "
                  "U-Net the table claims, four times the attention cost, fewer steps trained"),
    Mistake("measure/compare.py", "the unconditional FD shown in the per-class FD column",
            '"intra FD": s["intra_FD"]',
            '"intra FD": s["FD"]',
            shows="the table's conditional column repeats the unconditional figure: a model "
                  "that draws the wrong classes looks as good per class as overall"),
]
