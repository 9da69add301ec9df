"""The installed package's version: in ``--version``, ``/health``, Consul's service meta and the
OpenAPI document."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("codegen-metrics-reducer")
except PackageNotFoundError:  # running from a source tree without installing
    VERSION = "0+unknown"
