"""Data sets by name, with device-resident or DataLoader pipelines: data.get(name) -> DataSet."""

from .dataset import DataNotFound, DataSet, FolderDataSet, TensorDataSet
from .registry import Spec, balanced_batch, get, names, register, spec
from .tensor_pipeline import augmentations

__all__ = ["DataNotFound", "DataSet", "FolderDataSet", "TensorDataSet", "Spec", "augmentations", "balanced_batch",
           "get", "names", "register", "spec"]
