"""Train a model: `python train.py --model dense|cnn|gan [--help for every flag]`.

The same as `python -m mnist_pl train ...`; this file only forwards to mnist_pl's CLI.
"""

import sys

from mnist_pl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
