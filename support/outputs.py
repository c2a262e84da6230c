"""Outputs that spare the user's files: the one rule of every command that writes
(spares), checked before any work. sample.py's pictures (support/pictures.py's
destination), evaluate.py's --json and classifier, the benchmark's --json, the curves, the
noisy classifier and the scenes go through it; train.py's run folder has its own lock
(support/cli.py's claim).

    python sample.py runs/srgan/ckpt.pt --input photos/ --out photos/
    error: --out would replace photos/cat.png, an input of this command: choose another --out
"""
import argparse
import os
import tempfile
import zipfile
from PIL import Image
from support.cli import Fail


def spares(flag_name, path, inputs=(), kind=None):
    """The rule: an output never replaces a file the user would lose. A file that does not
    exist yet is always fine; an existing one is refused when it is
    - a checkpoint (a file torch.save wrote: a run's ckpt.pt, a classifier), unless the
      output is a checkpoint too (kind): its writer replaces only one of its kind (a
      classifier retrained into its own file: support/classifier.py's may_write);
    - a run's log (log.jsonl);
    - an input of the command (inputs, see `named`): the same file, or a picture in a
      folder among them.
    A command writing into a folder checks each of its files, by the names they will
    have."""
    if not os.path.isfile(path):
        return
    if a_checkpoint(path) and not kind:
        what = "a checkpoint"
    elif os.path.basename(path) == "log.jsonl":
        what = "a run's log"
    elif read_by(path, inputs):
        what = "an input of this command"
    else:
        return
    raise Fail(f"{flag_name} would replace {path}, {what}: choose another {flag_name}")


def writable(flag_name, path, inputs=(), kind=None):
    """An output file, before the work: its folder can be written (found by writing there:
    a read-only folder fails here, even for root on a read-only mount), and it spares what
    the user would lose."""
    if os.path.isdir(path):
        raise Fail(f"{flag_name} {path} is a folder: name a file")
    try:
        tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(path))).close()
    except OSError as e:
        raise Fail(f"cannot write {flag_name} {path}: {e.strerror}")
    spares(flag_name, path, inputs, kind)


def named(args, *outputs):
    """The command's inputs for writable: each path its other flags name (args: argparse's
    Namespace or a dict; a list in it, each of its items) that is a file or a folder."""
    values = vars(args) if isinstance(args, argparse.Namespace) else args
    found = []
    for k, v in values.items():
        found += [p for p in (v if isinstance(v, list) else [v])
                  if k not in outputs and isinstance(p, str) and os.path.exists(p)]
    return found


def read_by(path, inputs):
    """Whether the command reads path: one of inputs (the same file, however spelled or
    linked), or a picture in a folder among them."""
    real = os.path.realpath(path)
    picture = os.path.splitext(path)[1].lower() in Image.registered_extensions()
    for p in inputs:
        if os.path.isdir(p):
            if picture and real.startswith(os.path.join(os.path.realpath(p), "")):
                return True
        elif os.path.samefile(p, path):
            return True
    return False


def a_checkpoint(path):
    """A file torch.save wrote: a zip archive holding data.pkl, or (older torch) a
    pickle."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return any(n.endswith("data.pkl") for n in z.namelist())
        with open(path, "rb") as f:
            # pickle protocol 2: torch's legacy save
            return f.read(2) == b"\x80\x02"
    # no such file, or not one to read
    except (OSError, zipfile.BadZipFile):
        return False
