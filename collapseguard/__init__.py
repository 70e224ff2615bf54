"""collapseguard: guard training corpora against machine-generated text and measure model collapse."""

__version__ = "0.1.0"
