"""Evaluation reports: metrics.json, report.md, a self-contained report.html with its plots,
the side-by-side comparison, and the ``eval report`` / ``eval compare`` commands."""

from __future__ import annotations

import base64
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from medresearcher.cli.eval_report_cmd import compare, report
from medresearcher.cli.state import CliState
from medresearcher.errors import InputError
from medresearcher.evaluation.metrics import compute_metrics
from medresearcher.evaluation.report import (
    compare_html,
    compare_runs,
    comparison_table,
    fmt_value,
    render_plots,
    write_comparison,
    write_report,
)
from medresearcher.workspace import Workspace
from tests.test_eval_metrics import make_run

ATTACK = "<script>alert('x')</script> & <b>bold</b>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Cells(HTMLParser):
    """Collects every ``data-metric`` cell (path, value, text) and every image source."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[list[str], Any, str]] = []
        self.images: list[str] = []
        self._open: tuple[list[str], Any] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found["src"] or "")
        if tag == "td" and "data-metric" in found:
            self._open = (json.loads(found["data-metric"]), json.loads(found["data-value"]))
            self._text = ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open is not None:
            self.cells.append((*self._open, self._text))
            self._open = None


def lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data[part]
    return data


def write_workspace_run(ws: Workspace, run: str, *, with_trajectories: bool = True, **kw) -> None:
    results, trajectories = make_run(**kw)
    folder = ws.eval_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [r.model_dump_json() for r in results]
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if with_trajectories:
        ws.trajectories_path(run).parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(t.model_dump_json() for t in trajectories) + "\n"
        ws.trajectories_path(run).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One report written from the 6 × 3 run, with an HTML-injection prediction on q2."""
    folder = tmp_path_factory.mktemp("eval-report") / "run-a"
    results, trajectories = make_run({"q2": ATTACK})
    metrics = compute_metrics(results, trajectories, bootstrap=200, seed=1)
    paths = write_report(folder, metrics, results, trajectories)
    page = paths["html"].read_text(encoding="utf-8")
    parser = Cells()
    parser.feed(page)
    return {"folder": folder, "paths": paths, "metrics": metrics, "html": page, "parsed": parser}


def test_report_writes_metrics_markdown_html_and_png_plots(written) -> None:
    paths = written["paths"]
    assert {"metrics", "markdown", "html"} <= set(paths)
    plots = {name for name in paths if name.endswith(".png")}
    assert plots == {
        "accuracy_by_task.png",
        "accuracy_by_hops.png",
        "accuracy_by_specialties.png",
        "tool_calls_histogram.png",
        "accuracy_by_tool_calls.png",
    }
    for name in plots:
        assert paths[name] == written["folder"] / name
        assert paths[name].read_bytes().startswith(PNG_MAGIC)
    assert json.loads(paths["metrics"].read_text()) == written["metrics"]
    markdown = paths["markdown"].read_text()
    assert all(f"]({name})" in markdown for name in plots)


def test_html_embeds_every_plot_as_a_data_uri_of_the_png_file(written) -> None:
    images = written["parsed"].images
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in images}
    assert all(src.startswith("data:image/png;base64,") for src in images)
    for name, path in written["paths"].items():
        if name.endswith(".png"):
            assert path.read_bytes() in embedded, name


def test_html_numbers_equal_metrics_json(written) -> None:
    on_disk = json.loads(written["paths"]["metrics"].read_text())
    cells = written["parsed"].cells
    assert len(cells) > 60
    for path, value, text in cells:
        assert lookup(on_disk, path) == value, path
        assert text != ""
    shown = {tuple(path): text for path, _, text in cells}
    accuracy = on_disk["accuracy"]
    assert shown[("accuracy", "avg_pass@1")] == fmt_value(accuracy["avg_pass@1"], "pct")
    assert shown[("accuracy", "ci")] == fmt_value(accuracy["ci"], "ci")
    pass3 = accuracy["pass@k"]["3"]["value"]
    assert shown[("accuracy", "pass@k", "3", "value")] == fmt_value(pass3, "pct") == "66.7 %"
    for label, block in on_disk["by"]["task"].items():
        assert shown[("by", "task", label, "avg_pass@1")] == fmt_value(block["avg_pass@1"], "pct")
    assert ("tool_use", "first_tool_medical_retriever_share") in shown
    assert ("usage", "latency_s", "p95") in shown


def test_html_is_self_contained_and_escapes_model_output(written) -> None:
    page = written["html"]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<script" not in page.lower() and "<b>" not in page
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # nothing loaded from elsewhere
    assert "http://" not in page and "https://" not in page
    markdown = written["paths"]["markdown"].read_text()
    assert "<script" not in markdown and "&lt;script&gt;" in markdown


def test_report_without_trajectories_has_no_tool_plots_and_drops_stale_ones(tmp_path: Path) -> None:
    results, _ = make_run()
    metrics = compute_metrics(results, bootstrap=0, by=[])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "accuracy_by_task.png").write_bytes(b"from an earlier report")
    paths = write_report(tmp_path / "run", metrics, results)
    assert sorted(name for name in paths if name.endswith(".png")) == ["accuracy_by_overall.png"]
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == ["accuracy_by_overall.png"]
    assert "Tool use" not in paths["html"].read_text()


# ------------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, written) -> Workspace:
    """Two runs: ``run-a`` (report written), ``run-b`` (results only, more answers right)."""
    ws = Workspace(tmp_path_factory.mktemp("eval-ws") / "ws").ensure()
    write_workspace_run(ws, "run-a")
    write_workspace_run(ws, "run-b", prediction_of={"q3": "<i>x</i>"})
    results_b = ws.eval_dir("run-b") / "results.jsonl"
    text = results_b.read_text().replace('"verdict":"incorrect"', '"verdict":"correct"', 4)
    results_b.write_text(text)
    return ws


def test_compare_two_runs_side_by_side(workspace: Workspace, tmp_path: Path) -> None:
    table = compare_runs([workspace.eval_dir("run-a"), workspace.eval_dir("run-b")])
    assert table["runs"] == ["run-a", "run-b"]
    rows = {(row["section"], row["label"]): row for row in table["rows"]}
    avg = rows[("overall", "avg pass@1")]
    assert avg["values"][0] == pytest.approx(7 / 18, abs=1e-6)
    assert avg["values"][1] == pytest.approx(11 / 18, abs=1e-6)
    assert avg["best"] == 1
    assert rows[("overall", "items")]["best"] is None
    assert ("by task", "Ingredient") in rows and ("overall", "pass@3") in rows
    assert not (workspace.eval_dir("run-b") / "metrics.json").exists()  # computed, not written
    paths = write_comparison(table, tmp_path / "cmp")
    assert {p.name for p in paths.values()} == {"compare.md", "compare.html", "compare.json"}
    assert json.loads(paths["json"].read_text()) == table
    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 1
    markdown = paths["markdown"].read_text()
    assert f"**{fmt_value(avg['values'][1], 'pct')}**" in markdown


def test_run_and_category_names_are_escaped() -> None:
    results, _ = make_run()
    tasks = ["<img src=x>", "$\\frac{1}{$"]  # HTML, and text matplotlib would read as math
    evil = [
        r.model_copy(update={"metadata": {"task": tasks[int(r.item_id[1]) % 2]}}) for r in results
    ]
    one = compute_metrics(evil, bootstrap=0)
    table = comparison_table({"<a>": one, "b": one})
    page = compare_html(table)
    assert len(render_plots(one)["accuracy_by_task.png"]) > 1000  # drawn, no mathtext error
    assert "<img src=x>" not in page and "&lt;img src=x&gt;" in page and "<a>" not in page


def test_compare_of_a_folder_that_is_no_run_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"neither metrics\.json nor results\.jsonl"):
        compare_runs([tmp_path / "nothing", tmp_path / "else"])


# ------------------------------------------------------------------------------- commands


@pytest.fixture
def cli_app(workspace: Workspace):
    """``report`` and ``compare`` on an app of their own, as eval_cmd.py registers them."""
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = CliState(workspace=workspace.root)

    app.command("report")(report)
    app.command("compare")(compare)
    root_logger = logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    yield app
    root_logger.handlers[:], root_logger.level = handlers, level


def test_report_command_writes_the_report_and_prints_a_summary(cli_app, workspace) -> None:
    result = CliRunner().invoke(cli_app, ["report", "run-a", "--bootstrap", "100"],
                                env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = workspace.eval_dir("run-a")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["bootstrap"]["resamples"] == 100 and metrics["tool_use"]["trajectories"] == 18
    assert (folder / "report.html").is_file() and (folder / "tool_calls_histogram.png").is_file()
    assert "avg pass@1" in result.output
    assert fmt_value(metrics["accuracy"]["avg_pass@1"], "pct") in result.output
    assert "18 results, 18 trajectories" in result.output


def test_compare_command_prints_and_writes_the_table(cli_app, workspace, tmp_path) -> None:
    out = tmp_path / "cmp"
    result = CliRunner().invoke(cli_app, ["compare", "run-a", "run-b", "--out", str(out)],
                                env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "run-a" in result.output and "run-b" in result.output
    assert fmt_value(11 / 18, "pct") in result.output
    assert (out / "compare.html").is_file() and (out / "compare.md").is_file()


def test_commands_name_a_missing_run(cli_app) -> None:
    result = CliRunner().invoke(cli_app, ["report", "nope"])
    assert isinstance(result.exception, InputError)
    assert "eval/nope/results.jsonl" in str(result.exception)
    result = CliRunner().invoke(cli_app, ["compare", "run-a"])
    assert result.exit_code == 2  # one run: a usage error
