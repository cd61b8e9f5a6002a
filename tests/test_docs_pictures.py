"""The pictures of docs/workshop.md and docs/GAN.md exist and are made by docs/make_pictures.py."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT, run_cli

DOCS = ROOT / "docs"
SCRIPT = (DOCS / "make_pictures.py").read_text()


def test_every_picture_the_guides_show_exists_and_the_script_makes_it():
    for guide in ("workshop.md", "GAN.md"):
        pictures = re.findall(r"\]\((images/[\w.-]+\.(?:png|gif))\)", (DOCS / guide).read_text())
        assert pictures, guide
        for picture in pictures:
            assert (DOCS / picture).stat().st_size > 1000, f"{guide} shows {picture}, which is missing"
            assert f"docs/{picture}" in SCRIPT or picture.split("/")[1] in SCRIPT, \
                f"{picture} is not made by docs/make_pictures.py"


@pytest.mark.slow
def test_make_pictures_documents_its_commands():
    proc = run_cli("docs/make_pictures.py", "--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("python -m mnist_pl show", "python train.py --model gan", "python -m mnist_pl generate"):
        assert command in proc.stdout
