"""Cost-of-change figures for issue 17, as JSON: how much wiring, untyped data and
kind-branching the code carries. Counts a git revision (``--rev``, read with ``git
archive``) or the working tree, so before/after figures come from one command:

    python bench/architecture.py --rev 3490d79
    python bench/architecture.py
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: A connector kind named as a string literal, or a hand-kept list of ledger kinds: each
#: is a place that decides something by which kind a connection is (asking the registry
#: for a role, ``registry.ledger_kinds()``, is not counted).
KIND_BRANCH = re.compile(r"""['"](sbc|sage500|paytrace)['"]|\bLEDGER_KINDS\b""")
#: Sage 500 / SBC field names that only the adapters should know.
LEDGER_FIELDS = re.compile(
    r"\b(TranDate|GLAcctNo|TranCmnt|CustKey|CustPmtKey|sbc_contact_id|sage500_cust_key)\b"
)
DB_CALL = re.compile(r"\.(read|transaction)\(\)")
#: The reason an import inside a function gives for being there (docs/architecture.md).
REASON = re.compile(r"#.*\b(cycle|deferred)\b", re.IGNORECASE)


def _tree(rev: str | None) -> Path:
    if rev is None:
        return ROOT
    blob = subprocess.run(
        ["git", "archive", "--format=tar", rev, "ledgerlink", "tests"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    target = Path(tempfile.mkdtemp(prefix="arch-"))
    with tarfile.open(fileobj=BytesIO(blob)) as archive:
        archive.extractall(target, filter="data")
    return target


def _sources(root: Path, *, suffixes: tuple[str, ...] = (".py",)) -> list[Path]:
    return sorted(p for p in (root / "ledgerlink").rglob("*") if p.suffix in suffixes)


def _outside(path: Path, root: Path, *folders: str) -> bool:
    relative = path.relative_to(root / "ledgerlink").parts
    return relative[0] not in folders


def _count(paths: list[Path], pattern: re.Pattern[str]) -> int:
    return sum(len(pattern.findall(p.read_text(encoding="utf-8"))) for p in paths)


def _inner_imports(paths: list[Path]) -> dict[str, int]:
    """Imports of ledgerlink inside a function body (each counted once, however deeply
    its functions nest), and how many of them give no reason: a comment saying ``cycle``
    or ``deferred`` on the import's own lines or on the comment lines just above it (or
    above the run of imports it stands in)."""
    count = unexplained = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        inside: dict[int, ast.stmt] = {}
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for n in ast.walk(function):
                    if _imports_ledgerlink(n):
                        assert isinstance(n, ast.Import | ast.ImportFrom)
                        inside[id(n)] = n
        lines = text.splitlines()
        import_lines = {
            line
            for node in inside.values()
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
        }
        count += len(inside)
        unexplained += sum(not _has_reason(n, lines, import_lines) for n in inside.values())
    return {
        "imports_inside_functions": count,
        "imports_inside_functions_without_reason": unexplained,
    }


def _has_reason(node: ast.stmt, lines: list[str], import_lines: set[int]) -> bool:
    own = range(node.lineno, (node.end_lineno or node.lineno) + 1)
    if any(REASON.search(lines[n - 1]) for n in own):
        return True
    above = node.lineno - 1
    while above >= 1:
        line = lines[above - 1].strip()
        if line.startswith("#"):
            if REASON.search(line):
                return True
        elif above not in import_lines and not line.startswith(("import ", "from ")):
            return False
        above -= 1
    return False


def _imports_ledgerlink(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").startswith("ledgerlink") or node.level > 0
    if isinstance(node, ast.Import):
        return any(a.name.startswith("ledgerlink") for a in node.names)
    return False


def _blocking_async(paths: list[Path]) -> dict[str, int]:
    """``async def`` functions that open a database session themselves (``db.read()`` /
    ``db.transaction()``) outside a nested ``def`` handed to a thread."""
    routes = functions = 0
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.AsyncFunctionDef):
                continue
            own = _walk_own_body(node)
            awaited = {id(n.value) for n in own if isinstance(n, ast.Await)}
            direct = [  # an awaited ``.read()`` is an upload's, not a database session
                n
                for n in own
                if isinstance(n, ast.Call)
                and id(n) not in awaited
                and DB_CALL.search(ast.unparse(n.func) + "()")
            ]
            if not direct:
                continue
            functions += 1
            decorators = " ".join(ast.unparse(d) for d in node.decorator_list)
            if re.search(r"router\.(get|post|put|patch|delete)|app\.(get|post)", decorators):
                routes += 1
    return {"async_functions_with_db_sessions": functions, "async_routes_with_db_sessions": routes}


def _walk_own_body(function: ast.AsyncFunctionDef) -> list[ast.AST]:
    """Nodes of the function's body, not descending into nested functions or lambdas."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def figures(root: Path) -> dict[str, object]:
    python = _sources(root)
    templates = _sources(root, suffixes=(".html",))
    not_sandbox = [p for p in python if _outside(p, root, "sandbox")]
    outside_adapters = [p for p in python + templates if _outside(p, root, "connectors", "sandbox")]
    web = [p for p in python if not _outside(p, root, "web")]
    payments = [p for p in python if not _outside(p, root, "payments")]
    posting = root / "ledgerlink" / "payments" / "posting.py"
    kind_files = sorted(
        str(p.relative_to(root))
        for p in outside_adapters
        if KIND_BRANCH.search(p.read_text(encoding="utf-8"))
    )
    return {
        "app_state_lookups": _count(python, re.compile(r"app\.state\.")),
        "dict_str_any_outside_sandbox": _count(not_sandbox, re.compile(r"dict\[str, Any\]")),
        "select_in_web": _count(web, re.compile(r"\bselect\(")),
        **_inner_imports(python),
        "getattr_probes_in_ledger_view": _count(
            [p for p in python if p.name == "ledger_view.py"], re.compile(r"getattr\(ledger")
        ),
        "type_ignores_in_payments": _count(payments, re.compile(r"type: ignore")),
        "ledger_field_names_in_payments": _count(payments, LEDGER_FIELDS),
        "posting_py_lines": len(posting.read_text().splitlines()) if posting.exists() else 0,
        "largest_payments_module_lines": max(len(p.read_text().splitlines()) for p in payments),
        "kind_branches_outside_connectors": _count(outside_adapters, KIND_BRANCH),
        "files_naming_a_ledger_kind_outside_connectors": len(kind_files),
        "files_naming_a_ledger_kind": kind_files,
        **_blocking_async(python),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git revision (default: the working tree)")
    args = parser.parse_args()
    result = {"rev": args.rev or "working tree", **figures(_tree(args.rev))}
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
