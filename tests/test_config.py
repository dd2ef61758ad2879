"""Settings a deployment changes: the WebRTC servers of the Live page and the upload limit of every upload box."""
from __future__ import annotations

import re

import pytest

from ser_core import config
from tests.conftest import PROJECT_ROOT


# --- $SER_ICE_SERVERS ----------------------------------------------------------------------------------------

def test_no_ice_servers_by_default(monkeypatch):
    monkeypatch.delenv(config.ICE_SERVERS_ENV, raising=False)
    assert config.ice_servers() == []
    monkeypatch.setenv(config.ICE_SERVERS_ENV, "  ")
    assert config.ice_servers() == []


def test_ice_servers_as_a_list(monkeypatch):
    servers = ('[{"urls": "stun:stun.example.org:3478"}, '
               '{"urls": ["turn:turn.example.org:3478"], "username": "class", "credential": "s3cret"}]')
    monkeypatch.setenv(config.ICE_SERVERS_ENV, servers)
    assert config.ice_servers() == [{"urls": "stun:stun.example.org:3478"},
                                    {"urls": ["turn:turn.example.org:3478"], "username": "class",
                                     "credential": "s3cret"}]


def test_a_single_ice_server_object_becomes_a_list(monkeypatch):
    monkeypatch.setenv(config.ICE_SERVERS_ENV, '{"urls": "stun:stun.example.org:3478"}')
    assert config.ice_servers() == [{"urls": "stun:stun.example.org:3478"}]


def test_invalid_ice_servers_get_a_one_line_message_with_an_example(monkeypatch):
    monkeypatch.setenv(config.ICE_SERVERS_ENV, "stun:stun.example.org:3478")  # a URL, not JSON
    with pytest.raises(ValueError) as raised:
        config.ice_servers()
    message = str(raised.value)
    assert "\n" not in message and config.ICE_SERVERS_ENV in message and "not valid JSON" in message
    assert '[{"urls": "stun:' in message  # what to write instead


# --- the upload limit --------------------------------------------------------------------------------------

def test_the_upload_limit_is_the_one_the_readme_states_and_streamlit_reads(monkeypatch):
    """Streamlit reads .streamlit/config.toml from the folder it starts in (the README starts it in the project):
    the limit it enforces, and states under each upload box ("Limit 30MB per file"), is the README's."""
    from streamlit import config as streamlit_config

    monkeypatch.chdir(PROJECT_ROOT)
    streamlit_config.get_config_options(force_reparse=True)
    try:
        limit = streamlit_config.get_option("server.maxUploadSize")
    finally:
        monkeypatch.undo()
        streamlit_config.get_config_options(force_reparse=True)
    assert limit == 30
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert re.search(r"upload a clip \(up to (\d+) MB", readme).group(1) == str(limit)
