"""The registry of embedding methods, the timm way.

``@register_embedding_method("name")`` on a class, ``create_embedding_method("name", **params)``
to make an unfitted estimator, ``list_embedding_methods()`` for the choices
(what a command line or a widget offers). A new method is a subclass of
:class:`vfmatch.embeddings.EmbeddingMethod` that implements ``batch_loss``
(see :mod:`vfmatch.embeddings.methods`), registered here.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["register_embedding_method", "create_embedding_method", "list_embedding_methods", "get_embedding_method"]

_METHODS: dict[str, type] = {}


def register_embedding_method(name: str) -> Callable[[type], type]:
    """Class decorator: register an :class:`~vfmatch.embeddings.EmbeddingMethod` under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a method name must be a non-empty string, got {name!r}")

    def wrap(cls: type) -> type:
        cls.name = name
        _METHODS[name] = cls
        return cls

    return wrap


def get_embedding_method(name: str) -> type:
    """The class registered as ``name``."""
    if name not in _METHODS:
        raise KeyError(f"unknown embedding method {name!r}; choose from {list_embedding_methods()}")
    return _METHODS[name]


def create_embedding_method(name: str, **params):
    """An unfitted estimator of method ``name`` with ``params`` (see each class's docstring)."""
    cls = get_embedding_method(name)
    known = cls.param_names()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TypeError(f"embedding method {name!r} has no parameter {unknown[0]!r}; its parameters are {sorted(known)}")
    return cls(**params)


def list_embedding_methods() -> list[str]:
    """Registered method names, in registration order."""
    return list(_METHODS)
