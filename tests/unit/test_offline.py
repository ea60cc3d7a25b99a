"""The tests themselves prove aligner needs no network: every test runs behind the guard checked here."""

import os
import socket

import pytest

from conftest import NetworkBlocked


def test_outbound_connections_are_refused():
    with pytest.raises(NetworkBlocked, match="203.0.113.7"):
        socket.create_connection(("203.0.113.7", 443), timeout=1)


def test_hub_libraries_are_offline():
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.HF_HUB_OFFLINE


def test_hub_id_fails_fast_and_clearly(tmp_path):
    from aligner.modeling import base as models

    with pytest.raises(models.ModelLoadError, match="--model nobody/no-such-model: could not load"):
        models.load_base("nobody/no-such-model", models.placement("cpu"))
    with pytest.raises(models.ModelLoadError, match="no such directory"):
        models.load_base(str(tmp_path / "missing"), models.placement("cpu"))
