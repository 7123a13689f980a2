"""pyrunc: an OCI runtime-spec compliant low-level container runtime with runc's CLI."""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
