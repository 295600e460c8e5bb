"""`avatar demo`: the main job on a built-in default (scikit-image's astronaut photo)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job on the built-in sample photo", description=__doc__)
    p.add_argument("-o", "--output-dir", type=Path, default=Path("out/demo"), help="folder for the results")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import cv2
    from skimage import data

    from avatar import OutputError, atomic_output
    from capture import face_closeup, load_canonical_mesh, mesh_edges, open_media, track_media

    out = args.output_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out} ({exc.strerror}): choose another --output-dir") from None
    photo = out / "astronaut.png"
    with atomic_output(photo) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    source = open_media(photo)
    track, stats = track_media(source, progress=False)
    track.save(out / "astronaut.track.npz")
    picture = out / "astronaut_mesh.png"
    closeup = face_closeup(next(source.frames()).image, track.landmarks_px[0],
                           mesh_edges(load_canonical_mesh().triangles))
    with atomic_output(picture) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(closeup, cv2.COLOR_RGB2BGR))
    print(f"tracked the sample photo in {stats.ms_per_frame:.0f} ms: 478 landmarks, 52 ARKit weights, head pose")
    print(f"result: {picture} (track data: {out / 'astronaut.track.npz'})")
    return 0
