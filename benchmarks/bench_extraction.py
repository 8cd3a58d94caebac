"""Extraction throughput: clips/s and faces/s through the default extractor set,
batched against one item at a time, with the ratio, in one run.

    python benchmarks/bench_extraction.py                 # 60 simulated people, 64 clips and faces
    python benchmarks/bench_extraction.py --items 128 --batch-size 64

The extractors are trained with the quick setting (few epochs): training length
does not change the cost of extraction, only the models' sizes do, and those
are the default ones. Every figure printed is measured in this run.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def _time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (the least disturbed by other processes)."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=60, help="simulated people (default 60)")
    parser.add_argument("--items", type=int, default=64, help="clips and faces to extract (default 64)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per mode; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import vfmatch
    from vfmatch.config import default_device
    from vfmatch.data.population import SAMPLE_RATE
    from vfmatch.extractors import ExtractorSet

    pop = vfmatch.make_population(args.identities, seed=args.seed)
    split = pop.split(seed=args.seed)
    t0 = time.perf_counter()
    extractors = ExtractorSet(quick=True, progress=False).fit(split.train)
    fit_s = time.perf_counter() - t0

    n = min(args.items, pop.voices.num_rows, pop.faces.num_rows)
    clips = pop.audios(np.arange(n))
    images = pop.images(np.arange(n))
    landmarks = np.asarray(pop.faces.select(range(n))["landmarks"], dtype=np.float32)
    seconds_of_audio = sum(len(c) for c in clips) / SAMPLE_RATE

    # Warm-up (first calls allocate and pick kernels).
    extractors.predict_voices(clips[:2], sample_rate=SAMPLE_RATE)
    extractors.predict_faces(images[:2], landmarks=landmarks[:2])

    voice_batched = _time(lambda: extractors.predict_voices(clips, sample_rate=SAMPLE_RATE, batch_size=args.batch_size), args.repeats)
    voice_single = _time(lambda: [extractors.predict_voices([c], sample_rate=SAMPLE_RATE) for c in clips], args.repeats)
    face_batched = _time(lambda: extractors.predict_faces(images, landmarks=landmarks, batch_size=args.batch_size), args.repeats)
    face_single = _time(lambda: [extractors.predict_faces(images[i : i + 1], landmarks=landmarks[i : i + 1]) for i in range(n)], args.repeats)

    from vfmatch.utils import limit_threads

    print(f"device: {default_device()}, threads per extraction: {limit_threads().n} (VFMATCH_THREADS), {platform.machine()}")
    print(f"population: {args.identities} people; extractor set: {len(extractors.extractors)} extractors (fitted in {fit_s:.1f} s)")
    print(f"items: {n} clips ({seconds_of_audio:.0f} s of audio) and {n} faces; batch size {args.batch_size}; best of {args.repeats}")
    print(f"{'':24s}{'batched':>12s}{'one at a time':>16s}{'ratio':>8s}")
    print(f"{'voice (clips/s)':24s}{n / voice_batched:12.1f}{n / voice_single:16.1f}{voice_single / voice_batched:8.2f}")
    print(f"{'face (faces/s)':24s}{n / face_batched:12.1f}{n / face_single:16.1f}{face_single / face_batched:8.2f}")
    print("(all 8 metaproperties per item; ratio = one-at-a-time time / batched time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
