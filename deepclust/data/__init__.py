"""Input handling: arrays, tensors, image files and folders as batches of tensors."""

from deepclust.data._decode import read_image
from deepclust.data._files import ImageFolderScan, scan_image_folder
from deepclust.data._sources import (
    DEFAULT_FILE_IMAGE_SIZE,
    IMAGE_EXTENSIONS,
    DataSource,
    FileSource,
    TensorSource,
    as_source,
    list_image_files,
    open_image,
    resize_images,
)

__all__ = [
    "DEFAULT_FILE_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "FileSource",
    "DataSource",
    "ImageFolderScan",
    "TensorSource",
    "as_source",
    "list_image_files",
    "open_image",
    "read_image",
    "resize_images",
    "scan_image_folder",
]
