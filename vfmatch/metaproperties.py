"""The metaproperty registry: what a voice and a face can both reveal about a person.

A *metaproperty* (patent US 12,217,549, "metadatum") is an identity characteristic
such as age or gender. Each extractor returns, for one voice clip or one face
image, a probability distribution over the metaproperty's values (the patent's
Tables 1 and 2). This module declares those values once, so that every stage
(simulator, extractors, distances, matcher, evaluation) agrees on them.

Three kinds exist:

* ``categorical`` -- unordered values (gender, ethnicity, mother tongue, accent);
* ``ordinal`` -- ordered values (Fitzpatrick skin type I-VI);
* ``binned`` -- a continuous quantity cut into ordered bins of varying width
  (age in the patent's Table 1 bins, weight in kg, BMI in the WHO classes).

Adding a metaproperty is one small class registered by name::

    @register_metaproperty
    class Height(Metaproperty):
        name = "height"
        kind = "binned"
        unit = "cm"
        bin_edges = (160, 170, 180, 190)
        values = ("<160", "160-169", "170-179", "180-189", ">=190")

or, the same without writing a class, :func:`create_metaproperty`::

    create_metaproperty("height", kind="binned", unit="cm", bin_edges=(160, 170, 180, 190),
                        values=("<160", "160-169", "170-179", "180-189", ">=190"))

As for every component of vfmatch, the registry is ``register_*`` /
``create_*`` / ``list_*``: :func:`register_metaproperty`,
:func:`create_metaproperty` (and :func:`get_metaproperty`),
:func:`list_metaproperties`.

Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

from typing import ClassVar, Iterable, Sequence

import numpy as np

from .utils import one_hot

__all__ = [
    "Metaproperty",
    "register_metaproperty",
    "create_metaproperty",
    "get_metaproperty",
    "list_metaproperties",
    "unregister_metaproperty",
    "DEFAULT_METAPROPERTIES",
    "AGE_BIN_EDGES",
    "ETHNICITIES",
    "MOTHER_TONGUES",
    "ACCENTS",
    "FITZPATRICK_TYPES",
]

# The patent's Table 1: <18, 18-19, 20-24, 25-32, 33-40, 41-48, 49-56, 57-64, >64.
# Edges are the first age (in whole years) of each bin after the first.
AGE_BIN_EDGES = (18, 20, 25, 33, 41, 49, 57, 65)
AGE_BIN_LABELS = ("<18", "18-19", "20-24", "25-32", "33-40", "41-48", "49-56", "57-64", ">64")
ETHNICITIES = ("Asian", "Black", "White", "Middle-Eastern", "Indian", "Latino-Hispanic")
FITZPATRICK_TYPES = ("I", "II", "III", "IV", "V", "VI")
MOTHER_TONGUES = ("English", "Spanish", "Portuguese", "Arabic", "Hindi", "Mandarin", "Yoruba", "Russian")
# Accent of the speaker's English (the language every simulated clip is spoken in).
ACCENTS = (
    "General American",
    "British",
    "Indian",
    "Chinese",
    "Latin American",
    "Arabic",
    "Nigerian",
    "Russian",
)


class Metaproperty:
    """One identity characteristic and the support of its distributions.

    Subclasses set the class attributes below; instances carry no state, so the
    registry holds classes and :func:`get_metaproperty` returns a fresh instance.

    Attributes
    ----------
    name : str
        Registry key, also the default column of the identities table.
    kind : {"categorical", "ordinal", "binned"}
    values : tuple of str
        Labels of the distribution's support, in order. An extractor's
        ``predict_proba`` returns an array of shape ``(n, len(values))``.
    bin_edges : tuple of float, optional
        For ``binned``: value ``x`` falls in bin ``searchsorted(bin_edges, x, "right")``,
        so bins are ``[-inf, e0), [e0, e1), ..., [e_last, inf)``.
    unit : str
        Unit of the raw quantity ("years", "kg", "kg/m^2"), empty if none.
    column : str, optional
        Column of the identities table holding the ground truth; defaults to ``name``.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "categorical"
    values: ClassVar[tuple[str, ...]] = ()
    bin_edges: ClassVar[tuple[float, ...] | None] = None
    unit: ClassVar[str] = ""
    column: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    # ------------------------------------------------------------------ basics
    @property
    def n_values(self) -> int:
        return len(self.values)

    @property
    def source_column(self) -> str:
        return self.column or self.name

    @property
    def is_ordered(self) -> bool:
        """True when the values have an order (ordinal or binned): distances such
        as the earth mover's distance then make sense."""
        return self.kind in ("ordinal", "binned")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r}, values={self.values!r})"

    # ---------------------------------------------------------------- encoding
    def encode(self, raw: Iterable | np.ndarray) -> np.ndarray:
        """Map raw ground-truth values to indices into :attr:`values`.

        Parameters
        ----------
        raw : array-like, shape (n,)
            Labels (``"female"``, ``"IV"``), integer codes already in range, or,
            for ``binned`` properties, the continuous quantity (years, kg, ...).
            Missing values (None, NaN, "") are allowed.

        Returns
        -------
        np.ndarray of int64, shape (n,)
            Index of each value, or -1 where the value is missing.

        Raises
        ------
        ValueError
            If a present value is not one of :attr:`values` (names the value).
        """
        arr = np.asarray(list(raw) if not isinstance(raw, np.ndarray) else raw, dtype=object)
        out = np.full(arr.shape[0], -1, dtype=np.int64)
        for i, v in enumerate(arr):
            if _is_missing(v):
                continue
            out[i] = self._encode_one(v)
        return out

    def _encode_one(self, v) -> int:
        if self.kind == "binned":
            try:
                x = float(v)
            except (TypeError, ValueError):
                if isinstance(v, str) and v in self.values:
                    return self.values.index(v)
                raise ValueError(f"metaproperty {self.name!r}: cannot read {v!r} as a number in {self.unit or 'units'}")
            return int(np.searchsorted(np.asarray(self.bin_edges, dtype=float), x, side="right"))
        if isinstance(v, str):
            key = self._normalise(v)
            lookup = {self._normalise(x): i for i, x in enumerate(self.values)}
            lookup.update({self._normalise(a): i for a, i in self.aliases().items()})
            if key in lookup:
                return lookup[key]
            raise ValueError(f"metaproperty {self.name!r}: unknown value {v!r}; expected one of {list(self.values)}")
        if isinstance(v, (int, np.integer)) and 0 <= int(v) < self.n_values:
            return int(v)
        raise ValueError(f"metaproperty {self.name!r}: unknown value {v!r}; expected one of {list(self.values)}")

    @staticmethod
    def _normalise(s: str) -> str:
        return s.strip().lower().replace("_", "-").replace(" ", "-")

    def aliases(self) -> dict[str, int]:
        """Extra spellings accepted by :meth:`encode` (e.g. ``"m"`` for male)."""
        return {}

    def one_hot(self, raw) -> np.ndarray:
        """Ground truth as a degenerate distribution: float32, shape ``(n, n_values)``.

        Missing values get a uniform distribution (we know nothing); the
        index -> one-hot step is :func:`vfmatch.utils.one_hot`."""
        return one_hot(self.encode(raw), self.n_values)

    def decode(self, index) -> np.ndarray:
        """Indices back to labels; ``-1`` becomes ``None``."""
        idx = np.asarray(index, dtype=np.int64)
        labels = np.asarray(self.values, dtype=object)
        out = np.where(idx >= 0, labels[np.clip(idx, 0, self.n_values - 1)], None)
        return out

    def check_distribution(self, proba: np.ndarray, *, atol: float = 1e-5, where: str = "") -> np.ndarray:
        """Validate a probability array of shape ``(n, n_values)`` and return it.

        Raises ValueError naming ``where`` if it has the wrong shape, NaNs,
        negative entries or rows that do not sum to one."""
        p = np.asarray(proba, dtype=np.float64)
        ctx = f" ({where})" if where else ""
        if p.ndim != 2 or p.shape[1] != self.n_values:
            raise ValueError(
                f"metaproperty {self.name!r}{ctx}: expected probabilities of shape (n, {self.n_values}), got {p.shape}"
            )
        if not np.all(np.isfinite(p)):
            raise ValueError(f"metaproperty {self.name!r}{ctx}: probabilities contain NaN or inf")
        if np.any(p < -atol):
            raise ValueError(f"metaproperty {self.name!r}{ctx}: negative probabilities")
        if p.shape[0] and not np.allclose(p.sum(axis=1), 1.0, atol=atol):
            raise ValueError(f"metaproperty {self.name!r}{ctx}: rows do not sum to 1")
        return p


_REGISTRY: dict[str, type[Metaproperty]] = {}


def register_metaproperty(cls: type[Metaproperty]) -> type[Metaproperty]:
    """Class decorator: add a :class:`Metaproperty` subclass to the registry by its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Metaproperty)):
        raise TypeError("register_metaproperty expects a Metaproperty subclass")
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a non-empty `name`")
    if cls.kind not in ("categorical", "ordinal", "binned"):
        raise ValueError(f"{cls.__name__}.kind must be categorical, ordinal or binned, not {cls.kind!r}")
    if len(cls.values) < 2:
        raise ValueError(f"{cls.__name__} needs at least two values")
    if cls.kind == "binned":
        if cls.bin_edges is None or len(cls.bin_edges) != len(cls.values) - 1:
            raise ValueError(f"{cls.__name__}: a binned metaproperty needs len(values) - 1 bin_edges")
        if any(b <= a for a, b in zip(cls.bin_edges, cls.bin_edges[1:])):
            raise ValueError(f"{cls.__name__}: bin_edges must increase")
    _REGISTRY[cls.name] = cls
    return cls


# What create_metaproperty may set: the class attributes of a Metaproperty.
_ATTRIBUTES = ("kind", "values", "bin_edges", "unit", "column", "description")


def create_metaproperty(name: str, **attributes) -> Metaproperty:
    """An instance of the metaproperty ``name``; with keyword attributes, define and register it first.

    ``create_metaproperty("age")`` is :func:`get_metaproperty`. With attributes
    (``kind``, ``values``, ``bin_edges``, ``unit``, ``column``, ``description``;
    see :class:`Metaproperty`) it builds the subclass a researcher would write,
    checks it as :func:`register_metaproperty` does, and registers it under
    ``name``::

        bmi = create_metaproperty("bmi_coarse", kind="binned", unit="kg/m^2", column="bmi",
                                  bin_edges=(25.0,), values=("under 25", "25 or more"))

    Running the same call twice is harmless; giving a registered name other
    attributes raises ValueError (call :func:`unregister_metaproperty` first).
    """
    if not attributes:
        return get_metaproperty(name)
    unknown = sorted(set(attributes) - set(_ATTRIBUTES))
    if unknown:
        raise TypeError(f"create_metaproperty({name!r}): unknown attribute(s) {unknown}; expected some of {list(_ATTRIBUTES)}")
    attrs = {k: tuple(v) if k in ("values", "bin_edges") and v is not None else v for k, v in attributes.items()}
    if name in _REGISTRY:
        old = _REGISTRY[name]
        if all(getattr(old, k) == attrs.get(k, getattr(Metaproperty, k)) for k in _ATTRIBUTES):
            return old()
        raise ValueError(f"metaproperty {name!r} is already registered with other attributes; call unregister_metaproperty({name!r}) first")
    # "hair_colour" -> class HairColour, as a hand-written subclass would be called.
    class_name = "".join(part.capitalize() for part in str(name).split("_")) or "Unnamed"
    cls = type(class_name, (Metaproperty,), {"name": name, **attrs, "__doc__": attrs.get("description") or f"The {name} metaproperty."})
    return register_metaproperty(cls)()


def unregister_metaproperty(name: str) -> None:
    """Remove a metaproperty from the registry (used by the book's walkthrough)."""
    _REGISTRY.pop(name, None)


def get_metaproperty(name: str | Metaproperty) -> Metaproperty:
    """Return an instance of the registered metaproperty ``name``."""
    if isinstance(name, Metaproperty):
        return name
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown metaproperty {name!r}; registered: {sorted(_REGISTRY)}") from None


def list_metaproperties() -> list[str]:
    """Names of all registered metaproperties, in registration order."""
    return list(_REGISTRY)


def _is_missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == "" or v.strip().lower() in ("nan", "none", "unknown", "na")
    try:
        return bool(np.isnan(v))
    except TypeError:
        return False


# ---------------------------------------------------------------------------
# The patent's metaproperties
# ---------------------------------------------------------------------------


@register_metaproperty
class Gender(Metaproperty):
    name = "gender"
    kind = "categorical"
    values = ("male", "female")
    description = "Gender as recorded in the dataset's metadata (the patent's Table 2)."

    def aliases(self):
        return {"m": 0, "man": 0, "f": 1, "woman": 1}


@register_metaproperty
class Age(Metaproperty):
    name = "age"
    kind = "binned"
    unit = "years"
    bin_edges = AGE_BIN_EDGES
    values = AGE_BIN_LABELS
    description = "Age in the patent's Table 1 bins."


@register_metaproperty
class SkinTone(Metaproperty):
    name = "skin_tone"
    kind = "ordinal"
    values = FITZPATRICK_TYPES
    description = "Fitzpatrick skin type, I (always burns) to VI (never burns)."

    def _encode_one(self, v) -> int:
        # Integers 1-6 are the usual way to write Fitzpatrick types in a CSV.
        if isinstance(v, (int, np.integer, float, np.floating)) and not isinstance(v, bool):
            if float(v).is_integer() and 1 <= int(v) <= 6:
                return int(v) - 1
            raise ValueError(f"metaproperty 'skin_tone': Fitzpatrick type must be 1-6 or I-VI, got {v!r}")
        if isinstance(v, str) and v.strip().isdigit():
            return self._encode_one(int(v.strip()))
        return super()._encode_one(v)


@register_metaproperty
class Ethnicity(Metaproperty):
    name = "ethnicity"
    kind = "categorical"
    values = ETHNICITIES
    description = "The six groups of FairFace-style labels used in the patent and paper 001."

    def aliases(self):
        return {"latino": 5, "hispanic": 5, "latino hispanic": 5, "middle eastern": 3, "east asian": 0, "southeast asian": 0}


@register_metaproperty
class Weight(Metaproperty):
    name = "weight"
    kind = "binned"
    unit = "kg"
    bin_edges = (50, 60, 70, 80, 90, 100, 110)
    values = ("<50", "50-59", "60-69", "70-79", "80-89", "90-99", "100-109", ">=110")
    description = "Body weight in kilograms, in 10 kg bins."


@register_metaproperty
class BMI(Metaproperty):
    name = "bmi"
    kind = "binned"
    unit = "kg/m^2"
    bin_edges = (18.5, 25.0, 30.0, 35.0, 40.0)
    values = ("underweight", "normal", "overweight", "obese I", "obese II", "obese III")
    description = "Body-mass index in the WHO classes."


@register_metaproperty
class MotherTongue(Metaproperty):
    name = "mother_tongue"
    kind = "categorical"
    values = MOTHER_TONGUES
    description = "First language."


@register_metaproperty
class Accent(Metaproperty):
    name = "accent"
    kind = "categorical"
    values = ACCENTS
    description = "Accent of the speaker's English."


# The patent's list, in the order the package reports them.
DEFAULT_METAPROPERTIES: tuple[str, ...] = (
    "gender",
    "age",
    "skin_tone",
    "ethnicity",
    "weight",
    "bmi",
    "mother_tongue",
    "accent",
)


def as_metaproperties(names: Sequence[str | Metaproperty] | None) -> list[Metaproperty]:
    """Resolve a list of names (or ``None`` for the defaults) to instances."""
    return [get_metaproperty(n) for n in (names or DEFAULT_METAPROPERTIES)]
