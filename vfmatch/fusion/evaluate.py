"""How close does a fused face come to the speaker? Evaluated as Speech2Face was.

Speech2Face (Oh et al., 2019; seeds 002 and 004) judged its reconstructions
two ways, and so does :func:`evaluate_fusion`, for held-out voices:

*Attribute agreement.* The face extractors read the fused face, and their
reading is compared with the speaker's true metaproperties: accuracy of the
most probable value for unordered ones (gender, ethnicity, ...), and the
earth mover's distance between the read distribution and the true value for
ordered ones (age, BMI, weight, skin tone; :func:`vfmatch.matching.emd`,
0 = all mass on the true bin, 1 = all of it at the far end).

*Retrieval.* A face encoder embeds the fused face and every face of the test
gallery; each of the speaker's own faces is ranked, by cosine similarity to
the fused face, against the faces of everyone else: top-1/5/10 (the true face
comes first, in the first 5, 10) and the *percentile rank* (the share of other
people's faces it outranks, ties counting half: 0.5 is chance, 1 is always
first).

Each figure is given for the matched fusion (the faces the voice selects) and
two baselines, so that it can be read: ``random`` fuses as many faces drawn
at random (uniform weights), ``mean_face`` is the average of the whole
gallery, the same face for every voice. By default a voice never fuses its
own speaker's faces (``exclude_own=True``): otherwise the retrieval would
partly measure whether the matcher picked the true face, which the 1:N
identification figures already do, and a reconstruction is meant for a voice
whose face is not in the gallery.

Confidence intervals: 95 % percentile bootstrap over *identities* (a speaker's
clips move together), with the same resamples for matched and baselines, so
that ``matched_minus_random_ci`` is a paired interval of the difference. The
bootstrap is written here with numpy (fusion is a lower stage than
:mod:`vfmatch.evaluation` and must not import it); it follows the same rule
as :func:`vfmatch.evaluation.bootstrap_ci`.

What such figures can say, and what not (seeds 002/004): a fused face that
agrees with a speaker's gender or age and ranks their face above chance
shows that the voice carries those traits, on this population; it does not
show that the voice reveals what this person looks like, and on real people
the same traits are where the method's biases are.

``vfmatch run`` runs this for its test speakers (:mod:`vfmatch.job.fusion_step`);
book: chapter 12, ``book/12_rebuilding_faces.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..matching import emd
from ..metaproperties import get_metaproperty
from .reconstruct import AlignedFaces, align_to_template, fuse_aligned, match_weights, select_best_matches

__all__ = ["evaluate_fusion", "fusion_sweep", "fusion_strip", "identity_bootstrap", "DEFAULT_SWEEP", "FusionGallery"]

RETRIEVAL_KS = (1, 5, 10)
# The rules the sweep tries by default: top N, top P % and the threshold rule (the matcher's threshold).
DEFAULT_SWEEP = ({"top_n": 1}, {"top_n": 3}, {"top_n": 5}, {"top_n": 10}, {"top_percent": 10}, {"top_percent": 25}, {"threshold": None})


# ---------------------------------------------------------------------- bootstrap
def identity_bootstrap(values: dict[str, np.ndarray], groups, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of means, resampling identities, one draw for all.

    Parameters
    ----------
    values : name -> (n,) per-item values (NaN = not measured for that item)
    groups : (n,) identity of each item
    n_boot, level, seed : number of resamples, coverage, seed

    Returns
    -------
    name -> [lo, hi]; plus ``"a-b"`` -> [lo, hi] for the paired difference of
    every two names, from the same resamples.
    """
    g = np.unique(np.asarray(groups), return_inverse=True)[1]
    n_id = int(g.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_id, size=(int(n_boot), n_id))
    counts = np.stack([np.bincount(d, minlength=n_id) for d in draws]).astype(np.float64)  # (B, identities)
    q = [(1 - level) / 2, (1 + level) / 2]

    def boot_means(v):
        ok = np.isfinite(v)
        sums = np.bincount(g[ok], weights=v[ok], minlength=n_id)
        n = np.bincount(g[ok], minlength=n_id).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (counts @ sums) / (counts @ n)

    means = {k: boot_means(np.asarray(v, dtype=np.float64)) for k, v in values.items()}
    out = {k: [float(x) for x in np.nanquantile(m, q)] for k, m in means.items()}
    names = list(values)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out[f"{a}-{b}"] = [float(x) for x in np.nanquantile(means[a] - means[b], q)]
    return out


# ---------------------------------------------------------------------- the gallery
@dataclass
class FusionGallery:
    """The test faces, aligned and embedded once for every fusion of an evaluation.

    aligned : :class:`AlignedFaces` of every gallery face; embeddings : (n_faces, d),
    unit length; speakers : (n_faces,) identity of each face."""

    aligned: AlignedFaces
    embeddings: np.ndarray
    speakers: np.ndarray


def _call(model, method: str, images, landmarks):
    fn = getattr(model, method, None) or model
    return fn(images, landmarks=landmarks)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _gallery(images, landmarks, face_speakers, encoder, size: int, zoom: float) -> FusionGallery:
    emb = _unit(_call(encoder, "encode", np.asarray(images), np.asarray(landmarks, dtype=np.float32)[:, :5]))
    return FusionGallery(align_to_template(images, landmarks, size=size, zoom=zoom), emb, np.asarray(face_speakers).astype(str))


def _fuse(gallery: FusionGallery, selections, weights, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Fused images (n, size, size, 3) uint8 and their five landmarks (n, 5, 2)."""
    imgs, lms = [], []
    for sel, w in zip(selections, weights):
        img, shape = fuse_aligned(gallery.aligned.take(sel), w, method=method)
        imgs.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
        lms.append(shape[:5])
    return np.stack(imgs), np.stack(lms).astype(np.float32)


# ---------------------------------------------------------------------- per-voice figures
def _retrieval(gallery: FusionGallery, query: np.ndarray, voice_speakers: np.ndarray) -> dict[str, np.ndarray]:
    """Per voice: mean over the speaker's faces of the percentile rank and of top-k hits."""
    S = query @ gallery.embeddings.T  # (n_voices, n_faces) cosine similarity to the fused face
    same = voice_speakers[:, None] == gallery.speakers[None, :]
    out = {"percentile": np.full(len(S), np.nan), **{f"top{k}": np.full(len(S), np.nan) for k in RETRIEVAL_KS}}
    for i in range(len(S)):
        own, others = S[i, same[i]], S[i, ~same[i]]
        if own.size == 0 or others.size == 0:
            continue
        above = (others[None, :] > own[:, None]).sum(1) + 0.5 * (others[None, :] == own[:, None]).sum(1)
        out["percentile"][i] = np.mean(1.0 - above / others.size)
        for k in RETRIEVAL_KS:
            out[f"top{k}"][i] = np.mean(above + 1 <= k)
    return out


def _agreement(extractors, images, landmarks, truth: dict) -> dict[str, np.ndarray]:
    """Per voice: 1/0 agreement (unordered) or EMD to the truth (ordered), NaN where unknown."""
    probs = _call(extractors, "predict_faces", images, landmarks)
    out = {}
    for name, y in truth.items():
        if name not in probs:
            continue
        mp, p, y = get_metaproperty(name), np.asarray(probs[name], dtype=np.float64), np.asarray(y, dtype=np.int64)
        if len(p) == 1:  # one face read for every voice (the mean face)
            p = np.repeat(p, len(y), 0)
        known = y >= 0
        v = np.full(len(y), np.nan)
        if mp.is_ordered:
            onehot = np.eye(mp.n_values)[np.clip(y, 0, mp.n_values - 1)]
            v[known] = emd(p[known], onehot[known])
            out[f"{name}_emd"] = v
        else:
            v[known] = (p[known].argmax(1) == y[known]).astype(float)
            out[f"{name}_agreement"] = v
    return out


def _figures(gallery, extractors, encoder, fused, landmarks, voice_speakers, truth) -> dict[str, np.ndarray]:
    """Every per-voice figure of one set of fused faces: one per voice, or one for all."""
    query = _unit(_call(encoder, "encode", fused, landmarks))
    if len(query) == 1:
        query = np.repeat(query, len(voice_speakers), 0)
    ret = _retrieval(gallery, query, voice_speakers)
    figs = {"true_face_percentile_rank": ret["percentile"], **{f"true_face_top{k}": ret[f"top{k}"] for k in RETRIEVAL_KS}}
    if extractors is not None:
        figs.update(_agreement(extractors, fused, landmarks, truth))
    return figs


# ---------------------------------------------------------------------- selection
def _selections(scores, voice_speakers, face_speakers, rule: dict, weighted: bool, exclude_own: bool):
    """Per voice: the selected face indices (best first), their weights, and whether the threshold rule fell back."""
    sels, ws, fallback = [], [], []
    for i, row in enumerate(scores):
        pool = np.flatnonzero(face_speakers != voice_speakers[i]) if exclude_own else np.arange(row.size)
        try:
            chosen = pool[select_best_matches(row[pool], **rule)]
            fell = False
        except ValueError:
            if "threshold" not in rule:
                raise
            chosen, fell = pool[[int(np.argmax(row[pool]))]], True  # nothing above the threshold: the best face
        sels.append(chosen)
        ws.append(match_weights(row[chosen]) if weighted else np.full(chosen.size, 1.0 / chosen.size))
        fallback.append(fell)
    return sels, ws, np.array(fallback)


def _random_selections(counts, voice_speakers, face_speakers, exclude_own: bool, rng):
    sels = []
    for i, m in enumerate(counts):
        pool = np.flatnonzero(face_speakers != voice_speakers[i]) if exclude_own else np.arange(face_speakers.size)
        sels.append(rng.choice(pool, size=min(int(m), pool.size), replace=False))
    return sels, [np.full(s.size, 1.0 / s.size) for s in sels]


def _check_inputs(scores, images, landmarks, voice_speakers, face_speakers, truth):
    S = np.asarray(scores, dtype=np.float64)
    vs, fs = np.asarray(voice_speakers).astype(str), np.asarray(face_speakers).astype(str)
    if S.ndim != 2 or S.shape != (vs.size, fs.size):
        raise ValueError(f"scores must have shape (n_voices, n_faces) = ({vs.size}, {fs.size}), got {S.shape}")
    if len(images) != fs.size or len(landmarks) != fs.size:
        raise ValueError(f"{fs.size} face speakers but {len(images)} images and {len(landmarks)} landmark sets")
    if not np.all(np.isfinite(S)):
        raise ValueError("scores contain NaN or inf")
    for name, y in (truth or {}).items():
        if len(y) != vs.size:
            raise ValueError(f"truth[{name!r}] has {len(y)} values for {vs.size} voices")
    if len(set(fs)) < 2:
        raise ValueError("the gallery needs faces of at least two identities")
    return S, vs, fs


def _summarise(per: dict[str, dict[str, np.ndarray]], groups, n_boot: int, seed: int) -> dict:
    """``{figure: {"matched", "random", "mean_face", "<arm>_ci", "matched_minus_random_ci", ...}}``."""
    out = {}
    for fig in per["matched"]:
        vals = {arm: per[arm][fig] for arm in per if fig in per[arm]}
        ci = identity_bootstrap(vals, groups, n_boot=n_boot, seed=seed) if n_boot else {}
        entry = {arm: float(np.nanmean(v)) for arm, v in vals.items()}
        for arm in vals:
            entry[f"{arm}_ci"] = ci.get(arm)
        for a, b in (("matched", "random"), ("matched", "mean_face")):
            if a in vals and b in vals:
                entry[f"{a}_minus_{b}_ci"] = ci.get(f"{a}-{b}")
        entry["n_voices"] = int(np.isfinite(vals["matched"]).sum())
        out[fig] = entry
    return out


# ---------------------------------------------------------------------- the evaluation
def evaluate_fusion(
    scores, images, landmarks, voice_speakers, face_speakers, truth: dict | None, extractors, face_encoder, *,
    top_n: int | None = 5, top_percent: float | None = None, threshold: float | None = None, weighted: bool = False,
    method: str = "morph", size: int = 112, zoom: float = 0.8, exclude_own: bool = True, n_random: int = 1,
    n_boot: int = 1000, seed: int = 0, gallery: FusionGallery | None = None, return_faces: bool = False,
) -> dict:
    """Metaproperty agreement and true-face retrieval of fused faces, with baselines and CIs.

    Parameters
    ----------
    scores : (n_voices, n_faces) level of match of each held-out voice to each
        gallery face (any scorer; higher = better match)
    images, landmarks : the gallery faces (n_faces, H, W, 3) uint8 and (n_faces, K, 2)
    voice_speakers, face_speakers : identity of each voice and face
    truth : metaproperty -> (n_voices,) true value indices of the voices'
        speakers (``Population.labels(name, "voice")``; -1 unknown), or None
    extractors : reads faces: ``extractors.predict_faces(images, landmarks=...)``
        (an :class:`vfmatch.extractors.ExtractorSet`) or a callable with that
        signature, returning metaproperty -> (n, n_values); None skips agreement
    face_encoder : embeds faces for retrieval: ``.encode(images, landmarks=...)``
        -> (n, d) (e.g. ``vfmatch.create_face_encoder(...)``) or such a callable
    top_n, top_percent, threshold : the selection rule (give one; ``top_n`` is
        ignored when another is given); with ``threshold``, a voice with no face
        above it fuses its single best face (counted in ``n_threshold_fallback``)
    weighted : weights by level of match (:func:`vfmatch.fusion.match_weights`) or uniform
    method, size, zoom : as in :func:`vfmatch.fusion.fuse_faces` (``zoom`` 0.8 keeps
        the context the face encoders look at)
    exclude_own : a voice never fuses its own speaker's faces (see the module docstring)
    n_random : random draws per voice for the random baseline (figures averaged)
    n_boot, seed : bootstrap resamples (0: no intervals) and seed of everything random
    gallery : a :class:`FusionGallery` from an earlier call on the same faces (saves the alignment)
    return_faces : also return ``"faces"``: the fused images and selections

    Returns
    -------
    dict: one entry per figure -- ``true_face_percentile_rank``,
    ``true_face_top1/5/10``, ``<name>_agreement`` (unordered metaproperties),
    ``<name>_emd`` (ordered ones) -- each ``{"matched": x, "random": y,
    "mean_face": z, "matched_ci": [lo, hi], "random_ci": ..., "mean_face_ci": ...,
    "matched_minus_random_ci": ..., "matched_minus_mean_face_ci": ..., "n_voices": n}``;
    and ``"settings"`` (the rule, weighting, method, mean number of faces fused,
    fallbacks, voices and identities).
    """
    truth = truth or {}
    S, vs, fs = _check_inputs(scores, images, landmarks, voice_speakers, face_speakers, truth)
    rule = {"top_percent": top_percent} if top_percent is not None else {"threshold": threshold} if threshold is not None else {"top_n": top_n}
    if gallery is None:
        gallery = _gallery(images, landmarks, fs, face_encoder, size, zoom)
    rng = np.random.default_rng([int(seed), 0xF05E])

    sels, ws, fallback = _selections(S, vs, fs, rule, weighted, exclude_own)
    counts = np.array([s.size for s in sels])
    fused, fused_lm = _fuse(gallery, sels, ws, method)
    per = {"matched": _figures(gallery, extractors, face_encoder, fused, fused_lm, vs, truth)}
    draws = []
    for _ in range(max(1, int(n_random))):
        rs, rw = _random_selections(counts, vs, fs, exclude_own, rng)
        r_img, r_lm = _fuse(gallery, rs, rw, method)
        draws.append(_figures(gallery, extractors, face_encoder, r_img, r_lm, vs, truth))
    per["random"] = {k: np.mean([d[k] for d in draws], axis=0) for k in draws[0]}
    mean_img, mean_lm = _fuse(gallery, [np.arange(fs.size)], [np.full(fs.size, 1.0 / fs.size)], method)
    per["mean_face"] = _figures(gallery, extractors, face_encoder, mean_img, mean_lm, vs, truth)

    out = _summarise(per, vs, int(n_boot), int(seed))
    out["settings"] = {
        "rule": {k: (float(v) if v is not None else None) for k, v in rule.items()}, "weighted": bool(weighted),
        "method": method, "size": int(size), "zoom": float(zoom), "exclude_own": bool(exclude_own),
        "mean_faces_fused": float(counts.mean()), "n_threshold_fallback": int(fallback.sum()),
        "n_voices": int(vs.size), "n_identities": int(len(set(vs))), "n_gallery_faces": int(fs.size),
        "n_random": int(max(1, n_random)), "n_boot": int(n_boot), "seed": int(seed),
        "baselines": "random: as many faces drawn at random, uniform weights; mean_face: the uniform average of the whole gallery",
        "percentile_rank": "share of other people's faces the true face outranks by face-encoder cosine similarity (ties 1/2); 0.5 = chance",
    }
    if return_faces:
        out["faces"] = {"matched": fused, "landmarks": fused_lm, "selected": sels, "weights": ws, "mean_face": mean_img[0]}
    return out


def fusion_sweep(
    scores, images, landmarks, voice_speakers, face_speakers, truth, extractors, face_encoder, *,
    rules=DEFAULT_SWEEP, weightings=(False, True), threshold: float | None = None, figures=("true_face_percentile_rank", "gender_agreement"),
    method: str = "morph", size: int = 112, zoom: float = 0.8, n_boot: int = 1000, seed: int = 0, **kwargs,
) -> list[dict]:
    """:func:`evaluate_fusion` over selection rules and weightings; one row per setting.

    ``rules`` are dicts such as ``{"top_n": 5}``, ``{"top_percent": 10}`` or
    ``{"threshold": None}`` (None: the ``threshold`` argument, e.g. the
    matcher's decision threshold; skipped when that is None too). With a
    single face (``top_n=1``) weighting changes nothing, so only uniform is
    run. Each row: the rule, weighting, mean faces fused, and for each of
    ``figures`` its matched / random / mean-face values and the matched CI.
    The gallery is aligned and embedded once."""
    fs = np.asarray(face_speakers).astype(str)
    gallery = _gallery(images, landmarks, fs, face_encoder, size, zoom)
    rows = []
    for rule in rules:
        rule = dict(rule)
        if "threshold" in rule and rule["threshold"] is None:
            if threshold is None:
                continue
            rule["threshold"] = threshold
        for weighted in weightings:
            if weighted and rule.get("top_n") == 1:
                continue
            res = evaluate_fusion(scores, images, landmarks, voice_speakers, fs, truth, extractors, face_encoder,
                                  **{"top_n": None, **rule}, weighted=weighted, method=method, size=size, zoom=zoom,
                                  n_boot=n_boot, seed=seed, gallery=gallery, **kwargs)
            row = {"rule": " ".join(f"{k}={v:g}" for k, v in rule.items()), "weighted": weighted,
                   "mean_faces_fused": res["settings"]["mean_faces_fused"], "n_threshold_fallback": res["settings"]["n_threshold_fallback"]}
            for fig in figures:
                if fig in res:
                    e = res[fig]
                    row.update({f"{fig}.matched": e["matched"], f"{fig}.random": e["random"], f"{fig}.mean_face": e["mean_face"],
                                f"{fig}.matched_ci": e["matched_ci"], f"{fig}.matched_minus_random_ci": e["matched_minus_random_ci"]})
            rows.append(row)
    return rows


def fusion_strip(
    scores, images, landmarks, voice_speakers, face_speakers, voices, *, top_n: int = 5, shown: int = 3,
    weighted: bool = False, method: str = "morph", size: int = 112, zoom: float = 0.8, exclude_own: bool = True,
) -> np.ndarray:
    """A picture for a report: one row per voice in ``voices`` (row indices of ``scores``):
    its ``shown`` best-matching faces, then the fused face, then the speaker's own first face.

    Every tile is aligned to the same template (``size``, ``zoom``); returns uint8
    (len(voices) * size, (shown + 2) * size, 3). Arguments as in :func:`evaluate_fusion`."""
    S, vs, fs = _check_inputs(scores, images, landmarks, voice_speakers, face_speakers, {})
    rows = []
    for v in np.asarray(voices, dtype=int):
        (chosen,), (w,), _ = _selections(S[v : v + 1], vs[v : v + 1], fs, {"top_n": top_n}, weighted, exclude_own)
        aligned = align_to_template(np.asarray(images)[chosen], np.asarray(landmarks)[chosen], size=size, zoom=zoom)
        fused, _ = fuse_aligned(aligned, w, method=method)
        own = np.flatnonzero(fs == vs[v])
        true = align_to_template(np.asarray(images)[own[:1]], np.asarray(landmarks)[own[:1]], size=size, zoom=zoom).images
        tiles = list(aligned.images[:shown]) + [np.zeros_like(fused)] * max(0, shown - len(chosen)) + [fused]
        tiles.append(true[0] if len(own) else np.zeros_like(fused))
        rows.append(np.concatenate(tiles, axis=1))
    return (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255 + 0.5).astype(np.uint8)
