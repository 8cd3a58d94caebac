"""Learned embeddings, part 1: the losses against hand computations, Algorithm 1's
weights, feature tables from files and their input checks (issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from vfmatch.embeddings import (
    FeatureTable,
    IdentityReweighting,
    batch_weights,
    check_paired,
    explicit_alignment_loss,
    face_distance_weights,
    implicit_alignment_loss,
    info_nce_loss,
    keep_paired,
    load_feature_table,
    path_key,
    triplet_loss,
    weighted_triplet_loss,
)


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------------------
# Seed 001: triplet and face-distance-weighted triplet (eq. 4)
# ---------------------------------------------------------------------------

# Two triplets on unit vectors. Row 0: the voice sits on the negative face,
# ||v - f_pos||^2 = 2, ||v - f_neg||^2 = 0, so the hinge is 2 + beta.
# Row 1: ||v - f_pos||^2 = 2 - 2 * 0.6 = 0.8, ||v - f_neg||^2 = 2 - 2 * 0.8 = 0.4,
# hinge 0.8 - 0.4 + beta.
V = t([[1.0, 0.0], [1.0, 0.0]])
F_POS = t([[0.0, 1.0], [0.6, 0.8]])
F_NEG = t([[1.0, 0.0], [0.8, 0.6]])


def test_triplet_loss_by_hand():
    beta = 0.2
    per = triplet_loss(V, F_POS, F_NEG, margin=beta, reduction="none")
    assert per.tolist() == pytest.approx([2.0 + beta, 0.4 + beta], abs=1e-6)
    assert float(triplet_loss(V, F_POS, F_NEG, margin=beta)) == pytest.approx((2.2 + 0.6) / 2, abs=1e-6)
    # A satisfied triplet costs nothing: swap positive and negative of row 1.
    assert float(triplet_loss(V[1:], F_NEG[1:], F_POS[1:], margin=0.2)) == 0.0


def test_face_distance_damping_factors_by_hand():
    # The positive's and the negative's faces under F: orthogonal (cosine distance 1)
    # and identical (distance 0). With centre 0.5 and scale 0.25 the sigmoid gives
    # sigmoid(+2) and sigmoid(-2).
    ref_pos = t([[1.0, 0.0], [0.0, 3.0]])
    ref_neg = t([[0.0, 2.0], [0.0, 1.0]])
    w = face_distance_weights(ref_pos, ref_neg, center=0.5, scale=0.25)
    assert w.tolist() == pytest.approx([sigmoid(2.0), sigmoid(-2.0)], abs=1e-6)
    assert face_distance_weights(ref_pos, ref_neg, center=0.5, scale=0.25, damping="none").tolist() == [1.0, 1.0]
    # Eq. (4): each hinge times its factor (averaged over the K = 2 triplets).
    loss = weighted_triplet_loss(V, F_POS, F_NEG, ref_pos, ref_neg, margin=0.2, center=0.5, scale=0.25)
    assert float(loss) == pytest.approx((2.2 * sigmoid(2.0) + 0.6 * sigmoid(-2.0)) / 2, abs=1e-6)
    # The negative that looks like the positive (row 1) is damped more.
    assert w[1] < w[0]
    with pytest.raises(ValueError, match="scale"):
        face_distance_weights(ref_pos, ref_neg, center=0.5, scale=0.0)


# ---------------------------------------------------------------------------
# Seed 003: implicit (eq. 1-3, 8-9) and explicit (eq. 4, 10) alignment
# ---------------------------------------------------------------------------


def _ce(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1)))


def test_implicit_alignment_by_hand():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 3))  # D = 4, M = 3 identities: one classifier for both modalities
    x, v = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    y = np.array([0, 2, 1])
    per = _ce(x @ W, y) + _ce(v @ W, y)  # eq. (1) + eq. (2) per sample
    got = implicit_alignment_loss(t(x @ W), t(v @ W), torch.tensor(y))
    assert float(got) == pytest.approx(per.mean(), rel=1e-5)  # eq. (3)
    # Eq. (8)-(9): identity weights s = (1, 0, 2) -> s_hat = s_y / sum over the batch.
    s = torch.tensor([1.0, 0.0, 2.0])
    w = batch_weights(s, torch.tensor(y))
    assert w.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    got_w = implicit_alignment_loss(t(x @ W), t(v @ W), torch.tensor(y), sample_weights=w)
    assert float(got_w) == pytest.approx(per[0] / 3 + 2 * per[1] / 3, rel=1e-5)


def test_explicit_alignment_by_hand():
    rng = np.random.default_rng(1)
    v, x = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    y = np.array([0, 1, 2, 1])  # rows 1 and 3 share an identity: not negatives of each other
    m = 3.4
    xh = x / np.linalg.norm(x, axis=1, keepdims=True)
    vh = v / np.linalg.norm(v, axis=1, keepdims=True)
    terms = []
    for i in range(4):
        neg = [j for j in range(4) if y[j] != y[i]]
        a = math.log(m + sum(math.exp(v[i] @ xh[j]) for j in neg) / math.exp(v[i] @ xh[i]))
        b = math.log(m + sum(math.exp(x[i] @ vh[j]) for j in neg) / math.exp(x[i] @ vh[i]))
        terms.append(a + b)
    got = explicit_alignment_loss(t(v), t(x), torch.tensor(y), m=m, reduction="none")
    assert got.tolist() == pytest.approx(terms, rel=1e-5)
    assert float(explicit_alignment_loss(t(v), t(x), torch.tensor(y), m=m)) == pytest.approx(np.mean(terms), rel=1e-5)
    # A batch of one identity has no negative: each term is log(m).
    one = explicit_alignment_loss(t(v[:1]), t(x[:1]), torch.tensor([0]), m=m, reduction="none")
    assert float(one) == pytest.approx(2 * math.log(m))


def test_info_nce_matches_the_direct_formula():
    rng = np.random.default_rng(2)
    v, f = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    tau = 0.2
    cos = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (f / np.linalg.norm(f, axis=1, keepdims=True)).T
    logits = cos / tau
    expected = 0.5 * (_ce(logits, np.arange(3)).mean() + _ce(logits.T, np.arange(3)).mean())
    assert float(info_nce_loss(t(v), t(f), temperature=tau)) == pytest.approx(expected, rel=1e-5)
    # With labels, a second item of the same identity is not a negative.
    y = torch.tensor([0, 1, 0])
    masked = info_nce_loss(t(v), t(f), temperature=tau, y=y, reduction="none")
    keep = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    L = np.where(keep, logits, -np.inf)
    row = -(np.diag(L) - np.log(np.exp(L).sum(1)))
    col = -(np.diag(L) - np.log(np.exp(L).sum(0)))
    assert masked.tolist() == pytest.approx((0.5 * (row + col)).tolist(), rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(t(v), t(f), temperature=0)


# ---------------------------------------------------------------------------
# Seed 003 Algorithm 1: hardness (eq. 6) and weights (eq. 7)
# ---------------------------------------------------------------------------


def test_algorithm1_weights_by_hand():
    # Five identities; H^0 = (0.1, 0.5, 0.2, 0.9, 0.4). init_fraction 0.4 -> the two
    # easiest (0 and 2) start at weight 1.
    rw = IdentityReweighting([0.1, 0.5, 0.2, 0.9, 0.4], beta=0.5, alpha=0.5, k=1, init_fraction=0.4, keep=0.8)
    assert rw.weights.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert not rw.done
    # Eq. (6) with beta 0.5: identity 1 measured at loss 0.1 -> H_1 = 0.5 * 0.5 + 0.5 * 0.1 = 0.3;
    # identity 4 twice in the batch, losses 0.6 and 0.8 -> mean 0.7 -> H_4 = 0.5 * 0.4 + 0.5 * 0.7 = 0.55.
    rw.observe([1, 4, 4], [0.1, 0.6, 0.8])
    assert rw.hardness.tolist() == pytest.approx([0.1, 0.3, 0.2, 0.9, 0.55])
    # Eq. (7), k = 1: the easiest identity still at 0 is 1 (H 0.3) -> weight 1; others x alpha.
    rw.update()
    assert rw.weights.tolist() == pytest.approx([0.5, 1.0, 0.5, 0.0, 0.0])
    assert not rw.done  # 3 of 5 kept; R_keep * M = 4
    rw.update()  # next: identity 4 (H 0.55) before identity 3 (H 0.9)
    assert rw.weights.tolist() == pytest.approx([0.25, 0.5, 0.25, 0.0, 1.0])
    assert rw.done and rw.n_updates == 2
    # The hardest identity is left out with weight 0: the "personalized" one.
    assert rw.left_out().tolist() == [3]
    # Its samples get no weight in the loss (eq. 8-10).
    assert batch_weights(torch.tensor(rw.weights), torch.tensor([3, 4])).tolist() == [0.0, 1.0]


def test_algorithm1_rejects_bad_settings():
    with pytest.raises(ValueError, match="beta"):
        IdentityReweighting([0.1, 0.2], beta=1.0)
    with pytest.raises(ValueError, match="finite"):
        IdentityReweighting([0.1, float("nan")])
    rw = IdentityReweighting([0.1, 0.2])
    with pytest.raises(ValueError, match="identity codes"):
        rw.observe([5], [0.1])


# ---------------------------------------------------------------------------
# Feature tables: formats and bad input
# ---------------------------------------------------------------------------


def test_bad_features_are_clear_errors():
    X = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"NaN or infinite values, first at row 1 \(label 'b'"):
        FeatureTable(np.array([[0.0, 1.0], [np.nan, 1.0], [1.0, 1.0]]), ["a", "b", "c"], modality="voice")
    with pytest.raises(ValueError, match=r"no identity label \(rows \[1\]\)"):
        FeatureTable(X, ["a", None, "c"], modality="face")
    with pytest.raises(ValueError, match="no identity label"):
        FeatureTable(X, ["a", "", "c"], modality="face")
    with pytest.raises(ValueError, match="3 feature rows but 2 labels"):
        FeatureTable(X, ["a", "b"])
    with pytest.raises(ValueError, match="0 columns"):
        FeatureTable(np.zeros((3, 0)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="2-D"):
        FeatureTable(np.zeros(3), ["a", "b", "c"])


def test_identity_with_a_single_modality_is_an_error():
    voice = FeatureTable(np.ones((3, 2)), ["a", "b", "c"], modality="voice")
    face = FeatureTable(np.ones((2, 2)), ["a", "b"], modality="face")
    with pytest.raises(ValueError, match="identity 'c' .* has voice features but no face features"):
        check_paired(voice, face)
    with pytest.raises(ValueError, match="identity 'b' .* has face features but no voice features"):
        check_paired(FeatureTable(np.ones((1, 2)), ["a"], modality="voice"), face)
    v2, f2 = keep_paired(voice, face)
    assert check_paired(v2, f2).tolist() == ["a", "b"]


def test_path_keys():
    assert path_key("id10003/E_6MjfYr0sQ/00019.wav") == "id10003/E_6MjfYr0sQ/00019"
    assert path_key("/id10003\\E_6MjfYr0sQ\\00019.npy") == "id10003/E_6MjfYr0sQ/00019"
    assert path_key("./Aamir_Khan/00000558.jpg") == "Aamir_Khan/00000558"


def test_feature_formats_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3)).astype(np.float32)
    labels = np.array(["id1", "id1", "id2", "id2"])
    paths = np.array([f"{s}/clip/{i:05d}.wav" for i, s in enumerate(labels)])
    # A folder of .npy files, one per item, in identity folders.
    for x, p in zip(X, paths):
        f = tmp_path / "npy" / (p[:-4] + ".npy")
        f.parent.mkdir(parents=True, exist_ok=True)
        np.save(f, x)
    tab = load_feature_table(tmp_path / "npy", "voice")
    order = np.argsort([path_key(p) for p in paths])
    assert np.array_equal(tab.features, X[order]) and tab.labels.tolist() == labels[order].tolist()
    assert tab.rows_of(paths).tolist() == np.argsort(order).tolist()  # .wav paths find the .npy items
    # .npz
    np.savez(tmp_path / "f.npz", features=X, labels=labels, paths=paths)
    tab = load_feature_table(tmp_path / "f.npz", "voice")
    assert np.array_equal(tab.features, X) and tab.paths.tolist() == paths.tolist()
    # bare .npy + labels
    np.save(tmp_path / "m.npy", X)
    assert np.array_equal(load_feature_table(tmp_path / "m.npy", "face", labels=labels).features, X)
    with pytest.raises(ValueError, match="pass labels="):
        load_feature_table(tmp_path / "m.npy", "face")
    # Parquet / CSV with named columns
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(3)]).assign(speaker_id=labels, path=paths)
    df.to_parquet(tmp_path / "t.parquet")
    df.to_csv(tmp_path / "t.csv", index=False)
    for name in ("t.parquet", "t.csv"):
        tab = load_feature_table(tmp_path / name, "voice")
        assert np.allclose(tab.features, X) and tab.labels.tolist() == labels.tolist() and tab.paths is not None
    # FOP's layout: no header, the label in the last column.
    pd.DataFrame(X).assign(label=labels).to_csv(tmp_path / "fop.csv", header=False, index=False)
    tab = load_feature_table(tmp_path / "fop.csv", "face")
    assert np.allclose(tab.features, X) and tab.labels.tolist() == labels.tolist()
    # identity_map: face names -> speaker ids
    tab = load_feature_table(tmp_path / "fop.csv", "face", identity_map={"id1": "A", "id2": "B"})
    assert tab.labels.tolist() == ["A", "A", "B", "B"]
    with pytest.raises(KeyError, match="identity_map has no entry"):
        load_feature_table(tmp_path / "fop.csv", "face", identity_map={"id1": "A"})


def test_feature_files_with_bad_content(tmp_path):
    df = pd.DataFrame({"a": [0.0, np.nan], "b": [1.0, 2.0], "speaker_id": ["x", "y"]})
    df.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(ValueError, match=r"nan\.csv\).*NaN"):
        load_feature_table(tmp_path / "nan.csv", "voice")
    pd.DataFrame({"a": [0.0, 1.0], "speaker_id": ["x", None]}).to_parquet(tmp_path / "nolabel.parquet")
    with pytest.raises(ValueError, match="no identity label"):
        load_feature_table(tmp_path / "nolabel.parquet", "voice")
    pd.DataFrame({"a": [0.0, 1.0], "who": ["x", "y"]}).to_parquet(tmp_path / "nocol.parquet")
    with pytest.raises(KeyError, match="label_column="):
        load_feature_table(tmp_path / "nocol.parquet", "voice")
    assert load_feature_table(tmp_path / "nocol.parquet", "voice", label_column="who").labels.tolist() == ["x", "y"]
    with pytest.raises(FileNotFoundError):
        load_feature_table(tmp_path / "missing.csv", "voice")
    tab = FeatureTable(np.ones((2, 2)), ["x", "y"], paths=["x/1.wav", "y/1.wav"])
    with pytest.raises(KeyError, match="no features for item 'z/1.wav'"):
        tab.rows_of(["z/1.wav"])
