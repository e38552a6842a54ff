"""SimQ-NAS: simultaneous architecture and quantization-policy search (reference reproduction)."""

__version__ = "0.1.0"
