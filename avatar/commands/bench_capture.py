"""`avatar bench fit`: speed of capture's fitting step (evaluate the head, render, backward, Adam)."""

from __future__ import annotations

import argparse
import json
import time


def add_parsers(kinds: argparse._SubParsersAction) -> None:
    f = kinds.add_parser("fit", help="fitting steps per second (cpu backend's backward pass)",
                         description="Fits N Gaussians placed on the sample photo's face and scaffold to that photo "
                                     "at --size: each step evaluates the head in torch, renders with the cpu "
                                     "backend, runs its backward pass, and takes an Adam step. Prints the warm "
                                     "steps per second and ms per step.")
    f.add_argument("--gaussians", type=int, default=30_000, help="Gaussians; default 30000")
    f.add_argument("--size", type=int, default=256, help="frame size, px; default 256")
    f.add_argument("--steps", type=int, default=100, help="timed steps (after 10 warm-up steps); default 100")
    f.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    f.set_defaults(run=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import torch

    from avatar.sample import sample_photo
    from capture import generic_expression_basis, load_canonical_mesh, track_image
    from capture.face_fit import fit_face
    from capture.head_fit import FitFrames, HeadModel, fit_head, initial_head
    from capture.masks import head_mask
    from capture.scaffold import build_scaffold

    torch.set_num_threads(2)
    photo = sample_photo()
    track = track_image(photo)
    mesh = load_canonical_mesh()
    face = fit_face(track, mesh, generic_expression_basis(mesh))
    image = cv2.resize(photo, (args.size, args.size), interpolation=cv2.INTER_AREA)
    mask = head_mask(image, track.landmarks_px[0, :, :2] * args.size / photo.shape[1])
    frames = FitFrames(image[None], mask[None], face.camera.resized(args.size, args.size), track.weights,
                       face.head_rotation.astype(np.float32), face.head_translation_cm.astype(np.float32))
    scaffold = build_scaffold(face.neutral_vertices_cm, face.vertex_deltas_cm, mesh.triangles)
    model = HeadModel(initial_head(scaffold, frames, 0, args.gaussians))
    fit_head(model, frames, 10, densify_every=10**9)
    began = time.perf_counter()
    log = fit_head(model, frames, 10 + args.steps, start=10, densify_every=10**9)
    seconds = time.perf_counter() - began
    results = {"gaussians": args.gaussians, "size": args.size, "steps": args.steps,
               "steps_per_s": round(args.steps / seconds, 2), "ms_per_step": round(1000 * seconds / args.steps, 1),
               "psnr_end": round(float(np.mean(log.psnr[-10:])), 2)}
    print(f"{args.gaussians} Gaussians at {args.size}x{args.size}: {results['steps_per_s']} steps/s "
          f"({results['ms_per_step']} ms per step: evaluate, render, backward, Adam)")
    if args.json:
        print(json.dumps(results))
    return 0
