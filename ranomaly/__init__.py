"""RANomaly: anomaly detection for O-RAN radio networks. This package is the command line on top."""

__version__ = "0.1.0"
