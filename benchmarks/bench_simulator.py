"""How fast is the simulator? Issue target: 200 identities x 4 clips (3-6 s) x 4 faces in < 30 s.

Run: python benchmarks/bench_simulator.py [--identities 200]
Prints the time of each stage measured in this one run (no cache is used).
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from vfmatch.simulator.faces import render_faces
    from vfmatch.simulator.population import assemble_population
    from vfmatch.simulator.traits import draw_identities
    from vfmatch.simulator.voices import synthesize_clips

    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    t0 = time.perf_counter()
    traits = draw_identities(args.identities, seed=args.seed)
    t1 = time.perf_counter()
    clips, clip_meta = synthesize_clips(traits, 4, seed=args.seed, clip_seconds=(3.0, 6.0))
    t2 = time.perf_counter()
    images, face_meta = render_faces(traits, 4, seed=args.seed, image_size=112)
    t3 = time.perf_counter()
    pop = assemble_population(traits, clips, clip_meta, images, face_meta, info={})
    t4 = time.perf_counter()

    seconds_audio = sum(len(c) for c in clips) / 16000
    print(f"identities: {len(pop)}, clips: {pop.voices.num_rows} ({seconds_audio:.0f} s of audio), faces: {pop.faces.num_rows}")
    print(f"draw traits      {t1 - t0:7.2f} s")
    print(f"synthesise voice {t2 - t1:7.2f} s  ({seconds_audio / (t2 - t1):.0f}x real time)")
    print(f"render faces     {t3 - t2:7.2f} s  ({len(images) / (t3 - t2):.0f} faces/s)")
    print(f"build datasets   {t4 - t3:7.2f} s")
    total = t4 - t0
    print(f"total            {total:7.2f} s  (target < 30 s: {'met' if total < 30 else 'NOT met'})")


if __name__ == "__main__":
    main()
