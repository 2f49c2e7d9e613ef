"""Reference architectures of the four studies, each a plain ``nn.Module`` factory.

Every factory takes ``num_classes``, ``in_channels`` and ``normalize`` (None/False: no input
normalisation; True: the mean/std of the model's default dataset; or a ``(mean, std)`` pair, put
first in the model as a :class:`torchtopo.data.Normalize` so that it takes images in [0, 1]).
:func:`list_models` names them and :func:`get_model` builds one by name::

    model = tt.models.get_model("mnist_cnn", normalize=True)
"""
from ._registry import get_model, list_models
from .hebbian import VGG, HaHNet, hah_cnn, vgg16_hah
from .lgn import LGNCNN, lgn_cnn
from .topographic import TopoCNN, cifar_cnn, mnist_cnn
from .v1 import vone_resnet18

__all__ = [
    "get_model",
    "list_models",
    "TopoCNN",
    "mnist_cnn",
    "cifar_cnn",
    "vone_resnet18",
    "HaHNet",
    "VGG",
    "vgg16_hah",
    "hah_cnn",
    "LGNCNN",
    "lgn_cnn",
]
