"""The package version, read from the installed distribution's metadata."""


def version() -> str:
    """The installed distribution's version (0.0.0 when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("eqx_ffn")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"
