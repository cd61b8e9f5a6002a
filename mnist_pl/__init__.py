"""mnist-pl: MNIST with PyTorch Lightning.

    from mnist_pl import MNISTDataModule, CNNClassifier
    trainer = lightning.Trainer(max_epochs=2)
    trainer.fit(CNNClassifier(), datamodule=MNISTDataModule(data_dir="data"))
"""

from .architecture import draw_graph, summarize
from .checkpoints import datamodule_for, load_classifier, load_model
from .classifier import CNNClassifier, DenseClassifier, ImageClassifier
from .config import MODELS, load_config
from .data import DATASETS, CorruptDataError, DataNotFoundError, MNISTDataModule, read_idx
from .errors import UserError
from .evaluation import Evaluation, evaluate, write_evaluation
from .gan import GAN
from .generate import load_gan
from .nets import MLP, ConvNet, DCGANDiscriminator, DCGANGenerator, Discriminator, Generator
from .plots import confusion_matrix_figure, image_grid, misclassified_figure, predictions_figure, save_figure
from .predict import Prediction, predict_files, preprocess, to_mnist_style
from .quality import Evaluator, sample_quality
from .training import build_trainer, keep_freed_memory, train

__all__ = [
    "CNNClassifier", "ConvNet", "CorruptDataError", "DATASETS", "DCGANDiscriminator", "DCGANGenerator",
    "DataNotFoundError", "DenseClassifier", "Discriminator", "Evaluation", "Evaluator", "GAN", "Generator",
    "ImageClassifier", "MLP", "MNISTDataModule", "MODELS", "Prediction", "UserError", "build_trainer",
    "confusion_matrix_figure", "datamodule_for", "draw_graph", "evaluate", "image_grid", "keep_freed_memory",
    "load_classifier", "load_config", "load_gan", "load_model", "misclassified_figure", "predict_files",
    "predictions_figure", "preprocess", "read_idx", "sample_quality", "save_figure", "summarize",
    "to_mnist_style", "train", "write_evaluation",
]
__version__ = "0.1.0"
