"""Demonstration datasets in LIBERO's HDF5 layout."""

from smoothvla.data.hdf5 import Demo, DemoWriter, demo_names, file_attrs, iter_demos, read_demo

__all__ = ["Demo", "DemoWriter", "demo_names", "file_attrs", "iter_demos", "read_demo"]
