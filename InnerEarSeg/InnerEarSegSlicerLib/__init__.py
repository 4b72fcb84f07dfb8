"""Slicer side of InnerEarSeg: MRML logic, the panel's options, the out-of-process job.

Kept in a sub-package because Slicer tries to load every ``.py`` file at the top of a
scripted-module folder as a module of its own.
"""
