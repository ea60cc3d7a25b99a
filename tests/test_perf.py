"""The GPU performance suite's path, at a tiny size on CPU: every layout runs in its own process and is reported."""

import json

from aligner.bench import perf


def test_perf_suite_runs_every_layout_on_cpu(tmp_path):
    code = perf.main(["--shape", "tiny", "--batch", "2", "--prompt-length", "8", "--response-length", "8",
                      "--output-dir", str(tmp_path)])
    assert code == 0
    results = json.loads((tmp_path / "perf.json").read_text())
    assert [r["layout"] for r in results["results"]] == perf.LAYOUTS
    for r in results["results"]:
        assert r["update_seconds"] > 0 and r["update_flops"] > 0 and r["peak_memory_mb"] > 0
    ppo = next(r for r in results["results"] if r["layout"] == "ppo-shared")
    assert ppo["generation_tokens_per_second"] > 0 and ppo["decode_bytes"] > 0
    text = (tmp_path / "perf.md").read_text()
    assert "the four-copies layout's (target <= 0.5x)" in text and "| ppo-copies |" in text
