"""MediaPipe's canonical face mesh, read from the Face Landmarker model, and named
groups of its landmarks (lips, eyes, irises, brows, face oval, nose).

Canonical face space — the one convention every user of this mesh refers to.
Units are centimetres; the axes are right-handed and were read off the data:

- +x towards the subject's own left (the image's right when the face looks at
  the camera): left-eye outer corner 263 at x = +4.4, right-eye outer corner 33
  at x = -4.4. The mesh is mirror-symmetric about x = 0.
- +y up: forehead 10 at y = +8.3, chin 152 at y = -9.4.
- +z out of the face, towards a viewer in front: nose tip 4 at z = +7.6 is the
  most forward point, the sides of the face (234, 454) are at z = -2.4.
- The origin is on the mid-plane about 7.5 cm behind the nose tip, between eye
  level (y = +2.7) and the nose tip (y = -1.1).
- Triangles `(a, b, c)` wind counter-clockwise seen from +z, so the normal
  `(b - a) × (c - a)` points out of the face (99% of triangles have n_z > 0;
  the area-weighted mean normal is (0, -0.09, 1.00)). Winding is consistent:
  every interior edge is used in opposite directions by its two triangles.
- The mesh is a disc: its only boundary is the face oval. Unlike MediaPipe's
  FACE_LANDMARKS_TESSELATION it has triangles across the closed eyes and the
  closed mouth (the inner lip loop), and 209 of its quad diagonals are flipped
  with respect to that tessellation.
- UVs: u grows with +x (u = 0.5 on the mid-line), v grows downwards (forehead
  v = 0.11, chin v = 0.95): image-style, origin at the top left; flip v for OpenGL.

"Left" and "right" in names (`left_eye`, `LEFT_IRIS_CENTER`) are the subject's
own, as in MediaPipe's LEFT_* constants: the left eye (263, 362) is at +x and
appears on the right side of an unmirrored camera image.
"""

from __future__ import annotations

import functools
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.errors import ModelFileError
from avatar.track import NUM_MESH_VERTICES
from capture import protobuf as pb
from capture.model_files import resolve_face_model

METADATA_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
# Landmarks 468..477 (of avatar.NUM_LANDMARKS = 478) are the two irises: centre + 4 ring points each.
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473

# Field numbers of mediapipe/tasks/cc/vision/face_geometry/proto/
# geometry_pipeline_metadata.proto and mesh_3d.proto.
_CANONICAL_MESH, _PROCRUSTES_BASIS = 1, 2  # GeometryPipelineMetadata
_VERTEX_TYPE, _PRIMITIVE_TYPE, _VERTEX_BUFFER, _INDEX_BUFFER = 1, 2, 3, 4  # Mesh3d
_LANDMARK_ID, _WEIGHT = 1, 2  # WeightedLandmarkRef
_VERTEX_PT, _TRIANGLE = 0, 0  # enum values: x, y, z, u, v per vertex; 3 indices per primitive
_FLOATS_PER_VERTEX = 5


@dataclass(frozen=True)
class CanonicalFaceMesh:
    """The neutral MediaPipe face in canonical face space (see the module docstring).

    Arrays are read-only: one instance is shared by every caller of `load_canonical_mesh`.
    """

    vertices_cm: np.ndarray  # [468, 3] float32, canonical face space in cm
    uvs: np.ndarray  # [468, 2] float32 in [0, 1], v downwards
    triangles: np.ndarray  # [898, 3] int32 vertex indices, counter-clockwise seen from +z
    procrustes_ids: np.ndarray  # [K] int32 landmarks MediaPipe fits the head pose to (K = 33)
    procrustes_weights: np.ndarray  # [K] float32 their weights in that fit


def _loops(**groups: list[int]) -> dict[str, np.ndarray]:
    arrays = {name: np.array(ids, dtype=np.int32) for name, ids in groups.items()}
    for ids in arrays.values():
        ids.setflags(write=False)
    return arrays


# Closed loops of landmark indices: the last entry connects back to the first, no
# index repeats. All run counter-clockwise seen from the front (+z, y up), like the
# triangles. Edges between consecutive entries are exactly MediaPipe's
# FaceLandmarksConnections, except: each brow is the outline of MediaPipe's two brow
# polylines (lower and upper edge), joined by two closing edges; `nose` is the loop
# around the nostrils of FACE_LANDMARKS_NOSE, without its ridge 168-6-197-195-5-4-1-19-94-2;
# the iris loops are the ring only (centres: RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER), starting
# at the ring's +x point, then its top (checked on real detections: irises have no mesh vertex).
LANDMARK_GROUPS: dict[str, np.ndarray] = _loops(
    lips_outer=[61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185],
    lips_inner=[78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191],
    right_eye=[33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246],
    left_eye=[263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249],
    right_iris=[469, 470, 471, 472],
    left_iris=[474, 475, 476, 477],
    right_brow=[46, 53, 52, 65, 55, 107, 66, 105, 63, 70],
    left_brow=[276, 300, 293, 334, 296, 336, 285, 295, 282, 283],
    face_oval=[10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
               377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338],
    nose=[4, 45, 220, 115, 48, 64, 98, 97, 2, 326, 327, 294, 278, 344, 440, 275],
)


def mesh_edges(triangles: np.ndarray) -> np.ndarray:
    """The unique undirected edges of a triangle mesh.

    Args:
        triangles: [F, 3] vertex indices.
    Returns:
        [E, 2] edges `(i, j)` with i < j, rows sorted; same dtype as `triangles`.
    """
    pairs = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def _scalar(wire_type: int, value: pb.FieldValue, expected: int, what: str) -> pb.FieldValue:
    if wire_type != expected:
        raise ValueError(f"{what} has wire type {wire_type}, expected {expected}")
    return value


def _parse_procrustes_ref(data: bytes) -> tuple[int, float]:
    landmark_id, weight = 0, 0.0  # proto defaults for absent fields
    for field, wire_type, value in pb.iter_fields(data):
        if field == _LANDMARK_ID:
            landmark_id = _scalar(wire_type, value, pb.VARINT, "landmark_id")
        elif field == _WEIGHT:
            weight = float(pb.packed_floats(_scalar(wire_type, value, pb.I32, "weight"))[0])
    return landmark_id, weight


def _parse_mesh(data: bytes) -> tuple[np.ndarray, list[int]]:
    """A `Mesh3d` message -> ([V * 5] float32 vertex buffer, [F * 3] indices)."""
    floats: list[np.ndarray] = [np.zeros(0, np.float32)]
    indices: list[int] = []
    for field, wire_type, value in pb.iter_fields(data):
        if field == _VERTEX_TYPE and _scalar(wire_type, value, pb.VARINT, "vertex_type") != _VERTEX_PT:
            raise ValueError(f"vertex type {value} is not VERTEX_PT")
        elif field == _PRIMITIVE_TYPE and _scalar(wire_type, value, pb.VARINT, "primitive_type") != _TRIANGLE:
            raise ValueError(f"primitive type {value} is not TRIANGLE")
        elif field == _VERTEX_BUFFER:
            floats.append(pb.repeated_floats(wire_type, value))
        elif field == _INDEX_BUFFER:
            indices += pb.repeated_varints(wire_type, value)
    return np.concatenate(floats), indices


def parse_geometry_metadata(data: bytes) -> CanonicalFaceMesh:
    """Decode a serialised `GeometryPipelineMetadata` message into the canonical mesh.

    Raises:
        ValueError: the bytes are not such a message, or not a 468-vertex triangle mesh.
    """
    vertex_buffer, indices = np.zeros(0, np.float32), []
    basis: list[tuple[int, float]] = []
    for field, wire_type, value in pb.iter_fields(data):
        if field == _CANONICAL_MESH:
            vertex_buffer, indices = _parse_mesh(_scalar(wire_type, value, pb.LEN, "canonical_mesh"))
        elif field == _PROCRUSTES_BASIS:
            basis.append(_parse_procrustes_ref(_scalar(wire_type, value, pb.LEN, "procrustes_landmark_basis")))

    if vertex_buffer.size != NUM_MESH_VERTICES * _FLOATS_PER_VERTEX:
        raise ValueError(f"{vertex_buffer.size} vertex floats, expected {NUM_MESH_VERTICES} x {_FLOATS_PER_VERTEX}")
    if not indices or len(indices) % 3 or max(indices) >= NUM_MESH_VERTICES:
        raise ValueError(f"{len(indices)} triangle indices are not triangles over {NUM_MESH_VERTICES} vertices")
    if not basis or max(i for i, _ in basis) >= NUM_MESH_VERTICES:
        raise ValueError("the Procrustes landmark basis is empty or names a landmark outside the mesh")
    vertex_buffer = vertex_buffer.reshape(NUM_MESH_VERTICES, _FLOATS_PER_VERTEX)
    mesh = CanonicalFaceMesh(
        vertices_cm=np.ascontiguousarray(vertex_buffer[:, :3]),
        uvs=np.ascontiguousarray(vertex_buffer[:, 3:]),
        triangles=np.array(indices, dtype=np.int32).reshape(-1, 3),
        procrustes_ids=np.array([i for i, _ in basis], dtype=np.int32),
        procrustes_weights=np.array([w for _, w in basis], dtype=np.float32),
    )
    for array in vars(mesh).values():
        array.setflags(write=False)
    return mesh


@functools.lru_cache(maxsize=None)
def _load(path: str) -> CanonicalFaceMesh:
    try:
        with zipfile.ZipFile(path) as bundle:
            data = bundle.read(METADATA_MEMBER)
        return parse_geometry_metadata(data)
    # Each is a damaged or foreign file: a missing member is a KeyError, a bad deflate stream zlib.error.
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"cannot read the canonical face mesh from {path} ({reason}): "
                             f"it must be MediaPipe's face_landmarker.task") from exc


def load_canonical_mesh(model_path: str | Path | None = None) -> CanonicalFaceMesh:
    """The canonical face mesh from a `face_landmarker.task` bundle, read once per path.

    Args:
        model_path: the bundle; None resolves the verified model (`resolve_face_model`).
    Raises:
        ModelFileError: the file is missing, not a zip, lacks the geometry member, or
            that member does not decode.
    """
    path = Path(model_path) if model_path is not None else resolve_face_model()
    return _load(str(path.resolve()))
