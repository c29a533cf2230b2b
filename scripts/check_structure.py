"""Keep the product code in pieces a reader can hold: module and function size, complexity.

Fails (exit 1) with one line per offence when a product module is over MODULE_LINES lines, a
function over FUNCTION_LINES lines, or more than MAX_RANK_D functions rank D or worse for
cyclomatic complexity (radon's ranks: D is 21-30). Tests and benchmarks are held to the same
module and function sizes (not to the complexity rank); migrations to none. Run by `make lint`
and `.ci/run`.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("vetsync", "clinics", "records", "prescriptions", "scripts")
SIZED_ONLY = ("tests", "bench")
SKIP_PARTS = {"migrations", "__pycache__"}
MODULE_LINES = 700
FUNCTION_LINES = 80
MAX_RANK_D = 4


def modules(tops: tuple[str, ...]) -> Iterator[Path]:
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if SKIP_PARTS.isdisjoint(relative.parts):
                yield relative


def long_functions(relative: Path, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_LINES:
                limit = f"(max {FUNCTION_LINES})"
                yield f"{relative}:{node.lineno} {node.name} is {length} lines {limit}"


def main() -> int:
    problems: list[str] = []
    complex_functions: list[str] = []
    for relative in modules(PRODUCT + SIZED_ONLY):
        text = (ROOT / relative).read_text()
        lines = text.count("\n")
        if lines > MODULE_LINES:
            problems.append(f"{relative} is {lines} lines (max {MODULE_LINES})")
        problems.extend(long_functions(relative, ast.parse(text)))
        if relative.parts[0] in SIZED_ONLY:
            continue
        for block in cc_visit(text):
            rank = cc_rank(block.complexity)
            if rank >= "D":
                complex_functions.append(
                    f"{relative}:{block.lineno} {block.fullname} rank {rank} ({block.complexity})"
                )
    if len(complex_functions) > MAX_RANK_D:
        problems.append(
            f"{len(complex_functions)} functions rank D or worse (max {MAX_RANK_D}): "
            + "; ".join(complex_functions)
        )
    for problem in problems:
        print(problem)
    if not problems:
        print(
            f"structure: every module <= {MODULE_LINES} lines, every function <= "
            f"{FUNCTION_LINES} lines, {len(complex_functions)} rank D or worse "
            f"(max {MAX_RANK_D})"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
