"""Slicer side of InnerEarSeg: MRML logic, the out-of-process job and its worker script.

Kept in a sub-package because Slicer tries to load every ``.py`` file at the top of a
scripted-module folder as a module of its own.
"""
