"""InnerEarSegLib: inner-ear (labyrinth) segmentation of temporal-bone MRI and CT.

Pure Python (torch, monai, SimpleITK, numpy, vtk); never imports slicer or qt.
"""
__version__ = "0.1.0"
