"""mnist-pl: MNIST with PyTorch Lightning.

    from mnist_pl import MNISTDataModule, CNNClassifier
    trainer = lightning.Trainer(max_epochs=2)
    trainer.fit(CNNClassifier(), datamodule=MNISTDataModule(data_dir="data"))
"""

from .classifier import CNNClassifier, DenseClassifier, ImageClassifier
from .config import MODELS, load_config
from .data import DATASETS, CorruptDataError, DataNotFoundError, MNISTDataModule, read_idx
from .errors import UserError
from .gan import GAN
from .generate import load_gan
from .nets import MLP, ConvNet, DCGANDiscriminator, DCGANGenerator, Discriminator, Generator
from .quality import Evaluator, sample_quality
from .training import build_trainer, train

__all__ = [
    "CNNClassifier", "ConvNet", "CorruptDataError", "DATASETS", "DCGANDiscriminator", "DCGANGenerator",
    "DataNotFoundError", "DenseClassifier", "Discriminator", "Evaluator", "GAN", "Generator",
    "ImageClassifier", "MLP", "MNISTDataModule", "MODELS", "UserError", "build_trainer", "load_config",
    "load_gan", "read_idx", "sample_quality", "train",
]
__version__ = "0.1.0"
