"""The bottom layer: typed settings, logging, metrics and fault points.

Imports no other project package, so every layer above may use it.
"""
