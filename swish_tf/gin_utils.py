"""Gin parsing shared by the entry points and the search workers."""

import os
from typing import Sequence

import gin

# The repository root: Gin files include each other by paths relative to it.
REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GinConfigError(ValueError):
    """A Gin file or binding is invalid."""


def resolve_gin_file(path: str) -> str:
    """Return the absolute path of a Gin file given relative to the working directory or to
    the repository root.

    Raises:
        GinConfigError: the file is in neither place.
    """
    for candidate in (path, os.path.join(REPOSITORY_ROOT, path)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise GinConfigError(f"Gin file {path!r} not found (looked in the working directory "
                         f"{os.getcwd()} and in {REPOSITORY_ROOT}).")


def parse_gin(files: Sequence[str], bindings: Sequence[str]) -> None:
    """Parse Gin files, then bindings; unknown names are errors.

    Parsing runs with the repository root as working directory, because `include` lines name
    files relative to it and gin-config 0.5 resolves them against the working directory only.

    Raises:
        GinConfigError: a file is missing or a binding names an unknown configurable or
            parameter; the message names the file or binding.
    """
    resolved = [resolve_gin_file(path) for path in files]
    previous = os.getcwd()
    os.chdir(REPOSITORY_ROOT)
    try:
        gin.parse_config_files_and_bindings(resolved, list(bindings), skip_unknown=False)
    except (ValueError, KeyError, TypeError, ImportError, SyntaxError) as error:
        raise GinConfigError(
            f"Invalid Gin configuration ({error}). Check the configurable and parameter names "
            f"in --gin_file={list(files)} and --gin_param={list(bindings)}.") from error
    finally:
        os.chdir(previous)
