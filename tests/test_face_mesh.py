"""The canonical face mesh read from the Face Landmarker bundle, its landmark
groups against MediaPipe's own connection lists, and the protobuf decoder."""

from __future__ import annotations

import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from avatar.errors import ModelFileError
from capture import protobuf as pb
from capture.face_mesh import (
    LANDMARK_GROUPS,
    METADATA_MEMBER,
    CanonicalFaceMesh,
    load_canonical_mesh,
    mesh_edges,
    parse_geometry_metadata,
)

Edge = tuple[int, int]


def _undirected(pairs) -> set[Edge]:
    return {(min(a, b), max(a, b)) for a, b in pairs}


def _loop_edges(loop: np.ndarray) -> set[Edge]:
    return _undirected(zip(loop.tolist(), np.roll(loop, -1).tolist()))


def _connections(connections) -> set[Edge]:
    return _undirected((c.start, c.end) for c in connections)


def _signed_area_xy(points: np.ndarray) -> float:
    """Shoelace area of the polygon [N, 2]; > 0 when counter-clockwise with y up."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


@pytest.fixture(scope="module")
def mesh(face_model_path: Path) -> CanonicalFaceMesh:
    return load_canonical_mesh(face_model_path)


@pytest.fixture(scope="module")
def face_connections():
    vision = pytest.importorskip("mediapipe.tasks.python.vision")
    return vision.FaceLandmarksConnections


# --- the mesh ---------------------------------------------------------------

def test_counts_shapes_dtypes(mesh: CanonicalFaceMesh) -> None:
    assert mesh.vertices_cm.shape == (468, 3) and mesh.vertices_cm.dtype == np.float32
    assert mesh.uvs.shape == (468, 2) and mesh.uvs.dtype == np.float32
    assert mesh.triangles.shape == (898, 3) and mesh.triangles.dtype == np.int32
    assert mesh.procrustes_ids.shape == mesh.procrustes_weights.shape == (33,)
    assert mesh.procrustes_ids.dtype == np.int32 and mesh.procrustes_weights.dtype == np.float32
    assert np.all(mesh.procrustes_weights > 0)


def test_indices_in_range_and_every_vertex_used(mesh: CanonicalFaceMesh) -> None:
    assert mesh.triangles.min() == 0 and mesh.triangles.max() == 467
    assert len(np.unique(mesh.triangles)) == 468
    assert np.all((mesh.procrustes_ids >= 0) & (mesh.procrustes_ids < 468))


def test_uvs_in_unit_square(mesh: CanonicalFaceMesh) -> None:
    assert np.all((mesh.uvs >= 0) & (mesh.uvs <= 1))


def test_arrays_are_read_only_and_cached(mesh: CanonicalFaceMesh, face_model_path: Path) -> None:
    assert load_canonical_mesh(face_model_path) is mesh
    assert load_canonical_mesh() is mesh  # None resolves to the same verified file
    with pytest.raises(ValueError):
        mesh.vertices_cm[0, 0] = 1.0


def test_size_in_cm(mesh: CanonicalFaceMesh) -> None:
    v = mesh.vertices_cm
    assert 12.0 < v[454, 0] - v[234, 0] < 16.0  # widest points of the face oval
    assert 15.0 < v[10, 1] - v[152, 1] < 20.0  # forehead to chin


def test_coordinate_convention(mesh: CanonicalFaceMesh) -> None:
    """The axes the module docstring states: +x subject's left, +y up, +z out of the face."""
    v, uv = mesh.vertices_cm, mesh.uvs
    assert v[263, 0] > 0 > v[33, 0]  # left-eye outer corner at +x
    assert v[10, 1] > v[1, 1] > v[152, 1]  # forehead above nose tip above chin
    assert v[:, 2].argmax() in (1, 4) and v[1, 2] > v[234, 2] + 8  # the nose points to +z
    assert uv[263, 0] > 0.5 > uv[33, 0] and uv[10, 1] < uv[152, 1]  # u with x, v downwards
    mirror = v * np.array([-1, 1, 1], np.float32)
    nearest = np.linalg.norm(mirror[:, None] - v[None], axis=2).min(axis=1)
    assert nearest.max() < 1e-3  # symmetric about x = 0


def test_triangles_non_degenerate(mesh: CanonicalFaceMesh) -> None:
    a, b, c = (mesh.vertices_cm[mesh.triangles[:, i]].astype(np.float64) for i in range(3))
    areas_cm2 = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    assert areas_cm2.min() > 1e-3
    assert np.all(np.ptp(np.sort(mesh.triangles, axis=1), axis=1) > 0)


def test_consistent_winding_with_outward_normals(mesh: CanonicalFaceMesh) -> None:
    t = mesh.triangles
    directed = Counter(map(tuple, np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]).tolist()))
    assert max(directed.values()) == 1  # a shared edge runs opposite ways in its two triangles
    v = mesh.vertices_cm.astype(np.float64)
    normals = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    mean = normals.sum(axis=0) / np.linalg.norm(normals.sum(axis=0))
    assert mean[2] > 0.99 and np.mean(normals[:, 2] > 0) > 0.95


def test_mesh_is_a_disc_bounded_by_the_face_oval(mesh: CanonicalFaceMesh) -> None:
    """Eyes and mouth are closed by triangles: the only boundary is the face oval."""
    t = mesh.triangles
    uses = Counter(map(tuple, np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1).tolist()))
    boundary = {edge for edge, count in uses.items() if count == 1}
    assert boundary == _loop_edges(LANDMARK_GROUPS["face_oval"])
    v, f, e = 468, len(t), len(uses)
    assert v - e + f == 1  # Euler characteristic of a disc


def test_mesh_edges_unique_sorted(mesh: CanonicalFaceMesh) -> None:
    edges = mesh_edges(mesh.triangles)
    assert edges.shape == (1365, 2) and edges.dtype == mesh.triangles.dtype
    assert np.all(edges[:, 0] < edges[:, 1])
    assert len(_undirected(edges.tolist())) == len(edges)
    assert np.array_equal(mesh_edges(np.array([[0, 1, 2], [2, 1, 3]])), [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]])


def test_mesh_edges_versus_mediapipe_tessellation(mesh: CanonicalFaceMesh, face_connections) -> None:
    """Not equal: FACE_LANDMARKS_TESSELATION leaves the eyes and mouth open and
    triangulates 209 quads along the other diagonal; nothing else differs."""
    ours = _undirected(mesh_edges(mesh.triangles).tolist())
    theirs = _connections(face_connections.FACE_LANDMARKS_TESSELATION)
    assert max(max(e) for e in theirs) < 468

    chords = set()  # edges across the eye and inner-lip openings
    for name in ("lips_inner", "left_eye", "right_eye"):
        loop = set(LANDMARK_GROUPS[name].tolist())
        chords |= {e for e in ours if e[0] in loop and e[1] in loop} - _loop_edges(LANDMARK_GROUPS[name])
    assert len(chords) == (20 - 3) + 2 * (16 - 3)  # a triangulated n-gon has n - 3 diagonals
    assert not chords & theirs

    opposite: dict[Edge, list[int]] = {}
    for tri in mesh.triangles.tolist():
        for i in range(3):
            opposite.setdefault(_undirected([(tri[i], tri[(i + 1) % 3])]).pop(), []).append(tri[(i + 2) % 3])
    only_ours = ours - chords - theirs
    flipped = {(min(opposite[e]), max(opposite[e])) for e in only_ours}
    assert len(only_ours) == 209
    assert flipped == theirs - ours


# --- landmark groups ----------------------------------------------------------

def test_groups_are_closed_loops_of_landmark_indices() -> None:
    assert set(LANDMARK_GROUPS) == {"lips_outer", "lips_inner", "left_eye", "right_eye", "left_iris",
                                    "right_iris", "left_brow", "right_brow", "face_oval", "nose"}
    for name, loop in LANDMARK_GROUPS.items():
        assert loop.dtype == np.int32 and not loop.flags.writeable, name
        assert len(set(loop.tolist())) == len(loop) >= 4, name
        assert loop.min() >= 0 and loop.max() < 478, name
    assert LANDMARK_GROUPS["lips_outer"][0] == 61 and LANDMARK_GROUPS["lips_inner"][0] == 78
    assert {78, 308} <= set(LANDMARK_GROUPS["lips_inner"].tolist())


def test_groups_match_mediapipe_connections(face_connections) -> None:
    g = {name: _loop_edges(loop) for name, loop in LANDMARK_GROUPS.items()}
    fc = face_connections
    assert g["lips_outer"] | g["lips_inner"] == _connections(fc.FACE_LANDMARKS_LIPS)
    assert not set(LANDMARK_GROUPS["lips_outer"].tolist()) & set(LANDMARK_GROUPS["lips_inner"].tolist())
    assert g["left_eye"] == _connections(fc.FACE_LANDMARKS_LEFT_EYE)
    assert g["right_eye"] == _connections(fc.FACE_LANDMARKS_RIGHT_EYE)
    assert g["left_iris"] == _connections(fc.FACE_LANDMARKS_LEFT_IRIS)
    assert g["right_iris"] == _connections(fc.FACE_LANDMARKS_RIGHT_IRIS)
    assert g["face_oval"] == _connections(fc.FACE_LANDMARKS_FACE_OVAL)
    # MediaPipe draws each brow as two polylines; the loop adds the two edges that close them.
    assert g["left_brow"] == _connections(fc.FACE_LANDMARKS_LEFT_EYEBROW) | {(285, 336), (276, 300)}
    assert g["right_brow"] == _connections(fc.FACE_LANDMARKS_RIGHT_EYEBROW) | {(55, 107), (46, 70)}
    ridge = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2]
    assert g["nose"] | _undirected(zip(ridge, ridge[1:])) == _connections(fc.FACE_LANDMARKS_NOSE)


def test_groups_run_counter_clockwise_seen_from_the_front(mesh: CanonicalFaceMesh) -> None:
    for name, loop in LANDMARK_GROUPS.items():
        if "iris" not in name:  # iris landmarks are not mesh vertices
            assert _signed_area_xy(mesh.vertices_cm[loop, :2]) > 0, name


def test_left_is_the_subjects_left(mesh: CanonicalFaceMesh) -> None:
    x = mesh.vertices_cm[:, 0]
    for part in ("eye", "brow"):
        assert x[LANDMARK_GROUPS[f"left_{part}"]].min() > 0 > x[LANDMARK_GROUPS[f"right_{part}"]].max()


# --- damaged model files ------------------------------------------------------

def test_random_bytes_raise_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "face_landmarker.task"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFileError, match="face_landmarker.task"):
        load_canonical_mesh(path)


def test_zip_without_the_member_raises_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "other.task"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("face_detector.tflite", b"not it")
    with pytest.raises(ModelFileError, match=METADATA_MEMBER):
        load_canonical_mesh(path)


def test_undecodable_member_and_missing_file_raise_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "garbled.task"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(METADATA_MEMBER, b"\x0a\xff\xff")  # LEN field longer than the data
    with pytest.raises(ModelFileError) as caught:
        load_canonical_mesh(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(ModelFileError):
        load_canonical_mesh(tmp_path / "absent.task")


# --- protobuf decoder -----------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes | int) -> bytes:
    tag = _varint(number << 3 | wire_type)
    if wire_type == pb.VARINT:
        return tag + _varint(payload)
    if wire_type == pb.LEN:
        return tag + _varint(len(payload)) + payload
    return tag + payload


def test_varints() -> None:
    assert pb.read_varint(b"\x96\x01", 0) == (150, 2)
    assert pb.read_varint(b"\xac\x02", 0) == (300, 2)
    assert pb.read_varint(b"\xff" * 9 + b"\x01", 0) == (2**64 - 1, 10)
    assert pb.read_varint(b"\x00\x7f", 1) == (127, 2)
    assert pb.packed_varints(b"\x03\x8e\x02\x9e\xa7\x05") == [3, 270, 86942]
    with pytest.raises(ValueError, match="past the end"):
        pb.read_varint(b"\x96", 0)
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        pb.read_varint(b"\xff" * 11, 0)


def test_iter_fields_all_wire_types() -> None:
    message = (_field(1, pb.VARINT, 150) + _field(2, pb.LEN, b"testing") + _field(3, pb.I32, struct.pack("<f", 1.5))
               + _field(4, pb.I64, struct.pack("<d", -2.0)) + _field(1000, pb.VARINT, 1))
    assert list(pb.iter_fields(message)) == [
        (1, pb.VARINT, 150), (2, pb.LEN, b"testing"), (3, pb.I32, struct.pack("<f", 1.5)),
        (4, pb.I64, struct.pack("<d", -2.0)), (1000, pb.VARINT, 1),
    ]
    assert list(pb.iter_fields(b"")) == []


def test_repeated_scalars_packed_or_not() -> None:
    values = [1.5, -2.0, 0.25]
    packed = _field(3, pb.LEN, struct.pack("<3f", *values))
    unpacked = b"".join(_field(3, pb.I32, struct.pack("<f", x)) for x in values)
    for message in (packed, unpacked):
        decoded = np.concatenate([pb.repeated_floats(w, v) for _, w, v in pb.iter_fields(message)])
        assert decoded.dtype == np.float32 and decoded.tolist() == values
    ints = [0, 5, 300, 70000]
    packed = _field(4, pb.LEN, b"".join(map(_varint, ints)))
    unpacked = b"".join(_field(4, pb.VARINT, i) for i in ints)
    for message in (packed, unpacked):
        assert [i for _, w, v in pb.iter_fields(message) for i in pb.repeated_varints(w, v)] == ints


@pytest.mark.parametrize("data, message", [
    (_field(2, pb.LEN, b"abcdef")[:-1], "past the end"),  # length-delimited payload cut short
    (_field(3, pb.I32, b"\x00\x00\x00\x00")[:-2], "past the end"),
    (_field(4, pb.I64, b"\x00" * 8)[:-1], "past the end"),
    (b"\x08", "past the end"),  # tag without its varint value
    (b"\x0b", "wire type 3"),  # start group
    (b"\x00\x00", "field number 0"),
])
def test_malformed_input_raises_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(pb.iter_fields(data))


def test_malformed_repeated_scalars_raise_value_error() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        pb.packed_floats(b"\x00" * 6)
    with pytest.raises(ValueError, match="wire type"):
        pb.repeated_floats(pb.VARINT, 7)
    with pytest.raises(ValueError, match="wire type"):
        pb.repeated_varints(pb.I32, b"\x00" * 4)


def test_packed_metadata_decodes_like_the_real_file(mesh: CanonicalFaceMesh) -> None:
    """The bundled file writes one field per value; a packed encoding must decode the same."""
    vertex_buffer = np.concatenate([mesh.vertices_cm, mesh.uvs], axis=1).astype("<f4").tobytes()
    indices = b"".join(map(_varint, mesh.triangles.ravel().tolist()))
    mesh3d = _field(1, pb.VARINT, 0) + _field(3, pb.LEN, vertex_buffer) + _field(4, pb.LEN, indices)
    basis = b"".join(
        _field(2, pb.LEN, _field(1, pb.VARINT, i) + _field(2, pb.I32, struct.pack("<f", w)))
        for i, w in zip(mesh.procrustes_ids.tolist(), mesh.procrustes_weights.tolist())
    )
    decoded = parse_geometry_metadata(_field(1, pb.LEN, mesh3d) + basis + _field(3, pb.VARINT, 1))
    for name in ("vertices_cm", "uvs", "triangles", "procrustes_ids", "procrustes_weights"):
        assert np.array_equal(getattr(decoded, name), getattr(mesh, name)), name
