"""The installed distribution's version, looked up once."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gooddata-flight-server")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0+unknown"
