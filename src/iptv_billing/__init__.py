"""iptv-billing: verifiable billing for IPTV operators and their resellers."""

__version__ = "0.1.0"
