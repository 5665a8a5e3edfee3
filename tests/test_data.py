"""nets.data: md5-verified CIFAR python format, image folders, the JPEG npz, HDF5 round trips, toy sets."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from nets.data import (CIFAR10_MD5, DataError, convert, load_cifar_python, load_dataset, load_jpeg_npz, md5_of,
                       read_h5, write_h5)
from nets.data.toy import load_digits_dataset, make_synthetic

from cli_checks import assert_one_line_exit_2
from test_data_fixtures import (REPO_ROOT, cifar_npz_path, write_cifar10_python, write_cifar100_python,
                                write_jpeg_tree)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "nets.data", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=120)


def test_official_md5_table_is_complete():
    assert sorted(CIFAR10_MD5) == sorted(["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in CIFAR10_MD5.values())


def test_cifar_python_loads_exactly_what_was_written(tmp_path):
    table, arrays = write_cifar10_python(tmp_path)
    for where in (tmp_path, tmp_path / "cifar-10-batches-py"):
        ds = load_cifar_python(where, checksums=table)
        np.testing.assert_array_equal(ds.train_images, arrays["train"][0])
        np.testing.assert_array_equal(ds.train_labels, arrays["train"][1])
        np.testing.assert_array_equal(ds.test_images, arrays["test"][0])
        np.testing.assert_array_equal(ds.test_labels, arrays["test"][1])
        assert ds.classes[0] == "airplane" and ds.num_classes == 10 and ds.train_labels.dtype == np.int64


def test_cifar100_fine_labels(tmp_path):
    table, arrays = write_cifar100_python(tmp_path)
    ds = load_cifar_python(tmp_path, checksums=table)
    assert ds.name == "cifar100" and ds.num_classes == 100 and ds.classes[99] == "fine99"
    np.testing.assert_array_equal(ds.train_images, arrays["train"][0])
    np.testing.assert_array_equal(ds.test_labels, arrays["test"][1])
    with pytest.raises(DataError, match=r"cifar-100-python/meta: md5 .* official checksum"):
        load_cifar_python(tmp_path)


def test_md5_mismatch_is_refused_before_unpickling(tmp_path):
    table, _ = write_cifar10_python(tmp_path)
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps(Evil(), protocol=2))
    # the official table: every fixture file mismatches; the first checked (meta) is named
    with pytest.raises(DataError, match=r"batches\.meta: md5 .* does not match the official checksum"):
        load_cifar_python(tmp_path)
    # the fixture's table: only the tampered batch mismatches, and it is never unpickled
    with pytest.raises(DataError, match=r"data_batch_3: md5"):
        load_cifar_python(tmp_path, checksums=table)
    assert not sentinel.exists()
    # even with a matching checksum, the unpickler admits no global but numpy's array constructors
    table["data_batch_3"] = md5_of(batch)
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR batch"):
        load_cifar_python(tmp_path, checksums=table)
    assert not sentinel.exists()


def test_missing_cifar_file_is_named(tmp_path):
    table, _ = write_cifar10_python(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5: missing"):
        load_cifar_python(tmp_path, checksums=table)


def test_convert_round_trip_python_format(tmp_path):
    table, arrays = write_cifar10_python(tmp_path / "src")
    out = tmp_path / "c10.h5"
    ds = convert(tmp_path / "src", out, checksums=table)
    with h5py.File(out) as f:  # the documented layout, read without our reader
        assert f.attrs["layout"] == "NHWC" and f["train/images"].dtype == np.uint8
        assert f["train/labels"].dtype == np.int64
        np.testing.assert_array_equal(f["train/images"][()], arrays["train"][0].transpose(0, 2, 3, 1))
        assert [c.decode() if isinstance(c, bytes) else c for c in f.attrs["classes"]][9] == "truck"
        assert "cifar-10-batches-py" in f.attrs["source"]
    back = read_h5(out)
    np.testing.assert_array_equal(back.test_images, arrays["test"][0])
    np.testing.assert_array_equal(back.test_labels, arrays["test"][1])
    assert back.classes == ds.classes and [p.name for p in tmp_path.iterdir()] .count("c10.h5") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_png_folder_round_trip_is_lossless(tmp_path):
    rng = np.random.default_rng(1)
    want = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "ant"):
            d = tmp_path / "tree" / split / cls
            d.mkdir(parents=True)
            for j in range(n):
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / f"{j}.png")
                want.setdefault(split, []).append((img, cls))
    ds = load_dataset(str(tmp_path / "tree"))
    assert ds.classes == ("ant", "cat") and ds.name == "imagefolder"  # sorted, as torchvision's ImageFolder
    for split in ("train", "test"):
        order = sorted(want[split], key=lambda t: t[1] == "cat")  # ant first, files in name order
        images = getattr(ds, f"{split}_images")
        labels = getattr(ds, f"{split}_labels")
        for i, (img, cls) in enumerate(order):
            np.testing.assert_array_equal(images[i], img.transpose(2, 0, 1))
            assert labels[i] == ds.classes.index(cls)


def _tree(root, images_by_split):
    """Write DIR/{split}/<class>/<name>.png from {split: [(class, name, PIL image)]}."""
    for split, items in images_by_split.items():
        for cls, name, image in items:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            image.save(root / split / cls / f"{name}.png")
    return root


def test_folder_mode_is_decided_by_every_image_not_the_first(tmp_path):
    red = Image.fromarray(np.tile(np.array([255, 0, 0], np.uint8), (8, 8, 1)))
    gray = Image.fromarray(np.full((8, 8), 90, np.uint8))  # "a_gray" sorts before "b_red" in every class
    items = [("cat", "a_gray", gray), ("cat", "b_red", red), ("dog", "b_red", red)]
    ds = load_dataset(str(_tree(tmp_path / "mixed", {"train": items, "test": items})))
    assert ds.in_channels == 3
    np.testing.assert_array_equal(ds.train_images[1, :, 0, 0], [255, 0, 0])  # red stays red
    np.testing.assert_array_equal(ds.train_images[0, :, 0, 0], [90, 90, 90])  # gray replicated
    only_test_rgb = load_dataset(str(_tree(tmp_path / "split", {"train": [("cat", "g", gray)],
                                                                "test": [("cat", "r", red)]})))
    assert only_test_rgb.in_channels == 3  # one mode for both splits
    all_gray = load_dataset(str(_tree(tmp_path / "gray", {"train": [("cat", "g", gray)],
                                                          "test": [("cat", "g", gray)]})))
    assert all_gray.train_images.shape == (1, 1, 8, 8) and all_gray.train_images[0, 0, 0, 0] == 90


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 30000, 65535]] * 4, dtype=np.uint16)
    deep = Image.fromarray(values)
    ds = load_dataset(str(_tree(tmp_path / "deep", {"train": [("a", "x", deep)], "test": [("a", "x", deep)]})))
    exact = np.floor(values[0].astype(float) * 255 / 65535 + 0.5)  # 8-bit value nearest to v / 257
    np.testing.assert_array_equal(ds.train_images[0, 0, 0], exact)
    assert list(exact) == [0, 4, 117, 255]
    floats = tmp_path / "float" / "train" / "a"
    floats.mkdir(parents=True)
    (tmp_path / "float" / "test" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.float32)).save(floats / "x.tiff")
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "float" / "test" / "a" / "x.tiff")
    (floats / "x.tiff").rename(floats / "x.png")  # suffix filter; Pillow reads by content
    (tmp_path / "float" / "test" / "a" / "x.tiff").rename(tmp_path / "float" / "test" / "a" / "x.png")
    with pytest.raises(DataError, match=r"x.png: F \(32-bit float\) images are not supported"):
        load_dataset(str(tmp_path / "float"))


def test_hidden_folders_are_no_class_and_an_empty_training_class_is_refused(tmp_path):
    gray = Image.fromarray(np.full((8, 8), 90, np.uint8))
    root = _tree(tmp_path / "t", {"train": [("a", "x", gray), ("b", "x", gray)], "test": [("a", "x", gray)]})
    (root / "train" / ".ipynb_checkpoints").mkdir()  # a notebook's folder was a third class
    assert load_dataset(str(root)).classes == ("a", "b")
    (root / "train" / "c").mkdir()  # and a class no training image shows: an output never learnt
    with pytest.raises(DataError, match=r"train/c: no images \(every class folder of train/ needs"):
        load_dataset(str(root))


def test_sixteen_bit_pgm_is_scaled_like_sixteen_bit_png(tmp_path):
    # Pillow opens a 16-bit PGM as mode "I" (format PPM): it was refused as a 32-bit integer image
    values = np.array([[0, 1000, 30000, 65535]] * 4, dtype=np.uint16)
    for split in ("train", "test"):
        (tmp_path / "pgm" / split / "a").mkdir(parents=True)
        Image.fromarray(values).save(tmp_path / "pgm" / split / "a" / "x.ppm")
    ds = load_dataset(str(tmp_path / "pgm"))
    np.testing.assert_array_equal(ds.train_images[0, 0, 0], [0, 4, 117, 255])


def test_jpeg_folder_matches_npz_and_pillow(tmp_path):
    written = write_jpeg_tree(tmp_path / "tree", per_class=20)
    res = run_cli("convert", "--from", str(tmp_path / "tree"), "--to", str(tmp_path / "jpeg.h5"), "--no-progress")
    assert res.returncode == 0, res.stderr
    ds = read_h5(tmp_path / "jpeg.h5")
    assert ds.train_images.shape == (200, 3, 32, 32) and ds.test_images.shape == (200, 3, 32, 32)
    assert ds.classes[:3] == ("airplane", "automobile", "bird") and ds.name == "imagefolder-jpeg"
    for i in (0, 57, 199):  # independent decode of the same bytes
        blob, label = written["train"][i]
        ref = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(ds.train_images[i], ref)
        assert ds.train_labels[i] == label
    direct = load_jpeg_npz(cifar_npz_path(), limit_per_class=20)  # the npz path gives the same arrays
    np.testing.assert_array_equal(np.sort(direct.train_labels), np.sort(ds.train_labels))
    np.testing.assert_array_equal(direct.train_images[direct.train_labels == 3].astype(int).sum(),
                                  ds.train_images[ds.train_labels == 3].astype(int).sum())


def _small_npz(**overrides) -> dict:
    """The first 12 images of each split of the JPEG CIFAR-10 npz, with some arrays replaced."""
    z = np.load(cifar_npz_path())
    small = {"classes": z["classes"]}
    for split in ("train", "test"):
        offsets = z[f"{split}_offsets"][:13]
        small[f"{split}_bytes"] = z[f"{split}_bytes"][:offsets[-1]]
        small[f"{split}_offsets"] = offsets
        small[f"{split}_labels"] = z[f"{split}_labels"][:12]
    return {**small, **overrides}


def test_cli_accepts_npz(tmp_path):
    small = _small_npz()
    np.savez(tmp_path / "small.npz", **small)
    res = run_cli("convert", "--from", str(tmp_path / "small.npz"), "--to", str(tmp_path / "s.h5"), "--no-progress")
    assert res.returncode == 0, res.stderr
    ds = read_h5(tmp_path / "s.h5")
    np.testing.assert_array_equal(ds.train_labels, small["train_labels"].astype(np.int64))
    first = small["train_bytes"][:small["train_offsets"][1]].tobytes()
    np.testing.assert_array_equal(ds.train_images[0], np.asarray(Image.open(io.BytesIO(first))).transpose(2, 0, 1))


@pytest.mark.parametrize("case", ["missing", "md5", "corrupt_npz", "text_npz", "bad_dest", "bad_jpeg"])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, case):
    dest = tmp_path / "out.h5"
    if case == "missing":
        src = tmp_path / "nope"
        expect = "no such file"
    elif case == "md5":
        write_cifar10_python(tmp_path / "src")
        src, expect = tmp_path / "src", "does not match the official checksum"
    elif case == "corrupt_npz":
        src = tmp_path / "x.npz"
        src.write_bytes(b"PK\x03\x04 not really a zip")
        expect = "x.npz"
    elif case == "text_npz":  # numpy would call this "pickled data" and suggest loading it unsafely
        src = tmp_path / "junk.npz"
        src.write_text("junk\n")
        expect = "junk.npz: not an .npz archive"
    elif case == "bad_dest":
        (tmp_path / "tree" / "train" / "a").mkdir(parents=True)
        (tmp_path / "tree" / "test" / "a").mkdir(parents=True)
        src, dest, expect = tmp_path / "tree", tmp_path / "out.txt", "destination must end in .h5"
    else:
        for split in ("train", "test"):
            (tmp_path / "tree" / split / "a").mkdir(parents=True)
            (tmp_path / "tree" / split / "a" / "0.jpg").write_bytes(b"\xff\xd8 truncated")
        src, expect = tmp_path / "tree", "0.jpg: cannot decode image"
    from nets.data.__main__ import main

    argv = ["convert", "--from", str(src), "--to", str(dest), "--no-progress"]
    # md5 end to end in a fresh interpreter: nothing but the one line reaches stderr
    assert_one_line_exit_2(capsys, main, argv, expect, run_fresh=run_cli if case == "md5" else None)
    assert not dest.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_malformed_jpeg_npz_is_refused_by_name(tmp_path):
    good = _small_npz()
    cases = {
        "float_offsets": (dict(train_offsets=good["train_offsets"].astype(float)), "train_offsets must be a 1-D integer"),
        "scalar_classes": (dict(classes=np.array("cat")), "classes must be a 1-D array of class names"),
        "string_labels": (dict(test_labels=np.array(["x"] * 12)), "test_labels must be a 1-D integer"),
        "same_classes": (dict(classes=np.array(["a"] * 10)), "class names must be distinct and non-empty"),
        "blank_classes": (dict(classes=np.array([""] * 10)), "class names must be distinct and non-empty"),
        "empty_test": (dict(test_bytes=np.zeros(0, np.uint8), test_offsets=np.zeros(1, np.int64),
                            test_labels=np.zeros(0, np.int64)), "test_labels is empty"),  # was "test: no images"
    }
    for name, (overrides, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **_small_npz(**overrides))
        with pytest.raises(DataError, match=f"{name}.npz: {message}"):
            load_jpeg_npz(tmp_path / f"{name}.npz")
    np.savez_compressed(tmp_path / "damaged.npz", **good)
    blob = bytearray((tmp_path / "damaged.npz").read_bytes())
    at = blob.index(b"train_offsets.npy", len(blob) // 2)  # the member's name in the central directory
    blob[at:at + 5] = b"XXXXX"
    (tmp_path / "damaged.npz").write_bytes(bytes(blob))
    with pytest.raises(DataError, match="damaged.npz: "):
        load_jpeg_npz(tmp_path / "damaged.npz")
    without = {key: value for key, value in good.items() if key != "test_labels"}
    np.savez(tmp_path / "no_key.npz", **without)  # numpy's KeyError sentence was quoted as the key's name
    with pytest.raises(DataError, match=r"no_key.npz: not a JPEG image npz \(missing 'test_labels'\)$"):
        load_jpeg_npz(tmp_path / "no_key.npz")
    np.savez(tmp_path / "bytes_classes.npz", **_small_npz(classes=np.array([c.encode() for c in good["classes"]])))
    assert load_jpeg_npz(tmp_path / "bytes_classes.npz").classes == tuple(str(c) for c in good["classes"])


def test_malformed_h5_is_refused_by_name(tmp_path):
    cases = {
        "group": (lambda f: (f.__delitem__("train/images"), f.create_group("train/images")),
                  "'train/images' is missing"),
        "int_classes": (lambda f: f.attrs.__setitem__("classes", 3), "attribute classes must be a 1-D array"),
        "huge_pad": (lambda f: f.attrs.__setitem__("pad", 10 ** 6), r"pad must be an integer in \[0, 32\]"),
        # NHWC arrays labelled NCHW, no pad attribute: "got 4" named a value the file does not hold
        "wrong_layout": (lambda f: (f.attrs.__setitem__("layout", "NCHW"), f.attrs.__delitem__("pad")),
                         r"the default when the file has no pad attribute: 4; read as NCHW, the images are "
                         r"C x H x W = 32x32x3 \(is layout right\?\)"),
        "float_labels": (lambda f: (f.__delitem__("test/labels"), f.create_dataset("test/labels", data=np.full(10, 1.5))),
                         "test/labels must be integers"),
    }
    for name, (edit, message) in cases.items():
        path = write_h5(make_synthetic(20, 10), tmp_path / f"{name}.h5")
        with h5py.File(path, "a") as f:
            edit(f)
        with pytest.raises(DataError, match=f"{name}.h5: .*{message}"):
            read_h5(path)


def test_h5_with_zero_size_images_is_refused_by_name(tmp_path):
    """0x0 (or 0-channel) images in both splits were a TypeError traceback from the fingerprint, not a DataError."""
    for name, cut in (("no_pixels", np.s_[:, :0, :0, :]), ("no_channels", np.s_[..., :0])):
        path = write_h5(make_synthetic(20, 10), tmp_path / f"{name}.h5")
        with h5py.File(path, "a") as f:
            f.attrs["pad"] = 0
            for split in ("train", "test"):
                images = f[f"{split}/images"][()][cut]
                del f[f"{split}/images"]
                f.create_dataset(f"{split}/images", data=images)
        with pytest.raises(DataError, match=f"{name}.h5: train images must have at least one channel and one pixel"):
            read_h5(path)


def test_h5_with_a_non_string_format_attribute_is_refused_as_foreign(tmp_path):
    """An array `format` attribute gave numpy's 'truth value of an array is ambiguous' as the reason."""
    path = write_h5(make_synthetic(20, 10), tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format"] = np.array([b"resnet-sde-images", b"x"])
    with pytest.raises(DataError, match="d.h5: not a resnet-sde-images file"):
        read_h5(path)


def test_synthetic_sizes_are_bounded():
    from nets.data.toy import SYNTHETIC_MAX

    with pytest.raises(DataError, match=rf"integers in \[1, {SYNTHETIC_MAX}\]"):
        load_dataset(f"synthetic:{SYNTHETIC_MAX + 1}")
    with pytest.raises(ValueError, match=rf"n_test must be an integer in \[1, {SYNTHETIC_MAX}\]"):
        make_synthetic(10, 99999999999)


@pytest.mark.parametrize("where", ["directory", "under_a_file"])
def test_convert_checks_its_destination_before_reading_the_source(tmp_path, capsys, where):
    from nets.data.__main__ import main

    (tmp_path / "afile").write_text("x")
    (tmp_path / "dir.h5").mkdir()
    dest = {"directory": tmp_path / "dir.h5", "under_a_file": tmp_path / "afile" / "x.h5"}[where]
    expect = {"directory": "is a directory", "under_a_file": f"'{tmp_path / 'afile'}' is not a directory"}
    with pytest.raises(SystemExit) as exit_info:  # the source does not exist either: the destination is named first
        main(["convert", "--from", str(tmp_path / "no-such-source"), "--to", str(dest), "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert f"destination '{dest}'" in err and expect[where] in err and "no-such-source" not in err, err


def test_convert_replaces_its_own_h5_but_no_other_file(tmp_path, capsys):
    from nets.data.__main__ import main

    _tree(tmp_path / "tree", {"train": [("a", "x", Image.new("RGB", (8, 8), (1, 2, 3)))],
                              "test": [("a", "x", Image.new("RGB", (8, 8), (1, 2, 3)))]})
    args = ["convert", "--from", str(tmp_path / "tree"), "--no-progress", "--to"]
    assert main([*args, str(tmp_path / "x.h5")]) == 0 and main([*args, str(tmp_path / "x.h5")]) == 0  # again
    (tmp_path / "notes.h5").write_text("keep me")  # was overwritten
    with h5py.File(tmp_path / "metrics.h5", "w") as other:
        other["train_loss"] = np.zeros(3)
    for name in ("notes.h5", "metrics.h5"):
        before = (tmp_path / name).read_bytes()
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main([*args, str(tmp_path / name)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and "refusing to overwrite it" in err
        assert (tmp_path / name).read_bytes() == before


def test_an_interrupted_convert_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import importlib
    import signal

    from nets.data.__main__ import main

    converting = importlib.import_module("nets.data.convert")  # the module (nets.data.convert is the function)

    _tree(tmp_path / "tree", {"train": [("a", "x", Image.new("RGB", (8, 8), (1, 2, 3)))],
                              "test": [("a", "x", Image.new("RGB", (8, 8), (1, 2, 3)))]})

    def interrupted(*args, **kwargs):  # as Ctrl-C, or SIGTERM through the handler main installs, mid-write
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, None)

    monkeypatch.setattr(converting, "write_h5", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["convert", "--from", str(tmp_path / "tree"), "--to", str(tmp_path / "x.h5"), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err == f"python -m nets.data: interrupted; {tmp_path / 'x.h5'} was not written\n"
    assert not (tmp_path / "x.h5").exists() and signal.getsignal(signal.SIGTERM) is before  # handler restored


def test_convert_creates_missing_folders_of_its_destination(tmp_path):
    """README's `--to data/cifar10-jpeg.h5` on a fresh clone, where data/ does not exist yet."""
    from nets.data.__main__ import main

    _tree(tmp_path / "tree", {"train": [("a", "x", Image.new("RGB", (8, 8), (1, 2, 3)))],
                              "test": [("a", "x", Image.new("RGB", (8, 8), (1, 2, 3)))]})
    dest = tmp_path / "new" / "sub" / "x.h5"
    assert main(["convert", "--from", str(tmp_path / "tree"), "--to", str(dest), "--no-progress"]) == 0
    np.testing.assert_array_equal(read_h5(dest).train_images[0, :, 0, 0], [1, 2, 3])


def test_corrupt_and_foreign_h5_are_refused(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n garbage" * 10)
    with pytest.raises(DataError, match="bad.h5: cannot read HDF5"):
        load_dataset(str(bad))
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match="foreign.h5: not a resnet-sde-images file"):
        load_dataset(str(foreign))
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "absent.h5"))
    with pytest.raises(DataError, match="synthetic:N_TRAIN"):
        load_dataset("synthetic:ten")


@pytest.mark.parametrize("attrs, message", [
    ({"format_version": 99}, "format_version 99 is not one this code reads"),
    ({"pad": -3}, "attribute pad must be an integer >= 0, got -3"),
    ({"pad": 2.5}, "attribute pad must be an integer >= 0"),
    ({"flip": "yes"}, "attribute flip must be a bool"),
])
def test_h5_attributes_are_checked(tmp_path, attrs, message):
    path = write_h5(make_synthetic(20, 10), tmp_path / "d.h5")
    assert read_h5(path).pad == 4
    with h5py.File(path, "a") as f:
        f.attrs.update(attrs)
    with pytest.raises(DataError, match=message):
        read_h5(path)


def test_synthetic_is_deterministic_balanced_and_h5_round_trips(tmp_path):
    a, b = make_synthetic(200, 50), make_synthetic(200, 50)
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert np.bincount(a.train_labels).tolist() == [20] * 10
    assert a.train_images.shape == (200, 3, 32, 32) and a.train_images.dtype == np.uint8
    assert load_dataset("synthetic:300:40").train_images.shape[0] == 300
    write_h5(a, tmp_path / "s.h5")
    c = read_h5(tmp_path / "s.h5")
    np.testing.assert_array_equal(c.train_images, a.train_images)
    assert (c.pad, c.flip) == (a.pad, a.flip)


def test_digits_are_sklearn_digits():
    from sklearn.datasets import load_digits

    ds = load_digits_dataset()
    raw = load_digits()
    assert ds.train_images.shape == (1437, 1, 8, 8) and ds.test_images.shape == (360, 1, 8, 8)
    assert (ds.pad, ds.flip, ds.in_channels) == (1, False, 1)
    # every image is an sklearn digit scaled from 0..16 to 0..255, with its own label
    lookup = {np.rint(img * 255 / 16).astype(np.uint8).tobytes(): int(t) for img, t in zip(raw.images, raw.target)}
    for img, lab in zip(ds.test_images[:50], ds.test_labels[:50]):
        assert lookup[img[0].tobytes()] == lab


def test_channel_stats_match_numpy():
    ds = make_synthetic(100, 10)
    mean, std = ds.channel_stats()
    x = ds.train_images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-9)


def test_download_without_torchvision_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from nets.data.__main__ import main

    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails, as with the CPU build of torch
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "--download", "cifar10", "--root", str(tmp_path / "dl"), "--to", str(tmp_path / "c.h5")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "needs torchvision" in err
    assert not (tmp_path / "c.h5").exists()
    with pytest.raises(ValueError, match="name must be one of cifar10, cifar100"):
        from nets.data.download import download_cifar
        download_cifar("mnist", tmp_path)


def test_official_archive_is_read_in_memory_after_md5_checks(tmp_path):
    import tarfile

    table, arrays = write_cifar10_python(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match="matches neither official CIFAR archive"):  # the default: published md5s
        load_dataset(str(archive))
    archive_table = {"cifar-10-python.tar.gz": md5_of(archive)}
    ds = convert(archive, tmp_path / "a.h5", checksums=table, archive_checksums=archive_table)
    np.testing.assert_array_equal(read_h5(tmp_path / "a.h5").train_images, arrays["train"][0])
    np.testing.assert_array_equal(ds.test_labels, arrays["test"][1])
    table["test_batch"] = "0" * 32  # a member whose md5 does not match is refused by name
    with pytest.raises(DataError, match=r"cifar-10-batches-py/test_batch: md5 .* does not match"):
        convert(archive, tmp_path / "b.h5", checksums=table, archive_checksums=archive_table)
    assert not (tmp_path / "b.h5").exists()
