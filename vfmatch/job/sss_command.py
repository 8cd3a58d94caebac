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
   (:mod:`vfmatch.job.sss_features`: batched, resumable, shardable across a cluster),
   reading files through :mod:`vfmatch.data.media`; photos are face-detected and
   aligned (dlib, :func:`vfmatch.data.faces.align_photo`) unless ``--no-align``. A
   photo with no face found is left out and counted, and the list trials that need
   it are dropped (:mod:`vfmatch.job.sss_lists`; ``metrics["faces"]``);
3. trains the chosen methods on the **train** identities:

   * ``metaproperty``: the patent's idea on the only labels VoxCeleb1's metadata
     has, **gender and nationality** (no age, no ethnicity, no mother tongue):
     a voice and a face classifier per label, and a logistic regression on the
     Jensen-Shannon distances of their predicted distributions
     (:class:`~vfmatch.job.sss_metaproperty.LabelMatcher`). With ``--extractors
     PRESET`` the preset's pretrained models (by Hub id) run over the same items
     through the same cached extraction, and the method becomes
     :class:`vfmatch.matching.MetapropertyMatcher` on their metaproperties plus
     the labels' predicted distributions
     (:class:`~vfmatch.job.sss_metaproperty.PretrainedLabelMatcher`);
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
import importlib.util
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ..config import cache_dir, quick_mode
from ..embeddings import FeatureTable, create_embedding_method, list_embedding_methods
from ..evaluation.protocols import (SSS_LISTS, attribute_agreement_scorer, evaluate_sss, load_sss_identities,
                                    load_sss_list)
from ..extractors import create_calculator, list_extractor_presets
from ..features import create_encoder, create_face_encoder, create_voice_encoder
from .prepare import device_setting
from .report import identification_figure, save_figure, write_index, write_json
from .sss_features import (default_num_shards, extract_features, feature_folder, media_dataset, merge_shards,
                           skipped_items)
from .sss_lists import drop_trials
from .sss_metaproperty import SSS_LABELS, LabelMatcher, PretrainedLabelMatcher, hub_metaproperties, needs_age_sd

# SSS_LABELS and LabelMatcher live in sss_metaproperty now; imported here so the old
# ``vfmatch.job.sss_command`` spelling keeps working.
__all__ = ["sss_items", "run_sss", "REPORT_TITLE"]  # add_arguments, main: the CLI calls them by module

#: the heading of the report page (``vfmatch run`` has its own)
REPORT_TITLE = "vfmatch sss: VoxCeleb1 + VGGFace on the SSS lists"
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


def _hub_plan(args) -> tuple[dict, dict, dict]:
    """``--extractors``: ``(used, skipped, encoders)``. ``used``: metaproperty -> side ->
    extractor; ``encoders``: (side, encoder name) -> the loaded model, one per model
    (audEERING's gives voice gender and age in one pass). A binned metaproperty a model
    gives in years needs ``--age-sd`` (VoxCeleb1 has no ages to fit its spread)."""
    used, skipped = hub_metaproperties(args.extractors)
    encoders = {}
    for name in list(used):
        for side, ex in used[name].items():
            key = (side, ex.encoder)
            if key not in encoders:
                encoders[key] = create_encoder(side, ex.encoder, **(ex.encoder_kwargs or {}))
            if (needs_age_sd(name, encoders[key].labels) and args.age_sd is None
                    and (ex.calculator_kwargs or {}).get("age_sd") is None):
                skipped[name] = (f"{ex.encoder} gives {name} in years; its spread would be fitted on people of known "
                                 "age, which VoxCeleb1's metadata does not have (give --age-sd YEARS to use it)")
                used.pop(name)
                break
    encoders = {k: e for k, e in encoders.items() if any(used[n][k[0]].encoder == k[1] for n in used)}
    if not used:
        raise ValueError(f"--extractors {args.extractors}: no metaproperty has a pretrained voice and face model the "
                         f"recipe can use ({skipped})")
    return used, skipped, encoders


def _hub_tables(used, encoders, folders, table: FeatureTable, side: str, train_rows, age_sd) -> dict[str, np.ndarray]:
    """metaproperty -> (len(table), n_values): each pretrained model's outputs (read from its
    cached shards, in ``table``'s row order) mapped onto the metaproperty's values by the
    ``pretrained-labels`` calculator (:class:`vfmatch.extractors.PretrainedLabelCalculator`)."""
    out = {}
    for name, sides in used.items():
        ex = sides[side]
        enc = encoders[(side, ex.encoder)]
        X, P = merge_shards(*folders[(side, ex.encoder)])
        rows = pd.Index(P).get_indexer(table.paths)
        if (rows < 0).any():
            raise ValueError(f"{ex.encoder}: no output for {table.paths[rows < 0][0]!r}; re-run the extraction")
        X = X[rows]
        kwargs = dict(ex.calculator_kwargs or {})
        if needs_age_sd(name, enc.labels) and age_sd is not None:
            kwargs["age_sd"] = float(age_sd)
        calc = create_calculator("pretrained-labels", labels=list(enc.labels), metaproperty=name, **kwargs).fit(X[train_rows])
        out[name] = calc.predict_proba(X)
    return out


def _provenance(used, skipped, args, hub: bool) -> tuple[list[dict], list[str]]:
    """Which table column came from where (``metrics["recipe"]["metaproperties"]``), and the report's notes on it."""
    rows = [{"column": name, "source": "pretrained model",
             "voice_model": sides["voice"].encoder, "voice_hub_id": sides["voice"].encoder.split(":", 1)[1],
             "face_model": sides["face"].encoder, "face_hub_id": sides["face"].encoder.split(":", 1)[1]}
            for name, sides in used.items()]
    classifiers = (f"logistic regressions on {args.voice_encoder} (voice) and {args.face_encoder} (face) features, "
                   "trained on half of the train identities")
    rows += [{"column": (f"metadata_{label}" if hub else label), "source": "labels of the VoxCeleb1 metadata",
              "label": label, "classifiers": classifiers} for label in SSS_LABELS]
    notes = []
    if hub:
        notes.append("Metaproperties from pretrained models (extractor preset " + repr(args.extractors) + "): "
                     + "; ".join(f"{r['column']}: voice {r['voice_hub_id']}, face {r['face_hub_id']}" for r in rows
                                 if r["source"] == "pretrained model")
                     + ". Their outputs are the models' estimates, with the biases their model cards describe, "
                       "never facts about a person.")
        notes.append("From the metadata's labels: " + ", ".join(r["column"] for r in rows if r["source"] != "pretrained model")
                     + f" ({classifiers}).")
        if skipped:
            notes.append(f"Not used: {', '.join(skipped)} (why: recipe.skipped_metaproperties in metrics.json).")
    return rows, notes


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
    hub = args.extractors is not None
    hub_used, hub_skipped, hub_encoders = _hub_plan(args) if hub else ({}, {}, {})
    v_opts, f_opts = {"max_seconds": args.max_seconds}, {"image_size": args.image_size, "align": args.align}
    roots = {"voice": (wav_root, voices, v_opts), "face": (face_root, faces, f_opts)}
    with device_setting(args.device) as device:
        v_folder, kv = _extract(wav_root, voices, "voice", voice_enc, args, v_opts, device)
        f_folder, kf = _extract(face_root, faces, "face", face_enc, args, f_opts, device)
        # Each pretrained model through the same sharded, cached extraction (its own key: its fingerprint).
        hub_folders = {(side, name): _extract(*roots[side][:2], side, enc, args, roots[side][2], device)
                       for (side, name), enc in hub_encoders.items()}
        if args.extract_only:
            print(f"vfmatch sss: features in {v_folder}, {f_folder}"
                  + "".join(f", {folder}" for folder, _ in hub_folders.values()))
            return None
        voice_all = _table(v_folder, kv, "voice", lambda p: p.split("/", 1)[0], tv)
        face_all = _table(f_folder, kf, "face", lambda p: face_to_id[p.split("/", 1)[0]], tf)
        no_face = skipped_items(f_folder, kf)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        lists_dir, dropped = args.lists, {}
        if set(no_face) & set(lf):  # score the lists without the trials that need a faceless photo
            lists_dir = out / "lists_scored"
            dropped = drop_trials(lists, args.lists, identities, no_face, lists_dir)
            lists = [n for n in lists if dropped[n]["kept"] > 0]
            if not lists:
                raise ValueError(f"{face_root}: every trial of the lists needs a photo with no face found ({len(no_face)} photos)")
        # Training identities with clips and photos (a faceless photo may leave someone with none).
        both = np.intersect1d(voice_all.labels[np.isin(voice_all.paths, tv)], face_all.labels[np.isin(face_all.paths, tf)])
        mv = np.isin(voice_all.paths, tv) & np.isin(voice_all.labels, both)
        mf = np.isin(face_all.paths, tf) & np.isin(face_all.labels, both)
        v_train, f_train = voice_all.select(mv), face_all.select(mf)
        lvm, lfm = np.isin(voice_all.paths, lv), np.isin(face_all.paths, lf)
        v_lists, f_lists = voice_all.select(lvm), face_all.select(lfm)
        vm = _hub_tables(hub_used, hub_encoders, hub_folders, voice_all, "voice", mv, args.age_sd)
        fm = _hub_tables(hub_used, hub_encoders, hub_folders, face_all, "face", mf, args.age_sd)

        results, methods = {}, {}
        for name in args.methods:
            t = time.perf_counter()
            if name == "metaproperty" and hub:
                model = PretrainedLabelMatcher(seed=args.seed).fit(v_train, f_train, identities,
                                                                   {k: p[mv] for k, p in vm.items()},
                                                                   {k: p[mf] for k, p in fm.items()})
                scorer = model.path_scorer(v_lists, f_lists, {k: p[lvm] for k, p in vm.items()},
                                           {k: p[lfm] for k, p in fm.items()})
                extra = {"weights": model.weights_, "weight_method": model.matcher_.weight_method_}
            elif name == "metaproperty":
                model = LabelMatcher(seed=args.seed).fit(v_train, f_train, identities)
                scorer, extra = model.path_scorer(v_lists, f_lists), {"weights": model.weights_}
            else:
                params = {"seed": args.seed, "progress": args.progress}
                if args.epochs is not None:
                    params["epochs"] = args.epochs
                model = create_embedding_method(name, **params).fit(v_train, f_train)
                model.save(out / "models" / name)
                scorer, extra = model.path_scorer(v_lists, f_lists), {}
            rows = evaluate_sss(scorer, lists=lists, identities=identities, lists_dir=lists_dir)
            results[name] = rows.assign(method=name)
            methods[name] = {**_headline(rows), **extra, "train_seconds": time.perf_counter() - t}
        oracle_fn = attribute_agreement_scorer(identities, list(SSS_LABELS))
        oracle = evaluate_sss(oracle_fn, lists=lists, identity_level=True, identities=identities, lists_dir=lists_dir)
        results["oracle"] = oracle.assign(method="oracle")
    table = pd.concat(results.values(), ignore_index=True)
    table.to_csv(out / "sss_results.csv", index=False)
    provenance, hub_notes = _provenance(hub_used, hub_skipped, args, hub)
    faces_note = (f"Photos: the face the dlib detector finds, aligned on the common canvas at {args.image_size} px; "
                  f"photos with no face found: {len(no_face)} of {len(faces)}, left out"
                  + (f" with the list trials that need them ({sum(d['dropped'] for d in dropped.values())} trials or "
                     "retrieval gallery photos dropped; per list in metrics.json, faces.dropped_trials)" if dropped else "")
                  + "."
                  if args.align else
                  f"Photos were resized to {args.image_size} px squares without face detection or alignment (--no-align).")
    metrics = {
        "population": {"description": f"VoxCeleb1 + VGGFace, SSS split: {len(both)} train identities, "
                                      f"{len(v_train)} clips and {len(f_train)} photos; lists {', '.join(lists)}"},
        "recipe": {"voxceleb": str(wav_root), "vggface": str(face_root), "lists": args.lists or "shipped (vfmatch/data/sss)",
                   "voice_encoder": voice_enc.name, "face_encoder": face_enc.name, "labels": list(SSS_LABELS),
                   "extractors": args.extractors, "metaproperties": provenance, "skipped_metaproperties": hub_skipped,
                   "align": bool(args.align), "methods": list(args.methods), "per_identity": args.per_identity,
                   "device": device, "seconds": time.perf_counter() - t0, "note": LABELS_NOTE},
        "faces": {"photos": len(faces), "no_face": len(no_face), "no_face_examples": no_face[:10],
                  "dropped_trials": dropped, "note": faces_note},
        "evaluation": {"oracle": _headline(oracle)},
        "methods": methods,
        "sss": {name: rows.drop(columns="method") for name, rows in results.items()},
    }
    write_json(out / "metrics.json", metrics)
    fig = identification_figure({**methods, "oracle (true labels)": metrics["evaluation"]["oracle"]},
                                title="1:2 voice-to-face matching on the SSS validation lists")
    save_figure(fig, out, "identification")
    notes = [LABELS_NOTE, *hub_notes, faces_note, "The oracle knows the true gender and nationality of both sides; every "
             "method sees only the audio and the photos.", "Per-list results: sss_results.csv."]
    write_index(out, metrics, {"identification": "1:2 matching on the SSS lists"}, notes, title=REPORT_TITLE)
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
    parser.add_argument("--extractors", default=None, choices=list_extractor_presets(), metavar="PRESET",
                        help="the metaproperty method also matches on the metaproperties this extractor preset's "
                             "pretrained models give on both sides (e.g. pretrained: gender by Hub models), besides "
                             f"the metadata's labels; choices: {', '.join(list_extractor_presets())}")
    parser.add_argument("--age-sd", dest="age_sd", type=float, default=None, metavar="YEARS",
                        help="spread (years) put around a model's age in years; VoxCeleb1 has no ages to fit it, "
                             "so without it such an age is not used")
    parser.add_argument("--no-align", dest="align", action="store_false",
                        help="resize whole photos instead of detecting and aligning the face (dlib)")
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
    if args.align and importlib.util.find_spec("dlib") is None:
        raise ValueError('face alignment needs dlib, the "faces" extra: pip install "vfmatch[faces]"; or pass --no-align')
    if args.extractors is not None and "metaproperty" not in args.methods:
        raise ValueError("--extractors feeds the metaproperty method: add metaproperty to --methods")
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
    print(f"  {metrics['faces']['note']}")
    return 0
