"""The docs point at code that exists: every `file.py: name` in README.md and docs/*.md names a
function, class, method or module-level name of that file, so the reading guide cannot rot when
the code moves (a renamed method fails here, not in a student's search)."""
import ast
import glob
import os
import re
import pytest
from conftest import ROOT

REFERENCE = re.compile(r"`([\w/]+\.py): (\w[\w.]*)")
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def defined(path):
    """The names a file defines at its top level, and its classes' methods as Class.method."""
    found = set()
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef):
                    found.add(f"{node.name}.{sub.name}")
                if isinstance(sub, ast.Assign):
                    found |= {f"{node.name}.{t.id}" for t in sub.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.Assign):
            found |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return found


def references(doc):
    """(line number, file, name) of each `file.py: name` in a Markdown file."""
    for i, line in enumerate(open(doc), 1):
        for f, name in REFERENCE.findall(line):
            yield i, f, name


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: os.path.relpath(d, ROOT))
def test_every_reference_names_code_that_exists(doc):
    missing = []
    for i, f, name in references(doc):
        path = os.path.join(ROOT, f)
        if not os.path.exists(path) or name not in defined(path):
            missing.append(f"line {i}: {f}: {name}")
    assert not missing, f"{os.path.relpath(doc, ROOT)} names code that is not there: {missing}"


def test_the_check_sees_a_renamed_method(tmp_path):
    """The check itself: a method that is not in the file is reported, one that is is not."""
    (tmp_path / "m.py").write_text("class A:\n    def f(self):\n        pass\n")
    assert "A.f" in defined(tmp_path / "m.py")
    assert "A.g" not in defined(tmp_path / "m.py")
    doc = tmp_path / "d.md"
    doc.write_text("| x | `m.py: A.g` |\n")
    assert list(references(doc)) == [(1, "m.py", "A.g")]
