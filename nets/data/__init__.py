"""Image data for the CIFAR experiments of the main paper (section 4.2.1): loading, verification, conversion.

`load_dataset(spec)` turns a `--data` argument into a `Dataset` (uint8 NCHW arrays in memory);
`convert(src, dst)` writes the pickle-free HDF5 that training reads (`python -m nets.data convert`).
"""
from .base import Dataset, DataError
from .cifar import ARCHIVE_MD5, CIFAR10_MD5, CIFAR100_MD5, load_cifar_archive, load_cifar_python, md5_of
from .convert import convert, load_source
from .folder import load_image_folder, load_jpeg_npz
from .h5 import read_h5, write_h5
from .loading import load_dataset
from .toy import load_digits_dataset, make_synthetic

__all__ = ["Dataset", "DataError", "ARCHIVE_MD5", "CIFAR10_MD5", "CIFAR100_MD5", "load_cifar_archive",
           "load_cifar_python", "md5_of",
           "convert", "load_source", "load_image_folder", "load_jpeg_npz", "read_h5", "write_h5", "load_dataset",
           "load_digits_dataset", "make_synthetic"]
