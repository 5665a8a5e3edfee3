"""README's gallery shows what the code draws: every image exists, every entry names a registered figure, and
the tables it prints are what the table code computes from the committed results/ today.

When new runs land under results/ (a GPU session's Table 1, say), the tables here change and this test says
so: re-render them with `python -m figures table1 lm_table --results results` and paste their rows.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from figures.registry import figure_names, load

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
GALLERY = ROOT / "docs" / "gallery"
DEMO_IMAGE = "landscape_l2_eps0.5.png"  # `make demo`'s output, shown in the quick start

# "| **name**: caption |" followed by "| <img src="docs/gallery/name.png" ... |"
ENTRY = re.compile(r"^\| \*\*(?P<name>[a-z0-9_]+)\*\*: .*\|\n\| <img src=\"docs/gallery/(?P<image>[^\"]+)\"", re.M)
IMAGE_LINK = re.compile(r"docs/gallery/([A-Za-z0-9_.\-]+)")


def test_every_image_the_readme_links_exists():
    linked = set(IMAGE_LINK.findall(README))
    assert linked, "README links no gallery image"
    missing = sorted(name for name in linked if not (GALLERY / name).is_file())
    assert not missing, f"README links images that docs/gallery lacks: {missing}"
    from PIL import Image

    for name in sorted(linked):  # whole PNGs, not truncated or empty files
        with Image.open(GALLERY / name) as image:
            image.load()
            assert image.format == "PNG" and min(image.size) >= 200, (name, image.format, image.size)


def test_every_gallery_image_is_shown_in_the_readme():
    shown = set(IMAGE_LINK.findall(README))
    orphans = sorted(p.name for p in GALLERY.glob("*.png") if p.name not in shown)
    assert not orphans, f"docs/gallery holds images README does not show: {orphans}"


def test_every_gallery_entry_is_a_registered_figure_with_its_own_image():
    entries = list(ENTRY.finditer(README))
    assert len(entries) >= 20
    known = set(figure_names())
    for entry in entries:
        assert entry["name"] in known, f"README gallery entry {entry['name']!r} is not a figure"
        assert entry["image"] == f"{entry['name']}.png", entry.group(0)
    images = {p.name for p in GALLERY.glob("*.png")} - {DEMO_IMAGE}
    assert images == {f"{e['name']}.png" for e in entries}


@pytest.mark.parametrize("name", ["table1", "lm_table"])
def test_tables_in_the_readme_are_computed_from_the_committed_results(name, tmp_path):
    written = load(name).make(tmp_path, results=ROOT / "results")
    markdown = next(path for path in written if path.suffix == ".md").read_text(encoding="utf-8")
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(rows) >= 3  # header, rule, at least one row of numbers
    block = "\n".join(rows)
    assert block in README, f"README's {name} differs from what results/ gives now:\n{block}"
