"""Measured figures as data: one small JSON file per benchmark or study under `results/`, and
`docs/results.md` rendered from them.

A script records its figures with `record(unit, figures, ...)`; the file says what was
measured, the command that measured it, when, on what machine and at which code version (git
sha, `-dirty` when tracked code differed from it). `render()` turns every file into the
results document and `refresh()` sets the "last figure" cells of benchmarks/README.md and
studies/README.md; `python -m storage.results` rewrites them, `--check` fails when one is stale.

    {"unit": "storage_write", "kind": "benchmark", "title": "...",
     "command": "uv run python benchmarks/bench_storage_write.py",
     "date": "2026-12-07", "machine": "x86_64, 2 cores, no GPU", "code_version": "4514525",
     "figures": [{"name": "ratio", "value": 0.99, "unit": "x", "target": "< 1.25"}],
     "conclusion": "..."}

A figure whose `value` is null is a placeholder: it is shown as "to be measured".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "results"
DOCUMENT = REPO / "docs" / "results.md"
INDEXES = (REPO / "benchmarks" / "README.md", REPO / "studies" / "README.md")
"""Tables whose last cell, "`unit`: figure", shows a unit's headline figure (`refresh`)."""
LAST_CELL = re.compile(r"`([a-z0-9_]+)`: [^|]*\|$", flags=re.MULTILINE)
FIELDS = ("unit", "kind", "title", "command", "date", "machine", "code_version", "figures",
          "conclusion")
DEV_MODULES = ("imgviz", "imgaug", "moto", "pytest")
"""Modules only the dev extra installs: a script that imported one ran with `--extra dev`."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
KINDS = ("benchmark", "study", "conclusion", "placeholder")
"""benchmark: speed or memory; study: a question about the method; conclusion: a rejected
idea's outcome, its script removed (`command` shows it from git); placeholder: figures that
have no measurement at this code version yet."""
HEADER = """# Measured results

Rendered from `results/*.json` by `uv run python -m storage.results`; do not edit by hand.
Each section is one benchmark or study: its figures, the command that measured them, the date,
the machine and the code version (git sha). A rerun of the command rewrites its JSON file;
re-render this document afterwards (a test fails while it is stale).
Figures shown as "to be measured" have no measurement at this code version yet.
"""


def code_version(repo: Path = REPO) -> str:
    """Short git sha of `repo`'s HEAD, `-dirty` when tracked code differs from it (Markdown
    and tests/ excluded: they do not change a measurement)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)

    sha = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    dirty = git("diff", "--quiet", "HEAD", "--", ".", ":(exclude)*.md",
                ":(exclude)tests/").returncode != 0
    return sha + ("-dirty" if dirty else "")


def machine() -> str:
    """CPU architecture, cores, memory, the GPU (when torch is already imported and sees one)
    and the 1-minute load average when recorded (timings taken under load are noisy), e.g.
    "x86_64, 2 cores, 24 GiB, no GPU, load 0.3"."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") \
        else 0
    gpu = "no GPU"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"{platform.machine()}, {os.cpu_count()} cores, {round(pages / 2**30)} GiB, {gpu}"
            f"{load}")


def invoked_command() -> str:
    """How this process was started, as a user would type it (`uv run python script args`),
    with the thread-count variables that shape a timing (`OMP_NUM_THREADS=1 ...`) in front."""
    env = "".join(f"{k}={os.environ[k]} " for k in THREAD_VARIABLES if k in os.environ)
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py"):
        script = Path(argv[0]).resolve()
        argv[0] = str(script.relative_to(REPO)) if script.is_relative_to(REPO) else argv[0]
        dev = any(m in sys.modules for m in DEV_MODULES)  # it needed the dev extra
        return env + f"uv run {'--extra dev ' if dev else ''}python " + shlex.join(argv)
    return env + shlex.join([Path(sys.executable).name, *argv])


def figure(name: str, value, unit: str = "", target: str = "") -> dict:
    """One measured figure; `value` a number, a short text, or None (to be measured)."""
    return {"name": name, "value": value, "unit": unit, "target": target}


def record(unit: str, figures: list[dict], *, title: str, kind: str = "benchmark",
           command: str | None = None, conclusion: str = "", folder: Path = RESULTS_DIR,
           ) -> Path:
    """Write results/<unit>.json (replacing the last one) and return its path."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1):
        busy = (f"Recorded while the machine was busy (load {os.getloadavg()[0]:.1f} on "
                f"{os.cpu_count()} cores): its timings are not comparable with an idle run's.")
        conclusion = f"{conclusion} {busy}".strip()
    entry = {"unit": unit, "kind": kind, "title": title,
             "command": command or invoked_command(),
             "date": dt.date.today().isoformat(), "machine": machine(),
             "code_version": code_version(), "figures": figures, "conclusion": conclusion}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{unit}.json"
    path.write_text(json.dumps(entry, indent=2, ensure_ascii=False) + "\n")
    return path


def load(folder: Path = RESULTS_DIR) -> list[dict]:
    """Every results file, by kind (benchmarks, studies, conclusions, placeholders) and unit
    name; a file without the fields `record` writes is an error naming it."""
    entries = []
    for path in sorted(folder.glob("*.json")):
        entry = json.loads(path.read_text())
        missing = sorted(set(FIELDS) - set(entry))
        if missing or entry["kind"] not in KINDS or entry["unit"] != path.stem:
            raise ValueError(f"{path}: not a results file (missing {missing}, kind "
                             f"{entry.get('kind')!r}, unit {entry.get('unit')!r}); write it "
                             "with storage.results.record")
        entries.append(entry)
    return sorted(entries, key=lambda e: (KINDS.index(e["kind"]), e["unit"]))


def _value(fig: dict) -> str:
    value = fig["value"]
    if value is None:
        return "to be measured"
    if isinstance(value, float):
        value = f"{value:.4g}"
    return f"{value} {fig['unit']}".strip()


def _section(entry: dict) -> str:
    lines = [f"### {entry['title']} (`{entry['unit']}`)", ""]
    if entry["figures"]:
        lines += ["| figure | value | target |", "|---|---|---|"]
        lines += [f"| {f['name']} | {_value(f)} | {f.get('target') or ''} |"
                  for f in entry["figures"]]
        lines.append("")
    if entry.get("conclusion"):
        lines += [entry["conclusion"], ""]
    if entry["kind"] == "placeholder":
        lines += [f"- to be measured with: `{entry['command']}`", ""]
    elif entry["kind"] == "conclusion":
        lines += [f"- the removed script: `{entry['command']}`", ""]
    else:
        lines += [f"- command: `{entry['command']}`",
                  f"- measured: {entry['date']} on {entry['machine']}, "
                  f"code {entry['code_version']}", ""]
    return "\n".join(lines)


def headline(entries: list[dict], unit: str) -> str:
    """The unit's first figure as the results document shows it, or "not recorded yet"."""
    entry = next((e for e in entries if e["unit"] == unit), None)
    if entry is None or not entry["figures"]:
        return "not recorded yet"
    first = entry["figures"][0]
    return f"{first['name']} {_value(first)}"


def refresh(text: str, entries: list[dict]) -> str:
    """`text` with every table row's last cell "`unit`: ..." set to the unit's headline."""
    return LAST_CELL.sub(lambda m: f"`{m.group(1)}`: {headline(entries, m.group(1))} |", text)


def render(entries: list[dict]) -> str:
    """The results document (Markdown) of `entries`."""
    parts = [HEADER]
    titles = {"benchmark": "## Benchmarks (speed and memory)", "study": "## Studies",
              "conclusion": "## Ideas measured and not adopted",
              "placeholder": "## To be measured"}
    for kind in KINDS:
        chosen = [e for e in entries if e["kind"] == kind]
        if chosen:
            parts.append(titles[kind] + "\n")
            parts += [_section(e) for e in chosen]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render docs/results.md from results/*.json.")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when docs/results.md differs from the rendering")
    args = parser.parse_args(argv)
    entries = load()
    wanted = {DOCUMENT: render(entries)}
    wanted.update({index: refresh(index.read_text(), entries) for index in INDEXES
                   if index.exists()})
    stale = [path for path, text in wanted.items()
             if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPO)} is stale: run `uv run python -m storage.results`")
        return int(bool(stale))
    for path in stale:
        path.write_text(wanted[path])
    print(f"rendered {len(entries)} results files; rewrote "
          f"{', '.join(str(p.relative_to(REPO)) for p in stale) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
