import numpy as np
import pytest

from vfmatch.metaproperties import (
    DEFAULT_METAPROPERTIES,
    Metaproperty,
    create_metaproperty,
    get_metaproperty,
    list_metaproperties,
    register_metaproperty,
    unregister_metaproperty,
)


def test_every_patent_metaproperty_is_registered():
    assert set(DEFAULT_METAPROPERTIES) <= set(list_metaproperties())
    assert get_metaproperty("gender").values == ("male", "female")
    assert get_metaproperty("skin_tone").values == ("I", "II", "III", "IV", "V", "VI")
    assert get_metaproperty("ethnicity").n_values == 6


def test_age_uses_the_patents_table_1_bins():
    age = get_metaproperty("age")
    assert age.values == ("<18", "18-19", "20-24", "25-32", "33-40", "41-48", "49-56", "57-64", ">64")
    years = [5, 17.9, 18, 19.9, 20, 24, 25, 32.5, 33, 40, 41, 48, 49, 56, 57, 64.9, 65, 90]
    expected = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]
    assert age.encode(years).tolist() == expected


def test_encode_accepts_aliases_and_marks_missing():
    g = get_metaproperty("gender")
    assert g.encode(["m", "Female", "F", None, "nan"]).tolist() == [0, 1, 1, -1, -1]
    st = get_metaproperty("skin_tone")
    assert st.encode([1, "VI", "3", 6.0]).tolist() == [0, 5, 2, 5]
    with pytest.raises(ValueError, match="Fitzpatrick type must be 1-6"):
        st.encode([7])
    with pytest.raises(ValueError, match="unknown value 'Martian'"):
        get_metaproperty("ethnicity").encode(["Martian"])


def test_one_hot_and_distribution_checks():
    bmi = get_metaproperty("bmi")
    oh = bmi.one_hot([17.0, 22.0, None])
    assert oh.shape == (3, 6)
    np.testing.assert_allclose(oh.sum(axis=1), 1.0)
    assert oh[0, 0] == 1 and oh[1, 1] == 1 and oh.dtype == np.float32
    np.testing.assert_allclose(oh[2], 1 / 6)
    with pytest.raises(ValueError, match=r"expected probabilities of shape \(n, 6\)"):
        bmi.check_distribution(np.ones((2, 5)) / 5)
    with pytest.raises(ValueError, match="NaN"):
        bmi.check_distribution(np.full((1, 6), np.nan))
    with pytest.raises(ValueError, match="do not sum to 1"):
        bmi.check_distribution(np.ones((1, 6)))


def test_adding_a_metaproperty_is_one_small_class():
    @register_metaproperty
    class Height(Metaproperty):
        name = "height"
        kind = "binned"
        unit = "cm"
        bin_edges = (160, 170, 180, 190)
        values = ("<160", "160-169", "170-179", "180-189", ">=190")

    try:
        h = get_metaproperty("height")
        assert h.encode([150, 165, 185, 200]).tolist() == [0, 1, 3, 4]
        assert h.is_ordered
    finally:
        unregister_metaproperty("height")
    with pytest.raises(KeyError, match="unknown metaproperty 'height'"):
        get_metaproperty("height")


def test_registry_rejects_malformed_classes():
    class Bad(Metaproperty):
        name = "bad"
        kind = "binned"
        values = ("a", "b", "c")
        bin_edges = (1.0,)

    with pytest.raises(ValueError, match="len\\(values\\) - 1 bin_edges"):
        register_metaproperty(Bad)


def test_create_metaproperty_from_keywords():
    assert create_metaproperty("gender").values == ("male", "female")  # no attributes: the registered one
    spec = dict(kind="binned", unit="kg/m^2", column="bmi", bin_edges=(25.0,), values=("under 25", "25 or more"))
    try:
        coarse = create_metaproperty("bmi_coarse", **spec)
        assert type(coarse).__name__ == "BmiCoarse" and "bmi_coarse" in list_metaproperties()
        assert coarse.encode([20.0, 25.0, None]).tolist() == [0, 1, -1]
        assert coarse.source_column == "bmi" and coarse.is_ordered
        assert get_metaproperty("bmi_coarse").values == spec["values"]
        assert type(create_metaproperty("bmi_coarse", **spec)) is type(coarse)  # re-running the cell is harmless
        with pytest.raises(ValueError, match="already registered with other attributes"):
            create_metaproperty("bmi_coarse", **{**spec, "bin_edges": (30.0,)})
    finally:
        unregister_metaproperty("bmi_coarse")
    with pytest.raises(TypeError, match=r"unknown attribute\(s\) \['colour'\]"):
        create_metaproperty("hair", colour="red")
    with pytest.raises(ValueError, match="needs len\\(values\\) - 1 bin_edges"):
        create_metaproperty("hair", kind="binned", values=("short", "long"))
    assert "hair" not in list_metaproperties()
