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
