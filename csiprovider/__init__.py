"""csiprovider: a Secrets Store CSI Driver provider."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("csiprovider")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

RUNTIME_NAME = "csiprovider"
API_VERSION = "v1alpha1"
