"""A run's curves: train.py's log.jsonl drawn against step, one panel per kind of quantity:
the loss terms (and D's outputs), KID, FD, the lab's accuracy (train.py --eval-every N
--lab-evaluator). Several runs' logs: one panel per quantity they share, one line per run.
Pillow only, so it runs wherever train.py does.

    python -m measure.curves runs/dcgan/log.jsonl --out curves.png
    python -m measure.curves runs/ddpm/log.jsonl runs/dcgan/log.jsonl --keys lab_acc_test

A panel shows each of its quantities as a coloured line, with its axes, ticks and a legend;
a quantity the log does not hold leaves its panel out. train.py writes a loss record every
--log-every steps and a quality record every --eval-every steps into the same file (a
resumed run appends to it).
"""
import argparse
import io
import itertools
import json
import math
import os
import sys
from PIL import Image, ImageDraw, ImageFont
from support.cli import COUNT, Fail, Parser, command
from support.outputs import named, writable

NOT_PLOTTED = {"step", "img_per_s", "KID_std", "eval_n"}
PANELS = ["loss terms", "KID", "FD", "lab accuracy"]
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
# a panel's margins, in pixels
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 28, 36
# the largest figure drawn (150 MB of RGB), and the largest value: beyond, a diverged run
PIXELS = 50_000_000
LARGEST = 1e300


def read_log(path):
    """log.jsonl -> its records (dicts with a step, 0 to 2^63, as train.py writes), or one
    line naming the file and line; bytes that are not UTF-8 make their line not JSON."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise Fail(f"cannot read {path}: {e.strerror} (train.py writes OUT/log.jsonl)")
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        # RecursionError: arrays nested thousands deep
        except (ValueError, RecursionError):
            raise Fail(f"{path}, line {i}, is not JSON: is it train.py's log.jsonl?")
        step = r.get("step") if isinstance(r, dict) else None
        if not isinstance(step, int) or not 0 <= step < 2**63:
            raise Fail(f"{path}, line {i}, has no step: is it train.py's log.jsonl?")
        records.append(r)
    if not records:
        raise Fail(f"{path} holds no records: train a few --log-every steps first")
    return records


def kind(key):
    """The panel a quantity of the log belongs to."""
    if key.startswith("lab_acc_"):
        return "lab accuracy"
    return key if key in ("KID", "FD") else "loss terms"


def series(records):
    """{panel: {quantity: [(step, value), ...]}}, in the order the log first names them;
    values that are not numbers (strings, lists, objects, NaN, inf), or are beyond
    +-LARGEST, are left out."""
    panels = {}
    for r in records:
        for k, v in r.items():
            # abs(NaN) <= LARGEST is False; an int of 400 digits is compared, not cast
            number = isinstance(v, (int, float)) and abs(v) <= LARGEST
            if k in NOT_PLOTTED or not number:
                continue
            panels.setdefault(kind(k), {}).setdefault(k, []).append((r["step"], float(v)))
    return {p: panels[p] for p in PANELS if p in panels}


def across(runs, keys=None):
    """{run: records} -> {quantity: {run: [(step, value), ...]}}: the quantities every run
    holds (or `keys`), each one panel with one line per run."""
    per_run = {name: {k: pts for lines in series(r).values() for k, pts in lines.items()}
               for name, r in runs.items()}
    shared = [k for k in next(iter(per_run.values()))
              if all(k in q for q in per_run.values())]
    for k in keys or []:
        missing = [name for name, q in per_run.items() if k not in q]
        if missing:
            raise Fail(f"--keys {k}: the log of {missing[0]} holds no {k}")
    return {k: {name: q[k] for name, q in per_run.items()} for k in keys or shared}


def ticks(lo, hi, n=5, least=0.0):
    """About n + 1 round values (1, 2 or 5 times a power of ten apart, at least `least`)
    covering [lo, hi]. A flat range, or one narrower than 1e-300: a band around it (about
    0: [lo - 0.5, hi + 0.5])."""
    if hi - lo < 1e-300:
        pad = 0.5 * max(abs(lo), abs(hi)) if max(abs(lo), abs(hi)) > 1e-300 else 0.5
        lo, hi = lo - pad, hi + pad
    step = max(10 ** math.floor(math.log10((hi - lo) / n)), least)
    step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= n)
    first = math.floor(lo / step) * step
    last = math.ceil(hi / step) * step
    return [first + i * step for i in range(round((last - first) / step) + 1)]


def label(v):
    """A tick's text: short, without float noise; whole numbers (steps) written out."""
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def panel(title, lines, width, height, font, xlabel="step"):
    """One panel: its quantities against step (or xlabel), with axes, ticks, a title and a
    legend."""
    im = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(im)
    steps, values = zip(*(p for pts in lines.values() for p in pts))
    # whole steps
    xs = ticks(min(steps), max(steps), least=1)
    ys = ticks(min(values), max(values))
    # the plot's box; y grows down
    x0, x1, y0, y1 = LEFT, width - RIGHT, height - BOTTOM, TOP

    def at(step, v):
        return (x0 + (step - xs[0]) / (xs[-1] - xs[0]) * (x1 - x0),
                y0 - (v - ys[0]) / (ys[-1] - ys[0]) * (y0 - y1))
    for v in ys:
        _, y = at(xs[0], v)
        d.line([(x0, y), (x1, y)], fill=(230, 230, 230))
        d.line([(x0 - 4, y), (x0, y)], fill="black")
        d.text((x0 - 6, y), label(v), fill="black", font=font, anchor="rm")
    for s in xs:
        x, _ = at(s, ys[0])
        d.line([(x, y0), (x, y0 + 4)], fill="black")
        d.text((x, y0 + 6), label(s), fill="black", font=font, anchor="ma")
    d.line([(x0, y1), (x0, y0), (x1, y0)], fill="black")
    d.text((width // 2, 6), title, fill="black", font=font, anchor="ma")
    d.text((x1, height - 4), xlabel, fill="black", font=font, anchor="rd")
    colour = dict(zip(lines, itertools.cycle(COLOURS)))
    drawn = []
    for name, pts in lines.items():
        xy = [at(s, v) for s, v in pts]
        drawn += xy
        if len(xy) > 1:
            d.line(xy, fill=colour[name], width=2)
        # few points: each one marked
        for x, y in xy if len(xy) <= 60 else []:
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour[name])
    # the legend, on the right, at the top, or at the bottom if fewer points lie there
    lx = x1 - 40 - max(font.getlength(n) for n in lines)
    h = 8 + 14 * len(lines)
    top = sum(x > lx and y < y1 + 2 + h for x, y in drawn)
    bottom = sum(x > lx and y > y0 - h for x, y in drawn)
    ly0 = y0 - h - 2 if top > bottom else y1 + 2
    d.rectangle([lx - 6, ly0, x1 - 4, ly0 + h], fill="white", outline="grey")
    for i, name in enumerate(lines):
        ly = ly0 + 4 + 14 * i
        d.line([(lx, ly + 6), (lx + 18, ly + 6)], fill=colour[name], width=3)
        d.text((lx + 24, ly), name, fill="black", font=font)
    return im


def draw(panels, width=720, height=260, xlabel="step"):
    """The panels ({title: {line: [(step, value), ...]}}) -> one image, stacked."""
    if not panels:
        raise Fail("the log holds no loss, KID, FD or accuracy to draw (no number within "
                   f"+-{LARGEST:g})")
    font = ImageFont.load_default()
    out = Image.new("RGB", (width, height * len(panels)), "white")
    for i, (title, lines) in enumerate(panels.items()):
        out.paste(panel(title, lines, width, height, font, xlabel), (0, height * i))
    return out


def run_name(log, logs):
    """A run's name in a legend: the folder its log is in, or the log's path if two share it."""
    def folder(path):
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    name = folder(log) or log
    return name if [folder(g) for g in logs].count(name) == 1 else log


def main(argv):
    p = Parser(prog="python -m measure.curves", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", nargs="+",
                   help="a run's log.jsonl (train.py writes OUT/log.jsonl); several: compared")
    p.add_argument("--keys", type=lambda v: v.split(","), metavar="K,K",
                   help="several logs: the quantities to compare. default: those all hold")
    p.add_argument("--out", default="curves.png", help="the PNG to write. default: curves.png")
    p.add_argument("--width", type=COUNT, default=720, help="pixels across. default: 720")
    p.add_argument("--height", type=COUNT, default=260, help="pixels a panel. default: 260")
    a = p.parse_args(argv)
    # never over the logs read, a checkpoint or another run's log
    writable("--out", a.out, named(a, "out"))
    # a picture Pillow writes, tried on one pixel before any work
    try:
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=Image.registered_extensions().get(
            os.path.splitext(a.out)[1].lower()))
    except (KeyError, ValueError, OSError):
        raise Fail(f"--out {a.out}: name a picture Pillow writes in colour, as curves.png")
    for log in a.log:
        if os.path.isdir(log):
            raise Fail(f"{log} is a folder: give the log.jsonl in it")
    if a.keys and len(a.log) == 1:
        raise Fail("--keys picks what several logs share: give two logs or more")
    least_w, least_h = LEFT + RIGHT + 100, TOP + BOTTOM + 60
    if a.width < least_w or a.height < least_h:
        raise Fail(f"--width {a.width} or --height {a.height} leaves no room for a plot: "
                   f"give at least {least_w} and {least_h}")
    runs = {run_name(log, a.log): read_log(log) for log in a.log}
    records = list(runs.values())
    panels = series(records[0]) if len(runs) == 1 else across(runs, a.keys)
    if a.width * a.height * len(panels) > PIXELS:
        raise Fail(f"--width {a.width} by {len(panels)} panel(s) of --height {a.height} is "
                   f"more than {PIXELS:,} pixels: give a smaller --width or --height")
    figure = draw(panels, a.width, a.height)
    # a format's own limits (WebP: 16383 pixels a side)
    try:
        figure.save(a.out)
    except (OSError, ValueError) as e:
        raise Fail(f"cannot write --out {a.out}: {e}")
    print(f"wrote {a.out}: {', '.join(panels)} from {sum(map(len, records))} records")


def cli(argv):
    """The command line: main, a mistake in the input as one line and exit status 1."""
    return command(main, argv)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
