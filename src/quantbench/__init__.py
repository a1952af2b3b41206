"""quantbench: measure what quantization costs and buys on a small traffic classifier."""

__version__ = "0.1.0"
