"""`knit new`: names checked, nothing overwritten, every template rendered into a committed app
whose manifests knit admits, and `knit new --update` bringing an app up to a template change with
the app's own edit kept. (Each generated app's own `make test`, run under `knit dev` with a real
Kafka broker, is `make test-templates`: tests_templates/.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from knit.admission import load_manifests
from knit.new import TEMPLATES, NewAppError, create, git, name_problems, update
from knit.resources.model import Service
from knit.testing.templates import snapshot


def knit_new(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "knit", "new", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("name", ["a", "word-counter", "x1", "a" * 63])
def test_a_dns_1035_label_names_an_app(name):
    assert name_problems(name) == []


@pytest.mark.parametrize("name", ["", "Word", "1st", "-a", "a-", "a_b", "a.b", "a" * 64, "naïve"])
def test_a_name_that_is_not_a_dns_1035_label_is_refused_saying_what_a_name_is(name):
    [problem] = name_problems(name)
    assert problem.startswith(f"{name!r} is not a DNS-1035 label: use 1 to 63 lowercase letters")


@pytest.mark.parametrize("name", ["json", "flask", "class", "knit"])
def test_a_name_whose_package_would_shadow_a_module_is_refused(name):
    [problem] = name_problems(name)
    assert f"the Python package {name!r}, which is already a module here" in problem


def test_the_command_prints_the_next_commands_and_commits_the_app(knit_templates, tmp_path):
    done = knit_new("word-counter", "--from", str(knit_templates), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    app = tmp_path / "word-counter"
    assert done.stdout.splitlines()[1:] == [
        f"  cd {Path('word-counter')}",
        "  make test    # its tests, with a real Kafka broker",
        "  make dev     # run it on this machine, as knit dev",
    ]
    assert git(app, "status", "--porcelain") == ""
    assert "made by `knit new --template processor`" in git(app, "log", "--format=%s")
    answers = yaml.safe_load((app / ".copier-answers.yml").read_text())
    assert answers["app_name"] == "word-counter"
    assert answers["_commit"] == git(knit_templates, "rev-parse", "--short", "HEAD")
    assert (app / "src/word_counter/work.py").is_file()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "name the app: knit new NAME"),
        (("Bad_Name",), "'Bad_Name' is not a DNS-1035 label"),
        (("ok", "--dir", "occupied"), "occupied exists and is not empty: choose another, or pass --force"),
        (("ok", "--dir", "a-file"), "a-file is a file, not a folder"),
        (("--update", "--dir", "."), "has no .copier-answers.yml: it was not made by `knit new`"),
        (("--update", "ok"), "knit new --update takes only --dir (the app, default .)"),
    ],
)
def test_bad_requests_are_refused_with_what_to_do_and_nothing_written(knit_templates, tmp_path, args, says):
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied/mine.txt").write_text("keep me")
    (tmp_path / "a-file").write_text("keep me")
    before = sorted(tmp_path.rglob("*"))
    source = () if "--update" in args else ("--from", str(knit_templates))
    done = knit_new(*args, *source, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr
    assert sorted(tmp_path.rglob("*")) == before
    assert (tmp_path / "occupied/mine.txt").read_text() == "keep me"


def test_a_template_that_does_not_exist_is_refused(knit_templates, tmp_path):
    with pytest.raises(NewAppError, match=f"no template 'cron': choose one of {', '.join(TEMPLATES)}"):
        create("ok", "cron", tmp_path / "ok", source=knit_templates)


def test_force_writes_into_a_folder_that_is_not_empty_keeping_other_files(knit_templates, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "notes.txt").write_text("mine")
    create("word-counter", "processor", app, source=knit_templates, force=True)
    assert (app / "notes.txt").read_text() == "mine"
    assert (app / "manifests/word-counter.yaml").is_file()


def test_a_folder_that_is_not_a_knit_clone_is_no_template_source(tmp_path):
    with pytest.raises(NewAppError, match="is not a knit repository"):
        create("ok", "processor", tmp_path / "ok", source=tmp_path)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_makes_an_app_whose_manifests_knit_admits(knit_templates, tmp_path, template):
    app = create("my-app", template, tmp_path / "my-app", source=knit_templates).path
    manifests = load_manifests([app / "manifests"])
    assert [service.name for service in manifests.of_kind(Service)][:1] == ["my-app"]
    for required in ("Makefile", "README.md", "Dockerfile", "pyproject.toml", ".copier-answers.yml"):
        assert (app / required).is_file(), required
    assert list((app / "tests").glob("test_*.py")), "no tests"
    leftovers = [str(p) for p in app.rglob("*") if ".git" not in p.parts and ("{{" in p.name or p.suffix == ".jinja")]
    assert leftovers == []


TEMPLATE_WORK = "platform/src/knit/templates/processor/src/{{ package }}/work.py.jinja"


def edited(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def app_with_an_edit(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A knit clone, an app made from it, and the app's work.py, with an edit the user committed."""
    knit = snapshot(tmp_path)
    app = create("word-counter", "processor", tmp_path / "word-counter", source=knit).path
    work = app / "src/word_counter/work.py"
    edited(work, "MAX_TEXT = 10_000", "MAX_TEXT = 500")
    git(app, "-c", "user.name=u", "-c", "user.email=u@localhost", "commit", "-qam", "shorter texts")
    return knit, app, work


def commit_template_change(knit: Path) -> None:
    git(knit, "add", "--all")
    git(knit, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "a newer template")


def test_an_update_brings_a_template_change_and_keeps_the_apps_own_edit(tmp_path):
    knit, app, work = app_with_an_edit(tmp_path)
    # A newer template: another line of the same file, and a new file.
    edited(knit / TEMPLATE_WORK, "from typing import Any", "from typing import Any  # new")
    (knit / TEMPLATE_WORK).parents[2].joinpath("CHANGELOG.md.jinja").write_text("# {{ app_name }}: changes\n")
    commit_template_change(knit)

    commit = update(app)

    assert commit == git(knit, "rev-parse", "HEAD")
    text = work.read_text()
    assert "MAX_TEXT = 500" in text, "the app's own edit was lost"
    assert "from typing import Any  # new" in text, "the template's change did not arrive"
    assert (app / "CHANGELOG.md").read_text() == "# word-counter: changes\n"
    assert yaml.safe_load((app / ".copier-answers.yml").read_text())["_commit"] == commit[:7]


def test_an_update_refuses_an_app_with_changes_not_committed(knit_templates, tmp_path):
    app = create("word-counter", "processor", tmp_path / "word-counter", source=knit_templates).path
    (app / "Makefile").write_text("edited, not committed\n")
    with pytest.raises(NewAppError, match="has changes not committed: commit them first"):
        update(app)
    assert (app / "Makefile").read_text() == "edited, not committed\n"


def test_where_the_app_and_the_template_changed_the_same_line_the_file_shows_both(tmp_path):
    knit, app, work = app_with_an_edit(tmp_path)
    edited(knit / TEMPLATE_WORK, "MAX_TEXT = 10_000", "MAX_TEXT = 20_000")
    commit_template_change(knit)

    update(app)

    text = work.read_text()
    assert "<<<<<<< before updating" in text and ">>>>>>> after updating" in text, text
    assert "MAX_TEXT = 500" in text and "MAX_TEXT = 20_000" in text
