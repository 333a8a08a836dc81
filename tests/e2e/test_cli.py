"""The CLI against the in-process stack over gRPC: query, identify, verify, novelty, typicality,
designs get, dislike (the blocking client runs in a thread, the servers on the test loop)."""

from __future__ import annotations

import asyncio
import re

from typer.testing import CliRunner

from designsearch.cli import app


async def _run(*args: str) -> str:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


async def test_cli_commands_over_grpc(indexed, stack):
    catalogue, queries, _ = indexed
    gw = ["--gateway", stack["gateway"].address]
    img = str(catalogue[0].path)
    out = await _run("query", img, "--k", "3", *gw)
    assert catalogue[0].model in out
    query_id = re.search(r"query id \(for `designsearch dislike`\): ([0-9a-f]{64})", out).group(1)
    assert catalogue[0].model in await _run("identify", img, *gw)
    assert "same design" in await _run("verify", img, img, *gw)
    assert re.search(r"novelty 0\.0", await _run("novelty", img, *gw))
    typ = await _run("typicality", img, "--brand", catalogue[0].brand, *gw)
    m = re.search(r"typicality (-?\d+\.\d{3}) \(.*\); group of (\d+) points", typ.replace("\n", " "))
    same_brand = sum(c.brand == catalogue[0].brand for c in catalogue)
    assert m and 0.0 < float(m.group(1)) <= 1.0 and int(m.group(2)) >= same_brand, typ  # a score against the brand
    assert catalogue[0].brand in await _run("designs", "get", catalogue[0].design_id, *gw)
    other = next(q for q in queries if q.design_id != catalogue[0].design_id).design_id
    assert "noted" in await _run("dislike", query_id, other, *gw)
    bad = await asyncio.to_thread(CliRunner().invoke, app, ["designs", "get", "no-such-design", *gw])
    assert bad.exit_code == 1 and "NOT_FOUND" in bad.output
