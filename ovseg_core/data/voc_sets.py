"""Real labelled images turned into the Pascal VOC folders `ovseg refine-check` reads.

Each writer takes the files a package ships (already downloaded; the fetch scripts in
`studies/data/` download them) and writes out/{class_names.txt, JPEGImages/,
SegmentationClassPNG/}. No network access here.

- labelme's sdist: three Pascal VOC 2011 photos with polygon labels (`write_labelme_voc`) and
  one Amazon Picking Challenge shelf photo (`write_labelme_apc`);
- stardist's wheel: one 16-bit fluorescence image of 125 nuclei (`write_nuclei_voc`);
- pyradiomics' sdist: two MRI brains and two lung CTs with lesion labels (`write_radiomics_voc`);
- Debian's opencv-doc: five street photos with pixel-exact text masks (`write_scenetext_voc`).
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

LABELME_SDIST = "labelme-7.9.1.tar.gz"
LABELME_VOC_IDS = ("2011_000003", "2011_000006", "2011_000025")
LABELME_SEMANTIC = "examples/semantic_segmentation/"
LABELME_APC = "examples/tutorial/apc2016_obj3/"
NUCLEI_MEMBERS = ("stardist/data/images/img2d.tif", "stardist/data/images/mask2d.tif")
RADIOMICS_SDIST = "pyradiomics-3.1.0.tar.gz"
RADIOMICS_CASES = ("brain1", "brain2", "lung1", "lung2")
NRRD_TYPES = {"short": "<i2", "int": "<i4"}
SCENETEXT_WORDS = [f"scenetext_segmented_word{i:02d}" for i in range(1, 6)]


def stretch(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W) uint8 of a (H, W) intensity image, its [low, high] percentiles mapped to 0..255
    (the usual display normalisation of microscopy and scan intensities)."""
    lo, hi = np.percentile(image, [low, high])
    return (255 * np.clip((image.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)).astype(
        np.uint8)


def voc_folder(out: Path, class_names: list[str] | str) -> Path:
    """Create out/{JPEGImages, SegmentationClassPNG}/ and out/class_names.txt (a list of names,
    or a class_names.txt's text as shipped); returns `out`."""
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "SegmentationClassPNG").mkdir(exist_ok=True)
    text = class_names if isinstance(class_names, str) else "".join(f"{n}\n" for n in class_names)
    (out / "class_names.txt").write_text(text)
    return out


def save_label(out: Path, name: str, label: np.ndarray) -> None:
    """Write out/SegmentationClassPNG/name.png: (H, W) class ids as a grey uint8 PNG."""
    Image.fromarray(label.astype(np.uint8), mode="L").save(
        out / f"SegmentationClassPNG/{name}.png")


def save_pair(out: Path, name: str, grey_or_rgb: np.ndarray, label: np.ndarray) -> None:
    """Write out/JPEGImages/name.jpg (quality 95, grey made RGB) and `save_label`."""
    Image.fromarray(grey_or_rgb).convert("RGB").save(out / f"JPEGImages/{name}.jpg", quality=95)
    save_label(out, name, label)


def write_labelme_voc(read: Callable[[str], bytes], out: Path) -> None:
    """The three VOC photos and labelme's class PNGs of them (__ignore__ listed first, 255);
    `read(member)` returns the bytes of a file under the sdist's root."""
    sem = LABELME_SEMANTIC
    voc_folder(out, read(sem + "data_dataset_voc/class_names.txt").decode())
    for image_id in LABELME_VOC_IDS:
        image = read(f"{sem}data_annotated/{image_id}.jpg")
        (out / f"JPEGImages/{image_id}.jpg").write_bytes(image)
        (out / f"SegmentationClassPNG/{image_id}.png").write_bytes(
            read(f"{sem}data_dataset_voc/SegmentationClass/{image_id}.png"))


def write_labelme_apc(read: Callable[[str], bytes], out: Path) -> None:
    """The APC2016 shelf photo (a PNG, saved as JPEG) and its class PNG."""
    voc_folder(out, read(LABELME_APC + "label_names.txt").decode())
    Image.open(io.BytesIO(read(LABELME_APC + "img.png"))).convert("RGB").save(
        out / "JPEGImages/apc2016_obj3.jpg", quality=95)
    (out / "SegmentationClassPNG/apc2016_obj3.png").write_bytes(read(LABELME_APC + "label.png"))


def write_nuclei_voc(wheel: Path, out: Path) -> int:
    """Write stardist's image (stretched between its 1st and 99.8th percentiles) and its
    instances as class 1 "nucleus"; returns the number of labelled nuclei."""
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        image_tif, mask_tif = (Path(z.extract(m, tmp)) for m in NUCLEI_MEMBERS)
        image = np.asarray(Image.open(image_tif))
        instances = np.asarray(Image.open(mask_tif))
    save_pair(voc_folder(out, ["background", "nucleus"]), "nuclei",
              stretch(image, 1.0, 99.8), instances > 0)
    return len(np.unique(instances)) - 1


def read_nrrd(data: bytes) -> np.ndarray:
    """(Z, Y, X) array of a little-endian, gzip-encoded NRRD volume (all pyradiomics uses)."""
    end = data.index(b"\n\n")
    header = dict(line.split(": ", 1) for line in data[:end].decode().splitlines()[1:]
                  if ": " in line and not line.startswith("#"))
    if header["encoding"] != "gzip" or header.get("endian", "little") != "little":
        raise ValueError(f"unsupported NRRD encoding {header['encoding']}")
    sizes = [int(s) for s in header["sizes"].split()]
    voxels = np.frombuffer(gzip.decompress(data[end + 2:]), dtype=NRRD_TYPES[header["type"]])
    return voxels.reshape(sizes[::-1])


def largest_slice(volume: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image slice, binary label slice) of the axial slice with the most labelled voxels."""
    z = int((label > 0).sum(axis=(1, 2)).argmax())
    return volume[z], (label[z] > 0).astype(np.uint8)


def write_radiomics_voc(sdist: Path, out: Path) -> list[int]:
    """Each case's largest lesion slice (stretched between its 1st and 99.5th percentiles) as
    class 1 "lesion"; returns the lesion areas in pixels."""
    voc_folder(out, ["background", "lesion"])
    root = sdist.name.removesuffix(".tar.gz")
    areas = []
    with tarfile.open(sdist) as tar:
        for case in RADIOMICS_CASES:
            image, label = (read_nrrd(tar.extractfile(f"{root}/data/{case}_{kind}.nrrd").read())
                            for kind in ("image", "label"))
            image, label = largest_slice(image, label)
            save_pair(out, case, stretch(image, 1.0, 99.5), label)
            areas.append(int(label.sum()))
    return areas


def write_scenetext_voc(files: dict[str, bytes], out: Path) -> int:
    """The five photos (JPEG as shipped) and their masks as class 1 "text"; `files` maps each
    word's `<word>.jpg` and `<word>_mask.png` to its bytes; returns the text pixels."""
    voc_folder(out, ["background", "text"])
    total = 0
    for word in SCENETEXT_WORDS:
        name = word.removeprefix("scenetext_segmented_")
        (out / f"JPEGImages/{name}.jpg").write_bytes(files[word + ".jpg"])
        mask = np.asarray(Image.open(io.BytesIO(files[word + "_mask.png"])).convert("L")) > 127
        save_label(out, name, mask)
        total += int(mask.sum())
    return total
