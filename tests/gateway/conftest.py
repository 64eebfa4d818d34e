"""A scripted upstream on loopback and gateways in front of it."""

from __future__ import annotations

import pytest
from gwutil import ENV, upstream_entry

from harness.config import load_model_config
from harness.gateway import Gateway, ScriptedUpstream


@pytest.fixture
def upstream():
    with ScriptedUpstream() as up:
        yield up


@pytest.fixture
def make_gateway(tmp_path):
    """make_gateway(upstreams=[...entries], budget={...}, run_id="r1") -> started Gateway."""
    started = []

    def make(upstreams, budget=None, run_id="r1", **kw):
        cfg = load_model_config({"upstream": upstreams, **({"budget": budget} if budget else {})})
        gw = Gateway(cfg, run_id, blobs_dir=kw.pop("blobs_dir", tmp_path / "blobs"), environ=ENV, **kw)
        gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(make_gateway, upstream):
    """One gateway with an OpenAI and an Anthropic upstream, both the scripted server."""
    return make_gateway([upstream_entry("oa", upstream.url),
                         upstream_entry("an", upstream.url, protocol="anthropic")])
