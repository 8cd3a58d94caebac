"""The matcher's binary classifiers: a registry of scikit-learn factories.

The matcher (:class:`vfmatch.matching.matcher.MetapropertyMatcher`) learns
P(same person | distance vector) with a binary classifier chosen by name. Each
name maps to a *factory*: a function that takes the matcher's hyper-parameters
as keywords and returns a new, unfitted scikit-learn classifier (``fit``,
``predict_proba``, ``classes_ == [0, 1]``).

=====================  ===============================  ==============================
name                   estimator                        weight of a metaproperty
=====================  ===============================  ==============================
``logistic``           ``LogisticRegression``           coefficient x std (the patent)
``gradient_boosting``  ``GradientBoostingClassifier``   signed permutation importance
``random_forest``      ``RandomForestClassifier``       signed permutation importance
=====================  ===============================  ==============================

Keywords every factory receives (it uses those it needs and ignores the rest,
hence ``**_``): ``C`` (inverse L2 strength), ``n_estimators``, ``max_depth``,
``random_state`` and ``staged``. ``staged=True`` asks for a classifier that
can be trained stage by stage (curriculum learning,
:mod:`vfmatch.matching.difficulty`): one with ``partial_fit`` (trained by SGD
epochs) or with a ``warm_start`` parameter (a tree ensemble that grows trees
per stage).

*Adding a classifier* (the timm idiom every vfmatch component follows)::

    @register_classifier("svm")
    def svm(*, C=1.0, random_state=0, **_):
        return SVC(C=C, probability=True, random_state=random_state)

It is then a choice of the matcher's ``classifier=``, of ``vfmatch run
--classifier`` and of chapter 05's dropdown (:func:`list_classifiers`). A
classifier with a ``coef_`` gets the patent's weights; any other gets
permutation importances.

Book chapter: ``book/05_distances_and_weights.ipynb``.
"""

from __future__ import annotations

from typing import Callable

from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier

__all__ = ["register_classifier", "unregister_classifier", "create_classifier", "list_classifiers"]

_CLASSIFIERS: dict[str, Callable] = {}


def register_classifier(name: str) -> Callable[[Callable], Callable]:
    """Function decorator: register a factory ``(**hyper_parameters) -> classifier`` under ``name``."""

    def wrap(factory: Callable) -> Callable:
        if name in _CLASSIFIERS:
            raise ValueError(f"a classifier named {name!r} is already registered")
        _CLASSIFIERS[name] = factory
        return factory

    return wrap


def unregister_classifier(name: str) -> None:
    """Remove a classifier (for experiments in a notebook or a test)."""
    _CLASSIFIERS.pop(name, None)


def list_classifiers() -> list[str]:
    """Names of the registered classifiers, in registration order."""
    return list(_CLASSIFIERS)


def create_classifier(name: str, **kwargs):
    """A new, unfitted classifier from the factory registered as ``name``.

    Raises ValueError for an unknown name (the message lists the known ones)."""
    if name not in _CLASSIFIERS:
        raise ValueError(f"classifier must be one of {list_classifiers()}, got {name!r}")
    return _CLASSIFIERS[name](**kwargs)


@register_classifier("logistic")
def logistic(*, C: float = 1.0, random_state: int = 0, staged: bool = False, **_):
    """Logistic regression (exact solver); staged: the same model fitted by SGD epochs, so that
    the order of the stages matters (the matcher sets SGD's ``alpha`` to match ``C``)."""
    if staged:
        return SGDClassifier(loss="log_loss", random_state=random_state)
    return LogisticRegression(C=float(C), max_iter=2000)


@register_classifier("gradient_boosting")
def gradient_boosting(*, n_estimators: int = 100, max_depth: int = 3, random_state: int = 0, staged: bool = False, **_):
    """Gradient-boosted trees; staged: ``warm_start`` adds trees stage by stage."""
    return GradientBoostingClassifier(n_estimators=int(n_estimators), max_depth=int(max_depth),
                                      random_state=random_state, warm_start=staged)


@register_classifier("random_forest")
def random_forest(*, n_estimators: int = 100, random_state: int = 0, staged: bool = False, **_):
    """A random forest (leaves of at least 10 pairs, so probabilities are not all 0 or 1);
    staged: ``warm_start`` adds trees stage by stage."""
    return RandomForestClassifier(n_estimators=int(n_estimators), min_samples_leaf=10, random_state=random_state,
                                  n_jobs=1, warm_start=staged)
