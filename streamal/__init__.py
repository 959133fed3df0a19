"""streamal: streaming, online active learning for fraud review."""

__version__ = "0.1.0"
