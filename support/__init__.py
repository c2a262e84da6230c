"""What the commands share, kept out of the root so that the root shows the course.

cli.py        the command line's shared parts: models by name, flags, checkpoints, Ctrl-C
data.py       images in (folders, the built-in shapes, the cache) and batches on the device
scenes.py     the lab's built-in scenes (python -m support.scenes)
lab.py        the lab's file formats and its accuracy
inception.py  the Inception network of FID
bench.py      the speed benchmark (python -m support.bench)
"""
