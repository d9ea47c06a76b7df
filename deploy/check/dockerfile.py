#!/usr/bin/env python3
"""Checks deploy/Dockerfile against the repository, without a Docker engine.

hadolint lints the Dockerfile as a Dockerfile; this checks what hadolint cannot know:

- the dependency layer copies the manifest of every workspace member in Cargo.toml and
  nothing else (a new crate left out would fail the stub build, a removed one the COPY);
- every file a COPY takes from the build context exists;
- deploy/Dockerfile.dockerignore lets every such file through (BuildKit sends only what
  it does not exclude), including every source file under a copied directory's src/.

Usage: dockerfile.py [REPO_ROOT]   (default: two levels above this file)
Python 3.11+ standard library only (tomllib).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments out."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        if whole:
            word, _, rest = whole.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copy_sources(args: str) -> list[str] | None:
    """The build-context sources of a COPY (None for COPY --from=another stage)."""
    words = args.split()
    if any(w.startswith("--from=") for w in words):
        return None
    words = [w for w in words if not w.startswith("--")]
    if words and words[0].startswith("["):
        raise SystemExit("dockerfile.py: JSON-form COPY is not supported here; use the plain form")
    return words[:-1]


def ignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per .dockerignore line, in order (the last match wins)."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line[1:] if exception else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((exception, re.compile(regex + r"\Z")))
    return patterns


def sent_to_builder(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether BuildKit sends `path` (relative to the context): a pattern that matches the
    path or one of its parent directories decides, the last such pattern winning."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for exception, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            included = exception
    return included


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    dockerfile = root / "deploy" / "Dockerfile"
    ignore = root / "deploy" / "Dockerfile.dockerignore"
    problems: list[str] = []

    members = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["members"]
    expected = {f"{m}/Cargo.toml" for m in members}

    steps = instructions(dockerfile.read_text())
    sources: list[str] = []
    for word, args in steps:
        if word == "COPY":
            found = copy_sources(args)
            if found is not None:
                sources.extend(found)
    copied_manifests = {s for s in sources if re.fullmatch(r"crates/[^/]+/Cargo\.toml", s)}
    for missing in sorted(expected - copied_manifests):
        problems.append(f"the dependency layer does not copy {missing} (a workspace member)")
    for extra in sorted(copied_manifests - expected):
        problems.append(f"the dependency layer copies {extra}, which is not a workspace member")

    patterns = ignore_patterns(ignore.read_text())
    for source in sources:
        path = root / source
        if not path.exists():
            problems.append(f"COPY {source}: no such file or directory in the build context")
            continue
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(root).as_posix()
            needed = path.is_file() or "/src/" in relative or relative.endswith("/Cargo.toml")
            if needed and not sent_to_builder(relative, patterns):
                problems.append(
                    f"COPY {source}: {relative} is excluded by {ignore.relative_to(root)}"
                )

    for problem in problems:
        print(f"dockerfile: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"dockerfile: ok ({len(expected)} workspace manifests in the dependency layer, "
        f"{len(sources)} COPY sources present and not ignored)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
