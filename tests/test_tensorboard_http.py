"""TensorBoard as users see it: a real server on a finished run, read through its HTTP data API."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

STARTUP_TIMEOUT = 90  # seconds; TensorBoard loads event files in the background


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tensorboard(subset_cnn_run):
    """`tensorboard --logdir RUN` on a free loopback port; yields a GET function for its API."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", subset_cnn_run["run_dir"],
                               "--port", str(port), "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.read()

    def get_json_when(path: str, ready) -> object:
        """Poll `path` until `ready(answer)`; the server needs a while to start and load the run."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                answer = json.loads(get(path))
                if ready(answer):
                    return answer
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            if server.poll() is not None:
                pytest.fail(f"tensorboard exited: {server.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not serve {path} within {STARTUP_TIMEOUT} s")
            time.sleep(0.5)

    get.json_when = get_json_when
    try:
        yield get
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_scalars_images_and_graph_over_http(tensorboard, subset_cnn_run):
    image_tags = tensorboard.json_when("/data/plugin/images/tags", lambda tags: "." in tags)["."]
    assert {"val/confusion_matrix", "val/misclassified"} <= set(image_tags)

    scalar_tags = tensorboard.json_when("/data/plugin/scalars/tags", lambda tags: "." in tags)["."]
    assert {"train/loss_epoch", "val/acc", "val/loss", "test/acc"} <= set(scalar_tags)
    val_acc = json.loads(tensorboard("/data/plugin/scalars/scalars?run=.&tag=val/acc"))
    assert len(val_acc) == 2  # [wall_time, step, value] for each of the two epochs
    test_acc = json.loads(tensorboard("/data/plugin/scalars/scalars?run=.&tag=test/acc"))
    assert test_acc[-1][2] == pytest.approx(subset_cnn_run["test"]["test/acc"], abs=1e-5)

    # figures_every_n_epochs is 5, so of two epochs only the last (epoch 1) has figures
    for tag in ("val/confusion_matrix", "val/misclassified"):
        entries = json.loads(tensorboard(f"/data/plugin/images/images?run=.&tag={tag}&sample=0"))
        assert [entry["step"] for entry in entries] == [1]
        picture = Image.open(io.BytesIO(tensorboard(f"/data/plugin/images/individualImage?{entries[0]['query']}")))
        assert picture.format == "PNG" and min(picture.size) > 300

    graph = tensorboard("/data/plugin/graphs/graph?run=.&conceptual=false").decode()
    assert "input/images" in graph and "ConvNet[net]" in graph and "Conv2d" in graph
