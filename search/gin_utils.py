"""Gin parsing shared by the entry points and the search workers."""

import os
from typing import Sequence

import gin

# The repository root, so that `include 'gin_configs/...'` resolves from any working directory.
_REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_search_path_added = False


class GinConfigError(ValueError):
    """A Gin file or binding is invalid."""


def parse_gin(files: Sequence[str], bindings: Sequence[str]) -> None:
    """Parse Gin files, then bindings; unknown names are errors.

    Raises:
        GinConfigError: a file is missing or a binding names an unknown configurable or
            parameter; the message names the file or binding.
    """
    global _search_path_added
    if not _search_path_added:
        gin.add_config_file_search_path(_REPOSITORY_ROOT)
        _search_path_added = True
    for path in files:
        if not os.path.isfile(path) and not os.path.isfile(os.path.join(_REPOSITORY_ROOT, path)):
            raise GinConfigError(f"Gin file {path!r} not found (looked in the working directory "
                                 f"and in {_REPOSITORY_ROOT}).")
    try:
        gin.parse_config_files_and_bindings(list(files), list(bindings), skip_unknown=False)
    except (ValueError, KeyError, TypeError, ImportError, SyntaxError) as error:
        raise GinConfigError(
            f"Invalid Gin configuration ({error}). Check the configurable and parameter names "
            f"in --gin_file={list(files)} and --gin_param={list(bindings)}.") from error
