"""`make demo` (python -m genesys_pipeline.local.demo): the whole graph on the embedded stack."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_graph_on_the_embedded_stack(tmp_path, capsys, monkeypatch):
    from genesys_pipeline.local.demo import main

    for name in ("GENESYS_PIPELINE_ENV", "GENESYS_API_BASE_URL", "GENESYS_WORKING_DIR", "GENESYS_S3_ENDPOINT_URL",
                 "GENESYS_S3_BUCKET", "GENESYS_SNOWFLAKE_CONNECTION_ARGS"):
        monkeypatch.setenv(name, "")  # the demo points its resources at its own servers, whatever these say

    assert main(["--days", "2", "--daily-volume", "200", "--data-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("raw_conversations 200 conversations") == 2
    assert printed.count("check row_counts_match_across_stages: PASSED") == 2
    assert "FAILED" not in printed
    assert len(list(tmp_path.glob("working/raw/conversations/*/conversations.jsonl.gz"))) == 2
    assert list((tmp_path / "snowflake").iterdir()), "the Snowflake stand-in's database is kept on disk"
