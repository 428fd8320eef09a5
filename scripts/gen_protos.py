"""Regenerate gen/python from protos/ (python, grpc and .pyi stubs).

Run through `make protos`. `--check` regenerates into a temporary directory and exits 1
when the committed code differs, which is how CI catches stale generated code.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen" / "python"


def generate(out: Path) -> None:
    proto_include = Path(protoc.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{proto_include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages, so setuptools and mypy find them like any other code.
    for directory in [out / "deelrx", *(p for p in (out / "deelrx").rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


def tree_differs(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    diffs = [*cmp.left_only, *cmp.right_only, *cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        diffs += [f"{name}/{d}" for d in tree_differs(Path(sub.left), Path(sub.right))]
    return diffs


def main() -> int:
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            diffs = tree_differs(Path(tmp) / "deelrx", GEN / "deelrx")
            if diffs:
                print("generated code is stale, run `make protos`:", *diffs, sep="\n  ")
                return 1
        return 0
    # Generate aside and copy over, so running processes never see a half-written tree.
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "deelrx"
        for stale in tree_differs(fresh, GEN / "deelrx") if (GEN / "deelrx").exists() else []:
            if not (fresh / stale).exists():
                target = GEN / "deelrx" / stale
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        shutil.copytree(fresh, GEN / "deelrx", dirs_exist_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
