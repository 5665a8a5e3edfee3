"""The built-in data sets do what their docstring claims; users' files are read or refused clearly."""
import h5py
import numpy as np
import pytest

from landscape import builtin_dataset, compute, fit_accuracy, get_dataset, landscape_statistics, load_dataset


def _stats(name, eps, loss="l2", objective="ensemble", n_f=1201):
    data = get_dataset(name)
    f = np.linspace(*data.default_f_range(), n_f)
    return landscape_statistics(f, compute(f, data.y, data.label, eps, loss, objective=objective))


def test_rugged_claims():
    plain = _stats("rugged", 0.0)
    noisy = _stats("rugged", 0.5)
    assert plain.n_minima >= 3
    assert noisy.n_minima < plain.n_minima
    assert noisy.largest_barrier < plain.largest_barrier
    # the surviving minimum is the plain landscape's global one (the best threshold, f ~ 0.5)
    assert abs(noisy.global_f - plain.global_f) < 0.2
    # the same smoothing under l1 (Fig. 4a)
    assert _stats("rugged", 0.5, "l1").n_minima < _stats("rugged", 0.0, "l1").n_minima


def test_double_well_claims():
    plain = _stats("double-well", 0.0)
    assert plain.n_minima == 2
    sharp, flat = sorted(plain.minima, key=lambda m: -m.curvature)
    assert sharp.curvature >= 5 * flat.curvature
    assert sharp.f < flat.f  # sharp well on the left, f ~ -8; flat well f ~ 1
    # the noise-averaged loss that dropout descends keeps only the flat well
    noisy = _stats("double-well", 0.5, objective="expected")
    assert noisy.n_minima == 1
    assert abs(noisy.minima[0].f - flat.f) < 0.5


def test_separable_claims():
    data = get_dataset("separable")
    plain = _stats("separable", 0.0, "l1")
    assert plain.n_minima == 1
    assert fit_accuracy(plain.global_f, data.y, data.label) == 1.0
    damped = _stats("separable", 4.0, "l1")
    assert fit_accuracy(damped.global_f, data.y, data.label) < 1.0


def test_default_f_range_covers_every_threshold():
    for name in ("rugged", "double-well", "separable"):
        data = builtin_dataset(name)
        low, high = data.default_f_range()
        assert low <= -data.y.max() - 3 and high >= -data.y.min() + 3


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset 'moons'; allowed: rugged, double-well, separable"):
        get_dataset("moons")


Y = np.array([-1.5, 0.25, 2.0])
L = np.array([0, 1, 1])


def test_csv_npz_h5_round_trip(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("y,label\n" + "".join(f"{y},{h}\n" for y, h in zip(Y, L)))
    npz = tmp_path / "d.npz"
    np.savez(npz, y=Y, label=L)
    h5 = tmp_path / "d.h5"
    with h5py.File(h5, "w") as f:
        f["y"] = Y
        f["label"] = L
    for path in (csv, npz, h5):
        data = get_dataset(str(path))
        np.testing.assert_array_equal(data.y, Y)
        np.testing.assert_array_equal(data.label, L.astype(float))


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("a.csv", "x,label\n1,0\n2,1\n", "header 'y,label'"),
        ("b.csv", "y,label\n1,0\nabc,1\n", "line 3 is not numeric"),
        ("c.csv", "y,label\n1,0\n2,2\n", "label must be 0 or 1"),
        ("d.csv", "y,label\n1,0\n", "at least 2 samples"),
        ("e.csv", "y,label\nnan,0\n2,1\n", "y must be finite"),
        ("f.csv", "y,label\n1,0,3\n2,1\n", "must have 2 fields"),
        ("g.csv", "", "header 'y,label'"),
        ("h.npz", b"not a zip file", "not an .npz archive"),
        ("i.h5", b"not hdf5", "not a readable HDF5"),
        ("j.txt", "y,label\n1,0\n", "must end in one of .csv, .npz, .h5, .hdf5"),
        ("k.csv", b"\xff\xfe\x00garbage", r"k.csv: not a UTF-8 text .csv file \(byte 0 cannot be decoded\)"),
    ],
)
def test_malformed_files_are_refused(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_dataset(path)


def _npz_bytes(tmp_path, compressed=False) -> bytes:
    path = tmp_path / "whole.npz"
    (np.savez_compressed if compressed else np.savez)(path, y=np.linspace(-3, 3, 40), label=np.arange(40) % 2)
    data = path.read_bytes()
    path.unlink()
    return data


def test_damaged_npz_is_a_value_error_naming_the_file(tmp_path):
    # a truncated or corrupted archive failed in zipfile (BadZipFile, KeyError, NotImplementedError) or
    # zlib with a traceback; every cut and a sample of flipped bytes must give a ValueError naming the file
    path = tmp_path / "d.npz"
    for compressed in (False, True):
        data = _npz_bytes(tmp_path, compressed)
        damaged = [data[:n] for n in range(0, len(data) - 1, 7)]
        rng = np.random.default_rng(0)
        for _ in range(150):
            flipped = bytearray(data)
            for position in rng.integers(0, len(data), size=3):
                flipped[position] ^= int(rng.integers(1, 256))
            damaged.append(bytes(flipped))
        refused = 0
        for content in damaged:
            path.write_bytes(content)
            try:
                load_dataset(path)
            except ValueError as err:
                assert str(err).startswith(str(path)) and "\n" not in str(err)
                refused += 1
        assert refused >= len(damaged) - 10  # a flip in unused bytes may leave the data intact


@pytest.mark.parametrize("key", ["y", "label"])
def test_complex_values_are_refused_not_truncated(tmp_path, key):
    # y.astype(float) dropped the imaginary part with a ComplexWarning and the run went on
    arrays = {"y": Y.astype(complex), "label": L} if key == "y" else {"y": Y, "label": L.astype(complex)}
    arrays[key][0] += 1j
    npz = tmp_path / "c.npz"
    np.savez(npz, **arrays)
    h5 = tmp_path / "c.h5"
    with h5py.File(h5, "w") as f:
        for name, values in arrays.items():
            f[name] = values
    for path in (npz, h5):
        with pytest.raises(ValueError, match=rf"^{path}: {key} must be real, got complex values \(complex128\)$"):
            load_dataset(path)
    from landscape.datasets import check_samples

    with pytest.raises(ValueError, match=f"{key} must be real"):
        check_samples(**{k: v.tolist() for k, v in arrays.items()})


def test_csv_with_byte_order_mark_and_directory(tmp_path):
    bom = tmp_path / "bom.csv"  # as Excel writes "CSV UTF-8": the BOM is not part of the header
    bom.write_bytes("\ufeffy,label\n-1,0\n2,1\n".encode("utf-8"))
    np.testing.assert_array_equal(load_dataset(bom).y, [-1.0, 2.0])
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ValueError, match="^dataset file '.*dir.csv' is a directory$"):
        get_dataset(str(tmp_path / "dir.csv"))


@pytest.mark.parametrize("link", ["soft", "external"])
def test_h5_arrays_that_link_to_nothing_are_refused_naming_the_file(tmp_path, link):
    h5 = tmp_path / "linked.h5"
    with h5py.File(h5, "w") as f:
        f["label"] = L
        f["y"] = h5py.SoftLink("/nowhere") if link == "soft" else h5py.ExternalLink(str(tmp_path / "gone.h5"), "/y")
    with pytest.raises(ValueError, match="linked.h5: not a readable HDF5 file"):
        load_dataset(h5)


def test_missing_arrays_and_files(tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, y=Y)
    with pytest.raises(ValueError, match="missing array"):
        load_dataset(npz)
    h5 = tmp_path / "x.h5"
    with h5py.File(h5, "w") as f:
        f["label"] = L
    with pytest.raises(ValueError, match="missing array"):
        load_dataset(h5)
    with pytest.raises(ValueError, match="does not exist"):
        get_dataset(str(tmp_path / "nope.csv"))
    mismatch = tmp_path / "m.npz"
    np.savez(mismatch, y=Y, label=L[:2])
    with pytest.raises(ValueError, match="same length"):
        load_dataset(mismatch)
