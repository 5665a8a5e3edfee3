"""`--download`: fetch the official CIFAR archives through torchvision (the optional `cuda` extra).

torchvision is imported inside the function only: it does not import with the CPU build of torch.
"""
from __future__ import annotations

import os

from kolmogorov._checks import check_choice
from .base import DataError

DOWNLOADABLE = ("cifar10", "cifar100")


def download_cifar(name: str, root: str | os.PathLike) -> str:
    """Download and unpack CIFAR-10/100 into `root` with torchvision; return the python-format directory.

    torchvision checks the archive's official md5; load_cifar_python then checks every unpacked file again.
    """
    check_choice("name", name, DOWNLOADABLE)
    try:
        import torchvision.datasets as tvd
    except Exception as exc:  # ImportError, or the CPU-build operator errors torchvision raises on import
        raise DataError(f"--download needs torchvision (pip install 'resnet-sde[cuda]'), which does not import "
                        f"here ({type(exc).__name__})") from None
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    root = os.fspath(root)
    try:
        cls(root=root, train=True, download=True)
    except Exception as exc:  # network or checksum failures
        raise DataError(f"--download {name}: {type(exc).__name__}: {exc}") from None
    return os.path.join(root, "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
