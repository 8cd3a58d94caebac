"""The shared widget display helper, and the chapter-01 person widget, without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

W = pytest.importorskip("ipywidgets")


def test_show_in_replaces_outputs_in_order():
    from vfmatch.widgets.display import show_in

    out = W.Output()
    show_in(out, "first line", pd.DataFrame({"a": [1, 2]}))
    kinds = [o["output_type"] for o in out.outputs]
    assert kinds == ["stream", "display_data"]
    assert out.outputs[0]["text"] == "first line\n"
    assert "text/plain" in out.outputs[1]["data"] and "a" in out.outputs[1]["data"]["text/plain"]
    show_in(out, "only this")  # a redraw replaces, never appends
    assert len(out.outputs) == 1 and out.outputs[0]["text"] == "only this\n"


def test_show_in_closes_matplotlib_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vfmatch.widgets.display import show_in

    fig = plt.figure()
    out = W.Output()
    show_in(out, fig)
    assert len(out.outputs) == 1 and out.outputs[0]["output_type"] == "display_data"
    assert not plt.fignum_exists(fig.number)


def test_person_widget_shows_a_figure_and_every_clip():
    from vfmatch.widgets.population import build_person_widget

    box = build_person_widget()
    out = box.children[-1]
    assert isinstance(out, W.Output)
    audio = [o for o in out.outputs if "text/html" in o.get("data", {}) and "<audio" in o["data"]["text/html"]]
    assert len(audio) >= 1, [list(o.get("data", {})) for o in out.outputs]
    assert len(out.outputs) == len(audio) + 1  # the trait figure, then one player per clip
