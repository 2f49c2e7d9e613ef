"""Reference architectures of the four studies, each a plain ``nn.Module`` factory."""
from .topographic import TopoCNN, cifar_cnn, mnist_cnn

__all__ = ["TopoCNN", "mnist_cnn", "cifar_cnn"]

# --- V1 front (issue 5): vone_resnet18 ---
from .v1 import vone_resnet18  # noqa: E402

__all__ += ["vone_resnet18"]
# --- HaH (issue 6): vgg16_hah ---
from .hah import VGG, hah_cnn, vgg16_hah  # noqa: E402

__all__ += ["VGG", "vgg16_hah", "hah_cnn"]
# --- LGN (issue 7): lgn_cnn ---
from .lgn import LGNCNN, lgn_cnn  # noqa: E402

__all__ += ["LGNCNN", "lgn_cnn"]
