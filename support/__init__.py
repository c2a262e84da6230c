"""What the commands share, kept out of the root so that the root shows the course.

train.py's run       settings.py (flags and checks), processes.py (torchrun), training_data.py
                     (--data to batches), resume.py (model, optimizers, EMA, --resume),
                     preview.py (sample grids), quality.py (--eval-every KID and FD, and the
                     lab's accuracy)
the command line     cli.py: every number's declared range (the flags' types), Fail, sizes
                     that cannot fit; cli.py: models by name (MODELS, the one registration), flags
                     from a model's keywords, checkpoints, the lock on --out, Ctrl-C, progress
data                 data.py (the built-in shapes, pairs, two domains; batches on the device),
                     folders.py (folders of images, decoded once and cached), pictures.py (grids,
                     PNGs, animations)
sample.py's          translate.py (pix2pix and CycleGAN on --input images)
classifier guidance  guidance.py (the noisy classifier, python -m support.guidance, and the hook)
                     domains.py (StarGAN: each --input image to every domain)
                     upscale.py (SRGAN: each --input image upsampled 4x, beside bicubic)
                     invert.py (--invert: a GAN's latent for an image, and its edits)
evaluate.py's        features.py (what is measured), classifier.py (its small classifier),
                     inception.py (FID's Inception v3), report.py (the flags and the table)
the lab              lab.py (its file formats and accuracy), scenes.py (python -m support.scenes)
"""
