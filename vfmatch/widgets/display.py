"""Putting figures, tables, audio and text into an ``ipywidgets.Output``.

Every widget in the book redraws through :func:`show_in` instead of
``with out: display(...)``. The capture context routes the kernel's messages
through the front end; with no front end (nbclient in the test suite,
``jupyter-book build``) it sometimes leaves the run waiting until its timeout.
Setting the widget's ``outputs`` directly needs no front end at all.

Used by the widgets of every chapter (``book/01`` to ``book/09``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

__all__ = ["show_in", "rich_output"]


def rich_output(item) -> dict:
    """One notebook output dict (nbformat v4) for ``item``.

    A ``str`` becomes stdout text; an object with ``_repr_mimebundle_`` (a
    plotly figure) gives its own bundle -- IPython's formatter returns nothing
    for plotly figures, which display themselves, so in JupyterLab the figure
    would land outside the widget and every redraw would be lost; anything
    else is formatted by IPython's display formatter (matplotlib figures,
    DataFrames, Audio)."""
    if isinstance(item, str):
        return {"output_type": "stream", "name": "stdout", "text": item if item.endswith("\n") else item + "\n"}
    if hasattr(item, "_repr_mimebundle_") and type(item).__module__.startswith("plotly"):
        bundle = item._repr_mimebundle_()
        data, metadata = (bundle if isinstance(bundle, tuple) else (bundle, {}))
        return {"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})}
    from IPython.core.interactiveshell import InteractiveShell  # deferred: IPython comes with the notebook (the "book" extra)

    data, metadata = InteractiveShell.instance().display_formatter.format(item)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def show_in(out, *items) -> None:
    """Replace what the ``Output`` widget ``out`` shows with ``items``, in order.

    One assignment, so the front end redraws once. Matplotlib figures are
    closed after formatting so that the inline backend does not show them a
    second time at the end of the cell."""
    outputs = tuple(rich_output(item) for item in items)
    out.outputs = outputs
    for item in items:
        if type(item).__module__.startswith("matplotlib"):
            plt.close(item)
