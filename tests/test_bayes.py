"""The Bayes bound (vfmatch.simulator.bayes): posteriors by hand from the tables,
the model copied from the simulator checked against its draws, the traits each
medium uses checked on its pixels and samples."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest

from vfmatch.data.population import Population
from vfmatch.matching.tables import oracle_metaproperties
from vfmatch.metaproperties import ACCENTS, ETHNICITIES, MOTHER_TONGUES, get_metaproperty
from vfmatch.simulator import bayes
from vfmatch.simulator.faces import REQUIRED_COLUMNS, render_faces
from vfmatch.simulator.traits import ETHNICITY_P, HEIGHT_OFFSET, SKIN_P, TONGUE_P, draw_identities
from vfmatch.simulator.voices import synthesize_clips


@pytest.fixture(scope="module")
def many():
    """A large draw of traits (no media): for checks against the simulator's frequencies."""
    return draw_identities(10000, seed=3)


def person(**traits) -> pd.DataFrame:
    base = dict(speaker_id="sim00000", gender="female", age=30.0, ethnicity="White", skin_tone=2, height=165.0,
                weight=60.0, bmi=22.04, mother_tongue="English", accent="General American",
                voice_latent=np.zeros(8, np.float32), face_latent=np.zeros(8, np.float32))
    base.update(traits)
    return pd.DataFrame([base])


def truth_index(ids, name):
    """The metaproperty's own encoding of the table's values (once per distinct value: it is slow)."""
    mp = get_metaproperty(name)
    distinct, inverse = np.unique(ids[mp.source_column].astype(str).to_numpy(), return_inverse=True)
    return mp.encode(distinct)[inverse.ravel()]


# ---------------------------------------------------------------------------
# Hand computations from the tables
# ---------------------------------------------------------------------------


def test_face_mother_tongue_is_the_tongue_row_of_its_ethnicity():
    for eth in ETHNICITIES:
        post = bayes.face_posteriors(person(ethnicity=eth), ["mother_tongue"])["mother_tongue"][0]
        row = np.array([TONGUE_P[eth].get(t, 0.0) for t in MOTHER_TONGUES])
        np.testing.assert_allclose(post, row / row.sum(), atol=1e-12)


def test_face_accent_marginalises_the_mother_tongue():
    # A Latino-Hispanic face: Spanish 0.65 and Portuguese 0.25 keep the Latin American
    # accent with probability 0.8; English speakers (0.1) sound General American 0.6, British 0.4.
    post = dict(zip(ACCENTS, bayes.face_posteriors(person(ethnicity="Latino-Hispanic"), ["accent"])["accent"][0]))
    assert post["Latin American"] == pytest.approx(0.9 * 0.8)
    assert post["General American"] == pytest.approx(0.9 * 0.2 + 0.1 * 0.6)
    assert post["British"] == pytest.approx(0.1 * 0.4)


@pytest.mark.parametrize("tongue, accent", [("English", "General American"), ("Spanish", "Latin American"),
                                            ("English", "British")])
def test_voice_skin_type_by_bayes_rule_over_the_tables(tongue, accent):
    """P(skin | a voice's tongue, accent, height) written out from ETHNICITY_P, TONGUE_P,
    the accent rule, the height law and SKIN_P."""
    gender, age, height = "female", 30.0, 160.0
    def p_accent(e):  # draw_identities' rule, by hand
        if tongue != "English":
            return 0.8 if accent == "Latin American" else 0.0
        if e == "Indian":
            return {"Indian": 0.6, "British": 0.4}.get(accent, 0.0)
        if e == "Black":
            return {"Nigerian": 0.4, "General American": 0.4, "British": 0.2}.get(accent, 0.0)
        return {"General American": 0.6, "British": 0.4}.get(accent, 0.0)
    weight = {}
    for e in ETHNICITIES:
        mean = 163.0 + HEIGHT_OFFSET[e]  # adult, female
        weight[e] = ETHNICITY_P[e] * TONGUE_P[e].get(tongue, 0.0) * p_accent(e) * np.exp(-0.5 * ((height - mean) / 6.5) ** 2)
    total = sum(weight.values())
    skin = sum(weight[e] / total * np.asarray(SKIN_P[e]) / sum(SKIN_P[e]) for e in ETHNICITIES)
    ids = person(gender=gender, age=age, height=height, mother_tongue=tongue, accent=accent)
    post = bayes.voice_posteriors(ids, ["skin_tone", "ethnicity"])
    np.testing.assert_allclose(post["skin_tone"][0], skin, atol=1e-12)
    np.testing.assert_allclose(post["ethnicity"][0], [weight[e] / total for e in ETHNICITIES], atol=1e-12)


def test_face_weight_integrates_the_height_law():
    # An adult White man with BMI 25: weight < 80 kg  <=>  height < 100 sqrt(79.95 / 25) cm.
    from scipy.stats import norm

    ids = person(gender="male", ethnicity="White", bmi=25.0)
    p = bayes.face_posteriors(ids, ["weight"])["weight"][0]
    law = norm(176.0 + HEIGHT_OFFSET["White"], 6.5)
    below = [law.cdf(100 * np.sqrt((edge - 0.05) / 25.0)) for edge in (50, 60, 70, 80, 90, 100, 110)]
    np.testing.assert_allclose(p, np.diff([0.0, *below, 1.0]), atol=1e-12)


def test_voice_weight_is_one_hot_away_from_an_edge_and_split_at_one():
    far = bayes.voice_posteriors(person(height=170.0, bmi=22.0), ["weight"])["weight"][0]  # 63.58 kg
    assert far[get_metaproperty("weight").values.index("60-69")] == 1.0
    # 27.66 x 1.7^2 = 79.94 kg; within one rounding step of BMI and height the drawn weight spans
    # 79.88-80.00 kg, either side of 79.95 kg, where the table's rounded weight reaches the 80 kg bin.
    near = bayes.voice_posteriors(person(height=170.0, bmi=27.66), ["weight"])["weight"][0]
    values = get_metaproperty("weight").values
    assert 0 < near[values.index("70-79")] < 1 and 0 < near[values.index("80-89")] < 1


# ---------------------------------------------------------------------------
# On a population: rows, truth, calibration in the large
# ---------------------------------------------------------------------------


def test_rows_sum_to_one_and_what_the_medium_shows_is_one_hot_on_the_truth(many):
    ids = many.iloc[:3000]
    for modality, post, shown in (("voice", bayes.voice_posteriors(ids), bayes.VOICE_TRAITS),
                                  ("face", bayes.face_posteriors(ids), bayes.FACE_TRAITS)):
        assert set(post) == set(bayes.BAYES_METAPROPERTIES)
        for name, p in post.items():
            get_metaproperty(name).check_distribution(p, where=f"{modality} {name}")
            t = truth_index(ids, name)
            on_truth = p[np.arange(len(t)), t]
            assert np.all(on_truth > 0), (modality, name)  # the truth is never ruled out
            if name in shown:
                np.testing.assert_array_equal(p, np.eye(p.shape[1])[t])
            elif (modality, name) != ("voice", "weight"):  # weight: below
                assert on_truth.mean() < 0.99, (modality, name)  # not shown: genuinely uncertain
    # A voice hears BMI and height, so weight = BMI x height^2 is known but for rounding at bin edges.
    w = bayes.voice_posteriors(ids, ["weight"])["weight"]
    assert np.mean(w.max(axis=1) == 1.0) > 0.97
    assert np.mean(w.argmax(axis=1) == truth_index(ids, "weight")) > 0.99


def test_posteriors_average_to_the_simulators_frequencies(many):
    """Calibration in the large: the mean posterior of each value equals its frequency
    among drawn people (law of total probability), within sampling error."""
    n = len(many)
    for post in (bayes.voice_posteriors(many), bayes.face_posteriors(many)):
        for name, p in post.items():
            freq = np.bincount(truth_index(many, name), minlength=p.shape[1]) / n
            se = np.sqrt(freq * (1 - freq) / n) + 1e-4
            assert np.all(np.abs(p.mean(axis=0) - freq) < 5 * se), name


def test_posteriors_are_calibrated_within_each_value(many):
    """Finer: among people given P(value) in a band, the value's frequency matches the band."""
    for modality, post in (("voice", bayes.voice_posteriors(many, ["ethnicity", "skin_tone"])),
                           ("face", bayes.face_posteriors(many, ["accent", "weight"]))):
        for name, p in post.items():
            t = truth_index(many, name)
            hit = np.zeros_like(p)
            hit[np.arange(len(t)), t] = 1
            band = np.minimum((p * 5).astype(int), 4).ravel()
            for b in range(5):
                sel = band == b
                if sel.sum() > 500:
                    gap = abs(hit.ravel()[sel].mean() - p.ravel()[sel].mean())
                    assert gap < 0.03, (modality, name, b, gap)


def test_the_copied_accent_rule_and_height_law_match_the_simulators_draws(many):
    for (tongue, eth), grp in many.groupby(["mother_tongue", "ethnicity"]):
        if len(grp) < 300:
            continue
        freq = grp["accent"].value_counts(normalize=True).reindex(ACCENTS, fill_value=0).to_numpy()
        expected = bayes.accent_given_tongue(tongue, eth)
        se = np.sqrt(expected * (1 - expected) / len(grp)) + 1e-3
        assert np.all(np.abs(freq - expected) < 5 * se), (tongue, eth)
    mean, sd = bayes.height_distribution(many["gender"], many["age"].to_numpy(float))
    e = np.array([ETHNICITIES.index(x) for x in many["ethnicity"]])
    z = (many["height"].to_numpy(float) - mean[np.arange(len(e)), e]) / sd
    for key, grp in pd.DataFrame({"z": z, "g": many["gender"], "e": many["ethnicity"]}).groupby(["g", "e"]):
        assert abs(grp["z"].mean()) < 0.1 and 0.9 < grp["z"].std() < 1.1, key
    np.testing.assert_allclose(bayes.trait_joint().sum(), 1.0)


# ---------------------------------------------------------------------------
# The traits each medium uses
# ---------------------------------------------------------------------------


def test_faces_and_voices_use_exactly_the_traits_the_bound_conditions_on():
    ids = draw_identities(3, seed=5).iloc[[0]].reset_index(drop=True)
    assert set(REQUIRED_COLUMNS) - {"speaker_id", "face_latent"} == set(bayes.FACE_TRAITS)

    def image(t):
        return render_faces(t, 1, seed=0, image_size=48)[0]

    def clip(t):
        return synthesize_clips(t, 1, seed=0, clip_seconds=(0.4, 0.4))[0][0]

    other = {"ethnicity": "Black" if ids.at[0, "ethnicity"] != "Black" else "Asian",
             "skin_tone": 1 + ids.at[0, "skin_tone"] % 6, "height": ids.at[0, "height"] + 20, "weight": 150.0,
             "mother_tongue": "Hindi" if ids.at[0, "mother_tongue"] != "Hindi" else "Arabic",
             "accent": "Russian" if ids.at[0, "accent"] != "Russian" else "Chinese",
             "gender": "male" if ids.at[0, "gender"] == "female" else "female", "age": ids.at[0, "age"] + 20,
             "bmi": ids.at[0, "bmi"] + 6}
    face, voice = image(ids), clip(ids)
    for trait, value in other.items():
        changed = ids.copy()
        changed.at[0, trait] = value
        assert np.array_equal(image(changed), face) == (trait not in bayes.FACE_TRAITS), ("face", trait)
        assert np.array_equal(clip(changed), voice) == (trait not in bayes.VOICE_TRAITS), ("voice", trait)


# ---------------------------------------------------------------------------
# The table format of the matcher
# ---------------------------------------------------------------------------


def metadata_population(n=40, per_identity=3, seed=0):
    ids = draw_identities(n, seed=seed)
    rows = [s for s in ids["speaker_id"] for _ in range(per_identity)]
    faces = rows[::-1]  # a different row order on the face side
    return Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": faces}))


def test_bayes_tables_have_the_oracle_format_and_agree_where_the_medium_shows():
    pop = metadata_population()
    voice, face = bayes.bayes_metaproperties(pop)
    o_voice, o_face = oracle_metaproperties(pop)
    assert list(voice) == list(o_voice) and list(face) == list(o_face)
    for name in voice:
        assert voice[name].shape == o_voice[name].shape and face[name].shape == o_face[name].shape
        assert voice[name].dtype == np.float64
    for name in bayes.VOICE_TRAITS:
        if name in voice:
            np.testing.assert_array_equal(voice[name], o_voice[name])
    for name in bayes.FACE_TRAITS:
        np.testing.assert_array_equal(face[name], o_face[name])
    # rows follow the items: each face row is its person's face posterior
    per_person = bayes.face_posteriors(pop.identities, ["accent"])["accent"]
    row = {s: i for i, s in enumerate(pop.identities["speaker_id"])}
    np.testing.assert_array_equal(face["accent"], per_person[[row[s] for s in pop.face_speakers]])
    assert list(bayes.bayes_metaproperties(pop, ["gender", "accent"])[0]) == ["gender", "accent"]


def test_clear_errors():
    ids = draw_identities(4, seed=0)
    with pytest.raises(ValueError, match="height"):
        bayes.voice_posteriors(ids.drop(columns=["height"]))
    with pytest.raises(ValueError, match="ethnicity"):
        bayes.face_posteriors(ids.assign(ethnicity="Martian"))
    with pytest.raises(KeyError, match="unknown metaproperty"):
        bayes.voice_posteriors(ids, ["shoe_size"])
    with pytest.raises(ValueError, match="missing"):
        bayes.face_posteriors(ids.assign(bmi=np.nan))


# ---------------------------------------------------------------------------
# The bound bounds (quick pipeline)
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_bayes_bound_lies_between_the_extracted_matcher_and_one():
    from vfmatch.job.prepare import RunConfig, fit_matcher, make_role_pairs, new_matcher, prepare
    from vfmatch.job.run import evaluate_matcher

    config = RunConfig(quick=True, seed=0, progress=False)
    data = prepare(config)
    pairs = make_role_pairs(data, config.seed)
    tables = {r: bayes.bayes_metaproperties(data.parts[r], data.metaproperties) for r in ("matcher", "threshold", "test")}
    extracted = fit_matcher(new_matcher(config), data, pairs)
    bound = new_matcher(config).fit_pairs(*tables["matcher"], pairs["matcher"]).calibrate(*tables["threshold"], pairs["threshold"])
    test = data.parts["test"]
    score = {name: evaluate_matcher(m, *t, test, pairs["test"], config.seed)[0]["identification_1to2_vf"]
             for name, m, t in (("extracted", extracted, data.tables("test")), ("bayes", bound, tables["test"]))}
    assert score["extracted"] < score["bayes"] < 1.0, score
