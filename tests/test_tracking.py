"""Face tracking on generated inputs built from scikit-image's public-domain astronaut photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from avatar import ARKIT_NAMES, InputError, Track
from avatar.rotation import rotvec_to_matrix
from capture import FaceLandmarker, TrackSmoothing, load_canonical_mesh, open_media, track_media, write_preview
from render import VideoWriter

FPS = 25.0


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """[256, 256, 3] RGB, the face large in the frame."""
    return cv2.resize(data.astronaut()[20:360, 90:430], (256, 256), interpolation=cv2.INTER_AREA)


def gap_video(path, face: np.ndarray, blank: set[int], frames: int = 60) -> None:
    with VideoWriter(path, fps=FPS, crf=12) as video:
        for i in range(frames):
            if i in blank:
                video.write(np.full_like(face, 127))
            else:
                shift = np.float32([[1, 0, 3 * np.sin(i / 5)], [0, 1, 2 * np.cos(i / 7)]])
                video.write(cv2.warpAffine(face, shift, face.shape[1::-1], borderMode=cv2.BORDER_REFLECT))


def test_blendshape_names_match_mediapipe(face_model_path, astronaut):
    from mediapipe.tasks.python import BaseOptions, vision
    import mediapipe as mp

    options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(face_model_path)),
                                           output_face_blendshapes=True)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=astronaut))
    names = {c.category_name for c in result.face_blendshapes[0]}
    assert names == (set(ARKIT_NAMES) - {"tongueOut"}) | {"_neutral"}


def test_photo_track_is_consistent_with_the_camera_and_pose(face_model_path, astronaut, tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    track, stats = track_media(open_media(tmp_path / "face.png"), progress=False)
    assert len(track) == 1 and track.found[0] and stats.found_fraction == 1.0
    lm = track.landmarks_px[0]
    assert np.all((lm[:, :2] > 0) & (lm[:, :2] < 256))
    assert np.all((track.weights[0] >= 0) & (track.weights[0] <= 1))
    # The pose and the 63-degree camera must put the canonical mesh onto the landmarks.
    mesh = load_canonical_mesh(face_model_path)
    head = mesh.vertices_cm @ rotvec_to_matrix(track.head_rotation[0]).T + track.head_translation_cm[0]
    uv, depth = track.camera.project(head)
    face_width_px = np.ptp(lm[:468, 0])
    assert np.all(depth > 0)
    assert np.linalg.norm(uv - lm[:468, :2], axis=1).mean() < 0.06 * face_width_px


def test_video_gaps_are_flagged_short_ones_filled_and_saved(face_model_path, astronaut, tmp_path):
    short, long = {10, 11}, set(range(30, 46))
    gap_video(tmp_path / "clip.mp4", astronaut, short | long)
    source = open_media(tmp_path / "clip.mp4")
    track, stats = track_media(source, max_gap_s=0.25, smoothing=TrackSmoothing(), progress=False)
    assert np.array_equal(np.flatnonzero(~track.found), sorted(short | long))
    assert track.valid[sorted(short)].all() and not track.valid[sorted(long)].any()
    assert np.isnan(track.landmarks_px[sorted(long)]).all() and np.isfinite(track.landmarks_px[track.valid]).all()
    assert stats.frames == 60 and stats.found_fraction == pytest.approx(42 / 60)
    assert np.allclose(track.time_s, np.arange(60) / FPS)
    assert track.smoothing is not None and track.smoothing["lag_ms"] >= 0

    track.save(tmp_path / "clip.npz")
    again = Track.load(tmp_path / "clip.npz")
    assert np.array_equal(again.landmarks_px, track.landmarks_px, equal_nan=True)
    assert again.smoothing == track.smoothing and again.camera.to_dict() == track.camera.to_dict()

    write_preview(source, track, tmp_path / "preview.mp4", progress=False)
    preview = open_media(tmp_path / "preview.mp4")
    assert (preview.num_frames, preview.width_px) == (60, 256)


@pytest.mark.parametrize("canvas", [(1280, 720), (3840, 2160)], ids=["720p", "4k"])
def test_a_small_face_in_a_wide_frame_is_tracked_in_a_square_around_it(face_model_path, tmp_path, canvas):
    from tests.test_capture_cli import write_video

    # The astronaut's face is 89 px wide: in a 1280x720 frame the detector alone never finds it,
    # nor in 4K in tiles half the frame's height; in tiles a quarter of it, it does.
    wide = write_video(tmp_path / "wide.mp4", 2.0, canvas=canvas)
    plain = write_video(tmp_path / "plain.mp4", 2.0)
    track, stats = track_media(open_media(wide), progress=False)
    reference, _ = track_media(open_media(plain), progress=False)
    assert stats.found_fraction == 1.0 and (track.camera.width_px, track.camera.height_px) == canvas
    offset = [(canvas[0] - 512) // 2, (canvas[1] - 512) // 2]
    shift = np.abs(track.landmarks_px[:, :, :2] - offset - reference.landmarks_px[:, :, :2])
    assert np.median(shift) < 0.5
    # The pose is MediaPipe's in the square: through the track's camera it lands on the landmarks.
    mesh = load_canonical_mesh()
    for f in (0, len(track) - 1):
        head = mesh.vertices_cm @ rotvec_to_matrix(track.head_rotation[f]).T + track.head_translation_cm[f]
        uv, _ = track.camera.project(head)
        lm = track.landmarks_px[f]
        assert np.linalg.norm(uv - lm[:468, :2], axis=1).mean() < 0.06 * np.ptp(lm[:468, 0])


def test_a_video_without_any_face_is_an_error(face_model_path, astronaut, tmp_path):
    gap_video(tmp_path / "empty.mp4", astronaut, set(range(20)), frames=20)
    with pytest.raises(InputError, match="no face found in any of the 20 frames"):
        track_media(open_media(tmp_path / "empty.mp4"), progress=False)


def two_people_video(path, face: np.ndarray, frames: int = 40, fps: float = 10.0, right_away: range = range(0)
                     ) -> None:
    """Two people side by side (the astronaut and her mirror image) whose faces take turns being
    the larger, by 6% either way; the one on the right out of view in the frames `right_away`."""
    with VideoWriter(path, fps=fps, crf=12) as video:
        for i in range(frames):
            canvas = np.full((256, 512, 3), 127, np.uint8)
            turn = 0.06 * np.sin(i)
            for centre_x, image, scale in ((128, face, 1 + turn), (384, face[:, ::-1], 1 - turn)):
                if centre_x == 384 and i in right_away:
                    continue
                matrix = cv2.getRotationMatrix2D((128, 128), 0, scale)
                matrix[:, 2] += [centre_x - 128, 0]
                canvas = np.where(_inside(matrix, canvas.shape), cv2.warpAffine(image, matrix, (512, 256)), canvas)
            video.write(canvas)


def _inside(matrix: np.ndarray, shape) -> np.ndarray:
    """[H, W, 1] where the warp `matrix` puts a 256x256 picture."""
    return cv2.warpAffine(np.ones((256, 256), np.uint8), matrix, (shape[1], shape[0]))[..., None] > 0


@pytest.mark.parametrize("face", ["largest", "left", "right"])
def test_one_person_is_followed_where_two_take_turns_being_larger(face_model_path, astronaut, tmp_path, face):
    two_people_video(tmp_path / "two.mp4", astronaut)
    track, stats = track_media(open_media(tmp_path / "two.mp4"), progress=False, face=face)
    assert stats.found_fraction == 1.0 and stats.several_faces_fraction == 1.0
    centre_x = track.landmarks_px[:, :468, 0].mean(1)
    on_left = centre_x < 256
    # Frame 0 shows them the same size: from then on the same person, whichever face is larger.
    assert on_left.all() or not on_left.any(), centre_x
    if face != "largest":
        assert on_left[0] == (face == "left")


def test_the_followed_person_out_of_view_is_not_swapped_for_the_other(face_model_path, astronaut, tmp_path):
    two_people_video(tmp_path / "two.mp4", astronaut, right_away=range(15, 18))
    track, _ = track_media(open_media(tmp_path / "two.mp4"), progress=False, face="right")
    assert not track.found[15:18].any() and track.found[:15].all() and track.found[18:].all()
    assert (track.landmarks_px[track.found, :468, 0].mean(1) > 256).all()


def test_one_person_who_jumps_with_a_cut_is_still_followed(face_model_path, astronaut, tmp_path):
    """A vlog's jump cut: the only face in view moves three face widths between two frames."""
    with VideoWriter(tmp_path / "cut.mp4", fps=10, crf=12) as video:
        for i in range(40):
            canvas = np.full((256, 512, 3), 127, np.uint8)
            left = 0 if i < 20 else 256
            canvas[:, left:left + 256] = astronaut
            video.write(canvas)
    track, _ = track_media(open_media(tmp_path / "cut.mp4"), progress=False)
    assert track.found.all()


@pytest.mark.parametrize("face", ["left", "right"])
def test_two_small_faces_in_a_wide_frame_the_chosen_one_is_zoomed_on(face_model_path, tmp_path, face):
    from avatar.sample import sample_photo

    photo = sample_photo()  # her face is 89 px wide: too small for the detector in a 2048x720 frame
    canvas = np.full((720, 2048, 3), 90, np.uint8)
    canvas[100:612, 200:712], canvas[100:612, 1336:1848] = photo, photo[:, ::-1]
    with VideoWriter(tmp_path / "wide.mp4", fps=10, crf=12) as video:
        for _ in range(20):
            video.write(canvas)
    track, stats = track_media(open_media(tmp_path / "wide.mp4"), progress=False, face=face)
    assert stats.found_fraction == 1.0
    centre_x = track.landmarks_px[:, :468, 0].mean(1)
    assert ((centre_x < 1024) if face == "left" else (centre_x > 1024)).all()


def test_the_command_line_offers_the_trackers_face_choices():
    from avatar.commands.capture import FACE_CHOICES as OFFERED
    from capture.tracking import FACE_CHOICES

    assert OFFERED == FACE_CHOICES


def test_landmarker_picks_the_largest_of_several_faces(face_model_path, astronaut):
    # The short-range face detector sees the frame at 128 px: keep both faces big.
    canvas = np.full((512, 512, 3), 127, np.uint8)
    canvas[:256, :256] = astronaut
    canvas[-220:, -220:] = cv2.resize(astronaut, (220, 220))
    with FaceLandmarker(face_model_path, video=False) as landmarker:
        detection = landmarker.detect(canvas)
    assert detection is not None and detection.num_faces == 2
    assert detection.landmarks_norm[:, :2].max() < 0.5  # the big face, top left


def test_damaged_track_file_is_refused(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(InputError, match="not a readable track file"):
        Track.load(tmp_path / "bad.npz")


def test_folder_of_photos_is_tracked_frame_by_frame(face_model_path, astronaut, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "1.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "2.png"), np.full_like(astronaut, 60))
    cv2.imwrite(str(photos / "3.png"), cv2.cvtColor(astronaut[:, ::-1], cv2.COLOR_RGB2BGR))
    track, _ = track_media(open_media(photos), max_gap_s=0, progress=False)
    assert track.found.tolist() == [True, False, True]
    # A mirrored face turns the other way: its yaw changes sign.
    assert np.sign(track.head_rotation[0, 1]) == -np.sign(track.head_rotation[2, 1])


def test_photos_in_a_folder_are_not_a_sequence(face_model_path, tmp_path):
    """Each photo's face is found wherever it is: no following from one photo to the next."""
    photos = tmp_path / "photos"
    photos.mkdir()
    face = cv2.resize(data.astronaut()[20:360, 90:430], (450, 450), interpolation=cv2.INTER_AREA)  # 121 px wide
    for name, left in (("1.png", 0), ("2.png", 574)):
        canvas = np.full((450, 1024, 3), 127, np.uint8)
        canvas[:, left:left + 450] = face
        cv2.imwrite(str(photos / name), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    track, _ = track_media(open_media(photos), max_gap_s=0, progress=False)
    assert track.found.all() and track.landmarks_px[1, :468, 0].mean() - track.landmarks_px[0, :468, 0].mean() > 500
