"""Labelled image stacks of any kind (microscopy, EM, any label set; 2D or 3D): read and write
TIFF/PNG stacks and volumes, train a generic U-Net on them, segment new stacks with
Gaussian-weighted sliding windows, a classical baseline, and per-label Dice/IoU.

Separate from the inner-ear pipeline (which is tied to the four labyrinth labels and to 3D
medical volumes); it shares only the error classes and the atomic writing helpers.
"""
