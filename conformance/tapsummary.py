#!/usr/bin/env python3
"""Summarise one conformance run and judge it against the expected failures.

Reads OUT/results.tsv (written by run.sh: program, exit status, seconds,
leftovers) and OUT/tap/<program>.{tap,stderr}; writes OUT/summary.md,
OUT/summary.tsv and OUT/failures.tsv; prints the summary and exits 1 when a
failure is not covered by expected.tsv. Standard library only: it runs with
the system Python, before any pyrunc environment exists.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

POINT_RE = re.compile(r"^(not ok|ok)\b(?:\s+\d+)?(?:\s*-)?\s*(.*)$")
PLAN_RE = re.compile(r"^1\.\.(\d+)")
# A directive starts at an unescaped '#'.
DIRECTIVE_RE = re.compile(r"(?<!\\)#\s*(skip|todo)\b\s*(.*)$", re.IGNORECASE)
# A failure that stops a program is not excused by an expected failure entry
# written for what the program reports when it runs to its end.
NEVER_EXPECTED = ("[timeout]", "[not run")


@dataclass
class Failure:
    text: str  # the "not ok" description, or a bracketed synthetic verdict
    detail: str = ""  # the YAML block and '#' lines that followed it


@dataclass
class Stream:
    """One TAP document: some programs print several, one per sub-test."""

    plan: int | None = None
    points: int = 0


@dataclass
class Program:
    name: str
    exit: str
    seconds: int
    left_containers: int
    left_cgroups: int
    tries: int = 1
    stderr: str = ""
    ok: int = 0
    not_ok: int = 0
    skip: int = 0
    todo: int = 0
    streams: list[Stream] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Expected:
    program: str
    failure: re.Pattern[str]
    detail: re.Pattern[str] | None
    cause: str
    ref: str

    def matches(self, prog: Program, f: Failure) -> bool:
        if f.text.startswith(NEVER_EXPECTED) or self.program not in ("*", prog.name):
            return False
        if not self.failure.search(f.text):
            return False
        return self.detail is None or self.detail.search(f.detail + "\n" + prog.stderr) is not None


def stderr_detail(stderr: str) -> str:
    """The runtime's own words from a program's stderr, on one line."""
    noise = re.compile(r"^(failed to (create|start|delete) the container|exit status \d+)$")
    lines = [s for s in (ln.strip() for ln in stderr.splitlines()) if s and not noise.match(s)]
    detail = " | ".join(lines)
    return detail if len(detail) <= 300 else detail[:297] + "..."


def yaml_error(block: list[str]) -> str | None:
    """The first line of the `error:` value of a YAML diagnostic block."""
    for i, line in enumerate(block):
        m = re.match(r"^  error:\s*(.*)$", line)
        if not m:
            continue
        value = m.group(1).strip()
        if value in ("", "|", "|-", "|+", ">", ">-"):
            value = block[i + 1].strip() if i + 1 < len(block) else ""
        return value.strip("'\"") or None
    return None


def parse_tap(prog: Program, text: str) -> None:
    after_point = False  # was the last top-level line a test point?
    last_failure: Failure | None = None  # collects the diagnostics after it
    yaml_block: list[str] | None = None
    orphan = False
    for line in text.splitlines():
        if yaml_block is not None:
            if line == "  ...":
                err = yaml_error(yaml_block) if orphan else None
                if err:
                    # An error that belongs to no test point: the hook
                    # programs give their verdict only this way.
                    prog.failures.append(Failure(f"[error diagnostic] {err}", "\n".join(yaml_block)))
                elif last_failure:
                    last_failure.detail += "\n".join(yaml_block) + "\n"
                yaml_block = None
            else:
                yaml_block.append(line)
            continue
        # Exactly two spaces: a container's TAP nested in a block is indented
        # further, and its own blocks must not open or close ours.
        if line == "  ---":
            yaml_block, orphan = [], not after_point
            continue
        if line.startswith("#"):
            if last_failure:
                last_failure.detail += line + "\n"
            continue
        if line.startswith("TAP version"):
            prog.streams.append(Stream())
            after_point, last_failure = False, None
            continue
        if not prog.streams:
            prog.streams.append(Stream())  # TAP without a version line
        stream = prog.streams[-1]
        m = PLAN_RE.match(line)
        if m:
            stream.plan = int(m.group(1))
            after_point, last_failure = False, None
            continue
        if line.startswith("Bail out!"):
            prog.failures.append(Failure(line))
            continue
        m = POINT_RE.match(line)
        if not m:
            continue
        after_point, last_failure = True, None
        stream.points += 1
        status, rest = m.group(1), m.group(2)
        d = DIRECTIVE_RE.search(rest)
        directive = d.group(1).lower() if d else ""
        desc = (rest[: d.start()] if d else rest).strip().replace("\\#", "#")
        if directive == "skip":
            prog.skip += 1
        elif directive == "todo":
            prog.todo += 1  # TAP: a TODO point's failure is not a failure
        elif status == "ok":
            prog.ok += 1
        else:
            prog.not_ok += 1
            last_failure = Failure(desc or "(no description)")
            prog.failures.append(last_failure)

    # Failures that no "not ok" line shows, bracketed so that they cannot be
    # confused with a test description.
    detail = stderr_detail(prog.stderr)
    if prog.exit == "not-run":
        prog.failures.append(Failure("[not run: time budget spent]"))
        return
    if prog.exit == "timeout":
        prog.failures.append(Failure(f"[timeout] {detail}".rstrip()))
    elif prog.exit != "0":
        prog.failures.append(Failure(f"[exit status {prog.exit}] {detail}".rstrip()))
    # No stream at all is fine: the *_fail programs print nothing when the
    # runtime rightly refused the config, and their exit status is the verdict.
    for stream in prog.streams:
        if stream.plan is None:
            prog.failures.append(Failure("[no plan: output cut short]"))
        elif stream.plan != stream.points:
            prog.failures.append(Failure(f"[plan 1..{stream.plan} but {stream.points} test points]"))


def load_expected(path: Path) -> list[Expected]:
    """expected.tsv: program, failure regex, detail regex or '-', cause (host, suite, or runc:
    a deliberate runc-compatible deviation), reference."""
    entries: list[Expected] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        cols = raw.split("\t")
        if len(cols) != 5:
            sys.exit(f"{path}:{n}: want 5 tab-separated columns, got {len(cols)}")
        try:
            failure = re.compile(cols[1])
            detail = None if cols[2] == "-" else re.compile(cols[2])
        except re.error as e:
            sys.exit(f"{path}:{n}: bad regex: {e}")
        if cols[3] not in ("host", "suite", "runc"):
            sys.exit(f"{path}:{n}: cause must be host, suite or runc, not {cols[3]!r}")
        entries.append(Expected(cols[0], failure, detail, cols[3], cols[4]))
    return entries


def load_programs(out: Path) -> list[Program]:
    programs: list[Program] = []
    with (out / "results.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            prog = Program(
                row["program"],
                row["exit"],
                int(row["seconds"]),
                int(row["left_containers"]),
                int(row["left_cgroups"]),
                int(row.get("tries") or 1),
            )
            base = out / "tap" / prog.name
            err = base.with_suffix(".stderr")
            tap = base.with_suffix(".tap")
            prog.stderr = err.read_text(errors="replace") if err.exists() else ""
            parse_tap(prog, tap.read_text(errors="replace") if tap.exists() else "")
            programs.append(prog)
    return programs


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True, help="the run's output directory")
    ap.add_argument("--runtime", required=True, help="runtime name for the report")
    ap.add_argument("--suite", required=True, help="suite version for the report")
    ap.add_argument("--expected", type=Path, required=True, help="expected.tsv")
    args = ap.parse_args()

    programs = load_programs(args.out)
    expected = load_expected(args.expected)
    seen: set[Expected] = set()
    judged: list[tuple[Program, Failure, Expected | None]] = []
    for prog in programs:
        for failure in prog.failures:
            match = next((e for e in expected if e.matches(prog, failure)), None)
            if match:
                seen.add(match)
            judged.append((prog, failure, match))
    unexpected = [(p, f) for p, f, e in judged if e is None]

    tot_ok = sum(p.ok for p in programs)
    tot_not_ok = sum(p.not_ok for p in programs)
    tot_skip = sum(p.skip for p in programs)
    tot_todo = sum(p.todo for p in programs)
    n_clean = sum(p.clean for p in programs)

    lines = [
        f"# runtime-tools validation: {args.runtime}",
        "",
        f"Suite: {args.suite}. A program is clean when it exits 0, every TAP stream",
        "it prints has a matching plan, and it reports no `not ok` and no error diagnostic.",
        "",
        "| program | ok | not ok | skip | todo | exit | s | clean | left containers/cgroups | tries |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | ---: |",
    ]
    for p in programs:
        left = f"{p.left_containers}/{p.left_cgroups}" if p.left_containers or p.left_cgroups else ""
        lines.append(
            f"| {p.name} | {p.ok} | {p.not_ok} | {p.skip} | {p.todo} | {p.exit} | {p.seconds} "
            f"| {'yes' if p.clean else 'no'} | {left} | {p.tries if p.tries > 1 else ''} |"
        )
    lines += [
        f"| **total** | **{tot_ok}** | **{tot_not_ok}** | **{tot_skip}** | **{tot_todo}** | "
        f"| {sum(p.seconds for p in programs)} | **{n_clean}/{len(programs)}** | | |",
        "",
        "Tries: a program with a known suite race is run a second time when the first try"
        " fails (its first try is kept as tap/<program>.try1.*); only the last try counts.",
        "",
        "## Failures",
        "",
        "| program | failure | expected as |",
        "| --- | --- | --- |",
    ]
    for prog, failure, match in judged:
        verdict = f"{match.cause}: {match.ref}" if match else "**UNEXPECTED**"
        lines.append(f"| {prog.name} | {md_cell(failure.text)} | {verdict} |")
    not_seen = [e for e in expected if e not in seen]
    if not_seen:
        lines += ["", "## Expected failures not seen this time", ""]
        lines += [f"- {e.program}: `{e.failure.pattern}` ({e.cause}: {e.ref})" for e in not_seen]
    report = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(report)

    with (args.out / "summary.tsv").open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["program", "ok", "not_ok", "skip", "todo", "exit", "seconds", "clean"])
        for p in programs:
            w.writerow([p.name, p.ok, p.not_ok, p.skip, p.todo, p.exit, p.seconds, int(p.clean)])
    with (args.out / "failures.tsv").open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["program", "failure", "expected_as"])
        for prog, failure, match in judged:
            w.writerow([prog.name, failure.text, f"{match.cause}:{match.ref}" if match else ""])

    print(report)
    print(f"results in {args.out}")
    for prog, failure in unexpected:
        print(f"UNEXPECTED FAILURE: {prog.name}: {failure.text}")
    print(
        f"{tot_ok} ok, {tot_not_ok} not ok, {tot_skip} skipped, {tot_todo} todo; "
        f"{n_clean}/{len(programs)} programs clean; "
        f"{len(judged) - len(unexpected)} expected failures, {len(unexpected)} unexpected"
    )
    # The one closing line CI reads: only unexpected failures count as failed.
    print(f"conformance: {tot_ok} passed, {len(unexpected)} failed, {tot_skip} skipped")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
