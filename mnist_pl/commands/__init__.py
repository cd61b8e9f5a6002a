"""The commands of `python -m mnist_pl`, one module per thing they act on.

Each module has `add_commands(sub)`, which adds its subcommands to the parser and sets each
one's handler; cli.py builds the parser from them and runs the chosen handler. The modules
import only argparse and `flags` at the top, so that `--help` needs no torch.

- train.py: train
- data.py: download, show (data sets)
- models.py: summary, graph (a model built from its config)
- classifiers.py: evaluate, predict (a trained classifier checkpoint)
- gans.py: generate, score (a trained GAN checkpoint)
"""
