"""scripts/prepare_data.py on a few frames: deterministic, labels agree with the masks, layout as documented."""

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.media.images import image_folder, read_rgb

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "kvasir-seg").is_dir(),
                                reason=f"tests the script on the full shared data set, not found at {SHARED}")

spec = importlib.util.spec_from_file_location("prepare_data", REPO / "scripts" / "prepare_data.py")
prepare_data = importlib.util.module_from_spec(spec)
sys.modules["prepare_data"] = prepare_data  # dataclasses look their module up there
spec.loader.exec_module(prepare_data)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The same subset built twice into different folders."""
    outs = [tmp_path_factory.mktemp(name) for name in ("first", "second")]
    for out in outs:
        prepare_data.main(["--shared", str(SHARED), "--out", str(out), "--limit", "8", "--seed", "3"])
    return outs[0], outs[1]


def test_content_mask_drops_border_overlay_box_and_text() -> None:
    frame = np.zeros((200, 240, 3), np.uint8)
    frame[20:180, 30:210] = (180, 90, 80)  # the picture
    frame[90:110, 100:120] = (5, 5, 5)  # dark lumen inside the picture: kept
    frame[150:180, 30:70] = (10, 200, 120)  # green scope-position box
    frame[5:8, 40:200] = 255  # thin burned-in text on the border
    mask = prepare_data.content_mask(frame)
    assert mask[50:140, 80:200].all()
    assert not mask[:15].any() and not mask[:, :25].any()
    assert not mask[150:180, 30:70].any()


@needs_data
def test_build_is_deterministic(built) -> None:
    first, second = built
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


@needs_data
def test_layout_counts_and_balance(built) -> None:
    out = built[0]
    for split in ("train", "val"):
        paths, labels, classes = image_folder(out / "ID" / split)
        assert classes == ["mucosa", "polyp"]
        assert labels.count(0) == labels.count(1) > 0
        assert read_rgb(paths[0]).shape == (256, 256, 3)
    assert len(list((out / "OOD" / "laparoscopic").glob("*.jpg"))) == 8
    assert read_rgb(out / "OOD" / "laparoscopic" / "endo_0005.jpg").shape == (360, 640, 3)
    for name in ("capsule", "chest-xray", "natural"):
        assert 0 < len(list((out / "OOD" / name).iterdir())) <= 8


@needs_data
def test_labels_agree_with_masks(built) -> None:
    out = built[0]
    with open(out / "ID" / "windows.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows
    for row in rows:
        x, y, side = int(row["x"]), int(row["y"]), int(row["side"])
        mask = read_rgb(SHARED / "kvasir-seg" / row["split"] / "masks" / row["frame"])[..., 0] > 127
        share = mask[y:y + side, x:x + side].mean()
        assert side == round(prepare_data.SCALES[int(row["scale"])] * min(mask.shape))
        assert row["file"].startswith(f"ID/{row['split']}/{row['label']}/") and (out / row["file"]).is_file()
        if row["label"] == "mucosa":
            assert share == 0
        else:
            assert share >= prepare_data.MIN_SHARE
            assert share >= prepare_data.POLYP_SHARE or float(row["cover"]) >= prepare_data.POLYP_COVER
        assert share == pytest.approx(float(row["share"]), abs=1e-4)
        # The saved window shows that crop of the frame (JPEG and resizing aside).
        crop = read_rgb(SHARED / "kvasir-seg" / row["split"] / "images" / row["frame"])[y:y + side, x:x + side]
        saved = read_rgb(out / row["file"])
        assert abs(float(crop.mean()) - float(saved.mean())) < 2
