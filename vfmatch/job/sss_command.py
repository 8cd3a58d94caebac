"""``vfmatch sss``: the VoxCeleb1 + VGGFace recipe, scored on the published SSS lists.

Given local copies of VoxCeleb1 (``DIR/wav/<id>/<youtube id>/<n>.wav``) and
VGGFace (``DIR/<name>/<n>.jpg``, the names of the SSS metadata), the command

1. reads the SSS split (:func:`vfmatch.evaluation.load_sss_identities`: 1,251
   identities, train / validation / test) and the published lists
   (:data:`vfmatch.evaluation.SSS_LISTS`, or ``--lists DIR`` with files of the
   same names);
2. extracts frozen-encoder features (default ``logmel-stats`` and ``thumbnail``)
   of up to ``--per-identity`` clips and photos of every train identity and of
   every item the lists name, in shards cached on disk
   (:mod:`vfmatch.job.sss_features`: batched, resumable, shardable across a cluster);
3. trains the chosen methods on the **train** identities:

   * ``metaproperty``: the patent's idea on the only labels VoxCeleb1's metadata
     has, **gender and nationality** (no age, no ethnicity, no mother tongue):
     a voice and a face classifier per label, and a logistic regression on the
     Jensen-Shannon distances of their predicted distributions
     (:class:`LabelMatcher`);
   * every embedding method of :func:`vfmatch.embeddings.list_embedding_methods`
     on the same features;
4. scores each on the lists with :func:`vfmatch.evaluation.evaluate_sss`
   (path-level: the model sees the audio and the photos, never the labels), beside the
   *oracle* that knows the true gender and nationality of both sides (0.884 / 0.785 on
   the shipped 1:2 lists);
5. writes ``metrics.json``, ``sss_results.csv``, ``index.html`` and the
   embedding models (``models/<method>/``), as ``vfmatch run`` does.

Past one machine (README, "The VoxCeleb1 + VGGFace recipe"): every worker runs
``--num-shards K --shard-index I --extract-only`` with the same ``--cache``;
then one run with ``--merge`` trains and scores from the cached shards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..config import cache_dir, quick_mode
from ..embeddings import FeatureTable, create_embedding_method, list_embedding_methods
from ..evaluation.protocols import (SSS_LISTS, attribute_agreement_scorer, evaluate_sss, load_sss_identities,
                                    load_sss_list)
from ..features import create_face_encoder, create_voice_encoder
from ..matching.distances import paired_distance
from .prepare import device_setting
from .report import identification_figure, save_figure, write_index, write_json
from .sss_features import default_num_shards, extract_features, feature_folder, media_dataset, merge_shards

__all__ = ["SSS_LABELS", "LabelMatcher", "sss_items", "run_sss"]  # add_arguments, main: the CLI calls them by module

#: the identity labels VoxCeleb1's metadata gives (and nothing else)
SSS_LABELS = ("gender", "nationality")
#: the headline numbers of the report: key of ``metrics["methods"][name]`` -> (list, column)
HEADLINE = {
    "identification_1to2_vf": ("match_v2f_val", "value"),
    "identification_1to2_vf_gender_restricted": ("match_g_v2f_val", "value"),
    "auc": ("verify_v2f_test", "value"),
    "eer": ("verify_v2f_test", "eer"),
}
LABELS_NOTE = ("VoxCeleb1's metadata gives only gender and nationality: the metaproperty method and the oracle use "
               "those two labels and no other metaproperty (no age, ethnicity or mother tongue).")


# ---------------------------------------------------------------------------
# The metaproperty method on the metadata's labels
# ---------------------------------------------------------------------------


class LabelMatcher:
    """Metaproperty matching on labelled identities: the patent's method with the
    labels a corpus has (for VoxCeleb1: gender and nationality).

    For each label a voice classifier and a face classifier (standardised
    features, logistic regression) are fitted on half of the training
    identities; on the other half a logistic regression learns how much each
    label's Jensen-Shannon distance between the two predicted distributions
    says about "same person" (as the patent's matcher weighs metaproperty distances,
    :class:`vfmatch.matching.MetapropertyMatcher`, here on labels instead of extractors).
    Fitting the weights on identities the classifiers never saw keeps them from
    trusting over-confident training-set predictions.

    Parameters
    ----------
    labels : identity columns to match on
    C : inverse regularisation of the classifiers
    seed : the split of the training identities and the sampled training pairs
    """

    def __init__(self, *, labels=SSS_LABELS, C: float = 1.0, seed: int = 0):
        self.labels = labels
        self.C = C
        self.seed = seed

    def get_params(self, deep: bool = True) -> dict:
        return {"labels": self.labels, "C": self.C, "seed": self.seed}

    def fit(self, voice: FeatureTable, face: FeatureTable, identities: pd.DataFrame) -> "LabelMatcher":
        """Fit on the training tables; ``identities`` has ``speaker_id`` and the label columns."""
        rng = np.random.default_rng(self.seed)
        ids = np.intersect1d(voice.identities(), face.identities())
        if ids.size < 4:
            raise ValueError(f"the metaproperty method needs at least 4 training identities with voices and faces, got {ids.size}")
        ids = rng.permutation(ids)
        half_a, half_b = ids[: ids.size // 2], ids[ids.size // 2:]
        meta = identities.set_index("speaker_id")
        self.classifiers_ = {}
        for label in self.labels:
            va, fa = voice.select_identities(half_a), face.select_identities(half_a)
            yv, yf = meta.loc[va.labels, label].astype(str).to_numpy(), meta.loc[fa.labels, label].astype(str).to_numpy()
            if np.unique(yv).size < 2:
                continue  # one value only: the label says nothing about who is who here
            clf_v = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(va.features, yv)
            clf_f = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(fa.features, yf)
            self.classifiers_[label] = (clf_v, clf_f)
        if not self.classifiers_:
            raise ValueError(f"no label of {list(self.labels)} takes two values among the training identities")
        # Training pairs on the other half: each voice with a face of its own and one of someone else.
        vb, fb = voice.select_identities(half_b), face.select_identities(half_b)
        own = np.array([rng.choice(np.flatnonzero(fb.labels == s)) for s in vb.labels])
        other = np.array([rng.choice(np.flatnonzero(fb.labels != s)) for s in vb.labels])
        D = np.concatenate([self.distances(vb.features, fb.features[own]), self.distances(vb.features, fb.features[other])])
        y = np.r_[np.ones(len(vb)), np.zeros(len(vb))]
        self.combiner_ = LogisticRegression().fit(D, y)
        self.weights_ = dict(zip(self.classifiers_, self.combiner_.coef_[0].tolist()))
        return self

    def _probabilities(self, X: np.ndarray, side: int) -> dict[str, np.ndarray]:
        return {label: clfs[side].predict_proba(X) for label, clfs in self.classifiers_.items()}

    def distances(self, voice_features: np.ndarray, face_features: np.ndarray) -> np.ndarray:
        """(n, n_labels) Jensen-Shannon distances between the voice's and the face's predicted distributions."""
        pv, pf = self._probabilities(voice_features, 0), self._probabilities(face_features, 1)
        return np.stack([paired_distance("jensen_shannon", pv[k], pf[k]) for k in self.classifiers_], axis=1)

    def path_scorer(self, voice: FeatureTable, face: FeatureTable):
        """``score(voice_paths, face_paths)``, higher = same person: the ``score_fn`` of ``evaluate_sss``."""
        pv, pf = self._probabilities(voice.features, 0), self._probabilities(face.features, 1)

        def score(voice_paths, face_paths) -> np.ndarray:
            i, j = voice.rows_of(voice_paths), face.rows_of(face_paths)
            D = np.stack([paired_distance("jensen_shannon", pv[k][i], pf[k][j]) for k in self.classifiers_], axis=1)
            return self.combiner_.decision_function(D)

        return score


# ---------------------------------------------------------------------------
# Which files
# ---------------------------------------------------------------------------


def voxceleb_wav_root(folder) -> Path:
    """``folder/wav`` when it exists (the VoxCeleb1 download), else ``folder`` itself."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--voxceleb {folder}: no such folder")
    return folder / "wav" if (folder / "wav").is_dir() else folder


def vggface_root(folder) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--vggface {folder}: no such folder")
    return folder


def list_items(lists: list[str], lists_dir, identities: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Sorted unique voice paths and face paths that the lists name."""
    voices, faces = set(), set()
    for name in lists:
        kind = SSS_LISTS[name][1]
        data = load_sss_list(name, identities, lists_dir=lists_dir)
        if kind == "triplets":
            voices.update(data["probe"]), faces.update(data["positive"]), faces.update(data["negative"])
        elif kind == "pairs":
            voices.update(data["voice"]), faces.update(data["face"])
        else:
            voices.update(data[0]["path"]), faces.update(data[1]["path"])
    return sorted(voices), sorted(faces)


def sss_items(wav_root: Path, face_root: Path, train: pd.DataFrame, per_identity: int | None) -> tuple[list[str], list[str], list[str]]:
    """Training items found on disk: ``(voice paths, face paths, identities used)``.

    The first ``per_identity`` clips (sorted paths) under ``wav_root/<id>/`` and photos
    under ``face_root/<face_name>/`` of each train identity that has both."""
    voices, faces, used = [], [], []
    for sid, name in zip(train["speaker_id"], train["face_name"]):
        v = sorted(p.relative_to(wav_root).as_posix() for p in (wav_root / sid).glob("*/*.wav"))
        f = sorted(p.relative_to(face_root).as_posix() for p in (face_root / name).glob("*.jpg"))
        if not v or not f:
            continue
        voices += v[:per_identity]
        faces += f[:per_identity]
        used.append(sid)
    return voices, faces, used


# ---------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------


def _extract(root, paths, modality, encoder, args, load_options, device: str) -> tuple[Path, int]:
    ds = media_dataset(root, paths)
    # Worker processes on a CPU; on a GPU one process feeds it batches (CUDA does not survive a fork).
    num_proc = None if device.startswith("cuda") else args.num_proc
    k = args.num_shards or default_num_shards(ds.num_rows)
    folder = feature_folder(args.cache or cache_dir("sss"), encoder, modality, ds, load_options)
    if not args.merge:
        shards = None if args.shard_index is None else [args.shard_index]
        extract_features(ds, encoder, folder, modality=modality, num_shards=k, shard_indices=shards,
                         batch_size=args.batch_size, num_proc=num_proc, load_options=load_options,
                         progress=args.progress)
    return folder, k


def _table(folder, k, modality, label_of, train_paths) -> FeatureTable:
    """The merged shards as a table; an encoder's NaN (e.g. no pitch in a clip) becomes
    that column's mean over the training items, as the extractors' calculators impute."""
    X, P = merge_shards(folder, k)
    bad = ~np.isfinite(X)
    if bad.any():
        train = X[np.isin(P, train_paths)]
        with np.errstate(invalid="ignore"):
            fill = np.nan_to_num(np.nanmean(np.where(np.isfinite(train), train, np.nan), axis=0))
        X = np.where(bad, fill[None, :], X).astype(np.float32)
    return FeatureTable(X, [label_of(p) for p in P], P, modality, str(folder))


def _headline(rows: pd.DataFrame) -> dict:
    out = {}
    for key, (name, col) in HEADLINE.items():
        hit = rows[rows["list"] == name]
        out[key] = float(hit[col].iloc[0]) if len(hit) else float("nan")
    return out


def run_sss(args: argparse.Namespace) -> dict | None:
    """The recipe (module docstring). Returns the metrics, or None after ``--extract-only``."""
    t0 = time.perf_counter()
    identities = load_sss_identities()
    face_to_id = dict(zip(identities["face_name"], identities["speaker_id"]))
    lists = list(args.sss_lists or SSS_LISTS)
    if args.lists is not None:
        present = [n for n in lists if (Path(args.lists) / SSS_LISTS[n][0]).exists()]
        if not present:
            raise FileNotFoundError(f"--lists {args.lists}: holds none of {[SSS_LISTS[n][0] for n in lists]}")
        lists = present
    wav_root, face_root = voxceleb_wav_root(args.voxceleb), vggface_root(args.vggface)
    train = identities[identities["split"] == "train"].sort_values("speaker_id")
    tv, tf, used = sss_items(wav_root, face_root, train, args.per_identity)
    if args.limit_identities:
        keep = set(used[: args.limit_identities])
        tv = [p for p in tv if p.split("/", 1)[0] in keep]
        tf = [p for p in tf if face_to_id[p.split("/", 1)[0]] in keep]
        used = [s for s in used if s in keep]
    if len(used) < 2:
        raise FileNotFoundError(f"{wav_root} and {face_root}: found clips and photos of {len(used)} SSS train identities; "
                                "training needs at least 2")
    lv, lf = list_items(lists, args.lists, identities)
    voices, faces = sorted(set(tv) | set(lv)), sorted(set(tf) | set(lf))
    voice_enc, face_enc = create_voice_encoder(args.voice_encoder), create_face_encoder(args.face_encoder)
    for enc in (voice_enc, face_enc):
        if enc.trainable or enc.output != "vector":
            raise ValueError(f"--{enc.modality}-encoder {enc.name}: the recipe needs a fixed (not trained) vector encoder")
    v_opts, f_opts = {"max_seconds": args.max_seconds}, {"image_size": args.image_size}
    with device_setting(args.device) as device:
        v_folder, kv = _extract(wav_root, voices, "voice", voice_enc, args, v_opts, device)
        f_folder, kf = _extract(face_root, faces, "face", face_enc, args, f_opts, device)
        if args.extract_only:
            print(f"vfmatch sss: features in {v_folder} and {f_folder}")
            return None
        voice_all = _table(v_folder, kv, "voice", lambda p: p.split("/", 1)[0], tv)
        face_all = _table(f_folder, kf, "face", lambda p: face_to_id[p.split("/", 1)[0]], tf)
        v_train = voice_all.select(np.isin(voice_all.paths, tv))
        f_train = face_all.select(np.isin(face_all.paths, tf))
        v_lists, f_lists = voice_all.select(np.isin(voice_all.paths, lv)), face_all.select(np.isin(face_all.paths, lf))

        results, methods, out = {}, {}, Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in args.methods:
            t = time.perf_counter()
            if name == "metaproperty":
                model = LabelMatcher(seed=args.seed).fit(v_train, f_train, identities)
                extra = {"weights": model.weights_}
            else:
                params = {"seed": args.seed, "progress": args.progress}
                if args.epochs is not None:
                    params["epochs"] = args.epochs
                model = create_embedding_method(name, **params).fit(v_train, f_train)
                model.save(out / "models" / name)
                extra = {}
            rows = evaluate_sss(model.path_scorer(v_lists, f_lists), lists=lists, identities=identities, lists_dir=args.lists)
            results[name] = rows.assign(method=name)
            methods[name] = {**_headline(rows), **extra, "train_seconds": time.perf_counter() - t}
        oracle_fn = attribute_agreement_scorer(identities, list(SSS_LABELS))
        oracle = evaluate_sss(oracle_fn, lists=lists, identity_level=True, identities=identities, lists_dir=args.lists)
        results["oracle"] = oracle.assign(method="oracle")
    table = pd.concat(results.values(), ignore_index=True)
    table.to_csv(out / "sss_results.csv", index=False)
    metrics = {
        "population": {"description": f"VoxCeleb1 + VGGFace, SSS split: {len(used)} train identities, "
                                      f"{len(v_train)} clips and {len(f_train)} photos; lists {', '.join(lists)}"},
        "recipe": {"voxceleb": str(wav_root), "vggface": str(face_root), "lists": args.lists or "shipped (vfmatch/data/sss)",
                   "voice_encoder": voice_enc.name, "face_encoder": face_enc.name, "labels": list(SSS_LABELS),
                   "methods": list(args.methods), "per_identity": args.per_identity, "device": device,
                   "seconds": time.perf_counter() - t0, "note": LABELS_NOTE},
        "evaluation": {"oracle": _headline(oracle)},
        "methods": methods,
        "sss": {name: rows.drop(columns="method") for name, rows in results.items()},
    }
    write_json(out / "metrics.json", metrics)
    fig = identification_figure({**methods, "oracle (true labels)": metrics["evaluation"]["oracle"]},
                                title="1:2 voice-to-face matching on the SSS validation lists")
    save_figure(fig, out, "identification")
    notes = [LABELS_NOTE, "The oracle knows the true gender and nationality of both sides; every method sees only "
             "the audio and the photos.", "Per-list results: sss_results.csv."]
    write_index(out, metrics, {"identification": "1:2 matching on the SSS lists"}, notes)
    return metrics


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def _methods() -> list[str]:
    return ["metaproperty", *list_embedding_methods()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vfmatch sss`` options."""
    parser.add_argument("--voxceleb", required=True, help="VoxCeleb1 folder: wav/<id>/<youtube id>/<n>.wav (or the wav folder)")
    parser.add_argument("--vggface", required=True, help="VGGFace folder: <name>/<n>.jpg, names as in the SSS metadata")
    parser.add_argument("--out", default="vfmatch_sss_report", help="report folder (default vfmatch_sss_report/)")
    parser.add_argument("--methods", nargs="+", default=["metaproperty", "contrastive"], choices=_methods(), metavar="NAME",
                        help=f"methods to train and score (default metaproperty contrastive); choices: {', '.join(_methods())}")
    parser.add_argument("--lists", default=None, metavar="DIR",
                        help="read the list files (same names as vfmatch/data/sss) from DIR instead of the shipped ones")
    parser.add_argument("--sss-lists", dest="sss_lists", nargs="+", default=None, choices=list(SSS_LISTS), metavar="NAME",
                        help=f"which lists to score (default all: {', '.join(SSS_LISTS)})")
    parser.add_argument("--limit-identities", dest="limit_identities", type=int, default=None, metavar="N",
                        help="train on the first N train identities only (a quick try)")
    parser.add_argument("--per-identity", dest="per_identity", type=int, default=10, metavar="N",
                        help="clips and photos per train identity (default 10)")
    parser.add_argument("--voice-encoder", dest="voice_encoder", default="logmel-stats", help="a fixed vector voice encoder")
    parser.add_argument("--face-encoder", dest="face_encoder", default="thumbnail", help="a fixed vector face encoder")
    parser.add_argument("--max-seconds", dest="max_seconds", type=float, default=10.0, help="clips are cut to this length")
    parser.add_argument("--image-size", dest="image_size", type=int, default=128, help="photos are resized to this square")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the embedding methods (default theirs; 20 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64, help="items per encoder call")
    parser.add_argument("--num-proc", dest="num_proc", type=int, default=None, help="processes for Dataset.map on a CPU")
    parser.add_argument("--cache", default=None, help="feature cache folder (default VFMATCH_CACHE/sss); shared by cluster workers")
    parser.add_argument("--num-shards", dest="num_shards", type=int, default=None, metavar="K",
                        help="cut each modality's items into K shards (default: about 2000 items each)")
    parser.add_argument("--shard-index", dest="shard_index", type=int, default=None, metavar="I",
                        help="extract only shard I of K (one cluster worker)")
    parser.add_argument("--extract-only", dest="extract_only", action="store_true", help="extract features and stop")
    parser.add_argument("--merge", action="store_true", help="extract nothing: train and score from the cached shards")
    parser.add_argument("--quick", action="store_true", help="few epochs (also VFMATCH_QUICK=1)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    if args.shard_index is not None and not args.extract_only:
        raise ValueError("--shard-index extracts one shard only: add --extract-only, then run --merge once all are done")
    if args.shard_index is not None and args.num_shards is None:
        raise ValueError("--shard-index needs --num-shards K (the same K on every worker)")
    if args.merge and args.extract_only:
        raise ValueError("--merge and --extract-only exclude each other")
    if (args.quick or quick_mode()) and args.epochs is None:
        args.epochs = 20
    metrics = run_sss(args)
    if metrics is None:
        return 0
    print(f"vfmatch sss: report written to {Path(args.out).resolve()}")
    print(f"  {metrics['population']['description']}")
    print("  1:2 V->F (any / same gender), verification AUC V->F:")
    for name, m in {**metrics["methods"], "oracle (true labels)": metrics["evaluation"]["oracle"]}.items():
        print(f"    {name:<22} {m['identification_1to2_vf']:.3f} / {m['identification_1to2_vf_gender_restricted']:.3f}"
              f"   AUC {m['auc']:.3f}")
    print(f"  {LABELS_NOTE}")
    return 0
