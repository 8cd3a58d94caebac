"""vfmatch.utils and vfmatch.fingerprints: the one implementation of each shared job."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import vfmatch
from vfmatch.fingerprints import traced_code_fingerprint
from vfmatch.utils import batches, code_fingerprint, one_hot, to_jsonable


def test_one_hot_with_unknowns_and_bad_indices():
    out = one_hot([2, -1, 0], 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0], [0, 0, 1])
    np.testing.assert_allclose(out[1], [1 / 3] * 3)  # unknown: uniform
    with pytest.raises(ValueError, match="outside"):
        one_hot([3], 3)


def test_to_jsonable_keeps_float32_short_and_drops_nan():
    doc = to_jsonable({1: np.array([[1.2, np.nan]], np.float32), "f": pd.DataFrame({"a": [np.int64(2)]}), "s": {3}})
    assert json.dumps(doc) == '{"1": [[1.2, null]], "f": [{"a": 2}], "s": [3]}'
    assert to_jsonable(np.float64(np.inf)) is None


def test_batches_cover_the_range():
    assert batches(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]


def _user_code(helper_body: str):
    """A caller and the helper it calls by global name, as a notebook cell defines them."""
    ns = {"__name__": "__main__"}
    exec(f"def helper(x):\n    return {helper_body}\n\ndef caller(x):\n    return helper(x)\n", ns)
    return ns["caller"]


def test_code_fingerprints_notice_edited_code():
    # Editing a helper that the code calls changes the caller's fingerprint.
    assert traced_code_fingerprint(_user_code("x + 1")) != traced_code_fingerprint(_user_code("x + 2"))
    assert traced_code_fingerprint(_user_code("x + 1")) == traced_code_fingerprint(_user_code("x + 1"))
    assert code_fingerprint(vfmatch.utils.one_hot) != code_fingerprint(vfmatch.utils.batches)
    assert code_fingerprint(vfmatch.utils.one_hot) == code_fingerprint(vfmatch.utils.one_hot)


def test_every_top_level_name_imports():
    for name in vfmatch.__all__:
        assert getattr(vfmatch, name) is not None


def _square_sum(x):
    import torch

    return float(torch.as_tensor(x, dtype=torch.float64).square().sum()), torch.get_num_threads()


def test_parallel_map_keeps_order_and_runs_each_call_on_one_thread(monkeypatch):
    from vfmatch.utils import parallel_map

    items = [np.arange(i, i + 5) for i in range(6)]
    expected = [(float((np.arange(i, i + 5) ** 2).sum()), 1) for i in range(6)]
    for jobs in ("1", "2"):
        monkeypatch.setenv("VFMATCH_JOBS", jobs)
        assert parallel_map(_square_sum, items, min_items=1) == expected
    monkeypatch.setenv("VFMATCH_JOBS", "two")
    with pytest.raises(ValueError, match="VFMATCH_JOBS"):
        parallel_map(_square_sum, items, min_items=1)
