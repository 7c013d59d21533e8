"""mpc-credit: credit scoring across institutions with secure multi-party computation."""

__version__ = "0.1.0"
