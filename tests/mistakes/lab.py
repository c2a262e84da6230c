"""support/lab.py's mistakes: the lab's top-k accuracy as the course's evaluator counts it, and how
the evaluator reads an image."""
from tests.mistakes import Mistake

F = "support/lab.py"

MISTAKES = [
    Mistake(F, "the standard error's residuals not weighted by the objects asked for",
            "((h - a * k) ** 2).sum()",
            "((h - a) ** 2).sum()",
            shows="the error bar of a table's accuracy 1.5x too wide when samples ask for 1-3 "
                  "objects"),
    Mistake(F, "the standard error without its 1 / sum k",
            ".sqrt() / k.sum())",
            ".sqrt() / N)",
            shows="an error bar twice the right one for the lab's 1-3 objects a sample"),
    Mistake(F, "the standard error with the variance not square-rooted",
            "(N / (N - 1) * ((h - a * k) ** 2).sum()).sqrt() / k.sum()",
            "(N / (N - 1) * ((h - a * k) ** 2).sum()) / k.sum()",
            shows="an error bar of the wrong units: far too wide on 96 samples"),
    Mistake(F, "the k lowest scores taken instead of the k highest",
            "top = scores[rows].topk(n, 1).indices",
            "top = scores[rows].topk(n, 1, largest=False).indices",
            shows="a perfect model scores 0; an untrained one scores above chance"),
    Mistake(F, "top-1 for every sample, whatever the number of objects asked for",
            "scores[rows].topk(n, 1)",
            "scores[rows].topk(1, 1)",
            shows="a sample asked for three objects can reach at most 1/3: accuracy capped near "
                  "0.5 for a perfect model"),
    Mistake(F, "the top k + 1 scores counted for a sample that asked for k objects",
            "topk(n, 1).indices",
            "topk(n + 1, 1).indices",
            shows="one extra guess per sample: accuracy inflated, a weak model passes the bar"),
    Mistake(F, "ties at the k-th place broken by argsort, not by torch.topk as the course's "
               "evaluator does",
            "scores[rows].topk(n, 1).indices",
            "scores[rows].argsort(1, descending=True)[:, :n]",
            shows="with the evaluator saturated at 1.0 the figure differs from the one the "
                  "course reports for the same images"),
    Mistake(F, "hits divided by the number of samples, not by the objects asked for",
            'return int(h.sum()) / total if total else float("nan")',
            'return int(h.sum()) / len(k) if total else float("nan")',
            shows="accuracy above 1 when samples ask for several objects"),
    Mistake(F, "every object counted as asked for (>= 0 instead of > 0)",
            "asked = torch.as_tensor(asked).cpu() > 0",
            "asked = torch.as_tensor(asked).cpu() >= 0",
            shows="k = 24 for every sample: accuracy 1.0 whatever the images"),
    Mistake(F, "the course's Normalize(0.5, 0.5) left out: the ResNet-18 reads [0, 1]",
            "self.conv1(x * 2 - 1)",
            "self.conv1(x)",
            shows="the evaluator sees washed-out images: its scores, and the accuracy, far from "
                  "the course's"),
    Mistake(F, "the samples read in [0, 255], not divided by 255",
            "x = torch.stack(x).permute(0, 3, 1, 2).float().div(255)",
            "x = torch.stack(x).permute(0, 3, 1, 2).float()",
            shows="the evaluator's input 255 times too bright: every score saturates, accuracy "
                  "near chance"),
    Mistake(F, "train.py's samples read as if in [0, 1], not [-1, 1]: (x + 1) / 2 forgotten",
            "x = ((x.float().clamp(-1, 1) + 1) * 127.5).round() / 255",
            "x = (x.float().clamp(-1, 1) * 255).round() / 255",
            shows="(predicted) the evaluator sees every sample's dark half as black: "
                  "lab_acc_test in log.jsonl well below what evaluate.py gives the same model"),
    Mistake(F, "the evaluator's features scored as its object scores",
            "accuracy(net(x.to(device))[1].float(), asked)",
            "accuracy(net(x.to(device))[0].float(), asked)",
            shows="the first --eval-every check with --lab-evaluator crashes (an index past K), "
                  "or, where the widths agree, scores noise"),
    Mistake(F, "accuracy's arguments swapped: the asked sets ranked, the scores as the sets",
            "return accuracy(net(x.to(device))[1].float(), asked)",
            "return accuracy(asked, net(x.to(device))[1].float())",
            shows="(predicted) lab_acc_test near chance for a perfect generator"),
]

S = "support/scenes.py"
MISTAKES += [
    Mistake(S, "a conditions file's object names read one index off",
            "return [[NAMES.index(n) for n in names] for names in table]",
            "return [[NAMES.index(n) - 1 for n in names] for names in table]",
            tests="tests/test_lab.py",
            shows="the 'perfect generator' draws the neighbouring colour: the ceiling the table "
                  "reports falls far below the evaluator's held-out accuracy"),
    Mistake(S, "the real scene of a set drawn from the training layout, not from the asked ids",
            "placed.append(place(np.random.default_rng([a.seed, 1, i]), np.array(ids)))",
            "placed.append(layout(np.random.default_rng([a.seed, 1, i]), set()))",
            tests="tests/test_lab.py",
            shows="random sets drawn: the ceiling row at chance"),
    Mistake(S, "the bound's comparison flipped to refuse a set that fits on paper",
            "if len(names) > MOST:",
            "if len(names) >= MOST:",
            tests="tests/test_lab.py",
            shows="a set of 16 objects, as many as fit in a grid, is refused as too many"),
    Mistake(S, "the bound computed per row of the frame, not for the whole frame",
            "MOST = int((1 + GAP) // (2 * R[0] + GAP)) ** 2",
            "MOST = int((1 + GAP) // (2 * R[0] + GAP))",
            tests="tests/test_lab.py",
            shows="sets of 5 objects or more are refused, though 8 are placed at random"),
]

MISTAKES += [
    Mistake(F, "the spread over every pair i, j, the zero diagonal and both orders included",
            "total += float(d.triu(1).sum())",
            "total += float(d.sum())",
            shows="every pair counted twice: uniform noise reads 2/3, not 1/3"),
    Mistake(F, "the spread's distance summed over pixels, not averaged",
            "d = torch.cdist(flat, flat, p=1) / flat.shape[1]",
            "d = torch.cdist(flat, flat, p=1)",
            shows="a figure that grows with the image size: 64x64 and 16x16 runs not comparable"),
    Mistake(F, "the samples of different sets compared, not of one set",
            "rows = [i for i, other in enumerate(keys) if other == key]",
            "rows = [i for i, other in enumerate(keys)]",
            shows="a collapsed generator (one image a set) reads as diverse: its sets differ"),
    Mistake(F, "the standard error of one condition kept as nan",
            '"lab_accuracy_se": None if np.isnan(se) else se,',
            '"lab_accuracy_se": se,',
            tests="tests/test_lab.py",
            shows="one condition prints '+- nan' and writes NaN, which is not JSON, to --json"),
    Mistake(F, "the spread of sets never asked for twice kept as nan",
            '"lab_spread": None if np.isnan(within) else within}',
            '"lab_spread": within}',
            tests="tests/test_lab.py",
            shows="the lab's own test.json, 32 different sets, prints a spread of nan"),
]
