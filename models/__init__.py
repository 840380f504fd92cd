"""Models of RANomaly: detectors, forecaster, root cause, export to ONNX, metrics and evaluation.

Training code uses torch; `models.artifact` (reading and checking exported artifacts) is torch-free and
is the only module the xApp imports.
"""
