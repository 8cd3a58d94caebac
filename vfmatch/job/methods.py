"""Every method on the same people and the same lists: the comparison of issue 11.

``vfmatch run`` scores six methods on the held-out test identities of one run
(book chapter ``book/11_comparing_methods.ipynb``):

================  ==============================================================
name              what it is
================  ==============================================================
metaproperty      the patent's matcher on extracted metaproperties (US 12,217,549)
triplet           a shared embedding trained with the triplet loss (seed 001's baseline)
weighted_triplet  the same with seed 001's face-distance-weighted triplet loss, eq. (4)
sss               seed 003: implicit + explicit alignment with identity re-weighting
contrastive       a symmetric InfoNCE (CLIP-style) embedding
hybrid            the patent's matcher with one more column: the cosine distance
                  of the embedding that did best on the *matcher* role (never on test)
================  ==============================================================

Every method is trained on the same identities (the embeddings on the
``train`` role, on frozen encoders, :func:`vfmatch.embeddings.fit_population`;
the matchers on the ``matcher`` role), gets its threshold on the ``threshold``
role (an embedding's at the equal error rate of its cosine similarity there),
and is scored by :func:`vfmatch.evaluation.summary.evaluate_similarity` on the
``test`` role with the same seed, so the sampled 1:2 lists, verification pairs
and bootstrap resamples are the same for all six. Each entry carries the keys of
``metrics.json["evaluation"]["test"]`` plus ``identification_1to2_vf_ci`` and
``identification_1to2_vf_gender_restricted_ci`` (95% identity-bootstrap
intervals, ``[low, high]``).

*The hybrid* (issue 11): the embedding's cosine distance enters the distance
vector as column ``"embedding:<method>"``
(:func:`vfmatch.matching.tables.with_embedding`), so its weight is derived
exactly as the metaproperties' (coefficient x std) and every explanation shows
its contribution beside theirs: "how much did the learned part decide?" has an
answer per decision.

*Homogeneous populations* (seed 001): with ``--subset`` the matcher, threshold
and test roles hold only the subset's people. ``embedding_train`` chooses who
the embeddings learn from: ``"all"`` (every train identity, heterogeneous),
``"subset"`` (only the subset's train identities) or ``"all+subset"`` (seed
001's recipe: pre-train on all, then fine-tune on the subset, warm-started).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.torch import load_file as load_torch, save_file as save_torch

from ..embeddings import DEFAULT_ENCODERS, EmbeddingResult, fit_population, list_embedding_methods, load_method
from ..features import create_encoder, population_items
from ..evaluation.identification import identification_accuracy
from ..evaluation.metrics import equal_error_rate
from ..evaluation.summary import evaluate_similarity
from ..matching.matcher import MetapropertyMatcher
from ..matching.tables import embedding_column, with_embedding
from ..utils import to_jsonable
from .prepare import MatchingData, RunConfig, fit_matcher, new_matcher

__all__ = [
    "EMBEDDING_TRAINING",
    "MethodScores",
    "list_methods",
    "check_methods",
    "evaluate_scores",
    "train_embeddings",
    "fit_hybrid",
    "compare_methods",
    "methods_table",
    "methods_metrics",
    "save_methods",
    "load_saved_embedding",
    "embedding_scores_from_voices",
]

EMBEDDING_TRAINING = ("all", "subset", "all+subset")
#: epochs of the fine-tuning stage of ``embedding_train="all+subset"`` (a third of
#: the default 100: the subset is small and the heads start from the pre-trained ones)
FINETUNE_EPOCHS = 30


def list_methods() -> list[str]:
    """Every method ``vfmatch run --methods`` accepts: ``metaproperty``, the registered
    embedding methods (:func:`vfmatch.embeddings.list_embedding_methods`), ``hybrid``."""
    return ["metaproperty", *list_embedding_methods(), "hybrid"]


def check_methods(names) -> list[str]:
    """``names`` in the order of :func:`list_methods`; ValueError naming an unknown one.
    ``None`` means every method."""
    if names is None:
        return list_methods()
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in list_methods()]
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {unknown}; choose from {list_methods()}")
    if not names:
        raise ValueError("--methods: give at least one method")
    return [n for n in list_methods() if n in names]


@dataclass
class MethodScores:
    """One method's scores on the test identities.

    Attributes
    ----------
    name : the method
    similarity : (n_test_voices, n_test_faces) scores, higher = same person
        (cosine similarity for an embedding, level of match for a matcher)
    threshold : decision threshold on ``similarity``, chosen on the threshold role
    metrics : :func:`evaluate_scores` of ``similarity`` (JSON-ready)
    seconds : training and scoring wall time
    model : the fitted :class:`~vfmatch.embeddings.EmbeddingResult` or matcher
    embedding, tables : the hybrid only: the embedding it added, and the
        ``{role: (voice_table, face_table)}`` with that column (to explain decisions)
    """

    name: str
    similarity: np.ndarray
    threshold: float
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    model: object = None
    embedding: str | None = None
    tables: dict | None = None


def evaluate_scores(S: np.ndarray, part, test_pairs, threshold: float, seed: int) -> dict:
    """Every protocol on the test scores ``S`` (n_voices, n_faces) of population
    ``part``, plus decision rates at ``threshold`` on the balanced ``test_pairs``.

    The keys of ``metrics.json["evaluation"]["test"]``: those of
    :func:`vfmatch.evaluation.summary.evaluate_similarity` (1:2 both ways and
    same-gender, AUC, EER, mAP, percentile recall, 1:N, ``ci``), then
    ``decision_accuracy``, ``false_match_rate``, ``false_non_match_rate`` and
    ``threshold``, and the two 1:2 V->F intervals at the top level
    (``identification_1to2_vf_ci``, ``..._gender_restricted_ci``)."""
    gender = part.has_metaproperty("gender")
    metrics = dict(evaluate_similarity(
        S, part.voice_speakers, part.face_speakers,
        voice_gender=part.labels("gender", "voice") if gender else None,
        face_gender=part.labels("gender", "face") if gender else None,
        seed=seed,
    ))
    vi, fi = test_pairs["voice_index"].to_numpy(), test_pairs["face_index"].to_numpy()
    y = test_pairs["label"].to_numpy().astype(bool)
    decided = S[vi, fi] >= threshold
    metrics["decision_accuracy"] = float(np.mean(decided == y))
    metrics["false_match_rate"] = float(np.mean(decided[~y]))
    metrics["false_non_match_rate"] = float(np.mean(~decided[y]))
    metrics["threshold"] = float(threshold)
    for key in ("identification_1to2_vf", "identification_1to2_vf_gender_restricted"):
        if key in metrics.get("ci", {}):
            metrics[f"{key}_ci"] = list(metrics["ci"][key])
    return metrics


def _pair_scores(voice_emb, face_emb, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each labelled pair and its label."""
    vi, fi = pairs["voice_index"].to_numpy(), pairs["face_index"].to_numpy()
    return np.sum(voice_emb[vi] * face_emb[fi], axis=1), pairs["label"].to_numpy()


def train_embeddings(data: MatchingData, names, config: RunConfig, *, progress: bool = False) -> dict[str, EmbeddingResult]:
    """Fit each embedding method of ``names`` on the train role and embed the test role.

    The encoders (:data:`vfmatch.embeddings.DEFAULT_ENCODERS`, frozen) are
    fitted once and shared by every method; ``config.embedding_train`` picks the
    training identities (module docstring). Seeded by ``config.seed``."""
    mode = config.embedding_train
    if mode not in EMBEDDING_TRAINING:
        raise ValueError(f"--embedding-train must be one of {EMBEDDING_TRAINING}, got {mode!r}")
    train, test = data.parts["train"], data.parts["test"]
    subset_train = None
    if mode != "all":
        if not config.subset:
            raise ValueError(f"--embedding-train {mode}: needs --subset (the homogeneous population to train on)")
        subset_train = train.subset(config.subset)
    encoders = {"voice_encoder": DEFAULT_ENCODERS[0], "face_encoder": DEFAULT_ENCODERS[1]}
    out = {}
    for name in names:
        first = subset_train if mode == "subset" else train
        res = fit_population(name, first, test, seed=config.seed, progress=progress, cache=config.cache, **encoders)
        encoders = {"voice_encoder": res.encoder_objects["voice"], "face_encoder": res.encoder_objects["face"]}
        if mode == "all+subset":
            pretrain_seconds = res.seconds
            res.method.set_params(warm_start=True, epochs=FINETUNE_EPOCHS)
            res = fit_population(res.method, subset_train, test, seed=config.seed, progress=progress,
                                 cache=config.cache, **encoders)
            res.seconds = {"pretrain": pretrain_seconds, "finetune": res.seconds}
        out[name] = res
    return out


def _embedding_scores(name: str, res: EmbeddingResult, data: MatchingData, pairs: dict, progress: bool) -> MethodScores:
    """Test similarity and the threshold role's EER threshold of one embedding method."""
    t0 = time.perf_counter()
    v_thr, f_thr = res.embed(data.parts["threshold"], progress=progress)
    scores, labels = _pair_scores(v_thr, f_thr, pairs["threshold"])
    _, threshold = equal_error_rate(labels, scores, return_threshold=True)
    seconds = {"training": res.seconds, "threshold": round(time.perf_counter() - t0, 3)}
    return MethodScores(name, res.similarity(), float(threshold), seconds=seconds, model=res)


def _validation_accuracy(res: EmbeddingResult, part, seed: int) -> float:
    """1:2 V->F accuracy of an embedding on another role (the hybrid's choice of embedding)."""
    v, f = res.embed(part)
    r = identification_accuracy(v @ f.T, part.voice_speakers, part.face_speakers, n_lists=2000, seed=seed)
    return float(r.accuracy)


def fit_hybrid(data: MatchingData, pairs: dict, embeddings: dict[str, EmbeddingResult], config: RunConfig,
               *, method: str | None = None) -> tuple[MetapropertyMatcher, str, dict]:
    """The hybrid matcher: metaproperty distances plus one embedding's cosine distance.

    Parameters
    ----------
    data, pairs : the run's tables and role pairs (:func:`vfmatch.job.prepare.make_role_pairs`)
    embeddings : fitted embedding methods (:func:`train_embeddings`)
    method : which embedding to add; default the one with the best 1:2 V->F on
        the ``matcher`` role (validation people, never the test people)

    Returns
    -------
    (matcher, method name, {role: (voice_table, face_table)}) -- the tables
    with the embedding column, for scoring and explaining.
    """
    if not embeddings:
        raise ValueError("the hybrid needs at least one embedding method (add one to --methods)")
    validation = {n: _validation_accuracy(r, data.parts["matcher"], config.seed) for n, r in embeddings.items()}
    if method is None:
        method = max(validation, key=validation.get)
    res = embeddings[method]
    tables = {}
    for role in ("matcher", "threshold", "test"):
        v_emb, f_emb = res.embed(data.parts[role])
        vt, ft = data.tables(role)
        tables[role] = (with_embedding(vt, method, v_emb), with_embedding(ft, method, f_emb))
    matcher = new_matcher(config, [*data.metaproperties, embedding_column(method)])
    matcher.fit_pairs(*tables["matcher"], pairs["matcher"])
    matcher.calibrate(*tables["threshold"], pairs["threshold"])
    matcher.hybrid_validation_ = validation
    return matcher, method, tables


def compare_methods(data: MatchingData, pairs: dict, config: RunConfig, *, matcher: MetapropertyMatcher | None = None,
                    methods=None, progress: bool = False) -> dict[str, MethodScores]:
    """Train (where needed) and score every method of ``methods`` on the same test people and lists.

    ``matcher``: the run's fitted metaproperty matcher (fitted here when None).
    Returns ``{name: MethodScores}`` in the order of :func:`list_methods`."""
    names = check_methods(methods)
    test = data.parts["test"]
    out: dict[str, MethodScores] = {}
    if "metaproperty" in names or "hybrid" in names:
        t0 = time.perf_counter()
        matcher = matcher if matcher is not None else fit_matcher(new_matcher(config), data, pairs)
        seconds = {"training": round(time.perf_counter() - t0, 3)}
        if "metaproperty" in names:
            out["metaproperty"] = MethodScores("metaproperty", matcher.similarity_matrix(*data.tables("test")),
                                               float(matcher.threshold_), seconds=seconds, model=matcher)
    embedding_names = [n for n in names if n in list_embedding_methods()]
    embeddings = train_embeddings(data, embedding_names, config, progress=progress)
    for name, res in embeddings.items():
        out[name] = _embedding_scores(name, res, data, pairs, progress)
    if "hybrid" in names:
        if not embeddings:  # the hybrid alone: it still needs an embedding, the strongest by seed 003's account
            embeddings = train_embeddings(data, ["sss"], config, progress=progress)
        t0 = time.perf_counter()
        hybrid, chosen, tables = fit_hybrid(data, pairs, embeddings, config)
        out["hybrid"] = MethodScores("hybrid", hybrid.similarity_matrix(*tables["test"]), float(hybrid.threshold_),
                                     seconds={"training": round(time.perf_counter() - t0, 3)}, model=hybrid,
                                     embedding=chosen, tables=tables)
    for ms in out.values():
        ms.metrics = evaluate_scores(ms.similarity, test, pairs["test"], ms.threshold, config.seed)
    return {n: out[n] for n in names if n in out}


def methods_table(metrics: dict) -> "list[dict]":
    """Rows ``{method, 1:2 V->F, CI, same-gender, CI, AUC, EER, percentile mean rank}`` of
    ``metrics.json["methods"]``, rounded to 3 decimals: the report's and the README's table."""
    rows = []
    for name, m in metrics.items():
        pr = m.get("percentile_recall", {})
        rows.append({
            "method": name,
            "1:2 V->F": round(m["identification_1to2_vf"], 3),
            "95% CI": [round(x, 3) for x in m.get("identification_1to2_vf_ci", [np.nan, np.nan])],
            "1:2 V->F same gender": round(m.get("identification_1to2_vf_gender_restricted", np.nan), 3),
            "95% CI (same gender)": [round(x, 3) for x in m.get("identification_1to2_vf_gender_restricted_ci", [np.nan, np.nan])],
            "AUC": round(m["auc"], 3),
            "EER": round(m["eer"], 3),
            "mean percentile rank": round(pr.get("mean_rank", np.nan), 3) if isinstance(pr, dict) else None,
        })
    return rows


def methods_metrics(scores: dict[str, MethodScores], config: RunConfig) -> dict:
    """``metrics.json["methods"]``: each method's metrics plus its seconds and settings."""
    out = {}
    for name, ms in scores.items():
        entry = dict(ms.metrics)
        entry["seconds"] = ms.seconds
        if isinstance(ms.model, EmbeddingResult):
            m = ms.model.method
            entry["settings"] = {"encoders": ms.model.encoders, "embed_dim": m.embed_dim, "epochs": m.epochs,
                                 "embedding_train": config.embedding_train}
        if name == "hybrid":
            entry["embedding"] = ms.embedding
            entry["weights"] = ms.model.weights
            entry["validation_1to2_vf"] = ms.model.hybrid_validation_
        out[name] = entry
    return to_jsonable(out)


def save_methods(scores: dict[str, MethodScores], folder) -> dict[str, Path]:
    """Save every embedding method (``folder/methods/<name>/``, safetensors + JSON)
    and the hybrid matcher (``folder/hybrid_matcher/``); returns the folders."""
    folder = Path(folder)
    saved = {}
    for name, ms in scores.items():
        if isinstance(ms.model, EmbeddingResult):
            saved[name] = ms.model.method.save(folder / "methods" / name)
            # What the heads read: the encoders (registry name and configuration; the weights
            # too when they were trained, e.g. speaker-cnn, or fine-tuned) and the training
            # means that stand in for unmeasurable features.
            inputs = {"encoders": ms.model.encoders, "fill": {k: v.tolist() for k, v in ms.model.fill.items()},
                      "encoder_configs": {}, "encoder_weights": {}}
            for modality, encoder in ms.model.encoder_objects.items():
                inputs["encoder_configs"][modality] = encoder.config()
                if encoder.saves_weights:
                    weights = f"encoder_{modality}.safetensors"
                    save_torch({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()},
                               str(saved[name] / weights))
                    inputs["encoder_weights"][modality] = weights
            (saved[name] / "inputs.json").write_text(json.dumps(to_jsonable(inputs)))
        elif name == "hybrid":
            saved[name] = ms.model.save(folder / "hybrid_matcher")
    return saved


def load_saved_embedding(folder):
    """A method saved by :func:`save_methods`: ``(method, {"voice": encoder, "face": encoder}, fill)``,
    the encoders rebuilt from their registry name and configuration (with their saved
    weights when they were trained or fine-tuned), ``fill`` the training means put in for
    unmeasurable features. FileNotFoundError names a missing ``inputs.json``."""
    folder = Path(folder)
    inputs_path = folder / "inputs.json"
    if not inputs_path.exists():
        raise FileNotFoundError(f"{folder}: no inputs.json (saved by vfmatch run's save_methods, with the encoders' names)")
    inputs = json.loads(inputs_path.read_text())
    encoders = {}
    for m in ("voice", "face"):
        config = inputs.get("encoder_configs", {}).get(m, {"name": inputs["encoders"][m], "kwargs": {}})
        encoders[m] = create_encoder(m, config["name"], **config["kwargs"])
        weights = inputs.get("encoder_weights", {}).get(m)
        if weights:  # a trained (or fine-tuned) encoder: its weights, not a fresh one
            encoders[m].load_state_dict(load_torch(str(folder / weights)))
            encoders[m].is_fitted = True
    fill = {m: np.asarray(v, dtype=np.float32) for m, v in inputs["fill"].items()}
    return load_method(folder), encoders, fill


def _filled(features: np.ndarray, fill: np.ndarray) -> np.ndarray:
    X = np.asarray(features, dtype=np.float32)
    return np.where(np.isfinite(X), X, fill[None, :])


def embedding_scores_from_voices(folder, faces_population):
    """``f(clips) -> (n_clips, n_faces)``: a saved embedding method's cosine similarity
    of voice clips (16 kHz, 1-D arrays, e.g. degraded copies of the test clips) to
    the faces of ``faces_population`` (:mod:`vfmatch.job.robustness_command`)."""
    method, encoders, fill = load_saved_embedding(folder)
    items, landmarks = population_items(faces_population, "face")
    faces = method.transform_faces(_filled(encoders["face"].encode(items, landmarks=landmarks), fill["face"]))

    def scores(clips) -> np.ndarray:
        voices = method.transform_voices(_filled(encoders["voice"].encode(list(clips)), fill["voice"]))
        return method.similarity(voices, faces)
    return scores
