"""twistedspy: watch a Linux machine from any browser, curl or Prometheus."""

__version__ = "0.1.0"
