"""support/folders.py's and support/data.py's mistakes: --resize lost on the way to a loader."""
from tests.mistakes import Mistake

T = "tests/test_data.py"

MISTAKES = [
    Mistake("support/folders.py", "a pair's halves always centre-cropped",
            "square(a, size, resize), square(b, size, resize)",
            "square(a, size), square(b, size)",
            tests=T,
            shows="pix2pix --resize squash crops its pairs anyway: the objects at the edges "
                  "are cut off"),
    Mistake("support/data.py", "CycleGAN's domains loaded without --resize",
            "a = load_folder(a, size, resize=resize)[0]",
            "a = load_folder(a, size)[0]",
            tests=T,
            shows="cyclegan --resize squash crops domain A anyway"),
]
