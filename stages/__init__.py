"""The DVC stages, run as `python -m stages.<name> --<path> ...` (dvc.yaml gives every path).

Run that way, this package is imported before any stage module, and it imports `ser` before anything
loads numpy: the CPU code paths of ser/__init__.py then hold for every stage by construction, whatever
order an import sorter puts a stage's own imports in.
"""

import ser  # noqa: F401
