"""tcptrace-py: the life of every TCP connection in a packet capture."""

__version__ = "0.1.0"
