"""Every method on the same people and lists, per seed; and what embedding training costs.

Usage::

    python benchmarks/bench_methods.py                          # default population, seeds 0 1 2, all six methods
    python benchmarks/bench_methods.py --seeds 0 --quick        # the quick population
    python benchmarks/bench_methods.py --subset gender=female --methods triplet weighted_triplet \
        --embedding-train all subset all+subset                  # seed 001's homogeneous-population question
        (add --extractors fast when only embedding rows matter: they do not use the extractors)
    python benchmarks/bench_methods.py --scaling                # training seconds vs identities and embedding size
    python benchmarks/bench_methods.py --finetune-encoders --seeds 0 --methods triplet contrastive
                                                                # frozen vs fine-tuned speaker-cnn / face-cnn

Prints, from one run of this script: for each seed (and each
``--embedding-train`` choice), the table that ``vfmatch run`` writes to
``metrics.json["methods"]`` (1:2 V->F unrestricted and same-gender with 95%
identity-bootstrap intervals, AUC, EER, training seconds), then whether the
hybrid is within 0.01 of the better of ``metaproperty`` and the best embedding
(issue 11's bar). ``--scaling`` times one method (``triplet`` by default) on
the train role of growing populations and with growing embedding sizes.
``--finetune-encoders`` trains each embedding method (``triplet`` and
``contrastive`` by default) twice on the same trainable encoders,
``speaker-cnn`` and ``face-cnn`` pre-trained once on the train role: frozen
(features computed once) and fine-tuned end to end (``finetune_encoders=True``),
and prints the test role's 1:2 V->F accuracy (unrestricted and same-gender,
95% identity-bootstrap intervals), AUC and training seconds of both.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _train_seconds(entry: dict) -> float:
    """Training seconds of one method's ``seconds`` entry (nested for embeddings)."""
    t = entry.get("training", 0.0)
    if isinstance(t, dict):
        return float(sum(v if isinstance(v, (int, float)) else _train_seconds({"training": v}) for v in t.values()))
    return float(t)


def compare(seed: int, args, embedding_train: str) -> dict:
    from vfmatch.job.methods import compare_methods, methods_metrics
    from vfmatch.job.prepare import RunConfig, make_role_pairs, prepare

    config = RunConfig(seed=seed, quick=args.quick, identities=args.identities, subset=args.subset,
                       embedding_train=embedding_train, extractors=args.extractors, progress=False)
    data = prepare(config)
    pairs = make_role_pairs(data, seed)
    t0 = time.perf_counter()
    scores = compare_methods(data, pairs, config, methods=args.methods)
    wall = time.perf_counter() - t0
    metrics = methods_metrics(scores, config)
    label = f"seed {seed}" + (f", subset {args.subset}, embeddings trained on {embedding_train}" if args.subset else "")
    print(f"\n{label}: {len(data.parts['test'])} test identities, {data.parts['test'].voices.num_rows} clips "
          f"({wall:.0f} s for every method)")
    print(f"{'method':<18}{'1:2 V->F':>10}{'95% CI':>17}{'same gender':>13}{'95% CI':>17}{'AUC':>7}{'EER':>7}{'train s':>9}")
    for name, m in metrics.items():
        ci = m.get("identification_1to2_vf_ci", [np.nan] * 2)
        cig = m.get("identification_1to2_vf_gender_restricted_ci", [np.nan] * 2)
        print(f"{name:<18}{m['identification_1to2_vf']:>10.3f}   [{ci[0]:.3f}, {ci[1]:.3f}]"
              f"{m.get('identification_1to2_vf_gender_restricted', np.nan):>13.3f}   [{cig[0]:.3f}, {cig[1]:.3f}]"
              f"{m['auc']:>7.3f}{m['eer']:>7.3f}{_train_seconds(m['seconds']):>9.1f}")
    if "hybrid" in metrics:
        others = [n for n in metrics if n != "hybrid"]
        best = max(others, key=lambda n: metrics[n]["identification_1to2_vf"])
        gap = metrics["hybrid"]["identification_1to2_vf"] - metrics[best]["identification_1to2_vf"]
        print(f"hybrid (adds {metrics['hybrid']['embedding']}) minus the best other ({best}): {gap:+.3f} "
              f"-> {'within' if gap >= -0.01 else 'NOT within'} 0.01")
    return metrics


def scaling(args) -> None:
    """Training seconds of one method against training identities and embedding size.

    The features are those of the run's train role (default population, cached
    once); smaller training sets are the first n identities of it, so only the
    training itself is timed."""
    from vfmatch.embeddings import FeatureTable, create_embedding_method, fit_population, population_table
    from vfmatch.job.prepare import RunConfig, load_or_simulate, split_roles

    method = (args.methods or ["triplet"])[0]
    config = RunConfig(seed=args.seeds[0], quick=args.quick, identities=args.identities, progress=False)
    parts = split_roles(load_or_simulate(config), config)
    res = fit_population(method, parts["train"], parts["test"], seed=config.seed, epochs=1)  # features, once
    full = {m: population_table(res.encoder_objects[m], parts["train"], m, fill=res.fill[m]) for m in ("voice", "face")}
    ids = np.unique(full["voice"].labels)
    print(f"\ntraining seconds of {method!r} (default epochs) on the train role of seed {config.seed}, "
          f"{ids.size} identities (CPU threads {os.cpu_count()})")
    print(f"{'train ids':>10}{'embed dim':>10}{'train s':>9}{'s per id':>10}")
    for n, dim in [(ids.size // 4, 128), (ids.size // 2, 128), (ids.size, 128), (ids.size, 32), (ids.size, 512)]:
        keep = set(ids[:n])
        sub = {m: FeatureTable(t.features[np.isin(t.labels, list(keep))], t.labels[np.isin(t.labels, list(keep))],
                               modality=m) for m, t in full.items()}
        est = create_embedding_method(method, seed=config.seed, embed_dim=dim)
        t0 = time.perf_counter()
        est.fit(sub["voice"], sub["face"])
        seconds = time.perf_counter() - t0
        print(f"{n:>10}{dim:>10}{seconds:>9.1f}{seconds / n:>10.3f}")


def finetune_comparison(seed: int, args) -> dict:
    """Frozen vs fine-tuned encoders, each method, on the run's train and test roles of ``seed``."""
    from vfmatch.embeddings import fit_population
    from vfmatch.evaluation import evaluate_similarity
    from vfmatch.features import create_encoder
    from vfmatch.job.prepare import RunConfig, load_or_simulate, split_roles

    methods = args.methods or ["triplet", "contrastive"]
    config = RunConfig(seed=seed, quick=args.quick, identities=args.identities, progress=False)
    parts = split_roles(load_or_simulate(config), config)
    # Pre-trained once, on the train role, by the first fit; every fit starts from these weights.
    encoders = {"voice_encoder": create_encoder("voice", "speaker-cnn", seed=seed),
                "face_encoder": create_encoder("face", "face-cnn", seed=seed)}
    test = parts["test"]
    print(f"\nseed {seed}: speaker-cnn + face-cnn, {len(parts['train'])} train / {len(test)} test identities, "
          f"{test.voices.num_rows} test clips (CPU threads {os.cpu_count()})")
    print(f"{'method':<18}{'encoders':<11}{'1:2 V->F':>10}{'95% CI':>17}{'same gender':>13}{'95% CI':>17}"
          f"{'AUC':>7}{'train s':>9}")
    out = {}
    for name in methods:
        for finetune in (False, True):
            res = fit_population(name, parts["train"], test, seed=seed, cache=config.cache, finetune_encoders=finetune,
                                 **encoders)
            m = evaluate_similarity(res.similarity(), res.voice_speakers, res.face_speakers,
                                    voice_gender=res.voice_gender, face_gender=res.face_gender, seed=seed)
            ci, cig = m["ci"]["identification_1to2_vf"], m["ci"]["identification_1to2_vf_gender_restricted"]
            mode = "fine-tuned" if finetune else "frozen"
            print(f"{name:<18}{mode:<11}{m['identification_1to2_vf']:>10.3f}   [{ci[0]:.3f}, {ci[1]:.3f}]"
                  f"{m['identification_1to2_vf_gender_restricted']:>13.3f}   [{cig[0]:.3f}, {cig[1]:.3f}]"
                  f"{m['auc']:>7.3f}{res.seconds['train']:>9.1f}")
            out[name, mode] = m
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--identities", type=int, default=None)
    ap.add_argument("--subset", default=None)
    ap.add_argument("--extractors", default="default",
                    help="extractor preset of the metaproperty and hybrid rows; the embeddings do not use the "
                         "extractors, so 'fast' gives the same embedding rows sooner")
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--embedding-train", nargs="+", default=["all"], dest="embedding_train")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--finetune-encoders", action="store_true", dest="finetune_encoders",
                    help="frozen vs fine-tuned speaker-cnn / face-cnn under each embedding method")
    args = ap.parse_args(argv)
    if args.scaling:
        scaling(args)
        return 0
    if args.finetune_encoders:
        for seed in args.seeds:
            finetune_comparison(seed, args)
        return 0
    for seed in args.seeds:
        for mode in args.embedding_train:
            compare(seed, args, mode)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
