"""Public classes carry the name of the package the user imported, in tracebacks, ``repr`` and pickles.

Python names a class by its ``__module__``: left alone, that is the private module defining it. The full package
re-exports this package's classes as the same objects (so ``except`` clauses written against either package
catch the same errors, with no translation at any boundary) and, when it is imported, claims them: a process that
imported ``aws_lambda_persistence`` sees that name, one that imported only the lite package sees
``aws_lambda_persistence_lite``. Pickles name the claiming module, which exists wherever its package is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def claim(module: str, names: Iterable[str], namespace: Mapping[str, object]) -> None:
    """Report ``module`` as the home of each class among ``names`` in ``namespace`` (a module's globals)."""
    for name in names:
        value = namespace[name]
        if isinstance(value, type):
            value.__module__ = module
